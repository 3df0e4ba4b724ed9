/*
** test_index_run.c -- catalog format 3's packed index runs
** (takhin_cat_index_run, store/index_run.c).
**
**   - index_run: encode, decode and merge without a store; every malformed
**     run is ECORRUPT and leaves the array as it was.
**   - index_run_catalog: tk_cat_upsert_index's split into runs of
**     TK_INDEX_RUN_MAX entries and tk_cat_delete_index_from's cut, read back
**     through tk_cat_index (a store's catalog, a segment no partition owns).
**   - index_run_diff: a seeded random walk of produce calls, flushes,
**     reopens and killed writers over small segments, against a model: after
**     each reopen the catalog's entries (read here with plain SQLite, as
**     tk_cat_index reads them) are a prefix of the entries the segment files
**     call for (computed here from the batch headers), and after a clean
**     close exactly those; every acknowledged record reads back.
**   - index_run_upgrade: format 1 and 2 catalogs (a row per entry) are read
**     as they are by a reader and upgraded by a writer, also by the SQL
**     extension's store opened inside a host transaction, which may roll
**     the upgrade back; the extension's reader of a format 2 catalog.
**   - index_run_damage: every field of a run damaged, runs added, cut and
**     emptied: no open crashes or loses a record, lookups answer as before,
**     and a writer's open and close leave sound runs.
**   - index_run_cut: a segment file cut inside its index: the runs no longer
**     name positions past the cut (tk_cat_delete_index_from).
**   - index_run_undo: the SQL extension's failed COMMIT takes an append back;
**     the runs stay the file's.
** TAKHIN_TEST_SEED=<n> repeats a logged random walk.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "index_run.h"
#include "store.h"
#include "testutil.h"

#define TOPIC "t"
#define TS0 1700000000000LL
#define MAXB 40   /* records per produce call at most */
#define MAXV 1500 /* value bytes at most */
#define HDR 61    /* a RecordBatch v2 header */

static tk_index_entry ent(int64_t o, int64_t p, int64_t t) {
  return (tk_index_entry){.offset = o, .position = p, .max_ts = t, .run_max = t};
}

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static int64_t rng_in(uint64_t *s, int64_t lo, int64_t hi) { /* [lo, hi] */
  return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* ---- the packed form, without a store ----------------------------------- */

static void assert_same(const tk_index_entry *a, const tk_index_entry *b, size_t n,
                        const char *ctx) {
  for (size_t i = 0; i < n; i++)
    cr_assert(
        a[i].offset == b[i].offset && a[i].position == b[i].position && a[i].max_ts == b[i].max_ts,
        "%s: entry %zu is (%" PRId64 ", %" PRId64 ", %" PRId64 "), want (%" PRId64 ", %" PRId64
        ", %" PRId64 ")",
        ctx, i, a[i].offset, a[i].position, a[i].max_ts, b[i].offset, b[i].position, b[i].max_ts);
}

Test(index_run, round_trip) {
  /* offsets and positions rise, as in a run; the values reach every byte */
  tk_index_entry e[] = {ent(-7, -8, -9), ent(5, 0, INT64_MAX), ent(1LL << 40, 1LL << 33, TS0),
                        ent(0x0102030405060708LL, INT64_MAX / 3, -1),
                        ent(INT64_MAX, INT64_MAX, INT64_MIN)};
  size_t n = sizeof e / sizeof *e;
  uint8_t buf[sizeof e / sizeof *e * TK_INDEX_RUN_ENTRY];
  tk_index_run_encode(e, n, buf);
  /* the layout on disk: three little-endian int64, offset first */
  static const uint8_t first[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  const uint8_t *e3 = buf + 3 * TK_INDEX_RUN_ENTRY;
  cr_assert(!memcmp(e3, first, 8), "the offset is little-endian at the entry's byte 0");
  cr_assert(!memcmp(e3 + 16, (uint8_t[8]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8),
            "then the position, then the timestamp (-1)");
  cr_assert(buf[TK_INDEX_RUN_ENTRY] == 5 &&
                !memcmp(buf + TK_INDEX_RUN_ENTRY + 8, (uint8_t[8]){0}, 8),
            "the next entry starts 24 bytes on");
  for (size_t i = 0; i < n; i++) {
    tk_index_entry d;
    memset(&d, 0xab, sizeof d);
    tk_index_run_entry(buf + i * TK_INDEX_RUN_ENTRY, &d);
    assert_same(&d, &e[i], 1, "decode");
    cr_assert_eq(d.run_max, d.max_ts, "run_max starts as the entry's own max_ts");
  }
  tk_index_entry *v = NULL;
  size_t vn = 0, cap = 0;
  cr_assert_eq(tk_index_run_merge(&v, &vn, &cap, e[0].offset, buf, sizeof buf), TAKHIN_OK);
  cr_assert_eq(vn, n);
  cr_assert_geq(cap, vn);
  assert_same(v, e, n, "merge into an empty array");
  free(v);
}

/* The runs written from offset o replace the entries at or past o. */
Test(index_run, merge_replaces_overlap) {
  tk_index_entry *v = NULL;
  size_t n = 0, cap = 0;
  uint8_t b[8 * TK_INDEX_RUN_ENTRY];
  tk_index_entry a[] = {ent(0, 0, 10), ent(10, 4100, 20), ent(20, 8200, 30), ent(30, 12300, 40),
                        ent(40, 16400, 50)};
  tk_index_run_encode(a, 5, b);
  cr_assert_eq(tk_index_run_merge(&v, &n, &cap, 0, b, 5 * TK_INDEX_RUN_ENTRY), TAKHIN_OK);
  /* from 20: the newest entries rewritten (20's timestamp changed) and more */
  tk_index_entry r[] = {ent(20, 8200, 35), ent(25, 9000, 36), ent(50, 20000, 60)};
  tk_index_run_encode(r, 3, b);
  cr_assert_eq(tk_index_run_merge(&v, &n, &cap, 20, b, 3 * TK_INDEX_RUN_ENTRY), TAKHIN_OK);
  tk_index_entry want1[] = {a[0], a[1], r[0], r[1], r[2]};
  cr_assert_eq(n, 5);
  assert_same(v, want1, 5, "overlap from 20");
  /* past the end: appended */
  tk_index_entry p[] = {ent(90, 30000, 1)};
  tk_index_run_encode(p, 1, b);
  cr_assert_eq(tk_index_run_merge(&v, &n, &cap, 90, b, TK_INDEX_RUN_ENTRY), TAKHIN_OK);
  cr_assert_eq(n, 6);
  assert_same(&v[5], p, 1, "appended");
  /* between two entries (not at one): the later ones go */
  tk_index_entry q[] = {ent(15, 6000, 2), ent(16, 7000, 3)};
  tk_index_run_encode(q, 2, b);
  cr_assert_eq(tk_index_run_merge(&v, &n, &cap, 15, b, 2 * TK_INDEX_RUN_ENTRY), TAKHIN_OK);
  tk_index_entry want2[] = {a[0], a[1], q[0], q[1]};
  cr_assert_eq(n, 4);
  assert_same(v, want2, 4, "overlap from 15");
  /* before everything: all replaced */
  tk_index_entry w[] = {ent(-5, 0, 9)};
  tk_index_run_encode(w, 1, b);
  cr_assert_eq(tk_index_run_merge(&v, &n, &cap, -5, b, TK_INDEX_RUN_ENTRY), TAKHIN_OK);
  cr_assert_eq(n, 1);
  assert_same(v, w, 1, "replaced whole");
  free(v);
}

/* Growth past the first allocation keeps what was there. */
Test(index_run, merge_grows) {
  tk_index_entry *v = NULL;
  size_t n = 0, cap = 0;
  enum { RUNS = 40, PER = 7 };
  tk_index_entry want[RUNS * PER];
  uint8_t b[PER * TK_INDEX_RUN_ENTRY];
  for (int r = 0; r < RUNS; r++) {
    for (int i = 0; i < PER; i++)
      want[r * PER + i] = ent(r * PER + i, (r * PER + i) * 4096LL, r * 1000 + i);
    tk_index_run_encode(&want[r * PER], PER, b);
    cr_assert_eq(tk_index_run_merge(&v, &n, &cap, r * PER, b, sizeof b), TAKHIN_OK);
  }
  cr_assert_eq(n, (size_t)RUNS * PER);
  assert_same(v, want, n, "grown");
  free(v);
}

/* Every malformed run: ECORRUPT, and the array, its count and capacity as
** they were. */
Test(index_run, merge_malformed_changes_nothing) {
  tk_index_entry base[] = {ent(0, 0, 1), ent(4, 4096, 2), ent(9, 8200, 3)};
  uint8_t good[3 * TK_INDEX_RUN_ENTRY], big[3 * TK_INDEX_RUN_ENTRY + 24];
  tk_index_run_encode(base, 3, good);
  tk_index_entry run[] = {ent(4, 4096, 7), ent(12, 12000, 8), ent(13, 12500, 9)};
  tk_index_run_encode(run, 3, big);
  memset(big + 3 * TK_INDEX_RUN_ENTRY, 0x5a, 24);
  struct bad_run {
    int64_t first;
    const void *blob;
    size_t len;
    const char *what;
  } bad[64];
  size_t nb = 0;
  bad[nb++] = (struct bad_run){4, NULL, 0, "NULL, empty"};
  bad[nb++] = (struct bad_run){4, NULL, 24, "NULL with a length"};
  bad[nb++] = (struct bad_run){4, big, 0, "empty"};
  for (size_t cut = 1; cut < TK_INDEX_RUN_ENTRY; cut++) {
    bad[nb++] = (struct bad_run){4, big, cut, "shorter than an entry"};
    bad[nb++] = (struct bad_run){4, big, 3 * TK_INDEX_RUN_ENTRY - cut, "a torn last entry"};
  }
  bad[nb++] = (struct bad_run){4, big, 3 * TK_INDEX_RUN_ENTRY + 1, "a byte too many"};
  bad[nb++] = (struct bad_run){5, big, 3 * TK_INDEX_RUN_ENTRY, "first offset one above"};
  bad[nb++] = (struct bad_run){3, big, 3 * TK_INDEX_RUN_ENTRY, "first offset one below"};
  bad[nb++] = (struct bad_run){INT64_MIN, big, 3 * TK_INDEX_RUN_ENTRY, "first offset INT64_MIN"};
  bad[nb++] = (struct bad_run){12, big, 3 * TK_INDEX_RUN_ENTRY, "the second entry's offset"};
  /* entries that do not rise, in offset or in position */
  static uint8_t flat[4][3 * TK_INDEX_RUN_ENTRY];
  tk_index_entry same_off[] = {ent(4, 4096, 7), ent(4, 8192, 8), ent(13, 12500, 9)};
  tk_index_entry back_off[] = {ent(4, 4096, 7), ent(12, 8192, 8), ent(11, 12500, 9)};
  tk_index_entry same_pos[] = {ent(4, 4096, 7), ent(12, 4096, 8), ent(13, 12500, 9)};
  tk_index_entry back_pos[] = {ent(4, 4096, 7), ent(12, 8192, 8), ent(13, 8191, 9)};
  tk_index_run_encode(same_off, 3, flat[0]);
  tk_index_run_encode(back_off, 3, flat[1]);
  tk_index_run_encode(same_pos, 3, flat[2]);
  tk_index_run_encode(back_pos, 3, flat[3]);
  bad[nb++] = (struct bad_run){4, flat[0], sizeof flat[0], "an offset twice"};
  bad[nb++] = (struct bad_run){4, flat[1], sizeof flat[1], "an offset going back"};
  bad[nb++] = (struct bad_run){4, flat[2], sizeof flat[2], "a position twice"};
  bad[nb++] = (struct bad_run){4, flat[3], sizeof flat[3], "a position going back"};
  cr_assert_leq(nb, sizeof bad / sizeof *bad);
  for (size_t k = 0; k < nb; k++) {
    tk_index_entry *v = NULL;
    size_t n = 0, cap = 0;
    cr_assert_eq(tk_index_run_merge(&v, &n, &cap, 0, good, sizeof good), TAKHIN_OK);
    tk_index_entry *v0 = v;
    size_t n0 = n, cap0 = cap;
    tk_index_entry copy[8];
    memcpy(copy, v, n * sizeof *v);
    int rc = tk_index_run_merge(&v, &n, &cap, bad[k].first, bad[k].blob, bad[k].len);
    cr_assert_eq(rc, TAKHIN_ECORRUPT, "%s (len %zu): %s", bad[k].what, bad[k].len,
                 takhin_errstr(rc));
    cr_assert(v == v0 && n == n0 && cap == cap0, "%s: the array changed", bad[k].what);
    cr_assert(!memcmp(copy, v, n * sizeof *v), "%s: entries changed", bad[k].what);
    /* and onto an empty array */
    tk_index_entry *e = NULL;
    size_t en = 0, ecap = 0;
    cr_assert_eq(tk_index_run_merge(&e, &en, &ecap, bad[k].first, bad[k].blob, bad[k].len),
                 TAKHIN_ECORRUPT, "%s, onto nothing", bad[k].what);
    cr_assert(!e && !en && !ecap, "%s: an empty array grew", bad[k].what);
    free(v);
  }
}

/* Where a refused run's entries may have started: the lower of its key and
** its first entry's offset. */
Test(index_run, bound_of_a_damaged_run) {
  tk_index_entry e[] = {ent(40, 4096, 1), ent(50, 8192, 2)};
  uint8_t b[2 * TK_INDEX_RUN_ENTRY];
  tk_index_run_encode(e, 2, b);
  cr_assert_eq(tk_index_run_bound(90, b, sizeof b), 40, "a key moved up: the entry's offset");
  cr_assert_eq(tk_index_run_bound(30, b, sizeof b), 30, "a key moved down: the key");
  cr_assert_eq(tk_index_run_bound(INT64_MAX, b, TK_INDEX_RUN_ENTRY + 5), 40, "a torn blob");
  cr_assert_eq(tk_index_run_bound(90, b, TK_INDEX_RUN_ENTRY - 1), 90, "no whole entry");
  cr_assert_eq(tk_index_run_bound(90, NULL, 0), 90, "no blob");
}

/* ---- the catalog's runs, through catalog.c ------------------------------ */

/* A segment no partition owns: the store's own writes never touch its runs. */
#define GHOST_TOPIC 987654
#define GHOST_BASE (1LL << 40)

static void ghost_entries(tk_index_entry *e, size_t n, int64_t ts_bias) {
  for (size_t i = 0; i < n; i++)
    e[i] = ent(GHOST_BASE + 3 * (int64_t)i, 4096 * (int64_t)i + (int64_t)(i % 5),
               TS0 + ts_bias + (int64_t)(i * 7 % 1000));
}

static void ghost_read(takhin_store *s, tk_index_entry **v, size_t *n) {
  int64_t damaged = 0;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_index(s, GHOST_TOPIC, 0, GHOST_BASE, v, n, &damaged);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK, "tk_cat_index: %s", takhin_errmsg());
  cr_assert_eq(damaged, INT64_MAX, "no run is damaged");
}

/* (first_offset, entry count, first_position) of the ghost's runs. */
static size_t ghost_runs(const char *db, int64_t (*out)[3], size_t cap) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT first_offset, length(entries), first_position FROM "
                                  "takhin_cat_index_run WHERE topic_id = ?1 AND segment_base = ?2 "
                                  "ORDER BY first_offset",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_bind_int64(st, 1, GHOST_TOPIC);
  sqlite3_bind_int64(st, 2, GHOST_BASE);
  size_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW && n < cap) {
    out[n][0] = sqlite3_column_int64(st, 0);
    out[n][1] = sqlite3_column_int64(st, 1);
    out[n][2] = sqlite3_column_int64(st, 2);
    cr_assert_eq(out[n][1] % TK_INDEX_RUN_ENTRY, 0);
    out[n][1] /= TK_INDEX_RUN_ENTRY;
    n++;
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* 40,000 entries: three runs of at most TK_INDEX_RUN_MAX; a rewrite from
** the middle replaces the runs from there; a cut by position drops the runs
** past it and shortens the last one left. */
Test(index_run_catalog, split_rewrite_cut, .timeout = 120) {
  char db[1024];
  snprintf(db, sizeof db, "%s", tu_store_path("index_run_split"));
  takhin_store *s = tu_open_ok(db);
  enum { N = 40000, FROM = 20000, CUT = 30000 };
  tk_index_entry *e = malloc(N * sizeof *e);
  ghost_entries(e, N, 0);
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_upsert_index(s, GHOST_TOPIC, 0, GHOST_BASE, e, N);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK, "%s", takhin_errmsg());
  int64_t runs[16][3];
  size_t nr = ghost_runs(db, runs, 16);
  cr_assert_eq(nr, 3, "40,000 entries in %zu runs", nr);
  cr_assert(runs[0][1] == TK_INDEX_RUN_MAX && runs[1][1] == TK_INDEX_RUN_MAX &&
            runs[2][1] == N - 2 * TK_INDEX_RUN_MAX);
  for (size_t i = 0; i < nr; i++) {
    size_t at = i * TK_INDEX_RUN_MAX;
    cr_assert(runs[i][0] == e[at].offset && runs[i][2] == e[at].position,
              "run %zu keyed by its first entry", i);
  }
  tk_index_entry *v;
  size_t n;
  ghost_read(s, &v, &n);
  cr_assert_eq(n, N);
  assert_same(v, e, N, "three runs read back");
  free(v);

  /* rewrite from FROM (inside the second run) with other timestamps */
  for (size_t i = FROM; i < N; i++) e[i].max_ts += 5000;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_upsert_index(s, GHOST_TOPIC, 0, GHOST_BASE, e + FROM, N - FROM);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK, "%s", takhin_errmsg());
  nr = ghost_runs(db, runs, 16);
  cr_assert_eq(nr, 4, "runs 0 and 1 kept, 2 replaced by two: %zu", nr);
  cr_assert(runs[2][0] == e[FROM].offset && runs[2][1] == TK_INDEX_RUN_MAX);
  cr_assert(runs[3][0] == e[FROM + TK_INDEX_RUN_MAX].offset &&
            runs[3][1] == N - FROM - TK_INDEX_RUN_MAX);
  ghost_read(s, &v, &n);
  cr_assert_eq(n, N);
  assert_same(v, e, N, "after the rewrite from the middle of a run");
  free(v);

  /* cut at the position of entry CUT (inside run 2): run 3 goes, run 2 ends
  ** before entry CUT, runs 0 and 1 stay as they are */
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_delete_index_from(s, GHOST_TOPIC, 0, GHOST_BASE, e[CUT].position);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK, "%s", takhin_errmsg());
  nr = ghost_runs(db, runs, 16);
  cr_assert_eq(nr, 3);
  cr_assert_eq(runs[2][1], CUT - FROM, "the last run left holds %lld entries, want %d",
               (long long)runs[2][1], CUT - FROM);
  ghost_read(s, &v, &n);
  cr_assert_eq(n, CUT);
  assert_same(v, e, CUT, "after the cut");
  free(v);

  /* a position between two entries: the one after it goes too */
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_delete_index_from(s, GHOST_TOPIC, 0, GHOST_BASE, e[100].position + 1);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK);
  nr = ghost_runs(db, runs, 16);
  cr_assert(nr == 1 && runs[0][1] == 101, "one run of 101 entries left (%zu runs)", nr);
  ghost_read(s, &v, &n);
  cr_assert_eq(n, 101);
  assert_same(v, e, n, "after the second cut");
  free(v);

  /* from 0: nothing left */
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_delete_index_from(s, GHOST_TOPIC, 0, GHOST_BASE, 0);
  pthread_mutex_unlock(&s->cat_lock);
  cr_assert_eq(rc, TAKHIN_OK);
  cr_assert_eq(ghost_runs(db, runs, 16), 0);
  ghost_read(s, &v, &n);
  cr_assert(n == 0 && !v);
  free(e);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* ---- reading runs and segment files with plain SQLite and stdio --------- */

typedef struct ents {
  tk_index_entry *v;
  size_t n, cap;
} ents;

static void ents_push(ents *a, tk_index_entry e) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 64;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    cr_assert_not_null(a->v);
  }
  a->v[a->n++] = e;
}

static int64_t le64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
  return (int64_t)u;
}

typedef struct runrow {
  int64_t rowid, topic, part, base, first_offset, first_position;
  int type;
  uint8_t *b;
  size_t len;
} runrow;

typedef struct runset {
  runrow *v;
  size_t n;
} runset;

static void runs_read(const char *db, runset *rs) {
  memset(rs, 0, sizeof *rs);
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT rowid, topic_id, partition, segment_base, first_offset, "
                                  "first_position, entries FROM takhin_cat_index_run ORDER BY "
                                  "topic_id, partition, segment_base, first_offset",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  size_t cap = 0;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (rs->n == cap) {
      cap = cap ? cap * 2 : 64;
      rs->v = realloc(rs->v, cap * sizeof *rs->v);
    }
    runrow *r = &rs->v[rs->n++];
    r->rowid = sqlite3_column_int64(st, 0);
    r->topic = sqlite3_column_int64(st, 1);
    r->part = sqlite3_column_int64(st, 2);
    r->base = sqlite3_column_int64(st, 3);
    r->first_offset = sqlite3_column_int64(st, 4);
    r->first_position = sqlite3_column_int64(st, 5);
    r->type = sqlite3_column_type(st, 6);
    const void *b = sqlite3_column_blob(st, 6);
    r->len = (size_t)sqlite3_column_bytes(st, 6);
    r->b = malloc(r->len + 1);
    if (r->len) memcpy(r->b, b, r->len);
  }
  cr_assert_eq(step, SQLITE_DONE, "%s", sqlite3_errmsg(h));
  sqlite3_finalize(st);
  sqlite3_close(h);
}

static void runs_free(runset *rs) {
  for (size_t i = 0; i < rs->n; i++) free(rs->v[i].b);
  free(rs->v);
  memset(rs, 0, sizeof *rs);
}

/* Whether a run is what tk_cat_index accepts: whole entries, the first at
** first_offset and first_position, offsets and positions rising. */
static int run_ok(const runrow *r) {
  if (r->type != SQLITE_BLOB || !r->len || r->len % TK_INDEX_RUN_ENTRY ||
      le64(r->b) != r->first_offset || le64(r->b + 8) != r->first_position)
    return 0;
  for (size_t k = TK_INDEX_RUN_ENTRY; k < r->len; k += TK_INDEX_RUN_ENTRY)
    if (le64(r->b + k) <= le64(r->b + k - TK_INDEX_RUN_ENTRY) ||
        le64(r->b + k + 8) <= le64(r->b + k + 8 - TK_INDEX_RUN_ENTRY))
      return 0;
  return 1;
}

/* The entries of one segment as tk_cat_index reads them (written here
** again, from the format's description, not with index_run.c): runs in
** first_offset order, each dropping the entries at or past its first
** offset; a damaged run drops, at the end, the entries from the lower of
** its first_offset and its first entry's offset on. Returns 1 when a run
** was damaged. */
static int runs_load(const runset *rs, int64_t topic, int64_t part, int64_t base, ents *out) {
  out->n = 0;
  int64_t bound = INT64_MAX;
  for (size_t i = 0; i < rs->n; i++) {
    const runrow *r = &rs->v[i];
    if (r->topic != topic || r->part != part || r->base != base) continue;
    if (!run_ok(r)) {
      int64_t b = r->first_offset;
      if (r->type == SQLITE_BLOB && r->len >= TK_INDEX_RUN_ENTRY && le64(r->b) < b) b = le64(r->b);
      if (b < bound) bound = b;
      continue;
    }
    while (out->n && out->v[out->n - 1].offset >= r->first_offset) out->n--;
    for (size_t k = 0; k < r->len; k += TK_INDEX_RUN_ENTRY)
      ents_push(out, ent(le64(r->b + k), le64(r->b + k + 8), le64(r->b + k + 16)));
  }
  if (bound == INT64_MAX) return 0;
  size_t keep = 0;
  while (keep < out->n && out->v[keep].offset < bound) keep++;
  out->n = keep;
  return 1;
}

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* The entries a segment file calls for, from its batch headers: one at the
** first batch, then one at each batch TK_INDEX_INTERVAL or more past the
** last entry; each with the largest maxTimestamp of its stretch. *end gets
** where the whole batches end. */
static void file_entries(const char *path, ents *out, int64_t *end) {
  out->n = 0;
  size_t len = 0;
  uint8_t *f = tu_read_file(path, &len);
  cr_assert_not_null(f, "%s", tu_error());
  size_t pos = 0;
  int64_t last = 0;
  while (pos + HDR <= len) {
    size_t total = 12 + (size_t)be(f + pos + 8, 4);
    if (total < HDR || pos + total > len) break;
    int64_t base = (int64_t)be(f + pos, 8), mts = (int64_t)be(f + pos + 35, 8);
    if (out->n == 0 || (int64_t)pos - last >= TK_INDEX_INTERVAL) {
      ents_push(out, ent(base, (int64_t)pos, mts));
      last = (int64_t)pos;
    } else if (mts > out->v[out->n - 1].max_ts) {
      out->v[out->n - 1].max_ts = mts;
    }
    pos += total;
  }
  *end = (int64_t)pos;
  free(f);
}

static int64_t topic_id_of(const char *db, const char *topic) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *st;
  cr_assert_eq(
      sqlite3_prepare_v2(h, "SELECT topic_id FROM takhin_cat_topic WHERE name = ?1", -1, &st, NULL),
      SQLITE_OK);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "topic %s has no row", topic);
  int64_t id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return id;
}

/* The segment files of a partition, base offsets sorted. */
static size_t seg_files(const char *db, int part, int64_t *out, size_t cap) {
  char dir[2048];
  tu_segment_path(dir, sizeof dir, db, TOPIC, part, 0);
  *strrchr(dir, '/') = 0;
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l != 24 || strcmp(de->d_name + 20, ".log")) continue;
    cr_assert_lt(n, cap);
    out[n++] = strtoll(de->d_name, NULL, 10);
  }
  closedir(d);
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
      int64_t x = out[j];
      out[j] = out[j - 1];
      out[j - 1] = x;
    }
  return n;
}

/* The catalog's index of every segment of the topic against its file's.
** exact: equal, and every run of an existing segment well formed (its
** first_position its first entry's), naming no position past its file's
** end, and no run left of a segment without a file; otherwise: a prefix
** (the last entry's timestamp may lag: the newest entry of an active
** segment changes after it is written). 0 when so; otherwise 1 and what
** differs first in why. *nruns (may be NULL) gets the number of runs. */
static int index_diff(const char *db, int nparts, int exact, char *why, size_t cap, size_t *nruns) {
  int64_t tid = topic_id_of(db, TOPIC);
  runset rs;
  runs_read(db, &rs);
  ents cat = {0}, want = {0};
  size_t seen = 0;
  int bad = 0;
#define DIFF(...) (snprintf(why, cap, __VA_ARGS__), bad = 1)
  for (int p = 0; p < nparts && !bad; p++) {
    int64_t bases[512];
    size_t nb = seg_files(db, p, bases, 512);
    for (size_t i = 0; i < nb && !bad; i++) {
      char path[2048];
      tu_segment_path(path, sizeof path, db, TOPIC, p, bases[i]);
      int64_t end;
      file_entries(path, &want, &end);
      int damaged = runs_load(&rs, tid, p, bases[i], &cat);
      const char *seg = "partition %d segment %" PRId64;
      char where[96];
      snprintf(where, sizeof where, seg, p, bases[i]);
      if (damaged) {
        DIFF("%s: a damaged run", where);
        break;
      }
      if (exact ? cat.n != want.n : cat.n > want.n) {
        DIFF("%s: %zu entries in the catalog, the file calls for %zu", where, cat.n, want.n);
        break;
      }
      for (size_t k = 0; k < cat.n && !bad; k++) {
        tk_index_entry c = cat.v[k], w = want.v[k];
        int last = !exact && k == cat.n - 1;
        if (c.offset != w.offset || c.position != w.position ||
            (last ? c.max_ts > w.max_ts : c.max_ts != w.max_ts))
          DIFF("%s: entry %zu is (%" PRId64 ", %" PRId64 ", %" PRId64 "), the file's (%" PRId64
               ", %" PRId64 ", %" PRId64 ")",
               where, k, c.offset, c.position, c.max_ts, w.offset, w.position, w.max_ts);
      }
      for (size_t k = 0; k < rs.n && !bad; k++) {
        const runrow *r = &rs.v[k];
        if (r->topic != tid || r->part != p || r->base != bases[i]) continue;
        seen++;
        if (!exact) continue;
        if (!run_ok(r)) {
          DIFF("%s: run at %" PRId64 " (first_position %" PRId64 ") is malformed", where,
               r->first_offset, r->first_position);
        } else {
          for (size_t q = 0; q < r->len && !bad; q += TK_INDEX_RUN_ENTRY)
            if (le64(r->b + q + 8) >= end)
              DIFF("%s: run at %" PRId64 " names position %" PRId64
                   ", past the file's end %" PRId64,
                   where, r->first_offset, le64(r->b + q + 8), end);
        }
      }
    }
    if (exact)
      for (size_t k = 0; k < rs.n && !bad; k++) {
        const runrow *r = &rs.v[k];
        if (r->topic != tid || r->part != p) continue;
        int has = 0;
        for (size_t i = 0; i < nb; i++) has |= bases[i] == r->base;
        if (!has) DIFF("partition %d: a run of segment %" PRId64 ", which has no file", p, r->base);
      }
  }
#undef DIFF
  free(cat.v);
  free(want.v);
  runs_free(&rs);
  if (nruns) *nruns = seen;
  return bad;
}

/* index_diff that must find nothing; returns the number of runs seen. */
static size_t check_index(const char *db, int nparts, int exact, const char *ctx) {
  char why[512];
  size_t n = 0;
  int bad = index_diff(db, nparts, exact, why, sizeof why, &n);
  cr_assert(!bad, "%s: %s", ctx, why);
  return n;
}

/* With no writer open: the store's own reading of every segment's runs
** (tk_cat_index, through a read-only handle) is this file's runs_load. */
static void check_reader_agrees(const char *db, int nparts, const char *ctx) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s: %s", ctx, takhin_errmsg());
  int64_t tid = topic_id_of(db, TOPIC);
  runset rs;
  runs_read(db, &rs);
  ents model = {0};
  for (int p = 0; p < nparts; p++) {
    int64_t bases[512];
    size_t nb = seg_files(db, p, bases, 512);
    for (size_t i = 0; i < nb; i++) {
      int damaged = runs_load(&rs, tid, p, bases[i], &model);
      tk_index_entry *v = NULL;
      size_t n = 0;
      int64_t from = 0;
      pthread_mutex_lock(&s->cat_lock);
      int rc = tk_cat_index(s, tid, p, bases[i], &v, &n, &from);
      pthread_mutex_unlock(&s->cat_lock);
      cr_assert_eq(rc, TAKHIN_OK, "%s: %s", ctx, takhin_errmsg());
      cr_assert_eq(damaged, from != INT64_MAX, "%s: segment %" PRId64 ": damaged %d, %" PRId64, ctx,
                   bases[i], damaged, from);
      cr_assert_eq(n, model.n,
                   "%s: partition %d segment %" PRId64 ": tk_cat_index read %zu "
                   "entries, the runs hold %zu",
                   ctx, p, bases[i], n, model.n);
      assert_same(v, model.v, n, ctx);
      free(v);
    }
  }
  free(model.v);
  runs_free(&rs);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* ---- a model of what was produced --------------------------------------- */

typedef struct rec {
  long id;
  uint32_t vlen;
  int64_t ts;
} rec;

typedef struct plog {
  rec *v;
  size_t n, cap;
} plog;

typedef struct spec {
  int part, n;
  long id0;
  uint32_t vlen[MAXB];
  int64_t ts[MAXB];
} spec;

static void spec_make(spec *b, uint64_t *rng, int nparts, long *next_id, int64_t ts_mid, int maxn,
                      int maxv) {
  b->part = (int)rng_in(rng, 0, nparts - 1);
  b->n = (int)rng_in(rng, 1, maxn);
  b->id0 = *next_id;
  *next_id += b->n;
  for (int i = 0; i < b->n; i++) {
    b->vlen[i] = (uint32_t)rng_in(rng, 0, maxv);
    b->ts[i] = ts_mid + rng_in(rng, -2000, 2000); /* not in order: max_ts matters */
  }
}

/* 0 or the error; *first the batch's offset. No assertions: a forked
** child runs it too. */
static int spec_produce(takhin_store *s, const spec *b, int64_t *first) {
  static takhin_record r[MAXB];
  static char k[MAXB][32], v[MAXB][MAXV];
  for (int i = 0; i < b->n; i++) {
    tu_make_record(&r[i], k[i], sizeof k[i], v[i], b->vlen[i], b->id0 + i);
    r[i].timestamp = b->ts[i];
  }
  return takhin_produce(s, TOPIC, b->part, r, (size_t)b->n, first);
}

static void spec_record(plog *logs, const spec *b) {
  plog *l = &logs[b->part];
  for (int i = 0; i < b->n; i++) {
    if (l->n == l->cap) {
      l->cap = l->cap ? l->cap * 2 : 256;
      l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (rec){b->id0 + i, b->vlen[i], b->ts[i]};
  }
}

static int rec_ok(const takhin_message *m, const rec *r) {
  char key[32];
  int kl = snprintf(key, sizeof key, "k%ld", r->id);
  return m->timestamp == r->ts && m->key_len == (size_t)kl && !memcmp(m->key, key, (size_t)kl) &&
         tu_value_ok(m->value, m->value_len, r->vlen, r->id);
}

/* The model's answer to ListOffsets by time: the first offset whose
** timestamp is ts or later, the high watermark when none is. */
static int64_t model_for_time(const plog *l, int64_t ts) {
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].ts >= ts) return (int64_t)i;
  return (int64_t)l->n;
}

/* Damage the catalog cannot tell from sound rows (an entry's timestamp or
** a small shift inside a run of a segment whose row matches its file: such
** rows are trusted, not checked against the file, by design) may change
** the answers by time: counted in time_misses, not asserted, while set. */
static int soft_time, time_misses;

/* Every acknowledged record of partition p reads back: in sequence, one by
** one at sampled offsets, and by time. */
static void check_records(takhin_store *s, int p, const plog *l, uint64_t *rng, const char *ctx) {
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, p, &pi), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(pi.high_watermark, (int64_t)l->n,
               "%s: partition %d high watermark %" PRId64 ", want %zu", ctx, p, pi.high_watermark,
               l->n);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, p, &c), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK, "%s: %s", ctx, takhin_errmsg());
  takhin_message m;
  int64_t o = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert(m.offset == o && o < (int64_t)l->n && rec_ok(&m, &l->v[o]),
              "%s: partition %d: record at %" PRId64 " (want %" PRId64 ") is not the one produced",
              ctx, p, m.offset, o);
    o++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s: partition %d: read stopped at %" PRId64 ": %s (%s)", ctx, p, o,
               takhin_errstr(rc), takhin_errmsg());
  cr_assert_eq(o, (int64_t)l->n, "%s: partition %d: read %" PRId64 " records, want %zu", ctx, p, o,
               l->n);
  for (int k = 0; k < 24 && l->n; k++) {
    int64_t at = k == 0 ? (int64_t)l->n - 1 : rng_in(rng, 0, (int64_t)l->n - 1);
    rc = takhin_cursor_get(c, at, &m);
    cr_assert(rc == TAKHIN_OK && m.offset == at && rec_ok(&m, &l->v[at]),
              "%s: partition %d: get %" PRId64 ": %s (%s)", ctx, p, at, takhin_errstr(rc),
              takhin_errmsg());
  }
  takhin_cursor_close(c);
  for (int k = 0; k < 12 && l->n; k++) {
    int64_t ts = k == 0   ? 0
                 : k == 1 ? INT64_MAX / 4
                          : l->v[rng_in(rng, 0, (int64_t)l->n - 1)].ts + rng_in(rng, -1, 1);
    int64_t got = -1;
    cr_assert_eq(takhin_offset_for_time(s, TOPIC, p, ts, &got), TAKHIN_OK, "%s", takhin_errmsg());
    if (soft_time && got != model_for_time(l, ts)) {
      fprintf(stderr,
              "%s: partition %d: offset for time %" PRId64 " is %" PRId64 ", want %" PRId64
              " (trusted damage)\n",
              ctx, p, ts, got, model_for_time(l, ts));
      time_misses++;
      continue;
    }
    cr_assert_eq(got, model_for_time(l, ts),
                 "%s: partition %d: offset for time %" PRId64 " is %" PRId64 ", want %" PRId64, ctx,
                 p, ts, got, model_for_time(l, ts));
  }
}

static void check_all(takhin_store *s, int nparts, const plog *logs, uint64_t *rng,
                      const char *ctx) {
  for (int p = 0; p < nparts; p++) check_records(s, p, &logs[p], rng, ctx);
}

static takhin_store *open_mode(const char *db, int read_only, const char *ctx) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = read_only;
  takhin_store *s = NULL;
  int rc = takhin_open(db, &o, &s);
  cr_assert_eq(rc, TAKHIN_OK, "%s: %s open: %s (%s)", ctx, read_only ? "read-only" : "writer",
               takhin_errstr(rc), takhin_errmsg());
  return s;
}

static void create_topic(takhin_store *s, int nparts, const char *segment_bytes) {
  const char *cfg[] = {"segment_bytes", segment_bytes, "retention_ms", "-1", NULL};
  cr_assert_eq(takhin_topic_create(s, TOPIC, nparts, cfg), TAKHIN_OK, "%s", takhin_errmsg());
}

static void sql_exec(const char *db, const char *sql) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  char *msg = NULL;
  cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
  sqlite3_close(h);
}

/* ---- the random walk ---------------------------------------------------- */

static uint64_t walk_seed(uint64_t fixed) {
  const char *env = getenv("TAKHIN_TEST_SEED");
  if (env && *env) return strtoull(env, NULL, 10);
  if (fixed) return fixed;
  return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
}

static void walk(const char *name, uint64_t seed, int steps) {
  enum { NP = 2 };
  fprintf(stderr, "%s: seed %" PRIu64 " (TAKHIN_TEST_SEED=%" PRIu64 " repeats it)\n", name, seed,
          seed);
  uint64_t rng = seed ? seed : 1;
  char db[1024], ctx[128];
  snprintf(db, sizeof db, "%s", tu_store_path(name));
  takhin_store *s = tu_open_ok(db);
  create_topic(s, NP, "32768");
  plog logs[NP] = {{0}};
  long next_id = 0;
  int reopens = 0, kills = 0, flushes = 0, readers = 0;
  for (int step = 0; step < steps; step++) {
    int64_t ts_mid = TS0 + step * 1000LL;
    int op = (int)rng_in(&rng, 0, 99);
    snprintf(ctx, sizeof ctx, "seed %" PRIu64 " step %d", seed, step);
    if (op < 70) {
      spec b;
      spec_make(&b, &rng, NP, &next_id, ts_mid, MAXB, MAXV);
      int64_t first = -1;
      int rc = spec_produce(s, &b, &first);
      cr_assert_eq(rc, TAKHIN_OK, "%s: produce: %s", ctx, takhin_errmsg());
      cr_assert_eq(first, (int64_t)logs[b.part].n, "%s: produce went to %" PRId64, ctx, first);
      spec_record(logs, &b);
    } else if (op < 78) {
      cr_assert_eq(takhin_flush(s, op & 1), TAKHIN_OK, "%s: flush: %s", ctx, takhin_errmsg());
      flushes++;
      check_index(db, NP, 0, ctx); /* beside the open writer: a committed state */
    } else if (op < 88) {
      cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s: close: %s", ctx, takhin_errmsg());
      check_index(db, NP, 1, ctx);
      check_reader_agrees(db, NP, ctx);
      s = open_mode(db, 0, ctx);
      check_index(db, NP, 0, ctx);
      check_all(s, NP, logs, &rng, ctx);
      reopens++;
    } else if (op < 94) {
      /* a writer killed after its produce calls returned: their batches
      ** are in the files, the index rows maybe not */
      cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s: close: %s", ctx, takhin_errmsg());
      int nb = (int)rng_in(&rng, 1, 12);
      spec bs[12];
      for (int i = 0; i < nb; i++) spec_make(&bs[i], &rng, NP, &next_id, ts_mid, MAXB, MAXV);
      int64_t expect[NP];
      for (int p = 0; p < NP; p++) expect[p] = (int64_t)logs[p].n;
      fflush(NULL);
      pid_t pid = fork();
      cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
      if (pid == 0) {
        takhin_store *w = NULL;
        if (takhin_open(db, NULL, &w)) _exit(2);
        for (int i = 0; i < nb; i++) {
          int64_t first = -1;
          if (spec_produce(w, &bs[i], &first) || first != expect[bs[i].part]) _exit(3);
          expect[bs[i].part] += bs[i].n;
          if (i == nb / 2 && (nb & 1)) takhin_flush(w, 0);
        }
        _exit(0);
      }
      int status = 0;
      cr_assert_eq(waitpid(pid, &status, 0), pid);
      cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the child failed (%d)", ctx,
                status);
      for (int i = 0; i < nb; i++) spec_record(logs, &bs[i]);
      check_index(db, NP, 0, ctx); /* as the killed writer left it */
      check_reader_agrees(db, NP, ctx);
      s = open_mode(db, 0, ctx);
      check_index(db, NP, 0, ctx);
      check_all(s, NP, logs, &rng, ctx);
      kills++;
    } else {
      /* a reader beside the writer, after a flush */
      cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s: %s", ctx, takhin_errmsg());
      takhin_store *r = open_mode(db, 1, ctx);
      check_all(r, NP, logs, &rng, ctx);
      cr_assert_eq(takhin_close(r), TAKHIN_OK);
      readers++;
    }
  }
  snprintf(ctx, sizeof ctx, "seed %" PRIu64 " at the end", seed);
  cr_assert_eq(takhin_flush(s, 1), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  size_t runs = check_index(db, NP, 1, ctx);
  /* and the rebuild: no runs, an open walks the files and writes them */
  sql_exec(db, "DELETE FROM takhin_cat_index_run");
  s = open_mode(db, 0, ctx);
  check_all(s, NP, logs, &rng, ctx);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  snprintf(ctx, sizeof ctx, "seed %" PRIu64 " rebuilt", seed);
  check_index(db, NP, 1, ctx);
  s = open_mode(db, 1, ctx);
  check_all(s, NP, logs, &rng, ctx);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  int64_t segs[512];
  fprintf(stderr,
          "%s: %d steps, %zu + %zu records, %zu + %zu segments, %zu runs; %d flushes, %d reopens, "
          "%d killed writers, %d readers\n",
          name, steps, logs[0].n, logs[1].n, seg_files(db, 0, segs, 512),
          seg_files(db, 1, segs, 512), runs, flushes, reopens, kills, readers);
  cr_assert_gt(reopens + kills, 0, "the walk reopened the store");
  for (int p = 0; p < NP; p++) free(logs[p].v);
}

Test(index_run_diff, fixed_seed, .timeout = 600) {
  walk("index_run_diff_fixed", walk_seed(20261207), 260);
}

Test(index_run_diff, fresh_seed, .timeout = 600) {
  walk("index_run_diff_fresh", walk_seed(0), 260);
}

/* ---- a store to upgrade, damage and cut --------------------------------- */

typedef struct fx {
  char db[1024], root[1024];
  int nparts;
  plog logs[2];
} fx;

/* A store of nparts partitions: batches produce calls of up to maxn records
** of up to maxv bytes, a flush after every flush_every (so that runs
** overlap), closed cleanly and checked. */
static void fx_build(fx *f, const char *name, int nparts, const char *segment_bytes, int batches,
                     int maxn, int maxv, int flush_every) {
  memset(f, 0, sizeof *f);
  f->nparts = nparts;
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  tu_dir_of(f->db, f->root, sizeof f->root);
  takhin_store *s = tu_open_ok(f->db);
  create_topic(s, nparts, segment_bytes);
  uint64_t rng = 7;
  long next_id = 0;
  for (int i = 0; i < batches; i++) {
    spec b;
    spec_make(&b, &rng, nparts, &next_id, TS0 + i * 1000LL, maxn, maxv);
    int64_t first = -1;
    cr_assert_eq(spec_produce(s, &b, &first), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(first, (int64_t)f->logs[b.part].n);
    spec_record(f->logs, &b);
    if (flush_every && i % flush_every == flush_every - 1)
      cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s", takhin_errmsg());
  }
  check_all(s, nparts, f->logs, &rng, "built");
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  check_index(f->db, nparts, 1, "built");
}

static void fx_free(fx *f) {
  for (int p = 0; p < f->nparts; p++) free(f->logs[p].v);
}

/* Opened read-only, then for writing: every record reads back, by offset
** and by time, as the model says (and so as on the undamaged store). */
static void fx_check_opens(fx *f, const char *ctx) {
  uint64_t rng = 11;
  char c2[256];
  snprintf(c2, sizeof c2, "%s, read-only", ctx);
  takhin_store *s = open_mode(f->db, 1, c2);
  check_all(s, f->nparts, f->logs, &rng, c2);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s: %s", c2, takhin_errmsg());
  snprintf(c2, sizeof c2, "%s, writer", ctx);
  s = open_mode(f->db, 0, c2);
  check_all(s, f->nparts, f->logs, &rng, c2);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s: %s", c2, takhin_errmsg());
}

static int64_t sql_int(const char *db, const char *sql) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(h));
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

/* ---- upgrade ------------------------------------------------------------ */

/* takhin_cat_index as formats 1 and 2 had it (git show 6b6c25f:sql/schema.sql). */
static const char old_index_table[] =
    "CREATE TABLE takhin_cat_index("
    "  topic_id      INTEGER NOT NULL,"
    "  partition     INTEGER NOT NULL,"
    "  segment_base  INTEGER NOT NULL,"
    "  offset        INTEGER NOT NULL,"
    "  position      INTEGER NOT NULL,"
    "  max_timestamp INTEGER NOT NULL,"
    "  PRIMARY KEY (topic_id, partition, segment_base, offset),"
    "  FOREIGN KEY (topic_id, partition, segment_base) REFERENCES takhin_cat_segment ON DELETE "
    "CASCADE"
    ") STRICT, WITHOUT ROWID;";

/* The store's catalog as a format 2 release left it: a row per entry, each
** what the files call for; returns the number of rows. */
static int64_t make_format2(fx *f) {
  int64_t tid = topic_id_of(f->db, TOPIC);
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  char *msg = NULL;
  cr_assert_eq(sqlite3_exec(h,
                            "BEGIN; DROP TABLE takhin_cat_index_run; UPDATE takhin_cat_meta SET "
                            "value = 2 WHERE key = 'format_version';",
                            NULL, NULL, &msg),
               SQLITE_OK, "%s", msg);
  cr_assert_eq(sqlite3_exec(h, old_index_table, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h, "INSERT INTO takhin_cat_index VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                  -1, &st, NULL),
               SQLITE_OK);
  ents e = {0};
  int64_t rows = 0;
  for (int p = 0; p < f->nparts; p++) {
    int64_t bases[512];
    size_t nb = seg_files(f->db, p, bases, 512);
    for (size_t i = 0; i < nb; i++) {
      char path[2048];
      int64_t end;
      tu_segment_path(path, sizeof path, f->db, TOPIC, p, bases[i]);
      file_entries(path, &e, &end);
      for (size_t k = 0; k < e.n; k++) {
        sqlite3_bind_int64(st, 1, tid);
        sqlite3_bind_int(st, 2, p);
        sqlite3_bind_int64(st, 3, bases[i]);
        sqlite3_bind_int64(st, 4, e.v[k].offset);
        sqlite3_bind_int64(st, 5, e.v[k].position);
        sqlite3_bind_int64(st, 6, e.v[k].max_ts);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(h));
        sqlite3_reset(st);
        rows++;
      }
    }
  }
  sqlite3_finalize(st);
  cr_assert_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, &msg), SQLITE_OK, "%s", msg);
  sqlite3_close(h);
  free(e.v);
  return rows;
}

static int has_table(const char *db, const char *name) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", name);
  return (int)sql_int(db, sql);
}

/* The catalog as a format 1 release left it: format 2's, without the dead
** offsets' tables and the swap rows' fingerprint columns. */
static void make_format1(fx *f) {
  make_format2(f);
  sql_exec(f->db, "DROP TABLE takhin_cat_dead; DROP TABLE takhin_cat_dead_from; "
                  "ALTER TABLE takhin_cat_swap DROP COLUMN fingerprint; "
                  "ALTER TABLE takhin_cat_swap DROP COLUMN size_bytes; "
                  "UPDATE takhin_cat_meta SET value = 1 WHERE key = 'format_version'");
}

/* Formats 1 and 2: a reader reads every record and changes nothing; a
** writer upgrades to format 3, drops the row-per-entry table and writes
** runs that are the files' entries. */
static void upgrade(const char *name, int version) {
  fx f;
  fx_build(&f, name, 2, "32768", 150, 20, 1200, 5);
  if (version == 1) make_format1(&f);
  int64_t rows =
      version == 2 ? make_format2(&f) : sql_int(f.db, "SELECT count(*) FROM takhin_cat_index");
  cr_assert_gt(rows, 20, "a format %d index of %" PRId64 " rows", version, rows);
  uint64_t rng = 3;
  char ctx[64];
  snprintf(ctx, sizeof ctx, "format %d, read-only", version);
  takhin_store *s = open_mode(f.db, 1, ctx);
  check_all(s, 2, f.logs, &rng, ctx);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"),
               version);
  cr_assert(has_table(f.db, "takhin_cat_index") && !has_table(f.db, "takhin_cat_index_run"),
            "a reader left the format %d tables as they were", version);
  cr_assert_eq(sql_int(f.db, "SELECT count(*) FROM takhin_cat_index"), rows);
  snprintf(ctx, sizeof ctx, "format %d, writer", version);
  s = open_mode(f.db, 0, ctx);
  check_all(s, 2, f.logs, &rng, ctx);
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"), 3,
               "the writer's open stamps format 3");
  cr_assert(!has_table(f.db, "takhin_cat_index"), "the row-per-entry table is gone");
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  size_t runs = check_index(f.db, 2, 1, "upgraded");
  cr_assert_gt(runs, 0);
  /* and the upgraded store opens both ways */
  fx_check_opens(&f, "upgraded");
  check_index(f.db, 2, 1, "upgraded, reopened");
  fx_free(&f);
}

Test(index_run_upgrade, format2_read_then_upgraded, .timeout = 300) {
  upgrade("index_run_upgrade2", 2);
}

Test(index_run_upgrade, format1_read_then_upgraded, .timeout = 300) {
  upgrade("index_run_upgrade1", 1);
}

/* A reader of a format 2 catalog whose row-per-entry table is damaged
** (its rows are not read at all) still reads every record. */
Test(index_run_upgrade, format2_garbage_rows_not_read, .timeout = 300) {
  fx f;
  fx_build(&f, "index_run_upgrade_garbage", 1, "32768", 60, 20, 1200, 0);
  make_format2(&f);
  sql_exec(f.db, "UPDATE takhin_cat_index SET position = position + 13, offset = offset + 1 "
                 "WHERE position > 0");
  fx_check_opens(&f, "format 2 with garbage rows");
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"), 3);
  check_index(f.db, 1, 1, "upgraded from garbage");
  fx_free(&f);
}

/* ---- damage ------------------------------------------------------------- */

enum {
  K_FIRST_OFFSET,   /* arg: 0 +1, 1 -1, 2 below every entry, 3 huge, 4 -1 absolute */
  K_FIRST_POSITION, /* arg: 0 +1, 1 -1, 2 huge, 3 zero, 4 negative */
  K_ENTRY,          /* arg: entry (first, middle, last) * 9 + field * 3 + change */
  K_TRUNC,          /* arg: bytes cut off the end, 1..23 */
  K_EMPTY,
  K_TYPE,      /* arg: 0 NULL, 1 text, 2 integer, 3 real */
  K_OVERLAP,   /* arg: 0 a sound copy of the run's tail, 1 the tail shifted */
  K_OTHER_SEG, /* arg: 0 the run under the next segment's base, 1 a segment with no file */
  K_DUPLICATE, /* arg: 0 the same row again, 1 under another partition, 2 all runs twice */
  K_KINDS
};
static const int kind_args[K_KINDS] = {5, 5, 27, 23, 1, 4, 2, 2, 3};
static const char *const kind_names[K_KINDS] = {"first_offset", "first_position", "entry",
                                                "truncated",    "empty",          "type",
                                                "overlap",      "other segment",  "duplicate"};

/* Damage run t as kind/arg says. 1 done, 0 refused by the schema (STRICT,
** NOT NULL, UNIQUE), -1 not applicable to this run; what to *what. */
static int damage(const char *db, const runrow *t, int64_t next_base, int kind, int arg, char *what,
                  size_t cap) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  size_t ne = t->len / TK_INDEX_RUN_ENTRY;
  uint8_t *b = malloc(t->len + 24);
  memcpy(b, t->b, t->len);
  char sql[512];
  sqlite3_stmt *st = NULL;
  int rc = -1;
  sql[0] = 0;
  switch (kind) {
  case K_FIRST_OFFSET: {
    int64_t v[] = {t->first_offset + 1, t->first_offset - 1, t->base - 1000000, INT64_MAX - 5, -1};
    snprintf(what, cap, "first_offset %" PRId64 " -> %" PRId64, t->first_offset, v[arg]);
    snprintf(sql, sizeof sql,
             "UPDATE takhin_cat_index_run SET first_offset = %" PRId64 " WHERE rowid = %" PRId64,
             v[arg], t->rowid);
    break;
  }
  case K_FIRST_POSITION: {
    int64_t v[] = {t->first_position + 1, t->first_position - 1, INT64_MAX - 5, 0, -4096};
    snprintf(what, cap, "first_position %" PRId64 " -> %" PRId64, t->first_position, v[arg]);
    snprintf(sql, sizeof sql,
             "UPDATE takhin_cat_index_run SET first_position = %" PRId64 " WHERE rowid = %" PRId64,
             v[arg], t->rowid);
    break;
  }
  case K_ENTRY: {
    int which = arg / 9, field = arg / 3 % 3, change = arg % 3;
    size_t at = which == 0 ? 0 : which == 1 ? ne / 2 : ne - 1;
    if (which && (at == 0 || (which == 1 && at == ne - 1))) break; /* the same entry again */
    uint8_t *p = b + at * TK_INDEX_RUN_ENTRY + field * 8;
    int64_t old = le64(p), nv = change == 0 ? old + 1 : change == 1 ? old - 1 : old ^ (1LL << 40);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)nv >> (8 * i));
    static const char *const fields[] = {"offset", "position", "max_timestamp"};
    snprintf(what, cap, "entry %zu of %zu: %s %" PRId64 " -> %" PRId64, at, ne, fields[field], old,
             nv);
    snprintf(sql, sizeof sql, "UPDATE takhin_cat_index_run SET entries = ?1 WHERE rowid = %" PRId64,
             t->rowid);
    break;
  }
  case K_TRUNC:
    snprintf(what, cap, "entries cut by %d bytes", arg + 1);
    snprintf(sql, sizeof sql,
             "UPDATE takhin_cat_index_run SET entries = substr(entries, 1, length(entries) - %d) "
             "WHERE rowid = %" PRId64,
             arg + 1, t->rowid);
    break;
  case K_EMPTY:
    snprintf(what, cap, "entries empty");
    snprintf(sql, sizeof sql,
             "UPDATE takhin_cat_index_run SET entries = X'' WHERE rowid = %" PRId64, t->rowid);
    break;
  case K_TYPE: {
    static const char *const v[] = {"NULL", "'not a blob'", "42", "4.5"};
    snprintf(what, cap, "entries = %s", v[arg]);
    snprintf(sql, sizeof sql, "UPDATE takhin_cat_index_run SET entries = %s WHERE rowid = %" PRId64,
             v[arg], t->rowid);
    break;
  }
  case K_OVERLAP: {
    if (ne < 2) break;
    size_t at = ne / 2 ? ne / 2 : 1;
    if (arg == 1)
      for (size_t k = at; k < ne; k++) {
        uint8_t *p = b + k * TK_INDEX_RUN_ENTRY;
        int64_t pos = le64(p + 8) + 7, ts = le64(p + 16) + 99999;
        for (int i = 0; i < 8; i++) p[8 + i] = (uint8_t)((uint64_t)pos >> (8 * i));
        for (int i = 0; i < 8; i++) p[16 + i] = (uint8_t)((uint64_t)ts >> (8 * i));
      }
    snprintf(what, cap, "an extra run from entry %zu of %zu%s", at, ne,
             arg ? ", positions +7, timestamps later" : ", a copy");
    memmove(b, b + at * TK_INDEX_RUN_ENTRY, (ne - at) * TK_INDEX_RUN_ENTRY);
    ne -= at;
    snprintf(sql, sizeof sql,
             "INSERT INTO takhin_cat_index_run(topic_id, partition, segment_base, first_offset, "
             "first_position, entries) VALUES (%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
             ", %" PRId64 ", ?1)",
             t->topic, t->part, t->base, le64(b), le64(b + 8));
    break;
  }
  case K_OTHER_SEG: {
    int64_t base = arg == 0 ? next_base : 1000000000;
    if (base < 0) break;
    snprintf(what, cap, "the run again under segment_base %" PRId64, base);
    snprintf(
        sql, sizeof sql,
        "INSERT INTO takhin_cat_index_run(topic_id, partition, segment_base, first_offset, "
        "first_position, entries) SELECT topic_id, partition, %" PRId64
        ", first_offset, first_position, entries FROM takhin_cat_index_run WHERE rowid = %" PRId64,
        base, t->rowid);
    break;
  }
  case K_DUPLICATE:
    if (arg == 0) {
      snprintf(what, cap, "the same row twice");
      snprintf(sql, sizeof sql,
               "INSERT INTO takhin_cat_index_run(topic_id, partition, segment_base, first_offset, "
               "first_position, entries) SELECT topic_id, partition, segment_base, first_offset, "
               "first_position, entries FROM takhin_cat_index_run WHERE rowid = %" PRId64,
               t->rowid);
    } else if (arg == 1) {
      snprintf(what, cap, "the row again under partition 7 (none)");
      snprintf(sql, sizeof sql,
               "INSERT INTO takhin_cat_index_run(topic_id, partition, segment_base, first_offset, "
               "first_position, entries) SELECT topic_id, 7, segment_base, first_offset, "
               "first_position, entries FROM takhin_cat_index_run WHERE rowid = %" PRId64,
               t->rowid);
    } else {
      /* every run of the segment again, keyed one offset later: each copy
      ** is damaged (its first entry is not at its key) */
      snprintf(what, cap, "every run of the segment again, keyed one offset on");
      snprintf(sql, sizeof sql,
               "INSERT OR IGNORE INTO takhin_cat_index_run(topic_id, partition, segment_base, "
               "first_offset, first_position, entries) SELECT topic_id, partition, segment_base, "
               "first_offset + 1, first_position, entries FROM takhin_cat_index_run WHERE "
               "topic_id = %" PRId64 " AND partition = %" PRId64 " AND segment_base = %" PRId64,
               t->topic, t->part, t->base);
    }
    break;
  }
  if (sql[0]) {
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(h));
    if (sqlite3_bind_parameter_count(st))
      sqlite3_bind_blob(st, 1, b, (int)(ne * TK_INDEX_RUN_ENTRY), SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    int prim = sqlite3_extended_errcode(h) & 0xff;
    cr_assert(step == SQLITE_DONE || prim == SQLITE_CONSTRAINT, "%s: %s", what, sqlite3_errmsg(h));
    rc = step == SQLITE_DONE && sqlite3_changes(h) > 0;
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  free(b);
  return rc;
}

/* Runs to damage: the longest of the first segment, the first of a middle
** one, and the newest of the active segment. */
static size_t pick_targets(const runset *rs, int64_t tid, const int64_t *bases, size_t nb,
                           runrow *out, int64_t *next_base) {
  size_t n = 0;
  const runrow *best = NULL, *mid = NULL, *last = NULL;
  for (size_t i = 0; i < rs->n; i++) {
    const runrow *r = &rs->v[i];
    if (r->topic != tid || r->part != 0) continue;
    if (r->base == bases[0] && (!best || r->len > best->len)) best = r;
    if (r->base == bases[nb / 2] && !mid) mid = r;
    if (r->base == bases[nb - 1]) last = r; /* ordered by first_offset */
  }
  const runrow *pick[] = {best, mid, last};
  int64_t nexts[] = {nb > 1 ? bases[1] : -1, nb / 2 + 1 < nb ? bases[nb / 2 + 1] : -1,
                     nb > 1 ? bases[nb - 2] : -1};
  for (int i = 0; i < 3; i++)
    if (pick[i]) {
      out[n] = *pick[i];
      next_base[n++] = nexts[i];
    }
  return n;
}

Test(index_run_damage, every_field, .timeout = 900) {
  fx f;
  /* 1 KiB-ish records, a flush every 4 calls: the active segment holds
  ** several overlapping runs, a sealed one runs of several entries */
  fx_build(&f, "index_run_damage", 1, "49152", 110, 12, 1100, 4);
  fx_check_opens(&f, "undamaged"); /* a writer's open rewrites runs: targets after it */
  int64_t tid = topic_id_of(f.db, TOPIC);
  int64_t bases[64];
  size_t nb = seg_files(f.db, 0, bases, 64);
  cr_assert_geq(nb, 3, "%zu segments", nb);
  runset rs;
  runs_read(f.db, &rs);
  runrow targets[3];
  int64_t next_base[3];
  size_t nt = pick_targets(&rs, tid, bases, nb, targets, next_base);
  cr_assert_eq(nt, 3);
  cr_assert_geq(targets[0].len / TK_INDEX_RUN_ENTRY, 3, "a run of three entries or more");
  size_t active_runs = 0;
  for (size_t i = 0; i < rs.n; i++) active_runs += rs.v[i].base == bases[nb - 1];
  cr_assert_geq(active_runs, 2, "the active segment has overlapping runs (%zu)", active_runs);
  for (size_t i = 0; i < nt; i++) {
    uint8_t *copy = malloc(targets[i].len + 1);
    memcpy(copy, targets[i].b, targets[i].len);
    targets[i].b = copy;
  }
  runs_free(&rs);
  tu_snap sn;
  tu_snap_take_ok(&sn, f.root);
  int applied = 0, refused = 0, unsound = 0, trusted = 0;
  for (size_t ti = 0; ti < nt; ti++) {
    const runrow *t = &targets[ti];
    for (int kind = 0; kind < K_KINDS; kind++)
      for (int arg = 0; arg < kind_args[kind]; arg++) {
        tu_snap_restore_ok(&sn);
        char what[256], ctx[512];
        int rc = damage(f.db, t, next_base[ti], kind, arg, what, sizeof what);
        snprintf(ctx, sizeof ctx, "run %" PRId64 " of segment %" PRId64 " (%zu entries): %s: %s",
                 t->first_offset, t->base, t->len / TK_INDEX_RUN_ENTRY, kind_names[kind], what);
        if (rc < 0) continue;
        if (rc == 0) {
          refused++;
          cr_assert(kind == K_TYPE || (kind == K_DUPLICATE && arg == 0) ||
                        (kind == K_FIRST_OFFSET && t->len == 0),
                    "%s: refused by the schema", ctx);
          continue;
        }
        applied++;
        /* plausible contents the catalog trusts (see soft_time) */
        int trust = kind == K_ENTRY || (kind == K_OVERLAP && arg == 1);
        soft_time = trust;
        fx_check_opens(&f, ctx);
        soft_time = 0;
        /* the writer's open and close left runs that describe the files
        ** (a stray run of a segment with no file aside) */
        if (kind == K_OTHER_SEG && arg == 1) {
          sql_exec(f.db, "DELETE FROM takhin_cat_index_run WHERE segment_base = 1000000000");
        } else if (kind == K_DUPLICATE && arg == 1) {
          sql_exec(f.db, "DELETE FROM takhin_cat_index_run WHERE partition = 7");
        }
        char why[512];
        if (index_diff(f.db, 1, 1, why, sizeof why, NULL)) {
          fprintf(stderr, "index_run_damage: %s after a writer's open: %s: %s\n",
                  trust ? "trusted" : "UNSOUND", ctx, why);
          if (trust) trusted++;
          else unsound++;
        }
      }
  }
  fprintf(stderr,
          "index_run_damage: %zu targets, %d cases applied, %d refused by the schema, %d unsound; "
          "entry damage the catalog trusts: %d cases left as they were, %d answers by time "
          "changed\n",
          nt, applied, refused, unsound, trusted, time_misses);
  cr_assert_gt(applied, 100);
  cr_assert_eq(unsound, 0, "%d cases left runs that do not describe the files (listed above)",
               unsound);
  tu_snap_free(&sn);
  for (size_t i = 0; i < nt; i++) free(targets[i].b);
  fx_free(&f);
}

/* ---- a torn tail: tk_cat_delete_index_from --------------------------------- */

/* The active segment's file cut at several points inside its index, each
** from the same clean store: the writer's open truncates the torn batch,
** and then no run names a position past the cut (the runs starting past it
** go, the last one left is cut), the entries are the file's, and every
** record before the cut reads back. */
Test(index_run_cut, torn_tail_cuts_the_runs, .timeout = 300) {
  fx f;
  /* one segment of ~80 KiB, a flush every 12 calls: runs of a few entries */
  fx_build(&f, "index_run_cut", 1, "1048576", 140, 3, 900, 12);
  fx_check_opens(&f, "before the cuts");
  char path[2048];
  tu_segment_path(path, sizeof path, f.db, TOPIC, 0, 0);
  ents want = {0};
  int64_t end;
  file_entries(path, &want, &end);
  cr_assert_geq(want.n, 12, "%zu entries", want.n);
  runset rs;
  runs_read(f.db, &rs);
  size_t nruns = rs.n;
  runs_free(&rs);
  cr_assert_geq(nruns, 4, "the segment's index is in %zu runs", nruns);
  tu_snap sn;
  tu_snap_take_ok(&sn, f.root);
  plog whole = f.logs[0];
  int cuts = 0, cut_runs = 0;
  for (size_t k = 1; k < want.n; k++)
    for (int how = 0; how < 3; how++) {
      /* at entry k's batch, a header's length into it, or a byte before it */
      int64_t cut = want.v[k].position + (how == 1 ? 30 : how == 2 ? -1 : 0);
      tu_snap_restore_ok(&sn);
      cr_assert_eq(truncate(path, cut), 0, "%s", strerror(errno));
      /* the records of the batches wholly before the cut stay */
      size_t len = 0;
      uint8_t *fb = tu_read_file_ok(path, &len);
      size_t pos = 0;
      int64_t next = 0;
      while (pos + HDR <= len) {
        size_t total = 12 + (size_t)be(fb + pos + 8, 4);
        if (pos + total > len) break;
        next = (int64_t)be(fb + pos, 8) + (int64_t)be(fb + pos + 23, 4) + 1;
        pos += total;
      }
      free(fb);
      f.logs[0].n = (size_t)next;
      char ctx[128];
      snprintf(ctx, sizeof ctx, "cut at %" PRId64 " (entry %zu at %" PRId64 ")", cut, k,
               want.v[k].position);
      /* Whether a run spans the cut from before the last entry left: the
      ** writes from that entry on (the open's) do not replace it, only
      ** the cut does. */
      int64_t last_left = 0;
      for (size_t j = 0; j < want.n && want.v[j].position < cut; j++)
        last_left = want.v[j].position;
      runs_read(f.db, &rs);
      for (size_t i = 0; i < rs.n; i++) {
        const runrow *r = &rs.v[i];
        if (r->first_position < last_left && le64(r->b + r->len - TK_INDEX_RUN_ENTRY + 8) >= cut)
          cut_runs++;
      }
      runs_free(&rs);
      takhin_store *s = open_mode(f.db, 0, ctx);
      uint64_t rng = 5;
      check_records(s, 0, &f.logs[0], &rng, ctx);
      check_index(f.db, 1, 0, ctx); /* while it is open too */
      cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
      check_index(f.db, 1, 1, ctx);
      fx_check_opens(&f, ctx);
      cuts++;
    }
  f.logs[0] = whole;
  fprintf(stderr, "index_run_cut: %d cuts, %zu entries, %zu runs; a run spanned the cut %d times\n",
          cuts, want.n, nruns, cut_runs);
  cr_assert_gt(cut_runs, 0, "some cut fell inside a run");
  tu_snap_free(&sn);
  free(want.v);
  fx_free(&f);
}

/* ---- an append taken back: the SQL extension's failed COMMIT ----------- */

static void ext_exec(sqlite3 *h, const char *sql, int want_ok) {
  char *msg = NULL;
  int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
  cr_assert(want_ok ? rc == SQLITE_OK : rc != SQLITE_OK, "%s: %s", sql, msg ? msg : "succeeded");
  sqlite3_free(msg);
}

/* A COMMIT whose batch for partition 1 is too large takes back partition
** 0's append of several index stretches (tk_part_undo): afterwards no run
** names a position in the taken-back bytes, and after more appends and
** takhin_flush() (the extension writes catalog rows when due or asked, not
** at its connection's close) the runs are the file's entries. A sanity
** check of the undo path: its catalog work (tk_cat_delete_index_from, the
** idx_persisted rewinds) found nothing to undo here -- taking either out
** does not fail this test. */
Test(index_run_undo, failed_commit_leaves_no_runs_past_the_log, .timeout = 120) {
  char db[1024];
  snprintf(db, sizeof db, "%s", tu_store_path("index_run_undo"));
  sqlite3 *h;
  cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_enable_load_extension(h, 1), SQLITE_OK);
  char *err = NULL;
  cr_assert_eq(sqlite3_load_extension(h, TAKHIN_BUILD_DIR "/takhin", "sqlite3_takhin_init", &err),
               SQLITE_OK, "%s", err);
  ext_exec(h, "CREATE VIRTUAL TABLE " TOPIC " USING takhin(partitions=2, max_message_bytes=20000)",
           1);
  char sql[512];
  for (int i = 0; i < 30; i++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (0, 'p%d', "
             "zeroblob(%d), %lld)",
             i, 300 + 97 * i, TS0 + i);
    ext_exec(h, sql, 1);
  }
  /* their ~11 entries stay pending (no flush, fewer than TK_PERSIST_ENTRIES):
  ** the transaction's appends write them, in the transaction */
  check_index(db, 2, 0, "before the transaction");
  char path[2048];
  tu_segment_path(path, sizeof path, db, TOPIC, 0, 0);
  int64_t size0 = tu_file_size(path);
  /* 1.1 MB: more than TK_PERSIST_ENTRIES entries, so the COMMIT's appends
  ** persist rows inside the transaction that then fails */
  ext_exec(h, "BEGIN", 1);
  snprintf(sql, sizeof sql,
           "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 699) "
           "INSERT INTO " TOPIC "(partition, key, value, timestamp) "
           "SELECT 0, 'x' || i, zeroblob(1600), %lld + i FROM c",
           TS0 + 1000);
  ext_exec(h, sql, 1);
  ext_exec(h,
           "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (1, 'b', "
           "zeroblob(19960), 1)",
           1);
  ext_exec(h, "COMMIT", 0);
  cr_assert(sqlite3_get_autocommit(h), "the transaction was rolled back");
  cr_assert_gt(tu_file_size(path), size0 + 256 * TK_INDEX_INTERVAL,
               "partition 0's append of several stretches was written, then taken back");
  check_index(db, 2, 0, "after the failed COMMIT");
  runset rs;
  runs_read(db, &rs);
  for (size_t i = 0; i < rs.n; i++)
    for (size_t k = 0; k < rs.v[i].len; k += TK_INDEX_RUN_ENTRY)
      cr_assert_lt(le64(rs.v[i].b + k + 8), size0,
                   "a run names position %" PRId64 ", in the taken-back bytes past %" PRId64,
                   le64(rs.v[i].b + k + 8), size0);
  runs_free(&rs);
  /* the store goes on: more rows, written over the zeroed bytes */
  for (int i = 0; i < 20; i++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (0, 'q%d', "
             "zeroblob(900), %lld)",
             i, TS0 + 2000 + i);
    ext_exec(h, sql, 1);
  }
  ext_exec(h, "SELECT takhin_flush()", 1);
  check_index(db, 2, 1, "flushed after the failed COMMIT");
  cr_assert_eq(sqlite3_close(h), SQLITE_OK);
  takhin_store *s = open_mode(db, 0, "reopened");
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 50, "30 rows, the taken-back 80 gone, 20 more");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  check_index(db, 2, 1, "reopened and closed");
}

/* A store written through the extension (40 rows into partition 0 of
** TOPIC, flushed), its catalog then made a format 2 one: f set up for it. */
static void ext_format2_store(fx *f, const char *name) {
  memset(f, 0, sizeof *f);
  f->nparts = 1;
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  tu_dir_of(f->db, f->root, sizeof f->root);
  sqlite3 *h;
  char *err = NULL;
  char sql[512];
  cr_assert_eq(sqlite3_open(f->db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_enable_load_extension(h, 1), SQLITE_OK);
  cr_assert_eq(sqlite3_load_extension(h, TAKHIN_BUILD_DIR "/takhin", "sqlite3_takhin_init", &err),
               SQLITE_OK, "%s", err);
  ext_exec(h, "CREATE VIRTUAL TABLE " TOPIC " USING takhin(partitions=1)", 1);
  for (int i = 0; i < 40; i++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (0, 'k%d', "
             "zeroblob(%d), %lld)",
             i, 1000 + 37 * i, TS0 + i);
    ext_exec(h, sql, 1);
  }
  ext_exec(h, "SELECT takhin_flush()", 1);
  cr_assert_eq(sqlite3_close(h), SQLITE_OK);
  make_format2(f);
}

/* The SQL extension loaded inside a transaction on a format 2 catalog: the
** store opens (and upgrades the catalog) at its first use there, inside a
** statement on the host's connection, where SQLite refuses DROP TABLE.
** rollback: the transaction then rolls back, the upgrade with it -- the
** runs' table too; the next statement must find a store that works, not
** one that writes to a table that is gone. */
static void ext_upgrade_in_txn(const char *name, int rollback) {
  fx f;
  ext_format2_store(&f, name);
  sqlite3 *h;
  char *err = NULL;
  char sql[512];
  cr_assert_eq(sqlite3_open(f.db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_enable_load_extension(h, 1), SQLITE_OK);
  ext_exec(h, "BEGIN", 1);
  cr_assert_eq(sqlite3_load_extension(h, TAKHIN_BUILD_DIR "/takhin", "sqlite3_takhin_init", &err),
               SQLITE_OK, "%s", err);
  ext_exec(h, "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (0, 'r', 'x', 1)", 1);
  ext_exec(h, rollback ? "ROLLBACK" : "COMMIT", 1);
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"),
               rollback ? 2 : 3, "the upgrade went with the transaction");
  for (int i = 0; i < 300; i++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO " TOPIC "(partition, key, value, timestamp) VALUES (0, 'a%d', "
             "zeroblob(1500), %lld)",
             i, TS0 + 100 + i);
    ext_exec(h, sql, 1);
  }
  ext_exec(h, "SELECT takhin_flush()", 1);
  cr_assert_eq(sqlite3_close(h), SQLITE_OK);
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"), 3);
  takhin_store *s = open_mode(f.db, 0, "reopened");
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, rollback ? 340 : 341, "40 rows, the one in the transaction, 300");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  cr_assert(!has_table(f.db, "takhin_cat_index"), "an open of its own drops the old table");
  check_index(f.db, 1, 1, "reopened and closed");
}

Test(index_run_upgrade, extension_opened_in_a_transaction, .timeout = 120) {
  ext_upgrade_in_txn("index_run_upgrade_ext", 0);
}

Test(index_run_upgrade, extension_upgrade_rolled_back, .timeout = 120) {
  ext_upgrade_in_txn("index_run_upgrade_ext_rb", 1);
}

/* The extension's store opened read-only (another writer holds the lock) on
** a format 2 catalog reads it as it is, through one store: a reader does
** not upgrade, so the newest format's table being absent is no sign of a
** rolled-back open (taken for one, the store would be closed and opened
** again at every use, under the cursors reading it). */
Test(index_run_upgrade, extension_reader_of_format2, .timeout = 120) {
  fx f;
  ext_format2_store(&f, "index_run_upgrade_ext_ro");
  sqlite3 *h;
  char *err = NULL;
  /* a writer of another release holds the store */
  char lock[1100];
  snprintf(lock, sizeof lock, "%s-takhin/LOCK", f.db);
  int fd = open(lock, O_RDWR | O_CREAT, 0644);
  cr_assert_geq(fd, 0);
  cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
  cr_assert_eq(sqlite3_open(f.db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_enable_load_extension(h, 1), SQLITE_OK);
  cr_assert_eq(sqlite3_load_extension(h, TAKHIN_BUILD_DIR "/takhin", "sqlite3_takhin_init", &err),
               SQLITE_OK, "%s", err);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT count(*), sum(takhin_offset_for_time('" TOPIC
                                  "', 0, timestamp) = offset) FROM " TOPIC,
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sqlite3_errmsg(h));
  cr_assert_eq(sqlite3_column_int64(st, 0), 40);
  cr_assert_eq(sqlite3_column_int64(st, 1), 40, "each record found by its time");
  sqlite3_finalize(st);
  cr_assert_eq(sql_int(f.db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"), 2);
  cr_assert_eq(sqlite3_close(h), SQLITE_OK);
  close(fd);
}
