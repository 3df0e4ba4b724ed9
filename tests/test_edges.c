/*
** test_edges.c -- the smaller defects of issue 11: every public entry point
** checks its arguments as its documentation says (NULL pointers, sizes whose
** byte count would overflow), strict number parsing in topic configs, a
** read-only open of a store on read-only media, and what a caller is told
** when a BUFFERED write fails on a full disk.
*/
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define EXPECT(call, code, text)                                                                   \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    cr_assert_eq(rc_, code, "%s returned %d (%s): %s", #call, rc_, takhin_errstr(rc_),             \
                 takhin_errmsg());                                                                 \
    cr_assert(strstr(takhin_errmsg(), text), "%s: message \"%s\" lacks \"%s\"", #call,             \
              takhin_errmsg(), text);                                                              \
  } while (0)

static takhin_store *open_with_topic(const char *name) {
  const char *db = tu_store_path(name);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "t", 2, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(
      takhin_topic_create(s, "c", 1, (const char *const[]){"cleanup_policy", "compact", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_produce(s, "c", 0, &r, 1, NULL), TAKHIN_OK);
  return s;
}

/* Kafka's murmur2 of no bytes: what a NULL key hashes as, whatever its length. */
Test(edges, murmur2_null_data) {
  int32_t empty = takhin_murmur2("", 0);
  cr_assert_eq(takhin_murmur2(NULL, 0), empty);
  cr_assert_eq(takhin_murmur2(NULL, 5), empty, "NULL data hashes as zero bytes, never read");
  cr_assert_eq(takhin_murmur2(NULL, SIZE_MAX), empty);
  cr_assert_eq(takhin_partition_for_key(NULL, 5, 3), takhin_partition_for_key("", 0, 3));
  cr_assert_eq(takhin_partition_for_key("abc", 3, 0), 0, "partitions < 1: 0, as documented");
}

Test(edges, counts_whose_byte_size_overflows) {
  takhin_store *s = open_with_topic("edges_counts");
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  size_t huge = SIZE_MAX / sizeof(takhin_record) + 2; /* n * sizeof wraps to a small number */
  EXPECT(takhin_produce_topic(s, "t", &r, huge, NULL, NULL), TAKHIN_EINVAL, "records");
  EXPECT(takhin_produce_topic(s, "t", &r, SIZE_MAX, NULL, NULL), TAKHIN_EINVAL, "records");
  EXPECT(takhin_produce(s, "t", 0, &r, SIZE_MAX, NULL), TAKHIN_EINVAL, "records");
  takhin_offset_commit oc = {"t", 0, 1, NULL};
  EXPECT(takhin_group_commit(s, "g", &oc, SIZE_MAX / sizeof(int64_t) + 2), TAKHIN_EINVAL,
         "offsets");
  EXPECT(takhin_group_commit(s, "g", &oc, SIZE_MAX), TAKHIN_EINVAL, "offsets");
  /* nothing was stored by any of them */
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 1);
  int64_t off;
  cr_assert_eq(takhin_group_fetch(s, "g", "t", 0, &off, NULL), TAKHIN_ENOTFOUND);
  takhin_close(s);
}

/* Every pointer argument a call reads or writes through is checked. */
Test(edges, null_arguments_of_every_entry_point) {
  takhin_store *s = open_with_topic("edges_null");
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  takhin_options_init(NULL); /* documented no-op */
  takhin_options o;
  takhin_options_init(&o);
  o.maintenance_ms = -1;
  takhin_store *x = NULL;
  EXPECT(takhin_open(tu_store_path("edges_null_opts"), &o, &x), TAKHIN_EINVAL, "maintenance_ms");
  cr_assert_null(x);
  EXPECT(takhin_recovery(s, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_recovery(NULL, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_topic_create(s, NULL, 1, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_create(NULL, "x", 1, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_topic_create(s, "x", 1, (const char *const[]){"segment_bytes", NULL}),
         TAKHIN_EINVAL, "no value");
  EXPECT(takhin_topic_partitions(s, "t", NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_topic_partitions(s, NULL, NULL), TAKHIN_EMISUSE, "NULL");
  int32_t np;
  EXPECT(takhin_topic_partitions(s, NULL, &np), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_delete(s, NULL), TAKHIN_EINVAL, "NULL");
  char **names;
  size_t n;
  EXPECT(takhin_topic_list(s, NULL, &n), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_topic_list(s, &names, NULL), TAKHIN_EMISUSE, "NULL");
  takhin_topic_desc d;
  EXPECT(takhin_topic_describe(s, "t", NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_topic_describe(s, NULL, &d), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_add_partitions(s, NULL, 3), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_alter_config(s, NULL, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_alter_config(s, "t", (const char *const[]){"retention_ms", NULL}),
         TAKHIN_EINVAL, "no value");
  EXPECT(takhin_produce(s, "t", 0, NULL, 1, NULL), TAKHIN_EINVAL, "no records");
  EXPECT(takhin_produce_topic(s, "t", NULL, 1, NULL, NULL), TAKHIN_EINVAL, "no records");
  EXPECT(takhin_produce_topic(s, NULL, &r, 1, NULL, NULL), TAKHIN_EINVAL, "NULL");
  takhin_header h = {.key = NULL, .key_len = 3, .value = "x", .value_len = 1};
  takhin_record rh = r;
  rh.headers = &h;
  rh.n_headers = 1;
  EXPECT(takhin_produce(s, "t", 0, &rh, 1, NULL), TAKHIN_EINVAL, "header key is NULL");
  rh.headers = NULL;
  EXPECT(takhin_produce(s, "t", 0, &rh, 1, NULL), TAKHIN_EINVAL, "record 0");
  takhin_cursor *c;
  EXPECT(takhin_cursor_open(s, NULL, 0, &c), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_cursor_open(NULL, "t", 0, &c), TAKHIN_EMISUSE, "NULL");
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message m;
  EXPECT(takhin_cursor_seek(NULL, 0, 0, 0), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_next(c, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_get(c, 0, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_get(NULL, 0, &m), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_get_key(NULL, "k", 1, &m), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_get_key(c, "k", 1, NULL), TAKHIN_EMISUSE, "NULL");
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  takhin_header hd;
  EXPECT(takhin_message_header(NULL, 0, &hd), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_message_header(&m, 0, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_message_header(&m, 0, &hd), TAKHIN_EINVAL, "");
  takhin_cursor_close(c);
  cr_assert_eq(takhin_cursor_open(s, "c", 0, &c), TAKHIN_OK);
  EXPECT(takhin_cursor_get_key(c, NULL, 5, &m), TAKHIN_EMISUSE, "NULL");
  takhin_cursor_close(c);
  takhin_partition_info pi;
  EXPECT(takhin_partition_info_get(s, NULL, 0, &pi), TAKHIN_EINVAL, "NULL");
  takhin_segment_info *segs;
  EXPECT(takhin_segments_list(s, "t", 0, NULL, &n), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_segments_list(s, "t", 0, &segs, NULL), TAKHIN_EMISUSE, "NULL");
  int64_t off;
  EXPECT(takhin_offset_for_time(s, NULL, 0, 0, &off), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_offset_for_time(NULL, "t", 0, 0, &off), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_delete_records(s, NULL, 0, 0), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_retention_apply(s, NULL, -1, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_balance(s, NULL, NULL, 0, &(double){0}), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_topic_balance(s, "t", NULL, 0, NULL), TAKHIN_EMISUSE, "NULL");
  takhin_offset_commit oc = {NULL, 0, 0, NULL};
  EXPECT(takhin_group_commit(s, "g", &oc, 1), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_group_commit(s, NULL, &oc, 1), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_group_commit(s, "g", NULL, 1), TAKHIN_EINVAL, "no offsets");
  EXPECT(takhin_group_fetch(s, "g", NULL, 0, &off, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_group_fetch(s, NULL, "t", 0, &off, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_group_fetch(s, "g", "t", 0, NULL, NULL), TAKHIN_EMISUSE, "NULL");
  takhin_group_offset *go;
  EXPECT(takhin_group_list(s, NULL, NULL, &n), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_group_list(s, NULL, &go, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_group_delete(s, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_group_delete(NULL, "g"), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_compact(s, NULL, -1, 1, NULL), TAKHIN_EINVAL, "NULL");
  EXPECT(takhin_compact(NULL, "c", -1, 1, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_maintenance_run(NULL, NULL), TAKHIN_EMISUSE, "NULL");
  cr_assert_eq(takhin_maintenance_run(s, NULL), TAKHIN_OK, "out may be NULL: %s", takhin_errmsg());
  cr_assert_str_neq(takhin_errstr(12345), "");
  takhin_close(s);
}

/* Topic configs are parsed strictly: what strtoll would take but the text
** does not say (spaces, a '+', an empty value, digits past int64) is refused. */
Test(edges, config_numbers_parsed_strictly) {
  takhin_store *s = open_with_topic("edges_config");
  static const char *const bad[][2] = {
      {"segment_bytes", " 100"},
      {"segment_bytes", "100 "},
      {"segment_bytes", "+100"},
      {"segment_bytes", ""},
      {"segment_bytes", "-"},
      {"retention_ms", "99999999999999999999"},
      {"retention_bytes", "1e3"},
      {"segment_ms", "0x10"},
      {"min_cleanable_dirty_ratio", " 0.5"},
      {"min_cleanable_dirty_ratio", "inf"},
      {"min_cleanable_dirty_ratio", "nan"},
      {"min_cleanable_dirty_ratio", ""},
      {"min_cleanable_dirty_ratio", "0x0.8"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *const cfg[] = {bad[i][0], bad[i][1], NULL};
    EXPECT(takhin_topic_create(s, "x", 1, cfg), TAKHIN_EINVAL, bad[i][0]);
    EXPECT(takhin_topic_alter_config(s, "t", cfg), TAKHIN_EINVAL, bad[i][0]);
  }
  char **names;
  size_t n;
  cr_assert_eq(takhin_topic_list(s, &names, &n), TAKHIN_OK);
  cr_assert_eq(n, 2, "no refused topic was created");
  takhin_free(names);
  takhin_topic_desc d;
  cr_assert_eq(takhin_topic_describe(s, "t", &d), TAKHIN_OK);
  cr_assert_eq(d.segment_bytes, 1073741824, "refused alters changed nothing");
  cr_assert_eq(
      takhin_topic_create(s, "x", 1,
                          (const char *const[]){"retention_ms", "-1", "min_cleanable_dirty_ratio",
                                                "0.25", "segment_bytes", "1000", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
}

/* A private mount namespace (the mounts vanish with this test's process
** even if an assertion ends it early) and a small tmpfs at <test dir>/fs;
** returns the store path inside it. Needs root. */
static const char *mount_small_fs(const char *name, const char *size) {
  static char db[4200];
  char dir[4096];
  cr_assert_eq(tu_mount_small_fs(name, size, dir, sizeof dir), 0, "%s", tu_error());
  snprintf(db, sizeof db, "%s/store.db", dir);
  return db;
}

/* Read every record of t-p, checking values made by tu_make_record(vlen). */
static long read_all(takhin_store *s, const char *topic, int32_t p, size_t vlen) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, topic, p, &c), TAKHIN_OK, "%s", takhin_errmsg());
  long n = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_eq(m.offset, n, "dense offsets");
    cr_assert(tu_value_ok(m.value, m.value_len, vlen, n), "record %ld intact", n);
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  takhin_cursor_close(c);
  return n;
}

/* read_only = 1 on read-only media: the catalog is in WAL mode and SQLite
** cannot create its -shm there, so the catalog is opened immutable. The
** test makes a store on a tmpfs, closes it (SQLite removes -wal and -shm),
** remounts the tmpfs read-only, and reads everything. */
Test(edges, read_only_open_on_read_only_media) {
  if (geteuid() != 0) cr_skip_test("needs root to mount a tmpfs and remount it read-only");
  const char *db = mount_small_fs("edges_romedia", "8m");
  char dir[4200];
  snprintf(dir, sizeof dir, "%.*s", (int)(strlen(db) - strlen("/store.db")), db);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(
      takhin_topic_create(s, "t", 2, (const char *const[]){"segment_bytes", "20000", NULL}),
      TAKHIN_OK);
  cr_assert_eq(
      takhin_topic_create(s, "c", 1, (const char *const[]){"cleanup_policy", "compact", NULL}),
      TAKHIN_OK);
  char k[32], v[512];
  takhin_record r;
  for (long i = 0; i < 300; i++) {
    tu_make_record(&r, k, sizeof k, v, 300, i);
    cr_assert_eq(takhin_produce(s, "t", (int32_t)(i % 2 ? 1 : 0), &r, 1, NULL), TAKHIN_OK);
  }
  for (long i = 0; i < 10; i++) {
    tu_make_record(&r, k, sizeof k, v, 300, i);
    cr_assert_eq(takhin_produce(s, "c", 0, &r, 1, NULL), TAKHIN_OK);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  cr_assert_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0, "remount read-only");
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "read-only media: %s", takhin_errmsg());
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(pi.high_watermark, 150);
  cr_assert_gt(pi.segments, 1);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 1, &c), TAKHIN_OK);
  long n = 0;
  while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
    cr_assert(tu_value_ok(m.value, m.value_len, 300, 2 * n + 1));
    n++;
  }
  cr_assert_eq(n, 150);
  takhin_cursor_close(c);
  cr_assert_eq(takhin_cursor_open(s, "c", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get_key(c, "k7", 2, &m), TAKHIN_OK, "key lookup: %s", takhin_errmsg());
  cr_assert(tu_value_ok(m.value, m.value_len, 300, 7));
  takhin_cursor_close(c);
  char **names;
  size_t nt;
  cr_assert_eq(takhin_topic_list(s, &names, &nt), TAKHIN_OK);
  cr_assert_eq(nt, 2);
  takhin_free(names);
  takhin_record w = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  cr_assert_eq(takhin_produce(s, "t", 0, &w, 1, NULL), TAKHIN_EREADONLY);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* a writer open there fails with a clear error, and changes nothing */
  cr_assert_neq(takhin_open(db, NULL, &s), TAKHIN_OK);
  cr_assert_neq(strlen(takhin_errmsg()), 0);
  umount(dir);
}

/* Fill the file system holding dir to the last byte (testutil.c). */
static const char *fill_disk(const char *dir) {
  const char *filler = tu_fill_disk(dir);
  cr_assert_not_null(filler, "%s", tu_error());
  return filler;
}

/* A compacted topic whose key index is behind its log (as after a crash
** before the key rows landed), opened on a full disk: the writer open
** succeeds and says the catch-up was deferred, reads are served (by the
** writer and by a read-only handle), a key lookup that needs the missing
** rows fails with the disk's error instead of answering wrong, and once
** there is room again the lookup catches up and answers right. */
Test(edges, compacted_writer_open_on_full_disk) {
  if (geteuid() != 0) cr_skip_test("needs root to mount a small tmpfs for a full disk");
  const char *db = mount_small_fs("edges_compact_full", "4m");
  char dir[4200];
  snprintf(dir, sizeof dir, "%.*s", (int)(strlen(db) - strlen("/store.db")), db);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "c", 1,
                                   (const char *const[]){"cleanup_policy", "compact",
                                                         "segment_bytes", "20000", NULL}),
               TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "t", 1, NULL), TAKHIN_OK);
  char k[32], v[512];
  takhin_record r;
  for (long i = 0; i < 200; i++) {
    tu_make_record(&r, k, sizeof k, v, 300, i);
    cr_assert_eq(takhin_produce(s, "c", 0, &r, 1, NULL), TAKHIN_OK);
    cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* the key index forgets the log: the next open must catch up */
  sqlite3 *cat;
  cr_assert_eq(sqlite3_open(db, &cat), SQLITE_OK);
  cr_assert_eq(
      sqlite3_exec(cat, "DELETE FROM takhin_cat_key; UPDATE takhin_cat_partition SET key_upto = 0",
                   NULL, NULL, NULL),
      SQLITE_OK, "%s", sqlite3_errmsg(cat));
  /* As when the disk filled under a running writer that then died, the
  ** catalog's -wal and -shm exist (this connection keeps them): a full disk
  ** leaves no room to create them, and SQLite needs them to open at all. */
  cr_assert_eq(sqlite3_exec(cat, "SELECT count(*) FROM takhin_cat_topic", NULL, NULL, NULL),
               SQLITE_OK);

  const char *filler = fill_disk(dir);
  int rc = takhin_open(db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_OK, "a full disk must not keep the writer from opening: %s",
               takhin_errmsg());
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.key_index_deferred, 1, "the deferred catch-up is reported");
  cr_assert(strstr(ri.message, "c-0: key index"), "%s", ri.message);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *ro;
  cr_assert_eq(takhin_open(db, &o, &ro), TAKHIN_OK, "read-only beside it: %s", takhin_errmsg());
  cr_assert_eq(read_all(s, "c", 0, 300), 200);
  cr_assert_eq(read_all(s, "t", 0, 300), 200);
  cr_assert_eq(read_all(ro, "c", 0, 300), 200);
  cr_assert_eq(read_all(ro, "t", 0, 300), 200);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "c", 0, &c), TAKHIN_OK);
  rc = takhin_cursor_get_key(c, "k150", 4, &m);
  cr_assert(rc == TAKHIN_ENOSPC || rc == TAKHIN_ECATALOG,
            "no wrong answer from a stale index: %d %s", rc, takhin_errmsg());
  unlink(filler);
  cr_assert_eq(takhin_cursor_get_key(c, "k150", 4, &m), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(m.offset, 150);
  cr_assert(tu_value_ok(m.value, m.value_len, 300, 150));
  takhin_cursor_close(c);
  takhin_close(ro);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  sqlite3_close(cat);
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.key_index_deferred, 0);
  takhin_compaction_result cres;
  cr_assert_eq(takhin_compact(s, "c", 0, 1, &cres), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(cres.keys_kept, 200);
  takhin_close(s);
  umount(dir);
}

/* A read-only open on a full disk when no writer runs (a clean close left
** no -wal or -shm, and there is no room to create the WAL index): every
** record is still served. */
Test(edges, read_only_open_on_full_disk) {
  if (geteuid() != 0) cr_skip_test("needs root to mount a small tmpfs for a full disk");
  const char *db = mount_small_fs("edges_ro_full", "4m");
  char dir[4200];
  snprintf(dir, sizeof dir, "%.*s", (int)(strlen(db) - strlen("/store.db")), db);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(
      takhin_topic_create(s, "t", 1, (const char *const[]){"segment_bytes", "20000", NULL}),
      TAKHIN_OK);
  char k[32], v[512];
  takhin_record r;
  for (long i = 0; i < 200; i++) {
    tu_make_record(&r, k, sizeof k, v, 300, i);
    cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  fill_disk(dir);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "read-only on a full disk: %s", takhin_errmsg());
  cr_assert_eq(read_all(s, "t", 0, 300), 200);
  takhin_close(s);
  /* a writer needs room for the WAL index: it says so, and changes nothing */
  int rc = takhin_open(db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_ENOSPC, "%d %s", rc, takhin_errmsg());
  cr_assert(strstr(takhin_errmsg(), "the disk is full"), "%s", takhin_errmsg());
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(read_all(s, "t", 0, 300), 200);
  takhin_close(s);
  umount(dir);
}
