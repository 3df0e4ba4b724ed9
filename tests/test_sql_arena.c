/*
** test_sql_arena.c -- INSERT transactions through the SQLite extension: the
** rows a transaction queues (kept in chunks of a per-table arena until
** COMMIT) and the checks made once per transaction rather than per row
** (the store, the topic's limits) must give exactly what per-row work gave:
** every row with its bytes, savepoints honoured, limits enforced, and the
** next transaction starting clean.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltest.h"
#include "testutil.h"

/* The value of row i: n bytes derived from i, so a row whose bytes moved or
** were overwritten in the arena is caught. */
static void fill(unsigned char *buf, size_t n, int i) {
  for (size_t k = 0; k < n; k++) buf[k] = (unsigned char)(i * 131 + k * 7 + (k >> 8));
}

static void insert(sqlite3_stmt *ins, int partition, int i, size_t n) {
  unsigned char *v = malloc(n ? n : 1);
  cr_assert(v);
  fill(v, n, i);
  char key[32];
  snprintf(key, sizeof key, "k%d", i);
  sqlite3_bind_int(ins, 1, partition);
  sqlite3_bind_text(ins, 2, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob(ins, 3, v, (int)n, SQLITE_TRANSIENT);
  cr_assert_eq(sqlite3_step(ins), SQLITE_DONE, "INSERT %d: %s", i,
               sqlite3_errmsg(sqlite3_db_handle(ins)));
  sqlite3_reset(ins);
  free(v);
}

/* The rows of partition p, in offset order, must be ids[0..n) with sizes[]. */
static void expect_rows(sqlite3 *db, const char *table, int p, const int *ids, const size_t *sizes,
                        size_t n) {
  char *sql = sqlite3_mprintf("SELECT key, value FROM \"%w\" WHERE partition = %d ORDER BY offset",
                              table, p);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  size_t got = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    cr_assert_lt(got, n, "partition %d: more than %zu rows", p, n);
    char key[32];
    snprintf(key, sizeof key, "k%d", ids[got]);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), key, "partition %d row %zu", p, got);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    cr_assert_eq(len, sizes[got], "row %s: %zu bytes, expected %zu", key, len, sizes[got]);
    unsigned char *want = malloc(len ? len : 1);
    fill(want, len, ids[got]);
    cr_assert(len == 0 || !memcmp(sqlite3_column_blob(st, 1), want, len), "row %s: bytes differ",
              key);
    free(want);
    got++;
  }
  cr_assert_eq(got, n, "partition %d: %zu rows, expected %zu", p, got, n);
  sqlite3_finalize(st);
  sqlite3_free(sql);
}

/* One transaction queues more than an arena chunk (256 KiB) in 1 KiB rows,
** one row larger than a chunk, and a savepoint rolled back in the middle;
** the next transaction (reusing the kept chunk) and one on another table
** must not see any of it again. */
Test(sql_txn, rows_across_arena_chunks_and_savepoints) {
  const char *path = tu_store_path("sql_txn_arena");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=2, max_message_bytes=1048576)");
  sqlite3_stmt *ins;
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO a(partition, key, value) VALUES (?, ?, ?)", -1,
                                  &ins, NULL),
               SQLITE_OK);
  enum { N = 700 };
  static int ids[2][N + 10];
  static size_t sizes[2][N + 10];
  size_t n[2] = {0, 0};
  exec_ok(db, "BEGIN");
  for (int i = 0; i < N; i++) {
    int p = i % 2;
    size_t sz = i == 350 ? 300000 : 1000 + (size_t)(i % 50);
    if (i == 400) exec_ok(db, "SAVEPOINT s");
    insert(ins, p, i, sz);
    if (i < 400) ids[p][n[p]] = i, sizes[p][n[p]++] = sz;
  }
  exec_ok(db, "ROLLBACK TO s"); /* rows 400..699 go */
  insert(ins, 1, 9000, 2000);
  ids[1][n[1]] = 9000, sizes[1][n[1]++] = 2000;
  exec_ok(db, "RELEASE s");
  exec_ok(db, "COMMIT");
  expect_rows(db, "a", 0, ids[0], sizes[0], n[0]);
  expect_rows(db, "a", 1, ids[1], sizes[1], n[1]);

  /* the next transaction reuses the arena: only its own rows are added */
  exec_ok(db, "BEGIN");
  for (int i = 10000; i < 10005; i++) {
    insert(ins, 0, i, 1500);
    ids[0][n[0]] = i, sizes[0][n[0]++] = 1500;
  }
  exec_ok(db, "COMMIT");
  expect_rows(db, "a", 0, ids[0], sizes[0], n[0]);
  expect_rows(db, "a", 1, ids[1], sizes[1], n[1]);

  /* a rolled back transaction adds nothing, and leaves nothing queued */
  exec_ok(db, "BEGIN");
  insert(ins, 0, 20000, 100);
  exec_ok(db, "ROLLBACK");
  insert(ins, 1, 20001, 100); /* autocommit */
  ids[1][n[1]] = 20001, sizes[1][n[1]++] = 100;
  expect_rows(db, "a", 0, ids[0], sizes[0], n[0]);
  expect_rows(db, "a", 1, ids[1], sizes[1], n[1]);
  sqlite3_finalize(ins);
  sqlite3_close(db);
}

/* The topic's limits are read once per transaction and per table: each
** table of one transaction checks its own, a refused row leaves the rows
** before it queued, and the statement that failed adds nothing. */
Test(sql_txn, limits_per_table_within_one_transaction) {
  const char *path = tu_store_path("sql_txn_limits");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE big USING takhin(partitions=3, max_message_bytes=100000)");
  exec_ok(db, "CREATE VIRTUAL TABLE small USING takhin(partitions=1, max_message_bytes=200)");
  exec_ok(db, "CREATE VIRTUAL TABLE keyed USING takhin(partitions=1, cleanup_policy=compact)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO big(partition, key, value) VALUES (2, 'a', zeroblob(5000))");
  exec_ok(db, "INSERT INTO small(key, value) VALUES ('b', 'x')");
  cr_assert_neq(sqlite3_exec(db, "INSERT INTO small(key, value) VALUES ('c', zeroblob(5000))", NULL,
                             NULL, NULL),
                SQLITE_OK);
  cr_assert(strstr(sqlite3_errmsg(db), "max_message_bytes 200"), "%s", sqlite3_errmsg(db));
  cr_assert_neq(sqlite3_exec(db, "INSERT INTO small(partition, key, value) VALUES (1, 'd', 'x')",
                             NULL, NULL, NULL),
                SQLITE_OK);
  cr_assert(strstr(sqlite3_errmsg(db), "partition 1 out of range [0, 1)"), "%s",
            sqlite3_errmsg(db));
  cr_assert_neq(sqlite3_exec(db, "INSERT INTO keyed(value) VALUES ('v')", NULL, NULL, NULL),
                SQLITE_OK);
  cr_assert(strstr(sqlite3_errmsg(db), "every record needs a key"), "%s", sqlite3_errmsg(db));
  exec_ok(db, "INSERT INTO keyed(key, value) VALUES ('k', 'v')");
  exec_ok(db, "INSERT INTO big(partition, key, value) VALUES (0, 'e', zeroblob(50000))");
  /* takhin_messages checks each row's own topic */
  exec_ok(db,
          "INSERT INTO takhin_messages(topic, partition, key, value) VALUES ('big', 1, 'f', 'x')");
  cr_assert_neq(
      sqlite3_exec(
          db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('small', 'g', zeroblob(300))",
          NULL, NULL, NULL),
      SQLITE_OK);
  exec_ok(db, "COMMIT");
  char *rows = NULL;
  sqlite3_stmt *st;
  cr_assert_eq(
      sqlite3_prepare_v2(
          db,
          "SELECT group_concat(topic || ':' || partition || ':' || key || ':' || length(value), ' ') "
          "FROM (SELECT * FROM takhin_messages ORDER BY topic, partition, offset)",
          -1, &st, NULL),
      SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  rows = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  cr_assert_str_eq(rows, "big:0:e:50000 big:1:f:1 big:2:a:5000 keyed:0:k:1 small:0:b:1");
  sqlite3_free(rows);
  sqlite3_close(db);
}
