#!/usr/bin/env python3
"""long_poll.py -- Fetch long polling at the wire level (the store's
takhin_cursor_wait behind it): a fetch at the high watermark sleeps until a
produce from another connection wakes it and returns that batch byte for
byte; min_bytes keeps a fetch waiting past the data already there until
enough has arrived; max_wait_ms ends it with what there is; max_wait 0
answers at once; SIGTERM ends a long poll with an answer and the server
stops cleanly.

usage: long_poll.py SERVER_BINARY SCRATCH_DIR
"""
import os
import re
import signal
import struct
import sys
import threading

from kafka_wire import batch, call as wire_call, fetch_v4, produce_v3, s32, s64, scratch_dir, st, start_server, time_bound

server, scratch = sys.argv[1], scratch_dir(sys.argv[2], "long_poll")
log = open(os.path.join(scratch, "server.log"), "w+")
proc, port = start_server(server, os.path.join(scratch, "lp.db"), "-v", stderr=log)
time_bound(120)


def call(key, ver, body, sock=None):
    return wire_call(port, key, ver, body, sock=sock, corr=7, client=b"lp")


def produce(value):
    b = batch(b"k", value)
    err, base = produce_v3(port, b"lp", b, acks=1)
    assert err == 0, err
    return b, base


def fetch(offset, max_wait, min_bytes, sock=None):
    """Fetch v4 of partition 0: (error, high watermark, records bytes)."""
    return fetch_v4(port, b"lp", offset, max_wait, min_bytes, sock=sock)


def later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def same_batch(got, sent, base):
    # stored as sent but for baseOffset and partitionLeaderEpoch (outside the CRC)
    return len(got) == len(sent) and got[:8] == s64(base) and got[8:12] == sent[8:12] and got[16:] == sent[16:]


try:
    call(3, 1, s32(1) + st(b"lp"))  # Metadata auto-creates the topic
    a, base = produce(b"first")
    assert base == 0

    # 1. a fetch at the high watermark is woken by a produce on another connection
    box = {}
    t = later(0.3, lambda: box.update(b=produce(b"second")))
    err, hwm, recs = fetch(1, 30000, 1)
    t.join()
    b, bbase = box["b"]
    assert err == 0 and bbase == 1, (err, bbase)
    assert same_batch(recs, b, 1), "the woken fetch returns the new batch, byte for byte"
    print("ok: a long poll at the high watermark is woken by a produce and returns its batch")

    # 2. min_bytes: two batches are there, but fewer bytes than asked; the
    # fetch waits for the third instead of answering with the first two
    have = len(a) + len(b)
    box = {}
    t = later(0.3, lambda: box.update(c=produce(b"third")))
    err, hwm, recs = fetch(0, 30000, have + 1)
    t.join()
    c, cbase = box["c"]
    assert err == 0 and cbase == 2
    assert len(recs) == have + len(c), f"min_bytes waited for the third batch: got {len(recs)} of {have + len(c)} bytes"
    assert same_batch(recs[have:], c, 2)
    print("ok: min_bytes keeps a fetch waiting past the data already there")

    # 3. max_wait ends a fetch that never gets min_bytes, with what there is
    err, hwm, recs = fetch(0, 300, 1 << 20)
    assert err == 0 and hwm == 3 and len(recs) == have + len(c), (err, hwm, len(recs))
    print("ok: max_wait_ms ends a fetch short of min_bytes with the data there is")

    # 4. max_wait 0 and min_bytes 0 answer at once, empty at the high watermark
    for mw, mb in ((0, 1), (30000, 0)):
        err, hwm, recs = fetch(3, mw, mb)
        assert err == 0 and hwm == 3 and recs == b"", (mw, mb, err, hwm, len(recs))
    print("ok: max_wait 0 or min_bytes 0 answer at once")

    # 5. an offset beyond the high watermark gets OFFSET_OUT_OF_RANGE without waiting
    err, hwm, recs = fetch(9, 30000, 1)
    assert err == 1 and hwm == 3, (err, hwm)
    print("ok: a long poll beyond the high watermark gets OFFSET_OUT_OF_RANGE at once")

    # 6. DeleteTopics (v1) while a fetch long-polls the topic: the poll ends
    # with UNKNOWN_TOPIC_OR_PARTITION (3)
    box = {}
    t = later(0.3, lambda: box.update(r=call(20, 1, s32(1) + st(b"lp") + s32(5000))))
    err, hwm, recs = fetch(3, 30000, 1)
    t.join()
    r = box["r"]  # throttle, [name, error]
    n, nl = struct.unpack(">ih", r[4:10])
    assert n == 1 and r[10:10 + nl] == b"lp" and struct.unpack(">h", r[10 + nl:12 + nl])[0] == 0, r
    assert err == 3, err
    print("ok: DeleteTopics ends a long poll on the topic with UNKNOWN_TOPIC_OR_PARTITION")

    # 7. SIGTERM during a long poll: the poll is answered, the server stops cleanly
    call(3, 1, s32(1) + st(b"lp"))  # Metadata creates it again, empty
    t = later(0.5, lambda: proc.send_signal(signal.SIGTERM))
    err, hwm, recs = fetch(0, 30000, 1)
    t.join()
    assert err == 0 and recs == b"", (err, len(recs))
    assert proc.wait(timeout=30) == 0, "server did not stop cleanly"
    print("ok: SIGTERM ends a long poll with an answer and stops the server")

    # the log: one line per event, each "<UTC timestamp> takhin-server: ..."
    log.seek(0)
    lines = log.read().splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z takhin-server: \S")
    bad = [l for l in lines if not stamp.match(l)]
    assert not bad, bad[:3]
    assert any("request api 1 v4" in l for l in lines), "-v logs every request"
    assert any(l.endswith("takhin-server: stopped") for l in lines), lines[-3:]
    print(f"ok: {len(lines)} log lines, one per event, each stamped")
finally:
    if proc.poll() is None:
        proc.kill()
