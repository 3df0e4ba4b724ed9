/*
** test_retention.c -- deleting from the front of a log: DeleteRecords moves
** the log start and drops whole segments below it; retention by bytes and by
** time (the records' max timestamp, not file times) drops whole sealed
** segments oldest first; compact-only topics keep everything; a cursor that
** was reading a deleted segment finishes cleanly.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static takhin_store *setup(const char *name, const char *db_out[1], const char *const *cfg) {
  const char *db = tu_store_path(name);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  if (db_out) db_out[0] = db;
  return s;
}

/* n records with timestamps ts0 + i, 100-byte values. */
static void fill(takhin_store *s, long from, long n, int64_t ts0) {
  char k[32], v[128];
  takhin_record r;
  for (long i = from; i < from + n; i++) {
    tu_make_record(&r, k, sizeof k, v, 100, i);
    r.timestamp = ts0 + i;
    cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  }
}

static takhin_partition_info info(takhin_store *s) {
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  return pi;
}

Test(retention, delete_records_moves_log_start) {
  const char *db[1];
  takhin_store *s = setup("ret_delete", db, (const char *const[]){"segment_bytes", "4096", NULL});
  fill(s, 0, 500, 1700000000000LL);
  takhin_partition_info before = info(s);
  cr_assert_gt(before.segments, 5);
  cr_assert_eq(takhin_delete_records(s, "t", 0, 501), TAKHIN_ERANGE, "past the high watermark");
  cr_assert(strstr(takhin_errmsg(), "out of range [0, 500]"), "%s", takhin_errmsg());
  cr_assert_eq(takhin_delete_records(s, "t", 0, 321), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_partition_info after = info(s);
  cr_assert_eq(after.log_start_offset, 321);
  cr_assert_eq(after.high_watermark, 500);
  cr_assert_lt(after.segments, before.segments, "whole segments below the start are gone");
  cr_assert_eq(takhin_delete_records(s, "t", 0, 100), TAKHIN_ERANGE,
               "the log start never moves back");
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &n), TAKHIN_OK);
  cr_assert_leq(segs[0].base_offset, 321);
  cr_assert_gt(segs[0].next_offset, 321, "the segment holding the new start stays");
  char first[4096];
  tu_segment_path(first, sizeof first, db[0], "t", 0, 0);
  cr_assert_eq(tu_file_size(first), -1, "the first segment file was deleted");
  takhin_free(segs);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_eq(m.offset, 321, "reading starts at the log start even mid-segment");
  cr_assert_eq(takhin_cursor_seek(c, 320, 0, 0), TAKHIN_ERANGE);
  cr_assert_eq(takhin_cursor_get(c, 499, &m), TAKHIN_OK);
  takhin_cursor_close(c);
  takhin_close(s);
  cr_assert_eq(takhin_open(db[0], NULL, &s), TAKHIN_OK);
  cr_assert_eq(info(s).log_start_offset, 321, "the log start survives reopen");
  takhin_close(s);
}

Test(retention, by_bytes_drops_oldest_sealed_segments) {
  takhin_store *s = setup("ret_bytes", NULL,
                          (const char *const[]){"segment_bytes", "4096", "retention_bytes", "20000",
                                                "retention_ms", "-1", NULL});
  fill(s, 0, 1000, 1700000000000LL);
  takhin_partition_info before = info(s);
  takhin_retention_result rr;
  cr_assert_eq(takhin_retention_apply(s, "t", -1, &rr), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_partition_info after = info(s);
  cr_assert_gt(rr.segments_deleted, 0);
  cr_assert_eq(after.size_bytes, before.size_bytes - rr.bytes_deleted);
  cr_assert_geq(after.size_bytes, 20000, "never below retention_bytes");
  cr_assert_lt(after.size_bytes, 20000 + 4096 + 200, "within one segment of it");
  cr_assert_eq(after.high_watermark, 1000);
  cr_assert_gt(after.log_start_offset, 0);
  cr_assert_eq(takhin_retention_apply(s, "t", 0, &rr), TAKHIN_OK);
  cr_assert_eq(rr.segments_deleted, 0, "a second run has nothing to do");
  takhin_close(s);
}

Test(retention, by_time_uses_record_timestamps) {
  const int64_t now = (int64_t)time(NULL) * 1000;
  takhin_store *s =
      setup("ret_time", NULL,
            (const char *const[]){"segment_bytes", "4096", "retention_ms", "3600000", NULL});
  fill(s, 0, 300, now - 7200000 - 1000); /* two hours old */
  fill(s, 300, 300, now - 60000 - 300);  /* one minute old */
  takhin_retention_result rr;
  cr_assert_eq(takhin_retention_apply(s, "t", -1, &rr), TAKHIN_OK);
  takhin_partition_info pi = info(s);
  cr_assert_gt(rr.segments_deleted, 0);
  cr_assert_leq(pi.log_start_offset, 300, "no young record was deleted");
  cr_assert_gt(pi.log_start_offset, 200, "old segments went");
  takhin_close(s);
}

Test(retention, compact_only_topic_keeps_everything) {
  takhin_store *s = setup("ret_compact", NULL,
                          (const char *const[]){"segment_bytes", "4096", "retention_bytes", "1",
                                                "cleanup_policy", "compact", NULL});
  fill(s, 0, 200, 1000);
  takhin_retention_result rr;
  cr_assert_eq(takhin_retention_apply(s, "t", -1, &rr), TAKHIN_OK);
  cr_assert_eq(rr.segments_deleted, 0);
  cr_assert_eq(info(s).log_start_offset, 0);
  takhin_close(s);
}

Test(retention, open_cursor_survives_segment_deletion) {
  takhin_store *s = setup("ret_cursor", NULL, (const char *const[]){"segment_bytes", "4096", NULL});
  fill(s, 0, 400, 1700000000000LL);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_eq(m.offset, 0);
  cr_assert_eq(takhin_delete_records(s, "t", 0, 300), TAKHIN_OK);
  /* The cursor holds the first segment open: it may finish that segment's
  ** window, then must land on the new log start, never crash. */
  long last = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_gt(m.offset, last);
    cr_assert(tu_value_ok(m.value, m.value_len, 100, m.offset));
    last = m.offset;
  }
  cr_assert(rc == TAKHIN_END || rc == TAKHIN_ERANGE, "rc %d: %s", rc, takhin_errmsg());
  takhin_cursor_close(c);
  takhin_close(s);
}
