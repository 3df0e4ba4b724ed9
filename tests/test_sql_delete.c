/*
** test_sql_delete.c -- the SQLite extension (build/takhin.so) driven through SQL:
** UPDATE (refused), DELETE of a prefix, and DROP TABLE.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- UPDATE, DELETE, DROP ------------------------------------------------ */

Test(sql, update_is_refused) {
  const char *path = tu_store_path("sql_update");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('a', '1', 1)");
  exec_err_exact(
      db, "takhin: records are immutable: UPDATE is not supported (produce a new record instead)",
      "UPDATE ev SET value = 'x'");
  exec_err(db, "records are immutable",
           "UPDATE ev SET value = 'x' WHERE partition = 0 AND offset = 0");
  exec_err(db, "records are immutable", "UPDATE takhin_messages SET key = 'x' WHERE topic = 'ev'");
  EXPECT_ROWS(db, "a|1\n", "SELECT key, value FROM ev");
  sqlite3_close(db);
}

Test(sql, delete_prefix_advances_log_start) {
  const char *path = tu_store_path("sql_delete");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2, segment_bytes=300)");
  for (int i = 0; i < 20; i++)
    exec_ok(
        db,
        "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'k%d','v',%d),(1,'k%d','v',%d)",
        i, i, i, i);
  int64_t segs =
      q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  cr_assert_gt(segs, 2);
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 12");
  EXPECT_ROWS(
      db, "0|12|20\n1|0|20\n",
      "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "12|19|8\n",
              "SELECT min(offset), max(offset), count(*) FROM ev WHERE partition = 0");
  cr_assert_lt(
      q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'ev' AND partition = 0"),
      segs, "whole segments below the new log start are deleted");
  EXPECT_ROWS(db, "0|1\n",
              "SELECT count(*) FILTER (WHERE next_offset <= 12), min(base_offset) <= 12 "
              "FROM takhin_segments WHERE topic = 'ev' AND partition = 0");
  /* deleting nothing is fine; so is a prefix by key when it is the prefix */
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 5");
  exec_ok(db, "DELETE FROM ev WHERE partition = 1 AND key = 'k0'");
  EXPECT_ROWS(db, "0|12\n1|1\n",
              "SELECT partition, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  /* one statement may cut a prefix of every partition */
  exec_ok(db, "DELETE FROM ev WHERE offset < 15");
  EXPECT_ROWS(db, "0|15\n1|15\n",
              "SELECT partition, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");

  /* not a prefix: refused, explaining what DELETE means, and nothing changes */
  exec_err_exact(
      db,
      "takhin: DELETE removes a prefix of a partition (Kafka's DeleteRecords): offset 17 of "
      "partition 0 is not the next one from the log start (15); write DELETE FROM \"ev\" "
      "WHERE partition = 0 AND offset < N",
      "DELETE FROM ev WHERE partition = 0 AND offset = 17");
  exec_err(db, "DELETE removes a prefix of a partition",
           "DELETE FROM ev WHERE partition = 1 AND offset IN (15, 16, 18)");
  exec_err(db, "DELETE removes a prefix of a partition",
           "DELETE FROM ev WHERE partition = 0 AND offset >= 18");
  exec_err(db, "DELETE removes a prefix of a partition", "DELETE FROM ev WHERE key = 'k16'");
  exec_err(db, "DELETE through the topic's own table",
           "DELETE FROM takhin_messages WHERE topic = 'ev'");
  EXPECT_ROWS(
      db, "0|15|20\n1|15|20\n",
      "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");

  /* in a transaction: applied at COMMIT, discarded by ROLLBACK */
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 17");
  EXPECT_ROWS(
      db, "15\n",
      "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(
      db, "15\n",
      "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 17");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'k20','v',20)");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "0|17|21\n",
              "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions "
              "WHERE topic = 'ev' AND partition = 0");
  /* everything: the log start reaches the high watermark; offsets go on */
  exec_ok(db, "DELETE FROM ev");
  EXPECT_ROWS(
      db, "0|21|21\n1|20|20\n",
      "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'new','v',30)");
  EXPECT_ROWS(db, "1|20|new\n", "SELECT partition, offset, key FROM ev");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(
      db, "0|21|21\n1|20|21\n",
      "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}

/* Two DELETEs of one partition in one transaction: the second continues
** the first (its scan still sees the rows the first one removes). */
Test(sql, two_deletes_in_one_transaction) {
  const char *path = tu_store_path("sql_delete_twice");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  for (int i = 0; i < 10; i++)
    exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('k%d', 'v', 1)", i);
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE offset < 3");
  exec_ok(db, "DELETE FROM ev WHERE offset < 5");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "5\n", "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}

Test(sql, drop_table_deletes_topic_and_files) {
  const char *path = tu_store_path("sql_drop");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db, "CREATE VIRTUAL TABLE keep USING takhin(partitions=1)");
  exec_ok(db,
          "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  exec_ok(db, "INSERT INTO keep(key, value, timestamp) VALUES ('c','3',3)");
  exec_ok(db, "SELECT takhin_commit('g', 'ev', 0, 1)");
  char d0[4200], d1[4200];
  snprintf(d0, sizeof d0, "%s-takhin/ev-0", path);
  snprintf(d1, sizeof d1, "%s-takhin/ev-1", path);
  cr_assert(tu_path_exists(d0) && tu_path_exists(d1));
  exec_ok(db, "DROP TABLE ev");
  cr_assert(!tu_path_exists(d0) && !tu_path_exists(d1), "the partition folders are gone");
  EXPECT_ROWS(db, "keep\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  exec_err(db, "unknown topic \"ev\"",
           "INSERT INTO takhin_messages(topic, key, value) VALUES ('ev', 'k', 'v')");
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  int32_t np;
  cr_assert_eq(takhin_topic_partitions(s, "ev", &np), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_topic_partitions(s, "keep", &np), TAKHIN_OK);
  takhin_close(s);
  /* the name is free again */
  db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  sqlite3_close(db);
}
