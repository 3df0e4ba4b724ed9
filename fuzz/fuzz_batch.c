/*
** fuzz_batch.c -- libFuzzer target for the RecordBatch v2 decoder (store/batch.c).
**
** The input is treated as a segment file: batches are taken one after the
** other with tk_batch_parse_header for as long as complete ones follow. Each
** one gets tk_batch_crc_ok and then tk_batch_validate whatever the CRC said
** (a fuzzer rarely gets a CRC right, and the decoder must be safe either
** way), and its records and headers are walked by hand, touching every byte
** a view covers so ASan checks the bounds. Properties checked with abort():
**   - validate accepts a batch exactly when the hand walk decodes all of it;
**   - tk_record_skip finds the same offset and end as every record decoded;
**   - every decoded field is consistent (offsets in range, NULL views have
**     length 0, headers fill headers_raw exactly);
**   - a valid batch with dense offsets re-encodes through tk_batch_encode
**     (alternately plain and zstd) into a batch that decodes to the same
**     records.
** Build and run: see fuzz/CMakeLists.txt.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "batch.h"
#include "fuzz.h"

#define FUZZ_MAX_OUT (1u << 20)
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) abort();                                                                          \
  } while (0)

static ZSTD_DCtx *dctx;
static ZSTD_CCtx *cctx;
static tk_buf scratch, scratch2, reenc, zscratch;
static takhin_record *recs;
static takhin_message *msgs;
static size_t *hstart;
static size_t recs_cap;
static takhin_header *hdrs;
static size_t hdrs_len, hdrs_cap;
static volatile uint8_t sink;

static void touch(const void *p, size_t n) {
  const uint8_t *b = p;
  uint8_t s = 0;
  for (size_t i = 0; i < n; i++) s ^= b[i];
  sink ^= s;
}

static int same(const void *a, size_t an, const void *b, size_t bn) {
  if (!a || !b) return a == b && an == 0 && bn == 0;
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Walk the headers of m, touching them; collect them into hdrs if keep.
** Returns 0 when they decode and fill headers_raw exactly. */
static int walk_headers(const takhin_message *m, int keep) {
  const uint8_t *hp = m->headers_raw, *he = hp + m->headers_raw_len;
  for (size_t k = 0; k < m->n_headers; k++) {
    takhin_header hd;
    if (tk_header_next(&hp, he, &hd)) return -1;
    CHECK(hd.key && (hd.value || hd.value_len == 0));
    touch(hd.key, hd.key_len);
    if (hd.value) touch(hd.value, hd.value_len);
    if (keep) {
      if (hdrs_len == hdrs_cap) {
        hdrs_cap = hdrs_cap ? 2 * hdrs_cap : 64;
        hdrs = realloc(hdrs, hdrs_cap * sizeof *hdrs);
        CHECK(hdrs);
      }
      hdrs[hdrs_len++] = hd;
    }
  }
  return hp == he ? 0 : -1;
}

/* Decode every record of the batch at p by hand. Returns 0 when the whole
** records area decodes, with the messages left in msgs[0..count). */
static int walk(const uint8_t *p, const tk_batch_hdr *h, tk_buf *scr) {
  const uint8_t *q;
  size_t len;
  if (tk_batch_records(p, h, dctx, scr, FUZZ_MAX_OUT, &q, &len)) return -1;
  touch(q, len);
  const uint8_t *end = q + len;
  int64_t prev = -1;
  for (int32_t i = 0; i < h->records_count; i++) {
    /* Grown as records decode: recordsCount itself may be any lie. */
    if ((size_t)i == recs_cap) {
      recs_cap = recs_cap ? 2 * recs_cap : 64;
      recs = realloc(recs, recs_cap * sizeof *recs);
      msgs = realloc(msgs, recs_cap * sizeof *msgs);
      hstart = realloc(hstart, recs_cap * sizeof *hstart);
      CHECK(recs && msgs && hstart);
    }
    takhin_message *m = &msgs[i];
    const uint8_t *sq = q; /* the offset-only walk must agree where decode succeeds */
    int64_t soff = -1;
    int skipped = tk_record_skip(&sq, end, h, &soff) == TAKHIN_OK;
    if (tk_record_decode(&q, end, h, m)) return -1;
    CHECK(skipped && sq == q && soff == m->offset);
    CHECK(q <= end);
    CHECK(m->offset >= h->base_offset && m->offset <= h->base_offset + h->last_offset_delta);
    CHECK(m->key || m->key_len == 0);
    CHECK(m->value || m->value_len == 0);
    if (m->key) touch(m->key, m->key_len);
    if (m->value) touch(m->value, m->value_len);
    if (walk_headers(m, 0)) return -1;
    if (m->offset - h->base_offset <= prev) return -1;
    prev = m->offset - h->base_offset;
  }
  return q == end ? 0 : -1;
}

/* Re-encode a valid batch's records and check they decode to the same. */
static void reencode(const tk_batch_hdr *h, int codec) {
  size_t n = (size_t)h->records_count;
  if (n == 0 || (h->attributes & 0x08)) return; /* LogAppendTime rewrites timestamps */
  hdrs_len = 0;
  for (size_t i = 0; i < n; i++) {
    const takhin_message *m = &msgs[i];
    if (m->offset != h->base_offset + (int64_t)i || m->timestamp < 0) return;
    hstart[i] = hdrs_len;
    CHECK(walk_headers(m, 1) == 0);
    recs[i] = (takhin_record){.key = m->key,
                              .key_len = m->key_len,
                              .value = m->value,
                              .value_len = m->value_len,
                              .n_headers = m->n_headers,
                              .timestamp = m->timestamp};
  }
  for (size_t i = 0; i < n; i++) /* hdrs has stopped moving */
    recs[i].headers = recs[i].n_headers ? hdrs + hstart[i] : NULL;

  reenc.len = 0;
  int64_t max_ts;
  CHECK(tk_batch_encode(&reenc, h->base_offset, recs, n, 0, codec, cctx, &zscratch, &max_ts) ==
        TAKHIN_OK);
  tk_batch_hdr h2;
  CHECK(tk_batch_parse_header(reenc.p, reenc.len, &h2) == TAKHIN_OK);
  CHECK(tk_batch_total(&h2) == (int64_t)reenc.len);
  CHECK(tk_batch_crc_ok(reenc.p, &h2));
  /* Deltas from a new base timestamp may take more bytes than the original's. */
  const size_t max_out = 16 * FUZZ_MAX_OUT;
  CHECK(tk_batch_validate(reenc.p, &h2, dctx, &scratch2, max_out) == TAKHIN_OK);
  const uint8_t *q;
  size_t len;
  CHECK(tk_batch_records(reenc.p, &h2, dctx, &scratch2, max_out, &q, &len) == TAKHIN_OK);
  const uint8_t *end = q + len;
  for (size_t i = 0; i < n; i++) {
    takhin_message m2;
    CHECK(tk_record_decode(&q, end, &h2, &m2) == TAKHIN_OK);
    const takhin_message *m = &msgs[i];
    CHECK(m2.offset == m->offset && m2.timestamp == m->timestamp);
    CHECK(same(m2.key, m2.key_len, m->key, m->key_len));
    CHECK(same(m2.value, m2.value_len, m->value, m->value_len));
    CHECK(m2.n_headers == m->n_headers);
    /* Header bytes are re-encoded canonically, so they may be shorter. */
    CHECK(m2.headers_raw_len <= m->headers_raw_len);
    const uint8_t *hp = m2.headers_raw, *he = hp + m2.headers_raw_len;
    for (size_t k = 0; k < m2.n_headers; k++) {
      takhin_header hd;
      const takhin_header *want = &recs[i].headers[k];
      CHECK(tk_header_next(&hp, he, &hd) == TAKHIN_OK);
      CHECK(same(hd.key, hd.key_len, want->key, want->key_len));
      CHECK(same(hd.value, hd.value_len, want->value, want->value_len));
    }
    CHECK(hp == he);
    CHECK(max_ts >= m2.timestamp);
  }
  CHECK(q == end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dctx) {
    dctx = ZSTD_createDCtx();
    cctx = ZSTD_createCCtx();
    CHECK(dctx && cctx);
  }
  size_t pos = 0;
  unsigned nth = 0;
  while (pos < size) {
    tk_batch_hdr h;
    if (tk_batch_parse_header(data + pos, size - pos, &h) != TAKHIN_OK) break;
    int64_t total = tk_batch_total(&h);
    if (total > (int64_t)(size - pos)) break;
    const uint8_t *p = data + pos;
    sink ^= (uint8_t)tk_batch_crc_ok(p, &h);
    int valid = tk_batch_validate(p, &h, dctx, &scratch, FUZZ_MAX_OUT) == TAKHIN_OK;
    int walked = walk(p, &h, &scratch) == 0;
    CHECK(valid == walked);
    if (valid) reencode(&h, nth++ % 2 ? TK_CODEC_ZSTD : TK_CODEC_NONE);
    pos += (size_t)total;
  }
  return 0;
}
