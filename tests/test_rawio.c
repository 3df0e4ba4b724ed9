/*
** test_rawio.c -- whole batches in and out (takhin_produce_batch,
** takhin_fetch_batches), the store side of the Kafka server: batches copied
** out of one topic go into another as sent, get new offsets, read back
** through a cursor; damaged batches are refused and store nothing.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void put_be64(uint8_t *p, int64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

Test(rawio, copy_batches_between_topics) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("rawio_copy"), NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "a", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "b", 1, NULL), TAKHIN_OK);
  takhin_record r[3];
  char kb[3][32], vb[3][101];
  for (int i = 0; i < 3; i++) tu_make_record(&r[i], kb[i], 32, vb[i], 100, i);
  cr_assert_eq(takhin_produce(s, "a", 0, r, 3, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_produce(s, "b", 0, r, 2, NULL), TAKHIN_OK); /* b's next offset is 2 */
  void *buf;
  size_t len;
  takhin_partition_info info;
  cr_assert_eq(takhin_fetch_batches(s, "a", 0, 1, 1 << 20, &buf, &len, &info), TAKHIN_OK, "%s",
               takhin_errmsg());
  cr_assert_eq(info.high_watermark, 3);
  cr_assert_gt(len, 61);
  /* a producer sends baseOffset 0 */
  put_be64(buf, 0);
  int64_t base = -1;
  cr_assert_eq(takhin_produce_batch(s, "b", 0, buf, len, &base), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(base, 2);
  /* stored as sent, but for baseOffset */
  void *back;
  size_t blen;
  cr_assert_eq(takhin_fetch_batches(s, "b", 0, 2, 1 << 20, &back, &blen, NULL), TAKHIN_OK);
  cr_assert_eq(blen, len);
  cr_assert_eq(memcmp((uint8_t *)back + 8, (uint8_t *)buf + 8, len - 8), 0);
  takhin_free(back);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "b", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_seek(c, 2, 0, 0), TAKHIN_OK);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(m.offset, 2 + i);
    cr_assert(tu_value_ok(m.value, m.value_len, 100, i));
  }
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  takhin_cursor_close(c);
  /* a flipped byte fails the CRC and stores nothing */
  ((uint8_t *)buf)[len - 1] ^= 1;
  cr_assert_eq(takhin_produce_batch(s, "b", 0, buf, len, NULL), TAKHIN_ECORRUPT);
  ((uint8_t *)buf)[len - 1] ^= 1;
  cr_assert_eq(takhin_produce_batch(s, "b", 0, buf, len - 1, NULL), TAKHIN_ECORRUPT);
  cr_assert_eq(takhin_produce_batch(s, "b", 0, buf, 10, NULL), TAKHIN_ECORRUPT);
  cr_assert_eq(takhin_produce_batch(s, "nope", 0, buf, len, NULL), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_partition_info_get(s, "b", 0, &info), TAKHIN_OK);
  cr_assert_eq(info.high_watermark, 5);
  /* offsets: at the high watermark nothing, beyond it ERANGE */
  cr_assert_eq(takhin_fetch_batches(s, "b", 0, 5, 100, &back, &blen, &info), TAKHIN_OK);
  cr_assert_eq(blen, 0);
  cr_assert_eq(takhin_fetch_batches(s, "b", 0, 6, 100, &back, &blen, &info), TAKHIN_ERANGE);
  cr_assert_eq(info.high_watermark, 5);
  /* max_bytes smaller than a batch still returns the first whole batch */
  cr_assert_eq(takhin_fetch_batches(s, "b", 0, 0, 1, &back, &blen, NULL), TAKHIN_OK);
  cr_assert_gt(blen, 61);
  takhin_free(back);
  takhin_free(buf);
  takhin_close(s);
}

Test(rawio, batch_check) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("rawio_check"), NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "a", 1, NULL), TAKHIN_OK);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 5};
  cr_assert_eq(takhin_produce(s, "a", 0, &r, 1, NULL), TAKHIN_OK);
  void *buf;
  size_t len;
  cr_assert_eq(takhin_fetch_batches(s, "a", 0, 0, 1 << 20, &buf, &len, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_batch_check(buf, len), TAKHIN_OK);
  cr_assert_eq(takhin_batch_check(buf, len - 1), TAKHIN_ECORRUPT);
  ((uint8_t *)buf)[22] |= 1; /* gzip: a codec the store does not read (and the CRC breaks) */
  cr_assert_neq(takhin_batch_check(buf, len), TAKHIN_OK);
  takhin_free(buf);
  takhin_close(s);
}

/* takhin_fetch_span_get: the bytes takhin_fetch_batches copies, as a view
** into the mapping, and still intact after retention deleted their file. */
Test(rawio, fetch_span_is_fetch_batches_without_the_copy) {
  takhin_store *s;
  char db[4096];
  snprintf(db, sizeof db, "%s", tu_store_path("rawio_span"));
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK);
  const char *cfg[] = {"segment_bytes", "2048", NULL};
  cr_assert_eq(takhin_topic_create(s, "a", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  for (int i = 0; i < 40; i++) {
    takhin_record r[2];
    char kb[2][32], vb[2][201];
    for (int j = 0; j < 2; j++) tu_make_record(&r[j], kb[j], 32, vb[j], 200, 2 * i + j);
    cr_assert_eq(takhin_produce(s, "a", 0, r, 2, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  }
  int64_t offs[] = {0, 1, 5, 40, 79};
  size_t maxes[] = {1, 600, 1 << 20};
  for (size_t i = 0; i < sizeof offs / sizeof *offs; i++)
    for (size_t k = 0; k < sizeof maxes / sizeof *maxes; k++) {
      void *buf;
      size_t len;
      takhin_fetch_span sp;
      takhin_partition_info a, b;
      cr_assert_eq(takhin_fetch_batches(s, "a", 0, offs[i], maxes[k], &buf, &len, &a), TAKHIN_OK);
      cr_assert_eq(takhin_fetch_span_get(s, "a", 0, offs[i], maxes[k], &sp, &b), TAKHIN_OK, "%s",
                   takhin_errmsg());
      cr_assert_eq(sp.len, len, "offset %lld max %zu", (long long)offs[i], maxes[k]);
      cr_assert_gt(len, 61);
      cr_assert_eq(memcmp(sp.data, buf, len), 0);
      cr_assert_eq(a.high_watermark, b.high_watermark);
      takhin_free(buf);
      takhin_fetch_span_release(&sp);
      cr_assert_null(sp.data);
    }
  takhin_fetch_span sp;
  cr_assert_eq(takhin_fetch_span_get(s, "a", 0, 80, 100, &sp, NULL), TAKHIN_OK);
  cr_assert_eq(sp.len, 0, "nothing at the high watermark yet");
  cr_assert_eq(takhin_fetch_span_get(s, "a", 0, 81, 100, &sp, NULL), TAKHIN_ERANGE);
  cr_assert_eq(takhin_fetch_span_get(s, "nope", 0, 0, 100, &sp, NULL), TAKHIN_ENOTFOUND);
  /* a span on the first segment outlives the file */
  void *copy;
  size_t clen;
  cr_assert_eq(takhin_fetch_batches(s, "a", 0, 0, 1 << 20, &copy, &clen, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_fetch_span_get(s, "a", 0, 0, 1 << 20, &sp, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_delete_records(s, "a", 0, 60), TAKHIN_OK, "%s", takhin_errmsg());
  char path[4096];
  tu_segment_path(path, sizeof path, db, "a", 0, 0);
  cr_assert_eq(tu_file_size(path), -1, "the first segment's file is gone");
  cr_assert_eq(sp.len, clen);
  cr_assert_eq(memcmp(sp.data, copy, clen), 0, "the span's bytes are unchanged");
  takhin_fetch_span_release(&sp);
  takhin_fetch_span_release(&sp); /* released twice: a no-op */
  takhin_fetch_span_release(NULL);
  takhin_free(copy);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}
