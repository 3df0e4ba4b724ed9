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
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

server, scratch = sys.argv[1], os.path.join(sys.argv[2], "long_poll")
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
log = open(os.path.join(scratch, "server.log"), "w+")
proc = subprocess.Popen([server, os.path.join(scratch, "lp.db"), "--listen", "127.0.0.1:0", "-v"],
                        stdout=subprocess.PIPE, stderr=log)
port = int(proc.stdout.readline())


def on_alarm(sig, frame):
    raise SystemExit("FAIL: timed out")


signal.signal(signal.SIGALRM, on_alarm)
signal.alarm(120)
s16 = lambda v: struct.pack(">h", v)
s32 = lambda v: struct.pack(">i", v)
s64 = lambda v: struct.pack(">q", v)
st = lambda b: s16(len(b)) + b

CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    CRC_TABLE.append(c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = CRC_TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    v = (v << 1) ^ (v >> 63)  # zigzag
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def batch(key, value):
    """A RecordBatch v2 of one record, as a producer sends it."""
    rec = b"\x00" + varint(0) + varint(0) + varint(len(key)) + key + varint(len(value)) + value + varint(0)
    rec = varint(len(rec)) + rec
    ts = 1700000000000
    after_crc = s16(0) + s32(0) + s64(ts) + s64(ts) + s64(-1) + s16(-1) + s32(-1) + s32(1) + rec
    body = s32(0) + b"\x02" + struct.pack(">I", crc32c(after_crc)) + after_crc  # leader epoch, magic, crc
    return s64(0) + s32(len(body)) + body


def call(key, ver, body, sock=None):
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=60)
    msg = s16(key) + s16(ver) + s32(7) + st(b"lp") + body
    s.sendall(s32(len(msg)) + msg)
    def rd(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            assert c, "connection closed"
            b += c
        return b
    r = rd(struct.unpack(">i", rd(4))[0])
    s.close()
    assert struct.unpack(">i", r[:4])[0] == 7
    return r[4:]


def produce(value):
    b = batch(b"k", value)
    body = s16(-1) + s16(1) + s32(10000) + s32(1) + st(b"lp") + s32(1) + s32(0) + s32(len(b)) + b
    r = call(0, 3, body)
    tl = struct.unpack(">h", r[4:6])[0]
    part, err, base = struct.unpack(">ihq", r[6 + tl + 4:6 + tl + 18])
    assert err == 0, err
    return b, base


def fetch(offset, max_wait, min_bytes, sock=None):
    """Fetch v4 of partition 0: (error, high watermark, records bytes)."""
    body = s32(-1) + s32(max_wait) + s32(min_bytes) + s32(1 << 20) + b"\x00" + s32(1) + st(b"lp") + s32(1) + s32(0) + s64(offset) + s32(1 << 20)
    r = call(1, 4, body, sock)
    tl = struct.unpack(">h", r[8:10])[0]
    off = 10 + tl + 4
    part, err, hwm, lso = struct.unpack(">ihqq", r[off:off + 22])
    off += 22 + 4  # aborted transactions: [] (v4: count only)
    n = struct.unpack(">i", r[off:off + 4])[0]
    return err, hwm, r[off + 4:off + 4 + max(n, 0)]


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
    import re
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
