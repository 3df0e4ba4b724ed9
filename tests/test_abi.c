/*
** test_abi.c -- what a program built against one takhin.h may rely on from
** the library it runs with: the version numbers (compile time and run time
** agree, and the number follows the string), and the structs that grow by a
** leading size field (a caller compiled with an older, smaller struct still
** works).
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stddef.h>
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
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'",
                                  -1, &st, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(st, 0), TAKHIN_FORMAT_VERSION);
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* A caller compiled when takhin_options ended before maintenance_ms: the
** init macro gave its size; open reads only that much and defaults the rest
** (maintenance off), even when bytes past it hold garbage. */
Test(options, an_older_smaller_struct_gets_defaults_for_the_rest) {
  union {
    takhin_options o;
    unsigned char bytes[sizeof(takhin_options) + 16];
  } u;
  memset(&u, 0xa5, sizeof u);
  size_t old = offsetof(takhin_options, maintenance_ms);
  takhin_options_init_size(&u.o, old);
  cr_assert_eq(u.o.size, old);
  cr_assert_eq(u.o.durability, TAKHIN_DURABILITY_OS);
  cr_assert_eq(u.o.max_open_files, 256);
  cr_assert_eq(u.bytes[old], 0xa5, "init wrote past the caller's struct");
  u.o.durability = TAKHIN_DURABILITY_FSYNC;
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("abi_old_options"), &u.o, &s), TAKHIN_OK, "%s",
               takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "t", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* Zeroed without the init macro (size 0): the first release's layout. */
Test(options, size_zero_is_the_first_layout) {
  takhin_options o;
  memset(&o, 0, sizeof o);
  o.durability = TAKHIN_DURABILITY_OS;
  o.flush_bytes = 1 << 20;
  o.flush_ms = 100;
  o.max_open_files = 8;
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("abi_zero_options"), &o, &s), TAKHIN_OK, "%s",
               takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* A caller compiled against a newer takhin.h with a field this library does
** not know: 0 there is its default and fine; anything else is refused. */
Test(options, a_newer_larger_struct_with_unknown_options_is_refused) {
  union {
    takhin_options o;
    unsigned char bytes[sizeof(takhin_options) + 16];
  } u;
  takhin_options_init_size(&u.o, sizeof u);
  cr_assert_eq(u.o.size, sizeof u);
  cr_assert_eq(u.bytes[sizeof(takhin_options) + 3], 0, "init zeroes what it does not know");
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("abi_new_options"), &u.o, &s), TAKHIN_OK, "%s",
               takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  u.bytes[sizeof(takhin_options) + 3] = 1;
  cr_assert_eq(takhin_open(tu_store_path("abi_new_options2"), &u.o, &s), TAKHIN_EINVAL);
  cr_assert(strstr(takhin_errmsg(), "does not know"), "%s", takhin_errmsg());
  u.o.size = 2;
  cr_assert_eq(takhin_open(tu_store_path("abi_new_options3"), &u.o, &s), TAKHIN_EINVAL);
  cr_assert(strstr(takhin_errmsg(), "too small"), "%s", takhin_errmsg());
}

/* takhin_topic_describe of an older caller fills no more than its struct,
** and of a newer one zeroes the fields this library does not have. */
Test(topic_desc, older_and_newer_sizes) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("abi_desc"), NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "t", 3, (const char *const[]){"retention_ms", "1234", NULL}),
               TAKHIN_OK);
  union {
    takhin_topic_desc d;
    unsigned char bytes[sizeof(takhin_topic_desc) + 16];
  } u;
  size_t old = offsetof(takhin_topic_desc, max_message_bytes);
  memset(&u, 0xa5, sizeof u);
  cr_assert_eq(takhin_topic_describe_size(s, "t", &u.d, old), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_str_eq(u.d.name, "t");
  cr_assert_eq(u.d.partitions, 3);
  cr_assert_eq(u.d.retention_ms, 1234);
  for (size_t i = old; i < sizeof u; i++) cr_assert_eq(u.bytes[i], 0xa5, "byte %zu written", i);

  memset(&u, 0xa5, sizeof u);
  cr_assert_eq(takhin_topic_describe_size(s, "t", &u.d, sizeof u), TAKHIN_OK);
  cr_assert_eq(u.d.partitions, 3);
  cr_assert_eq(u.d.min_cleanable_dirty_ratio, 0.5);
  for (size_t i = sizeof(takhin_topic_desc); i < sizeof u; i++) cr_assert_eq(u.bytes[i], 0);

  cr_assert_eq(takhin_topic_describe_size(s, "t", &u.d, 4), TAKHIN_EINVAL);
  takhin_topic_desc d; /* the macro: this caller's own size */
  cr_assert_eq(takhin_topic_describe(s, "t", &d), TAKHIN_OK);
  cr_assert_eq(d.retention_ms, 1234);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}
