#!/usr/bin/env python3
"""shutdown.py -- SIGTERM drains in-flight requests, flushes and closes the
store: a Produce that is acknowledged is there after a restart.

1. A request in hand: half a Produce frame arrives, then SIGTERM, then the
   rest. The server must finish reading it, append, answer (acks=-1), exit 0;
   after a restart the record is there, byte for byte.
2. A Produce sent and SIGTERM at once, acks=1 and -1: on a connection being
   served it is answered; on a new one (perhaps not accepted yet) it is
   answered or the connection closed. Each time the server exits 0 and an
   acknowledged record is there after the restart, at its offset.
3. A client that keeps sending requests without pause after SIGTERM cannot
   hold the drain open: its connection is closed within the server's grace
   (about a second), and the server exits 0 well before its 30 s limit.

usage: shutdown.py SERVER_BINARY SCRATCH_DIR
"""
import os
import signal
import socket
import struct
import sys
import threading
import time

from kafka_wire import batch, call, fetch_v4, header, recv_exact, s16, s32, scratch_dir, st, start_server, stop_server, time_bound

server, scratch = sys.argv[1], scratch_dir(sys.argv[2], "shutdown")
db = os.path.join(scratch, "sd.db")
time_bound(150)


def produce_frame(value, acks):
    b = batch(b"k", value)
    body = header(0, 3, 5) + s16(-1) + s16(acks) + s32(10000) + s32(1) + st(b"sd") + s32(1) + s32(0) + s32(len(b)) + b
    return s32(len(body)) + body, b


def produce_answer(s):
    """(error, base offset) of a Produce v3 answer on s, or None if closed."""
    try:
        r = recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0])
    except (EOFError, ConnectionResetError):
        return None
    assert struct.unpack(">i", r[:4])[0] == 5
    tl = struct.unpack(">h", r[8:10])[0]
    part, err, base = struct.unpack(">ihq", r[10 + tl + 4:10 + tl + 18])
    return err, base


def stored(port, base):
    """The batch stored at base (Fetch v4 from there), or None."""
    err, hwm, recs = fetch_v4(port, b"sd", base)
    assert err == 0, err
    return recs if recs else None


def same_batch(got, sent, base):
    # stored as sent but for baseOffset and partitionLeaderEpoch (outside the CRC)
    return got[:8] == struct.pack(">q", base) and got[8:12] == sent[8:12] and got[16:len(sent)] == sent[16:]


proc = None
try:
    proc, port = start_server(server, db)
    call(port, 3, 4, s32(1) + st(b"sd") + b"\x01")  # Metadata auto-creates the topic

    # 1. half a frame in hand when SIGTERM comes
    frame, sent = produce_frame(b"in-hand", -1)
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(frame[:len(frame) // 2])
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    s.sendall(frame[len(frame) // 2:])
    ans = produce_answer(s)
    s.close()
    assert ans is not None and ans[0] == 0, f"the request in hand was not answered: {ans}"
    assert proc.wait(timeout=30) == 0, "server did not stop cleanly"
    proc, port = start_server(server, db)
    got = stored(port, ans[1])
    assert got and same_batch(got, sent, ans[1]), "the acknowledged record is not there after the restart"
    print(f"ok: a Produce half-read at SIGTERM is finished, acknowledged at {ans[1]} and there after a restart")

    # 2. a whole Produce and SIGTERM at once, on a connection the server
    # already serves (one request done): the request arrived before the
    # signal, so it is answered; then on a new connection, which the server
    # may not have accepted yet: answered or closed
    def race(rnd, warm):
        global proc, port
        acks = -1 if rnd % 2 else 1
        frame, sent = produce_frame(b"race-%d" % rnd, acks)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if warm:
            call(port, 18, 0, b"", sock=s, close=False)  # ApiVersions
        s.sendall(frame)
        proc.send_signal(signal.SIGTERM)
        ans = produce_answer(s)
        s.close()
        assert proc.wait(timeout=30) == 0, "server did not stop cleanly"
        proc, port = start_server(server, db)
        if ans is None:
            assert not warm, f"round {rnd}: a request sent before SIGTERM was not answered"
            return 0
        assert ans[0] == 0, ans
        got = stored(port, ans[1])
        assert got and same_batch(got, sent, ans[1]), f"round {rnd}: acknowledged at {ans[1]}, not there after the restart"
        return 1

    for rnd in range(4):
        race(rnd, True)
    print("ok: a Produce sent just before SIGTERM is answered and there after a restart (4 rounds, acks 1 and -1)")
    acked = sum(race(rnd, False) for rnd in range(4))
    print(f"ok: the same on a new connection: {acked} of 4 acknowledged, each there after the restart")

    # 3. a client pipelining ApiVersions requests without pause: a writer
    # thread keeps the server's receive buffer full, a reader drains answers
    av = header(18, 0, 7)
    av = s32(len(av)) + av
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    call(port, 18, 0, b"", sock=s, close=False)  # served: the connection is accepted
    closed = threading.Event()
    answered = [0]

    def writer():
        try:
            while not closed.is_set():
                s.sendall(av * 4096)
        except OSError:
            closed.set()

    def reader():
        try:
            while True:
                got = s.recv(1 << 16)
                if not got:
                    break
                answered[0] += len(got)
        except OSError:
            pass
        closed.set()

    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=reader, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # a stream of requests in flight
    served_before = answered[0]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    closed.wait(20)
    took = time.monotonic() - t0
    s.close()
    assert served_before > 0, "the pipelining client was never served"
    assert closed.is_set(), "a client pipelining requests kept its connection open for 20 s after SIGTERM"
    assert proc.wait(timeout=30) == 0, "server did not stop cleanly"
    print(f"ok: a client pipelining requests after SIGTERM is closed after {took:.1f} s and the server exits 0")
    proc = None
finally:
    if proc and proc.poll() is None:
        proc.kill()
