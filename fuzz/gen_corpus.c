/*
** gen_corpus.c -- writes the seed corpus of fuzz_batch into the folder given
** as its argument (fuzz/corpus/ in the source tree: `cmake --build build-fuzz
** --target fuzz_corpus`). Every seed is made by tk_batch_encode, a few then
** patched (and re-CRC'd) into shapes the encoder never writes but Kafka
** does: LogAppendTime, a control batch, offset gaps left by compaction.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "batch.h"
#include "crc32c.h"

static const char *dir;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void fix_crc(uint8_t *p, size_t total) { put32(p + 17, tk_crc32c(0, p + 21, total - 21)); }

/* Write one seed after checking that every batch in it is valid. */
static void save(const char *name, const tk_buf *b) {
  static ZSTD_DCtx *dctx;
  static tk_buf out;
  if (!dctx) dctx = ZSTD_createDCtx();
  for (size_t pos = 0; pos < b->len;) {
    tk_batch_hdr h;
    if (tk_batch_parse_header(b->p + pos, b->len - pos, &h) != TAKHIN_OK ||
        !tk_batch_crc_ok(b->p + pos, &h) ||
        tk_batch_validate(b->p + pos, &h, dctx, &out, 64 << 20) != TAKHIN_OK) {
      fprintf(stderr, "gen_corpus: %s: batch at %zu is invalid: %s\n", name, pos, takhin_errmsg());
      exit(1);
    }
    pos += (size_t)tk_batch_total(&h);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void encode(tk_buf *b, int64_t base, const takhin_record *r, size_t n, int codec,
                   ZSTD_CCtx *cctx, tk_buf *scratch) {
  if (tk_batch_encode(b, base, r, n, 1700000000000LL, codec, cctx, scratch, NULL) != TAKHIN_OK) {
    fprintf(stderr, "gen_corpus: tk_batch_encode failed: %s\n", takhin_errmsg());
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  tk_buf b = {0}, scratch = {0};

  takhin_header hd[4] = {{"h", 1, "1", 1}, {"h", 1, NULL, 0}, {"", 0, "", 0}, {"trace", 5, "x", 1}};
  takhin_record mixed[6] = {
      {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1000},
      {.value = "null key", .value_len = 8, .timestamp = 900},
      {.key = "tombstone", .key_len = 9, .timestamp = 1100},
      {.key = "", .value = "", .headers = hd, .n_headers = 4, .timestamp = TAKHIN_TIMESTAMP_NOW},
      {.timestamp = 0},
      {.key = "k",
       .key_len = 1,
       .value = "v",
       .value_len = 1,
       .headers = hd,
       .n_headers = 2,
       .timestamp = 1000 + (1LL << 40)},
  };

  b.len = 0;
  encode(&b, 0, mixed, 1, TK_CODEC_NONE, NULL, NULL);
  save("one_record", &b);

  b.len = 0;
  encode(&b, 42, mixed, 6, TK_CODEC_NONE, NULL, NULL);
  save("mixed", &b);

  b.len = 0;
  encode(&b, 42, mixed, 6, TK_CODEC_ZSTD, cctx, &scratch);
  save("mixed_zstd", &b);

  /* Kafka's Java producer leaves the content size out of its frames. */
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  b.len = 0;
  encode(&b, 7, mixed, 6, TK_CODEC_ZSTD, cctx, &scratch);
  save("mixed_zstd_no_size", &b);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);

  /* Small zstd batches that inflate far: 256 KiB (the decoder's buffer has to
  ** grow) and 2 MiB (more than the fuzzer's max_out), the latter both with
  ** and without a declared content size. */
  static uint8_t zeros[2 << 20];
  takhin_record big = {.key = "z", .key_len = 1, .value = zeros, .value_len = 256 << 10};
  b.len = 0;
  encode(&b, 0, &big, 1, TK_CODEC_ZSTD, cctx, &scratch);
  save("zstd_256k", &b);
  big.value_len = sizeof zeros;
  b.len = 0;
  encode(&b, 0, &big, 1, TK_CODEC_ZSTD, cctx, &scratch);
  save("zstd_2m", &b);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  b.len = 0;
  encode(&b, 0, &big, 1, TK_CODEC_ZSTD, cctx, &scratch);
  save("zstd_2m_no_size", &b);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);

  /* A segment: several batches back to back, both codecs. */
  static char kbuf[64][8], vbuf[64][40];
  takhin_record many[64];
  for (int i = 0; i < 64; i++) {
    int kl = snprintf(kbuf[i], sizeof kbuf[i], "k%d", i);
    memset(vbuf[i], 'a' + i % 26, sizeof vbuf[i]);
    many[i] = (takhin_record){.key = kbuf[i],
                              .key_len = (size_t)kl,
                              .value = vbuf[i],
                              .value_len = (size_t)(i % 40),
                              .timestamp = 5000 + i};
  }
  b.len = 0;
  encode(&b, 100, many, 64, TK_CODEC_NONE, NULL, NULL);
  encode(&b, 164, many, 10, TK_CODEC_ZSTD, cctx, &scratch);
  encode(&b, 174, mixed, 3, TK_CODEC_NONE, NULL, NULL);
  save("segment", &b);

  /* LogAppendTime (attributes bit 3) and a control batch (bit 5). */
  b.len = 0;
  encode(&b, 0, mixed, 3, TK_CODEC_NONE, NULL, NULL);
  b.p[22] |= 0x08;
  fix_crc(b.p, b.len);
  save("log_append_time", &b);
  b.p[22] = 0x20;
  fix_crc(b.p, b.len);
  save("control", &b);

  /* Offset gaps: records 0 and 2 of a batch whose lastOffsetDelta is 4, as
  ** compaction leaves it (offsetDelta of the second record patched to 2). */
  b.len = 0;
  takhin_record two[2] = {{.key = "a", .key_len = 1, .value = "1", .value_len = 1},
                          {.key = "b", .key_len = 1, .value = "2", .value_len = 1}};
  encode(&b, 10, two, 2, TK_CODEC_NONE, NULL, NULL);
  put32(b.p + 23, 4);
  /* record 0 is 9 bytes (length 0x10 + 8); record 1's offsetDelta is its 4th byte */
  b.p[61 + 9 + 3] = 2 << 1;
  fix_crc(b.p, b.len);
  save("compacted_gap", &b);

  tk_buf_free(&b);
  tk_buf_free(&scratch);
  ZSTD_freeCCtx(cctx);
  return 0;
}
