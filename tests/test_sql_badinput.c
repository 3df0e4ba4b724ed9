/*
** test_sql_badinput.c -- the SQLite extension (build/takhin.so) driven through SQL:
** bad input gets clear errors and writes nothing, topics
** deleted under a connection, and DIRECTONLY (no use from views or triggers).
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- bad input ---------------------------------------------------------------- */

Test(sql, bad_input_clear_errors_nothing_written) {
  const char *path = tu_store_path("sql_bad");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=2, max_message_bytes=1000)");
  exec_ok(db, "INSERT INTO t(partition, key, value, timestamp) VALUES (0, 'k', 'v', 1)");
  /* unknown topic */
  exec_err(db, "no such table: nope", "SELECT * FROM nope");
  exec_err_exact(db, "takhin: unknown topic \"nope\" (no such topic, partition, group or record)",
                 "INSERT INTO takhin_messages(topic, key, value) VALUES ('nope', 'k', 'v')");
  /* wrong types and NULLs where a value is required */
  exec_err_exact(db, "takhin: partition must be an integer (or NULL to let the key choose)",
                 "INSERT INTO t(partition, key, value) VALUES ('1', 'k', 'v')");
  exec_err(db, "partition must be an integer",
           "INSERT INTO t(partition, key, value) VALUES (1.0, 'k', 'v')");
  exec_err(db, "partition must be an integer",
           "INSERT INTO t(partition, key, value) VALUES (x'01', 'k', 'v')");
  exec_err_exact(db, "takhin: partition 2 out of range [0, 2) for topic \"t\"",
                 "INSERT INTO t(partition, key, value) VALUES (2, 'k', 'v')");
  exec_err(db, "partition -1 out of range",
           "INSERT INTO t(partition, key, value) VALUES (-1, 'k', 'v')");
  exec_err_exact(db, "takhin: offset is assigned by the log; leave it out of the INSERT",
                 "INSERT INTO t(offset, key, value) VALUES (5, 'k', 'v')");
  exec_err_exact(
      db, "takhin: timestamp must be a non-negative integer (ms since the epoch) or NULL for now",
      "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', -5)");
  exec_err(db, "timestamp must be a non-negative integer",
           "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', 'today')");
  exec_err(db, "timestamp must be a non-negative integer",
           "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', 1.5)");
  exec_err_exact(db, "takhin_messages: topic must be text naming a topic",
                 "INSERT INTO takhin_messages(topic, key, value) VALUES (NULL, 'k', 'v')");
  exec_err(db, "topic must be text",
           "INSERT INTO takhin_messages(topic, key, value) VALUES (5, 'k', 'v')");
  exec_err(db, "unknown topic",
           "INSERT INTO takhin_messages(topic, key, value) VALUES ('bad name', 'k', 'v')");
  /* an oversized record */
  exec_err_exact(
      db,
      "takhin: record of 1201 bytes is larger than max_message_bytes 1000 of topic \"t\" "
      "(record batch larger than max_message_bytes)",
      "INSERT INTO t(key, value) VALUES ('k', zeroblob(1200))");
  exec_err(db, "larger than max_message_bytes",
           "INSERT INTO t(key, value, headers) VALUES ('k', 'v', "
           "'[[\"h\",\"' || printf('%%.*c', 1000, 'x') || '\"]]')");
  exec_err(db, "larger than max_message_bytes 1000",
           "INSERT INTO t(partition, key, value) VALUES (0, 'ok', 'v'), (1, 'k', zeroblob(1200))");
  exec_err(db, "larger than max_message_bytes",
           "INSERT INTO t(partition, key, value) VALUES (0, 'k', zeroblob(980))");
  exec_ok(db, "CREATE VIRTUAL TABLE big USING takhin(partitions=1)");
  exec_err(db, "larger than max_message_bytes 1048588",
           "INSERT INTO big(key, value) VALUES ('k', zeroblob(2000000))");
  /* nothing was written */
  EXPECT_ROWS(db, "0|1\n1|0\n",
              "SELECT partition, high_watermark FROM takhin_partitions WHERE topic = 't'");
  EXPECT_ROWS(db, "0|0\n",
              "SELECT high_watermark, size_bytes FROM takhin_partitions WHERE topic = 'big'");
  EXPECT_ROWS(db, "0|0|k\n", "SELECT partition, offset, key FROM t");
  /* SELECT with values of the wrong type matches nothing rather than failing */
  EXPECT_ROWS(db, "", "SELECT * FROM t WHERE partition = 'x'");
  EXPECT_ROWS(db, "", "SELECT * FROM t WHERE offset = NULL");
  sqlite3_close(db);
}

/* SELECT naming a topic that does not exist is an error, as INSERT is. */
Test(sql, select_unknown_topic_is_an_error) {
  const char *path = tu_store_path("sql_unknown_select");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  exec_err(db, "unknown topic \"nope\"", "SELECT * FROM takhin_messages WHERE topic = 'nope'");
  sqlite3_close(db);
}

/* A topic deleted behind the table's back (through the C API, then another
** connection): every use names the problem, nothing crashes, and DROP TABLE
** still cleans up. */
Test(sql, topic_deleted_by_another_connection) {
  const char *path = tu_store_path("sql_deleted");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE gone USING takhin(partitions=2)");
  exec_ok(db,
          "INSERT INTO gone(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(takhin_topic_delete(s, "gone"), TAKHIN_OK);
  takhin_close(s);
  db = db_open(path);
  exec_err(db, "unknown topic \"gone\"", "SELECT * FROM gone");
  exec_err(db, "unknown topic \"gone\"",
           "SELECT count(*) FROM gone WHERE partition = 1 AND offset = 0");
  exec_err(db, "unknown topic \"gone\"", "INSERT INTO gone(key, value) VALUES ('k', 'v')");
  exec_err(db, "unknown topic \"gone\"", "DELETE FROM gone WHERE offset < 1");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_partitions WHERE topic = 'gone'");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_messages");
  exec_ok(db, "DROP TABLE gone");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'gone'");
  sqlite3_close(db);
}

/* The same while both are open: a C API writer in this process deletes the
** topic under a SQL reader that is in the middle of a scan. */
Test(sql, topic_deleted_while_sql_reads) {
  const char *path = tu_store_path("sql_deleted_live");
  takhin_store *w = c_open(path, 0);
  cr_assert_eq(
      takhin_topic_create(w, "live", 1, (const char *const[]){"segment_bytes", "300", NULL}),
      TAKHIN_OK);
  for (int i = 0; i < 20; i++) {
    takhin_record r = {.key = "k", .key_len = 1, .value = "value", .value_len = 5, .timestamp = i};
    cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  }
  sqlite3 *db = db_open(path); /* the writer holds the store: this connection reads */
  exec_ok(db, "CREATE VIRTUAL TABLE live USING takhin");
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT offset, value FROM live", -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(takhin_topic_delete(w, "live"), TAKHIN_OK);
  int rc, rows = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) rows++;
  cr_assert(rc == SQLITE_DONE || rc == SQLITE_ERROR, "the scan ends or fails cleanly (%d: %s)", rc,
            sqlite3_errmsg(db));
  cr_assert_leq(rows, 20);
  sqlite3_finalize(st);
  sqlite3_close(db);
  takhin_close(w);
}

/* A connection reading beside a writer notices that the writer deleted a
** topic, and that a new topic of the same name is another log. */
Test(sql, reader_sees_topic_deleted_and_recreated_by_writer) {
  const char *path = tu_store_path("sql_deleted_reader");
  takhin_store *w = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(w, "live", 1, NULL), TAKHIN_OK);
  for (int i = 0; i < 5; i++) {
    takhin_record r = {.key = "old", .key_len = 3, .value = "v", .value_len = 1, .timestamp = i};
    cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  }
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE live USING takhin");
  EXPECT_ROWS(db, "5\n", "SELECT count(*) FROM live");
  cr_assert_eq(takhin_topic_delete(w, "live"), TAKHIN_OK);
  exec_err(db, "unknown topic \"live\"", "SELECT * FROM live");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_partitions");
  exec_err(db, "live", "INSERT INTO live(key, value) VALUES ('k', 'v')");
  cr_assert_eq(takhin_topic_create(w, "live", 1, NULL), TAKHIN_OK);
  takhin_record r = {.key = "new", .key_len = 3, .value = "v", .value_len = 1, .timestamp = 99};
  cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  EXPECT_ROWS(db, "0|new|99\n", "SELECT offset, key, timestamp FROM live");
  sqlite3_close(db);
  takhin_close(w);
}

/* ---- security: DIRECTONLY -------------------------------------------------- */

/* Whatever reads or writes the store's files is usable only in top-level
** SQL, never from a view or trigger that someone else's schema may hold. */
Test(sql, directonly_views_and_triggers_refused) {
  const char *path = tu_store_path("sql_directonly");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO orders(key, value, timestamp) VALUES ('k', 'v', 1)");
  exec_ok(db, "CREATE TABLE app(x)");
  /* views: creating one is allowed, using it is not */
  const char *views[][2] = {
      {"v1", "SELECT * FROM orders"},
      {"v2", "SELECT * FROM takhin_messages"},
      {"v3", "SELECT * FROM takhin_topics"},
      {"v4", "SELECT * FROM takhin_partitions"},
      {"v5", "SELECT * FROM takhin_segments"},
      {"v6", "SELECT * FROM takhin_group_offsets"},
      {"v7", "SELECT * FROM takhin_retention('orders')"},
      {"v8", "SELECT takhin_commit('g', 'orders', 0, 1)"},
      {"v9", "SELECT takhin_offset_for_time('orders', 0, 0)"},
      {"v10", "SELECT * FROM takhin_compact('orders')"},
  };
  for (size_t i = 0; i < sizeof views / sizeof *views; i++) {
    exec_ok(db, "CREATE VIEW %s AS %s", views[i][0], views[i][1]);
    exec_err(db, "unsafe use of", "SELECT * FROM %s", views[i][0]);
  }
  /* triggers on ordinary tables that write, read or commit */
  const char *bodies[] = {
      "INSERT INTO orders(key, value) VALUES ('from', 'trigger')",
      "SELECT takhin_commit('g', 'orders', 0, 1)",
      "INSERT INTO app SELECT value FROM takhin_messages",
      "DELETE FROM orders WHERE offset < 1",
      "SELECT * FROM takhin_retention('orders')",
  };
  for (int x = 0; x < 5; x++) {
    exec_ok(db, "CREATE TABLE app%d(x)", x);
    exec_ok(db, "CREATE TRIGGER tr%d AFTER INSERT ON app%d BEGIN %s; END", x, x, bodies[x]);
    exec_err(db, "unsafe use of", "INSERT INTO app%d VALUES (1)", x);
  }
  exec_err_exact(db, "unsafe use of virtual table \"orders\"", "INSERT INTO app0 VALUES (1)");
  exec_err_exact(db, "unsafe use of takhin_commit()", "INSERT INTO app1 VALUES (1)");
  /* nothing happened */
  EXPECT_ROWS(db, "k\n", "SELECT key FROM orders");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "0\n", "SELECT log_start_offset FROM takhin_partitions");
  /* pure functions are fine anywhere */
  exec_ok(db,
          "CREATE VIEW ok AS SELECT takhin_version() AS v, takhin_partition_for_key('k', 3) AS p");
  char want[64];
  snprintf(want, sizeof want, "%s|%d\n", TAKHIN_VERSION, takhin_partition_for_key("k", 1, 3));
  EXPECT_ROWS(db, want, "SELECT * FROM ok");
  sqlite3_close(db);
  /* and stay refused in a fresh connection, where the schema is untrusted */
  db = db_open(path);
  exec_err(db, "unsafe use of", "SELECT * FROM v1");
  exec_err(db, "unsafe use of", "INSERT INTO app1 VALUES (2)");
  sqlite3_close(db);
}
