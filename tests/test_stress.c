/*
** test_stress.c -- the mixed workload of issue 11, for a bounded time: six
** producers (two on one partition), tail readers, key lookups, compaction,
** retention, DeleteRecords and takhin_maintenance_run threads on a plain and
** a compacted topic, plus a read_only process tailing the same store. Small
** segments and a tiny file-handle budget make segments roll, get compacted,
** deleted and reopened by path all the time.
**
** Afterwards every acknowledged record is checked (present, intact, at its
** offset, once; the plain topic dense from its log start; on the compacted
** topic each key's latest record present), before and after a reopen, and
** the read_only process must have read up to the writer's final high
** watermark of every partition without a single error other than ERANGE
** below the log start (which it handles by seeking to the log start).
**
** TAKHIN_STRESS_SECONDS sets the length of the run (default 3; issue 11 was
** reproduced with 35). Under TSan (tsan_shim) the read_only process is
** forked before any thread exists, so it runs there as well.
*/
#include <criterion/criterion.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NPLAIN 3   /* partitions of "plain" */
#define NCOMPACT 2 /* partitions of "compact" */
#define NPARTS (NPLAIN + NCOMPACT)
#define NKEYS 37 /* distinct keys per compacted partition */

static const char *part_topic(int i) { return i < NPLAIN ? "plain" : "compact"; }
static int part_id(int i) { return i < NPLAIN ? i : i - NPLAIN; }
static int is_plain(int i) { return i < NPLAIN; }

static int stress_seconds(void) {
  const char *e = getenv("TAKHIN_STRESS_SECONDS");
  int n = e ? atoi(e) : 0;
  return n > 0 ? n : 3;
}

/* ---- records: the value names its producer and sequence number ---------- */

static char pat(int pid, long seq, size_t j) {
  return (char)('a' + (pid * 31 + seq * 7 + (long)j) % 26);
}

static size_t make_value(char *buf, int pid, long seq) {
  int h = snprintf(buf, 64, "%d:%ld:", pid, seq);
  size_t len = (size_t)h + 40 + (size_t)((seq * 13) % 120);
  for (size_t j = (size_t)h; j < len; j++) buf[j] = pat(pid, seq, j);
  return len;
}

static int make_key(char *buf, size_t cap, int plain, int pid, long seq) {
  return plain ? snprintf(buf, cap, "p%d-%ld", pid, seq) : snprintf(buf, cap, "k%ld", seq % NKEYS);
}

/* Parse and check a record; 0 when it is not one of ours, intact. */
static int check_record(const takhin_message *m, int plain, int *pid, long *seq) {
  char head[64];
  size_t n = m->value_len < sizeof head - 1 ? m->value_len : sizeof head - 1;
  if (!m->value) return 0;
  memcpy(head, m->value, n);
  head[n] = 0;
  if (sscanf(head, "%d:%ld:", pid, seq) != 2 || *pid < 0 || *seq < 0) return 0;
  char want[256];
  if (make_value(want, *pid, *seq) != m->value_len || memcmp(want, m->value, m->value_len))
    return 0;
  char k[64];
  int kl = make_key(k, sizeof k, plain, *pid, *seq);
  return m->key && m->key_len == (size_t)kl && !memcmp(k, m->key, (size_t)kl);
}

/* ---- tailing: shared by the in-process tailers and the read_only process */

typedef struct tail {
  int part; /* index into the partition list above */
  takhin_cursor *c;
  int64_t next; /* offset after the last record read */
  long records, reseeks;
  long bad;      /* records out of order, damaged, or an unexplained gap */
  long errors;   /* calls that failed with anything but END or ERANGE */
  char msg[512]; /* the first problem */
} tail;

/* Count a problem; the first one's message is kept. */
__attribute__((format(printf, 3, 4))) static void note(tail *t, long *counter, const char *fmt,
                                                       ...) {
  (*counter)++;
  if (t->msg[0]) return;
  int n = snprintf(t->msg, sizeof t->msg, "%s-%d: ", part_topic(t->part), part_id(t->part));
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->msg + n, sizeof t->msg - (size_t)n, fmt, ap);
  va_end(ap);
}

/* Read whatever is there; the number of records read, -1 on an error. */
static long tail_pass(takhin_store *s, tail *t) {
  const char *topic = part_topic(t->part);
  int part = part_id(t->part);
  if (!t->c) {
    int rc = takhin_cursor_open(s, topic, part, &t->c);
    if (rc) {
      note(t, &t->errors, "cursor_open: %s", takhin_errmsg());
      return -1;
    }
    t->next = -1;
  }
  long got = 0;
  int erange = 0;
  for (;;) {
    takhin_message m;
    int rc = takhin_cursor_next(t->c, &m);
    if (rc == TAKHIN_END) return got;
    if (rc == TAKHIN_ERANGE && erange++ < 100) {
      /* below the log start: start again there */
      takhin_partition_info pi;
      if ((rc = takhin_partition_info_get(s, topic, part, &pi)) ||
          ((rc = takhin_cursor_seek(t->c, pi.log_start_offset, 0, 0)) && rc != TAKHIN_ERANGE)) {
        note(t, &t->errors, "re-seek after ERANGE: %s", takhin_errmsg());
        return -1;
      }
      t->reseeks++;
      continue;
    }
    if (rc) {
      note(t, &t->errors, "cursor_next after %lld: %s (%s)", (long long)t->next, takhin_errstr(rc),
           takhin_errmsg());
      return -1;
    }
    int pid;
    long seq;
    if (!check_record(&m, is_plain(t->part), &pid, &seq))
      note(t, &t->bad, "damaged record at offset %lld", (long long)m.offset);
    if (t->next >= 0 && m.offset < t->next)
      note(t, &t->bad, "offset %lld after %lld", (long long)m.offset, (long long)t->next);
    if (t->next >= 0 && m.offset > t->next && is_plain(t->part)) {
      /* A plain log has gaps only where records went below the log start. */
      takhin_partition_info pi;
      if (takhin_partition_info_get(s, topic, part, &pi) == TAKHIN_OK &&
          pi.log_start_offset < m.offset)
        note(t, &t->bad, "skipped from %lld to %lld, above the log start %lld", (long long)t->next,
             (long long)m.offset, (long long)pi.log_start_offset);
    }
    t->next = m.offset + 1;
    t->records++;
    got++;
  }
}

/* ---- the writer's threads ------------------------------------------------ */

typedef struct shared {
  takhin_store *s;
  atomic_int stop;
  atomic_long bad;
  atomic_long compacted, retained, deletes; /* what the maintenance threads did */
  char msg[512];
  pthread_mutex_t mu;
} shared;

static void fail(shared *sh, const char *what, int rc) {
  pthread_mutex_lock(&sh->mu);
  if (atomic_fetch_add(&sh->bad, 1) == 0)
    snprintf(sh->msg, sizeof sh->msg, "%s: rc %d: %s", what, rc, takhin_errmsg());
  pthread_mutex_unlock(&sh->mu);
}

typedef struct producer {
  shared *sh;
  int pid, part;
  int64_t *off; /* off[seq]: the offset the record of seq was acknowledged at */
  long n, cap;
} producer;

static void *produce_main(void *arg) {
  producer *pr = arg;
  char keys[4][64], vals[4][256];
  takhin_record recs[4];
  long seq = 0;
  while (!atomic_load(&pr->sh->stop)) {
    int n = 1 + (int)(seq % 4);
    for (int i = 0; i < n; i++) {
      memset(&recs[i], 0, sizeof recs[i]);
      recs[i].key = keys[i];
      recs[i].key_len =
          (size_t)make_key(keys[i], sizeof keys[i], is_plain(pr->part), pr->pid, seq + i);
      recs[i].value = vals[i];
      recs[i].value_len = make_value(vals[i], pr->pid, seq + i);
      recs[i].timestamp = TAKHIN_TIMESTAMP_NOW;
    }
    int64_t first;
    int rc =
        takhin_produce(pr->sh->s, part_topic(pr->part), part_id(pr->part), recs, (size_t)n, &first);
    if (rc) {
      fail(pr->sh, "produce", rc);
      break;
    }
    if (pr->n + n > pr->cap) {
      long cap = pr->cap ? pr->cap * 2 : 4096;
      int64_t *o = realloc(pr->off, (size_t)cap * sizeof *o);
      if (!o) break;
      pr->off = o, pr->cap = cap;
    }
    for (int i = 0; i < n; i++) pr->off[seq + i] = first + i;
    seq += n;
    pr->n = seq;
  }
  return NULL;
}

typedef struct tailer_arg {
  shared *sh;
  tail t;
} tailer_arg;

static void *tail_main(void *arg) {
  tailer_arg *a = arg;
  while (!atomic_load(&a->sh->stop))
    if (tail_pass(a->sh->s, &a->t) < 0) break;
  if (a->t.c) takhin_cursor_close(a->t.c);
  a->t.c = NULL;
  return NULL;
}

static void *lookup_main(void *arg) {
  shared *sh = arg;
  takhin_cursor *c[NCOMPACT];
  for (int p = 0; p < NCOMPACT; p++)
    if (takhin_cursor_open(sh->s, "compact", p, &c[p])) {
      fail(sh, "lookup cursor_open", -1);
      return NULL;
    }
  for (long i = 0; !atomic_load(&sh->stop); i++) {
    char k[32];
    int kl = snprintf(k, sizeof k, "k%ld", (i * 7) % NKEYS);
    takhin_message m;
    int rc = takhin_cursor_get_key(c[i % NCOMPACT], k, (size_t)kl, &m);
    int pid;
    long seq;
    if (rc == TAKHIN_OK && !check_record(&m, 0, &pid, &seq))
      fail(sh, "get_key returned a damaged record", 0);
    else if (rc == TAKHIN_OK && (m.key_len != (size_t)kl || memcmp(m.key, k, (size_t)kl)))
      fail(sh, "get_key returned another key", 0);
    else if (rc && rc != TAKHIN_ENOTFOUND) fail(sh, "get_key", rc);
    if (i % 16 == 15) usleep(1000); /* leave the catalog to the others now and then */
  }
  for (int p = 0; p < NCOMPACT; p++) takhin_cursor_close(c[p]);
  return NULL;
}

static void *compact_main(void *arg) {
  shared *sh = arg;
  for (long i = 0; !atomic_load(&sh->stop); i++) {
    takhin_compaction_result r;
    int rc = takhin_compact(sh->s, "compact", -1, i % 4 == 0, &r);
    if (rc) fail(sh, "takhin_compact", rc);
    else atomic_fetch_add(&sh->compacted, r.segments_compacted);
    usleep(2000);
  }
  return NULL;
}

static void *retention_main(void *arg) {
  shared *sh = arg;
  while (!atomic_load(&sh->stop)) {
    takhin_retention_result r;
    int rc = takhin_retention_apply(sh->s, "plain", -1, &r);
    if (rc) fail(sh, "takhin_retention_apply", rc);
    else atomic_fetch_add(&sh->retained, r.segments_deleted);
    usleep(3000);
  }
  return NULL;
}

static void *maint_main(void *arg) {
  shared *sh = arg;
  while (!atomic_load(&sh->stop)) {
    int rc = takhin_maintenance_run(sh->s, NULL);
    if (rc) fail(sh, "takhin_maintenance_run", rc);
    usleep(5000);
  }
  return NULL;
}

typedef struct deleter {
  shared *sh;
  int first, n; /* the partitions it cuts, in turn */
} deleter;

/* One per topic: on the compacted one DeleteRecords waits for compaction
** runs (the partition's maint_lock), and must not hold up the plain one. */
static void *delete_main(void *arg) {
  deleter *d = arg;
  shared *sh = d->sh;
  for (long i = 0; !atomic_load(&sh->stop); i++) {
    int p = d->first + (int)(i % d->n);
    takhin_partition_info pi;
    int rc = takhin_partition_info_get(sh->s, part_topic(p), part_id(p), &pi);
    if (rc) fail(sh, "partition_info_get", rc);
    /* a quarter of the log off the front (ERANGE when retention has passed
    ** the cut meanwhile) */
    int64_t cut = pi.high_watermark - (pi.high_watermark - pi.log_start_offset) * 3 / 4;
    rc = rc ? rc : takhin_delete_records(sh->s, part_topic(p), part_id(p), cut);
    if (rc && rc != TAKHIN_ERANGE) fail(sh, "takhin_delete_records", rc);
    if (!rc) atomic_fetch_add(&sh->deletes, 1);
    usleep(20000);
  }
  return NULL;
}

/* ---- the read_only process -------------------------------------------------- */

typedef struct child_report {
  int64_t next[NPARTS];
  long records[NPARTS], reseeks;
  long bad, errors, opened;
  char msg[512];
} child_report;

/* Tails every partition until the parent sends the final high watermarks,
** then must reach them. Never returns. */
static void reader_process(const char *db, int rfd, int wfd) {
  child_report rep;
  memset(&rep, 0, sizeof rep);
  char go;
  if (read(rfd, &go, 1) != 1) _exit(3);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  o.max_open_files = 3; /* evicted and reopened by path all the time */
  takhin_store *s;
  int rc = takhin_open(db, &o, &s);
  if (rc) {
    snprintf(rep.msg, sizeof rep.msg, "read_only open: %s", takhin_errmsg());
    rep.errors = 1;
    if (write(wfd, &rep, sizeof rep) != sizeof rep) _exit(4);
    _exit(0);
  }
  rep.opened = 1;
  tail t[NPARTS];
  memset(t, 0, sizeof t);
  for (int i = 0; i < NPARTS; i++) t[i].part = i;
  int64_t final[NPARTS];
  int have_final = 0;
  long idle = 0;
  for (;;) {
    long got = 0;
    int failed = 0;
    for (int i = 0; i < NPARTS; i++) {
      long n = tail_pass(s, &t[i]);
      if (n < 0) failed = 1;
      else got += n;
    }
    if (failed) break; /* an error: reported below; a wedged reader would repeat it */
    if (!have_final) {
      struct pollfd pfd = {.fd = rfd, .events = POLLIN};
      if (poll(&pfd, 1, 0) == 1) {
        if (read(rfd, final, sizeof final) != (ssize_t)sizeof final) _exit(5);
        have_final = 1;
      }
      continue;
    }
    int caught = 1;
    for (int i = 0; i < NPARTS; i++)
      if (t[i].next < final[i] && !(t[i].next < 0 && final[i] == 0)) caught = 0;
    if (caught) break;
    /* Everything is written: a reader that reads nothing more is wedged. */
    if (got == 0 && ++idle > 100) break;
    if (got) idle = 0;
  }
  for (int i = 0; i < NPARTS; i++) {
    rep.next[i] = t[i].next;
    rep.records[i] = t[i].records;
    rep.reseeks += t[i].reseeks;
    rep.bad += t[i].bad;
    rep.errors += t[i].errors;
    if (!rep.msg[0] && t[i].msg[0]) snprintf(rep.msg, sizeof rep.msg, "%s", t[i].msg);
    if (t[i].c) takhin_cursor_close(t[i].c);
  }
  takhin_close(s);
  if (write(wfd, &rep, sizeof rep) != sizeof rep) _exit(4);
  _exit(0);
}

/* ---- checking every acknowledged record ------------------------------------ */

typedef struct slot {
  int pid;
  long seq;
} slot;

static void verify(takhin_store *s, producer *pr, int npr, const char *when) {
  for (int i = 0; i < NPARTS; i++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, part_topic(i), part_id(i), &pi), TAKHIN_OK, "%s",
                 takhin_errmsg());
    int64_t hwm = pi.high_watermark, ls = pi.log_start_offset;
    slot *seen = malloc((size_t)(hwm + 1) * sizeof *seen);
    cr_assert_not_null(seen);
    for (int64_t o = 0; o <= hwm; o++) seen[o].pid = -1;
    takhin_cursor *c;
    cr_assert_eq(takhin_cursor_open(s, part_topic(i), part_id(i), &c), TAKHIN_OK);
    takhin_message m;
    int rc;
    int64_t last = -1;
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      int pid;
      long seq;
      cr_assert(check_record(&m, is_plain(i), &pid, &seq), "%s: %s-%d: damaged record at %lld",
                when, part_topic(i), part_id(i), (long long)m.offset);
      cr_assert_gt(m.offset, last, "%s: %s-%d: offset %lld after %lld", when, part_topic(i),
                   part_id(i), (long long)m.offset, (long long)last);
      cr_assert(m.offset >= ls && m.offset < hwm);
      cr_assert(pid < npr && pr[pid].part == i && seq < pr[pid].n && pr[pid].off[seq] == m.offset,
                "%s: %s-%d: offset %lld holds producer %d's record %ld, never acknowledged there",
                when, part_topic(i), part_id(i), (long long)m.offset, pid, seq);
      seen[m.offset] = (slot){pid, seq};
      last = m.offset;
    }
    cr_assert_eq(rc, TAKHIN_END, "%s: %s-%d: reading: %s", when, part_topic(i), part_id(i),
                 takhin_errmsg());
    takhin_cursor_close(c);
    /* every acknowledged record at or past the log start is there */
    int64_t latest[NKEYS];
    for (int k = 0; k < NKEYS; k++) latest[k] = -1;
    long acked = 0;
    for (int p = 0; p < npr; p++) {
      if (pr[p].part != i) continue;
      for (long q = 0; q < pr[p].n; q++) {
        int64_t o = pr[p].off[q];
        cr_assert(o < hwm, "%s: acknowledged offset %lld past the high watermark %lld", when,
                  (long long)o, (long long)hwm);
        acked++;
        if (!is_plain(i)) {
          if (o > latest[q % NKEYS]) latest[q % NKEYS] = o;
          continue;
        }
        if (o < ls) continue;
        cr_assert(
            seen[o].pid == p && seen[o].seq == q,
            "%s: %s-%d: producer %d's record %ld, acknowledged at %lld, is missing (log start %lld)",
            when, part_topic(i), part_id(i), p, q, (long long)o, (long long)ls);
      }
    }
    cr_assert_eq(acked, hwm, "%s: %s-%d: %ld acknowledged, high watermark %lld", when,
                 part_topic(i), part_id(i), acked, (long long)hwm);
    if (is_plain(i))
      for (int64_t o = ls; o < hwm; o++)
        cr_assert_neq(seen[o].pid, -1, "%s: plain-%d: offset %lld missing", when, part_id(i),
                      (long long)o);
    for (int k = 0; k < NKEYS; k++)
      if (latest[k] >= ls)
        cr_assert_neq(seen[latest[k]].pid, -1,
                      "%s: compact-%d: key k%d's latest record (%lld) is gone", when, part_id(i), k,
                      (long long)latest[k]);
    free(seen);
  }
}

/* A crash names its signal and where it happened before the process dies
** (SIGBUS is what a mapping read past its file's end raises). */
static int crash_fd = 2;
static void on_crash(int sig) {
  char line[64];
  int n = snprintf(line, sizeof line, "\nprocess %d: signal %d (%s)\n", (int)getpid(), sig,
                   strsignal(sig));
  if (write(crash_fd, line, (size_t)n) < 0) { /* nothing to do */
  }
  void *bt[32];
  backtrace_symbols_fd(bt, backtrace(bt, 32), crash_fd);
  signal(sig, SIG_DFL);
  raise(sig);
}

Test(stress, mixed_workload_with_read_only_process, .timeout = 600) {
  signal(SIGBUS, on_crash);
  signal(SIGSEGV, on_crash);
  signal(SIGABRT, on_crash);
  signal(SIGPIPE, SIG_IGN); /* a dead reader process must fail the test, not kill it */
  const char *path = tu_store_path("stress_mixed");
  char db[4096];
  snprintf(db, sizeof db, "%s", path);
  char crash_path[4200];
  snprintf(crash_path, sizeof crash_path, "%s.crash", db);
  crash_fd = open(crash_path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  if (crash_fd < 0) crash_fd = 2;
  takhin_options o;
  takhin_options_init(&o);
  o.max_open_files = 8; /* evictions: segments are reopened by path */
  takhin_store *s;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "plain", NPLAIN,
                                   (const char *const[]){"segment_bytes", "20000",
                                                         "retention_bytes", "200000", NULL}),
               TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(
      takhin_topic_create(s, "compact", NCOMPACT,
                          (const char *const[]){"cleanup_policy", "compact", "segment_bytes",
                                                "8000", "min_cleanable_dirty_ratio", "0.01", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
  /* The reader process is forked while this one has no thread (TSan
  ** supports no other fork); it opens the store when told to. */
  int to_child[2], to_parent[2];
  cr_assert_eq(pipe(to_child), 0);
  cr_assert_eq(pipe(to_parent), 0);
  fflush(NULL);
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    reader_process(db, to_child[0], to_parent[1]);
  }
  close(to_child[0]);
  close(to_parent[1]);
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(write(to_child[1], "g", 1), 1);

  shared sh = {.s = s};
  pthread_mutex_init(&sh.mu, NULL);
  /* producers: two on plain-0, one on each other partition */
  enum { NPR = 6 };
  static const int prod_part[NPR] = {0, 0, 1, 2, 3, 4};
  producer pr[NPR];
  memset(pr, 0, sizeof pr);
  tailer_arg ta[NPARTS];
  memset(ta, 0, sizeof ta);
  pthread_t th[NPR + NPARTS + 6];
  int nth = 0;
  for (int i = 0; i < NPR; i++) {
    pr[i] = (producer){.sh = &sh, .pid = i, .part = prod_part[i]};
    pthread_create(&th[nth++], NULL, produce_main, &pr[i]);
  }
  for (int i = 0; i < NPARTS; i++) {
    ta[i].sh = &sh;
    ta[i].t.part = i;
    pthread_create(&th[nth++], NULL, tail_main, &ta[i]);
  }
  pthread_create(&th[nth++], NULL, lookup_main, &sh);
  pthread_create(&th[nth++], NULL, compact_main, &sh);
  pthread_create(&th[nth++], NULL, retention_main, &sh);
  pthread_create(&th[nth++], NULL, maint_main, &sh);
  deleter del[2] = {{&sh, 0, NPLAIN}, {&sh, NPLAIN, NCOMPACT}};
  pthread_create(&th[nth++], NULL, delete_main, &del[0]);
  pthread_create(&th[nth++], NULL, delete_main, &del[1]);
  int64_t end = tu_now_ms() + 1000LL * stress_seconds();
  while (tu_now_ms() < end && !atomic_load(&sh.bad)) usleep(50000);
  atomic_store(&sh.stop, 1);
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);

  /* the read_only process must now catch up with the final state */
  int64_t final[NPARTS];
  for (int i = 0; i < NPARTS; i++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, part_topic(i), part_id(i), &pi), TAKHIN_OK);
    final[i] = pi.high_watermark;
  }
  /* (a reader that stopped early has written its report already; a dead
  ** one is reported by waitpid below) */
  if (write(to_child[1], final, sizeof final) != (ssize_t)sizeof final) { /* see its report */
  }
  child_report rep;
  ssize_t got = read(to_parent[0], &rep, sizeof rep);
  int st = 0;
  waitpid(child, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the read_only process died: %s %d",
            WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  cr_assert_eq(got, (ssize_t)sizeof rep, "no report from the read_only process (%zd: %s)", got,
               strerror(errno));

  cr_assert_eq(atomic_load(&sh.bad), 0, "writer process: %ld problems, first: %s",
               atomic_load(&sh.bad), sh.msg);
  for (int i = 0; i < NPARTS; i++) {
    cr_assert_eq(ta[i].t.errors + ta[i].t.bad, 0, "in-process tailer: %s", ta[i].t.msg);
    cr_assert_gt(ta[i].t.records, 0, "in-process tailer of %s-%d read nothing", part_topic(i),
                 part_id(i));
  }
  cr_assert_eq(rep.errors + rep.bad, 0, "read_only process: %ld errors, %ld bad records; first: %s",
               rep.errors, rep.bad, rep.msg);
  for (int i = 0; i < NPARTS; i++)
    cr_assert(rep.next[i] == final[i] || (final[i] == 0 && rep.next[i] < 0),
              "read_only process is stuck on %s-%d at %lld, the writer's high watermark is %lld",
              part_topic(i), part_id(i), (long long)rep.next[i], (long long) final[i]);

  long produced = 0, tailed = 0, ro_read = 0;
  for (int i = 0; i < NPR; i++) produced += pr[i].n;
  for (int i = 0; i < NPARTS; i++) tailed += ta[i].t.records, ro_read += rep.records[i];
  fprintf(
      stderr,
      "stress: %ds: %ld records acknowledged, %ld segments compacted, %ld deleted by retention, "
      "%ld DeleteRecords; tailers read %ld, the read_only process %ld (%ld re-seeks after ERANGE)\n",
      stress_seconds(), produced, atomic_load(&sh.compacted), atomic_load(&sh.retained),
      atomic_load(&sh.deletes), tailed, ro_read, rep.reseeks);
  verify(s, pr, NPR, "writer after the run");
  takhin_close(s);
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  verify(s, pr, NPR, "after reopening");
  takhin_close(s);
  for (int i = 0; i < NPR; i++) free(pr[i].off);
  pthread_mutex_destroy(&sh.mu);
  close(to_child[1]);
  close(to_parent[0]);
}

/* ---- the same races, made deterministic, on a read_only handle ---------- */

/* A read_only handle in this process whose file handles are all evicted
** (budget 1), so every segment is reopened by path when it is next read. */
static takhin_store *open_reader(const char *db) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  o.max_open_files = 1;
  takhin_store *r;
  cr_assert_eq(takhin_open(db, &o, &r), TAKHIN_OK, "%s", takhin_errmsg());
  return r;
}

static void produce_keys(takhin_store *w, const char *topic, long from, long n, int nkeys) {
  for (long i = from; i < from + n; i++) {
    char k[32], v[256];
    takhin_record r;
    tu_make_record(&r, k, sizeof k, v, 100, i);
    if (nkeys) r.key_len = (size_t)snprintf(k, sizeof k, "k%ld", i % nkeys);
    cr_assert_eq(takhin_produce(w, topic, 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  }
}

Test(stress, read_only_cursor_on_a_deleted_segment_moves_to_the_log_start) {
  const char *db = tu_store_path("stress_ro_deleted");
  takhin_store *w;
  cr_assert_eq(takhin_open(db, NULL, &w), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(w, "t", 1, (const char *const[]){"segment_bytes", "1000", NULL}),
               TAKHIN_OK);
  produce_keys(w, "t", 0, 60, 0);
  takhin_store *r = open_reader(db);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(r, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK);
  /* the reader's view still has segment 0; the writer deletes it */
  takhin_segment_info *segs;
  size_t ns;
  cr_assert_eq(takhin_segments_list(w, "t", 0, &segs, &ns), TAKHIN_OK);
  cr_assert_gt(ns, 3);
  int64_t cut = segs[2].base_offset + 1; /* inside segment 2 */
  takhin_free(segs);
  cr_assert_eq(takhin_delete_records(w, "t", 0, cut), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_message m;
  int rc = takhin_cursor_next(c, &m);
  cr_assert_eq(rc, TAKHIN_OK, "reading on past a deleted segment: %s", takhin_errmsg());
  cr_assert_eq(m.offset, cut, "the cursor goes on at the new log start");
  cr_assert(tu_value_ok(m.value, m.value_len, 100, m.offset));
  long n = 1;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_eq(m.offset, cut + n, "dense after the log start");
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(cut + n, 60);
  cr_assert_eq(takhin_cursor_get(c, 0, &m), TAKHIN_ERANGE, "below the log start: %s",
               takhin_errmsg());
  takhin_cursor_close(c);
  takhin_close(r);
  takhin_close(w);
}

Test(stress, read_only_cursor_on_a_compacted_segment_reads_its_replacement) {
  const char *db = tu_store_path("stress_ro_compacted");
  takhin_store *w;
  cr_assert_eq(takhin_open(db, NULL, &w), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(w, "c", 1,
                                   (const char *const[]){"cleanup_policy", "compact",
                                                         "segment_bytes", "1000", NULL}),
               TAKHIN_OK);
  produce_keys(w, "c", 0, 80, 4); /* four keys: old segments empty out */
  takhin_store *r = open_reader(db);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(r, "c", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK);
  /* the reader still holds the old segments (files closed, not mapped);
  ** compaction renames smaller, some empty, files over them */
  takhin_compaction_result res;
  cr_assert_eq(takhin_compact(w, "c", 0, 1, &res), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(res.segments_compacted, 1);
  /* what the writer reads now, the reader must read: no SIGBUS, no error */
  takhin_cursor *wc;
  cr_assert_eq(takhin_cursor_open(w, "c", 0, &wc), TAKHIN_OK);
  takhin_message m, wm;
  int rc, wrc;
  long n = 0;
  for (;;) {
    rc = takhin_cursor_next(c, &m);
    wrc = takhin_cursor_next(wc, &wm);
    cr_assert_eq(rc, wrc, "record %ld: reader %d, writer %d: %s", n, rc, wrc, takhin_errmsg());
    if (rc) break;
    cr_assert_eq(m.offset, wm.offset, "record %ld", n);
    cr_assert(tu_value_ok(m.value, m.value_len, 100, m.offset));
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_lt(n, 80, "compaction removed records");
  takhin_cursor_close(wc);
  takhin_cursor_close(c);
  takhin_close(r);
  takhin_close(w);
}

/* SIGBUS impossible by construction in a read_only process: the writer
** process may cut its active segment's file below what such a reader has
** already validated there (a BUFFERED write that failed after some of its
** batches reached the file is cut back, write_out; a writer's reopen cuts
** a tail its recovery rejects). A reader that then reads those offsets must
** get an error, never a fault on a mapped page past the file's end. Run in
** a child, which a SIGBUS would kill. */
Test(stress, read_only_reader_survives_the_active_segment_cut_under_it) {
  pid_t pid = fork();
  if (pid == 0) {
    const char *db = tu_store_path("stress_ro_cut");
    takhin_store *w;
    if (takhin_open(db, NULL, &w)) _exit(2);
    if (takhin_topic_create(w, "t", 1, NULL)) _exit(2);
    for (long i = 0; i < 400; i++) {
      char k[32], v[256];
      takhin_record r;
      tu_make_record(&r, k, sizeof k, v, 100, i);
      if (takhin_produce(w, "t", 0, &r, 1, NULL)) _exit(2);
    }
    takhin_options o;
    takhin_options_init(&o);
    o.read_only = 1;
    takhin_store *ro;
    if (takhin_open(db, &o, &ro)) _exit(2);
    takhin_cursor *c;
    takhin_message m;
    if (takhin_cursor_open(ro, "t", 0, &c)) _exit(2);
    long n = 0;
    while (takhin_cursor_next(c, &m) == TAKHIN_OK) n++;
    if (n != 400) _exit(4);
    char seg[4300];
    tu_segment_path(seg, sizeof seg, db, "t", 0, 0);
    if (truncate(seg, 4096) != 0) _exit(2);
    if (takhin_cursor_seek(c, 350, 0, 0)) _exit(5);
    int rc = takhin_cursor_next(c, &m);
    _exit(rc == TAKHIN_OK ? 6 : 0); /* an error names the short file */
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(!WIFSIGNALED(st), "the reader was killed by signal %d",
            WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
}
