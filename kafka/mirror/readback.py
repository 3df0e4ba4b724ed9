#!/usr/bin/python3
"""readback.py -- read a topic back from a Kafka cluster with python3-kafka
(a second, independent client beside librdkafka) and print one line per
record: partition offset key value timestamp headers, bytes as hex and '-'
for null. test_mirror.c prints the same from librdkafka and compares.
Usage: readback.py BOOTSTRAP TOPIC PARTITIONS"""
import sys

from kafka import KafkaConsumer, TopicPartition


def hx(b):
    return "-" if b is None else (b.hex() or "=")


def main():
    bootstrap, topic, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                      group_id=None, consumer_timeout_ms=5000, api_version_auto_timeout_ms=10000)
    tps = [TopicPartition(topic, p) for p in range(parts)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    end = c.end_offsets(tps)
    out = {tp.partition: [] for tp in tps}
    left = {tp for tp in tps if end[tp] > 0}
    while left:
        batch = c.poll(timeout_ms=1000)
        if not batch and all(c.position(tp) >= end[tp] for tp in left):
            break
        for tp, recs in batch.items():
            for r in recs:
                hs = ",".join("%s:%s" % (k.encode().hex(), hx(v)) for k, v in r.headers)
                out[tp.partition].append("%d %d %s %s %d %s" % (tp.partition, r.offset, hx(r.key),
                                                                hx(r.value), r.timestamp, hs or "="))
            if c.position(tp) >= end[tp]:
                left.discard(tp)
    for p in range(parts):
        for line in out[p]:
            print(line)


main()
