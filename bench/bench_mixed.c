/*
** bench_mixed.c -- MixedWorkload: produce and fetch interleaved on one
** partition, from one thread.
**
** One op = produce one message, then read that same message back (a consumer
** at the head of the log, the read-after-write Kafka consumers do). Each half
** is timed into its own histogram: produce-p99-ms and fetch-p99-ms; the op's
** p50/p99/p999 cover both halves. MB/s counts both the bytes written and the
** bytes read (2 x size per op). A 1000-record log is pre-filled so the read
** side starts from a non-empty partition.
*/
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MIXED_PREFILL 1000

typedef struct mixed_state {
  const bench_path *path;
  bp_store *st;
  bp_reader *rd;
  payload_pool pool;
  uint64_t next;
  bp_sink sink;
  hist op, produce, fetch;
} mixed_state;

static int mixed_setup(void *v, const bench_env *env) {
  mixed_state *s = v;
  s->path = env->path;
  if (payload_pool_init(&s->pool, (size_t)env->p[0], 1, env->seed) != 0) return -1;
  /* Single-record batches, pre-fill included: the run produces those. */
  bp_config cfg = {.dir = env->dir, .durability = env->durability, .partitions = 1};
  if (env->path->open(&cfg, &s->st) != 0 ||
      prefill(env->path, s->st, 0, &s->pool, MIXED_PREFILL) != 0)
    return -1;
  return env->path->reader_open(s->st, 0, &s->rd);
}

static void mixed_teardown(void *v) {
  mixed_state *s = v;
  if (s->rd) s->path->reader_close(s->rd);
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
}

static int mixed_prepare(void *v, int64_t n) {
  mixed_state *s = v;
  (void)n;
  memset(&s->sink, 0, sizeof s->sink);
  hist_reset(&s->op);
  hist_reset(&s->produce);
  hist_reset(&s->fetch);
  return 0;
}

static int mixed_run(void *v, int64_t n) {
  mixed_state *s = v;
  for (int64_t i = 0; i < n; i++) {
    int64_t off;
    uint64_t t0 = now_ns();
    if (s->path->produce(s->st, 0, payload_batch(&s->pool, s->next++), 1, &off) != 0) return -1;
    uint64_t t1 = now_ns();
    if (s->path->read_one(s->rd, off, &s->sink) != 0) return -1;
    uint64_t t2 = now_ns();
    hist_record(&s->produce, t1 - t0);
    hist_record(&s->fetch, t2 - t1);
    hist_record(&s->op, t2 - t0);
  }
  return 0;
}

static int mixed_finish(void *v, int64_t n, bench_result *r) {
  mixed_state *s = v;
  if (s->sink.msgs != (uint64_t)n || s->sink.bytes != (uint64_t)n * s->pool.size) {
    bench_errorf("read back %llu records, expected %lld", (unsigned long long)s->sink.msgs,
                 (long long)n);
    return -1;
  }
  result_latency(r, &s->op);
  result_metric(r, "produce_p50_ms", hist_quantile(&s->produce, 0.50) / 1e6);
  result_metric(r, "produce_p99_ms", hist_quantile(&s->produce, 0.99) / 1e6);
  result_metric(r, "fetch_p50_ms", hist_quantile(&s->fetch, 0.50) / 1e6);
  result_metric(r, "fetch_p99_ms", hist_quantile(&s->fetch, 0.99) / 1e6);
  r->msgs_per_op = 2;
  r->payload_bytes_per_op = 2.0 * (double)s->pool.size;
  return 0;
}

const bench_def bench_mixed_workload = {
    .name = "MixedWorkload",
    .what = "produce one message then read it back, one partition; op = both",
    .flags = BENCH_DURABLE | BENCH_OPS,
    .paths = PATHS_ALL,
    .naxes = 1,
    .axes = {{"size", "B", NULL, {{1, {1024}}, {2, {100, 1024}}, {2, {100, 1024}}}}},
    .state_size = sizeof(mixed_state),
    .setup = mixed_setup,
    .prepare = mixed_prepare,
    .run = mixed_run,
    .finish = mixed_finish,
    .teardown = mixed_teardown,
};
