"""kafka_wire.py -- what the wire-level tests of takhin-server share: starting
the server on an ephemeral port, a time bound, the big-endian encoders of the
Kafka protocol, a RecordBatch v2 builder (CRC-32C included) and one-request
calls. The tests import it from their own directory (sys.path[0]).
"""
import os
import shutil
import signal
import socket
import struct
import subprocess


def s16(v): return struct.pack(">h", v)
def s32(v): return struct.pack(">i", v)
def s64(v): return struct.pack(">q", v)
def st(b): return s16(len(b)) + b  # a non-null STRING


def rstr(b, at):
    """A STRING at b[at:]: (bytes, the offset after it)."""
    n = struct.unpack(">h", b[at:at + 2])[0]
    return b[at + 2:at + 2 + n], at + 2 + n


def scratch_dir(base, name):
    """A fresh directory name under base."""
    d = os.path.join(base, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def start_server(server, db, *args, stderr=None, env=None):
    """Start takhin-server on 127.0.0.1 with an ephemeral port: (process, port)."""
    proc = subprocess.Popen([server, db, "--listen", "127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, stderr=stderr,
                            env=dict(os.environ, **env) if env else None)
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise SystemExit(f"FAIL: the server did not print its port (exit {proc.wait()})")
    return proc, int(line)


def stop_server(proc, timeout=30):
    """SIGTERM: the server must stop cleanly (exit 0)."""
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"server exit status {rc}"


def time_bound(seconds):
    """Fail the test (SystemExit) if it is still running after seconds."""
    def on_alarm(sig, frame):
        raise SystemExit("FAIL: timed out")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def recv_exact(s, n):
    """n bytes from s; EOFError if the peer closes first."""
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed")
        out += chunk
    return out


def header(key, ver, corr, client=b"test", flexible=False):
    """A request header v1 (v2 with an empty tag buffer when flexible)."""
    return s16(key) + s16(ver) + s32(corr) + st(client) + (b"\x00" if flexible else b"")


def request(s, body):
    """Send one framed request (header included in body) on s; the response frame."""
    s.sendall(s32(len(body)) + body)
    return recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0])


def call(port, key, ver, body, sock=None, corr=42, client=b"test", timeout=60, close=True):
    """One request on a connection of its own (or sock, closed afterwards
    unless close is False); the response after its correlation id, which
    must match."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        r = request(s, header(key, ver, corr, client) + body)
    finally:
        if close:
            s.close()
    assert struct.unpack(">i", r[:4])[0] == corr, "correlation id"
    return r[4:]


CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    CRC_TABLE.append(_c)


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


def produce_v3(port, topic, records, acks=-1, sock=None):
    """Produce v3 of records to partition 0: (error, base offset)."""
    body = s16(-1) + s16(acks) + s32(10000) + s32(1) + st(topic) + s32(1) + s32(0) + s32(len(records)) + records
    r = call(port, 0, 3, body, sock=sock)
    tl = struct.unpack(">h", r[4:6])[0]
    part, err, base = struct.unpack(">ihq", r[6 + tl + 4:6 + tl + 18])
    return err, base


def fetch_v4(port, topic, offset, max_wait=0, min_bytes=0, sock=None):
    """Fetch v4 of partition 0: (error, high watermark, records bytes)."""
    body = s32(-1) + s32(max_wait) + s32(min_bytes) + s32(1 << 20) + b"\x00" + s32(1) + st(topic) + s32(1) + s32(0) + s64(offset) + s32(1 << 20)
    r = call(port, 1, 4, body, sock=sock)
    tl = struct.unpack(">h", r[8:10])[0]
    off = 10 + tl + 4
    part, err, hwm, lso = struct.unpack(">ihqq", r[off:off + 22])
    off += 22 + 4  # aborted transactions: [] (v4: count only)
    n = struct.unpack(">i", r[off:off + 4])[0]
    return err, hwm, r[off + 4:off + 4 + max(n, 0)]
