/*
** bench_produce.c -- the produce benchmarks, one partition, one thread.
**
**   WriteThroughput       one op = `messages` produce calls of one message
**                         (Go's plan: an op writes N messages, so MB/s and
**                         allocs/op are per N-message burst)
**   BatchWriteThroughput  one op = one produce call of `batch` messages;
**                         speedup-x compares its MB/s with WriteThroughput's
**                         (most messages, same size, path and mode)
**   ProduceLatency        one op = one produce call of one message; every
**                         call is timed into a histogram for p50/p99/p999
**   SegmentRollover       one op = one segment's worth of 1 KiB single-message
**                         produce calls; segments/op counts files created
** The store is created and the payload built in setup, so the timed loop is
** produce calls and nothing else.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct produce_state {
  const bench_path *path;
  bp_store *st;
  payload_pool pool;
  int64_t calls_per_op; /* produce calls per op */
  size_t batch;         /* messages per call */
  uint64_t next;        /* next batch of the pool to send */
  int64_t seg_before;
  hist h;
} produce_state;

static int produce_open(produce_state *s, const bench_env *env, size_t size, size_t batch,
                        int64_t calls_per_op, int64_t segment_bytes) {
  s->path = env->path;
  s->batch = batch;
  s->calls_per_op = calls_per_op;
  if (payload_pool_init(&s->pool, size, batch, env->seed) != 0) return -1;
  bp_config cfg = {.dir = env->dir,
                   .durability = env->durability,
                   .partitions = 1,
                   .segment_bytes = segment_bytes};
  return env->path->open(&cfg, &s->st);
}

static void produce_teardown(void *v) {
  produce_state *s = v;
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
}

/* The timed loop shared by the throughput benchmarks. */
static int produce_run(void *v, int64_t n) {
  produce_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    for (int64_t c = 0; c < s->calls_per_op; c++) {
      if (s->path->produce(s->st, 0, payload_batch(&s->pool, s->next++), s->batch, NULL) != 0)
        return -1;
    }
  }
  /* an asynchronous client (kafka) counts records once acknowledged */
  return s->path->drain ? s->path->drain(s->st) : 0;
}

static int produce_finish(void *v, int64_t n, bench_result *r) {
  produce_state *s = v;
  (void)n;
  r->msgs_per_op = (double)(s->calls_per_op * (int64_t)s->batch);
  r->payload_bytes_per_op = r->msgs_per_op * (double)s->pool.size;
  return 0;
}

/* ---- WriteThroughput ----------------------------------------------------- */
static int write_setup(void *v, const bench_env *env) {
  return produce_open(v, env, (size_t)env->p[1], 1, env->p[0], 0);
}

const bench_def bench_write_throughput = {
    .name = "WriteThroughput",
    .what = "single-message produce calls; op = `messages` calls",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL | PATH_BIT_KAFKA,
    .naxes = 2,
    .axes = {{"messages", "", NULL, {{1, {100}}, {2, {100, 1000}}, {3, {100, 1000, 10000}}}},
             {"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(produce_state),
    .setup = write_setup,
    .run = produce_run,
    .finish = produce_finish,
    .teardown = produce_teardown,
};

/* ---- BatchWriteThroughput ------------------------------------------------ */
static int batch_setup(void *v, const bench_env *env) {
  return produce_open(v, env, (size_t)env->p[1], (size_t)env->p[0], 1, 0);
}

/* speedup-x: this MB/s over single-message writes of the same size. */
static void batch_derive(bench_result *r, const bench_results *all) {
  int64_t best = -1;
  const char *name = NULL;
  for (size_t i = 0; i < all->n; i++) {
    const bench_result *w = &all->v[i];
    if (w->def != &bench_write_throughput || w->path != r->path || w->durability != r->durability ||
        w->p[1] != r->p[1] || w->p[0] <= best)
      continue;
    best = w->p[0];
    name = w->name;
  }
  if (!name) return;
  double single = results_median(all, name, r->path, r->durability, "mb_per_s");
  if (!isnan(single) && single > 0 && !isnan(r->mb_per_s))
    result_metric(r, "speedup_vs_single", r->mb_per_s / single);
}

const bench_def bench_batch_write_throughput = {
    .name = "BatchWriteThroughput",
    .what = "one produce call of `batch` messages per op",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL | PATH_BIT_KAFKA,
    .naxes = 2,
    .axes = {{"batch", "", NULL, {{1, {10}}, {3, {10, 100, 1000}}, {3, {10, 100, 1000}}}},
             {"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(produce_state),
    .setup = batch_setup,
    .run = produce_run,
    .finish = produce_finish,
    .teardown = produce_teardown,
    .derive = batch_derive,
};

/* ---- ProduceLatency ------------------------------------------------------ */
static int latency_setup(void *v, const bench_env *env) {
  return produce_open(v, env, (size_t)env->p[0], 1, 1, 0);
}

static int latency_prepare(void *v, int64_t n) {
  (void)n;
  hist_reset(&((produce_state *)v)->h);
  return 0;
}

static int latency_run(void *v, int64_t n) {
  produce_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    uint64_t t0 = now_ns();
    if (s->path->produce(s->st, 0, payload_batch(&s->pool, s->next++), 1, NULL) != 0) return -1;
    hist_record(&s->h, now_ns() - t0);
  }
  return 0;
}

static int latency_finish(void *v, int64_t n, bench_result *r) {
  produce_state *s = v;
  produce_finish(v, n, r);
  result_latency(r, &s->h);
  return 0;
}

const bench_def bench_produce_latency = {
    .name = "ProduceLatency",
    .what = "latency of one single-message produce call",
    .flags = BENCH_DURABLE | BENCH_OPS,
    .paths = PATHS_ALL,
    .naxes = 1,
    .axes = {{"size", "B", NULL, {{1, {1024}}, {3, {100, 1024, 10240}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(produce_state),
    .setup = latency_setup,
    .prepare = latency_prepare,
    .run = latency_run,
    .finish = latency_finish,
    .teardown = produce_teardown,
};

/* ---- SegmentRollover ----------------------------------------------------- */
#define ROLL_RECORD 1024

static int roll_setup(void *v, const bench_env *env) {
  int64_t seg = env->p[0] << 20;
  return produce_open(v, env, ROLL_RECORD, 1, seg / ROLL_RECORD, seg);
}

static int roll_prepare(void *v, int64_t n) {
  produce_state *s = v;
  (void)n;
  return s->path->segments(s->st, 0, &s->seg_before);
}

static int roll_finish(void *v, int64_t n, bench_result *r) {
  produce_state *s = v;
  int64_t after;
  produce_finish(v, n, r);
  if (s->path->segments(s->st, 0, &after) != 0) return -1;
  result_metric(r, "segments_created", (double)(after - s->seg_before));
  result_metric(r, "segments_per_op", (double)(after - s->seg_before) / (double)n);
  return 0;
}

const bench_def bench_segment_rollover = {
    .name = "SegmentRollover",
    .what = "1 KiB single-message produce calls across segment rolls; op = one segment's worth",
    .flags = BENCH_DURABLE,
    /* A plain SQLite table has no segments to roll. */
    .paths = PATHS_NO_SQLITE,
    .na = {[PATH_SQLITE] = "a SQLite table has no segments to roll"},
    .naxes = 1,
    .axes = {{"segment", "MB", NULL, {{1, {1}}, {2, {1, 10}}, {3, {1, 10, 100}}}}},
    .state_size = sizeof(produce_state),
    .setup = roll_setup,
    .prepare = roll_prepare,
    .run = produce_run,
    .finish = roll_finish,
    .teardown = produce_teardown,
};
