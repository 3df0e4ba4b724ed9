/*
** test_sql_tail.c -- "the latest N messages" through SQL: ORDER BY offset
** DESC with a LIMIT is served by the virtual table itself (no sort in the
** plan), with or without a partition constraint, on a topic's own table and
** on takhin_messages, and returns the newest records. test_sql.c checks the
** plans that carry a tie-breaker; these are the plain forms people type.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <string.h>

#include "sqltest.h"
#include "testutil.h"

/* The rows of sql as "a|b" lines. */
static char *rows(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(db));
  sqlite3_str *o = sqlite3_str_new(db);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    sqlite3_str_appendf(o, "%s|%s\n", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1));
  cr_assert_eq(rc, SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return sqlite3_str_finish(o);
}

Test(sql_tail, order_by_offset_desc_limit_is_served_by_the_table) {
  const char *path = tu_store_path("sql_tail");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=3)");
  /* partition p gets 10 * (p + 1) records: offsets 0..9, 0..19, 0..29 */
  exec_ok(db, "BEGIN");
  for (int p = 0; p < 3; p++)
    for (int i = 0; i < 10 * (p + 1); i++)
      exec_ok(db, "INSERT INTO t(partition, key, value) VALUES (%d, 'k%d_%d', 'v')", p, p, i);
  exec_ok(db, "COMMIT");
  static const struct {
    const char *sql, *want;
  } cases[] = {
      {"SELECT partition, offset FROM t WHERE partition = 1 ORDER BY offset DESC LIMIT 3",
       "1|19\n1|18\n1|17\n"},
      /* no partition constraint: only partition 2 reaches offsets 20..29 */
      {"SELECT partition, offset FROM t ORDER BY offset DESC LIMIT 4", "2|29\n2|28\n2|27\n2|26\n"},
      {"SELECT partition, offset FROM t WHERE partition = 0 ORDER BY offset DESC LIMIT 2 OFFSET 1",
       "0|8\n0|7\n"},
      {"SELECT partition, offset FROM takhin_messages WHERE topic = 't' AND partition = 2 "
       "ORDER BY offset DESC LIMIT 2",
       "2|29\n2|28\n"},
      {"SELECT partition, offset FROM takhin_messages WHERE topic = 't' ORDER BY offset DESC LIMIT 3",
       "2|29\n2|28\n2|27\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *p = plan(db, cases[i].sql);
    cr_expect(!strstr(p, "TEMP B-TREE"), "%s: SQLite sorts:\n%s", cases[i].sql, p);
    sqlite3_free(p);
    char *got = rows(db, cases[i].sql);
    cr_expect_str_eq(got, cases[i].want, "%s", cases[i].sql);
    sqlite3_free(got);
  }
  /* a sort on another column is SQLite's, and still right */
  char *p = plan(db, "SELECT partition, offset FROM t ORDER BY key DESC LIMIT 1");
  cr_expect(strstr(p, "TEMP B-TREE"), "%s", p);
  sqlite3_free(p);
  char *got = rows(db, "SELECT partition, offset FROM t ORDER BY key DESC LIMIT 1");
  cr_expect_str_eq(got, "2|9\n"); /* 'k2_9' is the greatest key */
  sqlite3_free(got);
  sqlite3_close(db);
}
