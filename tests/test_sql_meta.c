/*
** test_sql_meta.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the metadata tables and functions: topics, group offsets and
** commit, offset for time, retention, version, partitioner.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- metadata tables and functions ------------------------------------------- */

Test(sql, metadata_tables) {
  const char *path = tu_store_path("sql_meta");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=2, segment_bytes=400)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1, compression='zstd')");
  for (int i = 0; i < 30; i++)
    exec_ok(db,
            "INSERT INTO a(partition, key, value, timestamp) VALUES (%d, 'k%d', 'value-%d', %d)",
            i % 2, i, i, 1000 + i);
  exec_ok(db, "INSERT INTO b(key, value, timestamp) VALUES ('x', 'y', 5)");
  EXPECT_ROWS(db, "a|2|delete|none\nb|1|delete|zstd\n",
              "SELECT name, partitions, cleanup_policy, compression FROM takhin_topics");
  EXPECT_ROWS(db, "b|1\n", "SELECT name, partitions FROM takhin_topics WHERE name = 'b'");
  /* partitions agree with the C API */
  takhin_store *s = c_open(path, 1);
  for (int p = 0; p < 2; p++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, "a", p, &pi), TAKHIN_OK);
    char *want = sqlite3_mprintf("a|%d|%lld|%lld|%lld|%lld\n", p, (long long)pi.log_start_offset,
                                 (long long)pi.high_watermark, (long long)pi.size_bytes,
                                 (long long)pi.segments);
    char *got = q(db, "SELECT * FROM takhin_partitions WHERE topic = 'a' AND partition = %d", p);
    cr_assert_str_eq(got, want, "takhin_partitions %s vs C %s", got, want);
    cr_assert_eq(pi.high_watermark, 15);
    cr_assert_gt(pi.segments, 1);
    sqlite3_free(got);
    sqlite3_free(want);
    /* and so do segments */
    takhin_segment_info *g;
    size_t ng;
    cr_assert_eq(takhin_segments_list(s, "a", p, &g, &ng), TAKHIN_OK);
    sqlite3_str *w = sqlite3_str_new(NULL);
    for (size_t k = 0; k < ng; k++)
      sqlite3_str_appendf(w, "a|%d|%lld|%lld|%lld|%lld|%d\n", p, (long long)g[k].base_offset,
                          (long long)g[k].next_offset, (long long)g[k].size_bytes,
                          (long long)g[k].max_timestamp, g[k].sealed);
    takhin_free(g);
    char *ws = sqlite3_str_finish(w);
    got = q(db, "SELECT * FROM takhin_segments WHERE topic = 'a' AND partition = %d", p);
    cr_assert_str_eq(got, ws);
    sqlite3_free(got);
    sqlite3_free(ws);
  }
  takhin_close(s);
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM takhin_partitions WHERE topic = 'b'");
  EXPECT_ROWS(db, "3\n", "SELECT count(*) FROM takhin_partitions");
  /* segments: contiguous, only the last one open, sizes adding up */
  EXPECT_ROWS(
      db, "0\n",
      "SELECT count(*) FROM takhin_segments s1 JOIN takhin_segments s2 "
      "ON s1.topic = s2.topic AND s1.partition = s2.partition AND s2.base_offset > s1.base_offset "
      "WHERE s1.topic = 'a' AND s2.base_offset != s1.next_offset "
      "AND s2.base_offset = (SELECT min(base_offset) FROM takhin_segments s3 WHERE s3.topic = 'a' "
      "AND s3.partition = s1.partition AND s3.base_offset > s1.base_offset)");
  EXPECT_ROWS(
      db, "0|0\n1|0\n",
      "SELECT partition, sum(sealed = 0) - 1 FROM takhin_segments WHERE topic = 'a' GROUP BY partition");
  EXPECT_ROWS(db, "1\n",
              "SELECT (SELECT sum(size_bytes) FROM takhin_segments WHERE topic = 'a') = "
              "(SELECT sum(size_bytes) FROM takhin_partitions WHERE topic = 'a')");
  EXPECT_ROWS(
      db, "1\n",
      "SELECT (SELECT max(max_timestamp) FROM takhin_segments WHERE topic = 'a' AND partition = 1) = "
      "(SELECT max(timestamp) FROM a WHERE partition = 1)");
  EXPECT_ROWS(db, "b|0|0|1|5|0\n",
              "SELECT topic, partition, base_offset, next_offset, max_timestamp, sealed "
              "FROM takhin_segments WHERE topic = 'b'");
  sqlite3_close(db);
}

Test(sql, group_offsets_and_commit) {
  const char *path = tu_store_path("sql_groups");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=2)");
  exec_ok(db, "CREATE VIRTUAL TABLE other USING takhin(partitions=1)");
  for (int i = 0; i < 10; i++)
    exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (0, 'k', 'v', %d)", i);
  exec_ok(
      db,
      "INSERT INTO orders(partition, key, value, timestamp) VALUES (1, 'k', 'v', 1), (1, 'k', 'v', 2)");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "4\n", "SELECT takhin_commit('billing', 'orders', 0, 4)");
  EXPECT_ROWS(db, "2\n", "SELECT takhin_commit('billing', 'orders', 1, 2, 'host-7')");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_commit('audit', 'orders', 0, 0)");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_commit('audit', 'other', 0, 0)");
  EXPECT_ROWS(db,
              "audit|orders|0|0|10|10|NULL\n"
              "audit|other|0|0|0|0|NULL\n"
              "billing|orders|0|4|10|6|NULL\n"
              "billing|orders|1|2|2|0|host-7\n",
              "SELECT * FROM takhin_group_offsets ORDER BY group_id, topic, partition");
  EXPECT_ROWS(db, "audit|0\n",
              "SELECT group_id, lag FROM takhin_group_offsets WHERE topic = 'other'");
  /* a commit moves the offset (backwards too, as Kafka allows) */
  exec_ok(db, "SELECT takhin_commit('billing', 'orders', 0, 10)");
  exec_ok(db, "SELECT takhin_commit('audit', 'orders', 0, 3)");
  EXPECT_ROWS(
      db, "audit|3|7\nbilling|10|0\n",
      "SELECT group_id, committed_offset, lag FROM takhin_group_offsets WHERE topic = 'orders' AND partition = 0 ORDER BY 1");
  /* lag follows the log */
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (0, 'k', 'v', 20)");
  EXPECT_ROWS(
      db, "billing|11|1\n",
      "SELECT group_id, high_watermark, lag FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* a commit inside a transaction is rolled back with it */
  exec_ok(db, "BEGIN");
  exec_ok(db, "SELECT takhin_commit('billing', 'orders', 0, 1)");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(
      db, "10\n",
      "SELECT committed_offset FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* refused: out of range, unknown topic or partition, wrong types, NULLs */
  exec_err(db, "out of range", "SELECT takhin_commit('billing', 'orders', 0, -1)");
  exec_err(db, "out of range", "SELECT takhin_commit('billing', 'orders', 0, 12)");
  exec_err(db, "unknown topic \"nope\"", "SELECT takhin_commit('billing', 'nope', 0, 1)");
  exec_err(db, "partition", "SELECT takhin_commit('billing', 'orders', 2, 0)");
  exec_err(db, "partition", "SELECT takhin_commit('billing', 'orders', 4294967296, 0)");
  exec_err_exact(db, "takhin_commit: partition must be an integer, got text",
                 "SELECT takhin_commit('billing', 'orders', '0', 1)");
  exec_err_exact(db, "takhin_commit: partition must be an integer, got a real",
                 "SELECT takhin_commit('billing', 'orders', 0.5, 1)");
  exec_err_exact(db, "takhin_commit: offset must be an integer, got NULL",
                 "SELECT takhin_commit('billing', 'orders', 0, NULL)");
  exec_err_exact(db, "takhin_commit: offset must be an integer, got a blob",
                 "SELECT takhin_commit('billing', 'orders', 0, x'01')");
  exec_err_exact(db, "takhin_commit: group must be text",
                 "SELECT takhin_commit(NULL, 'orders', 0, 1)");
  exec_err_exact(db, "takhin_commit: group must be text",
                 "SELECT takhin_commit(7, 'orders', 0, 1)");
  exec_err_exact(db, "takhin_commit: topic must be text",
                 "SELECT takhin_commit('billing', NULL, 0, 1)");
  exec_err(db, "group", "SELECT takhin_commit('', 'orders', 0, 1)");
  exec_err(db, "wrong number of arguments", "SELECT takhin_commit('billing', 'orders', 0)");
  EXPECT_ROWS(db, "4\n", "SELECT count(*) FROM takhin_group_offsets");
  EXPECT_ROWS(
      db, "10\n",
      "SELECT committed_offset FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* the C API reads what SQL committed */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  int64_t off;
  char *meta = NULL;
  cr_assert_eq(takhin_group_fetch(s, "billing", "orders", 1, &off, &meta), TAKHIN_OK);
  cr_assert_eq(off, 2);
  cr_assert_str_eq(meta, "host-7");
  takhin_free(meta);
  takhin_close(s);
}

Test(sql, offset_for_time_retention_version_partitioner) {
  const char *path = tu_store_path("sql_funcs");
  sqlite3 *db = db_open(path);
  exec_ok(db,
          "CREATE VIRTUAL TABLE t USING takhin(partitions=2, segment_bytes=300, retention_ms=-1)");
  for (int i = 0; i < 40; i++)
    exec_ok(db, "INSERT INTO t(partition, key, value, timestamp) VALUES (0, 'k%d', 'v', %lld)", i,
            1700000000000LL + i * 1000LL);
  /* ListOffsets: the first offset with timestamp >= T */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, 0)");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, 1700000000000)");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_offset_for_time('t', 0, 1700000000001)");
  EXPECT_ROWS(db, "25\n", "SELECT takhin_offset_for_time('t', 0, 1700000025000)");
  EXPECT_ROWS(
      db, "40\n",
      "SELECT takhin_offset_for_time('t', 0, 1800000000000)"); /* none: the high watermark */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, -2)");  /* earliest */
  EXPECT_ROWS(db, "40\n", "SELECT takhin_offset_for_time('t', 0, -1)"); /* latest */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 1, 5)");   /* an empty partition */
  /* the same offset as the timestamp pushdown starts from */
  EXPECT_ROWS(db, "25\n",
              "SELECT min(offset) FROM t WHERE partition = 0 AND timestamp >= 1700000025000");
  exec_err_exact(db, "takhin_offset_for_time: partition must be an integer, got NULL",
                 "SELECT takhin_offset_for_time('t', NULL, 5)");
  exec_err_exact(db, "takhin_offset_for_time: timestamp must be an integer, got text",
                 "SELECT takhin_offset_for_time('t', 0, 'now')");
  exec_err_exact(db, "takhin_offset_for_time: topic must be text",
                 "SELECT takhin_offset_for_time(NULL, 0, 5)");
  exec_err(db, "unknown topic \"nope\"", "SELECT takhin_offset_for_time('nope', 0, 5)");
  exec_err(db, "partition", "SELECT takhin_offset_for_time('t', 7, 5)");
  exec_err(db, "timestamp", "SELECT takhin_offset_for_time('t', 0, -3)");

  /* retention: nothing to do under retention_ms = -1 and no byte limit */
  EXPECT_ROWS(db, "0|0\n", "SELECT * FROM takhin_retention('t')");
  int64_t segs =
      q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't' AND partition = 0");
  cr_assert_gt(segs, 3);
  /* by bytes: whole sealed segments go, oldest first, until under the limit */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(
      takhin_topic_alter_config(s, "t", (const char *const[]){"retention_bytes", "700", NULL}),
      TAKHIN_OK);
  takhin_close(s);
  db = db_open(path);
  int64_t size_before =
      q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 't' AND partition = 0");
  char *r = q(db, "SELECT * FROM takhin_retention('t')");
  int64_t nseg = 0, nbytes = 0;
  cr_assert_eq(sscanf(r, "%lld|%lld", (long long *)&nseg, (long long *)&nbytes), 2, "%s", r);
  sqlite3_free(r);
  cr_assert_gt(nseg, 0);
  cr_assert_eq(
      q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't' AND partition = 0"),
      segs - nseg);
  cr_assert_eq(
      q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 't' AND partition = 0"),
      size_before - nbytes);
  cr_assert_leq(size_before - nbytes, 700 + 300);
  cr_assert_eq(
      q_int(db,
            "SELECT log_start_offset FROM takhin_partitions WHERE topic = 't' AND partition = 0"),
      q_int(db,
            "SELECT min(base_offset) FROM takhin_segments WHERE topic = 't' AND partition = 0"));
  EXPECT_ROWS(db, "0|0\n",
              "SELECT segments_deleted, bytes_deleted FROM takhin_retention WHERE topic = 't'");
  exec_err(db, "unknown topic \"nope\"", "SELECT * FROM takhin_retention('nope')");
  exec_err_exact(db, "takhin_retention: topic must be text",
                 "SELECT * FROM takhin_retention(NULL)");
  exec_err(db, "takhin_retention(topic) needs the topic argument",
           "SELECT * FROM takhin_retention");

  /* takhin_version and the partitioner */
  EXPECT_ROWS(db, TAKHIN_VERSION "\n", "SELECT takhin_version()");
  const char *keys[] = {"user-1", "a", "", "orders-42", "ÿ"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    for (int n = 1; n <= 7; n += 3)
      cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(%Q, %d)", keys[i], n),
                   takhin_partition_for_key(keys[i], strlen(keys[i]), n), "key %s over %d", keys[i],
                   n);
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(x'00ff10', 10)"),
               takhin_partition_for_key("\x00\xff\x10", 3, 10));
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(12345, 10)"),
               takhin_partition_for_key("12345", 5, 10));
  exec_err_exact(db, "takhin_partition_for_key: key is NULL",
                 "SELECT takhin_partition_for_key(NULL, 4)");
  exec_err_exact(db, "takhin_partition_for_key: partitions must be >= 1",
                 "SELECT takhin_partition_for_key('k', 0)");
  exec_err_exact(db, "takhin_partition_for_key: partitions must be an integer, got text",
                 "SELECT takhin_partition_for_key('k', 'four')");
  sqlite3_close(db);
}

/* retention by time uses the records' timestamps, not file times */
Test(sql, retention_by_time) {
  const char *path = tu_store_path("sql_retention_time");
  sqlite3 *db = db_open(path);
  exec_ok(
      db,
      "CREATE VIRTUAL TABLE old USING takhin(partitions=1, segment_bytes=200, retention_ms=86400000)");
  for (int i = 0; i < 10; i++) /* year 2001: long past any retention */
    exec_ok(db, "INSERT INTO old(key, value, timestamp) VALUES ('k%d', 'v', %lld)", i,
            1000000000000LL + i);
  int64_t segs = q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'old'");
  cr_assert_gt(segs, 2);
  int64_t sealed = q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 'old' AND sealed");
  cr_assert_eq(sealed, segs - 1);
  cr_assert_eq(q_int(db, "SELECT segments_deleted FROM takhin_retention('old')"), sealed);
  EXPECT_ROWS(db, "1|0\n", "SELECT count(*), sum(sealed) FROM takhin_segments WHERE topic = 'old'");
  EXPECT_ROWS(db, "10\n", "SELECT high_watermark FROM takhin_partitions WHERE topic = 'old'");
  sqlite3_close(db);
}
