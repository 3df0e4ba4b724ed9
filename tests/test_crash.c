/*
** test_crash.c -- kill a writer process with SIGKILL at random moments while it
** appends, then check that every record it was told is stored survives.
**
** Each round forks a child that opens the store (the round's durability mode),
** reports the high watermark it found, and appends records forever: single
** records, small batches and the odd multi-page batch, each record's content
** derived from its offset. After takhin_produce returns OK (and only then) the
** child writes (first offset, count) to a pipe: that is the acknowledgement.
** The parent kills the child after a pseudo-random 5-50 ms, drains the pipe,
** reaps the child, and reopens the store: every acknowledged record must be
** there and intact, and offsets must be dense from 0 to the high watermark.
** The next round's child continues on the same store, so recovery of a
** killed writer is exercised both by the parent's verifying open (even
** rounds open as a writer and repair) and by the next child (odd rounds
** verify through a read-only handle, leaving the repair to the child).
**
** The delays come from a fixed seed, printed, so a failure can be replayed:
** TAKHIN_CRASH_SEED=<n> overrides it. The child uses no Criterion asserts
** (it is a forked process): it reports trouble through its exit code.
*/
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define TOPIC "c"
#define TS0 1700000000000LL
#define MAX_BATCH 256
#define VMAX 64

/* Child exit codes, so a failure in the child is named in the parent. */
enum { CX_OPEN = 10, CX_INFO, CX_PRODUCE, CX_OFFSET, CX_PIPE, CX_ALLOC };

static const char *child_exit_name(int code) {
  switch (code) {
  case CX_OPEN: return "takhin_open failed";
  case CX_INFO: return "partition info failed";
  case CX_PRODUCE: return "takhin_produce failed";
  case CX_OFFSET: return "produce returned an unexpected offset";
  case CX_PIPE: return "writing the pipe failed";
  case CX_ALLOC: return "out of memory";
  default: return "unknown";
  }
}

static size_t vlen_of(int64_t o) { return (size_t)(4 + (o * 7) % 53); }

/* xorshift64*: reproducible from the printed seed on any libc. */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

/* One pipe message: an acknowledged batch, or (first = -1) the hello that
** carries the high watermark the child's open found. */
typedef struct ack {
  int64_t first, count;
} ack;

/* How many records the next produce call carries: mostly one or a few;
** now and then a batch spanning several pages, so that a kill can land in
** the middle of one write(). */
static int batch_size(uint64_t *rs) {
  uint64_t r = rnd(rs) % 100;
  if (r < 50) return 1;
  if (r < 97) return 2 + (int)(rnd(rs) % 15);
  return 64 + (int)(rnd(rs) % (MAX_BATCH - 63));
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The child: append until killed. Never returns. */
static void child_main(const char *db, int durability, int wfd, uint64_t seed) {
  /* Die with the test process, and never outlive a parent that got stuck. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(30);
  takhin_options o;
  takhin_options_init(&o);
  o.durability = durability;
  takhin_store *s = NULL;
  if (takhin_open(db, &o, &s) != TAKHIN_OK) _exit(CX_OPEN);
  takhin_partition_info pi;
  if (takhin_partition_info_get(s, TOPIC, 0, &pi) != TAKHIN_OK) _exit(CX_INFO);
  int64_t next = pi.high_watermark;
  ack hello = {-1, next};
  if (write_all(wfd, &hello, sizeof hello)) _exit(CX_PIPE);
  takhin_record *r = calloc(MAX_BATCH, sizeof *r);
  char(*k)[32] = calloc(MAX_BATCH, 32);
  char(*v)[VMAX] = calloc(MAX_BATCH, VMAX);
  if (!r || !k || !v) _exit(CX_ALLOC);
  uint64_t rs = seed;
  for (;;) {
    int n = batch_size(&rs);
    for (int j = 0; j < n; j++)
      tu_make_record(&r[j], k[j], sizeof k[j], v[j], vlen_of(next + j), (long)(next + j));
    int64_t first = -1;
    if (takhin_produce(s, TOPIC, 0, r, (size_t)n, &first) != TAKHIN_OK) _exit(CX_PRODUCE);
    if (first != next) _exit(CX_OFFSET);
    /* Acknowledged only now that produce returned. */
    ack a = {first, n};
    if (write_all(wfd, &a, sizeof a)) _exit(CX_PIPE);
    next += n;
  }
}

/* Growable list of the acknowledgements of one round. */
typedef struct acks {
  ack *v;
  size_t n, cap;
  int64_t hello; /* the child's high watermark at open; -1 if none came */
  char carry[sizeof(ack)];
  size_t ncarry;
} acks;

static void acks_feed(acks *a, const char *buf, size_t len) {
  while (len) {
    size_t take = sizeof(ack) - a->ncarry < len ? sizeof(ack) - a->ncarry : len;
    memcpy(a->carry + a->ncarry, buf, take);
    a->ncarry += take;
    buf += take;
    len -= take;
    if (a->ncarry < sizeof(ack)) break;
    ack m;
    memcpy(&m, a->carry, sizeof m);
    a->ncarry = 0;
    if (m.first < 0) {
      a->hello = m.count;
      continue;
    }
    if (a->n == a->cap) {
      a->cap = a->cap ? a->cap * 2 : 1024;
      a->v = realloc(a->v, a->cap * sizeof *a->v);
      if (!a->v) abort();
    }
    a->v[a->n++] = m;
  }
}

/* Read what is in the pipe, waiting at most ms: 0 at EOF (or error), 1 after
** reading, 2 when nothing came in time. */
static int drain(int fd, acks *a, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, ms < 0 ? 0 : ms);
  if (r < 0) return errno == EINTR ? 2 : 0;
  if (r == 0) return 2;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR ? 1 : 0;
  if (n == 0) return 0;
  acks_feed(a, buf, (size_t)n);
  return 1;
}

typedef struct crash_cfg {
  const char *name;
  int durability;
  const char *segment_bytes; /* NULL: the default */
  int rounds;
} crash_cfg;

/* The record at offset o carries the content the child made for o. */
static int intact(const takhin_message *m, int64_t o) {
  char key[32];
  int kl = snprintf(key, sizeof key, "k%" PRId64, o);
  return m->offset == o && m->key_len == (size_t)kl && memcmp(m->key, key, (size_t)kl) == 0 &&
         tu_value_ok(m->value, m->value_len, vlen_of(o), (long)o) && m->timestamp == TS0 + o;
}

/* Open the store (read-only or as a writer), check the acknowledgements of
** the last round, every record from `from` on and a sample of those below;
** returns the high watermark. */
static int64_t verify(const char *db, int read_only, int64_t from, const acks *a,
                      int64_t child_start, int round, takhin_recovery_info *ri) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = read_only;
  takhin_store *s = NULL;
  int rc = takhin_open(db, &o, &s);
  cr_assert_eq(rc, TAKHIN_OK, "round %d: %s open after the kill: %s: %s", round,
               read_only ? "read-only" : "writer", takhin_errstr(rc), takhin_errmsg());
  cr_assert_eq(takhin_recovery(s, ri), TAKHIN_OK);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t hwm = pi.high_watermark;
  cr_assert_eq(pi.log_start_offset, 0, "round %d", round);
  /* Acknowledgements are dense from where the child started ... */
  int64_t expect = child_start;
  for (size_t i = 0; i < a->n; i++) {
    cr_assert_eq(a->v[i].first, expect, "round %d: ack %zu at %" PRId64 ", want %" PRId64, round, i,
                 a->v[i].first, expect);
    expect += a->v[i].count;
  }
  /* ... and all of them survived the kill. */
  cr_assert_geq(hwm, expect,
                "round %d: high watermark %" PRId64 " but offsets up to %" PRId64
                " were acknowledged",
                round, hwm, expect);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  /* Below `from` (read in full on other rounds), a sample by random access. */
  uint64_t rs = (uint64_t)round * 0x9e3779b97f4a7c15ULL + 1;
  for (int i = 0; from > 0 && i < 64; i++) {
    int64_t at = (int64_t)(rnd(&rs) % (uint64_t)from);
    rc = takhin_cursor_get(c, at, &m);
    cr_assert_eq(rc, TAKHIN_OK, "round %d: get %" PRId64 ": %s", round, at, takhin_errmsg());
    cr_assert(intact(&m, at), "round %d: record %" PRId64 " is not intact", round, at);
  }
  cr_assert_eq(takhin_cursor_seek(c, from, 0, 0), TAKHIN_OK, "round %d: seek %" PRId64 ": %s",
               round, from, takhin_errmsg());
  int64_t o2 = from;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_eq(m.offset, o2, "round %d: offset %" PRId64 " where %" PRId64 " belongs", round,
                 m.offset, o2);
    cr_assert(intact(&m, o2), "round %d: record %" PRId64 " is not intact", round, o2);
    o2++;
  }
  cr_assert_eq(rc, TAKHIN_END, "round %d: read stopped at %" PRId64 ": %s: %s", round, o2,
               takhin_errstr(rc), takhin_errmsg());
  cr_assert_eq(o2, hwm, "round %d: read up to %" PRId64 ", high watermark %" PRId64, round, o2,
               hwm);
  takhin_cursor_close(c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  return hwm;
}

static void run_crash(const crash_cfg *cfg) {
  uint64_t seed = 0x7a6b1e5eedULL;
  const char *env = getenv("TAKHIN_CRASH_SEED");
  if (env && *env) seed = strtoull(env, NULL, 0);
  fprintf(stderr, "[crash %s] seed %" PRIu64 " (TAKHIN_CRASH_SEED to replay)\n", cfg->name, seed);
  uint64_t rs = seed ? seed : 1;

  const char *db0 = tu_store_path(cfg->name);
  char db[1024];
  snprintf(db, sizeof db, "%s", db0);
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  const char *topic_cfg[] = {"segment_bytes", cfg->segment_bytes, NULL};
  cr_assert_eq(takhin_topic_create(s, TOPIC, 1, cfg->segment_bytes ? topic_cfg : NULL), TAKHIN_OK,
               "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);

  int64_t verified = 0;  /* high watermark the last verification saw */
  int64_t recovered = 0; /* batches writer opens found past the catalog */
  int64_t torn = 0;      /* bytes writer opens cut */
  int64_t total_acks = 0;
  for (int round = 0; round < cfg->rounds; round++) {
    int delay = 5 + (int)(rnd(&rs) % 46);
    uint64_t child_seed = rnd(&rs) | 1;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL); /* nothing buffered gets written twice */
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
      close(fds[0]);
      child_main(db, cfg->durability, fds[1], child_seed);
      _exit(1);
    }
    close(fds[1]);
    /* No assert until the child is reaped: a failing assert must not leave
    ** it running. Wait for its hello (open done), then let it append for
    ** the delay, draining acknowledgements so the pipe never fills. */
    acks a = {.hello = -1};
    int alive = 1;
    int64_t t0 = tu_now_ms();
    while (alive && a.hello < 0 && tu_now_ms() - t0 < 10000) alive = drain(fds[0], &a, 100);
    int64_t deadline = tu_now_ms() + delay;
    while (alive && a.hello >= 0 && tu_now_ms() < deadline)
      alive = drain(fds[0], &a, (int)(deadline - tu_now_ms()));
    kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    /* To EOF: the only write end died with the child. */
    while (drain(fds[0], &a, 1000) == 1) {}
    close(fds[0]);

    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "round %d: the child ended on its own: %s %d (%s)", round,
              WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
              WIFEXITED(st) ? child_exit_name(WEXITSTATUS(st)) : strsignal(WTERMSIG(st)));
    cr_assert_geq(a.hello, 0, "round %d: the child never finished opening the store", round);
    cr_assert_eq(a.hello, verified,
                 "round %d: the child's open found high watermark %" PRId64
                 ", the last verification saw %" PRId64,
                 round, a.hello, verified);
    cr_assert_eq(a.ncarry, 0, "round %d: a torn pipe message", round);
    total_acks += (int64_t)a.n;

    /* Writer opens repair the store; read-only ones leave that to the next
    ** child. Read the whole log now and then and at the end; else from a
    ** little before the previous end (where a wrong repair would write) and
    ** a random sample of the older records. */
    int read_only = round % 2;
    int full = round % 8 == 7 || round == cfg->rounds - 1;
    int64_t from = full || verified < 5000 ? 0 : verified - 5000;
    takhin_recovery_info ri;
    verified = verify(db, read_only, from, &a, a.hello, round, &ri);
    if (!read_only) recovered += ri.batches_recovered, torn += ri.bytes_truncated;
    free(a.v);
  }
  fprintf(stderr,
          "[crash %s] %d rounds, %" PRId64 " acknowledged produce calls, %" PRId64
          " records at the end; writer opens recovered %" PRId64
          " batches past the catalog and cut %" PRId64 " torn bytes\n",
          cfg->name, cfg->rounds, total_acks, verified, recovered, torn);
  cr_assert_gt(total_acks, cfg->rounds, "the children did append");
  cr_assert_gt(recovered, 0,
               "the kills left batches the catalog had not seen: recovery was exercised");
  /* A last open as a writer and a clean close: the store is healthy. */
  takhin_recovery_info ri;
  acks none = {.hello = verified};
  int64_t end = verify(db, 0, 0, &none, verified, cfg->rounds, &ri);
  cr_assert_eq(end, verified);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", db);
  *strrchr(dir, '/') = 0;
  tu_rmtree(dir); /* tens of MB: do not leave them behind on success */
}

Test(crash, kill_os_durability, .timeout = 240) {
  crash_cfg c = {"crash_os", TAKHIN_DURABILITY_OS, NULL, 40};
  run_crash(&c);
}

/* Small segments: many kills land around a roll (new file, catalog rows for
** the sealed and the new segment). */
Test(crash, kill_os_small_segments, .timeout = 240) {
  crash_cfg c = {"crash_roll", TAKHIN_DURABILITY_OS, "65536", 30};
  run_crash(&c);
}

Test(crash, kill_fsync_durability, .timeout = 240) {
  crash_cfg c = {"crash_fsync", TAKHIN_DURABILITY_FSYNC, "65536", 10};
  run_crash(&c);
}
