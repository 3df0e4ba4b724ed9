/*
** sqltest.h -- helpers the SQL-level Criterion tests (test_sql_*.c) share: a
** connection with the takhin extension loaded, SQL that must succeed or fail,
** query results as text, query plans, and a C API handle beside SQL.
** Implemented in sqltest.c, which only the test_sql_* binaries link, so
** testutil.c, built into the TSan shim too, stays free of Criterion.
*/
#ifndef TAKHIN_SQLTEST_H
#define TAKHIN_SQLTEST_H

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "takhin.h"

#define EXT_PATH TAKHIN_BUILD_DIR "/takhin"

/* Open (or create) path with the extension loaded; asserts on failure. */
sqlite3 *db_open(const char *path);

/* Run SQL (printf-style, %q/%w available), asserting success. */
void exec_ok(sqlite3 *db, const char *fmt, ...);

/* Run SQL that must fail; the message must contain want. */
void exec_err(sqlite3 *db, const char *want, const char *fmt, ...);

/* Run SQL that must fail with exactly this message. */
void exec_err_exact(sqlite3 *db, const char *want, const char *sql);

/* Append column i of the current row as text: NULL as "NULL", a blob as
** x'hex'. */
void put_value(sqlite3_str *o, sqlite3_stmt *st, int i);

/* Rows of a query as "a|b\n" lines (sqlite3_free it); asserts success. */
char *q(sqlite3 *db, const char *fmt, ...);

/* The rows of a query (printf-style) must be exactly want. */
#define EXPECT_ROWS(db, want, ...)                                                                 \
  do {                                                                                             \
    char *got_ = q(db, __VA_ARGS__);                                                               \
    cr_assert_str_eq(got_, want, "query: %s\n--- got:\n%s--- want:\n%s", #__VA_ARGS__, got_,       \
                     want);                                                                        \
    sqlite3_free(got_);                                                                            \
  } while (0)

/* The first column of the first row of a query (printf-style); asserts there
** is one. */
int64_t q_int(sqlite3 *db, const char *fmt, ...);

/* EXPLAIN QUERY PLAN details, one per line (sqlite3_free it). */
char *plan(sqlite3 *db, const char *sql);

/* The idxStr of the (first) takhin scan in the plan, letters sorted, to out. */
void plan_idx(sqlite3 *db, const char *sql, char *out, size_t cap);

/* Sort the letters of s in place. */
void sorted(char *s);

/* takhin_open(db) through the C API, read-only or not; asserts success. */
takhin_store *c_open(const char *db, int read_only);

#endif
