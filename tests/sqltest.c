/*
** sqltest.c -- see sqltest.h.
*/
#include "sqltest.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Open (or create) path with the extension loaded; asserts on failure. */
sqlite3 *db_open(const char *path) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  cr_assert_eq(rc, SQLITE_OK, "open %s: %s", path, sqlite3_errmsg(db));
  sqlite3_busy_timeout(db, 10000);
  cr_assert_eq(sqlite3_enable_load_extension(db, 1), SQLITE_OK);
  char *err = NULL;
  rc = sqlite3_load_extension(db, EXT_PATH, "sqlite3_takhin_init", &err);
  cr_assert_eq(rc, SQLITE_OK, "load %s: %s", EXT_PATH, err ? err : "?");
  sqlite3_free(err);
  sqlite3_enable_load_extension(db, 0);
  return db;
}

/* Run SQL (printf-style, %q/%w available), asserting success. */
void exec_ok(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  cr_assert_eq(rc, SQLITE_OK, "SQL failed: %s\n  error: %s", sql, err ? err : sqlite3_errmsg(db));
  sqlite3_free(err);
  sqlite3_free(sql);
}

static char *vfmt(const char *fmt, va_list ap) { return sqlite3_vmprintf(fmt, ap); }

/* Run SQL that must fail; the message must contain want. */
void exec_err(sqlite3 *db, const char *want, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  cr_assert_neq(rc, SQLITE_OK, "SQL should have failed: %s", sql);
  const char *msg = err ? err : sqlite3_errmsg(db);
  cr_assert(strstr(msg, want), "SQL: %s\n  error \"%s\"\n  lacks \"%s\"", sql, msg, want);
  sqlite3_free(err);
  sqlite3_free(sql);
}

/* Run SQL that must fail with exactly this message. */
void exec_err_exact(sqlite3 *db, const char *want, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  cr_assert_neq(rc, SQLITE_OK, "SQL should have failed: %s", sql);
  const char *msg = err ? err : sqlite3_errmsg(db);
  cr_assert_str_eq(msg, want, "SQL: %s\n  error: %s\n  want:  %s", sql, msg, want);
  sqlite3_free(err);
}

/* Append one value as text: NULL as "NULL", a blob as x'hex'. */
void put_value(sqlite3_str *o, sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_NULL: sqlite3_str_appendall(o, "NULL"); break;
  case SQLITE_BLOB: {
    const unsigned char *b = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    sqlite3_str_appendall(o, "x'");
    for (int k = 0; k < n; k++) sqlite3_str_appendf(o, "%02x", b[k]);
    sqlite3_str_appendall(o, "'");
    break;
  }
  default: sqlite3_str_appendall(o, (const char *)sqlite3_column_text(st, i));
  }
}

/* Rows of a query as "a|b\n" lines (sqlite3_free it); asserts success. */
char *q(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  cr_assert_eq(rc, SQLITE_OK, "prepare: %s\n  error: %s", sql, sqlite3_errmsg(db));
  sqlite3_str *o = sqlite3_str_new(NULL);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      if (i) sqlite3_str_appendchar(o, 1, '|');
      put_value(o, st, i);
    }
    sqlite3_str_appendchar(o, 1, '\n');
  }
  cr_assert_eq(rc, SQLITE_DONE, "step: %s\n  error: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_free(sql);
  char *r = sqlite3_str_finish(o);
  return r ? r : sqlite3_mprintf("");
}

int64_t q_int(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "prepare %s: %s", sql,
               sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  cr_assert_eq(rc, SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return v;
}

/* EXPLAIN QUERY PLAN details, one per line (sqlite3_free it). */
char *plan(sqlite3 *db, const char *sql) {
  char *e = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, e, -1, &st, NULL), SQLITE_OK, "%s: %s", e,
               sqlite3_errmsg(db));
  sqlite3_str *o = sqlite3_str_new(NULL);
  while (sqlite3_step(st) == SQLITE_ROW) sqlite3_str_appendf(o, "%s\n", sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  sqlite3_free(e);
  char *r = sqlite3_str_finish(o);
  return r ? r : sqlite3_mprintf("");
}

static int cmp_char(const void *a, const void *b) { return *(const char *)a - *(const char *)b; }

/* The idxStr of the (first) takhin scan in the plan, letters sorted. */
void plan_idx(sqlite3 *db, const char *sql, char *out, size_t cap) {
  char *p = plan(db, sql);
  const char *at = strstr(p, "VIRTUAL TABLE INDEX 0:");
  cr_assert(at, "no virtual table scan in the plan of %s:\n%s", sql, p);
  at += strlen("VIRTUAL TABLE INDEX 0:");
  size_t n = strcspn(at, " \n");
  cr_assert_lt(n, cap);
  memcpy(out, at, n);
  out[n] = 0;
  qsort(out, n, 1, cmp_char);
  sqlite3_free(p);
}

void sorted(char *s) { qsort(s, strlen(s), 1, cmp_char); }

takhin_store *c_open(const char *db, int read_only) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = read_only;
  takhin_store *s = NULL;
  int rc = takhin_open(db, &o, &s);
  cr_assert_eq(rc, TAKHIN_OK, "takhin_open(%s, read_only=%d): %s", db, read_only, takhin_errmsg());
  return s;
}
