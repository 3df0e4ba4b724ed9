/*
** testutil.h -- helpers shared by the Criterion tests: fresh store paths under
** the build folder, small record builders, files and bytes, store folder
** snapshots, small file systems; and, for the Criterion tests, asserting
** forms of the common steps (open, read a file, produce).
*/
#ifndef TAKHIN_TESTUTIL_H
#define TAKHIN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "takhin.h"
#include "testing.h" /* takhin_topic_balance; the hooks in TAKHIN_TESTING builds */

/* A fresh, empty directory for one test; returns a path "<dir>/store.db"
** (static storage, overwritten by the next call). */
const char *tu_store_path(const char *test_name);

/* The "<db>-takhin/<topic>-<partition>/<base %020>.log" path of a segment. */
void tu_segment_path(char *out, size_t cap, const char *db, const char *topic, int partition,
                     int64_t base);

/* Remove the catalog at db with its WAL and shared-memory files (best
** effort): the next open rebuilds it from the segment files. */
void tu_remove_catalog(const char *db);

/* Remove a directory tree (best effort). */
void tu_rmtree(const char *path);

/* Size of a file, -1 if missing. */
int64_t tu_file_size(const char *path);

/* Fill a record whose key is "k<i>" and value is "v<i>" padded to vlen bytes
** with a repeating pattern derived from i; buffers are caller-owned. */
void tu_make_record(takhin_record *r, char *kbuf, size_t kcap, char *vbuf, size_t vlen, long i);

/* Check value bytes produced by tu_make_record for index i. */
int tu_value_ok(const void *v, size_t len, size_t vlen, long i);

/* ---- files and bytes ---- */

/* The whole file, NUL-terminated (malloc'd: the caller frees it), its size to
** *len unless len is NULL; NULL, with tu_error() saying why, when it cannot
** be read. */
void *tu_read_file(const char *path, size_t *len);

/* XOR the byte at pos of a file with mask. 0, or -1 with tu_error(). */
int tu_flip(const char *path, int64_t pos, uint8_t mask);

/* Whether anything (even a dangling link) is at path; whether a folder is. */
int tu_path_exists(const char *path);
int tu_dir_exists(const char *path);

/* The folder part of path ("a/b/store.db" -> "a/b") to out. */
void tu_dir_of(const char *path, char *out, size_t cap);

/* n-byte big-endian integers, as Kafka's formats store them. */
uint64_t tu_get_be(const uint8_t *p, int n);
void tu_put_be(uint8_t *p, int n, uint64_t v);

/* A monotonic clock in milliseconds. */
int64_t tu_now_ms(void);

/* ---- the catalog's sparse index ---- */

struct sqlite3;

/* One index entry of a segment, as the store loads it from the catalog. */
typedef struct tu_index_row {
  int64_t topic_id;
  int32_t partition;
  int64_t segment_base;
  int64_t offset, position, max_ts;
} tu_index_row;

/* The index entries the catalog c holds (a connection of the test's own),
** decoded from takhin_cat_index_run's packed runs with the store's own
** load rules (store/catalog.c tk_cat_index, store/index_run.c): per
** segment, runs in first_offset order, each replacing the entries loaded
** so far from its first offset on; a damaged run (empty, a length not a
** multiple of 24, a first entry of another offset) ends that segment's
** entries there, as the store then walks the file for the rest. Only the
** given topic_id, partition and segment_base; a negative one: any. In
** (topic_id, partition, segment_base, offset) order, to *rows (malloc'd,
** the caller frees; NULL when none) and their count to *n. 0, or -1 with
** tu_error() saying why. */
int tu_cat_index_rows(struct sqlite3 *c, int64_t topic_id, int32_t partition, int64_t seg_base,
                      tu_index_row **rows, size_t *n);

/* How many entries tu_cat_index_rows gives; -1 with tu_error(). */
int64_t tu_cat_index_count(struct sqlite3 *c, int64_t topic_id, int32_t partition,
                           int64_t seg_base);

/* A store folder (catalog, WAL leftovers, segment tree) held in memory, so
** each case of a sweep can start again from identical bytes. */
typedef struct tu_snap_ent {
  char rel[512];
  int is_dir;
  uint8_t *data;
  size_t len;
} tu_snap_ent;

typedef struct tu_snap {
  char root[1024];
  tu_snap_ent *v;
  size_t n, cap;
} tu_snap;

/* Read the folder root into sn. 0, or -1 with tu_error() saying why. */
int tu_snap_take(tu_snap *sn, const char *root);

/* Make root hold exactly the snapshot again (stray files removed too).
** 0, or -1 with tu_error() saying why. */
int tu_snap_restore(const tu_snap *sn);

/* Free a snapshot's contents (sn zeroed). */
void tu_snap_free(tu_snap *sn);

/* Under root: a private mount namespace (the mount vanishes with this
** process even if an assertion ends the test early) and a tmpfs of size
** ("4m") at <tu_store_path(name)'s folder>/fs, whose path goes to dir.
** 0, or -1 with tu_error() saying which step failed. */
int tu_mount_small_fs(const char *name, const char *size, char *dir, size_t cap);

/* Fill the file system holding dir to the last byte; returns the filler's
** path (static) so the test can give the space back, NULL (tu_error())
** when it cannot be created. */
const char *tu_fill_disk(const char *dir);

/* What the last failed tu_snap_*, tu_mount_small_fs or tu_fill_disk ran
** into. */
const char *tu_error(void);

/* ---- asserting forms, for the Criterion tests ----
** Only where <criterion/criterion.h> (or tsan_shim's) was included first:
** static inline, so each test compiles those it uses against the Criterion
** it runs under, and testutil.c, built without one, needs none. */
#ifdef cr_assert
#include <stdlib.h>

/* takhin_open(db) with default options; asserts success. */
static inline takhin_store *tu_open_ok(const char *db) {
  takhin_store *s = NULL;
  int rc = takhin_open(db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_OK, "open %s: %s (%s)", db, takhin_errstr(rc), takhin_errmsg());
  return s;
}

/* tu_read_file that must succeed. */
static inline void *tu_read_file_ok(const char *path, size_t *len) {
  void *p = tu_read_file(path, len);
  cr_assert_not_null(p, "%s", tu_error());
  return p;
}

/* tu_flip that must succeed. */
static inline void tu_flip_ok(const char *path, int64_t pos, uint8_t mask) {
  cr_assert_eq(tu_flip(path, pos, mask), 0, "%s", tu_error());
}

/* tu_snap_take and tu_snap_restore that must succeed. */
static inline void tu_snap_take_ok(tu_snap *sn, const char *root) {
  cr_assert_eq(tu_snap_take(sn, root), 0, "%s", tu_error());
}
static inline void tu_snap_restore_ok(const tu_snap *sn) {
  cr_assert_eq(tu_snap_restore(sn), 0, "%s", tu_error());
}

/* Produce n records k<i>/v<i> of vlen bytes (tu_make_record), i from
** first_i, in batches of bs, asserting each batch lands at offset i. */
static inline void tu_produce_n(takhin_store *s, const char *topic, int part, long first_i, long n,
                                size_t vlen, long bs) {
  takhin_record *recs = calloc((size_t)bs, sizeof *recs);
  char(*keys)[32] = calloc((size_t)bs, 32);
  char *vals = malloc((size_t)bs * (vlen + 1));
  for (long i = 0; i < n; i += bs) {
    long m = n - i < bs ? n - i : bs;
    for (long j = 0; j < m; j++)
      tu_make_record(&recs[j], keys[j], 32, vals + (size_t)j * (vlen + 1), vlen, first_i + i + j);
    int64_t first = -1;
    int rc = takhin_produce(s, topic, part, recs, (size_t)m, &first);
    cr_assert_eq(rc, TAKHIN_OK, "produce: %s", takhin_errmsg());
    cr_assert_eq(first, first_i + i, "first offset %lld, want %ld", (long long)first, first_i + i);
  }
  free(recs);
  free(keys);
  free(vals);
}
#endif

#endif
