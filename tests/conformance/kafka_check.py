#!/usr/bin/python3
"""kafka_check.py -- cross-check takhin's segment bytes against kafka-python,
an independent implementation of Kafka's RecordBatch v2.

  kafka_check.py decode FILE EXPECT.json
      Read FILE (a segment: concatenated batches) with kafka-python's
      MemoryRecords, CRC-check every batch (validate_crc) and compare every
      batch and record with EXPECT.json. Also checks the header fields takhin
      always writes (leader epoch 0, producer id/epoch/sequence -1, CreateTime,
      not transactional, not control) and that no bytes trail the last batch.

  kafka_check.py encode OUT_FILE CODEC
      Write batches built by kafka-python's MemoryRecordsBuilder (magic 2,
      CODEC none or zstd) to OUT_FILE, and describe them in OUT_FILE.json. Base
      offsets are then set as a broker would (the CRC does not cover them).
      One batch has gaps in its offsets, as compaction leaves them; in zstd mode
      some frames omit the content size, as Kafka's Java producer writes them.

JSON (both modes; keys in this order, bytes as lowercase hex, null for null):
  {"batches": [{"base_offset": N, "codec": N, "last_offset_delta": N,
                "base_timestamp": N, "max_timestamp": N,
                "records": [{"offset": N, "timestamp": N, "key": HEX|null,
                             "value": HEX|null,
                             "headers": [{"key": HEX, "value": HEX|null}]}]}]}

  kafka_check.py records FILE...
      Read segment files as a Kafka client wrote them (through takhin-server:
      any producer id, codec and timestamps) with kafka-python: CRC-check every
      batch, check that no bytes trail the last one, that partitionLeaderEpoch
      is 0 and that each batch's offsets follow the previous batch's, then
      print every record as "KEY|VALUE" (UTF-8; a null key or value prints
      empty), and the codecs seen on stderr.

  kafka_check.py codecs FILE
      The codec of every batch in FILE, from the headers alone (no
      decompression: for codecs whose Python modules are missing), printed
      as "codecs [..]" like records does.

Exit status: 0 match, 1 mismatch or bad data, 2 usage, 3 missing modules.
Run it with Debian's /usr/bin/python3, which has python3-kafka and
python3-zstandard (a pyenv or venv python usually has neither).
"""
import json
import struct
import sys

try:
    import zstandard
    from kafka.record import default_records
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
except ImportError as e:
    sys.stderr.write(
        "kafka_check.py: %s: install python3-kafka python3-zstandard "
        "(apt-get install python3-kafka python3-zstandard) and run with "
        "/usr/bin/python3\n" % e)
    sys.exit(3)

CODECS = {"none": DefaultRecordBatch.CODEC_NONE, "zstd": DefaultRecordBatch.CODEC_ZSTD}
HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte RecordBatch v2 header


class Mismatch(Exception):
    pass


def hexor(b):
    return None if b is None else bytes(b).hex()


def unhex(s):
    return None if s is None else bytes.fromhex(s)


def describe_record(offset, timestamp, key, value, headers):
    return {
        "offset": offset,
        "timestamp": timestamp,
        "key": hexor(key),
        "value": hexor(value),
        "headers": [{"key": k.encode("utf-8").hex(), "value": hexor(v)} for k, v in headers],
    }


def read_batches(data):
    """Every batch of data as (header tuple, raw bytes, [record dicts])."""
    mr = MemoryRecords(data)
    out = []
    pos = 0
    while mr.has_next():
        batch = mr.next_batch()
        if not isinstance(batch, DefaultRecordBatch):
            raise Mismatch("batch %d: magic %d, expected 2" % (len(out), batch.magic))
        hdr = HEADER.unpack_from(data, pos)
        raw = data[pos:pos + 12 + hdr[1]]
        pos += len(raw)
        if not batch.validate_crc():
            raise Mismatch("batch %d at byte %d: CRC mismatch" % (len(out), pos - len(raw)))
        recs = [describe_record(r.offset, r.timestamp, r.key, r.value, r.headers)
                for r in batch]
        out.append((hdr, raw, recs))
    if mr.valid_bytes() != len(data):
        raise Mismatch("%d bytes after the last complete batch" % (len(data) - mr.valid_bytes()))
    return out


def describe_batches(batches):
    return {"batches": [{
        "base_offset": hdr[0],
        "codec": hdr[5] & DefaultRecordBatch.CODEC_MASK,
        "last_offset_delta": hdr[6],
        "base_timestamp": hdr[7],
        "max_timestamp": hdr[8],
        "records": recs,
    } for hdr, _, recs in batches]}


def compare(got, want, where):
    if isinstance(want, dict):
        if not isinstance(got, dict) or list(got) != list(want):
            raise Mismatch("%s: fields %r, expected %r" % (where, got, want))
        for k in want:
            compare(got[k], want[k], "%s.%s" % (where, k))
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise Mismatch("%s: %d items, expected %d" % (
                where, len(got) if isinstance(got, list) else -1, len(want)))
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, "%s[%d]" % (where, i))
    elif got != want or type(got) != type(want):
        raise Mismatch("%s: %r, expected %r" % (where, got, want))


def check_takhin_constants(batches):
    for i, (hdr, _, _) in enumerate(batches):
        _, _, epoch, _, _, attrs, _, _, _, pid, pepoch, seq, _ = hdr
        if epoch != 0 or pid != -1 or pepoch != -1 or seq != -1:
            raise Mismatch("batch %d: leader epoch %d, producer %d/%d/%d; takhin writes 0, -1/-1/-1"
                           % (i, epoch, pid, pepoch, seq))
        if attrs & ~DefaultRecordBatch.CODEC_MASK:
            raise Mismatch("batch %d: attributes 0x%x: only codec bits expected" % (i, attrs))


def decode(path, expect_path):
    with open(path, "rb") as f:
        data = f.read()
    with open(expect_path) as f:
        want = json.load(f)
    batches = read_batches(data)
    check_takhin_constants(batches)
    compare(describe_batches(batches), want, "file")
    print("kafka_check: %s: %d batches, %d records match" % (
        path, len(batches), sum(len(r) for _, _, r in batches)))


# ---- encode --------------------------------------------------------------

T0 = 1700000000000
COMPRESSIBLE = b"takhin stores kafka batches; " * 40


def batch_specs():
    """(offsets or None for dense, [(timestamp, key, value, headers)])."""
    first = [
        (T0, b"k0", b"v0", []),
        (T0 + 1, None, b"null key", []),
        (T0 + 2, b"null value", None, []),
        (T0 + 3, None, None, []),
        (T0 + 4, b"", b"", []),
        (T0 + 5, b"headers", COMPRESSIBLE,
         [("h", b"1"), ("h", b"2"), ("nul", None), ("", b""), ("\u043a\u043b\u044e\u0447", b"\x00\xff")]),
        (T0 - 5000, b"earlier", b"negative timestamp delta", []),
        (T0 + (1 << 40), b"later", b"six-byte timestamp delta", []),
        (T0 + 8, b"binary", bytes(range(256)), [("b", bytes(range(255, -1, -1)))]),
        (T0 + 9, b"big", COMPRESSIBLE * 20, []),
    ]
    second = [(T0 + 100 - i, b"k%d" % i, COMPRESSIBLE + b"%d" % i, [("n", b"%d" % i)])
              for i in range(3)]
    sparse = [(T0 + 200 + i, b"s%d" % i, COMPRESSIBLE, []) for i in range(3)]
    single = [(0, b"epoch zero", COMPRESSIBLE, [])]
    return [(None, first), (None, second), ([0, 2, 5], sparse), (None, single)]


def build(codec, offsets, records):
    if offsets is None:
        b = MemoryRecordsBuilder(magic=2, compression_type=codec, batch_size=1 << 20)
        for ts, k, v, h in records:
            if b.append(ts, k, v, h) is None:
                raise Mismatch("MemoryRecordsBuilder refused a record")
        b.close()
        return bytearray(b.buffer())
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for off, (ts, k, v, h) in zip(offsets, records):
        b.append(off, ts, k, v, h)
    return bytearray(b.build())


def encode(path, codec_name):
    codec = CODECS[codec_name]
    plain_zstd = default_records.zstd_encode
    out = bytearray()
    base = 0
    for i, (offsets, records) in enumerate(batch_specs()):
        if codec_name == "zstd" and i % 2:
            # Like Kafka's Java producer: a frame that does not state its size.
            default_records.zstd_encode = \
                lambda d: zstandard.ZstdCompressor(write_content_size=False).compress(d)
        try:
            raw = build(codec, offsets, records)
        finally:
            default_records.zstd_encode = plain_zstd
        if (raw[22] & DefaultRecordBatch.CODEC_MASK) != codec:
            raise Mismatch("batch %d came out with codec %d, not %d (incompressible?)"
                           % (i, raw[22] & 7, codec))
        struct.pack_into(">q", raw, 0, base)  # as a broker assigns offsets
        last_delta = struct.unpack_from(">i", raw, 23)[0]
        base += last_delta + 1
        out += raw
    with open(path, "wb") as f:
        f.write(out)
    batches = read_batches(bytes(out))
    with open(path + ".json", "w") as f:
        json.dump(describe_batches(batches), f, indent=1)
        f.write("\n")
    # The description must be exactly what a reader finds.
    compare(describe_batches(read_batches(open(path, "rb").read())),
            json.load(open(path + ".json")), "self-check")
    print("kafka_check: wrote %d %s batches to %s" % (len(batches), codec_name, path))


def records(paths):
    codecs = set()
    nxt = None
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        for i, (hdr, _, recs) in enumerate(read_batches(data)):
            base, epoch, codec, last = hdr[0], hdr[2], hdr[5] & DefaultRecordBatch.CODEC_MASK, hdr[6]
            if epoch != 0:
                raise Mismatch("%s batch %d: partitionLeaderEpoch %d, takhin writes 0" % (path, i, epoch))
            if nxt is not None and base != nxt:
                raise Mismatch("%s batch %d: baseOffset %d, expected %d" % (path, i, base, nxt))
            nxt = base + last + 1
            codecs.add(codec)
            for r in recs:
                k, v = unhex(r["key"]), unhex(r["value"])
                sys.stdout.write("%s|%s\n" % ((k or b"").decode("utf-8"), (v or b"").decode("utf-8")))
    sys.stderr.write("kafka_check: codecs %s\n" % sorted(codecs))


def codecs(path):
    with open(path, "rb") as f:
        data = f.read()
    seen, pos = set(), 0
    while pos + HEADER.size <= len(data):
        hdr = HEADER.unpack_from(data, pos)
        seen.add(hdr[5] & DefaultRecordBatch.CODEC_MASK)
        pos += 12 + hdr[1]
    if pos != len(data):
        raise Mismatch("%s: %d bytes after the last complete batch" % (path, len(data) - pos))
    print("codecs %s" % sorted(seen))


def main(argv):
    if len(argv) == 3 and argv[1] == "codecs":
        codecs(argv[2])
    elif len(argv) >= 3 and argv[1] == "records":
        records(argv[2:])
    elif len(argv) == 4 and argv[1] == "decode":
        decode(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "encode" and argv[3] in CODECS:
        encode(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Mismatch as e:
        sys.stderr.write("kafka_check: MISMATCH: %s\n" % e)
        sys.exit(1)
    except Exception as e:  # kafka-python's CorruptRecordException and friends
        sys.stderr.write("kafka_check: FAILED: %s: %s\n" % (type(e).__name__, e))
        sys.exit(1)
