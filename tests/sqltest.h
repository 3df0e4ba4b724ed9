/*
** sqltest.h -- helpers the SQL-level Criterion tests share: a connection
** with the takhin extension loaded, and SQL that must succeed. Header-only
** (static functions): only the Criterion tests that include it use it, so
** testutil.c, built into the TSan shim too, stays free of Criterion.
*/
#ifndef TAKHIN_SQLTEST_H
#define TAKHIN_SQLTEST_H

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>

#define EXT_PATH TAKHIN_BUILD_DIR "/takhin"

/* Open (or create) path with the extension loaded; asserts on failure. */
static sqlite3 *db_open(const char *path) {
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
static void exec_ok(sqlite3 *db, const char *fmt, ...) {
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

#endif
