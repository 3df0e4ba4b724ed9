/*
** test_delete_race.c -- deleting a topic while maintenance runs on it.
**
** A compaction held mid-run (tk_compact_step_hook) while another thread
** deletes its topic: the delete must wait for it and leave no catalog row
** of the old topic_id, which the next topic created gets again; a row left
** behind (a key, a segment, a log start) would be that topic's and make its
** lookups and compaction use the old offsets. Meanwhile the other topics
** go on (the delete holds no store lock while it waits). Maintenance that
** found the partition before a delete and runs after it (retention,
** DeleteRecords, compaction, a key lookup) is refused instead of touching
** the new topic's rows.
*/
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"

/* ---- holding a compaction run at one step ----------------------------- */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static const char *hold_topic;
static int hold_step = -1, held, released;

static void hold_hook(const char *topic, int32_t partition, int step) {
  (void)partition;
  pthread_mutex_lock(&hold_mu);
  if (hold_topic && !strcmp(topic, hold_topic) && step == hold_step && !held) {
    held = 1;
    pthread_cond_broadcast(&hold_cv);
    while (!released) pthread_cond_wait(&hold_cv, &hold_mu);
  }
  pthread_mutex_unlock(&hold_mu);
}

static void hold_arm(const char *topic, int step) {
  pthread_mutex_lock(&hold_mu);
  hold_topic = topic;
  hold_step = step;
  held = released = 0;
  pthread_mutex_unlock(&hold_mu);
  tk_compact_step_hook = hold_hook;
}

static void hold_wait(void) {
  pthread_mutex_lock(&hold_mu);
  while (!held) pthread_cond_wait(&hold_cv, &hold_mu);
  pthread_mutex_unlock(&hold_mu);
}

static void hold_release(void) {
  pthread_mutex_lock(&hold_mu);
  released = 1;
  pthread_cond_broadcast(&hold_cv);
  pthread_mutex_unlock(&hold_mu);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- helpers -------------------------------------------------------------- */

/* n records at offsets first.., key "k<i % nkeys>", value "<tag>-<i>" and
** padding, one record per call. */
static void produce_keys(takhin_store *s, const char *topic, int32_t part, long first, long n,
                         int nkeys, const char *tag) {
  for (long i = first; i < first + n; i++) {
    char k[32], v[160];
    snprintf(k, sizeof k, "k%ld", i % nkeys);
    int vl = snprintf(v, sizeof v, "%s-%ld-", tag, i);
    memset(v + vl, 'x', sizeof v - (size_t)vl);
    takhin_record r = {.key = k,
                       .key_len = strlen(k),
                       .value = v,
                       .value_len = sizeof v,
                       .timestamp = TAKHIN_TIMESTAMP_NOW};
    int64_t off = -1;
    int rc = takhin_produce(s, topic, part, &r, 1, &off);
    cr_assert_eq(rc, TAKHIN_OK, "produce %s: %s", topic, takhin_errmsg());
    cr_assert_eq(off, i, "offset %lld, want %ld", (long long)off, i);
  }
}

static int64_t catalog_i64(const char *db, const char *sql, int64_t arg) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(h));
  sqlite3_bind_int64(st, 1, arg);
  int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

static int64_t topic_id_of(const char *db, const char *topic) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(
      sqlite3_prepare_v2(h, "SELECT topic_id FROM takhin_cat_topic WHERE name = ?1", -1, &st, NULL),
      SQLITE_OK);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(h);
  return id;
}

/* Every catalog table that names a topic_id holds no row of id. */
static void assert_no_rows(const char *db, int64_t id) {
  static const char *const tables[] = {"takhin_cat_topic",        "takhin_cat_partition",
                                       "takhin_cat_segment",      "takhin_cat_index_run",
                                       "takhin_cat_group_offset", "takhin_cat_key",
                                       "takhin_cat_swap"};
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE topic_id = ?1", tables[i]);
    int64_t n = catalog_i64(db, sql, id);
    cr_assert_eq(n, 0, "%lld rows of deleted topic_id %lld left in %s", (long long)n, (long long)id,
                 tables[i]);
  }
}

/* The latest record of key "k<k>" is at offset want, value tag-<want>-. */
static void assert_key_at(takhin_store *s, const char *topic, int k, int64_t want,
                          const char *tag) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  char key[32], pre[64];
  snprintf(key, sizeof key, "k%d", k);
  snprintf(pre, sizeof pre, "%s-%lld-", tag, (long long)want);
  takhin_message m;
  int rc = takhin_cursor_get_key(c, key, strlen(key), &m);
  cr_assert_eq(rc, TAKHIN_OK, "get_key %s: %s", key, takhin_errmsg());
  cr_assert_eq(m.offset, want, "key %s at %lld, want %lld (a stale key row?)", key,
               (long long)m.offset, (long long)want);
  cr_assert(m.value_len > strlen(pre) && !memcmp(m.value, pre, strlen(pre)), "key %s: value %.*s",
            key, (int)(m.value_len < 40 ? m.value_len : 40), (const char *)m.value);
  takhin_cursor_close(c);
}

/* Read the whole partition: every record's value matches its offset and
** tag, and the last offset is last. */
static long read_all(takhin_store *s, const char *topic, const char *tag, int64_t last) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_message m;
  long n = 0;
  int64_t prev = -1;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    char pre[64];
    snprintf(pre, sizeof pre, "%s-%lld-", tag, (long long)m.offset);
    cr_assert(m.offset > prev);
    cr_assert(m.value_len > strlen(pre) && !memcmp(m.value, pre, strlen(pre)),
              "offset %lld holds %.*s", (long long)m.offset, 20, (const char *)m.value);
    prev = m.offset;
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(prev, last);
  takhin_cursor_close(c);
  return n;
}

/* ---- the threads ---------------------------------------------------------- */

typedef struct call {
  takhin_store *s;
  const char *topic;
  int rc;
  char msg[256];
  atomic_int done;
} call;

static void *compact_main(void *arg) {
  call *a = arg;
  takhin_compaction_result r;
  a->rc = takhin_compact(a->s, a->topic, 0, 1, &r);
  snprintf(a->msg, sizeof a->msg, "%s", takhin_errmsg());
  atomic_store(&a->done, 1);
  return NULL;
}

static void *delete_main(void *arg) {
  call *a = arg;
  a->rc = takhin_topic_delete(a->s, a->topic);
  snprintf(a->msg, sizeof a->msg, "%s", takhin_errmsg());
  atomic_store(&a->done, 1);
  return NULL;
}

static void *maint_main(void *arg) {
  call *a = arg;
  takhin_retention_result rr;
  a->rc = takhin_maintenance_run(a->s, &rr);
  snprintf(a->msg, sizeof a->msg, "%s", takhin_errmsg());
  atomic_store(&a->done, 1);
  return NULL;
}

#define NKEYS 10
#define NOLD 400 /* ~170 B records in 4 KiB segments: some 17 of them */

static const char *const victim_cfg[] = {"cleanup_policy",
                                         "compact,delete",
                                         "segment_bytes",
                                         "4096",
                                         "retention_ms",
                                         "-1",
                                         "delete_retention_ms",
                                         "3600000",
                                         NULL};

/* Hold a compaction of "victim" at step, delete it from two threads, check
** that both deletes wait for the run while the other topic goes on, then
** that nothing of the old topic_id is left for the topic created next. */
static void delete_during_compaction(const char *name, int step, int want_compact_rc) {
  const char *db = tu_store_path(name);
  takhin_store *s = tu_open_ok(db);
  /* "victim" last: it has the largest topic_id, which the next topic gets */
  cr_assert_eq(takhin_topic_create(s, "other", 1, victim_cfg), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "victim", 2, victim_cfg), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t old_id = topic_id_of(db, "victim");
  produce_keys(s, "other", 0, 0, 100, NKEYS, "other");
  produce_keys(s, "victim", 0, 0, NOLD, NKEYS, "old");
  produce_keys(s, "victim", 1, 0, 50, NKEYS, "old");
  tk_topic *t; /* to see the delete's mark */
  cr_assert_eq(tk_store_topic(s, "victim", &t), TAKHIN_OK);

  hold_arm("victim", step);
  call comp = {.s = s, .topic = "victim"}, del1 = {.s = s, .topic = "victim"},
       del2 = {.s = s, .topic = "victim"};
  pthread_t tc, td1, td2;
  cr_assert_eq(pthread_create(&tc, NULL, compact_main, &comp), 0);
  hold_wait(); /* the run holds victim-0's maint_lock, stopped at step */
  cr_assert_eq(pthread_create(&td1, NULL, delete_main, &del1), 0);
  cr_assert_eq(pthread_create(&td2, NULL, delete_main, &del2), 0);
  /* Both deletes have marked the topic (or, on a store that does not wait,
  ** returned). */
  for (int i = 0; i < 30000 && atomic_load(&t->deleting) < 2 &&
                  !(atomic_load(&del1.done) && atomic_load(&del2.done));
       i++)
    sleep_ms(1);
  sleep_ms(20); /* a delete that does not wait would be done by now */
  cr_assert_not(atomic_load(&del1.done) || atomic_load(&del2.done),
                "a delete returned (%s) while a compaction of its topic was still running",
                atomic_load(&del1.done) ? del1.msg : del2.msg);
  cr_assert_eq(atomic_load(&t->deleting), 2);

  /* While they wait: the other topic is produced to, read, compacted and
  ** looked up (none of it could run under topics_lock held for writing). */
  produce_keys(s, "other", 0, 100, 50, NKEYS, "other");
  cr_assert_eq(read_all(s, "other", "other", 149), 150);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "other", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  assert_key_at(s, "other", 3, 143, "other");
  /* The topic being deleted: its name is still taken, and maintenance of a
  ** partition the held run does not lock is refused rather than run. */
  cr_assert_eq(takhin_topic_create(s, "victim", 1, NULL), TAKHIN_EEXISTS);
  takhin_retention_result rr;
  int rc = takhin_retention_apply(s, "victim", 1, &rr);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "retention: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  rc = takhin_delete_records(s, "victim", 1, 5);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "DeleteRecords: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  rc = takhin_compact(s, "victim", 1, 1, &cr);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "compact: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  cr_assert_not(atomic_load(&del1.done) || atomic_load(&del2.done));
  /* A store-wide run queues behind the held one on victim-0 (holding
  ** topics_lock for reading), then skips the topic without an error. */
  call maint = {.s = s};
  pthread_t tm;
  cr_assert_eq(pthread_create(&tm, NULL, maint_main, &maint), 0);

  hold_release();
  pthread_join(tc, NULL);
  pthread_join(td1, NULL);
  pthread_join(td2, NULL);
  pthread_join(tm, NULL);
  cr_assert_eq(maint.rc, TAKHIN_OK, "maintenance: %s (%s)", takhin_errstr(maint.rc), maint.msg);
  tk_compact_step_hook = NULL;
  cr_assert_eq(comp.rc, want_compact_rc, "compaction: %s (%s)", takhin_errstr(comp.rc), comp.msg);
  /* one delete deleted it, the other found it gone */
  cr_assert((del1.rc == TAKHIN_OK && del2.rc == TAKHIN_ENOTFOUND) ||
                (del2.rc == TAKHIN_OK && del1.rc == TAKHIN_ENOTFOUND),
            "deletes: %s (%s), %s (%s)", takhin_errstr(del1.rc), del1.msg, takhin_errstr(del2.rc),
            del2.msg);
  cr_assert(atomic_load(&t->deleted));
  cr_assert_eq(atomic_load(&t->deleting), 0);
  tk_topic_unref(t);
  assert_no_rows(db, old_id);

  /* The next topic gets the same topic_id, and sees only its own records. */
  cr_assert_eq(takhin_topic_create(s, "victim", 1, victim_cfg), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(topic_id_of(db, "victim"), old_id, "the premise: the topic_id is reused");
  produce_keys(s, "victim", 0, 0, 120, NKEYS, "new");
  for (int k = 0; k < NKEYS; k++) assert_key_at(s, "victim", k, 110 + k, "new");
  cr_assert_eq(takhin_compact(s, "victim", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(cr.records_removed, 0);
  read_all(s, "victim", "new", 119);
  for (int k = 0; k < NKEYS; k++) assert_key_at(s, "victim", k, 110 + k, "new");
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "victim", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.log_start_offset, 0);
  cr_assert_eq(pi.high_watermark, 120);
  int64_t segrows =
      catalog_i64(db, "SELECT count(*) FROM takhin_cat_segment WHERE topic_id = ?1", old_id);
  cr_assert_eq(segrows, pi.segments, "%lld segment rows, %lld segments", (long long)segrows,
               (long long)pi.segments);
  cr_assert_eq(
      catalog_i64(db, "SELECT max(offset) FROM takhin_cat_key WHERE topic_id = ?1", old_id), 119);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());

  /* ... and so does the next open. */
  s = tu_open_ok(db);
  read_all(s, "victim", "new", 119);
  for (int k = 0; k < NKEYS; k++) assert_key_at(s, "victim", k, 110 + k, "new");
  read_all(s, "other", "other", 149);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
}

/* Held after its new files are synced, before its catalog transaction:
** the run that used to write segment, index and swap rows for the deleted
** topic_id. It gives up (ENOTFOUND) instead. */
Test(delete_race, delete_waits_for_compaction_before_its_rows, .timeout = 120) {
  delete_during_compaction("delete_race_step2", 2, TAKHIN_ENOTFOUND);
}

/* Held after its first flush, before any row of its own. */
Test(delete_race, delete_waits_for_compaction_after_its_flush, .timeout = 120) {
  delete_during_compaction("delete_race_step0", 0, TAKHIN_ENOTFOUND);
}

/* Held after its rows committed and its files were renamed: it finishes,
** and the delete removes what it wrote. */
Test(delete_race, delete_waits_for_compaction_after_its_swap, .timeout = 120) {
  delete_during_compaction("delete_race_step5", 5, TAKHIN_OK);
}

/* A partition found before the delete, maintained after it and after a new
** topic took the topic_id: refused, the new topic untouched. */
Test(delete_race, stale_partition_is_refused, .timeout = 120) {
  const char *db = tu_store_path("delete_race_stale");
  takhin_store *s = tu_open_ok(db);
  cr_assert_eq(takhin_topic_create(s, "victim", 1, victim_cfg), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t old_id = topic_id_of(db, "victim");
  produce_keys(s, "victim", 0, 0, 100, NKEYS, "old");
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, "victim", 0, &t, &p), TAKHIN_OK);
  cr_assert_eq(takhin_topic_delete(s, "victim"), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "victim", 1, victim_cfg), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(topic_id_of(db, "victim"), old_id, "the premise: the topic_id is reused");
  produce_keys(s, "victim", 0, 0, 30, NKEYS, "new");

  int rc = tk_part_delete_records(p, 20);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "DeleteRecords: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  takhin_retention_result rr = {0, 0};
  rc = tk_part_retention(p, &rr);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "retention: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  takhin_compaction_result cr;
  memset(&cr, 0, sizeof cr);
  rc = tk_part_compact(p, 1, &cr);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "compact: %s (%s)", takhin_errstr(rc), takhin_errmsg());
  int64_t off = -1;
  int tomb = 0;
  rc = tk_key_lookup(p, "k1", 2, &off, &tomb);
  cr_assert_eq(rc, TAKHIN_ENOTFOUND, "lookup: %s at %lld (the new topic's row)", takhin_errstr(rc),
               (long long)off);
  tk_topic_unref(t);

  cr_assert_eq(catalog_i64(db,
                           "SELECT log_start_offset FROM takhin_cat_partition WHERE topic_id = ?1",
                           old_id),
               0, "the new topic's log start moved");
  read_all(s, "victim", "new", 29);
  for (int k = 0; k < NKEYS; k++) assert_key_at(s, "victim", k, 20 + k, "new");
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  s = tu_open_ok(db);
  read_all(s, "victim", "new", 29);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
}
