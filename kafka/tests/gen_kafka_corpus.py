#!/usr/bin/env python3
"""gen_kafka_corpus.py -- seed request frames for fuzz/fuzz_kafka.c: one
well-formed request of each API and version takhin-server serves (bodies as
librdkafka sends them, minimal). usage: gen_kafka_corpus.py OUT_DIR"""
import os
import struct
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
s16 = lambda v: struct.pack(">h", v)
s32 = lambda v: struct.pack(">i", v)
s64 = lambda v: struct.pack(">q", v)
st = lambda b: s16(len(b)) + b


def hdr(key, ver, flexible=False):
    return s16(key) + s16(ver) + s32(1) + st(b"seed") + (b"\x00" if flexible else b"")


seeds = {}
for v in range(4):
    seeds[f"apiversions_v{v}"] = hdr(18, v, v >= 3) + (b"\x05seed\x021\x00" if v >= 3 else b"")
for v in (0, 1, 4, 8):
    body = s32(1) + st(b"t")
    if v >= 4: body += b"\x01"
    if v >= 8: body += b"\x00\x00"
    seeds[f"metadata_v{v}"] = hdr(3, v) + body
seeds["metadata_all_v1"] = hdr(3, 1) + s32(-1)
batch = s64(0) + s32(49 + 12) + s32(-1) + b"\x02" + s32(0) + s16(0) + s32(0) + s64(0) * 2 + s64(-1) + s16(-1) + s32(-1) + s32(1) + b"\x18\x00\x00\x00\x02k\x02v\x00" + b"\x00" * 3
seeds["produce_v3"] = hdr(0, 3) + s16(-1) + s16(1) + s32(1000) + s32(1) + st(b"t") + s32(1) + s32(0) + s32(len(batch)) + batch
for v in (4, 7, 11):
    body = s32(-1) + s32(100) + s32(1) + s32(1 << 20) + b"\x00"
    if v >= 7: body += s32(0) + s32(-1)
    part = s32(0) + (s32(-1) if v >= 9 else b"") + s64(0) + (s64(-1) if v >= 5 else b"") + s32(1 << 20)
    body += s32(1) + st(b"t") + s32(1) + part
    if v >= 7: body += s32(0)
    if v >= 11: body += st(b"")
    seeds[f"fetch_v{v}"] = hdr(1, v) + body
for v in (1, 5):
    body = s32(-1) + (b"\x00" if v >= 2 else b"") + s32(1) + st(b"t") + s32(1) + s32(0) + (s32(-1) if v >= 4 else b"") + s64(-2)
    seeds[f"listoffsets_v{v}"] = hdr(2, v) + body
seeds["findcoordinator_v2"] = hdr(10, 2) + st(b"g") + b"\x00"
seeds["offsetcommit_v7"] = hdr(8, 7) + st(b"g") + s32(-1) + st(b"") + s16(-1) + s32(1) + st(b"t") + s32(1) + s32(0) + s64(1) + s32(-1) + st(b"m")
seeds["offsetfetch_v5"] = hdr(9, 5) + st(b"g") + s32(1) + st(b"t") + s32(1) + s32(0)
seeds["offsetfetch_all_v5"] = hdr(9, 5) + st(b"g") + s32(-1)
seeds["createtopics_v4"] = hdr(19, 4) + s32(1) + st(b"n") + s32(2) + s16(1) + s32(0) + s32(1) + st(b"retention.ms") + st(b"1000") + s32(1000) + b"\x00"
seeds["deletetopics_v3"] = hdr(20, 3) + s32(1) + st(b"t") + s32(1000)
for name, body in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)
print(f"{len(seeds)} seeds in {out}")
