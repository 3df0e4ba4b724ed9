/*
** test_compaction.c -- log compaction against a model: for random workloads
** the log after compaction must hold, in the compacted (sealed) segments,
** exactly the latest record of every key, and everything in the active
** segment; offsets never move. Also tombstones and delete_retention_ms, the
** lag and dirty-ratio thresholds, null-key refusal, idempotence, reopen, a
** crash at every step of the swap, a reader during compaction, and key
** lookups before and after.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "internal.h"
#include "testutil.h"

extern int tk_compact_crash_step;
extern atomic_int tk_key_writer_delay_ms;
extern int tk_key_map_keys;
extern atomic_int tk_key_writer_fail_every;

enum { NKEYS_MAX = 4096 };

/* The model: latest offset and value of every key, and the value of every
** offset produced, so the log can be checked record by record. */
typedef struct model {
  int64_t latest[NKEYS_MAX]; /* -1: never produced */
  int tomb[NKEYS_MAX];
  int64_t n;    /* records produced */
  int *key_of;  /* offset -> key number */
  int *is_tomb; /* offset -> tombstone */
} model;

static void model_init(model *m, int64_t cap) {
  for (int i = 0; i < NKEYS_MAX; i++) m->latest[i] = -1, m->tomb[i] = 0;
  m->n = 0;
  m->key_of = calloc((size_t)cap, sizeof *m->key_of);
  m->is_tomb = calloc((size_t)cap, sizeof *m->is_tomb);
}

static void model_free(model *m) {
  free(m->key_of);
  free(m->is_tomb);
}

static void value_of(char *buf, size_t vlen, int64_t off) {
  for (size_t j = 0; j < vlen; j++) buf[j] = (char)('a' + (off * 13 + (int64_t)j) % 26);
}

/* Produce n records over nkeys keys (a fraction of them tombstones) in
** batches of bs. */
static void produce(takhin_store *s, const char *topic, model *m, int64_t n, int nkeys, size_t vlen,
                    int tomb_pct, int bs, unsigned *seed) {
  takhin_record recs[64];
  char keys[64][16], vals[64][2048];
  for (int64_t i = 0; i < n; i += bs) {
    int cnt = n - i < bs ? (int)(n - i) : bs;
    for (int j = 0; j < cnt; j++) {
      int64_t off = m->n + j;
      int k = (int)(rand_r(seed) % (unsigned)nkeys);
      int tomb = (int)(rand_r(seed) % 100) < tomb_pct;
      int kl = snprintf(keys[j], 16, "key-%d", k);
      value_of(vals[j], vlen, off);
      recs[j] = (takhin_record){.key = keys[j],
                                .key_len = (size_t)kl,
                                .value = tomb ? NULL : vals[j],
                                .value_len = tomb ? 0 : vlen,
                                .timestamp = 1000 + off};
      m->key_of[off] = k;
      m->is_tomb[off] = tomb;
    }
    int64_t first;
    cr_assert_eq(takhin_produce(s, topic, 0, recs, (size_t)cnt, &first), TAKHIN_OK, "%s",
                 takhin_errmsg());
    cr_assert_eq(first, m->n);
    for (int j = 0; j < cnt; j++) {
      m->latest[m->key_of[m->n + j]] = m->n + j;
      m->tomb[m->key_of[m->n + j]] = m->is_tomb[m->n + j];
    }
    m->n += cnt;
  }
}

/* What produce() does to the model, without producing: the records a
** child process produced from the same seed (no tombstones). */
static void produce_model_only(model *m, int64_t n, int nkeys, unsigned *seed) {
  for (int64_t i = 0; i < n; i++) {
    int64_t off = m->n + i;
    int k = (int)(rand_r(seed) % (unsigned)nkeys);
    (void)rand_r(seed); /* produce() draws the tombstone die too */
    m->key_of[off] = k;
    m->is_tomb[off] = 0;
    m->latest[k] = off;
    m->tomb[k] = 0;
  }
  m->n += n;
}

/* Read the whole partition and check it against the model: offsets below
** `compacted_end` must be exactly the live latest records (tombstones too,
** unless tombs_gone), offsets at or above it all present. */
static int64_t check_log(takhin_store *s, const char *topic, const model *m, int64_t compacted_end,
                         size_t vlen, int tombs_gone) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, 0, &c), TAKHIN_OK);
  takhin_message msg;
  int64_t expect = 0, count = 0;
  int rc;
  char buf[2048];
  for (;;) {
    /* the next offset the model says must be there */
    while (expect < m->n && expect < compacted_end &&
           (m->latest[m->key_of[expect]] != expect || (tombs_gone && m->is_tomb[expect])))
      expect++;
    rc = takhin_cursor_next(c, &msg);
    if (rc != TAKHIN_OK) break;
    cr_assert_eq(msg.offset, expect, "offset %lld read, %lld expected", (long long)msg.offset,
                 (long long)expect);
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%d", m->key_of[expect]);
    cr_assert_eq(msg.key_len, (size_t)kl);
    cr_assert(memcmp(msg.key, key, (size_t)kl) == 0);
    if (m->is_tomb[expect]) {
      cr_assert_null(msg.value, "offset %lld is a tombstone", (long long)expect);
    } else {
      value_of(buf, vlen, expect);
      cr_assert_eq(msg.value_len, vlen);
      cr_assert(memcmp(msg.value, buf, vlen) == 0, "value of offset %lld", (long long)expect);
    }
    expect++;
    count++;
  }
  cr_assert_eq(rc, TAKHIN_END, "read ended with %d: %s", rc, takhin_errmsg());
  while (expect < m->n && expect < compacted_end &&
         (m->latest[m->key_of[expect]] != expect || (tombs_gone && m->is_tomb[expect])))
    expect++;
  cr_assert_eq(expect, m->n, "records missing from %lld", (long long)expect);
  takhin_cursor_close(c);
  return count;
}

/* Base offset of the active segment: compaction never goes past it. */
static int64_t active_base(takhin_store *s, const char *topic) {
  takhin_segment_info *g;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, topic, 0, &g, &n), TAKHIN_OK);
  int64_t b = g[n - 1].base_offset;
  takhin_free(g);
  return b;
}

static takhin_store *open_db(const char *db) {
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  return s;
}

static const char *const compact_cfg[] = {
    "cleanup_policy", "compact", "segment_bytes", "16384", "delete_retention_ms", "3600000", NULL};

extern int tk_compact_caller_plans;

/* Each workload runs with the plan on a helper thread (the C API's way) and,
** odd ones, with the roles swapped (the SQL extension's way). */
Test(compaction, random_workloads_match_the_model) {
  struct {
    int nkeys;
    size_t vlen;
    int tomb;
    int bs;
    const char *codec;
  } w[] = {{50, 100, 0, 1, "none"},   {500, 200, 5, 7, "zstd"}, {3000, 60, 10, 32, "none"},
           {10, 1000, 20, 3, "zstd"}, {50, 100, 0, 1, "none"},  {500, 200, 5, 7, "zstd"}};
  for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
    tk_compact_caller_plans = k >= 4;
    char name[64], db[4096];
    snprintf(name, sizeof name, "compact_model_%zu", k);
    snprintf(db, sizeof db, "%s", tu_store_path(name));
    takhin_store *s = open_db(db);
    const char *const cfg[] = {"cleanup_policy",
                               "compact",
                               "segment_bytes",
                               "16384",
                               "compression",
                               w[k].codec,
                               "delete_retention_ms",
                               "3600000",
                               NULL};
    cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
    model m;
    model_init(&m, 20000);
    unsigned seed = 42 + (unsigned)k;
    produce(s, "t", &m, 6000, w[k].nkeys, w[k].vlen, w[k].tomb, w[k].bs, &seed);
    takhin_partition_info before;
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &before), TAKHIN_OK);
    takhin_compaction_result r = {0};
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
    int64_t end = active_base(s, "t");
    cr_assert_gt(r.segments_compacted, 0, "workload %zu", k);
    cr_assert_gt(r.records_removed, 0);
    takhin_partition_info after;
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &after), TAKHIN_OK);
    cr_assert_eq(r.bytes_reclaimed, before.size_bytes - after.size_bytes,
                 "bytes reclaimed = file bytes before - after");
    cr_assert_eq(after.high_watermark, before.high_watermark, "the high watermark stays");
    int64_t live = 0;
    for (int i = 0; i < w[k].nkeys; i++) live += m.latest[i] >= 0;
    cr_assert_eq(r.keys_kept, live, "keys kept");
    int64_t n = check_log(s, "t", &m, end, w[k].vlen, 0);
    cr_assert_eq(n + r.records_removed, m.n, "every record is kept or counted as removed");
    /* a second run has nothing to do, and changes nothing */
    takhin_compaction_result r2 = {0};
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r2), TAKHIN_OK);
    cr_assert_eq(r2.segments_compacted, 0);
    cr_assert_eq(r2.records_removed, 0);
    check_log(s, "t", &m, end, w[k].vlen, 0);
    /* reopen: same log, and produce and compaction go on incrementally */
    takhin_close(s);
    s = open_db(db);
    check_log(s, "t", &m, end, w[k].vlen, 0);
    produce(s, "t", &m, 3000, w[k].nkeys, w[k].vlen, w[k].tomb, w[k].bs, &seed);
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r2), TAKHIN_OK, "%s", takhin_errmsg());
    check_log(s, "t", &m, active_base(s, "t"), w[k].vlen, 0);
    model_free(&m);
    takhin_close(s);
  }
  tk_compact_caller_plans = 0;
}

Test(compaction, null_keys_refused) {
  takhin_store *s = open_db(tu_store_path("compact_nullkey"));
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  takhin_record r[2] = {{.key = "a", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1},
                        {.key = NULL, .value = "v", .value_len = 1, .timestamp = 1}};
  cr_assert_eq(takhin_produce(s, "t", 0, r, 2, NULL), TAKHIN_EINVAL);
  cr_assert(strstr(takhin_errmsg(), "null key"), "%s", takhin_errmsg());
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 0, "the whole batch was refused");
  cr_assert_eq(takhin_topic_create(s, "plain", 1, NULL), TAKHIN_OK);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "plain", 0, 1, &cr), TAKHIN_EINVAL,
               "only compacted topics compact");
  takhin_close(s);
}

static void put(takhin_store *s, const char *key, const char *value, int64_t ts) {
  takhin_record r = {.key = key,
                     .key_len = strlen(key),
                     .value = value,
                     .value_len = value ? strlen(value) : 0,
                     .timestamp = ts};
  cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
}

/* Fill the active segment so it rolls: what was written before is sealed. */
static void roll(takhin_store *s) {
  char v[1000];
  memset(v, 'z', sizeof v - 1);
  v[sizeof v - 1] = 0;
  for (int i = 0; i < 20; i++) put(s, "filler", v, 5);
}

static int lookup(takhin_store *s, const char *key, takhin_message *m, takhin_cursor **c) {
  if (!*c) cr_assert_eq(takhin_cursor_open(s, "t", 0, c), TAKHIN_OK);
  return takhin_cursor_get_key(*c, key, strlen(key), m);
}

Test(compaction, tombstones_and_delete_retention) {
  takhin_store *s = open_db(tu_store_path("compact_tomb"));
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "4096", "delete_retention_ms", "300", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  put(s, "a", "1", 10);
  put(s, "b", "1", 10);
  put(s, "a", NULL, 11); /* tombstone for a */
  roll(s);
  takhin_cursor *c = NULL;
  takhin_message m;
  cr_assert_eq(lookup(s, "a", &m, &c), TAKHIN_OK, "a live tombstone is found");
  cr_assert_null(m.value);
  cr_assert_eq(m.offset, 2);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_geq(r.records_removed, 1, "a=1 went, superseded by its tombstone");
  cr_assert_eq(lookup(s, "a", &m, &c), TAKHIN_OK, "the tombstone stays within delete_retention_ms");
  cr_assert_null(m.value);
  cr_assert_eq(takhin_cursor_get(c, 0, &m), TAKHIN_ENOTFOUND, "offset 0 was compacted away");
  usleep(400 * 1000);
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK);
  /* a cursor may finish the window it read before compaction: look with a new one */
  takhin_cursor_close(c);
  c = NULL;
  cr_assert_eq(lookup(s, "a", &m, &c), TAKHIN_ENOTFOUND,
               "after delete_retention_ms the tombstone is gone");
  cr_assert_eq(takhin_cursor_get(c, 2, &m), TAKHIN_ENOTFOUND);
  cr_assert_eq(lookup(s, "b", &m, &c), TAKHIN_OK);
  cr_assert_eq(m.value_len, 1);
  takhin_cursor_close(c);
  takhin_close(s);
}

/* delete_retention_ms=0: a run marks the tombstones of its range seen and
** drops them in the same run (it plans with "now"), and so does the next
** run for a tombstone produced after the first: a run finds its unseen
** tombstones with a read before it writes (compaction.c), and must not
** miss them. */
Test(compaction, tombstones_with_zero_retention_go_in_one_run) {
  takhin_store *s = open_db(tu_store_path("compact_tomb_zero"));
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "4096", "delete_retention_ms", "0", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  put(s, "a", "1", 10);
  put(s, "b", "1", 10);
  put(s, "a", NULL, 11);
  roll(s);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_cursor *c = NULL;
  takhin_message m;
  cr_assert_eq(lookup(s, "a", &m, &c), TAKHIN_ENOTFOUND, "a's tombstone went in the first run");
  cr_assert_eq(lookup(s, "b", &m, &c), TAKHIN_OK);
  takhin_cursor_close(c);
  c = NULL;
  /* a second run with no unseen tombstone, then one with a new one */
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  put(s, "b", NULL, 12);
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(lookup(s, "b", &m, &c), TAKHIN_ENOTFOUND, "b's tombstone went in its first run");
  takhin_cursor_close(c);
  takhin_close(s);
}

/* delete_retention_ms counts from the run that first saw a tombstone: a
** later run (with another, unseen tombstone in its range, and then with
** none) does not move that time, so the first tombstone goes on time while
** the one seen later stays. */
Test(compaction, tombstone_seen_time_is_the_first_runs) {
  takhin_store *s = open_db(tu_store_path("compact_tomb_first"));
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "4096", "delete_retention_ms", "1500", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  put(s, "a", "1", 10);
  put(s, "a", NULL, 11);
  roll(s);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t t1 = tk_now_ms();
  usleep(800 * 1000);
  put(s, "b", "1", 12);
  put(s, "b", NULL, 13);
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg()); /* sees b */
  int64_t t2 = tk_now_ms();
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg()); /* none */
  usleep(800 * 1000);
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t t3 = tk_now_ms();
  takhin_cursor *c = NULL;
  takhin_message m;
  cr_assert_geq(t3 - t1, 1600);
  cr_assert_eq(lookup(s, "a", &m, &c), TAKHIN_ENOTFOUND,
               "a's tombstone went 1500 ms after the run that first saw it");
  /* b was seen after t1 + 800 ms: it stays unless this machine stalled
  ** for 700 ms between the runs */
  if (t3 - t2 < 1400) {
    cr_assert_eq(lookup(s, "b", &m, &c), TAKHIN_OK, "b's tombstone is within its retention");
    cr_assert_null(m.value);
  }
  takhin_cursor_close(c);
  takhin_close(s);
}

/* Survivors are each key's latest offset with the expired tombstones taken
** out by a second query (compact_plan.c): with expired and live tombstones
** and live values interleaved in every segment, the log after compaction
** holds exactly the expected records, in order. */
Test(compaction, expired_tombstones_among_survivors) {
  takhin_store *s = open_db(tu_store_path("compact_tomb_mix"));
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "2048", "delete_retention_ms", "300", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  enum { N = 120 };
  char key[16];
  /* keys k0..k119: value, then for k % 3 == 0 a tombstone (to expire) */
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "k%d", i);
    put(s, key, "v1", 10);
  }
  for (int i = 0; i < N; i += 3) {
    snprintf(key, sizeof key, "k%d", i);
    put(s, key, NULL, 11);
  }
  roll(s);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  usleep(400 * 1000);
  /* then, for k % 3 == 1, a tombstone seen first by the next run (kept), and
  ** for k % 3 == 2 a newer value (the old one goes) */
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "k%d", i);
    if (i % 3 == 1) put(s, key, NULL, 12);
    if (i % 3 == 2) put(s, key, "v2", 12);
  }
  roll(s);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message m;
  int seen[N] = {0}, rc;
  int64_t last = -1;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_gt(m.offset, last, "offsets stay in order");
    last = m.offset;
    if (m.key_len == 6 && !memcmp(m.key, "filler", 6)) continue;
    int i = atoi((const char *)m.key + 1);
    cr_assert(i >= 0 && i < N);
    seen[i]++;
    cr_assert(i % 3 != 0, "k%d: its tombstone expired, so the key is gone", i);
    if (i % 3 == 1) cr_assert_null(m.value, "k%d: its live tombstone alone stays", i);
    if (i % 3 == 2) cr_assert(m.value_len == 2 && !memcmp(m.value, "v2", 2), "k%d: v2 only", i);
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  for (int i = 0; i < N; i++) cr_assert_eq(seen[i], i % 3 ? 1 : 0, "k%d seen %d times", i, seen[i]);
  takhin_cursor_close(c);
  takhin_close(s);
}

Test(compaction, lag_and_dirty_ratio_thresholds) {
  takhin_store *s = open_db(tu_store_path("compact_thresholds"));
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "4096", "min_cleanable_dirty_ratio",
      "0.99",           NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  int64_t now = tk_now_ms();
  for (int i = 0; i < 200; i++) put(s, i % 2 ? "x" : "y", "some value here", now);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 0, &r), TAKHIN_OK);
  cr_assert_eq(r.segments_compacted, 0,
               "dirty ratio below 0.99 (the active segment counts in the total)");
  cr_assert_eq(
      takhin_topic_alter_config(s, "t",
                                (const char *const[]){"min_cleanable_dirty_ratio", "0.1",
                                                      "min_compaction_lag_ms", "3600000", NULL}),
      TAKHIN_OK);
  cr_assert_eq(takhin_compact(s, "t", 0, 0, &r), TAKHIN_OK);
  cr_assert_eq(r.segments_compacted, 0,
               "records younger than min_compaction_lag_ms are not compacted");
  cr_assert_eq(
      takhin_topic_alter_config(s, "t", (const char *const[]){"min_compaction_lag_ms", "0", NULL}),
      TAKHIN_OK);
  cr_assert_eq(takhin_compact(s, "t", 0, 0, &r), TAKHIN_OK);
  cr_assert_gt(r.segments_compacted, 0, "ratio reached, no lag: compacted");
  takhin_close(s);
}

Test(compaction, key_lookups_before_and_after) {
  const char *db = tu_store_path("compact_lookup");
  char path[4096];
  snprintf(path, sizeof path, "%s", db);
  takhin_store *s = open_db(path);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  for (int round = 0; round < 5; round++)
    for (int k = 0; k < 100; k++) {
      char key[16], val[32];
      snprintf(key, sizeof key, "k%d", k);
      snprintf(val, sizeof val, "v%d-%d", k, round);
      put(s, key, val, 100 + round);
    }
  takhin_cursor *c = NULL;
  takhin_message m;
  for (int pass = 0; pass < 3; pass++) {
    for (int k = 0; k < 100; k += 7) {
      char key[16], val[32];
      snprintf(key, sizeof key, "k%d", k);
      snprintf(val, sizeof val, "v%d-4", k);
      cr_assert_eq(lookup(s, key, &m, &c), TAKHIN_OK, "pass %d key %s: %s", pass, key,
                   takhin_errmsg());
      cr_assert_eq(m.value_len, strlen(val));
      cr_assert(memcmp(m.value, val, m.value_len) == 0, "the latest value");
      cr_assert_eq(m.offset, 400 + k);
    }
    cr_assert_eq(lookup(s, "nope", &m, &c), TAKHIN_ENOTFOUND);
    if (pass == 0) cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK);
    if (pass == 1) { /* reopen after compaction */
      takhin_cursor_close(c);
      c = NULL;
      takhin_close(s);
      s = open_db(path);
    }
  }
  takhin_cursor_close(c);
  cr_assert_eq(takhin_topic_create(s, "plain", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_open(s, "plain", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get_key(c, "k", 1, &m), TAKHIN_EINVAL, "no key index on plain topics");
  takhin_cursor_close(c);
  takhin_close(s);
}

/* The child produces a workload, compacts with a crash at `step`; the parent
** reopens and checks the log against the same model. */
Test(compaction, crash_at_every_step_leaves_a_consistent_log) {
  for (int step = 1; step <= 6; step++) {
    char name[64], db[4096];
    snprintf(name, sizeof name, "compact_crash_%d", step);
    snprintf(db, sizeof db, "%s", tu_store_path(name));
    model m;
    model_init(&m, 10000);
    unsigned seed = 7;
    takhin_store *s = open_db(db);
    cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
    produce(s, "t", &m, 4000, 300, 80, 5, 5, &seed);
    int64_t end = active_base(s, "t");
    takhin_close(s);
    pid_t pid = fork();
    if (pid == 0) {
      takhin_store *cs;
      if (takhin_open(db, NULL, &cs)) _exit(2);
      tk_compact_crash_step = step;
      takhin_compact(cs, "t", 0, 1, NULL);
      _exit(3); /* the crash point was not reached */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "step %d: child status %d", step, st);
    s = open_db(db);
    /* Old or new log, never a mix: every latest record is there, and any
    ** superseded record is either all there (old) or all gone (new). */
    takhin_cursor *c;
    takhin_message msg;
    cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
    int64_t seen = 0, prev = -1;
    int rc;
    while ((rc = takhin_cursor_next(c, &msg)) == TAKHIN_OK) {
      cr_assert_gt(msg.offset, prev, "step %d: no offset twice", step);
      prev = msg.offset;
      seen++;
    }
    cr_assert_eq(rc, TAKHIN_END, "step %d: %s", step, takhin_errmsg());
    takhin_cursor_close(c);
    if (step >= 3) check_log(s, "t", &m, end, 80, 0); /* committed: the new log */
    else cr_assert_eq(seen, m.n, "step %d: not committed, the old log is whole", step);
    /* and it compacts cleanly afterwards */
    cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "step %d: %s", step,
                 takhin_errmsg());
    check_log(s, "t", &m, end, 80, 0);
    takhin_close(s);
    model_free(&m);
  }
}

/* Produce n records over 300 keys without the model (in a child). */
static int produce_plain(takhin_store *s, int n, unsigned *seed) {
  char keys[5][16], val[80];
  memset(val, 'x', sizeof val);
  for (int i = 0; i < n; i += 5) {
    takhin_record recs[5];
    for (int j = 0; j < 5; j++) {
      int kl = snprintf(keys[j], sizeof keys[j], "key-%d", (int)(rand_r(seed) % 300));
      recs[j] = (takhin_record){
          .key = keys[j], .key_len = (size_t)kl, .value = val, .value_len = sizeof val};
    }
    int rc = takhin_produce(s, "t", 0, recs, 5, NULL);
    if (rc) return rc;
  }
  return 0;
}

/* The offsets of partition 0 of "t", in order, into the file at path. */
static int write_offsets(takhin_store *s, const char *path) {
  FILE *f = fopen(path, "wb");
  takhin_cursor *c;
  if (!f || takhin_cursor_open(s, "t", 0, &c)) return -1;
  takhin_message m;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) fwrite(&m.offset, sizeof m.offset, 1, f);
  takhin_cursor_close(c);
  return fclose(f) || rc != TAKHIN_END ? -1 : 0;
}

/* Rows of takhin_cat_swap (all partitions). */
static int64_t swap_rows(const char *db) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM takhin_cat_swap", -1, &st, NULL),
               SQLITE_OK);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* A finished run leaves its swap rows behind (its renames are done and
** synced; compaction.c drops them with the next run's first write). An
** open that finds them has nothing to rename and drops them. And the next
** run must drop them before it makes .cleaned files of its own: a child
** runs once, produces, and crashes its second run after the new files are
** written (step 1). Had the first run's rows stayed, the open would rename
** the second run's uncommitted files over their segments: the log must be
** the first run's, with every record produced since. */
Test(compaction, swap_rows_of_a_finished_run) {
  const char *db = tu_store_path("compact_swap_rows");
  model m;
  model_init(&m, 20000);
  unsigned seed = 21;
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  produce(s, "t", &m, 4000, 300, 80, 0, 5, &seed);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.segments_compacted, 0);
  int64_t end = active_base(s, "t");
  cr_assert_eq(swap_rows(db), r.segments_compacted, "the run's swap rows are left");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = open_db(db);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.files_removed, 0, "no file renamed or removed for rows of done renames");
  cr_assert_eq(swap_rows(db), 0, "the open dropped them");
  check_log(s, "t", &m, end, 80, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model_free(&m);
  char expect[4200];
  snprintf(expect, sizeof expect, "%s.expect", db);
  pid_t pid = fork();
  if (pid == 0) {
    takhin_store *cs;
    takhin_compaction_result cr = {0};
    unsigned cseed = 23;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    if (produce_plain(cs, 3000, &cseed)) _exit(4);
    if (takhin_compact(cs, "t", 0, 1, &cr) || cr.segments_compacted == 0) _exit(5);
    if (produce_plain(cs, 3000, &cseed)) _exit(6);
    /* the log the second run leaves if it does not commit */
    if (write_offsets(cs, expect)) _exit(7);
    tk_compact_crash_step = 1;
    takhin_compact(cs, "t", 0, 1, NULL);
    _exit(3); /* the crash point was not reached */
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d", st);
  s = open_db(db);
  char got[4200];
  snprintf(got, sizeof got, "%s.got", db);
  cr_assert_eq(write_offsets(s, got), 0);
  FILE *a = fopen(expect, "rb"), *b = fopen(got, "rb");
  cr_assert(a && b);
  int64_t x, y, n = 0;
  for (;;) {
    size_t ra = fread(&x, sizeof x, 1, a), rb = fread(&y, sizeof y, 1, b);
    cr_assert_eq(ra, rb, "%lld records before the crash, %s after", (long long)n,
                 ra ? "fewer" : "more");
    if (!ra) break;
    cr_assert_eq(y, x, "record %lld: offset %lld read, %lld before the crash", (long long)n,
                 (long long)y, (long long)x);
    n++;
  }
  fclose(a);
  fclose(b);
  cr_assert_gt(n, 3000);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* ---- swap rows name their file ------------------------------------------ */

static void assert_no_cleaned_files(const char *db);

typedef struct swap_row {
  int64_t topic, part, base, size, fp;
} swap_row;

/* The swap rows of the catalog at db (the store closed), up to max. */
static size_t read_swap_rows(const char *db, swap_row *v, size_t max) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT topic_id, partition, base_offset, size_bytes, "
                                  "fingerprint FROM takhin_cat_swap ORDER BY base_offset",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  size_t n = 0;
  while (n < max && sqlite3_step(st) == SQLITE_ROW) {
    cr_assert_eq(sqlite3_column_type(st, 3), SQLITE_INTEGER, "the row has its file's size");
    cr_assert_eq(sqlite3_column_type(st, 4), SQLITE_INTEGER, "the row has its fingerprint");
    v[n++] = (swap_row){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                        sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                        sqlite3_column_int64(st, 4)};
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* What a power loss does to a drop of swap rows that was never synced: the
** rows come back, as direct SQL on the closed store's catalog. */
static void put_swap_rows(const char *db, const swap_row *v, size_t n) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "INSERT OR REPLACE INTO takhin_cat_swap(topic_id, partition, "
                                  "base_offset, size_bytes, fingerprint) VALUES (?, ?, ?, ?, ?)",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  for (size_t i = 0; i < n; i++) {
    const int64_t col[5] = {v[i].topic, v[i].part, v[i].base, v[i].size, v[i].fp};
    for (int c = 0; c < 5; c++) sqlite3_bind_int64(st, c + 1, col[c]);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(h));
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* Read partition 0 of "t": every record's key and value must be the
** model's for its offset, and the offsets exactly those in the file at
** expect (write_offsets). */
static void check_offsets_and_values(takhin_store *s, const model *m, const char *expect) {
  FILE *f = fopen(expect, "rb");
  cr_assert_not_null(f);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message msg;
  int64_t want, n = 0;
  int rc;
  char buf[2048];
  while ((rc = takhin_cursor_next(c, &msg)) == TAKHIN_OK) {
    cr_assert_eq(fread(&want, sizeof want, 1, f), 1, "offset %lld read past the log's end",
                 (long long)msg.offset);
    cr_assert_eq(msg.offset, want, "record %lld: offset %lld read, %lld expected", (long long)n,
                 (long long)msg.offset, (long long)want);
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%d", m->key_of[want]);
    cr_assert(msg.key_len == (size_t)kl && memcmp(msg.key, key, (size_t)kl) == 0);
    value_of(buf, 80, want);
    cr_assert(msg.value_len == 80 && memcmp(msg.value, buf, 80) == 0, "value of %lld",
              (long long)want);
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(fread(&want, sizeof want, 1, f), 0, "records missing from offset %lld",
               (long long)want);
  fclose(f);
  takhin_cursor_close(c);
  cr_assert_gt(n, 3000);
}

/* A power loss after a finished run: the later run's drop of the first
** run's swap rows is lost (never synced), and that later run had made its
** own .cleaned files for the same segments without committing. The rows
** come back; the .cleaned file beside a segment is the later run's as it
** was written (kind 0), torn (1: half of it), or garbage of exactly the
** row's size (2). The open must not rename any of them over its segment:
** the log is the first run's with every record produced since, each with
** its value. (Without the rows' fingerprints the open renames them.) */
static void lost_drop_of_swap_rows(int kind) {
  char name[64], db[4096], expect[4200];
  snprintf(name, sizeof name, "compact_lost_drop_%d", kind);
  snprintf(db, sizeof db, "%s", tu_store_path(name));
  snprintf(expect, sizeof expect, "%s.expect", db);
  model m;
  model_init(&m, 20000);
  unsigned seed = 31;
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  produce(s, "t", &m, 4000, 300, 80, 0, 5, &seed);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.segments_compacted, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  swap_row rows[256];
  size_t nrows = read_swap_rows(db, rows, 256);
  cr_assert_eq((int64_t)nrows, r.segments_compacted, "the run's swap rows are left");
  unsigned cseed = seed;
  pid_t pid = fork();
  if (pid == 0) {
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    produce(cs, "t", &m, 3000, 300, 80, 0, 5, &cseed);
    if (write_offsets(cs, expect)) _exit(7);
    tk_compact_crash_step = 1; /* its .cleaned files written and synced, nothing committed */
    takhin_compact(cs, "t", 0, 1, NULL);
    _exit(3);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d", st);
  produce_model_only(&m, 3000, 300, &cseed);
  cr_assert_eq(swap_rows(db), 0, "the open dropped the rows (the drop the power loss undoes)");
  put_swap_rows(db, rows, nrows);
  int placed = 0;
  for (size_t i = 0; i < nrows; i++) {
    char path[4400];
    tu_segment_path(path, sizeof path, db, "t", 0, rows[i].base);
    strcat(path, ".cleaned");
    struct stat sb;
    if (stat(path, &sb) != 0) continue;
    placed++;
    if (kind == 1) cr_assert_eq(truncate(path, sb.st_size / 2), 0);
    if (kind == 2) {
      FILE *f = fopen(path, "wb");
      cr_assert_not_null(f);
      for (int64_t b = 0; b < rows[i].size; b++) fputc((int)((b * 131 + 7) & 0xff), f);
      cr_assert_eq(fclose(f), 0);
    }
  }
  cr_assert_gt(placed, 0, "the later run made .cleaned files for the first run's segments");
  s = open_db(db);
  assert_no_cleaned_files(db);
  cr_assert_eq(swap_rows(db), 0);
  check_offsets_and_values(s, &m, expect);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, active_base(s, "t"), 80, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model_free(&m);
}

Test(compaction, lost_drop_of_swap_rows_later_runs_file) { lost_drop_of_swap_rows(0); }
Test(compaction, lost_drop_of_swap_rows_torn_file) { lost_drop_of_swap_rows(1); }
Test(compaction, lost_drop_of_swap_rows_garbage_file) { lost_drop_of_swap_rows(2); }

/* A child process opens db and compacts "t", and aborts at step (its
** crash point); the parent checks it died there. */
static void compact_crashing_at(const char *db, int step) {
  pid_t pid = fork();
  if (pid == 0) {
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    tk_compact_crash_step = step;
    takhin_compact(cs, "t", 0, 1, NULL);
    _exit(3); /* the crash point was not reached */
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d", st);
}

/* A store at db whose topic "t" (the model m, initialized here) was
** compacted by a child that died after the run's commit, before any
** rename: swap rows and .cleaned files wait. Returns the active base. */
static int64_t committed_not_renamed(const char *db, model *m, unsigned *seed) {
  model_init(m, 10000);
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  produce(s, "t", m, 4000, 300, 80, 0, 5, seed);
  int64_t end = active_base(s, "t");
  takhin_close(s);
  compact_crashing_at(db, 3);
  return end;
}

/* A committed .cleaned file one byte off in a batch header's region the
** batch CRC does not cover (the leader epoch of its second batch): it is
** not the file the swap row names, so it is not renamed; the old .log
** stays whole (its rows, which described the new file, rebuilt from it),
** while the run's other files are renamed as committed. */
Test(compaction, damaged_committed_file_is_not_renamed) {
  const char *db = tu_store_path("compact_fp_damage");
  model m;
  unsigned seed = 37;
  int64_t end = committed_not_renamed(db, &m, &seed);
  swap_row rows[256];
  size_t nrows = read_swap_rows(db, rows, 256);
  cr_assert_gt(nrows, 1);
  size_t big = 0; /* the largest new file: early segments may have kept nothing */
  for (size_t i = 1; i < nrows; i++)
    if (rows[i].size > rows[big].size) big = i;
  int64_t base = rows[big].base, old_size, next = -1;
  char path[4420], log[4400];
  tu_segment_path(log, sizeof log, db, "t", 0, base);
  snprintf(path, sizeof path, "%s.cleaned", log);
  struct stat sb;
  cr_assert_eq(stat(log, &sb), 0);
  old_size = sb.st_size;
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  uint8_t h[12];
  cr_assert_eq(fread(h, 1, 12, f), 12);
  long second =
      12 + (long)((uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11]);
  cr_assert_lt(second + 61, (long)rows[big].size, "the file has a second batch");
  cr_assert_eq(fseek(f, second + 12, SEEK_SET), 0);
  int c = fgetc(f);
  cr_assert_eq(fseek(f, second + 12, SEEK_SET), 0);
  fputc(c ^ 0x01, f);
  cr_assert_eq(fclose(f), 0);
  takhin_store *s = open_db(db);
  assert_no_cleaned_files(db);
  cr_assert_eq(stat(log, &sb), 0);
  cr_assert_eq((int64_t)sb.st_size, old_size, "the old .log stays");
  takhin_segment_info *segs;
  size_t nsegs;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &nsegs), TAKHIN_OK);
  for (size_t i = 0; i < nsegs; i++)
    if (segs[i].base_offset == base) next = segs[i].next_offset;
  takhin_free(segs);
  cr_assert_gt(next, base);
  /* Every record of that segment is there (old); the rest is the run's. */
  takhin_cursor *cur;
  takhin_message msg;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &cur), TAKHIN_OK);
  int64_t expect = 0;
  int rc;
  char buf[100];
  while ((rc = takhin_cursor_next(cur, &msg)) == TAKHIN_OK) {
    while ((expect < base || expect >= next) && expect < end &&
           m.latest[m.key_of[expect]] != expect)
      expect++;
    cr_assert_eq(msg.offset, expect, "offset %lld read, %lld expected", (long long)msg.offset,
                 (long long)expect);
    value_of(buf, 80, expect);
    cr_assert(msg.value_len == 80 && memcmp(msg.value, buf, 80) == 0);
    expect++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(expect, m.n);
  takhin_cursor_close(cur);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.batches_damaged, 0, "%s", ri.first_damage);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, end, 80, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = open_db(db);
  check_log(s, "t", &m, end, 80, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model_free(&m);
}

/* A catalog made before the swap rows had fingerprints: the open adds the
** columns, and a row without one is taken at its word as before (the child
** crashed after the commit, before any rename: the log is the run's). */
Test(compaction, swap_rows_of_an_older_catalog) {
  const char *db = tu_store_path("compact_old_swap");
  model m;
  unsigned seed = 41;
  int64_t end = committed_not_renamed(db, &m, &seed);
  cr_assert_gt(swap_rows(db), 0);
  sqlite3 *h;
  char *err = NULL;
  cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(h,
                            "CREATE TABLE old_swap(topic_id INTEGER NOT NULL, partition INTEGER "
                            "NOT NULL, base_offset INTEGER NOT NULL, PRIMARY KEY (topic_id, "
                            "partition, base_offset)) STRICT, WITHOUT ROWID;"
                            "INSERT INTO old_swap SELECT topic_id, partition, base_offset "
                            "FROM takhin_cat_swap; DROP TABLE takhin_cat_swap;"
                            "ALTER TABLE old_swap RENAME TO takhin_cat_swap;",
                            NULL, NULL, &err),
               SQLITE_OK, "%s", err);
  sqlite3_close(h);
  takhin_store *s = open_db(db);
  assert_no_cleaned_files(db);
  check_log(s, "t", &m, end, 80, 0);
  produce(s, "t", &m, 2000, 300, 80, 0, 5, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, active_base(s, "t"), 80, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  swap_row rows[256];
  cr_assert_gt(read_swap_rows(db, rows, 256), 0, "the columns are there, and filled");
  model_free(&m);
}

typedef struct {
  takhin_store *s;
  atomic_int stop;
  long bad, reads;
} reader_arg;

static void *reader(void *arg) {
  reader_arg *a = arg;
  while (!atomic_load(&a->stop)) {
    takhin_cursor *c;
    if (takhin_cursor_open(a->s, "t", 0, &c) != TAKHIN_OK) {
      a->bad++;
      continue;
    }
    takhin_message m;
    int64_t prev = -1;
    int rc;
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      char buf[100];
      value_of(buf, 80, m.offset);
      if (m.offset <= prev || (m.value && (m.value_len != 80 || memcmp(m.value, buf, 80))))
        a->bad++;
      prev = m.offset;
    }
    if (rc != TAKHIN_END) a->bad++;
    a->reads++;
    takhin_cursor_close(c);
  }
  return NULL;
}

Test(compaction, concurrent_reader_stays_consistent) {
  takhin_store *s = open_db(tu_store_path("compact_reader"));
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  model m;
  model_init(&m, 40000);
  unsigned seed = 99;
  produce(s, "t", &m, 4000, 200, 80, 0, 4, &seed);
  reader_arg a = {s, 0, 0, 0};
  pthread_t th;
  pthread_create(&th, NULL, reader, &a);
  for (int i = 0; i < 5; i++) {
    produce(s, "t", &m, 2000, 200, 80, 0, 4, &seed);
    cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  }
  atomic_store(&a.stop, 1);
  pthread_join(th, NULL);
  cr_assert_eq(a.bad, 0, "reader saw %ld inconsistencies in %ld reads", a.bad, a.reads);
  cr_assert_gt(a.reads, 0);
  check_log(s, "t", &m, active_base(s, "t"), 80, 0);
  model_free(&m);
  takhin_close(s);
}

/* A store at db with a compacted topic "t" of n records over 100 keys
** (100-byte values, batches of 16), and its model. */
static takhin_store *keyed_store(const char *db, model *m, int64_t n, unsigned *seed) {
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  model_init(m, 20000);
  produce(s, "t", m, n, 100, 100, 0, 16, seed);
  return s;
}

/* No temporary file of a compaction run is left in topic t's folder. */
static void assert_no_cleaned_files(const char *db) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s-takhin/t-0", db);
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  for (struct dirent *e; (e = readdir(d));)
    cr_assert_null(strstr(e->d_name, ".cleaned"), "%s is left behind", e->d_name);
  closedir(d);
}

/* Descriptors of this process open on files that have been unlinked. */
static int deleted_files_open(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = '\0';
    if (strstr(target, ".log (deleted)")) n++;
  }
  return n;
}

/* Replaced segments are released on the store's reaper thread: their
** descriptors close soon after the run (freeing the disk space), at the
** latest at takhin_close, and a topic deleted while its old segments are
** still queued stays valid until they are released (ASan checks). */
/* Threads of this process that takhin started (each names itself
** "takhin-..."; a sanitizer's own threads do not count). */
static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* gone meanwhile */
    if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
    fclose(f);
    n += strncmp(comm, "takhin-", 7) == 0;
  }
  closedir(d);
  return n;
}

/* The helpers of a run (plan, syncing) run on threads the store keeps from
** one run to the next: many runs never hold more than TK_CW_MAX of them (as
** well as the reaper and the key writer), and takhin_close joins them all. */
Test(compaction, helper_threads_are_kept_and_joined) {
  int before = threads_now();
  const char *db = tu_store_path("compact_workers");
  model m;
  unsigned seed = 11;
  takhin_store *s = keyed_store(db, &m, 6000, &seed);
  for (int run = 0; run < 8; run++) {
    if (run) produce(s, "t", &m, 2000, 100, 100, 0, 16, &seed);
    takhin_compaction_result r = {0};
    tk_compact_caller_plans = run % 2; /* the extension's arrangement too */
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_gt(r.segments_compacted, 0, "run %d rewrote segments", run);
    int now = threads_now();
    cr_assert_leq(now, before + TK_CW_MAX + 2, "run %d: %d threads (%d before the store)", run, now,
                  before);
  }
  tk_compact_caller_plans = 0;
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* a joined thread's /proc entry may outlive pthread_join for a moment */
  int after = threads_now();
  for (int i = 0; i < 200 && after > before; i++) {
    usleep(10000);
    after = threads_now();
  }
  cr_assert_leq(after, before,
                "takhin_close joins every thread of the store: %d threads, %d before", after,
                before);
  model_free(&m);
}

/* The rewriting buffers of a run are kept by the store for the next run
** and freed at close (ASan/LSan would report them otherwise); when some
** are kept already, a second set is freed at once. */
static int freed_sets;
static void count_free(void *b) {
  free(b);
  freed_sets++;
}

static takhin_store *buffers_store;
static void *kept_mid_run = (void *)1;
static void look_at_kept(const char *topic, int32_t partition, int step) {
  (void)topic, (void)partition;
  if (step == 1) kept_mid_run = tk_cw_kept_buffers(buffers_store);
}

Test(compaction, rewriting_buffers_are_kept_between_runs) {
  const char *db = tu_store_path("compact_buffers");
  model m;
  unsigned seed = 13;
  takhin_store *s = keyed_store(db, &m, 6000, &seed);
  cr_assert_null(tk_cw_kept_buffers(s), "none kept before a run");
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  void *kept = tk_cw_kept_buffers(s);
  cr_assert_not_null(kept, "the run's buffers are kept");
  freed_sets = 0;
  tk_cw_keep_buffers(s, malloc(16), count_free);
  cr_assert_eq(freed_sets, 1, "a second set is freed at once");
  cr_assert_eq(tk_cw_kept_buffers(s), kept);
  /* the next run takes the same set (none is kept while it runs) and gives
  ** it back */
  produce(s, "t", &m, 2000, 100, 100, 0, 16, &seed);
  buffers_store = s;
  tk_compact_step_hook = look_at_kept;
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  tk_compact_step_hook = NULL;
  cr_assert_gt(r.segments_compacted, 0);
  cr_assert_null(kept_mid_run, "the run took the kept buffers");
  cr_assert_eq(tk_cw_kept_buffers(s), kept, "the second run used the first run's buffers");
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model_free(&m);
}

Test(compaction, replaced_segments_are_released) {
  const char *db = tu_store_path("compact_reaper");
  model m;
  unsigned seed = 5;
  takhin_store *s = keyed_store(db, &m, 6000, &seed);
  takhin_cursor *c; /* reads every segment, so each one has an open descriptor */
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message msg;
  while (takhin_cursor_next(c, &msg) == TAKHIN_OK) {}
  takhin_cursor_close(c);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.segments_compacted, 2);
  int left = -1;
  for (int i = 0; i < 500 && (left = deleted_files_open()) > 0; i++) usleep(10000);
  cr_assert_eq(left, 0, "%d replaced segment files still open 5 s after the run", left);
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);

  /* Compact and delete the topic at once, then recreate it and use it. */
  produce(s, "t", &m, 3000, 100, 100, 0, 16, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_delete(s, "t"), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  model_free(&m);
  model_init(&m, 20000);
  produce(s, "t", &m, 2000, 50, 100, 0, 16, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  cr_assert_eq(deleted_files_open(), 0, "takhin_close leaves no replaced file open");
  s = open_db(db);
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  model_free(&m);
  takhin_close(s);
}

extern int tk_compact_plan_fail_at;
extern int tk_compact_sync_fail_at;

/* Fail a run of partition 0 of "t" at each of the n points at[] through
** *hook (a test hook of store/testing.h): each run returns want with a
** message holding what (the failing thread's, passed on), and is undone:
** nothing swapped in, every record still there, no .cleaned file left. */
static void fail_at_each(takhin_store *s, const char *db, model *m, int *hook, const int *at,
                         size_t n, int want, const char *what) {
  takhin_partition_info before, after;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &before), TAKHIN_OK);
  for (size_t k = 0; k < n; k++) {
    *hook = at[k];
    int rc = takhin_compact(s, "t", 0, 1, NULL);
    *hook = 0;
    cr_assert_eq(rc, want, "failure at point %d: got %d, want %d", at[k], rc, want);
    cr_assert(strstr(takhin_errmsg(), what), "the failing thread's message arrives: %s",
              takhin_errmsg());
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &after), TAKHIN_OK);
    cr_assert_eq(after.size_bytes, before.size_bytes, "nothing was swapped in");
    check_log(s, "t", m, 0, 100, 0); /* every record still there */
    assert_no_cleaned_files(db);
  }
}

/* An error while the plan is queried ahead (on the helper thread) reaches
** the caller with its message and undoes the run: the log is as before, no
** temporary file stays, and the next run succeeds. */
static void plan_error_undoes_the_run(const char *name) {
  const char *db = tu_store_path(name);
  model m;
  unsigned seed = 17;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  takhin_partition_info before;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &before), TAKHIN_OK);
  cr_assert_gt(before.segments, 10, "enough segments for the helper to run ahead");
  const int at[] = {1, 5, 9}; /* first, behind and ahead of the rewriting */
  fail_at_each(s, db, &m, &tk_compact_plan_fail_at, at, 3, TAKHIN_ECATALOG, "test hook");
  /* A new file that cannot be made (a folder has its name) fails the run
  ** the same way, whichever thread made it. */
  takhin_segment_info *segs;
  size_t nsegs;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &nsegs), TAKHIN_OK);
  char blocker[4400];
  tu_segment_path(blocker, sizeof blocker, db, "t", 0, segs[6].base_offset);
  strcat(blocker, ".cleaned");
  takhin_free(segs);
  cr_assert_eq(mkdir(blocker, 0755), 0);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_EIO);
  cr_assert(strstr(takhin_errmsg(), "create"), "%s", takhin_errmsg());
  cr_assert_eq(rmdir(blocker), 0);
  check_log(s, "t", &m, 0, 100, 0);
  assert_no_cleaned_files(db);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.records_removed, 0);
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  model_free(&m);
  takhin_close(s);
}

Test(compaction, plan_error_undoes_the_run) { plan_error_undoes_the_run("compact_plan_error"); }

/* The same with the roles swapped, as on the SQL extension's store: the
** caller plans, a thread rewrites; a failure on either side ends both. */
Test(compaction, plan_error_undoes_the_run_caller_plans) {
  tk_compact_caller_plans = 1;
  plan_error_undoes_the_run("compact_plan_error_swapped");
  tk_compact_caller_plans = 0;
}

/* The new files are synced on threads of their own while the rewriting goes
** on: a failed fdatasync there (the first, one in the middle, the last new
** file) fails the run with EIO and its message, nothing is swapped in, no
** .cleaned file stays, and the next run succeeds. */
static void sync_error_undoes_the_run(const char *name) {
  const char *db = tu_store_path(name);
  model m;
  unsigned seed = 23;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  takhin_partition_info before;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &before), TAKHIN_OK);
  cr_assert_gt(before.segments, 10, "enough new files for several syncing threads");
  const int at[] = {1, 5, (int)before.segments - 1};
  fail_at_each(s, db, &m, &tk_compact_sync_fail_at, at, 3, TAKHIN_EIO, "fdatasync");
  /* the message names the new file that failed (the queue keeps its
  ** segment, not its path) */
  tk_compact_sync_fail_at = 1;
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_EIO);
  tk_compact_sync_fail_at = 0;
  cr_assert(strstr(takhin_errmsg(), ".log.cleaned"), "%s", takhin_errmsg());
  assert_no_cleaned_files(db);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.segments_compacted, 5);
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = open_db(db);
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  model_free(&m);
  takhin_close(s);
}

Test(compaction, sync_error_undoes_the_run) { sync_error_undoes_the_run("compact_sync_error"); }

Test(compaction, sync_error_undoes_the_run_caller_plans) {
  tk_compact_caller_plans = 1;
  sync_error_undoes_the_run("compact_sync_error_swapped");
  tk_compact_caller_plans = 0;
}

/* A damaged batch that compaction would re-seal under a new CRC stops the
** run with ECORRUPT (the rewrite checks it before re-sealing it):
** the damaged file is left exactly as it was, no .cleaned file stays, and
** the undamaged segments still read back whole. */
Test(compaction, damaged_batch_stops_the_run) {
  const char *db = tu_store_path("compact_damaged");
  model m;
  unsigned seed = 23;
  takhin_store *s = keyed_store(db, &m, 6000, &seed);
  cr_assert_eq(takhin_flush(s, 1), TAKHIN_OK);
  takhin_segment_info *segs;
  size_t nsegs;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &nsegs), TAKHIN_OK);
  cr_assert_gt(nsegs, 6);
  int64_t base = segs[5].base_offset, next = segs[5].next_offset;
  takhin_free(segs);
  char path[4400];
  tu_segment_path(path, sizeof path, db, "t", 0, base);
  int64_t size = tu_file_size(path);
  uint8_t *before = malloc((size_t)size);
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f);
  cr_assert_eq(fseek(f, 200, SEEK_SET), 0); /* inside the first batch's records */
  int c = fgetc(f);
  cr_assert_eq(fseek(f, 200, SEEK_SET), 0);
  fputc(c ^ 0x40, f);
  cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
  cr_assert_eq(fread(before, 1, (size_t)size, f), (size_t)size);
  fclose(f);

  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_ECORRUPT);
  cr_assert(strstr(takhin_errmsg(), "damaged batch"), "%s", takhin_errmsg());
  cr_assert_eq(tu_file_size(path), size, "the damaged segment is left as it is");
  uint8_t *after = malloc((size_t)size);
  f = fopen(path, "rb");
  cr_assert_eq(fread(after, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  cr_assert(memcmp(before, after, (size_t)size) == 0, "not one byte of it changed");
  assert_no_cleaned_files(db);
  /* Records outside the damaged segment are all there, uncompacted. */
  takhin_cursor *cur;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &cur), TAKHIN_OK);
  takhin_message msg;
  for (int64_t off = 0; off < m.n; off++) {
    if (off >= base && off < next) continue;
    cr_assert_eq(takhin_cursor_get(cur, off, &msg), TAKHIN_OK, "offset %lld: %s", (long long)off,
                 takhin_errmsg());
  }
  takhin_cursor_close(cur);
  free(before);
  free(after);
  model_free(&m);
  takhin_close(s);
}

/* A topic made compacted after it had data: its older segments are not
** key-indexed and are never compacted (NULL candidates). With more of them
** than the plan runs ahead, the run must still go through them (it once
** waited for them forever), in both thread arrangements. */
Test(compaction, older_unindexed_segments_are_skipped, .timeout = 120) {
  for (int swapped = 0; swapped < 2; swapped++) {
    tk_compact_caller_plans = swapped;
    const char *db = tu_store_path(swapped ? "compact_late_swapped" : "compact_late");
    takhin_store *s = open_db(db);
    const char *const plain[] = {"segment_bytes", "4096", NULL};
    cr_assert_eq(takhin_topic_create(s, "t", 1, plain), TAKHIN_OK);
    model m;
    model_init(&m, 20000);
    unsigned seed = 31;
    produce(s, "t", &m, 400, 20, 100, 0, 8, &seed);
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
    cr_assert_gt(pi.segments, 8, "more unindexed segments than the plan runs ahead");
    int64_t indexed_from = pi.high_watermark;
    cr_assert_eq(
        takhin_topic_alter_config(s, "t", (const char *const[]){"cleanup_policy", "compact", NULL}),
        TAKHIN_OK);
    produce(s, "t", &m, 400, 20, 100, 0, 8, &seed);
    takhin_compaction_result r = {0};
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_gt(r.records_removed, 0, "the indexed segments were compacted");
    /* every record before the switch is still there, untouched */
    takhin_cursor *c;
    cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
    takhin_message msg;
    for (int64_t off = 0; off < indexed_from; off++)
      cr_assert_eq(takhin_cursor_get(c, off, &msg), TAKHIN_OK, "offset %lld: %s", (long long)off,
                   takhin_errmsg());
    takhin_cursor_close(c);
    model_free(&m);
    takhin_close(s);
  }
  tk_compact_caller_plans = 0;
}

/* Key rows are written in batches, with the index rows. A process that
** dies with some unwritten loses nothing: the next open rebuilds the key
** index from the log, so lookups find every key's latest record and
** compaction keeps exactly those. */
Test(compaction, key_rows_pending_at_a_crash_are_rebuilt) {
  const char *db = tu_store_path("compact_pending_keys");
  model m;
  unsigned seed = 41;
  takhin_store *s = keyed_store(db, &m, 2000, &seed);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  pid_t pid = fork();
  if (pid == 0) { /* more records, then die with their key rows unwritten */
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    produce(cs, "t", &m, 3000, 100, 100, 0, 16, &seed);
    _exit(0); /* no close, no flush */
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  produce_model_only(&m, 3000, 100, &seed); /* the child's records, in the model */
  s = open_db(db);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  for (int k = 0; k < 100; k++) {
    if (m.latest[k] < 0) continue;
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%d", k);
    takhin_message msg;
    cr_assert_eq(takhin_cursor_get_key(c, key, (size_t)kl, &msg), TAKHIN_OK, "%s: %s", key,
                 takhin_errmsg());
    cr_assert_eq(msg.offset, m.latest[k], "%s: latest offset", key);
  }
  takhin_cursor_close(c);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  model_free(&m);
  takhin_close(s);
}

/* Look every key of the model up and expect its latest record. */
static void lookups_match(takhin_store *s, const model *m, int nkeys) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  for (int k = 0; k < nkeys; k++) {
    if (m->latest[k] < 0) continue;
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%d", k);
    takhin_message msg;
    cr_assert_eq(takhin_cursor_get_key(c, key, (size_t)kl, &msg), TAKHIN_OK, "%s: %s", key,
                 takhin_errmsg());
    cr_assert_eq(msg.offset, m->latest[k], "%s: latest offset", key);
  }
  takhin_cursor_close(c);
}

/* Keys produced again and again wait in memory once each (their newest
** record), not once per record: the catalog gets one row per key when the
** map is written. A lookup writes them first, so it finds every latest
** record; after it nothing is left unwritten and key_upto is the log's end. */
Test(compaction, hot_keys_wait_once_each) {
  const char *db = tu_store_path("compact_hot_keys");
  takhin_store *s = open_db(db);
  static const char *const cfg[] = {"cleanup_policy", "compact", NULL}; /* one segment: no roll */
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  model m;
  model_init(&m, 20000);
  unsigned seed = 61;
  produce(s, "t", &m, 12000, 10, 100, 10, 40, &seed);
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  pthread_mutex_lock(&p->append_lock);
  size_t waiting = tk_key_unwritten(p);
  pthread_mutex_unlock(&p->append_lock);
  cr_assert_leq(waiting, 10, "%zu key rows wait for 10 keys", waiting);
  lookups_match(s, &m, 10);
  pthread_mutex_lock(&p->append_lock);
  cr_assert_eq(tk_key_unwritten(p), 0, "the lookup wrote every waiting key row");
  cr_assert_eq(p->key_upto, m.n, "the key index covers the log");
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
  model_free(&m);
  takhin_close(s);
}

/* A writer killed (SIGKILL) with key rows still in memory: every record it
** acknowledged, in OS and FSYNC mode, is found by key after the reopen (the
** open rebuilds the unwritten rows from the log), and the index covers the
** log again. */
static void killed_with_keys_in_memory(int dur, const char *name) {
  const char *db = tu_store_path(name);
  takhin_options o;
  takhin_options_init(&o);
  o.durability = dur;
  takhin_store *s;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  static const char *const cfg[] = {"cleanup_policy", "compact", "segment_bytes", "65536", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model m;
  model_init(&m, 20000);
  unsigned seed = 67, child_seed = seed;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) { /* acknowledged records, then killed with their key rows unwritten */
    close(fds[0]);
    takhin_store *cs;
    if (takhin_open(db, &o, &cs)) _exit(2);
    produce(cs, "t", &m, 6000, 50, 100, 0, 30, &child_seed);
    char ok = 1;
    if (write(fds[1], &ok, 1) != 1) _exit(3);
    pause();
    _exit(4);
  }
  close(fds[1]);
  char ok = 0;
  cr_assert_eq(read(fds[0], &ok, 1), 1, "the child acknowledged its records");
  close(fds[0]);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
  produce_model_only(&m, 6000, 50, &seed); /* the child's records, in the model */
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  pthread_mutex_lock(&p->append_lock);
  cr_assert(p->keys_tracked && p->key_upto == m.n,
            "the open caught the index up: key_upto %lld of %lld", (long long)p->key_upto,
            (long long)m.n);
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
  lookups_match(s, &m, 50);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  model_free(&m);
  takhin_close(s);
}

Test(compaction, killed_with_keys_in_memory_os) {
  killed_with_keys_in_memory(TAKHIN_DURABILITY_OS, "compact_kill_os");
}

Test(compaction, killed_with_keys_in_memory_fsync) {
  killed_with_keys_in_memory(TAKHIN_DURABILITY_FSYNC, "compact_kill_fsync");
}

/* A key index that fell behind its log (key rows lost, or a catch-up the
** open could not finish on a full disk: key_upto stopped, keys not tracked)
** is brought up to date by the next compaction before it decides anything,
** not only by the next open: every sealed segment then compacts right. */
Test(compaction, never_past_what_the_key_index_covers) {
  const char *db = tu_store_path("compact_covered");
  model m;
  unsigned seed = 53;
  takhin_store *s = keyed_store(db, &m, 6000, &seed);
  cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK);
  takhin_segment_info *segs;
  size_t nsegs;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &nsegs), TAKHIN_OK);
  cr_assert_gt(nsegs, 6);
  int64_t covered = segs[3].next_offset; /* the index covers the first 4 segments only */
  int64_t active = segs[nsegs - 1].base_offset;
  takhin_free(segs);
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  pthread_mutex_lock(&p->append_lock);
  p->key_upto = covered; /* as after a lost key row: not tracked, not moved */
  p->keys_tracked = 0;
  pthread_mutex_unlock(&p->append_lock);
  takhin_compaction_result r = {0};
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.records_removed, 0, "the covered segments were compacted");
  pthread_mutex_lock(&p->append_lock);
  cr_assert(p->keys_tracked && p->key_upto >= active, "the index was brought up to date first");
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
  check_log(s, "t", &m, active, 100, 0); /* every sealed segment keeps exactly the latest records */
  model_free(&m);
  takhin_close(s);
  /* reopened, the index is rebuilt and the rest compacts too */
  s = open_db(db);
  model_init(&m, 20000);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  model_free(&m);
  takhin_close(s);
}

/* A read_only handle opened between a compaction's catalog commit and its
** renames (the child dies at step 3: every row describes a .cleaned file
** still waiting beside the old .log; step 4: the first file renamed, the
** others not) must not load the new rows' index over the old files: no
** damage reported, every record of the old log readable. A writer then
** finishes the renames and the read-only handle follows it to the new log. */
Test(compaction, read_only_open_between_commit_and_rename) {
  for (int step = 3; step <= 4; step++) {
    char name[64], db[4096];
    snprintf(name, sizeof name, "compact_ro_swap_%d", step);
    snprintf(db, sizeof db, "%s", tu_store_path(name));
    model m;
    model_init(&m, 10000);
    unsigned seed = 11;
    takhin_store *s = open_db(db);
    cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
    produce(s, "t", &m, 4000, 300, 80, 5, 5, &seed);
    int64_t end = active_base(s, "t");
    takhin_close(s);
    pid_t pid = fork();
    if (pid == 0) {
      takhin_store *cs;
      if (takhin_open(db, NULL, &cs)) _exit(2);
      tk_compact_crash_step = step;
      takhin_compact(cs, "t", 0, 1, NULL);
      _exit(3);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "step %d: child status %d", step, st);
    takhin_options o;
    takhin_options_init(&o);
    o.read_only = 1;
    takhin_store *ro;
    cr_assert_eq(takhin_open(db, &o, &ro), TAKHIN_OK, "%s", takhin_errmsg());
    takhin_recovery_info ri;
    cr_assert_eq(takhin_recovery(ro, &ri), TAKHIN_OK);
    cr_assert_eq(ri.batches_damaged, 0, "step %d: %s", step, ri.first_damage);
    /* the old files (all records) or, step 4, the first one new */
    takhin_cursor *c;
    takhin_message msg;
    cr_assert_eq(takhin_cursor_open(ro, "t", 0, &c), TAKHIN_OK);
    int64_t prev = -1, seen = 0;
    int rc;
    char buf[100];
    while ((rc = takhin_cursor_next(c, &msg)) == TAKHIN_OK) {
      cr_assert_gt(msg.offset, prev, "step %d: no offset twice", step);
      prev = msg.offset;
      if (msg.value) {
        value_of(buf, 80, msg.offset);
        cr_assert(msg.value_len == 80 && !memcmp(msg.value, buf, 80), "step %d: value of %lld",
                  step, (long long)msg.offset);
      }
      seen++;
    }
    cr_assert_eq(rc, TAKHIN_END, "step %d: %s", step, takhin_errmsg());
    cr_assert_eq(prev, m.n - 1, "step %d", step);
    if (step == 3) cr_assert_eq(seen, m.n, "step %d: the old log is whole", step);
    takhin_cursor_close(c);
    s = open_db(db); /* finishes the renames */
    check_log(s, "t", &m, end, 80, 0);
    check_log(ro, "t", &m, end, 80, 0);
    takhin_close(s);
    takhin_close(ro);
    model_free(&m);
  }
}

/* ---- the key-writer thread under load ------------------------------------
** Producers on a compacted partition hand their maps of latest keys to the
** store's key-writer thread (keyindex.c) while compaction runs and keys are
** looked up. The model: each key's newest acknowledged offset. A lookup
** must never resolve a key to an offset older than the one acknowledged
** before it began (a map written late, or key_upto moved past unwritten
** rows, would show as that, or as compaction dropping a key's latest
** record); at the end, quiet, every key resolves to exactly its newest
** offset, before and after a reopen and a full compaction. */
enum { KW_PRODUCERS = 3, KW_KEYS = 20000, KW_BATCHES = 200, KW_BATCH = 100 };
/* Lookups and compaction (both write every waiting key row first) start
** once this many batches are in: until then maps fill up (some 15,000 of
** the keys) and must go to the writer thread. */
#define KW_QUIET_BATCHES (KW_PRODUCERS * KW_BATCHES / 2)

typedef struct kw_shared {
  takhin_store *s;
  _Atomic int64_t latest[KW_KEYS]; /* -1: never acknowledged */
  atomic_int producing;            /* producers still running */
  atomic_int failed;
  char why[512];
  atomic_long lookups, compactions;
  atomic_int batches;  /* acknowledged */
  atomic_int last_key; /* of the newest acknowledged batch */
} kw_shared;

static kw_shared kw;

static void kw_fail(const char *fmt, long a, long b, int rc) {
  if (atomic_exchange(&kw.failed, 1)) return;
  snprintf(kw.why, sizeof kw.why, fmt, a, b, rc);
  size_t n = strlen(kw.why);
  snprintf(kw.why + n, sizeof kw.why - n, " (%s)", takhin_errmsg());
}

static void *kw_produce(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 3u;
  takhin_record recs[KW_BATCH];
  char keys[KW_BATCH][16], vals[KW_BATCH][32];
  int ks[KW_BATCH];
  for (int b = 0; b < KW_BATCHES && !atomic_load(&kw.failed); b++) {
    for (int j = 0; j < KW_BATCH; j++) {
      ks[j] = (int)(rand_r(&seed) % KW_KEYS);
      int kl = snprintf(keys[j], sizeof keys[j], "key-%d", ks[j]);
      int vl = snprintf(vals[j], sizeof vals[j], "p%d-b%d-r%d", (int)(uintptr_t)arg, b, j);
      recs[j] = (takhin_record){.key = keys[j],
                                .key_len = (size_t)kl,
                                .value = vals[j],
                                .value_len = (size_t)vl,
                                .timestamp = 1000 + b};
    }
    int64_t first;
    int rc = takhin_produce(kw.s, "t", 0, recs, KW_BATCH, &first);
    if (rc) {
      kw_fail("producer %ld batch %ld: produce failed %d", (long)(uintptr_t)arg, b, rc);
      break;
    }
    for (int j = 0; j < KW_BATCH; j++) { /* acknowledged: the newest of its key, unless beaten */
      int64_t o = first + j, cur = atomic_load(&kw.latest[ks[j]]);
      while (cur < o && !atomic_compare_exchange_weak(&kw.latest[ks[j]], &cur, o)) {}
    }
    atomic_store(&kw.last_key, ks[KW_BATCH - 1]);
    atomic_fetch_add(&kw.batches, 1);
  }
  atomic_fetch_sub(&kw.producing, 1);
  return NULL;
}

/* Look key k up: its record at an offset >= at_least, with key k. A record
** superseded and compacted away between the lookup and the read is a race
** the caller retries (ENOTFOUND), never an older answer. */
static int kw_lookup(takhin_cursor *c, int k, int64_t at_least, int64_t *got) {
  char key[16];
  int kl = snprintf(key, sizeof key, "key-%d", k);
  takhin_message m;
  int rc = takhin_cursor_get_key(c, key, (size_t)kl, &m);
  if (rc) return rc;
  *got = m.offset;
  if (m.offset < at_least) {
    kw_fail("key %ld resolved to offset %ld, older than its acknowledged newest", k, (long)m.offset,
            0);
    return TAKHIN_OK;
  }
  if (m.key_len != (size_t)kl || memcmp(m.key, key, (size_t)kl))
    kw_fail("key %ld: the record at offset %ld has another key", k, (long)m.offset, 0);
  return TAKHIN_OK;
}

/* Wait for the quiet first half (see KW_QUIET_BATCHES). */
static void kw_wait_quiet_half(void) {
  while (atomic_load(&kw.batches) < KW_QUIET_BATCHES && atomic_load(&kw.producing) > 0 &&
         !atomic_load(&kw.failed))
    usleep(1000);
}

static void *kw_lookups(void *arg) {
  (void)arg;
  unsigned seed = 97;
  kw_wait_quiet_half();
  takhin_cursor *c;
  if (takhin_cursor_open(kw.s, "t", 0, &c)) {
    kw_fail("lookup cursor: %ld %ld %d", 0, 0, -1);
    return NULL;
  }
  while (atomic_load(&kw.producing) > 0 && !atomic_load(&kw.failed)) {
    /* half of them a key just produced: its row is the likeliest to wait */
    int k = rand_r(&seed) % 2 ? atomic_load(&kw.last_key) : (int)(rand_r(&seed) % KW_KEYS);
    int64_t want = atomic_load(&kw.latest[k]), got;
    if (want < 0) continue;
    int rc = TAKHIN_ENOTFOUND;
    for (int tries = 0; tries < 100 && rc == TAKHIN_ENOTFOUND; tries++)
      rc = kw_lookup(c, k, want, &got);
    if (rc) kw_fail("key %ld (newest %ld): lookup failed %d", k, (long)want, rc);
    atomic_fetch_add(&kw.lookups, 1);
  }
  takhin_cursor_close(c);
  return NULL;
}

static void *kw_compactor(void *arg) {
  (void)arg;
  kw_wait_quiet_half();
  while (atomic_load(&kw.producing) > 0 && !atomic_load(&kw.failed)) {
    int rc = takhin_compact(kw.s, "t", 0, 1, NULL);
    if (rc) kw_fail("compaction %ld failed %ld: %d", atomic_load(&kw.compactions), 0, rc);
    atomic_fetch_add(&kw.compactions, 1);
  }
  return NULL;
}

/* A thread of this process is named name (pthread_setname_np). */
static int thread_named(const char *name) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    char path[300], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(comm, sizeof comm, f)) found = strncmp(comm, name, strlen(name)) == 0;
    fclose(f);
  }
  closedir(d);
  return found;
}

/* Quiet: every key resolves to exactly its newest acknowledged offset. */
static void kw_all_keys_exact(takhin_store *s, const char *when) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  for (int k = 0; k < KW_KEYS; k++) {
    int64_t want = atomic_load(&kw.latest[k]), got = -1;
    if (want < 0) continue;
    cr_assert_eq(kw_lookup(c, k, want, &got), TAKHIN_OK, "%s: key-%d: %s", when, k,
                 takhin_errmsg());
    cr_assert_eq(got, want, "%s: key-%d resolves to %lld, its newest is %lld", when, k,
                 (long long)got, (long long)want);
  }
  takhin_cursor_close(c);
  cr_assert(!atomic_load(&kw.failed), "%s: %s", when, kw.why);
}

static void key_writer_under_load(int durability, const char *name, int fail_every) {
  const char *db = tu_store_path(name);
  takhin_options o;
  takhin_options_init(&o);
  o.durability = durability;
  memset(&kw, 0, sizeof kw);
  tk_key_writer_delay_ms = 20; /* maps stay queued while the others run */
  tk_key_map_keys = 500;       /* and are handed over often */
  tk_key_writer_fail_every = fail_every;
  for (int k = 0; k < KW_KEYS; k++) atomic_store(&kw.latest[k], -1);
  cr_assert_eq(takhin_open(db, &o, &kw.s), TAKHIN_OK, "%s", takhin_errmsg());
  static const char *const cfg[] = {"cleanup_policy", "compact", "segment_bytes", "65536", NULL};
  cr_assert_eq(takhin_topic_create(kw.s, "t", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  atomic_store(&kw.producing, KW_PRODUCERS);
  pthread_t th[KW_PRODUCERS + 2];
  for (int i = 0; i < KW_PRODUCERS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, kw_produce, (void *)(uintptr_t)i), 0);
  cr_assert_eq(pthread_create(&th[KW_PRODUCERS], NULL, kw_lookups, NULL), 0);
  cr_assert_eq(pthread_create(&th[KW_PRODUCERS + 1], NULL, kw_compactor, NULL), 0);
  for (int i = 0; i < KW_PRODUCERS + 2; i++) pthread_join(th[i], NULL);
  tk_key_writer_fail_every = 0; /* the checks below: a lookup's flush waits for a queued map */
  cr_assert(!atomic_load(&kw.failed), "%s", kw.why);
  cr_assert_gt(atomic_load(&kw.lookups), 0);
  cr_assert_gt(atomic_load(&kw.compactions), 0);
  /* the maps went to the writer thread (more keys than one map holds) */
  cr_assert(thread_named("takhin-keys"), "no key-writer thread ran");
  kw_all_keys_exact(kw.s, "after the run");
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(kw.s, "t", 0, &t, &p), TAKHIN_OK);
  int64_t hwm = (int64_t)KW_PRODUCERS * KW_BATCHES * KW_BATCH;
  cr_assert_eq(tk_key_covered(p), hwm, "the key index covers the log after the lookups' flush");
  tk_topic_unref(t);
  cr_assert_eq(takhin_close(kw.s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_open(db, &o, &kw.s), TAKHIN_OK, "%s", takhin_errmsg());
  kw_all_keys_exact(kw.s, "after a reopen");
  cr_assert_eq(takhin_compact(kw.s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  kw_all_keys_exact(kw.s, "after a full compaction");
  cr_assert_eq(takhin_close(kw.s), TAKHIN_OK, "%s", takhin_errmsg());
  tk_key_writer_delay_ms = 0;
  tk_key_map_keys = 8192;
  tk_key_writer_fail_every = 0;
}

Test(compaction, key_writer_under_load_os, .timeout = 300) {
  key_writer_under_load(TAKHIN_DURABILITY_OS, "compact_kw_os", 0);
}

Test(compaction, key_writer_under_load_buffered, .timeout = 300) {
  key_writer_under_load(TAKHIN_DURABILITY_BUFFERED, "compact_kw_buffered", 0);
}

/* Every other write of the thread fails (rolled back): its rows join the
** partition's map again and go with a later write; nothing is lost. */
Test(compaction, key_writer_failures_are_written_later, .timeout = 300) {
  key_writer_under_load(TAKHIN_DURABILITY_OS, "compact_kw_fail", 2);
}

/* A writer killed (SIGKILL) while a map is queued and unwritten, and later
** maps full beside it (their rows written, key_upto left where it was): the
** reopen's catch-up re-reads what key_upto does not cover, and every key
** resolves to its newest record. */
Test(compaction, killed_with_a_map_queued, .timeout = 120) {
  const char *db = tu_store_path("compact_kill_queued");
  takhin_store *s = open_db(db);
  static const char *const cfg[] = {"cleanup_policy", "compact", "segment_bytes", "65536", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  model m;
  model_init(&m, 20000);
  unsigned seed = 71, child_seed = seed;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    tk_key_map_keys = 50;            /* a map is due every few batches */
    tk_key_writer_delay_ms = 600000; /* and the first stays queued */
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    produce(cs, "t", &m, 8000, 4000, 100, 0, 40, &child_seed);
    tk_topic *ct;
    tk_partition *cp;
    if (tk_store_partition(cs, "t", 0, &ct, &cp)) _exit(3);
    pthread_mutex_lock(&cp->append_lock);
    char state = (char)(tk_key_writing(cp) ? 'q' : 'i'); /* queued, as meant */
    pthread_mutex_unlock(&cp->append_lock);
    if (write(fds[1], &state, 1) != 1) _exit(4);
    pause();
    _exit(5);
  }
  close(fds[1]);
  char state = 0;
  cr_assert_eq(read(fds[0], &state, 1), 1, "the child acknowledged its records");
  close(fds[0]);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
  cr_assert_eq(state, 'q', "a map was queued when the child died");
  produce_model_only(&m, 8000, 4000, &seed);
  s = open_db(db);
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  pthread_mutex_lock(&p->append_lock);
  cr_assert(p->keys_tracked && p->key_upto == m.n, "the open caught the index up: %lld of %lld",
            (long long)p->key_upto, (long long)m.n);
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
  lookups_match(s, &m, 4000);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, "t", &m, active_base(s, "t"), 100, 0);
  lookups_match(s, &m, 4000);
  model_free(&m);
  takhin_close(s);
}

/* A partition of a deleted topic, flushed by someone who found it before
** the delete (a compaction, a key lookup), writes no catalog rows: the next
** topic created may get the deleted one's topic_id (INTEGER PRIMARY KEY),
** and a key row left over would outrank its keys' records there (the upsert
** keeps the larger offset), so a lookup, and compaction, would take a
** record the new topic never had for the key's newest. */
Test(compaction, flush_after_delete_writes_no_rows) {
  const char *db = tu_store_path("compact_flush_deleted");
  takhin_store *s = open_db(db);
  static const char *const cfg[] = {"cleanup_policy", "compact", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  takhin_record r[20];
  for (int i = 0; i < 20; i++)
    r[i] = (takhin_record){
        .key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = TAKHIN_TIMESTAMP_NOW};
  cr_assert_eq(takhin_produce(s, "t", 0, r, 20, NULL), TAKHIN_OK);
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  int64_t old_id = t->topic_id;
  pthread_mutex_lock(&p->append_lock);
  size_t unwritten = tk_key_unwritten(p);
  pthread_mutex_unlock(&p->append_lock);
  cr_assert(unwritten > 0, "the key of offset 19 waits in the partition, unwritten");
  cr_assert_eq(takhin_topic_delete(s, "t"), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(tk_part_flush(p, 1, 0), TAKHIN_ENOTFOUND, "a deleted topic's flush: %s",
               takhin_errmsg());
  tk_topic_unref(t);
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK);
  cr_assert_eq(t->topic_id, old_id, "the id is given again (else this test shows nothing)");
  tk_topic_unref(t);
  int64_t first = -1;
  cr_assert_eq(takhin_produce(s, "t", 0, r, 1, &first), TAKHIN_OK);
  cr_assert_eq(first, 0);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message m;
  cr_assert_eq(takhin_cursor_get_key(c, "k", 1, &m), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(m.offset, 0, "the new topic's own record, not the deleted one's offset 19");
  takhin_cursor_close(c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* ---- the index rows a run owes ------------------------------------------- */

/* The index entries of the store at db (takhin_cat_index_run's, as the
** store loads them) of segments below end, as text, one
** "base:offset@position/max_timestamp" each, space-separated (a live
** store's too: the connection is the test's own). */
static char *index_rows_below(const char *db, int64_t end) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  tu_index_row *r;
  size_t n;
  cr_assert_eq(tu_cat_index_rows(h, -1, -1, -1, &r, &n), 0, "%s", tu_error());
  sqlite3_close(h);
  size_t cap = 1, len = 0;
  char *out = malloc(cap);
  cr_assert_not_null(out);
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].segment_base >= end) continue;
    char one[128];
    int k = snprintf(one, sizeof one, "%s%lld:%lld@%lld/%lld", len ? " " : "",
                     (long long)r[i].segment_base, (long long)r[i].offset, (long long)r[i].position,
                     (long long)r[i].max_ts);
    if (len + (size_t)k + 1 > cap) {
      while (len + (size_t)k + 1 > cap) cap *= 2;
      out = realloc(out, cap);
      cr_assert_not_null(out);
    }
    memcpy(out + len, one, (size_t)k + 1);
    len += (size_t)k;
  }
  free(r);
  return out;
}

/* Every row. */
static char *index_rows_text(const char *db) { return index_rows_below(db, INT64_MAX); }

/* Segment rows of the closed store at db holding bytes but no index entry
** (none the store would load from takhin_cat_index_run). */
static int64_t segments_without_index_rows(const char *db) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT topic_id, partition, base_offset FROM takhin_cat_segment "
                                  "WHERE size_bytes > 0",
                                  -1, &st, NULL),
               SQLITE_OK);
  int64_t n = 0;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t k = tu_cat_index_count(h, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
                                   sqlite3_column_int64(st, 2));
    cr_assert_geq(k, 0, "%s", tu_error());
    n += k == 0;
  }
  cr_assert_eq(step, SQLITE_DONE, "%s", sqlite3_errmsg(h));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* The closed store at db has the index rows a catalog rebuilt from its
** files has (the rebuild: the catalog removed, the store opened and closed),
** and one or more for every segment holding a batch. */
static void assert_index_rows_rebuilt_alike(const char *db, const char *ctx) {
  char *before = index_rows_text(db);
  cr_assert_gt(strlen(before), 0, "%s: no index rows", ctx);
  tu_remove_catalog(db);
  takhin_store *s = open_db(db);
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &segs, &n), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  char *rebuilt = index_rows_text(db);
  cr_assert_str_eq(before, rebuilt, "%s: the catalog's index rows are the files'", ctx);
  size_t len = strlen(before);
  char *spaced = malloc(len + 2); /* " row row ...": each row after a space */
  cr_assert_not_null(spaced);
  spaced[0] = ' ';
  memcpy(spaced + 1, before, len + 1);
  for (size_t i = 0; i < n; i++) {
    if (segs[i].size_bytes == 0) continue; /* compacted empty, or the new active one */
    char want[64];
    snprintf(want, sizeof want, " %lld:", (long long)segs[i].base_offset);
    cr_assert_not_null(strstr(spaced, want), "%s: segment %lld has index rows", ctx,
                       (long long)segs[i].base_offset);
  }
  free(spaced);
  takhin_free(segs);
  free(before);
  free(rebuilt);
}

/* A run deletes a rewritten segment's index rows ahead of its swap (on the
** plan thread) and leaves the new segments' rows owed, written after it
** like a roll's. Whatever stops it -- a finished run closed normally, a
** kill after its last step (the rows never written) or before its commit
** (the old rows already deleted), a failed run -- the rows come back as the
** files say, and a reopen reads the log with no segment reindexed. */
Test(compaction, index_rows_a_run_owes_come_back) {
  for (int how = 0; how < 4; how++) {
    char name[64];
    snprintf(name, sizeof name, "compact_owed_rows_%d", how);
    const char *db = tu_store_path(name);
    model m;
    unsigned seed = 41 + (unsigned)how;
    takhin_store *s = keyed_store(db, &m, 8000, &seed);
    int64_t end = active_base(s, "t");
    if (how == 0) { /* finished, closed */
      cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
    } else if (how == 3) { /* failed in the plan of segment 5: 1-4 were planned */
      tk_compact_plan_fail_at = 5;
      cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_ECATALOG);
      tk_compact_plan_fail_at = 0;
      end = 0;
    }
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
    cr_assert_eq(segments_without_index_rows(db), 0, "case %d: a close writes what is owed", how);
    if (how == 1) compact_crashing_at(db, 6); /* after the run's last step */
    if (how == 2) {                           /* new files synced, nothing committed */
      compact_crashing_at(db, 2);
      end = 0;
    }
    s = open_db(db);
    takhin_recovery_info ri;
    cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
    cr_assert_eq(ri.segments_reindexed, 0, "case %d: %s", how, ri.message);
    check_log(s, "t", &m, end, 100, 0);
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
    cr_assert_eq(segments_without_index_rows(db), 0, "case %d", how);
    assert_index_rows_rebuilt_alike(db, name);
    s = open_db(db);
    check_log(s, "t", &m, end, 100, 0);
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
    model_free(&m);
  }
}

/* ---- owed rows on the checkpoint thread -------------------------------------- */

/* Wait (as long as a loaded machine may need) until partition 0 of topic
** owes no sealed segment's index rows; whether it got there. */
static int owed_rows_written(takhin_store *s, const char *topic) {
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, topic, 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  int owed = 1;
  for (int64_t t0 = tu_now_ms(); owed && tu_now_ms() - t0 < 30000;) {
    pthread_mutex_lock(&p->append_lock);
    owed = p->rows_owed;
    pthread_mutex_unlock(&p->append_lock);
    if (owed) usleep(5000);
  }
  tk_topic_unref(t);
  return !owed;
}

/* The sealed segments' rows a live store has (below end) are those a
** catalog rebuilt from the files has; the store at db is closed after. */
static void assert_live_rows_rebuilt_alike(takhin_store *s, const char *db, int64_t end,
                                           const char *ctx) {
  char *live = index_rows_below(db, end);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  assert_index_rows_rebuilt_alike(db, ctx); /* removes the catalog, rebuilds it */
  char *rebuilt = index_rows_below(db, end);
  cr_assert_str_eq(live, rebuilt, "%s: rows the thread wrote are the files'", ctx);
  free(live);
  free(rebuilt);
}

/* A compaction's new segments, and a rolled segment, owe their index rows:
** the checkpoint thread writes them while the producer goes on, and the
** producer's appends write none of them (tk_owed_rows_by_append); the rows
** are those the files give. */
Test(compaction, owed_rows_go_to_the_thread_not_the_producer) {
  for (int how = 0; how < 2; how++) {
    const char *db = tu_store_path(how ? "owed_thread_roll" : "owed_thread_compaction");
    model m;
    unsigned seed = 7 + (unsigned)how;
    takhin_store *s = keyed_store(db, &m, 8000, &seed);
    cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK);
    int64_t before = active_base(s, "t");
    long paid = atomic_load(&tk_owed_rows_by_append);
    if (how == 0) {
      cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
      check_log(s, "t", &m, before, 100, 0);
    }
    produce(s, "t", &m, how ? 4000 : 400, 100, 100, 0, 16, &seed); /* roll: several */
    cr_assert_gt(active_base(s, "t"), how ? before : -1, "case %d: no roll", how);
    cr_assert(owed_rows_written(s, "t"), "case %d: rows still owed", how);
    cr_assert_eq(atomic_load(&tk_owed_rows_by_append), paid, "case %d: the producer wrote them",
                 how);
    assert_live_rows_rebuilt_alike(s, db, active_base(s, "t"), how ? "roll" : "compaction");
    model_free(&m);
  }
}

/* The sealed segments of topic t: index rows written to the catalog, and held. */
static void sealed_rows(takhin_store *s, size_t *persisted, size_t *n) {
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  *persisted = *n = 0;
  pthread_mutex_lock(&p->append_lock);
  for (size_t i = 0; i + 1 < p->nsegs; i++) {
    *persisted += p->segs[i]->idx_persisted;
    *n += p->segs[i]->idx_n;
  }
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
}

/* No checkpoint thread (it could not start): after a compaction the
** producer writes the owed rows, TK_PERSIST_APPEND_CHUNK at most per
** append (twice that in a call that rolls: the roll's persist and the
** append's), a fraction of a millisecond each, and they are the files'. */
Test(compaction, owed_rows_without_a_thread_go_a_small_chunk_per_append) {
  const char *db = tu_store_path("owed_no_thread");
  tk_ckpt_refuse = 1;
  model m;
  unsigned seed = 5;
  takhin_store *s = open_db(db);
  const char *cfg[] = {"cleanup_policy", "compact", "segment_bytes", "1048576", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK);
  model_init(&m, 20000);
  /* 1 KiB records, a key in ten superseded: the new segments hold
  ** thousands of index entries */
  produce(s, "t", &m, 12000, NKEYS_MAX, 1000, 0, 16, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  size_t done, n;
  sealed_rows(s, &done, &n);
  cr_assert_gt(n - done, 4 * TK_PERSIST_APPEND_CHUNK, "%zu rows owed", n - done);
  long paid = atomic_load(&tk_owed_rows_by_append);
  for (int k = 0; done < n && k < 1000; k++) {
    size_t before = done, before_n = n;
    produce(s, "t", &m, 16, NKEYS_MAX, 1000, 0, 16, &seed);
    sealed_rows(s, &done, &n);
    if (n == before_n) cr_assert_gt(done, before, "append %d wrote no owed row", k);
    cr_assert_leq(done - before, 2 * TK_PERSIST_APPEND_CHUNK, "append %d wrote %zu", k,
                  done - before);
  }
  cr_assert_eq(done, n);
  cr_assert_gt(atomic_load(&tk_owed_rows_by_append), paid);
  assert_live_rows_rebuilt_alike(s, db, active_base(s, "t"), "no thread");
  model_free(&m);
  tk_ckpt_refuse = 0;
}

/* A compaction's new segments owe their index rows, and their segment rows
** are in the catalog (the run's step 3): the checkpoint thread's call takes
** them, a chunk at a time, with no append and no idle partition needed.
** The thread is kept from starting so that the test makes its calls. */
Test(compaction, owed_rows_of_new_segments_are_the_threads_to_write) {
  const char *db = tu_store_path("owed_new_segments");
  tk_ckpt_refuse = 1;
  model m;
  unsigned seed = 11;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  size_t done, n;
  sealed_rows(s, &done, &n);
  cr_assert_lt(done, n, "the run left no rows owed");
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  int calls = 0, r;
  while ((r = tk_part_write_owed(p)) == 1) calls++;
  tk_topic_unref(t);
  cr_assert_eq(r, 0, "the catalog stayed busy");
  sealed_rows(s, &done, &n);
  cr_assert_eq(done, n, "%zu rows left owed after %d chunks", n - done, calls);
  assert_live_rows_rebuilt_alike(s, db, active_base(s, "t"), "new segments");
  model_free(&m);
  tk_ckpt_refuse = 0;
}

/* The catalog refuses index rows (as a full disk would): the checkpoint
** thread's chunk of owed rows fails, and it tries again when there is
** news (an append's persist, a roll, its idle look), not at once and
** again in a loop that burns a core and the catalog while the failure
** lasts. The bound is loose: the idle look comes every half second at
** most, whatever the load; a loop makes thousands of tries. */
Test(compaction, owed_rows_a_failing_catalog_refuses_are_not_retried_in_a_loop) {
  const char *db = tu_store_path("owed_failing_catalog");
  model m;
  unsigned seed = 13;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s", takhin_errmsg());
  sqlite3 *h;
  cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
  sqlite3_busy_timeout(h, 30000);
  cr_assert_eq(sqlite3_exec(h,
                            "CREATE TRIGGER refuse_index BEFORE INSERT ON takhin_cat_index_run "
                            "BEGIN SELECT RAISE(ABORT, 'refused'); END",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  long failed0 = atomic_load(&tk_owed_chunks_failed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t t0 = tu_now_ms();
  while (atomic_load(&tk_owed_chunks_failed) == failed0 && tu_now_ms() - t0 < 30000) usleep(1000);
  cr_assert_gt(atomic_load(&tk_owed_chunks_failed), failed0, "the thread tried no chunk");
  usleep(300000); /* room for a loop to show */
  long tries = atomic_load(&tk_owed_chunks_failed) - failed0;
  int64_t ms = tu_now_ms() - t0;
  cr_assert_leq(tries, 4 + 2 * ms / (TK_PERSIST_MS / 2), "%ld tries in %lld ms", tries,
                (long long)ms);
  cr_assert_eq(sqlite3_exec(h, "DROP TRIGGER refuse_index", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  cr_assert(owed_rows_written(s, "t"), "rows still owed once the catalog takes them");
  assert_live_rows_rebuilt_alike(s, db, active_base(s, "t"), "failing catalog");
  model_free(&m);
}

/* What refuse_segment_rows_at_step2 and owed_settle_race_hook work on. */
static struct {
  takhin_store *s;
  const char *db;
  model *m;
  unsigned *seed;
  int done, compact_rc;
} settle_race;

/* A run's step 2 hook: the catalog refuses segment rows from now on, so
** that step 3 fails after the plan dropped the candidates' index rows. */
static void refuse_segment_rows_at_step2(const char *topic, int32_t part, int step) {
  (void)topic;
  (void)part;
  if (step != 2) return;
  sqlite3 *h;
  cr_assert_eq(sqlite3_open(settle_race.db, &h), SQLITE_OK);
  sqlite3_busy_timeout(h, 30000);
  cr_assert_eq(sqlite3_exec(h,
                            "CREATE TRIGGER refuse_seg_i BEFORE INSERT ON takhin_cat_segment "
                            "BEGIN SELECT RAISE(ABORT, 'refused'); END; "
                            "CREATE TRIGGER refuse_seg_u BEFORE UPDATE ON takhin_cat_segment "
                            "BEGIN SELECT RAISE(ABORT, 'refused'); END",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_close(h);
}

/* Between the chunk's commit and its settling: the records of the
** chunk's segment are superseded, and a run compacting it drops its index
** rows (the flush at its start wrote them all) and fails at step 3,
** owing them back from the start -- where the chunk started too. */
static void owed_settle_race_hook(tk_partition *p) {
  (void)p;
  if (settle_race.done++) return;
  produce(settle_race.s, "t", settle_race.m, 2000, 100, 100, 0, 16, settle_race.seed);
  tk_compact_step_hook = refuse_segment_rows_at_step2;
  settle_race.compact_rc = takhin_compact(settle_race.s, "t", 0, 1, NULL);
  tk_compact_step_hook = NULL;
  sqlite3 *h;
  cr_assert_eq(sqlite3_open(settle_race.db, &h), SQLITE_OK);
  sqlite3_busy_timeout(h, 30000);
  cr_assert_eq(
      sqlite3_exec(h, "DROP TRIGGER refuse_seg_i; DROP TRIGGER refuse_seg_u", NULL, NULL, NULL),
      SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_close(h);
}

/* A chunk of owed rows is settled only if its segment still owes the rows
** it wrote: a failed run that dropped them in between owes them again
** from 0, which must not pass for the chunk's own start. Called as the
** thread calls it (the thread is kept from starting). */
Test(compaction, owed_rows_a_failed_run_dropped_under_a_chunk_are_written_again) {
  const char *db = tu_store_path("owed_settle_race");
  tk_ckpt_refuse = 1;
  model m;
  unsigned seed = 17;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  size_t done, n;
  sealed_rows(s, &done, &n);
  cr_assert_lt(done, n, "the run left no rows owed");
  settle_race.s = s;
  settle_race.db = db;
  settle_race.m = &m;
  settle_race.seed = &seed;
  settle_race.done = 0;
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "t", 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  tk_write_owed_hook = owed_settle_race_hook;
  int r = tk_part_write_owed(p);
  tk_write_owed_hook = NULL;
  cr_assert_eq(r, 1, "no chunk written");
  cr_assert_eq(settle_race.done, 1);
  cr_assert_eq(settle_race.compact_rc, TAKHIN_ECATALOG, "the run did not fail at step 3: %s",
               takhin_errmsg());
  while (tk_part_write_owed(p) == 1) {}
  tk_topic_unref(t);
  sealed_rows(s, &done, &n);
  cr_assert_eq(done, n);
  assert_live_rows_rebuilt_alike(s, db, active_base(s, "t"), "a failed run under a chunk");
  model_free(&m);
  tk_ckpt_refuse = 0;
}

typedef struct owed_race {
  takhin_store *s;
  const char *topic;
  long first, n;
} owed_race;

static void *owed_race_produce(void *arg) {
  owed_race *r = arg;
  tu_produce_n(r->s, r->topic, 0, r->first, r->n, 100, 16);
  return NULL;
}

/* The thread writes owed rows while compaction runs, DeleteRecords
** removes segments, another topic is deleted and the store is closed with
** rows still owed: whatever ran first, the catalog's rows are the files'
** (none left of the deleted topic: the rebuild has none either). */
Test(compaction, owed_rows_race_compaction_retention_delete_close) {
  const char *db = tu_store_path("owed_race");
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, compact_cfg), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "d", 1, compact_cfg), TAKHIN_OK);
  tu_produce_n(s, "t", 0, 0, 6000, 100, 16);
  tu_produce_n(s, "d", 0, 0, 6000, 100, 16);
  owed_race rt = {s, "t", 6000, 6000}, rd = {s, "d", 6000, 6000};
  for (int round = 0; round < 3; round++) {
    pthread_t pt, pd;
    cr_assert_eq(pthread_create(&pt, NULL, owed_race_produce, &rt), 0);
    cr_assert_eq(pthread_create(&pd, NULL, owed_race_produce, &rd), 0);
    for (int k = 0; k < 3; k++) {
      cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
      int rc = takhin_compact(s, "d", 0, 1, NULL);
      cr_assert(rc == TAKHIN_OK || rc == TAKHIN_ENOTFOUND, "%s", takhin_errmsg());
    }
    /* below what the producer thread started from: there whatever its pace */
    cr_assert_eq(takhin_delete_records(s, "t", 0, rt.first - 1000), TAKHIN_OK, "%s",
                 takhin_errmsg());
    pthread_join(pt, NULL);
    pthread_join(pd, NULL);
    rt.first += rt.n;
    rd.first += rd.n;
    if (round == 1) { /* compacted: its new segments' rows are owed now */
      cr_assert_eq(takhin_compact(s, "d", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
      cr_assert_eq(takhin_topic_delete(s, "d"), TAKHIN_OK, "%s", takhin_errmsg());
      rd.n = 0;
    }
  }
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  /* closed now, with the new segments' rows owed or being written */
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  assert_index_rows_rebuilt_alike(db, "race");
}

/* A writer killed -9 after the thread wrote the owed rows: the catalog
** holds the files' rows, and the open reindexes no segment. */
Test(compaction, owed_rows_survive_kill9) {
  const char *db = tu_store_path("owed_kill9");
  int64_t end = -1;
  int pipefd[2];
  cr_assert_eq(pipe(pipefd), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(pipefd[0]);
    model m;
    unsigned seed = 99;
    takhin_store *s = keyed_store(db, &m, 8000, &seed);
    cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
    produce(s, "t", &m, 2000, 100, 100, 0, 16, &seed);
    if (!owed_rows_written(s, "t")) _exit(3);
    end = active_base(s, "t");
    if (write(pipefd[1], &end, sizeof end) != sizeof end) _exit(4);
    raise(SIGKILL);
  }
  close(pipefd[1]);
  cr_assert_eq(read(pipefd[0], &end, sizeof end), (ssize_t)sizeof end, "the child did not finish");
  close(pipefd[0]);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  char *live = index_rows_below(db, end);
  takhin_store *s = open_db(db);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.segments_reindexed, 0, "%s", ri.message);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  assert_index_rows_rebuilt_alike(db, "kill -9");
  char *rebuilt = index_rows_below(db, end);
  cr_assert_str_eq(live, rebuilt, "the rows the thread wrote are the files'");
  free(live);
  free(rebuilt);
}

/* Step 3's hook: the largest .cleaned file of the run's partition becomes a
** directory, its file set aside, so that its rename over the .log fails
** after the commit (a rename of a directory over a file: ENOTDIR). */
static char rename_dir[4096], rename_blocked[4400], rename_aside[4500];

static void block_first_rename(const char *topic, int32_t partition, int step) {
  (void)topic;
  (void)partition;
  if (step != 3 || rename_blocked[0]) return;
  const char *dir = rename_dir; /* the partition's folder, set by the test */
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  off_t most = 0; /* the largest new file: one with batches left */
  for (struct dirent *e; (e = readdir(d));) {
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (strstr(e->d_name, ".log.cleaned") && stat(path, &st) == 0 && st.st_size > most) {
      most = st.st_size;
      snprintf(rename_blocked, sizeof rename_blocked, "%s", path);
    }
  }
  closedir(d);
  cr_assert(rename_blocked[0], "a .cleaned file at the commit");
  snprintf(rename_aside, sizeof rename_aside, "%s.aside", rename_blocked);
  cr_assert_eq(rename(rename_blocked, rename_aside), 0);
  cr_assert_eq(mkdir(rename_blocked, 0700), 0);
}

/* A rename that fails after the commit leaves the old segment in memory
** while the catalog (its segment row, its swap row) describes the new
** file, renamed over the old one by the next open. The run must not owe
** the old file's index rows then: written at the close, they and the old
** segment row would describe the old file to that open, which would have
** to find the mismatch and reindex the segment. */
Test(compaction, failed_rename_owes_no_old_rows) {
  const char *db = tu_store_path("compact_failed_rename_rows");
  model m;
  unsigned seed = 77;
  takhin_store *s = keyed_store(db, &m, 8000, &seed);
  int64_t end = active_base(s, "t");
  rename_blocked[0] = '\0';
  snprintf(rename_dir, sizeof rename_dir, "%s-takhin/t-0", db);
  tk_compact_step_hook = block_first_rename;
  int rc = takhin_compact(s, "t", 0, 1, NULL);
  tk_compact_step_hook = NULL;
  cr_assert_neq(rc, TAKHIN_OK, "the blocked rename fails the run");
  cr_assert(strstr(takhin_errmsg(), "rename"), "%s", takhin_errmsg());
  cr_assert_eq(rmdir(rename_blocked), 0);
  cr_assert_eq(rename(rename_aside, rename_blocked), 0); /* the file waits, as its swap row says */
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = open_db(db); /* finishes the rename */
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.segments_reindexed, 0, "%s", ri.message);
  check_log(s, "t", &m, end, 100, 0);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  assert_no_cleaned_files(db);
  assert_index_rows_rebuilt_alike(db, "failed rename");
  model_free(&m);
}
