/*
** bench_fetch.c -- the fetch benchmarks, one partition, one reader.
**
**   SequentialFetch  one op = reading all `messages` records from offset 0 in
**                    fetches of `fetch` records (a consumer catching up)
**   RandomFetch      one op = one record at a random offset of a log of
**                    `messages` records (offsets drawn before timing)
**   TailFetch        one op = the last `tail` records of a `messages`-record
**                    log ("the latest N"); costs the same at any log length
**   FetchLatency     one op = one record at a random offset of a 1000-record
**                    log read once before timing, so reads are cached; every
**                    read is timed into a histogram
** With -cold, SequentialFetch and RandomFetch close the store, sync and drop
** its files from the page cache and reopen it before every timed run
** (FetchLatency is the plan's "cached reads" and stays warm).
** Setup pre-fills the log and flushes it; none of that is timed. The pre-fill
** goes in batches of about 16 KiB (Kafka's default producer batch.size; at
** most 100 records): a single-record read on the api path verifies the CRC of
** the whole batch holding the record, so the batch size is part of what a
** fetch benchmark measures and is fixed here rather than left to chance. Every record read is counted and its bytes touched (bp_sink), and
** finish checks that exactly the expected records and bytes came back.
** The mmap path (path_mmap.c) walks the api path's very bytes through a
** mapping with the same CRC check and record decoding: api/mmap is what
** takhin's cursor costs over the mapped bytes (api/file compares with a
** pread copy of a smaller framing, and is above 1x for every fetch case).
*/
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define RANDOM_OFFSETS 65536 /* power of two: the index is masked */
#define LATENCY_LOG 1000

typedef struct fetch_state {
  const bench_path *path;
  bp_config cfg;
  bp_store *st;
  bp_reader *rd;
  payload_pool pool;
  int64_t messages, fetch;
  int64_t *offs;
  uint64_t next;
  bp_sink sink;
  hist h;
} fetch_state;

static int fetch_open(fetch_state *s, const bench_env *env, int64_t messages, size_t size,
                      int64_t fetch) {
  s->path = env->path;
  s->messages = messages;
  s->fetch = fetch;
  if (payload_pool_init(&s->pool, size, prefill_batch(size), env->seed) != 0) return -1;
  s->cfg = (bp_config){.dir = env->dir, .durability = env->durability, .partitions = 1};
  if (env->path->open(&s->cfg, &s->st) != 0) return -1;
  if (prefill(env->path, s->st, 0, &s->pool, messages) != 0) return -1;
  if (env->path->reader_open(s->st, 0, &s->rd) != 0) return -1;
  s->offs = malloc(RANDOM_OFFSETS * sizeof *s->offs);
  if (!s->offs) {
    bench_errorf("out of memory");
    return -1;
  }
  uint64_t seed = env->seed ^ 0x5eedull;
  for (int i = 0; i < RANDOM_OFFSETS; i++)
    s->offs[i] = (int64_t)(rng_next(&seed) % (uint64_t)messages);
  return 0;
}

static void fetch_teardown(void *v) {
  fetch_state *s = v;
  if (s->rd) s->path->reader_close(s->rd);
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
  free(s->offs);
}

/* -cold: what a consumer restarted on a machine whose page cache lost the
** log would see. Closing first matters: the api path maps its segments, and
** mapped pages survive POSIX_FADV_DONTNEED. */
static int fetch_cold(void *v) {
  fetch_state *s = v;
  if (!s->path->reopens) return bench_drop_cache(s->cfg.dir);
  s->path->reader_close(s->rd);
  s->rd = NULL;
  int rc = s->path->close(s->st);
  s->st = NULL;
  if (rc != 0 || bench_drop_cache(s->cfg.dir) != 0) return -1;
  s->cfg.existing = 1;
  if (s->path->open(&s->cfg, &s->st) != 0) return -1;
  return s->path->reader_open(s->st, 0, &s->rd);
}

static int fetch_prepare(void *v, int64_t n) {
  fetch_state *s = v;
  (void)n;
  memset(&s->sink, 0, sizeof s->sink);
  hist_reset(&s->h);
  return 0;
}

/* Figures per op, and the check that every read returned what was written. */
static int fetch_check(fetch_state *s, int64_t n, int64_t msgs_per_op, bench_result *r) {
  uint64_t want = (uint64_t)(n * msgs_per_op);
  if (s->sink.msgs != want || s->sink.bytes != want * s->pool.size) {
    bench_errorf("read %llu records / %llu bytes, expected %llu / %llu",
                 (unsigned long long)s->sink.msgs, (unsigned long long)s->sink.bytes,
                 (unsigned long long)want, (unsigned long long)(want * s->pool.size));
    return -1;
  }
  r->msgs_per_op = (double)msgs_per_op;
  r->payload_bytes_per_op = (double)msgs_per_op * (double)s->pool.size;
  return 0;
}

/* ---- SequentialFetch ----------------------------------------------------- */
static int seq_setup(void *v, const bench_env *env) {
  return fetch_open(v, env, env->p[0], (size_t)env->p[1], env->p[2]);
}

static int seq_run(void *v, int64_t n) {
  fetch_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    for (int64_t o = 0; o < s->messages; o += s->fetch) {
      int64_t k = s->messages - o < s->fetch ? s->messages - o : s->fetch;
      if (s->path->read_range(s->rd, o, k, &s->sink) != 0) return -1;
    }
  }
  return 0;
}

static int seq_finish(void *v, int64_t n, bench_result *r) {
  fetch_state *s = v;
  return fetch_check(s, n, s->messages, r);
}

const bench_def bench_sequential_fetch = {
    .name = "SequentialFetch",
    .what = "read a whole log front to back in fetches of `fetch` records; op = the whole log",
    .paths = PATHS_READ | PATH_BIT_KAFKA,
    .naxes = 3,
    .axes = {{"messages", "", NULL, {{1, {100}}, {1, {1000}}, {3, {100, 1000, 10000}}}},
             {"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}},
             {"fetch", "", NULL, {{1, {10}}, {3, {1, 10, 100}}, {3, {1, 10, 100}}}}},
    .state_size = sizeof(fetch_state),
    .setup = seq_setup,
    .prepare = fetch_prepare,
    .run = seq_run,
    .finish = seq_finish,
    .teardown = fetch_teardown,
    .cold = fetch_cold,
};

/* ---- RandomFetch --------------------------------------------------------- */
static int random_setup(void *v, const bench_env *env) {
  return fetch_open(v, env, env->p[0], (size_t)env->p[1], 1);
}

static int random_run(void *v, int64_t n) {
  fetch_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    if (s->path->read_one(s->rd, s->offs[s->next++ & (RANDOM_OFFSETS - 1)], &s->sink) != 0)
      return -1;
  }
  return 0;
}

static int one_finish(void *v, int64_t n, bench_result *r) { return fetch_check(v, n, 1, r); }

const bench_def bench_random_fetch = {
    .name = "RandomFetch",
    .what = "one record at a random offset of a `messages`-record log per op",
    .paths = PATHS_READ,
    .naxes = 2,
    .axes = {{"messages", "", NULL, {{1, {100}}, {1, {10000}}, {3, {1000, 10000, 100000}}}},
             {"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(fetch_state),
    .setup = random_setup,
    .prepare = fetch_prepare,
    .run = random_run,
    .finish = one_finish,
    .teardown = fetch_teardown,
    .cold = fetch_cold,
};

/* ---- FetchLatency -------------------------------------------------------- */
static int latency_setup(void *v, const bench_env *env) {
  fetch_state *s = v;
  if (fetch_open(s, env, LATENCY_LOG, (size_t)env->p[0], 1) != 0) return -1;
  /* One full pass first: "cached reads" means page cache and any reader
  ** cache are warm before the clock starts. */
  bp_sink warm = {0};
  return s->path->read_range(s->rd, 0, LATENCY_LOG, &warm);
}

static int latency_run(void *v, int64_t n) {
  fetch_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    int64_t o = s->offs[s->next++ & (RANDOM_OFFSETS - 1)];
    uint64_t t0 = now_ns();
    if (s->path->read_one(s->rd, o, &s->sink) != 0) return -1;
    hist_record(&s->h, now_ns() - t0);
  }
  return 0;
}

static int latency_finish(void *v, int64_t n, bench_result *r) {
  fetch_state *s = v;
  result_latency(r, &s->h);
  return fetch_check(s, n, 1, r);
}

const bench_def bench_fetch_latency = {
    .name = "FetchLatency",
    .what = "latency of one cached single-record read (random offset in a 1000-record log)",
    .flags = BENCH_OPS,
    .paths = PATHS_READ,
    .naxes = 1,
    .axes = {{"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(fetch_state),
    .setup = latency_setup,
    .prepare = fetch_prepare,
    .run = latency_run,
    .finish = latency_finish,
    .teardown = fetch_teardown,
};

/* ---- TailFetch ----------------------------------------------------------- */
static int tail_setup(void *v, const bench_env *env) {
  fetch_state *s = v;
  s->fetch = env->p[2];
  return fetch_open(s, env, env->p[0], (size_t)env->p[1], env->p[2]);
}

static int tail_run(void *v, int64_t n) {
  fetch_state *s = v;
  for (int64_t op = 0; op < n; op++)
    if (s->path->read_tail(s->rd, s->fetch, &s->sink) != 0) return -1;
  return 0;
}

static int tail_finish(void *v, int64_t n, bench_result *r) {
  fetch_state *s = v;
  return fetch_check(s, n, s->fetch, r);
}

const bench_def bench_tail_fetch = {
    .name = "TailFetch",
    .what = "the last `tail` records of a `messages`-record log per op (latest N)",
    .flags = BENCH_OPS,
    .paths = (1u << PATH_API) | (1u << PATH_SQL),
    .na = {[PATH_FILE] = "a tail read is measured on takhin's own paths",
           [PATH_SQLITE] = "a tail read is measured on takhin's own paths"},
    .naxes = 3,
    .axes = {{"messages",
              "",
              NULL,
              {{1, {10000}}, {2, {10000, 1000000}}, {3, {10000, 1000000, 10000000}}}},
             {"size", "B", NULL, {{1, {100}}, {1, {100}}, {1, {100}}}},
             {"tail", "", NULL, {{1, {10}}, {1, {10}}, {1, {10}}}}},
    .state_size = sizeof(fetch_state),
    .setup = tail_setup,
    .prepare = fetch_prepare,
    .run = tail_run,
    .finish = tail_finish,
    .teardown = fetch_teardown,
};
