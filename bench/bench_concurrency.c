/*
** bench_concurrency.c -- several threads on one store.
**
**   ConcurrentProducers  one op = one single-message produce call; the n ops
**                        of a run are split evenly over `producers` threads,
**                        all writing to partition 0 (partition=shared) or each
**                        to its own (partition=separate); every call is timed
**   ConcurrentConsumers  one op = one record read; `consumers` threads, each
**                        with its own reader, read a 10,000-record partition
**                        sequentially in fetches of 100 from staggered starts
** scaling-x is msg/s over the same case with one thread.
**
** Threads are created before the clock starts and wait on a semaphore; the
** timed part is posting it and waiting for all of them at a barrier
** (semaphores and barriers are not pthread mutexes, so the harness adds
** nothing to the lock-wait figure). Lock wait per op comes from lock_wait.c:
** time blocked on any pthread mutex or rwlock in the process, which for the
** file and sqlite paths includes the bench's own per-partition mutex.
*/
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define CONSUMER_LOG 10000
#define CONSUMER_FETCH 100

typedef struct conc_state conc_state;

typedef struct worker {
  conc_state *s;
  int id;
  int64_t share; /* ops this thread does in the current run */
  int64_t pos;   /* consumers: next offset, kept across runs */
  int failed;
  pthread_t th;
  bp_reader *rd;
  bp_sink sink;
  hist h;
} worker;

struct conc_state {
  const bench_path *path;
  bp_store *st;
  payload_pool pool;
  int threads, shared;
  int64_t messages; /* consumers: records in the log */
  worker *w;
  sem_t go;
  pthread_barrier_t done;
  int abort, started;
  void *(*body)(void *);
};

static int conc_open(conc_state *s, const bench_env *env, int threads, int partitions, size_t size,
                     size_t batch, void *(*body)(void *)) {
  s->path = env->path;
  s->threads = threads;
  s->body = body;
  if (payload_pool_init(&s->pool, size, batch, env->seed) != 0) return -1;
  s->w = calloc((size_t)threads, sizeof *s->w);
  if (!s->w) {
    bench_errorf("out of memory");
    return -1;
  }
  for (int i = 0; i < threads; i++) {
    s->w[i].s = s;
    s->w[i].id = i;
  }
  bp_config cfg = {.dir = env->dir, .durability = env->durability, .partitions = partitions};
  return env->path->open(&cfg, &s->st);
}

static void conc_teardown(void *v) {
  conc_state *s = v;
  for (int i = 0; s->w && i < s->threads; i++)
    if (s->w[i].rd) s->path->reader_close(s->w[i].rd);
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
  free(s->w);
}

/* Start the threads, parked on the semaphore, with their share of n. */
static int conc_prepare(void *v, int64_t n) {
  conc_state *s = v;
  s->abort = 0;
  sem_init(&s->go, 0, 0);
  pthread_barrier_init(&s->done, NULL, (unsigned)s->threads + 1);
  for (int i = 0; i < s->threads; i++) {
    worker *w = &s->w[i];
    w->share = n / s->threads + (i < n % s->threads);
    w->failed = 0;
    memset(&w->sink, 0, sizeof w->sink);
    hist_reset(&w->h);
    if (pthread_create(&w->th, NULL, s->body, w) != 0) {
      /* Release the ones already waiting; they see abort and leave. */
      s->abort = 1;
      for (int j = 0; j < i; j++) sem_post(&s->go);
      for (int j = 0; j < i; j++) pthread_join(s->w[j].th, NULL);
      sem_destroy(&s->go);
      pthread_barrier_destroy(&s->done);
      bench_errorf("pthread_create failed");
      return -1;
    }
  }
  s->started = 1;
  return 0;
}

static int conc_run(void *v, int64_t n) {
  conc_state *s = v;
  (void)n;
  for (int i = 0; i < s->threads; i++) sem_post(&s->go);
  pthread_barrier_wait(&s->done);
  return 0;
}

/* Join, then merge what the threads measured. */
static int conc_collect(conc_state *s, hist *merged, bp_sink *sink) {
  int failed = 0;
  if (s->started) {
    for (int i = 0; i < s->threads; i++) pthread_join(s->w[i].th, NULL);
    sem_destroy(&s->go);
    pthread_barrier_destroy(&s->done);
    s->started = 0;
  }
  hist_reset(merged);
  memset(sink, 0, sizeof *sink);
  for (int i = 0; i < s->threads; i++) {
    hist_merge(merged, &s->w[i].h);
    sink->msgs += s->w[i].sink.msgs;
    sink->bytes += s->w[i].sink.bytes;
    failed |= s->w[i].failed;
  }
  return failed ? -1 : 0;
}

/* scaling-x: msg/s over the same case with one thread (axis 0 = 1), and
** scaling-eff, the plan's efficiency throughput(N) / (N x throughput(1)) with
** N capped at the core count ("linear up to CPU count"): N threads on fewer
** cores can at best do cores x throughput(1). Axis 0 is the thread count
** here and the partition count in the topic-manager benchmarks, which run
** min(partitions, cores) threads. */
void bench_scaling_derive(bench_result *r, const bench_results *all) {
  int64_t cores = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
  int64_t linear = r->p[0] < cores ? r->p[0] : cores;
  if (r->p[0] == 1) {
    result_metric(r, "scaling_vs_1", 1.0);
    result_metric(r, "scaling_eff", 1.0);
    return;
  }
  int64_t p1[BENCH_MAX_PARAMS];
  memcpy(p1, r->p, sizeof p1);
  p1[0] = 1;
  char params[160], name[192];
  bench_params_name(r->def, p1, params, sizeof params);
  snprintf(name, sizeof name, "Benchmark%s/%s", r->def->name, params);
  double one = results_median(all, name, r->path, r->durability, "msgs_per_s");
  if (one > 0 && r->msgs_per_s > 0) {
    result_metric(r, "scaling_vs_1", r->msgs_per_s / one);
    result_metric(r, "scaling_eff", r->msgs_per_s / one / (double)linear);
  }
}

/* ---- ConcurrentProducers ------------------------------------------------- */
static void *producer(void *arg) {
  worker *w = arg;
  conc_state *s = w->s;
  sem_wait(&s->go);
  if (s->abort) return NULL;
  int32_t part = s->shared ? 0 : w->id;
  /* Threads start at different places in the pool so payloads differ. */
  uint64_t next = (uint64_t)w->id * 7919u;
  for (int64_t i = 0; i < w->share && !w->failed; i++) {
    uint64_t t0 = now_ns();
    if (s->path->produce(s->st, part, payload_batch(&s->pool, next++), 1, NULL) != 0) w->failed = 1;
    hist_record(&w->h, now_ns() - t0);
  }
  pthread_barrier_wait(&s->done);
  return NULL;
}

static int producers_setup(void *v, const bench_env *env) {
  conc_state *s = v;
  int threads = (int)env->p[0];
  s->shared = env->p[2] == 0;
  return conc_open(s, env, threads, s->shared ? 1 : threads, (size_t)env->p[1], 1, producer);
}

static int producers_finish(void *v, int64_t n, bench_result *r) {
  conc_state *s = v;
  hist h;
  bp_sink unused;
  (void)n;
  if (conc_collect(s, &h, &unused) != 0) return -1;
  result_latency(r, &h);
  r->msgs_per_op = 1;
  r->payload_bytes_per_op = (double)s->pool.size;
  result_metric(r, "threads", s->threads);
  return 0;
}

static const char *const partition_labels[] = {"shared", "separate"};

const bench_def bench_concurrent_producers = {
    .name = "ConcurrentProducers",
    .what = "single-message produce calls from `producers` threads; op = one call",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL,
    .naxes = 3,
    .axes = {{"producers", "", NULL, {{2, {1, 2}}, {4, {1, 2, 4, 8}}, {4, {1, 2, 4, 8}}}},
             {"size", "B", NULL, {{1, {1024}}, {1, {1024}}, {2, {100, 1024}}}},
             {"partition", "", partition_labels, {{2, {0, 1}}, {2, {0, 1}}, {2, {0, 1}}}}},
    .state_size = sizeof(conc_state),
    .setup = producers_setup,
    .prepare = conc_prepare,
    .run = conc_run,
    .finish = producers_finish,
    .teardown = conc_teardown,
    .derive = bench_scaling_derive,
};

/* ---- ConcurrentConsumers ------------------------------------------------- */
static void *consumer(void *arg) {
  worker *w = arg;
  conc_state *s = w->s;
  sem_wait(&s->go);
  if (s->abort) return NULL;
  int64_t left = w->share;
  while (left > 0 && !w->failed) {
    int64_t k = left < CONSUMER_FETCH ? left : CONSUMER_FETCH;
    if (k > s->messages - w->pos) k = s->messages - w->pos;
    if (s->path->read_range(w->rd, w->pos, k, &w->sink) != 0) w->failed = 1;
    w->pos += k;
    if (w->pos == s->messages) w->pos = 0;
    left -= k;
  }
  pthread_barrier_wait(&s->done);
  return NULL;
}

static int consumers_setup(void *v, const bench_env *env) {
  conc_state *s = v;
  int threads = (int)env->p[0];
  s->messages = env->tier == TIER_SMOKE ? 200 : CONSUMER_LOG;
  if (conc_open(s, env, threads, 1, (size_t)env->p[1], prefill_batch((size_t)env->p[1]),
                consumer) != 0 ||
      prefill(s->path, s->st, 0, &s->pool, s->messages) != 0)
    return -1;
  for (int i = 0; i < threads; i++) {
    if (s->path->reader_open(s->st, 0, &s->w[i].rd) != 0) return -1;
    s->w[i].pos = s->messages * i / threads;
  }
  return 0;
}

static int consumers_finish(void *v, int64_t n, bench_result *r) {
  conc_state *s = v;
  hist h;
  bp_sink sink;
  if (conc_collect(s, &h, &sink) != 0) return -1;
  if (sink.msgs != (uint64_t)n || sink.bytes != (uint64_t)n * s->pool.size) {
    bench_errorf("consumers read %llu records, expected %lld", (unsigned long long)sink.msgs,
                 (long long)n);
    return -1;
  }
  r->msgs_per_op = 1;
  r->payload_bytes_per_op = (double)s->pool.size;
  result_metric(r, "threads", s->threads);
  return 0;
}

const bench_def bench_concurrent_consumers = {
    .name = "ConcurrentConsumers",
    .what = "`consumers` threads reading one partition in fetches of 100; op = one record",
    .paths = PATHS_ALL,
    .naxes = 2,
    .axes = {{"consumers", "", NULL, {{2, {1, 2}}, {4, {1, 2, 4, 8}}, {4, {1, 2, 4, 8}}}},
             {"size", "B", NULL, {{1, {1024}}, {1, {1024}}, {2, {100, 1024}}}}},
    .state_size = sizeof(conc_state),
    .setup = consumers_setup,
    .prepare = conc_prepare,
    .run = conc_run,
    .finish = consumers_finish,
    .teardown = conc_teardown,
    .derive = bench_scaling_derive,
};
