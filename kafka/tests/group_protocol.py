#!/usr/bin/env python3
"""group_protocol.py -- the group coordinator at the wire level: a member
that stops heartbeating is expired after its session timeout when another
member joins, the group moves to the next generation without it, its
heartbeat then gets UNKNOWN_MEMBER_ID (25), and an OffsetCommit from its old
generation is refused while the live member's commit lands.

usage: group_protocol.py SERVER_BINARY SCRATCH_DIR
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

server, scratch = sys.argv[1], os.path.join(sys.argv[2], "group_protocol")
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
proc = subprocess.Popen([server, os.path.join(scratch, "g.db"), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE)
port = int(proc.stdout.readline())


def on_alarm(sig, frame):
    raise SystemExit("FAIL: timed out")


signal.signal(signal.SIGALRM, on_alarm)
signal.alarm(60)
s16 = lambda v: struct.pack(">h", v)
s32 = lambda v: struct.pack(">i", v)
s64 = lambda v: struct.pack(">q", v)
st = lambda b: s16(len(b)) + b


def call(key, ver, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    msg = s16(key) + s16(ver) + s32(42) + st(b"gp") + body
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
    assert struct.unpack(">i", r[:4])[0] == 42
    return r[4:]


def rstr(b, at):
    n = struct.unpack(">h", b[at:at + 2])[0]
    return b[at + 2:at + 2 + n], at + 2 + n


def join(member, session_ms, rebalance_ms):
    body = st(b"grp") + s32(session_ms) + s32(rebalance_ms) + st(member) + st(b"consumer") + s32(1) + st(b"range") + s32(2) + b"md"
    r = call(11, 2, body)  # JoinGroup v2: throttle, error, generation, protocol, leader, member, members
    err, gen = struct.unpack(">hi", r[4:10])
    proto, at = rstr(r, 10)
    leader, at = rstr(r, at)
    me, at = rstr(r, at)
    return err, gen, leader, me


def sync(member, gen, assignments):
    body = st(b"grp") + s32(gen) + st(member) + s32(len(assignments)) + b"".join(st(m) + s32(len(a)) + a for m, a in assignments)
    r = call(14, 1, body)
    return struct.unpack(">h", r[4:6])[0]


def heartbeat(member, gen):
    return struct.unpack(">h", call(12, 1, st(b"grp") + s32(gen) + st(member))[4:6])[0]


def commit(member, gen, offset):
    # OffsetCommit v2: group, generation, member, retention, [topic [partition offset metadata]]
    body = st(b"grp") + s32(gen) + st(member) + s64(-1) + s32(1) + st(b"t") + s32(1) + s32(0) + s64(offset) + st(b"")
    r = call(8, 2, body)
    return struct.unpack(">h", r[-2:])[0]


try:
    # a topic with records to commit offsets on
    call(3, 4, s32(1) + st(b"t") + b"\x01")
    err, gen_a, leader, a = join(b"", 1000, 1500)
    assert err == 0 and gen_a == 1 and leader == a, (err, gen_a, leader, a)
    assert sync(a, gen_a, [(a, b"assignment-a")]) == 0
    assert heartbeat(a, gen_a) == 0
    print(f"ok: member {a.decode()} leads generation 1")
    time.sleep(1.3)  # a stops heartbeating: its 1 s session runs out
    t0 = time.time()
    err, gen_b, leader, b = join(b"", 10000, 3000)
    assert err == 0 and gen_b == 2 and leader == b, (err, gen_b, leader, b)
    print(f"ok: a new member's join expired the silent one: generation 2 led by {b.decode()} "
          f"after {time.time() - t0:.2f}s")
    assert sync(b, gen_b, [(b, b"assignment-b")]) == 0
    assert heartbeat(a, gen_a) == 25, "the expired member's heartbeat"
    print("ok: the expired member's heartbeat gets UNKNOWN_MEMBER_ID (25)")
    assert commit(a, gen_a, 0) == 25, "commit from the expired member"
    assert commit(b, 1, 0) == 22, "commit from a stale generation"  # ILLEGAL_GENERATION
    assert commit(b, gen_b, 0) == 0
    print("ok: commits from the expired member and a stale generation are refused; the live member's lands")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
finally:
    if proc.poll() is None:
        proc.kill()
