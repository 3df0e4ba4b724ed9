/*
** test_codecs.c -- batches compressed with gzip, snappy (raw and Java's
** xerial framing) and lz4, as Kafka clients send them: accepted by
** takhin_produce_batch, read by cursors, and compacted (survivors of a
** partly compacted batch are kept uncompressed). Damaged compressed data is
** refused and stores nothing.
*/
#include <criterion/criterion.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "crc32c.h"
#include "testutil.h"

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Compress the records area of uncompressed batch b (len bytes) with codec;
** returns a malloc'd batch and its length. */
static uint8_t *compress_batch(const uint8_t *b, size_t len, int codec, int xerial,
                               size_t *out_len) {
  const uint8_t *area = b + 61;
  size_t alen = len - 61, cap = alen * 2 + 1024, n = 0;
  uint8_t *o = malloc(61 + cap);
  uint8_t *z = o + 61;
  if (codec == 1) {
    z_stream zs = {0};
    cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)area, zs.avail_in = (uInt)alen, zs.next_out = z, zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    n = zs.total_out;
    deflateEnd(&zs);
  } else if (codec == 2) {
    size_t at = 0;
    if (xerial) {
      memcpy(z, "\x82SNAPPY\0", 8);
      put32(z + 8, 1), put32(z + 12, 1);
      at = 20; /* header, then one chunk: length after it */
    }
    size_t zl = cap - at;
    cr_assert_eq(snappy_compress((const char *)area, alen, (char *)z + at, &zl), SNAPPY_OK);
    if (xerial) put32(z + 16, (uint32_t)zl);
    n = at + zl;
  } else {
    n = LZ4F_compressFrame(z, cap, area, alen, NULL);
    cr_assert(!LZ4F_isError(n));
  }
  memcpy(o, b, 61);
  put32(o + 8, (uint32_t)(61 + n - 12));
  o[22] = (uint8_t)((o[22] & ~7) | codec);
  put32(o + 17, tk_crc32c(0, o + 21, 61 + n - 21));
  *out_len = 61 + n;
  return o;
}

Test(codecs, produced_compressed_batches_read_and_compact) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("codecs"), NULL, &s), TAKHIN_OK);
  const char *cfg[] = {"cleanup_policy", "compact", "segment_bytes", "14", NULL};
  cr_assert_eq(takhin_topic_create(s, "src", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "c", 1, cfg), TAKHIN_OK);
  /* a template batch: keys k0..k3, values long enough to compress */
  takhin_record r[4];
  char kb[4][32], vb[4][201];
  for (int i = 0; i < 4; i++) tu_make_record(&r[i], kb[i], 32, vb[i], 200, i);
  cr_assert_eq(takhin_produce(s, "src", 0, r, 4, NULL), TAKHIN_OK);
  void *plain;
  size_t plen;
  cr_assert_eq(takhin_fetch_batches(s, "src", 0, 0, 1 << 20, &plain, &plen, NULL), TAKHIN_OK);
  struct {
    int codec, xerial;
  } kinds[] = {{1, 0}, {2, 0}, {2, 1}, {3, 0}};
  int64_t base = 0;
  for (size_t k = 0; k < 4; k++) {
    size_t zlen;
    uint8_t *zb = compress_batch(plain, plen, kinds[k].codec, kinds[k].xerial, &zlen);
    cr_assert_eq(takhin_batch_check(zb, zlen), TAKHIN_OK, "%s", takhin_errmsg());
    /* damaged compressed bytes (CRC fixed up) are refused */
    uint8_t *bad = malloc(zlen);
    memcpy(bad, zb, zlen);
    for (size_t i = 61 + 4; i < zlen; i += 7) bad[i] ^= 0x5a;
    put32(bad + 17, tk_crc32c(0, bad + 21, zlen - 21));
    cr_assert_neq(takhin_produce_batch(s, "c", 0, bad, zlen, NULL), TAKHIN_OK, "codec %d",
                  kinds[k].codec);
    free(bad);
    int64_t at = -1;
    cr_assert_eq(takhin_produce_batch(s, "c", 0, zb, zlen, &at), TAKHIN_OK, "codec %d: %s",
                 kinds[k].codec, takhin_errmsg());
    cr_assert_eq(at, base);
    base += 4;
    free(zb);
  }
  takhin_free(plain);
  /* read back: 4 batches of the same 4 records */
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "c", 0, &c), TAKHIN_OK);
  for (int i = 0; i < 16; i++) {
    cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK, "%d: %s", i, takhin_errmsg());
    cr_assert_eq(m.offset, i);
    cr_assert(tu_value_ok(m.value, m.value_len, 200, i % 4));
  }
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  /* a newer k1 supersedes the older ones: compaction rewrites the
  ** compressed batches without their k1 (each segment holds one batch) */
  takhin_record nr = r[1];
  nr.value = "new", nr.value_len = 3;
  cr_assert_eq(takhin_produce(s, "c", 0, &nr, 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_produce(s, "c", 0, &r[3], 1, NULL),
               TAKHIN_OK); /* rolls the segment holding new k1 */
  takhin_compaction_result res;
  cr_assert_eq(takhin_compact(s, "c", 0, 1, &res), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(res.records_removed, 0);
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK);
  int seen_k1 = 0, n = 0;
  while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
    n++;
    if (m.key_len == 2 && !memcmp(m.key, "k1", 2)) {
      seen_k1++;
      cr_assert_eq(m.value_len, 3, "an old k1 survived at %lld", (long long)m.offset);
    }
  }
  cr_assert_eq(seen_k1, 1);
  cr_assert_lt(n, 18);
  takhin_cursor_close(c);
  takhin_close(s);
}
