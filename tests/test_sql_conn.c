/*
** test_sql_conn.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the build and the connection: no SQLite linked into the
** extension, two connections, WAL, compaction and commit hooks, flushes.
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
#include <string.h>
#include <sys/wait.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- the build and the connection ------------------------------------------- */

/* The extension uses the host's SQLite: no libsqlite3 of its own. */
Test(sql, extension_links_no_sqlite) {
  char cmd[8192], line[4096];
  snprintf(cmd, sizeof cmd, "readelf -d '%s.so' 2>&1", EXT_PATH);
  FILE *f = popen(cmd, "r");
  cr_assert(f);
  int needed = 0, sqlite = 0;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "(NEEDED)")) needed++;
    if (strstr(line, "(NEEDED)") && strstr(line, "sqlite")) sqlite++;
  }
  int st = pclose(f);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) || !needed) cr_skip_test("readelf is not available");
  cr_assert_eq(sqlite, 0, "takhin.so must not need a libsqlite3");
  /* the only exported symbol a host needs is the entry point */
  snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s.so' 2>/dev/null | grep -c ' T '", EXT_PATH);
  f = popen(cmd, "r");
  cr_assert(f);
  int exported = 0;
  if (fgets(line, sizeof line, f)) exported = atoi(line);
  pclose(f);
  if (exported) {
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s.so' | grep -q ' T sqlite3_takhin_init$'",
             EXT_PATH);
    cr_assert_eq(system(cmd), 0, "sqlite3_takhin_init is exported");
  }
}

/* Two connections of one process: the first to use the store writes, the
** second reads beside it. */
Test(sql, two_connections_one_writer) {
  const char *path = tu_store_path("sql_two_conns");
  sqlite3 *a = db_open(path);
  exec_ok(a, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  exec_ok(a, "INSERT INTO t(key, value, timestamp) VALUES ('a', '1', 1)");
  sqlite3 *b = db_open(path);
  EXPECT_ROWS(b, "a\n", "SELECT key FROM t");
  exec_err(b, "locked by another writer", "INSERT INTO t(key, value) VALUES ('b', '2')");
  exec_ok(a, "INSERT INTO t(key, value, timestamp) VALUES ('c', '3', 3)");
  EXPECT_ROWS(b, "a\nc\n", "SELECT key FROM t");
  EXPECT_ROWS(b, "t|0|0|2\n",
              "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  sqlite3_close(b);
  sqlite3_close(a);
}

/* The extension means the database to be in WAL mode once it has opened
** the store (so readers in other processes do not wait for it). */
Test(sql, first_use_switches_to_wal) {
  const char *path = tu_store_path("sql_wal");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  EXPECT_ROWS(db, "wal\n", "PRAGMA journal_mode");
  sqlite3_close(db);
}

static int count_commit(void *arg) {
  ++*(int *)arg;
  return 0; /* let it commit */
}

/* takhin_compact and takhin_retention, called from a SELECT, group their
** catalog changes into a few transactions of their own (a savepoint), not
** one per row: the swap of every rewritten segment is one commit, as in the
** C API. Inside the user's transaction they are refused: a ROLLBACK would
** restore catalog rows for files already rewritten or deleted. */
Test(sql, compaction_commits_atomically_and_not_inside_a_transaction) {
  const char *path = tu_store_path("sql_compact_tx");
  sqlite3 *db = db_open(path);
  exec_ok(
      db,
      "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact,delete', segment_bytes=300, retention_ms=1)");
  for (int i = 0; i < 400; i++) /* one batch each: a transaction would make one batch of them */
    exec_ok(db, "INSERT INTO t(key, value, timestamp) VALUES ('k%d', 'value-%d', %d)", i % 7, i,
            1000 + i);
  int64_t segs = q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't'");
  cr_assert_gt(segs, 20, "many segments, each with catalog rows to rewrite");

  exec_ok(db, "BEGIN");
  exec_err(db, "run it outside a transaction", "SELECT * FROM takhin_compact('t')");
  exec_err(db, "run it outside a transaction", "SELECT * FROM takhin_retention('t')");
  exec_ok(db, "ROLLBACK");

  int commits = 0;
  sqlite3_commit_hook(db, count_commit, &commits);
  int64_t compacted = q_int(db, "SELECT segments_compacted FROM takhin_compact('t')");
  cr_assert_gt(compacted, 10);
  /* the tombstone clock, the swap (every segment's rows), the swap rows'
  ** removal: a handful, whatever the number of segments and rows */
  cr_assert_leq(commits, 5, "%d commits for %lld rewritten segments", commits,
                (long long)compacted);
  EXPECT_ROWS(db, "k0|399\nk1|393\nk2|394\nk3|395\nk4|396\nk5|397\nk6|398\n",
              "SELECT key, offset FROM t ORDER BY key");
  commits = 0;
  int64_t deleted = q_int(db, "SELECT segments_deleted FROM takhin_retention('t')");
  cr_assert_gt(deleted, 0);
  cr_assert_leq(commits, 2, "%d commits for %lld deleted segments", commits, (long long)deleted);
  sqlite3_commit_hook(db, NULL, NULL);
  sqlite3_close(db);
  /* and the C API opens what SQL left, with the same records */
  takhin_store *s = c_open(path, 0);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 400);
  takhin_close(s);
}

/* Refused also inside a statement that writes: INSERT ... SELECT would roll
** the catalog back on a failed row while the files stay rewritten. */
Test(sql, compaction_refused_inside_a_writing_statement) {
  const char *path = tu_store_path("sql_compact_insert_select");
  sqlite3 *db = db_open(path);
  exec_ok(
      db,
      "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact,delete', segment_bytes=300)");
  for (int i = 0; i < 50; i++)
    exec_ok(db, "INSERT INTO t(key, value, timestamp) VALUES ('k%d', 'value-%d', %d)", i % 3, i,
            1000 + i);
  exec_ok(db, "CREATE TABLE res(a, b, c, d, e)");
  exec_err(db, "run it outside a transaction", "INSERT INTO res SELECT * FROM takhin_compact('t')");
  exec_err(db, "run it outside a transaction",
           "INSERT INTO res(a, b) SELECT * FROM takhin_retention('t')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM res");
  cr_assert_gt(q_int(db, "SELECT segments_compacted FROM takhin_compact('t')"), 0,
               "alone, it runs");
  sqlite3_close(db);
}

/* The catalog writes a COMMIT makes (the index rows of what it appends)
** never open a savepoint of their own: if one failed, rolling back to it
** would take the user's whole transaction with it. Here the key rows are
** refused by a trigger; the user's rows in an ordinary table must stay. */
Test(sql, catalog_failure_at_commit_keeps_the_users_transaction) {
  const char *path = tu_store_path("sql_commit_catalog_failure");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact')");
  exec_ok(db, "CREATE TABLE o(x)");
  exec_ok(db, "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.takhin_cat_key "
              "BEGIN SELECT RAISE(ABORT, 'catalog write refused'); END");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO o VALUES (1)");
  exec_ok(db, "INSERT INTO t(key, value) VALUES ('a', '1'), ('b', '2')");
  sqlite3_sleep(1200); /* past the catalog's write interval: the COMMIT persists */
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM o");
  EXPECT_ROWS(db, "a|1\nb|2\n", "SELECT key, value FROM t ORDER BY offset");
  exec_ok(db, "DROP TRIGGER refuse");
  sqlite3_close(db);
}

/* takhin_flush() writes the catalog rows still pending for what INSERTs
** appended (here, the key rows of a compacted topic), as takhin_flush does
** in C; inside a transaction or a writing statement it is refused. */
Test(sql, flush_writes_pending_catalog_rows) {
  const char *path = tu_store_path("sql_flush");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact')");
  for (int i = 0; i < 30; i++) exec_ok(db, "INSERT INTO t(key, value) VALUES ('k%d', 'v')", i % 10);
  cr_assert_lt(q_int(db, "SELECT count(*) FROM takhin_cat_key"), 10,
               "key rows are written in batches");
  exec_ok(db, "BEGIN");
  exec_err(db, "outside a transaction", "SELECT takhin_flush()");
  exec_ok(db, "ROLLBACK");
  exec_ok(db, "CREATE TABLE res(x)");
  exec_err(db, "outside a transaction", "INSERT INTO res SELECT takhin_flush()");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_flush()");
  EXPECT_ROWS(db, "10\n", "SELECT count(*) FROM takhin_cat_key");
  EXPECT_ROWS(db, "29\n", "SELECT max(offset) FROM takhin_cat_key");
  exec_err(db, "wrong number of arguments", "SELECT takhin_flush(1)");
  sqlite3_close(db);
}

/* A failed COMMIT on a compacted topic takes back its keys with its
** records: the offsets it had are given to the next records, and a key of
** the taken-back batch must not point at them. */
Test(sql, failed_commit_takes_back_its_keys) {
  const char *path = tu_store_path("sql_txn_fail_keys");
  sqlite3 *db = db_open(path);
  exec_ok(
      db,
      "CREATE VIRTUAL TABLE ev USING takhin(partitions=2, max_message_bytes=200, cleanup_policy='compact')");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'pre','x',1)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'ghost','small',2)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'b',zeroblob(170),2)");
  exec_err(db, "larger than max_message_bytes 200", "COMMIT");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'post','y',3)");
  EXPECT_ROWS(db, "", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'ghost'");
  EXPECT_ROWS(db, "1|y\n", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'post'");
  EXPECT_ROWS(db, "0|x\n", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'pre'");
  sqlite3_close(db);
}

/* Issue 11: values that strtoll or a silent default would take are refused
** with a message, and nothing is written: spaces and signs in numbers, a
** rowid named by an INSERT, a blob as takhin_commit's metadata. */
Test(sql, lenient_values_refused) {
  const char *path = tu_store_path("sql_lenient");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_err_exact(db, "option partitions: \" 3\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=' 3')");
  exec_err_exact(db, "option partitions: \"3 \" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions='3 ')");
  exec_err_exact(db, "option partitions: \"+3\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions='+3')");
  exec_err_exact(db, "option partitions: \"99999999999999999999\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=99999999999999999999)");
  exec_err(db, "config segment_bytes: \" 100\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(segment_bytes=' 100')");
  exec_err(db, "config segment_bytes: \"+100\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(segment_bytes='+100')");
  exec_err(db, "config retention_ms: \"99999999999999999999\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(retention_ms=99999999999999999999)");
  exec_err(db, "config min_cleanable_dirty_ratio: \" 0.5\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio=' 0.5')");
  exec_err(db, "config min_cleanable_dirty_ratio: \"nan\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio='nan')");
  exec_err(db, "config min_cleanable_dirty_ratio: \"0x0.8\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio='0x0.8')");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  exec_ok(db,
          "CREATE VIRTUAL TABLE t USING takhin(partitions='2', min_cleanable_dirty_ratio='.25')");
  /* an INSERT that names rowid: refused, not silently ignored */
  exec_err(db, "INSERT cannot set rowid", "INSERT INTO t(rowid, key, value) VALUES (5, 'k', 'v')");
  exec_err(db, "INSERT cannot set rowid",
           "INSERT INTO t(rowid, partition, key, value) VALUES (1, 0, 'k', 'v')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM t");
  exec_ok(db, "INSERT INTO t(partition, key, value) VALUES (0, 'k', 'v')");
  /* takhin_commit's metadata is text or NULL */
  exec_err_exact(db, "takhin_commit: metadata must be text or NULL",
                 "SELECT takhin_commit('g', 't', 0, 1, x'6869')");
  exec_err_exact(db, "takhin_commit: metadata must be text or NULL",
                 "SELECT takhin_commit('g', 't', 0, 1, 42)");
  exec_err_exact(db, "takhin_commit: group must be text", "SELECT takhin_commit(x'67', 't', 0, 1)");
  exec_err_exact(db, "takhin_commit: topic must be text", "SELECT takhin_commit('g', x'74', 0, 1)");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_commit('g', 't', 0, 1, NULL)");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_commit('g', 't', 0, 1, 'meta')");
  sqlite3_close(db);
}
