#!/usr/bin/env python3
"""badinput.py -- what a hostile or broken peer can send to takhin-server.

ApiVersions v0-v3 (v3 with the flexible header) and its unsupported-version
fallback; unknown API keys and versions, oversized, negative, truncated and
garbage frames, silent and slow clients (nothing at all; one byte and silence; one byte every 0.2 s), 16
clients announcing 100 MiB frames (the server's memory must not follow the
announced size), a corrupt produce batch and a fetch out of range. Each must end in an error response or a closed connection within a
few seconds; none may crash the server or change stored data.

usage: badinput.py SERVER_BINARY SCRATCH_DIR
"""
import os
import random
import signal
import socket
import struct
import sys
import time

from kafka_wire import header as wire_header, request, s16, s32, s64, scratch_dir, st as string, start_server, time_bound

server, scratch = sys.argv[1], scratch_dir(sys.argv[2], "badinput")
db = os.path.join(scratch, "bad.db")
# one glibc arena: the memory check below reads the server's address space
proc, port = start_server(server, db, "--frame-timeout-ms", "1000", "--idle-timeout-ms", "1500",
                          env={"MALLOC_ARENA_MAX": "1"})
time_bound(120)


def main():
    def conn():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        return s


    def header(key, ver, corr, flexible=False):
        return wire_header(key, ver, corr, b"badinput", flexible)


    def expect_closed(s, what, within=5.0, quiet=False):
        s.settimeout(within)
        t0 = time.time()
        try:
            while True:
                if not s.recv(65536):
                    break
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise SystemExit(f"FAIL: {what}: connection still open after {within}s")
        s.close()
        if not quiet:
            print(f"ok: {what}: closed after {time.time() - t0:.2f}s")


    def api_versions(ver):
        s = conn()
        body = header(18, ver, 7, flexible=ver >= 3)
        if ver >= 3:
            body += b"\x09badinput" + b"\x021" + b"\x00"  # compact strings + tags
        r = request(s, body)
        corr, err = struct.unpack(">ih", r[:6])
        assert corr == 7, corr
        if 3 <= ver <= 3:  # a version we do not serve is answered in v0
            n = r[6] - 1  # uvarint < 128
            keys = {struct.unpack(">h", r[7 + 7 * i:9 + 7 * i])[0]: struct.unpack(">hh", r[9 + 7 * i:13 + 7 * i]) for i in range(n)}
        else:
            n = struct.unpack(">i", r[6:10])[0]
            keys = {struct.unpack(">h", r[10 + 6 * i:12 + 6 * i])[0]: struct.unpack(">hh", r[12 + 6 * i:16 + 6 * i]) for i in range(n)}
        s.close()
        return err, keys


    # ApiVersions in every version, and the fallback for one we do not know
    for v in range(4):
        err, keys = api_versions(v)
        assert err == 0 and keys[0] == (0, 8) and keys[1][0] <= 4 and keys[18] == (0, 3), (v, err, keys)
        print(f"ok: ApiVersions v{v}: {len(keys)} APIs")
    err, keys = api_versions(9)
    assert err == 35 and 18 in keys, (err, keys)
    print("ok: ApiVersions v9 answered in v0 with UNSUPPORTED_VERSION (35)")

    # unknown API key, unknown version of a known API
    s = conn(); s.sendall(s32(12) + header(999, 0, 1)[:12]); expect_closed(s, "unknown API key 999")
    s = conn(); s.sendall(s32(len(header(3, 99, 1))) + header(3, 99, 1)); expect_closed(s, "Metadata v99")
    # sizes
    s = conn(); s.sendall(s32(200 * 1024 * 1024)); expect_closed(s, "a 200 MiB frame size")
    s = conn(); s.sendall(s32(-5)); expect_closed(s, "a negative frame size")
    s = conn(); s.sendall(s32(3) + b"abc"); expect_closed(s, "a frame shorter than a header")
    # truncated: announces 100 bytes, sends 10, then nothing (frame timeout 1 s)
    s = conn(); s.sendall(s32(100) + b"x" * 10); expect_closed(s, "a truncated frame", within=5)
    # idle: connects and sends nothing (idle timeout 1.5 s)
    s = conn(); expect_closed(s, "a client that connects and sends nothing", within=10)
    # slow: one byte of the size, then silence
    s = conn(); s.sendall(b"\x00"); expect_closed(s, "a client that sends one byte and stops", within=5)
    # slow: a 100-byte frame at one byte every 0.2 s never completes in the
    # 1 s frame timeout; the server must close it, not wait for the 20 s
    s = conn(); s.sendall(s32(100))
    s.settimeout(0.2)
    t0, sent, closed = time.time(), 0, False
    while not closed and sent < 100:
        try:
            s.sendall(b"x")
            sent += 1
            closed = s.recv(1) == b""
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = True
    assert closed and sent < 100, f"a trickling client sent {sent} of 100 bytes and is still connected"
    s.close()
    print(f"ok: a client sending one byte every 0.2 s: closed after {sent} bytes, {time.time() - t0:.2f}s")

    # per-connection memory: a frame's size alone costs nothing; 16 clients
    # announcing the largest frame (100 MiB) and sending 64 KiB of it grow the
    # server far less than one such frame each would (16 x 100 MiB of address
    # space: glibc is held to one arena, so threads
    # alone do not reserve that much)
    def status_kib(field):
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))
    vm0, rss0 = status_kib("VmSize"), status_kib("VmRSS")
    slow = []
    for _ in range(16):
        s = conn(); s.sendall(s32(100 * 1024 * 1024) + b"\x00" * 65536); slow.append(s)
    time.sleep(0.5)
    vm, rss = status_kib("VmSize") - vm0, status_kib("VmRSS") - rss0
    assert vm < 800 * 1024 and rss < 100 * 1024, f"16 announced 100 MiB frames grew the server by {vm} KiB of address space, {rss} KiB resident"
    s = conn(); s.sendall(s32(100 * 1024 * 1024 + 1)); expect_closed(s, "a frame one byte over 100 MiB")
    for s in slow:
        expect_closed(s, "a 100 MiB frame that stops coming", within=5, quiet=True)
    print(f"ok: 16 clients announcing 100 MiB frames, cut off by the frame timeout, grew the server by "
          f"{vm} KiB of address space, {rss} KiB resident")

    # a topic with one record, through Produce v3 of a real batch would need a
    # CRC-32C; instead check a corrupt batch is refused and stores nothing
    def produce(topic, records, ver=3):
        body = header(0, ver, 11) + s16(-1) + s16(1) + s32(1000) + s32(1) + string(topic) + s32(1) + s32(0) + s32(len(records)) + records
        s = conn()
        r = request(s, body)
        s.close()
        # corr, [topic [partition error base_offset ...]]
        n = struct.unpack(">i", r[4:8])[0]
        tl = struct.unpack(">h", r[8:10])[0]
        off = 10 + tl
        part, err, base = struct.unpack(">ihq", r[off + 4:off + 18])
        return err, base


    def metadata(topics):
        body = header(3, 1, 5) + s32(len(topics)) + b"".join(string(t) for t in topics)
        s = conn(); r = request(s, body); s.close()
        return r


    metadata([b"bad"])  # auto-creates it
    junk = bytearray(random.Random(1).randbytes(120))
    junk[8:12] = s32(108)  # batchLength matches; magic, CRC will not
    junk[16] = 2
    junk[21:23] = b"\x00\x00"  # attributes: no codec, so it is the CRC that fails
    err, base = produce(b"bad", bytes(junk))
    assert err == 2, err  # CORRUPT_MESSAGE
    print("ok: a corrupt batch gets CORRUPT_MESSAGE (2)")
    err, base = produce(b"bad", b"")
    assert err == 2, err
    print("ok: an empty records field gets CORRUPT_MESSAGE (2)")
    # Produce v0-v2 (listed so librdkafka compresses, see handlers.c) carry the
    # old MessageSet: magic 1 is refused with UNSUPPORTED_FOR_MESSAGE_FORMAT (43)
    old = s64(0) + s32(30) + s32(0) + b"\x01" + bytes(25)  # offset, size, crc, magic 1, ...
    body = header(0, 2, 12) + s16(1) + s32(1000) + s32(1) + string(b"bad") + s32(1) + s32(0) + s32(len(old)) + old
    s = conn(); r = request(s, body); s.close()
    tl = struct.unpack(">h", r[8:10])[0]
    part, err, base = struct.unpack(">ihq", r[10 + tl + 4:10 + tl + 18])
    assert err == 43 and base == -1, (err, base)
    print("ok: a Produce v2 with a magic 1 MessageSet gets UNSUPPORTED_FOR_MESSAGE_FORMAT (43)")


    def fetch(topic, offset):
        body = header(1, 4, 9) + s32(-1) + s32(0) + s32(0) + s32(1 << 20) + b"\x00" + s32(1) + string(topic) + s32(1) + s32(0) + s64(offset) + s32(1 << 20)
        s = conn(); r = request(s, body); s.close()
        # corr throttle [topic [partition error hwm lso aborted records]]
        tl = struct.unpack(">h", r[12:14])[0]
        off = 14 + tl + 4
        part, err, hwm = struct.unpack(">ihq", r[off:off + 14])
        return err, hwm


    err, hwm = fetch(b"bad", 5)
    assert err == 1 and hwm == 0, (err, hwm)
    print("ok: fetch beyond the high watermark gets OFFSET_OUT_OF_RANGE (1); the log is still empty")
    err, hwm = fetch(b"nope-missing", 0)
    assert err == 3, err
    print("ok: fetch of an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION (3)")

    # garbage: random well-sized frames, and random bytes
    rng = random.Random(15)
    for i in range(300):
        s = conn()
        if i % 3 == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 200)))
        else:  # a plausible header of a served API, then junk
            key = rng.choice([0, 1, 2, 3, 8, 9, 10, 18, 19, 20])
            body = header(key, rng.randrange(0, 6), i) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100)))
        try:
            s.sendall(s32(len(body)) + body)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            raise SystemExit(f"FAIL: garbage frame {i} left the connection hanging")
        s.close()
    assert proc.poll() is None, "server died"
    print("ok: 300 garbage frames answered or closed; the server lives")
    err, hwm = fetch(b"bad", 0)
    assert err == 0 and hwm == 0, (err, hwm)
    print("ok: nothing was stored by any of it")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, "server did not stop cleanly"
    print("ok: SIGTERM stops the server cleanly")


try:
    main()
finally:
    if proc.poll() is None:
        proc.kill()
