#!/usr/bin/python3
"""kafka_python_test.py -- Debian's python3-kafka (kafka-python 2.0) against
takhin-server: KafkaAdminClient creates a topic; KafkaProducer sends keyed
records; a KafkaConsumer with a group_id reads some, commits and closes; a new
consumer of the group resumes where it left off; then the server restarts
and another consumer resumes again. Nothing is lost or read twice.

usage: kafka_python_test.py SERVER_BINARY SCRATCH_DIR
"""
import os
import shutil
import signal
import subprocess
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

server, scratch = sys.argv[1], os.path.join(sys.argv[2], "kafka_python")
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
db = os.path.join(scratch, "py.db")
N = 90


def on_alarm(sig, frame):
    raise SystemExit("FAIL: timed out")


signal.signal(signal.SIGALRM, on_alarm)
signal.alarm(150)


def start(port=0):
    p = subprocess.Popen([server, db, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE)
    return p, int(p.stdout.readline())


def stop(p):
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 0, "server did not stop cleanly"


def consume(bootstrap, limit):
    """Read up to limit records with group "pyg", commit, close."""
    c = KafkaConsumer("pyt", bootstrap_servers=bootstrap, group_id="pyg", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=4000)
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) == limit:
            break
    c.commit()
    c.close()
    return got


proc, port = start()
try:
    b = f"127.0.0.1:{port}"
    admin = KafkaAdminClient(bootstrap_servers=b)
    r = admin.create_topics([NewTopic("pyt", 3, 1)])
    assert all(e[1] == 0 for e in r.topic_errors), r
    admin.close()
    print("ok: KafkaAdminClient created a topic of 3 partitions")
    p = KafkaProducer(bootstrap_servers=b, acks="all")
    sent = {(b"k%d" % i, b"value %d" % i) for i in range(N)}
    for k, v in sorted(sent):
        p.send("pyt", key=k, value=v)
    p.flush()
    p.close()
    print(f"ok: KafkaProducer sent {N} keyed records")
    first = consume(b, 30)
    assert len(first) == 30, len(first)
    second = consume(b, 30)
    assert len(second) == 30 and not set(first) & set(second), "the second consumer did not resume"
    print("ok: a new consumer of the group resumed after the committed offsets")
    stop(proc)
    proc, port = start(port)  # same address: the group's committed offsets are in the store
    third = consume(b, N)
    got = first + second + third
    assert len(got) == N and set(got) == sent, (len(got), len(set(got)))
    print("ok: after a server restart the group resumed; every record read once")
    stop(proc)
finally:
    if proc.poll() is None:
        proc.kill()
