/*
** test_active_rows.c -- the active segment's catalog rows held in memory
** (store/partition.c): a producer's appends write no catalog rows between
** rolls; a roll, takhin_flush, takhin_close and an idle second write them;
** and nothing is lost for it: a writer killed with rows held back reopens
** with every acknowledged record and a correct index, a read-only handle in
** another process sees what was produced (it reads the file, not the
** catalog), and compaction and key lookups after such appends are right.
** Also the background threads' scheduling: the checkpoint thread and the
** reaper run SCHED_BATCH, and the checkpoint thread never waits for a
** producer's append_lock.
**
** The catalog is read with a connection of the test's own (WAL: it sees
** what the store committed); the store's in-memory index is read through
** internal.h to compare.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define TOPIC "t"
#define VLEN 1000

/* ---- the catalog as another connection sees it ---------------------------- */

static sqlite3 *cat_open(const char *db) {
  sqlite3 *c = NULL;
  cr_assert_eq(sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", db);
  return c;
}

static int64_t cat_int(sqlite3 *c, const char *sql, int64_t base) {
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(c));
  sqlite3_bind_int64(st, 1, base);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

/* The catalog's size of the segment at base (-1: no row), and its index
** entries (packed in runs: as many as the store would load). */
static int64_t cat_size(sqlite3 *c, int64_t base) {
  return cat_int(c, "SELECT size_bytes FROM takhin_cat_segment WHERE base_offset = ?1", base);
}
static int64_t cat_index_rows(sqlite3 *c, int64_t base) {
  int64_t n = tu_cat_index_count(c, -1, -1, base);
  cr_assert_geq(n, 0, "%s", tu_error());
  return n;
}

/* ---- the store's own view ------------------------------------------------- */

typedef struct seg_view {
  int64_t base, size;
  size_t idx_n;
} seg_view;

/* Segment i of the partition as the store holds it in memory; the count. */
static size_t mem_segs(takhin_store *s, seg_view *out, size_t cap) {
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, TOPIC, 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  pthread_mutex_lock(&p->append_lock);
  size_t n = p->nsegs;
  for (size_t i = 0; i < n && i < cap; i++)
    out[i] = (seg_view){p->segs[i]->base_offset, p->segs[i]->size, p->segs[i]->idx_n};
  pthread_mutex_unlock(&p->append_lock);
  tk_topic_unref(t);
  return n;
}

static takhin_store *open_with_topic(const char *db, const char *segment_bytes, int compact) {
  takhin_store *s = tu_open_ok(db);
  const char *cfg[] = {"segment_bytes", segment_bytes, "cleanup_policy",
                       compact ? "compact" : "delete", NULL};
  int rc = takhin_topic_create(s, TOPIC, 1, cfg);
  cr_assert_eq(rc, TAKHIN_OK, "create: %s", takhin_errmsg());
  return s;
}

/* Every record of [from, to) read at random offsets (and the first) equals
** tu_make_record's: each fetch seeks through the index. */
static void check_records(takhin_store *s, int64_t to, unsigned seed) {
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(pi.high_watermark, to, "high watermark %lld, want %lld",
               (long long)pi.high_watermark, (long long)to);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  srand(seed);
  for (int k = 0; k < 300 && to > 0; k++) {
    int64_t o = k == 0 ? 0 : k == 1 ? to - 1 : rand() % to;
    takhin_message m;
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, TAKHIN_OK, "get %lld: %s", (long long)o, takhin_errmsg());
    cr_assert_eq(m.offset, o);
    cr_assert(tu_value_ok(m.value, m.value_len, VLEN, (long)o), "offset %lld: wrong value",
              (long long)o);
  }
  takhin_cursor_close(c);
}

/* ---- rows held back between rolls ------------------------------------------ */

/* The checkpoint thread writes a sealed segment's index rows after its
** roll: wait for them, as long as a loaded machine may need. */
static void wait_index_rows(sqlite3 *c, int64_t base, int64_t want) {
  int64_t t0 = tu_now_ms();
  while (cat_index_rows(c, base) != want && tu_now_ms() - t0 < 30000) usleep(20000);
  cr_assert_eq(cat_index_rows(c, base), want, "segment %lld: index rows", (long long)base);
}

Test(active_rows, written_at_roll_flush_close_only) {
  const char *db = tu_store_path("active_rows_roll");
  takhin_store *s = open_with_topic(db, "4194304", 0); /* 4 MiB: ~3900 records */
  sqlite3 *c = cat_open(db);
  /* ~1.6 MB, ~390 index entries: more than a persist used to wait for */
  tu_produce_n(s, TOPIC, 0, 0, 1500, VLEN, 1);
  seg_view v[16];
  cr_assert_eq(mem_segs(s, v, 16), 1);
  cr_assert_gt(v[0].idx_n, 300);
  /* appends wrote nothing: the row is the one the topic's creation wrote */
  cr_assert_eq(cat_size(c, 0), 0, "the active row was written: size %lld",
               (long long)cat_size(c, 0));
  cr_assert_eq(cat_index_rows(c, 0), 0);

  tu_produce_n(s, TOPIC, 0, 1500, 3000, VLEN, 1); /* rolls once */
  size_t n = mem_segs(s, v, 16);
  cr_assert_eq(n, 2, "%zu segments", n);
  /* the roll wrote the sealed segment's row and the new one's (held back
  ** since: empty); the checkpoint thread the sealed one's index rows */
  cr_assert_eq(cat_size(c, 0), v[0].size);
  cr_assert_eq(cat_size(c, v[1].base), 0);
  cr_assert_eq(cat_index_rows(c, v[1].base), 0);
  wait_index_rows(c, 0, (int64_t)v[0].idx_n);

  cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(cat_size(c, v[1].base), v[1].size);
  cr_assert_eq(cat_index_rows(c, v[1].base), (int64_t)v[1].idx_n);

  tu_produce_n(s, TOPIC, 0, 4500, 20, VLEN, 1);
  cr_assert_eq(mem_segs(s, v, 16), 2);
  cr_assert_lt(cat_size(c, v[1].base), v[1].size, "rows written after the flush");
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(cat_size(c, v[1].base), v[1].size);
  cr_assert_eq(cat_index_rows(c, v[1].base), (int64_t)v[1].idx_n);
  sqlite3_close(c);

  s = tu_open_ok(db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.batches_recovered, 0, "the close wrote every row");
  check_records(s, 4520, 1);
  takhin_close(s);
}

/* A roll of a segment with more index entries than one transaction takes
** leaves them owed: the checkpoint thread writes them, a chunk per
** transaction, with no append after the roll; all of them reach the
** catalog (test_compaction.c proves the producer pays none). */
Test(active_rows, roll_writes_rows_in_chunks) {
  const char *db = tu_store_path("active_rows_chunks");
  /* batches of ~4.2 KB, an index entry each: ~19,900 in 80 MiB, more
  ** than the TK_PERSIST_BG_CHUNK (16,384) of one transaction */
  takhin_store *s = open_with_topic(db, "83886080", 0);
  sqlite3 *c = cat_open(db);
  takhin_record r[16];
  static char vals[16][4100];
  char keys[16][32];
  long i = 0;
  seg_view v[4];
  while (mem_segs(s, v, 4) == 1) { /* 4 KiB+ batches: one index entry each */
    for (int j = 0; j < 4; j++) tu_make_record(&r[j], keys[j], 32, vals[j], 1024, i + j);
    cr_assert_eq(takhin_produce(s, TOPIC, 0, r, 4, NULL), TAKHIN_OK, "%s", takhin_errmsg());
    i += 4;
  }
  cr_assert_gt(v[0].idx_n, 2 * TK_PERSIST_CHUNK);
  cr_assert_gt(v[0].idx_n, TK_PERSIST_BG_CHUNK, "%zu entries: one chunk", v[0].idx_n);
  wait_index_rows(c, 0, (int64_t)v[0].idx_n);
  cr_assert_eq(cat_size(c, 0), v[0].size);
  sqlite3_close(c);
  takhin_close(s);
}

Test(active_rows, written_after_an_idle_second) {
  const char *db = tu_store_path("active_rows_idle");
  takhin_store *s = open_with_topic(db, "1048576", 0);
  sqlite3 *c = cat_open(db);
  tu_produce_n(s, TOPIC, 0, 0, 50, VLEN, 5);
  seg_view v[4];
  mem_segs(s, v, 4);
  /* The checkpoint thread writes them once the partition is idle; wait
  ** for it, as long as a loaded machine may need. */
  int64_t t0 = tu_now_ms();
  while (cat_size(c, 0) != v[0].size && tu_now_ms() - t0 < 30000) usleep(20000);
  cr_assert_eq(cat_size(c, 0), v[0].size, "idle rows not written");
  cr_assert_eq(cat_index_rows(c, 0), (int64_t)v[0].idx_n);
  sqlite3_close(c);
  takhin_close(s);
}

typedef struct roller {
  takhin_store *s;
  atomic_int stop;
  atomic_long produced;
} roller;

/* Produces to topic "busy" (64 KiB segments: a roll every four calls, and
** each roll leaves the sealed segment's rows owed to the checkpoint
** thread) until told to stop, deleting what it wrote now and then. */
static void *roll_until_stopped(void *arg) {
  roller *r = arg;
  for (long i = 0; !atomic_load(&r->stop); i += 16) {
    tu_produce_n(r->s, "busy", 0, i, 16, VLEN, 16);
    atomic_store(&r->produced, i + 16);
    if (i % 1024 == 0) /* the disk stays small */
      cr_assert_eq(takhin_delete_records(r->s, "busy", 0, i), TAKHIN_OK, "%s", takhin_errmsg());
    usleep(1000); /* a roll every few ms still, the CPU left to the rest */
  }
  return NULL;
}

/* Owed rows come every few milliseconds from another topic's rolls: the
** checkpoint thread writes them and still makes its idle look, which
** writes an idle partition's held-back rows (a wake-up for owed rows does
** not put the look off again, half a period each time). */
Test(active_rows, written_while_another_topic_keeps_rolling) {
  const char *db = tu_store_path("active_rows_idle_rolling");
  takhin_store *s = open_with_topic(db, "1048576", 0);
  cr_assert_eq(
      takhin_topic_create(s, "busy", 1, (const char *const[]){"segment_bytes", "65536", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  sqlite3 *c = cat_open(db);
  roller r = {.s = s};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, roll_until_stopped, &r), 0);
  tu_produce_n(s, TOPIC, 0, 0, 50, VLEN, 5);
  seg_view v[4];
  mem_segs(s, v, 4);
  const char *q = "SELECT size_bytes FROM takhin_cat_segment WHERE base_offset = ?1 AND "
                  "topic_id = (SELECT topic_id FROM takhin_cat_topic WHERE name = 't')";
  int64_t t0 = tu_now_ms();
  while (cat_int(c, q, 0) != v[0].size && tu_now_ms() - t0 < 30000) usleep(20000);
  int64_t size = cat_int(c, q, 0);
  atomic_store(&r.stop, 1);
  pthread_join(th, NULL);
  cr_assert_gt(atomic_load(&r.produced), 0);
  cr_assert_eq(size, v[0].size, "idle rows not written while \"busy\" rolled (%ld records)",
               atomic_load(&r.produced));
  sqlite3_close(c);
  takhin_close(s);
}

/* ---- a writer killed with rows held back ------------------------------------ */

Test(active_rows, kill9_reopen_sees_every_acknowledged_record) {
  const char *db = tu_store_path("active_rows_kill");
  takhin_store *s = open_with_topic(db, "2097152", 0);
  takhin_close(s);
  int ack[2];
  cr_assert_eq(pipe(ack), 0);
  const long n = 3000; /* ~3 MiB: one roll, and a held-back tail */
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(ack[0]);
    takhin_store *w = NULL;
    if (takhin_open(db, NULL, &w)) _exit(2);
    takhin_record r[7];
    char keys[7][32], vals[7][VLEN];
    for (long i = 0; i < n;) {
      long m = 1 + i % 7 < n - i ? 1 + i % 7 : n - i;
      for (long j = 0; j < m; j++) tu_make_record(&r[j], keys[j], 32, vals[j], VLEN, i + j);
      int64_t first;
      if (takhin_produce(w, TOPIC, 0, r, (size_t)m, &first) || first != i) _exit(3);
      i += m;
    }
    char done = 1;
    if (write(ack[1], &done, 1) != 1) _exit(4);
    pause(); /* killed here, rows held back */
    _exit(5);
  }
  close(ack[1]);
  char done = 0;
  cr_assert_eq(read(ack[0], &done, 1), 1, "the writer failed before acknowledging");
  close(ack[0]);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st), "writer exit %d", WEXITSTATUS(st));

  /* read-only first (it repairs nothing), then the writer's recovery */
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  check_records(s, n, 2);
  takhin_close(s);
  s = tu_open_ok(db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_gt(ri.batches_recovered, 0, "the held-back tail was not in the catalog");
  check_records(s, n, 3);
  tu_produce_n(s, TOPIC, 0, n, 10, VLEN, 3); /* and the log goes on */
  check_records(s, n + 10, 4);
  takhin_close(s);
  s = tu_open_ok(db);
  check_records(s, n + 10, 5);
  takhin_close(s);
}

/* ---- a read-only handle in another process ---------------------------------- */

/* Child: keep a read-only handle; at each byte from `go` check the high
** watermark it names (times 100) and every record, then answer on `done`. */
static void ro_child(const char *db, int go, int done) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *r = NULL;
  if (takhin_open(db, &o, &r)) _exit(2);
  unsigned char want;
  while (read(go, &want, 1) == 1) {
    takhin_partition_info pi;
    char ok = 1;
    if (takhin_partition_info_get(r, TOPIC, 0, &pi) || pi.high_watermark != want * 100L) ok = 0;
    takhin_cursor *c = NULL;
    if (ok && takhin_cursor_open(r, TOPIC, 0, &c)) ok = 0;
    for (int64_t i = 0; ok && i < pi.high_watermark; i++) {
      takhin_message m;
      if (takhin_cursor_next(c, &m) || m.offset != i ||
          !tu_value_ok(m.value, m.value_len, VLEN, (long)i))
        ok = 0;
    }
    takhin_cursor_close(c);
    if (write(done, &ok, 1) != 1) _exit(3);
  }
  takhin_close(r);
  _exit(0);
}

Test(active_rows, read_only_process_sees_held_back_appends) {
  const char *db = tu_store_path("active_rows_ro");
  takhin_store *s = open_with_topic(db, "262144", 0);
  tu_produce_n(s, TOPIC, 0, 0, 100, VLEN, 1);
  int go[2], done[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(done), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(go[1]);
    close(done[0]);
    ro_child(db, go[0], done[1]);
  }
  close(go[0]);
  close(done[1]);
  /* 100 held back; then 300 more across a roll; then 100 more, flushed */
  const unsigned char steps[] = {1, 4, 5};
  for (int k = 0; k < 3; k++) {
    if (k == 1) tu_produce_n(s, TOPIC, 0, 100, 300, VLEN, 1);
    if (k == 2) {
      tu_produce_n(s, TOPIC, 0, 400, 100, VLEN, 10);
      cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK);
    }
    cr_assert_eq(write(go[1], &steps[k], 1), 1);
    char ok = 0;
    cr_assert_eq(read(done[0], &ok, 1), 1, "the reader died");
    cr_assert(ok, "the read-only process did not see all %d00 records", steps[k]);
  }
  close(go[1]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader exit %d", WEXITSTATUS(st));
  close(done[0]);
  takhin_close(s);
}

/* ---- compaction and key lookups after held-back appends ---------------------- */

Test(active_rows, compaction_and_key_lookup) {
  const char *db = tu_store_path("active_rows_compact");
  takhin_store *s = open_with_topic(db, "65536", 1);
  const int keys = 40, rounds = 6;
  char k[32], v[64];
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < keys; i++) {
      snprintf(k, sizeof k, "key%d", i);
      int vl = snprintf(v, sizeof v, "r%d-%d", r, i);
      char pad[2000];
      memset(pad, 'p', sizeof pad);
      memcpy(pad, v, (size_t)vl);
      takhin_record rec = {.key = k, .key_len = strlen(k), .value = pad, .value_len = sizeof pad};
      cr_assert_eq(takhin_produce(s, TOPIC, 0, &rec, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
    }
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < keys; i++) {
      snprintf(k, sizeof k, "key%d", i);
      takhin_message m;
      int rc = takhin_cursor_get_key(c, k, strlen(k), &m);
      cr_assert_eq(rc, TAKHIN_OK, "key %s: %s", k, takhin_errmsg());
      int vl = snprintf(v, sizeof v, "r%d-%d", rounds - 1, i);
      cr_assert(m.value_len == 2000 && !memcmp(m.value, v, (size_t)vl), "key %s: old value", k);
      cr_assert_eq(m.offset, (int64_t)(rounds - 1) * keys + i);
    }
    if (pass == 0) {
      takhin_compaction_result cr;
      memset(&cr, 0, sizeof cr);
      cr_assert_eq(takhin_compact(s, TOPIC, 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
    }
  }
  /* after compaction every surviving record is its key's latest */
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK);
  takhin_message m;
  int seen = 0;
  while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
    int key = atoi((const char *)m.key + 3);
    if (m.offset < (int64_t)(rounds - 1) * keys) continue; /* the active segment keeps them */
    cr_assert_eq(m.offset, (int64_t)(rounds - 1) * keys + key);
    seen++;
  }
  cr_assert_eq(seen, keys);
  takhin_cursor_close(c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  s = tu_open_ok(db);
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  snprintf(k, sizeof k, "key%d", 7);
  cr_assert_eq(takhin_cursor_get_key(c, k, strlen(k), &m), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(m.offset, (int64_t)(rounds - 1) * keys + 7);
  takhin_cursor_close(c);
  takhin_close(s);
}

/* ---- the background threads' scheduling ----------------------------------- */

/* The id of the process's thread named comm, or 0. */
static pid_t tid_of(const char *comm) {
  DIR *d = opendir("/proc/self/task");
  cr_assert(d, "/proc/self/task: %s", strerror(errno));
  pid_t tid = 0;
  for (struct dirent *e; !tid && (e = readdir(d));) {
    char path[300], name[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "r");
    if (!f) continue;
    if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
    fclose(f);
    if (!strcmp(name, comm)) tid = (pid_t)atoi(e->d_name);
  }
  closedir(d);
  return tid;
}

/* The scheduling policy of the process's thread named comm, or -1 when none
** is (the library keeps its thread ids to itself). */
static int policy_of(const char *comm) {
  pid_t tid = tid_of(comm);
  return tid ? sched_getscheduler(tid) : -1;
}

/* The checkpoint thread and the reaper are SCHED_BATCH (store.c,
** tk_thread_init): a producer that wakes them keeps its core. The
** producer's own thread is left as it was. */
Test(active_rows, background_threads_do_not_preempt_producers) {
  const char *db = tu_store_path("active_rows_sched");
  takhin_store *s = open_with_topic(db, "65536", 0); /* a roll every ~60 records */
  int before = sched_getscheduler(0);
  tu_produce_n(s, TOPIC, 0, 0, 200, VLEN, 10); /* rolls: rows owed to the checkpoint thread */
  cr_assert_eq(takhin_delete_records(s, TOPIC, 0, 120), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_retention_result rr;
  cr_assert_eq(takhin_maintenance_run(s, &rr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(rr.segments_deleted, 0, "retention deleted nothing: no reaper to look at");
  int ckpt = -1, reaper = -1;
  for (int64_t t0 = tu_now_ms();
       (ckpt != SCHED_BATCH || reaper != SCHED_BATCH) && tu_now_ms() - t0 < 30000;) {
    ckpt = policy_of("takhin-ckpt"), reaper = policy_of("takhin-reaper");
    usleep(10000);
  }
  cr_assert_eq(ckpt, SCHED_BATCH, "checkpoint thread policy %d", ckpt);
  cr_assert_eq(reaper, SCHED_BATCH, "reaper policy %d", reaper);
  cr_assert_eq(sched_getscheduler(0), before, "the producer's policy changed");
  cr_assert_eq(before, SCHED_OTHER);
  takhin_close(s);
}

/* The system call the thread tid is in (-1: running, or unknown) and, in
** *arg0, its first argument (/proc/self/task/<tid>/syscall). */
static long syscall_of(pid_t tid, uintptr_t *arg0) {
  char path[64], line[256] = "";
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  if (!fgets(line, sizeof line, f)) line[0] = 0;
  fclose(f);
  long nr = -1;
  unsigned long long a0 = 0;
  if (sscanf(line, "%ld 0x%llx", &nr, &a0) != 2) return -1;
  *arg0 = (uintptr_t)a0;
  return nr;
}

/* The checkpoint thread never waits for a producer's append_lock (it would
** make every unlock of the producer's a futex wake): with every row
** written, the test takes the lock, owes a sealed segment's rows again and
** wakes the thread; while the lock is held the thread is seen sleeping
** between looks, and never in futex() on that lock; once it is let go, the
** rows are written. */
Test(active_rows, checkpoint_thread_does_not_wait_for_append_lock) {
  const char *db = tu_store_path("active_rows_trylock");
  takhin_store *s = open_with_topic(db, "65536", 0);
  tu_produce_n(s, TOPIC, 0, 0, 200, VLEN, 10); /* rolls: the checkpoint thread starts */
  pid_t ckpt = 0;
  for (int64_t t0 = tu_now_ms(); !ckpt && tu_now_ms() - t0 < 30000; usleep(10000))
    ckpt = tid_of("takhin-ckpt");
  cr_assert(ckpt, "no checkpoint thread");
  tk_topic *t;
  tk_partition *p;
  cr_assert_eq(tk_store_partition(s, TOPIC, 0, &t, &p), TAKHIN_OK, "%s", takhin_errmsg());
  for (int64_t t0 = tu_now_ms();; usleep(10000)) { /* every owed row written: the thread idle */
    pthread_mutex_lock(&p->append_lock);
    if (!atomic_load(&p->rows_owed)) break; /* the lock is kept */
    pthread_mutex_unlock(&p->append_lock);
    cr_assert_lt(tu_now_ms() - t0, 30000, "rows still owed after 30 s");
  }
  cr_assert_gt(p->nsegs, 2);
  tk_segment *g = p->segs[1]; /* sealed, its rows written: owed again */
  size_t entries = g->idx_n;
  g->idx_persisted = 0;
  atomic_store(&p->rows_owed, 1);
  cr_assert_eq(tk_ckpt_owe(s), 0);
  int on_lock = 0, napping = 0;
  for (int i = 0; i < 200; i++, usleep(1000)) {
    uintptr_t a0 = 0;
    long nr = syscall_of(ckpt, &a0);
    on_lock += nr == SYS_futex && a0 == (uintptr_t)&p->append_lock;
    napping += nr == SYS_clock_nanosleep || nr == SYS_nanosleep; /* between looks */
  }
  pthread_mutex_unlock(&p->append_lock);
  cr_assert_eq(on_lock, 0, "the checkpoint thread waited on append_lock in %d of 200 looks",
               on_lock);
  cr_assert_gt(napping, 0, "the checkpoint thread was never seen between two looks");
  for (int64_t t0 = tu_now_ms();; usleep(10000)) { /* and it writes them once let in */
    pthread_mutex_lock(&p->append_lock);
    size_t done = g->idx_persisted;
    pthread_mutex_unlock(&p->append_lock);
    if (done == entries) break;
    cr_assert_lt(tu_now_ms() - t0, 30000, "owed rows not written: %zu of %zu", done, entries);
  }
  tk_topic_unref(t);
  takhin_close(s);
}
