/*
** test_log.c -- the partition log through the public API: produce and fetch,
** dense offsets, null keys and values, headers, zero-copy cursor reads with
** record and byte limits, reopen, segment roll, ListOffsets by time.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static void create(takhin_store *s, const char *topic, int parts, const char *const *cfg) {
  int rc = takhin_topic_create(s, topic, parts, cfg);
  cr_assert_eq(rc, TAKHIN_OK, "create %s: %s", topic, takhin_errmsg());
}

/* Read every record from the start and check keys, values and dense offsets. */
static void verify_all(takhin_store *s, const char *topic, int part, long n, size_t vlen) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, part, &c), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_message m;
  long i = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    char key[32];
    int kl = snprintf(key, sizeof key, "k%ld", i);
    cr_assert_eq(m.offset, i);
    cr_assert_eq(m.key_len, (size_t)kl);
    cr_assert(memcmp(m.key, key, (size_t)kl) == 0);
    cr_assert(tu_value_ok(m.value, m.value_len, vlen, i), "value of offset %ld", i);
    cr_assert_eq(m.timestamp, 1700000000000LL + i);
    i++;
  }
  cr_assert_eq(rc, TAKHIN_END, "cursor ended with %d: %s", rc, takhin_errmsg());
  cr_assert_eq(i, n, "read %ld records, want %ld", i, n);
  takhin_cursor_close(c);
}

Test(log, produce_fetch_dense_offsets) {
  const char *db = tu_store_path("log_basic");
  takhin_store *s = tu_open_ok(db);
  create(s, "orders", 2, NULL);
  tu_produce_n(s, "orders", 0, 0, 1000, 100, 1);
  tu_produce_n(s, "orders", 0, 1000, 1000, 100, 100);
  tu_produce_n(s, "orders", 1, 0, 10, 1000, 3);
  verify_all(s, "orders", 0, 2000, 100);
  verify_all(s, "orders", 1, 10, 1000);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "orders", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 2000);
  cr_assert_eq(pi.log_start_offset, 0);
  cr_assert_eq(pi.segments, 1);
  char seg[4096];
  tu_segment_path(seg, sizeof seg, db, "orders", 0, 0);
  cr_assert_eq(pi.size_bytes, tu_file_size(seg), "size_bytes matches the file");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

Test(log, reopen_keeps_everything) {
  const char *db = tu_store_path("log_reopen");
  takhin_store *s = tu_open_ok(db);
  create(s, "t", 1, (const char *const[]){"compression", "zstd", NULL});
  tu_produce_n(s, "t", 0, 0, 5000, 200, 50);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  verify_all(s, "t", 0, 5000, 200);
  tu_produce_n(s, "t", 0, 5000, 10, 200, 10);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 5010);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.bytes_truncated, 0, "a clean close leaves nothing to truncate");
  takhin_close(s);
}

Test(log, null_key_null_value_empty_and_headers) {
  takhin_store *s = tu_open_ok(tu_store_path("log_nulls"));
  create(s, "t", 1, NULL);
  takhin_header hs[3] = {{"trace", 5, "abc", 3}, {"trace", 5, "def", 3}, {"empty", 5, NULL, 0}};
  takhin_record r[3] = {
      {.key = NULL, .value = "v", .value_len = 1, .timestamp = 5},
      {.key = "k", .key_len = 1, .value = NULL, .timestamp = 6, .headers = hs, .n_headers = 3},
      {.key = "", .key_len = 0, .value = "", .value_len = 0, .timestamp = 7},
  };
  int64_t first;
  cr_assert_eq(takhin_produce(s, "t", 0, r, 3, &first), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(first, 0);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message m;
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_null(m.key);
  cr_assert_eq(m.value_len, 1);
  cr_assert_eq(m.n_headers, 0);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_null(m.value, "null value (tombstone) reads back as NULL");
  cr_assert_eq(m.n_headers, 3);
  takhin_header h;
  cr_assert_eq(takhin_message_header(&m, 1, &h), TAKHIN_OK);
  cr_assert_eq(h.key_len, 5);
  cr_assert(memcmp(h.key, "trace", 5) == 0);
  cr_assert(memcmp(h.value, "def", 3) == 0, "duplicate header keys keep their order");
  cr_assert_eq(takhin_message_header(&m, 2, &h), TAKHIN_OK);
  cr_assert_null(h.value);
  cr_assert_eq(takhin_message_header(&m, 3, &h), TAKHIN_EINVAL);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_not_null(m.key, "empty key is not null");
  cr_assert_eq(m.key_len, 0);
  cr_assert_not_null(m.value);
  cr_assert_eq(m.timestamp, 7);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  takhin_cursor_close(c);
  takhin_close(s);
}

Test(log, cursor_limits_and_get) {
  takhin_store *s = tu_open_ok(tu_store_path("log_limits"));
  create(s, "t", 1, NULL);
  tu_produce_n(s, "t", 0, 0, 300, 100, 7);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message m;
  cr_assert_eq(takhin_cursor_seek(c, 150, 10, 0), TAKHIN_OK);
  int n = 0;
  while (takhin_cursor_next(c, &m) == TAKHIN_OK) cr_assert_eq(m.offset, 150 + n++);
  cr_assert_eq(n, 10, "max_records bounds the read");
  /* payload per record: key "k<i>" (4 bytes here) + 100 bytes value */
  cr_assert_eq(takhin_cursor_seek(c, 200, 0, 520), TAKHIN_OK);
  n = 0;
  while (takhin_cursor_next(c, &m) == TAKHIN_OK) n++;
  cr_assert_eq(n, 5, "max_bytes bounds the read (got %d)", n);
  cr_assert_eq(takhin_cursor_seek(c, 200, 0, 1), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK, "the first record always comes");
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  for (long i = 299; i >= 0; i -= 37) {
    cr_assert_eq(takhin_cursor_get(c, i, &m), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(m.offset, i);
    cr_assert(tu_value_ok(m.value, m.value_len, 100, i));
  }
  cr_assert_eq(takhin_cursor_seek(c, 300, 0, 0), TAKHIN_OK,
               "seek to the high watermark is allowed");
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  tu_produce_n(s, "t", 0, 300, 1, 100, 1);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK, "a waiting cursor sees new records");
  cr_assert_eq(m.offset, 300);
  cr_assert_eq(takhin_cursor_seek(c, 302, 0, 0), TAKHIN_ERANGE);
  cr_assert(strstr(takhin_errmsg(), "offset 302 out of range [0, 301]"), "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_get(c, 301, &m), TAKHIN_ERANGE);
  cr_assert_eq(takhin_cursor_seek(c, -1, 0, 0), TAKHIN_ERANGE);
  takhin_cursor_close(c);
  takhin_close(s);
}

Test(log, segment_roll_by_bytes) {
  const char *db = tu_store_path("log_roll");
  takhin_store *s = tu_open_ok(db);
  create(s, "t", 1, (const char *const[]){"segment_bytes", "20000", NULL});
  tu_produce_n(s, "t", 0, 0, 1000, 100, 10);
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &n), TAKHIN_OK);
  cr_assert_gt(n, 4, "about 130 KB in 20 KB segments: %zu segments", n);
  int64_t expect = 0;
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(segs[i].base_offset, expect, "segments are contiguous");
    cr_assert_leq(segs[i].size_bytes, 20000);
    cr_assert_eq(segs[i].sealed, i + 1 < n);
    char path[4096];
    tu_segment_path(path, sizeof path, db, "t", 0, segs[i].base_offset);
    cr_assert_eq(tu_file_size(path), segs[i].size_bytes, "segment file %s", path);
    expect = segs[i].next_offset;
  }
  cr_assert_eq(expect, 1000);
  takhin_free(segs);
  takhin_close(s);
  s = tu_open_ok(db);
  verify_all(s, "t", 0, 1000, 100);
  takhin_close(s);
}

Test(log, segment_roll_by_time) {
  takhin_store *s = tu_open_ok(tu_store_path("log_roll_ms"));
  create(s, "t", 1, (const char *const[]){"segment_ms", "30", NULL});
  tu_produce_n(s, "t", 0, 0, 5, 10, 5);
  usleep(60 * 1000);
  tu_produce_n(s, "t", 0, 5, 5, 10, 5);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.segments, 2);
  verify_all(s, "t", 0, 10, 10);
  takhin_close(s);
}

Test(log, offset_for_time) {
  takhin_store *s = tu_open_ok(tu_store_path("log_time"));
  create(s, "t", 1, (const char *const[]){"segment_bytes", "50000", NULL});
  tu_produce_n(s, "t", 0, 0, 3000, 100, 20); /* timestamps 1700000000000 + i */
  int64_t off;
  long probes[] = {0, 1, 19, 20, 21, 999, 1500, 2999};
  for (size_t k = 0; k < sizeof probes / sizeof *probes; k++) {
    cr_assert_eq(takhin_offset_for_time(s, "t", 0, 1700000000000LL + probes[k], &off), TAKHIN_OK);
    cr_assert_eq(off, probes[k], "ts +%ld -> %lld", probes[k], (long long)off);
  }
  cr_assert_eq(takhin_offset_for_time(s, "t", 0, 1, &off), TAKHIN_OK);
  cr_assert_eq(off, 0);
  cr_assert_eq(takhin_offset_for_time(s, "t", 0, 1800000000000LL, &off), TAKHIN_OK);
  cr_assert_eq(off, 3000, "no later record: the high watermark");
  cr_assert_eq(takhin_offset_for_time(s, "t", 0, TAKHIN_OFFSET_LATEST, &off), TAKHIN_OK);
  cr_assert_eq(off, 3000);
  cr_assert_eq(takhin_offset_for_time(s, "t", 0, TAKHIN_OFFSET_EARLIEST, &off), TAKHIN_OK);
  cr_assert_eq(off, 0);
  cr_assert_eq(takhin_offset_for_time(s, "t", 0, -7, &off), TAKHIN_EINVAL);
  takhin_close(s);
}

Test(log, timestamps_now_and_invalid) {
  takhin_store *s = tu_open_ok(tu_store_path("log_ts"));
  create(s, "t", 1, NULL);
  takhin_record r = {
      .key = "a", .key_len = 1, .value = "b", .value_len = 1, .timestamp = TAKHIN_TIMESTAMP_NOW};
  cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK);
  r.timestamp = -5;
  cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_EINVAL);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_gt(m.timestamp, 1700000000000LL, "NOW means the current time");
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END, "the refused record was not stored");
  takhin_cursor_close(c);
  takhin_close(s);
}
