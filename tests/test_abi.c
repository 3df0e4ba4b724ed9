/*
** test_abi.c -- what a program built against one takhin.h may rely on from
** the library it runs with: the version numbers (compile time and run time
** agree, and the number follows the string), and the structs that grow by a
** leading size field (a caller compiled with an older, smaller struct still
** works).
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

Test(version, number_matches_string_and_library) {
  int maj, min, pat;
  cr_assert_eq(sscanf(TAKHIN_VERSION, "%d.%d.%d", &maj, &min, &pat), 3, "%s", TAKHIN_VERSION);
  cr_assert_eq(TAKHIN_VERSION_NUMBER, maj * 1000000 + min * 1000 + pat);
  cr_assert_eq(TAKHIN_VERSION_MAJOR, maj);
  cr_assert_eq(TAKHIN_VERSION_MINOR, min);
  cr_assert_eq(TAKHIN_VERSION_PATCH, pat);
  cr_assert_eq(takhin_libversion_number(), TAKHIN_VERSION_NUMBER);
  cr_assert_str_eq(takhin_libversion(), TAKHIN_VERSION);
#if TAKHIN_VERSION_NUMBER < 1000 /* usable in #if, as SQLITE_VERSION_NUMBER is */
  cr_assert_fail("0.1.0 is the first release");
#endif
}

Test(version, format_version_is_the_catalogs) {
  /* the number the catalog is stamped with is the one the header states */
  const char *db = tu_store_path("abi_format");
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'",
                                  -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(st, 0), TAKHIN_FORMAT_VERSION);
  sqlite3_finalize(st);
  sqlite3_close(h);
}
