/*
** bench_topic.c -- the topic manager: producing to a whole topic through
** Kafka's partitioner, reading all of its partitions, how evenly keys
** spread, and many topics in one store.
**
**   TopicManagerProduceThroughput  one op = one topic-level produce call of
**                                  100 records of `size` bytes with keys
**                                  "key-%d", which the partitioner splits
**                                  into one batch per partition
**                                  (takhin_produce_topic); min(partitions,
**                                  cores) threads share the ops, each owning
**                                  the partitions p with p % threads == its
**                                  number; a thread's call carries 100 keys
**                                  that all hash to one of its partitions,
**                                  in turn, so every call is one batch of
**                                  100 whatever the partition count and
**                                  the figure is parallelism alone
**   TopicManagerFetchThroughput    one op = reading every partition of a
**                                  topic filled that way (10,000 records)
**                                  from its start to its end, in fetches of
**                                  100, one reader per partition; the same
**                                  min(partitions, cores) threads, each
**                                  reading the partitions it owns
** The plan's "partition-level parallelism" is one thread per partition up to
** the core count: that is what the two throughput benchmarks measure, and
** their scaling-eff figure is MB/s(N) / (threads x MB/s(1)).
**   TopicManagerPartitionBalance   one op = one topic-level produce call of
**                                  100 records of 100 B, keys "key-%d"; the
**                                  imbalance (max - mean) / mean of records
**                                  per partition covers 100,000 records
**                                  produced in setup plus every timed one
**   TopicManagerMultiTopic         one op = one topic-level produce call of
**                                  100 records of 1 KiB, to the topics in
**                                  turn (`topics` topics x 4 partitions);
**                                  open-fds counts /proc/self/fd after the run
** Keys are "key-%d" with the counter running on across calls, so every
** record has a new key (ProduceThroughput: TM_PKEYS keys per partition,
** found in setup and reused); the value fills the record to `size` bytes.
**
** api uses takhin_produce_topic and takhin_topic_balance, sql INSERTs with
** partition NULL (the extension's partitioner) and takhin_partitions. The
** file and sqlite paths have no partitioner: the benchmark splits each call
** itself with takhin_partition_for_key and makes one produce call per
** partition, which is what an application on those would do.
*/
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define TM_BATCH 100
#define TM_FETCH 100
#define TM_FETCH_LOG 10000
#define TM_BALANCE_BASE 100000
#define KEY_MAX 24
#define TM_PKEYS 200 /* ProduceThroughput: keys per partition, reused in turn */

/* The benchmark's own split of a call by partition, for paths without a
** partitioner: one per thread, so threads never share it. */
typedef struct tm_split {
  takhin_record sorted[TM_BATCH];
  int32_t rec_part[TM_BATCH];
  size_t *start;   /* parts + 1 */
  int64_t *counts; /* per global partition: records the split sent there */
} tm_split;

typedef struct tm_state tm_state;

/* One thread of the threaded produce and fetch benchmarks. */
typedef struct tm_worker {
  tm_state *s;
  int id, failed;
  pthread_t th;
  int64_t share; /* produce: ops this thread does in the current run */
  tm_split split;
  takhin_record recs[TM_BATCH];
  /* produce: for each partition this thread owns (p = id + i * threads),
  ** TM_PKEYS keys that hash there, at i * TM_PKEYS, with the value offset
  ** each one uses */
  unsigned char (*keys)[KEY_MAX];
  size_t *klen, *voff, *nkeys; /* nkeys: per owned partition, during setup */
  int32_t nowned;
  uint64_t ops; /* calls made: the next goes to owned partition ops % nowned */
  bp_sink sink; /* fetch */
} tm_worker;

struct tm_state {
  const bench_path *path;
  bp_config cfg;
  bp_store *st;
  payload_pool pool; /* its random block backs the values */
  int32_t topics, parts;
  size_t size;
  uint64_t key_next; /* the counter of "key-%d" */
  uint64_t op_next;  /* MultiTopic: the next topic */
  takhin_record recs[TM_BATCH];
  unsigned char keys[TM_BATCH][KEY_MAX];
  tm_split split; /* the single-threaded benchmarks' split */
  double bytes;   /* payload bytes produced in the current run */
  /* fetch */
  bp_reader **rd;
  int64_t *ends; /* per partition: records to read */
  int64_t total;
  bp_sink sink;
  int fds_before;
  /* threaded produce and fetch */
  int threads, started, abort;
  tm_worker *w;
  sem_t go;
  pthread_barrier_t done;
};

/* "key-<n>" without snprintf: the timed loop formats 100 keys per op. */
static size_t key_text(unsigned char *out, uint64_t n) {
  char digits[24];
  size_t d = 0;
  do {
    digits[d++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  memcpy(out, "key-", 4);
  for (size_t i = 0; i < d; i++) out[4 + i] = (unsigned char)digits[d - 1 - i];
  return 4 + d;
}

/* The next TM_BATCH records: fresh keys, values filling each to s->size. */
static void tm_fill(tm_state *s) {
  for (size_t i = 0; i < TM_BATCH; i++) {
    uint64_t k = s->key_next++;
    size_t kl = key_text(s->keys[i], k);
    size_t vl = s->size - kl;
    s->recs[i].key = s->keys[i];
    s->recs[i].key_len = kl;
    /* 4093 is prime: starts spread over the first half of the random block */
    s->recs[i].value = s->pool.random + (k * 4093u) % 65536u;
    s->recs[i].value_len = vl;
    s->recs[i].timestamp = TAKHIN_TIMESTAMP_NOW;
    s->recs[i].headers = NULL;
    s->recs[i].n_headers = 0;
  }
  s->bytes += (double)(TM_BATCH * s->size);
}

/* One topic-level produce of recs: the path's partitioner, or our split. */
static int tm_send_split(tm_state *s, tm_split *x, const takhin_record *recs, int32_t topic) {
  if (s->path->produce_topic) return s->path->produce_topic(s->st, topic, recs, TM_BATCH);
  memset(x->start, 0, ((size_t)s->parts + 1) * sizeof *x->start);
  for (size_t i = 0; i < TM_BATCH; i++) {
    int32_t p = takhin_partition_for_key(recs[i].key, recs[i].key_len, s->parts);
    x->rec_part[i] = p;
    x->start[p + 1]++;
  }
  for (int32_t p = 0; p < s->parts; p++) x->start[p + 1] += x->start[p];
  for (size_t i = 0; i < TM_BATCH; i++) x->sorted[x->start[x->rec_part[i]]++] = recs[i];
  size_t from = 0;
  for (int32_t p = 0; p < s->parts; p++) { /* start[p] is now the end of group p */
    size_t m = x->start[p] - from;
    if (m) {
      int32_t g = topic * s->parts + p;
      if (s->path->produce(s->st, g, x->sorted + from, m, NULL) != 0) return -1;
      x->counts[g] += (int64_t)m;
    }
    from = x->start[p];
  }
  return 0;
}

static int tm_send(tm_state *s, int32_t topic) {
  return tm_send_split(s, &s->split, s->recs, topic);
}

static int tm_split_init(tm_split *x, int32_t topics, int32_t parts) {
  x->start = calloc((size_t)parts + 1, sizeof *x->start);
  x->counts = calloc((size_t)(topics * parts), sizeof *x->counts);
  return x->start && x->counts ? 0 : -1;
}

static int tm_open(tm_state *s, const bench_env *env, int32_t topics, int32_t parts, size_t size) {
  s->path = env->path;
  s->topics = topics;
  s->parts = parts;
  s->size = size;
  s->fds_before = fd_count();
  if (payload_pool_init(&s->pool, 1024, 1, env->seed) != 0) return -1;
  s->ends = calloc((size_t)parts, sizeof *s->ends);
  s->rd = calloc((size_t)parts, sizeof *s->rd);
  if (tm_split_init(&s->split, topics, parts) != 0 || !s->ends || !s->rd) {
    bench_errorf("out of memory");
    return -1;
  }
  s->cfg = (bp_config){
      .dir = env->dir, .durability = env->durability, .partitions = parts, .topics = topics};
  return env->path->open(&s->cfg, &s->st);
}

static void tm_teardown(void *v) {
  tm_state *s = v;
  for (int i = 0; s->w && i < s->threads; i++) {
    free(s->w[i].split.start);
    free(s->w[i].split.counts);
    free(s->w[i].keys);
    free(s->w[i].klen);
    free(s->w[i].voff);
    free(s->w[i].nkeys);
  }
  free(s->w);
  for (int32_t p = 0; s->rd && p < s->parts; p++)
    if (s->rd[p]) s->path->reader_close(s->rd[p]);
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
  free(s->split.start);
  free(s->split.counts);
  free(s->ends);
  free(s->rd);
}

/* Records per partition of topic and the imbalance: the store's figures
** where the path has them, else the split's counts. */
static int tm_balance(tm_state *s, int32_t topic, int64_t *counts, double *imbalance) {
  if (s->path->balance) return s->path->balance(s->st, topic, counts, imbalance);
  int64_t total = 0, max = 0;
  for (int32_t p = 0; p < s->parts; p++) {
    int64_t c = s->split.counts[topic * s->parts + p];
    if (counts) counts[p] = c;
    total += c;
    if (c > max) max = c;
  }
  double mean = (double)total / (double)s->parts;
  *imbalance = total ? ((double)max - mean) / mean : 0.0;
  return 0;
}

static int tm_prepare(void *v, int64_t n) {
  (void)n;
  ((tm_state *)v)->bytes = 0;
  return 0;
}

static int tm_produce_run(void *v, int64_t n) {
  tm_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    tm_fill(s);
    if (tm_send(s, (int32_t)(s->op_next++ % (uint64_t)s->topics)) != 0) return -1;
  }
  return 0;
}

static int tm_produce_finish(void *v, int64_t n, bench_result *r) {
  tm_state *s = v;
  r->msgs_per_op = TM_BATCH;
  r->payload_bytes_per_op = s->bytes / (double)n;
  result_metric(r, "partitions", s->parts);
  return 0;
}

/* ---- threads of the produce and fetch throughput benchmarks ------------- */
static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* min(partitions, cores) workers, each with its own split scratch. */
static int tm_workers(tm_state *s) {
  s->threads = s->parts < online_cores() ? s->parts : online_cores();
  s->w = calloc((size_t)s->threads, sizeof *s->w);
  if (!s->w) {
    bench_errorf("out of memory");
    return -1;
  }
  for (int i = 0; i < s->threads; i++) {
    s->w[i].s = s;
    s->w[i].id = i;
    if (tm_split_init(&s->w[i].split, 1, s->parts) != 0) {
      bench_errorf("out of memory");
      return -1;
    }
  }
  return 0;
}

/* Start the workers, parked on the semaphore; produce gets its share of n. */
static int tm_threads_start(tm_state *s, int64_t n, void *(*body)(void *)) {
  s->abort = 0;
  sem_init(&s->go, 0, 0);
  pthread_barrier_init(&s->done, NULL, (unsigned)s->threads + 1);
  for (int i = 0; i < s->threads; i++) {
    tm_worker *w = &s->w[i];
    w->share = n / s->threads + (i < n % s->threads);
    w->failed = 0;
    memset(&w->sink, 0, sizeof w->sink);
    if (pthread_create(&w->th, NULL, body, w) != 0) {
      s->abort = 1; /* release the ones already waiting; they see abort and leave */
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

/* The timed part: release the workers and wait until all are done. The
** semaphore and barrier are not pthread mutexes, so the harness adds nothing
** to the lock-wait figure. */
static int tm_threads_run(void *v, int64_t n) {
  tm_state *s = v;
  (void)n;
  for (int i = 0; i < s->threads; i++) sem_post(&s->go);
  pthread_barrier_wait(&s->done);
  return 0;
}

static int tm_threads_join(tm_state *s) {
  int failed = 0;
  if (s->started) {
    for (int i = 0; i < s->threads; i++) pthread_join(s->w[i].th, NULL);
    sem_destroy(&s->go);
    pthread_barrier_destroy(&s->done);
    s->started = 0;
  }
  for (int i = 0; i < s->threads; i++) failed |= s->w[i].failed;
  return failed ? -1 : 0;
}

/* ---- TopicManagerProduceThroughput ------------------------------------------- */
/* Keys "key-%d" from one counter, each kept for the partition it hashes to
** until every partition has TM_PKEYS: a call then carries the keys of one
** partition, so it is one batch of 100 at any partition count (the plan's
** multi-partition benchmark measures parallelism, not how a call of 100
** records splits), while the path still runs the partitioner on them. */
static int tmp_setup(void *v, const bench_env *env) {
  tm_state *s = v;
  if (tm_open(s, env, 1, (int32_t)env->p[0], (size_t)env->p[1]) != 0 || tm_workers(s) != 0)
    return -1;
  for (int i = 0; i < s->threads; i++) {
    tm_worker *w = &s->w[i];
    w->nowned = (s->parts - w->id + s->threads - 1) / s->threads;
    size_t n = (size_t)w->nowned * TM_PKEYS;
    w->keys = malloc(n * sizeof *w->keys);
    w->klen = malloc(n * sizeof *w->klen);
    w->voff = malloc(n * sizeof *w->voff);
    w->nkeys = calloc((size_t)w->nowned, sizeof *w->nkeys);
    if (!w->keys || !w->klen || !w->voff || !w->nkeys) {
      bench_errorf("out of memory");
      return -1;
    }
  }
  for (int32_t full = 0; full < s->parts;) {
    uint64_t k = s->key_next++;
    unsigned char key[KEY_MAX];
    size_t kl = key_text(key, k);
    int32_t p = takhin_partition_for_key(key, kl, s->parts);
    tm_worker *w = &s->w[p % s->threads];
    int32_t i = p / s->threads;
    if (w->nkeys[i] == TM_PKEYS) continue;
    size_t slot = (size_t)i * TM_PKEYS + w->nkeys[i];
    memcpy(w->keys[slot], key, kl);
    w->klen[slot] = kl;
    /* 4093 is prime: starts spread over the first half of the random block */
    w->voff[slot] = (k * 4093u) % 65536u;
    if (++w->nkeys[i] == TM_PKEYS) full++;
  }
  return 0;
}

static void *tm_producer(void *arg) {
  tm_worker *w = arg;
  tm_state *s = w->s;
  sem_wait(&s->go);
  if (s->abort) return NULL;
  for (int64_t op = 0; op < w->share && !w->failed; op++, w->ops++) {
    size_t base = (size_t)(w->ops % (uint64_t)w->nowned) * TM_PKEYS;
    size_t start = (size_t)(w->ops / (uint64_t)w->nowned) * TM_BATCH;
    for (size_t i = 0; i < TM_BATCH; i++) {
      size_t k = base + (start + i) % TM_PKEYS;
      w->recs[i] = (takhin_record){.key = w->keys[k],
                                   .key_len = w->klen[k],
                                   .value = s->pool.random + w->voff[k],
                                   .value_len = s->size - w->klen[k],
                                   .timestamp = TAKHIN_TIMESTAMP_NOW};
    }
    if (tm_send_split(s, &w->split, w->recs, 0) != 0) w->failed = 1;
  }
  pthread_barrier_wait(&s->done);
  return NULL;
}

static int tmp_prepare(void *v, int64_t n) { return tm_threads_start(v, n, tm_producer); }

static int tmp_finish(void *v, int64_t n, bench_result *r) {
  tm_state *s = v;
  if (tm_threads_join(s) != 0) return -1;
  r->msgs_per_op = TM_BATCH;
  r->payload_bytes_per_op = (double)(TM_BATCH * s->size);
  result_metric(r, "partitions", s->parts);
  result_metric(r, "threads", s->threads);
  (void)n;
  return 0;
}

const bench_def bench_tm_produce = {
    .name = "TopicManagerProduceThroughput",
    .what = "topic-level produce calls of 100 keyed records (one partition's keys) from "
            "min(partitions, cores) threads, each owning its partitions; op = one call",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL,
    .naxes = 2,
    .axes = {{"partitions", "", NULL, {{2, {1, 4}}, {3, {1, 4, 16}}, {3, {1, 4, 16}}}},
             {"size", "B", NULL, {{1, {1024}}, {2, {100, 1024}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(tm_state),
    .setup = tmp_setup,
    .prepare = tmp_prepare,
    .run = tm_threads_run,
    .finish = tmp_finish,
    .teardown = tm_teardown,
    .derive = bench_scaling_derive,
};

/* ---- TopicManagerFetchThroughput --------------------------------------------- */
static int tmf_setup(void *v, const bench_env *env) {
  tm_state *s = v;
  if (tm_open(s, env, 1, (int32_t)env->p[0], (size_t)env->p[1]) != 0 || tm_workers(s) != 0)
    return -1;
  int64_t log = env->tier == TIER_SMOKE ? 400 : TM_FETCH_LOG;
  for (int64_t i = 0; i < log; i += TM_BATCH) {
    tm_fill(s);
    if (tm_send(s, 0) != 0) return -1;
  }
  double imbalance;
  if (s->path->flush(s->st) != 0 || tm_balance(s, 0, s->ends, &imbalance) != 0) return -1;
  s->total = 0;
  for (int32_t p = 0; p < s->parts; p++) {
    s->total += s->ends[p];
    if (s->ends[p] > 0 && s->path->reader_open(s->st, p, &s->rd[p]) != 0) return -1;
  }
  if (s->total != log) {
    bench_errorf("the topic holds %lld records, expected %lld", (long long)s->total,
                 (long long)log);
    return -1;
  }
  return 0;
}

/* Every op reads all of this thread's partitions (p % threads == id) once;
** a reader belongs to the one thread that owns its partition. */
static void *tm_consumer(void *arg) {
  tm_worker *w = arg;
  tm_state *s = w->s;
  sem_wait(&s->go);
  if (s->abort) return NULL;
  int64_t n = w->share; /* here: the whole n, see tmf_prepare */
  for (int64_t op = 0; op < n && !w->failed; op++)
    for (int32_t p = w->id; p < s->parts && !w->failed; p += s->threads)
      for (int64_t o = 0; o < s->ends[p]; o += TM_FETCH) {
        int64_t k = s->ends[p] - o < TM_FETCH ? s->ends[p] - o : TM_FETCH;
        if (s->path->read_range(s->rd[p], o, k, &w->sink) != 0) {
          w->failed = 1;
          break;
        }
      }
  pthread_barrier_wait(&s->done);
  return NULL;
}

/* -cold: close readers and store (mapped pages survive DONTNEED), drop the
** cache, reopen. */
static int tmf_cold(void *v) {
  tm_state *s = v;
  if (!s->path->reopens) return bench_drop_cache(s->cfg.dir);
  for (int32_t p = 0; p < s->parts; p++) {
    if (s->rd[p]) s->path->reader_close(s->rd[p]);
    s->rd[p] = NULL;
  }
  int rc = s->path->close(s->st);
  s->st = NULL;
  s->cfg.existing = 1;
  if (rc != 0 || bench_drop_cache(s->cfg.dir) != 0 || s->path->open(&s->cfg, &s->st) != 0)
    return -1;
  for (int32_t p = 0; p < s->parts; p++)
    if (s->ends[p] > 0 && s->path->reader_open(s->st, p, &s->rd[p]) != 0) return -1;
  return 0;
}

static int tmf_prepare(void *v, int64_t n) {
  tm_state *s = v;
  if (tm_threads_start(s, n, tm_consumer) != 0) return -1;
  for (int i = 0; i < s->threads; i++) s->w[i].share = n; /* an op is every partition */
  return 0;
}

static int tmf_finish(void *v, int64_t n, bench_result *r) {
  tm_state *s = v;
  if (tm_threads_join(s) != 0) return -1;
  uint64_t msgs = 0, bytes = 0;
  for (int i = 0; i < s->threads; i++) {
    msgs += s->w[i].sink.msgs;
    bytes += s->w[i].sink.bytes;
  }
  uint64_t want = (uint64_t)(n * s->total);
  if (msgs != want || bytes != want * s->size) {
    bench_errorf("read %llu records / %llu bytes, expected %llu / %llu", (unsigned long long)msgs,
                 (unsigned long long)bytes, (unsigned long long)want,
                 (unsigned long long)(want * s->size));
    return -1;
  }
  r->msgs_per_op = (double)s->total;
  r->payload_bytes_per_op = (double)s->total * (double)s->size;
  result_metric(r, "partitions", s->parts);
  result_metric(r, "threads", s->threads);
  return 0;
}

const bench_def bench_tm_fetch = {
    .name = "TopicManagerFetchThroughput",
    .what =
        "read every partition of a 10,000-record topic in fetches of 100, min(partitions, cores) "
        "threads each reading its partitions; op = the whole topic",
    .paths = PATHS_ALL,
    .naxes = 2,
    .axes = {{"partitions", "", NULL, {{2, {1, 4}}, {3, {1, 4, 16}}, {3, {1, 4, 16}}}},
             {"size", "B", NULL, {{1, {1024}}, {2, {100, 1024}}, {3, {100, 1024, 10240}}}}},
    .state_size = sizeof(tm_state),
    .setup = tmf_setup,
    .prepare = tmf_prepare,
    .run = tm_threads_run,
    .finish = tmf_finish,
    .teardown = tm_teardown,
    .cold = tmf_cold,
    .derive = bench_scaling_derive,
};

/* ---- TopicManagerPartitionBalance -------------------------------------------- */
static int tmb_setup(void *v, const bench_env *env) {
  tm_state *s = v;
  if (tm_open(s, env, 1, (int32_t)env->p[0], 100) != 0) return -1;
  /* A floor of keys, so the imbalance measures the partitioner and not the
  ** luck of a few thousand keys (an ideal hash over 32 partitions is still
  ** about 14% off at 10,000 keys, about 1.5% at 1,000,000). */
  int64_t base = env->tier == TIER_SMOKE ? 1000 : TM_BALANCE_BASE;
  for (int64_t i = 0; i < base; i += TM_BATCH) {
    tm_fill(s);
    if (tm_send(s, 0) != 0) return -1;
  }
  return 0;
}

static int tmb_finish(void *v, int64_t n, bench_result *r) {
  tm_state *s = v;
  double imbalance;
  tm_produce_finish(v, n, r);
  if (s->path->flush(s->st) != 0 || tm_balance(s, 0, NULL, &imbalance) != 0) return -1;
  result_metric(r, "imbalance_pct", imbalance * 100.0);
  result_metric(r, "keys", (double)s->key_next);
  return 0;
}

const bench_def bench_tm_balance = {
    .name = "TopicManagerPartitionBalance",
    .what =
        "topic-level produce calls of 100 records of 100 B keyed key-%d; imbalance over >= 100,000 keys",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL,
    .naxes = 1,
    .axes = {{"partitions", "", NULL, {{2, {4, 32}}, {4, {4, 8, 16, 32}}, {4, {4, 8, 16, 32}}}}},
    .state_size = sizeof(tm_state),
    .setup = tmb_setup,
    .prepare = tm_prepare,
    .run = tm_produce_run,
    .finish = tmb_finish,
    .teardown = tm_teardown,
};

/* ---- TopicManagerMultiTopic -------------------------------------------------- */
static int tmm_setup(void *v, const bench_env *env) {
  return tm_open(v, env, (int32_t)env->p[0], (int32_t)env->p[1], 1024);
}

static int tmm_finish(void *v, int64_t n, bench_result *r) {
  tm_state *s = v;
  tm_produce_finish(v, n, r);
  int fds = fd_count();
  result_metric(r, "topics", s->topics);
  if (fds >= 0) result_metric(r, "open_fds", fds);
  if (fds >= 0 && s->fds_before >= 0) result_metric(r, "store_fds", fds - s->fds_before);
  return 0;
}

const bench_def bench_tm_multi_topic = {
    .name = "TopicManagerMultiTopic",
    .what = "topic-level produce calls of 100 x 1 KiB keyed records to `topics` topics in turn",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL,
    .naxes = 2,
    .axes = {{"topics", "", NULL, {{2, {1, 5}}, {3, {1, 5, 10}}, {3, {1, 5, 10}}}},
             {"partitions", "", NULL, {{1, {4}}, {1, {4}}, {1, {4}}}}},
    .state_size = sizeof(tm_state),
    .setup = tmm_setup,
    .prepare = tm_prepare,
    .run = tm_produce_run,
    .finish = tmm_finish,
    .teardown = tm_teardown,
};
