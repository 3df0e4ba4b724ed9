/*
** test_sql_insert.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the INSERT forms, compacted topics and NULL keys, and what a
** failed or rolled-back first use or CREATE/DROP inside a transaction leaves.
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

/* ---- INSERT ---------------------------------------------------------------- */

Test(sql, insert_forms) {
  const char *path = tu_store_path("sql_insert");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=4)");
  /* the key chooses the partition, as Kafka's murmur2 partitioner does */
  exec_ok(db, "INSERT INTO orders(key, value) VALUES ('user-1', '{\"total\":10}')");
  int32_t want = takhin_partition_for_key("user-1", 6, 4);
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM orders WHERE partition = %d AND key = 'user-1'",
              want);
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key('user-1', 4)"), want);
  for (int i = 0; i < 20; i++)
    exec_ok(db, "INSERT INTO orders(key, value) VALUES ('key-%d', 'v')", i);
  for (int i = 0; i < 20; i++) {
    char k[16];
    int n = snprintf(k, sizeof k, "key-%d", i);
    cr_assert_eq(q_int(db, "SELECT partition FROM orders WHERE key = 'key-%d'", i),
                 takhin_partition_for_key(k, (size_t)n, 4));
  }
  /* every column given */
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp, headers) "
              "VALUES (2, NULL, x'00ff', 1700000000000, '[[\"trace\",\"abc\"]]')");
  EXPECT_ROWS(
      db, "2|NULL|x'00ff'|1700000000000|[[\"trace\",\"abc\"]]\n",
      "SELECT partition, key, value, timestamp, headers FROM orders WHERE timestamp = 1700000000000");
  /* without a timestamp the record gets the current time */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t before = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - 1000;
  exec_ok(db, "INSERT INTO orders(partition, key, value) VALUES (3, 'now', 'x')");
  int64_t ts = q_int(db, "SELECT timestamp FROM orders WHERE key = 'now'");
  cr_assert(ts >= before && ts <= before + 60000, "timestamp %lld is now", (long long)ts);
  /* the eponymous table takes the topic as a column */
  exec_ok(db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('orders', 'k', 'v')");
  EXPECT_ROWS(db, "orders|k|v\n",
              "SELECT topic, key, value FROM takhin_messages WHERE topic = 'orders' AND key = 'k'");
  exec_ok(
      db,
      "INSERT INTO takhin_messages(topic, partition, key, value, timestamp) VALUES ('orders', 1, 'k2', 'v2', 7)");
  EXPECT_ROWS(db, "1|k2|7\n", "SELECT partition, key, timestamp FROM orders WHERE key = 'k2'");
  /* INSERT ... SELECT, multi-row VALUES */
  exec_ok(db, "CREATE TABLE src(k TEXT, v TEXT)");
  exec_ok(db, "INSERT INTO src VALUES ('a','1'),('b','2'),('c','3')");
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) SELECT 0, k, v, 100 FROM src");
  exec_ok(
      db,
      "INSERT INTO orders(partition, key, value, timestamp) VALUES (0,'d','4',100),(0,'e','5',100)");
  EXPECT_ROWS(db, "a|1\nb|2\nc|3\nd|4\ne|5\n",
              "SELECT key, value FROM orders WHERE partition = 0 AND timestamp = 100");
  /* null-key rows of one statement stick to one partition */
  exec_ok(
      db,
      "INSERT INTO orders(key, value, timestamp) VALUES (NULL,'n1',200),(NULL,'n2',200),(NULL,'n3',200)");
  EXPECT_ROWS(db, "1\n", "SELECT count(DISTINCT partition) FROM orders WHERE timestamp = 200");
  EXPECT_ROWS(db, "3\n", "SELECT count(*) FROM orders WHERE timestamp = 200");
  sqlite3_close(db);
}

Test(sql, compacted_topic_refuses_null_key) {
  const char *path = tu_store_path("sql_compact");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(partitions=2, cleanup_policy='compact')");
  exec_err_exact(db, "takhin: topic \"c\" is compacted: every record needs a key",
                 "INSERT INTO c(key, value) VALUES (NULL, 'v')");
  exec_err(db, "is compacted: every record needs a key",
           "INSERT INTO takhin_messages(topic, key, value) VALUES ('c', NULL, 'v')");
  /* all or nothing: a good row before the bad one is not stored either */
  exec_err(db, "every record needs a key",
           "INSERT INTO c(key, value) VALUES ('k', 'v'), (NULL, 'v')");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('k', NULL)"); /* a tombstone has a key */
  EXPECT_ROWS(db, "k|NULL\n", "SELECT key, value FROM c");
  EXPECT_ROWS(db, "1\n", "SELECT sum(high_watermark) FROM takhin_partitions WHERE topic = 'c'");
  exec_ok(db, "CREATE VIRTUAL TABLE cd USING takhin(cleanup_policy='compact,delete')");
  exec_err(db, "is compacted: every record needs a key",
           "INSERT INTO cd(key, value) VALUES (NULL, 'v')");
  sqlite3_close(db);
}

/* takhin_rows(?) feeds the store's batched catalog writes from memory
** through a pointer only C can bind: from SQL it yields nothing, whatever
** it is given, and never reads memory. */
Test(sql, takhin_rows_is_empty_from_sql) {
  const char *path = tu_store_path("sql_takhin_rows");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(cleanup_policy='compact')");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('k', 'v1'), ('k', 'v2'), ('j', 'w')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(1)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(x'0102030405060708')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(NULL)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows");
  EXPECT_ROWS(db, "k|v2\nj|w\n", "SELECT key, value FROM c WHERE offset IN (1, 2) ORDER BY offset");
  sqlite3_close(db);
}

/* The store's catalog tables are made on first use, inside whatever
** statement or transaction that is: when that one rolls back, the store
** must still work. */
Test(sql, failed_first_create_leaves_store_usable) {
  const char *path = tu_store_path("sql_first_create");
  sqlite3 *db = db_open(path);
  exec_err(db, "config compression: \"lz4\"",
           "CREATE VIRTUAL TABLE t USING takhin(compression='lz4')");
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO orders(key, value, timestamp) VALUES ('k', 'v', 1)");
  EXPECT_ROWS(db, "orders|1\n", "SELECT name, partitions FROM takhin_topics");
  sqlite3_close(db);
}

Test(sql, rolled_back_first_use_leaves_store_usable) {
  const char *path = tu_store_path("sql_first_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "BEGIN");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "ROLLBACK");
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  EXPECT_ROWS(db, "orders\n", "SELECT name FROM takhin_topics");
  sqlite3_close(db);
}

/* CREATE VIRTUAL TABLE and DROP TABLE make and delete files, which ROLLBACK
** cannot take back: either they are refused inside a transaction, or a
** ROLLBACK leaves the store as it was. */
Test(sql, create_in_rolled_back_transaction_leaves_no_topic) {
  const char *path = tu_store_path("sql_create_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "BEGIN");
  sqlite3_exec(db, "CREATE VIRTUAL TABLE x USING takhin(partitions=1)", NULL, NULL, NULL);
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'x'");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE x USING takhin(partitions=1)");
  sqlite3_close(db);
}

static void log_to_str(void *arg, int code, const char *msg) {
  sqlite3_str_appendf(arg, "%d %s\n", code, msg);
}

/* DROP TABLE inside a transaction deletes the topic at COMMIT (drop.c):
** until then the topic and its files stay, listed in takhin_pending_drops,
** and a ROLLBACK, or a ROLLBACK TO a savepoint before the DROP, keeps them.
** Python's default mode meets this after an INSERT (its implicit BEGIN
** stays open): the INSERT-then-DROP case. */
static int seg_exists(const char *db, const char *topic, int part) {
  char seg[4096];
  tu_segment_path(seg, sizeof seg, db, topic, part, 0);
  return tu_path_exists(seg);
}

Test(sql, drop_in_transaction_deletes_at_commit) {
  const char *path = tu_store_path("sql_drop_txn");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db, "CREATE VIRTUAL TABLE other USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(partition, key, value) VALUES (0,'a','1'),(1,'b','2')");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO other(key, value) VALUES ('k','v')");
  exec_ok(db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('other','m','v')");
  exec_ok(db, "DROP TABLE ev");
  EXPECT_ROWS(db, "ev\n", "SELECT topic FROM takhin_pending_drops");
  EXPECT_ROWS(db, "ev\nother\n", "SELECT name FROM takhin_topics ORDER BY name");
  cr_assert(seg_exists(path, "ev", 0) && seg_exists(path, "ev", 1),
            "nothing deleted before COMMIT");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  exec_ok(db, "INSERT INTO other(key, value) VALUES ('k2','v2')"); /* began before the DROP */
  /* what the transaction can no longer do with the topic, each said */
  exec_err_exact(db, "takhin: topic \"ev\" is dropped by this transaction",
                 "INSERT INTO takhin_messages(topic, key, value) VALUES ('ev','k','v')");
  exec_err_exact(db,
                 "takhin: topic \"ev\" is dropped by this transaction, at its COMMIT: COMMIT "
                 "first",
                 "CREATE VIRTUAL TABLE ev USING takhin");
  exec_err_exact(db,
                 "takhin_pending_drops: its rows come from DROP TABLE of a topic inside a "
                 "transaction; they cannot be written",
                 "INSERT INTO takhin_pending_drops VALUES ('other')");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_pending_drops");
  EXPECT_ROWS(db, "other\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "k|v\nk2|v2\nm|v\n", "SELECT key, value FROM other ORDER BY key");
  cr_assert(!seg_exists(path, "ev", 0) && !seg_exists(path, "ev", 1), "files deleted at COMMIT");
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)"); /* the name is free */
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "ev|1\nother|1\n", "SELECT name, partitions FROM takhin_topics ORDER BY name");
  sqlite3_close(db);
}

Test(sql, drop_in_transaction_follows_rollback_and_savepoints) {
  const char *path = tu_store_path("sql_drop_txn_sp");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO a(key, value) VALUES ('ka','1')");
  exec_ok(db, "INSERT INTO b(key, value) VALUES ('kb','1')");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('kc','1')");
  /* ROLLBACK keeps the table and its records */
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE a");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_pending_drops");
  EXPECT_ROWS(db, "ka\n", "SELECT key FROM a");
  /* ROLLBACK TO a savepoint before the DROP takes that DROP back only */
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE a");
  exec_ok(db, "SAVEPOINT s1");
  exec_ok(db, "DROP TABLE b");
  EXPECT_ROWS(db, "a\nb\n", "SELECT topic FROM takhin_pending_drops ORDER BY 1");
  exec_ok(db, "ROLLBACK TO s1");
  EXPECT_ROWS(db, "a\n", "SELECT topic FROM takhin_pending_drops");
  exec_ok(db, "RELEASE s1");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "b\nc\n", "SELECT name FROM takhin_topics ORDER BY name");
  EXPECT_ROWS(db, "kb\n", "SELECT key FROM b");
  /* a DROP inside a released savepoint commits with the transaction */
  exec_ok(db, "SAVEPOINT outer_sp");
  exec_ok(db, "DROP TABLE b");
  exec_ok(db, "RELEASE outer_sp");
  EXPECT_ROWS(db, "c\n", "SELECT name FROM takhin_topics");
  /* INSERT then DROP of the same table: the rows go with the topic */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('kc2','2')");
  exec_ok(db, "DROP TABLE c");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name IN ('a', 'b', 'c')");
  sqlite3_close(db);
}

/* A statement that fails after changing the schema (here a refused CREATE)
** makes SQLite connect every table again; takhin_pending_drops then joins
** the transaction a second time, and each ROLLBACK TO still takes back only
** the DROPs made after its savepoint. */
Test(sql, drop_in_transaction_survives_a_schema_reset) {
  const char *path = tu_store_path("sql_drop_txn_reset");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(partitions=1)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE a");
  exec_err(db, "is dropped by this transaction", "CREATE VIRTUAL TABLE a USING takhin");
  exec_ok(db, "SAVEPOINT s");
  exec_ok(db, "DROP TABLE b");
  exec_ok(db, "ROLLBACK TO s");
  exec_ok(db, "DROP TABLE c");
  EXPECT_ROWS(db, "a\nc\n", "SELECT topic FROM takhin_pending_drops ORDER BY 1");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "b\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "b\n", "SELECT name FROM sqlite_schema WHERE name IN ('a', 'b', 'c')");
  sqlite3_close(db);
}

/* After a DROP inside a transaction, a takhin table that has not written
** yet is refused its first write: its COMMIT would come after the one that
** deletes the files (SQLite commits tables in the order they began). */
Test(sql, drop_in_transaction_refuses_a_later_first_write) {
  const char *path = tu_store_path("sql_drop_txn_order");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE a");
  exec_err_exact(db,
                 "takhin: this transaction drops topic \"a\", which happens at COMMIT: COMMIT "
                 "before writing to another takhin table",
                 "INSERT INTO b(key, value) VALUES ('k','v')");
  exec_ok(db, "COMMIT");
  exec_ok(db, "INSERT INTO b(key, value) VALUES ('k','v')");
  EXPECT_ROWS(db, "b|k\n", "SELECT name, (SELECT key FROM b) FROM takhin_topics");
  sqlite3_close(db);
}

/* The one DROP inside a transaction that is refused: the table has rows
** not yet committed and a savepoint is open, whose ROLLBACK TO would bring
** the table back without them. SQLite drops xDestroy's message, so the
** statement says SQLITE_LOCKED's text and the whole message goes to
** SQLite's error log. */
Test(sql, drop_with_pending_rows_under_savepoint_says_locked_and_logs_why) {
  sqlite3_str *logged = sqlite3_str_new(NULL);
  sqlite3_shutdown();
  cr_assert_eq(sqlite3_config(SQLITE_CONFIG_LOG, log_to_str, logged), SQLITE_OK);
  cr_assert_eq(sqlite3_initialize(), SQLITE_OK);
  const char *path = tu_store_path("sql_drop_txn_locked");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(key, value) VALUES ('k', 'v')");
  exec_ok(db, "SAVEPOINT s");
  exec_err_exact(db, "database table is locked", "DROP TABLE ev");
  cr_assert_eq(sqlite3_errcode(db), SQLITE_LOCKED);
  exec_ok(db, "RELEASE s");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM ev");
  char *log = sqlite3_str_value(logged);
  const char *why = "6 takhin: topic \"ev\" has uncommitted INSERTs or DELETEs and a savepoint "
                    "is open: RELEASE or COMMIT before DROP TABLE\n";
  cr_assert(log && strstr(log, why), "SQLite's log:\n%s", log ? log : "");
  /* a failed DROP leaves no message behind for the next statement */
  exec_ok(db, "SELECT count(*) FROM ev");
  cr_assert_str_eq(sqlite3_errmsg(db), "not an error");
  exec_ok(db, "DROP TABLE ev");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  sqlite3_close(db);
}

Test(sql, drop_in_rolled_back_transaction_keeps_the_data) {
  const char *path = tu_store_path("sql_drop_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db,
          "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE ev");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  EXPECT_ROWS(db, "0|a\n1|b\n", "SELECT partition, key FROM ev");
  sqlite3_close(db);
  db = db_open(path); /* and after a reopen */
  EXPECT_ROWS(db, "0|a\n1|b\n", "SELECT partition, key FROM ev");
  sqlite3_close(db);
}

/* A connection closed with a DROP pending and no COMMIT: its transaction
** rolls back (xRollback forgets the list), so the topic, its files, its
** table and its records stay, and the next connection has nothing pending. */
Test(sql, drop_in_transaction_then_close_keeps_the_topic) {
  const char *path = tu_store_path("sql_drop_close");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(key, value) VALUES ('a','1')");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE ev");
  EXPECT_ROWS(db, "ev\n", "SELECT topic FROM takhin_pending_drops");
  cr_assert_eq(sqlite3_close(db), SQLITE_OK);
  cr_assert(seg_exists(path, "ev", 0), "nothing deleted without a COMMIT");
  db = db_open(path);
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_pending_drops");
  EXPECT_ROWS(db, "ev\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "a|1\n", "SELECT key, value FROM ev");
  exec_ok(db, "INSERT INTO ev(key, value) VALUES ('b','2')"); /* nothing pending refuses it */
  EXPECT_ROWS(db, "2\n", "SELECT count(*) FROM ev");
  sqlite3_close(db);
}
