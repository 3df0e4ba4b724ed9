/*
** test_rawio.c -- whole batches in and out (takhin_produce_batch,
** takhin_fetch_batches), the store side of the Kafka server: batches copied
** out of one topic go into another as sent, get new offsets, read back
** through a cursor; damaged batches are refused and store nothing.
*/
#include <criterion/criterion.h>
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
  cr_assert_eq(takhin_fetch_batches(s, "a", 0, 1, 1 << 20, &buf, &len, &info), TAKHIN_OK, "%s", takhin_errmsg());
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
