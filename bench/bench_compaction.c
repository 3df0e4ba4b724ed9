/*
** bench_compaction.c -- compacted topics: compaction itself, what the key
** index costs a producer, and key lookups.
**
**   Compaction        one op = one forced compaction of a partition holding
**                     `segments` sealed segments of 1 MiB (COMPACT_SEGMENT)
**                     plus an active one, filled with records of `size`
**                     bytes of which `dup`% repeat an earlier key (so about
**                     dup% of the records are superseded and compaction may
**                     remove them). Setup builds and flushes the log, so the
**                     timed op is the compaction alone; one op per case
**                     (BENCH_ONCE: the op consumes what setup built). Figures:
**                     MB reclaimed, keys (records) removed, duration, and ms
**                     per 100 MB of segment data compacted; MB/s is that data
**                     over the duration.
**   CompactedProduce  one op = one produce call of `batch` keyed records,
**                     policy=delete (a plain topic) or policy=compact (the
**                     key index is maintained). vs-plain-x is the compact
**                     case's MB/s over the delete case's: what the key index
**                     costs a producer. Every call is timed (p50/p99/p999):
**                     a producer that writes the key rows itself now and then
**                     shows there, not in the mean.
**   KeyLookup         one op = the latest record of a random key of a
**                     compacted partition (10,000 keys, each written twice);
**                     every lookup is timed.
** The file path has no keys: it is n/a for CompactedProduce and KeyLookup.
** Its Compaction is the physical floor (path_file.c): the same records,
** told which survive for free, read and rewritten with plain read() and
** write() to the same durability point (fdatasync of each new file, fsync of
** the folder, renames, fsync of the folder), no catalog and no key index.
** The scorecard holds api to 1.5x of it (ms_per_100mb, same case: the two
** formats frame a record in nearly the same bytes, but segments roll at
** slightly different records, so the records compacted differ by up to 2%).
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define COMPACT_SEGMENT (1 << 20)
#define LOOKUP_KEYS 10000
#define LOOKUP_DRAWS 65536 /* power of two: the index is masked */

static const char *const no_keys = "a plain file has no keys: nothing to compact or look up";

/* "k" and 15 decimal digits: 16 bytes, the harness's key length. */
static void key16(unsigned char *out, uint64_t id) {
  out[0] = 'k';
  for (int i = 15; i >= 1; i--) {
    out[i] = (unsigned char)('0' + id % 10);
    id /= 10;
  }
}

/* Bytes of a zigzag varint (Kafka's record fields). */
static int64_t varint_len(int64_t v) {
  uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  int64_t n = 1;
  while (z >= 0x80) z >>= 7, n++;
  return n;
}

/* Records a takhin partition with COMPACT_SEGMENT segments holds in
** `segments` full segments plus one batch, for a path without segments (the
** sqlite path stores the same records as api and sql). Kafka RecordBatch v2:
** a 61-byte batch header; per record a length varint, attributes, timestamp
** delta (0 within a batch), offset delta, key and value with their lengths,
** and a header count. */
static int64_t records_for_segments(int64_t segments, size_t size, size_t batch) {
  int64_t bytes = 61;
  for (size_t i = 0; i < batch; i++) {
    int64_t body = 1 + 1 + varint_len((int64_t)i) + varint_len(PAYLOAD_KEY_LEN) + PAYLOAD_KEY_LEN +
                   varint_len((int64_t)(size - PAYLOAD_KEY_LEN)) +
                   (int64_t)(size - PAYLOAD_KEY_LEN) + 1;
    bytes += varint_len(body) + body;
  }
  return (segments * (COMPACT_SEGMENT / bytes) + 1) * (int64_t)batch;
}

/* Write back everything setup wrote before the timed run, as the setup of
** a one-shot case must: otherwise the kernel writes the setup's 100 MB
** back during the run, on the same two cores, and the file system still
** holds the previous cases' deletions as recent (an ext4 without a journal
** then scans past each of them for every inode it allocates). */
static void settle_fs(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  syncfs(fd);
  close(fd);
}

/* ---- Compaction -------------------------------------------------------------- */
typedef struct compact_state {
  const bench_path *path;
  bp_store *st;
  payload_pool pool;
  int64_t records, superseded, segments, bytes;
  bp_compaction res;
  uint64_t ns;
} compact_state;

static int compact_setup(void *v, const bench_env *env) {
  compact_state *s = v;
  int64_t want = env->p[0], dup = env->p[2];
  size_t size = (size_t)env->p[1], batch = prefill_batch(size);
  s->path = env->path;
  if (payload_pool_init(&s->pool, size, batch, env->seed) != 0) return -1;
  bp_config cfg = {.dir = env->dir,
                   .durability = env->durability,
                   .partitions = 1,
                   .segment_bytes = COMPACT_SEGMENT,
                   .compacted = 1};
  if (env->path->open(&cfg, &s->st) != 0) return -1;
  takhin_record *recs = calloc(batch, sizeof *recs);
  unsigned char *keys = malloc(batch * PAYLOAD_KEY_LEN);
  if (!recs || !keys) {
    free(recs);
    free(keys);
    bench_errorf("out of memory");
    return -1;
  }
  int64_t target = s->path->segments ? 0 : records_for_segments(want, size, batch);
  uint64_t rng = env->seed ^ 0xc0a1e5ceull, fresh = 0;
  int rc = 0;
  for (;;) {
    const takhin_record *src = payload_batch(&s->pool, (uint64_t)s->records / batch);
    for (size_t j = 0; j < batch; j++) {
      /* dup% of the records repeat a key seen before: each supersedes one. */
      uint64_t id;
      if (fresh > 0 && (int64_t)(rng_next(&rng) % 100) < dup) {
        id = rng_next(&rng) % fresh;
        s->superseded++;
      } else {
        id = fresh++;
      }
      key16(keys + j * PAYLOAD_KEY_LEN, id);
      recs[j] = src[j];
      recs[j].key = keys + j * PAYLOAD_KEY_LEN;
    }
    if ((rc = s->path->produce(s->st, 0, recs, batch, NULL)) != 0) break;
    s->records += (int64_t)batch;
    if (s->path->segments) {
      if ((rc = s->path->segments(s->st, 0, &s->segments)) != 0) break;
      if (s->segments > want) break; /* `want` sealed, one batch in the active one */
    } else if (s->records >= target) {
      break;
    }
  }
  free(recs);
  free(keys);
  if (rc != 0 || s->path->flush(s->st) != 0) return -1;
  settle_fs(env->dir);
  return s->path->compactable_bytes(s->st, 0, &s->bytes);
}

static int compact_run(void *v, int64_t n) {
  compact_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    memset(&s->res, 0, sizeof s->res);
    uint64_t t0 = now_ns();
    if (s->path->compact(s->st, 0, &s->res) != 0) return -1;
    s->ns = now_ns() - t0;
  }
  return 0;
}

static int compact_finish(void *v, int64_t n, bench_result *r) {
  compact_state *s = v;
  (void)n;
  if (s->bytes <= 0) {
    bench_errorf("nothing to compact (%lld bytes of sealed data)", (long long)s->bytes);
    return -1;
  }
  double ms = (double)s->ns / 1e6;
  r->payload_bytes_per_op = (double)s->bytes; /* MB/s: data compacted per second */
  result_metric(r, "mb_compacted", (double)s->bytes / 1e6);
  result_metric(r, "mb_reclaimed", (double)s->res.bytes_reclaimed / 1e6);
  result_metric(r, "keys_removed", (double)s->res.records_removed);
  result_metric(r, "duration_ms", ms);
  result_metric(r, "ms_per_100mb", ms * 1e8 / (double)s->bytes);
  if (s->res.lib_duration_ms >= 0)
    result_metric(r, "lib_duration_ms", (double)s->res.lib_duration_ms);
  if (s->res.keys_kept >= 0) result_metric(r, "keys_kept", (double)s->res.keys_kept);
  result_metric(r, "records", (double)s->records);
  result_metric(r, "records_superseded", (double)s->superseded);
  if (s->path->segments) result_metric(r, "segments", (double)s->segments);
  return 0;
}

static void compact_teardown(void *v) {
  compact_state *s = v;
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
}

const bench_def bench_compaction = {
    .name = "Compaction",
    .what = "one forced compaction of `segments` sealed 1 MiB segments, dup% of records superseded",
    .flags = BENCH_ONCE,
    .paths = PATHS_ALL,
    .naxes = 3,
    .axes = {{"segments", "", NULL, {{1, {2}}, {1, {10}}, {3, {10, 50, 100}}}},
             {"size", "B", NULL, {{1, {1024}}, {2, {100, 1024}}, {2, {100, 1024}}}},
             {"dup", "pct", NULL, {{1, {50}}, {2, {30, 70}}, {3, {30, 50, 70}}}}},
    .state_size = sizeof(compact_state),
    .setup = compact_setup,
    .run = compact_run,
    .finish = compact_finish,
    .teardown = compact_teardown,
};

/* ---- CompactedProduce ---------------------------------------------------------- */
typedef struct cprod_state {
  const bench_path *path;
  bp_store *st;
  payload_pool pool;
  size_t batch;
  uint64_t next;
  hist h;
} cprod_state;

static int cprod_setup(void *v, const bench_env *env) {
  cprod_state *s = v;
  s->path = env->path;
  s->batch = (size_t)env->p[1];
  if (payload_pool_init(&s->pool, (size_t)env->p[2], s->batch, env->seed) != 0) return -1;
  bp_config cfg = {
      .dir = env->dir, .durability = env->durability, .partitions = 1, .compacted = env->p[0] == 1};
  return env->path->open(&cfg, &s->st);
}

static int cprod_prepare(void *v, int64_t n) {
  (void)n;
  hist_reset(&((cprod_state *)v)->h);
  return 0;
}

static int cprod_run(void *v, int64_t n) {
  cprod_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    uint64_t t0 = now_ns();
    if (s->path->produce(s->st, 0, payload_batch(&s->pool, s->next++), s->batch, NULL) != 0)
      return -1;
    hist_record(&s->h, now_ns() - t0);
  }
  return 0;
}

static int cprod_finish(void *v, int64_t n, bench_result *r) {
  cprod_state *s = v;
  (void)n;
  r->msgs_per_op = (double)s->batch;
  r->payload_bytes_per_op = (double)s->batch * (double)s->pool.size;
  result_latency(r, &s->h);
  return 0;
}

static void cprod_teardown(void *v) {
  cprod_state *s = v;
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
}

/* vs-plain-x: the compacted topic's MB/s over the plain one's. */
static void cprod_derive(bench_result *r, const bench_results *all) {
  if (r->p[0] != 1) return;
  int64_t p[BENCH_MAX_PARAMS];
  memcpy(p, r->p, sizeof p);
  p[0] = 0;
  char params[160], name[192];
  bench_params_name(r->def, p, params, sizeof params);
  snprintf(name, sizeof name, "Benchmark%s/%s", r->def->name, params);
  double plain = results_median(all, name, r->path, r->durability, "mb_per_s");
  if (plain > 0 && r->mb_per_s > 0) {
    result_metric(r, "vs_plain", r->mb_per_s / plain);
    result_metric(r, "key_index_overhead_pct", (1.0 - r->mb_per_s / plain) * 100.0);
  }
}

static const char *const policy_labels[] = {"delete", "compact"};

const bench_def bench_compacted_produce = {
    .name = "CompactedProduce",
    .what = "produce calls of `batch` keyed records to a plain (delete) or compacted topic",
    .flags = BENCH_DURABLE,
    .paths = PATHS_ALL & ~(1u << PATH_FILE),
    .na = {[PATH_FILE] = no_keys},
    .naxes = 3,
    .axes = {{"policy", "", policy_labels, {{2, {0, 1}}, {2, {0, 1}}, {2, {0, 1}}}},
             {"batch", "", NULL, {{1, {100}}, {2, {1, 100}}, {2, {1, 100}}}},
             {"size", "B", NULL, {{1, {1024}}, {1, {1024}}, {2, {100, 1024}}}}},
    .state_size = sizeof(cprod_state),
    .setup = cprod_setup,
    .prepare = cprod_prepare,
    .run = cprod_run,
    .finish = cprod_finish,
    .teardown = cprod_teardown,
    .derive = cprod_derive,
};

/* ---- ProduceAfterCompaction ----------------------------------------------------- */
/* The producer right after the catalog was left owing index rows: a forced
** compaction of `segments` 1 MiB segments (compacted topic, 50% of the keys
** superseded; the new segments' rows are owed), or a roll of a plain topic
** whose segment_bytes is `segments` MiB (the sealed segment's rows are
** owed). One op = AFTER_CALLS produce calls of 100 records of 100 B, each
** timed (the rolling call too); max_ms and slow_calls (over 1 ms) show an
** append that paid a chunk of the debt. */
#define AFTER_CALLS 300
#define AFTER_SIZE 100
#define AFTER_BATCH 100
typedef struct after_state {
  compact_state c; /* the compaction case's setup and op */
  payload_pool pool;
  uint64_t next, max_ns;
  int64_t slow;
  hist h;
} after_state;

static void after_call_done(after_state *s, uint64_t ns) {
  hist_record(&s->h, ns);
  if (ns > s->max_ns) s->max_ns = ns;
  if (ns > 1000000) s->slow++;
}

static int after_setup(void *v, const bench_env *env) {
  after_state *s = v;
  hist_reset(&s->h);
  if (payload_pool_init(&s->pool, AFTER_SIZE, AFTER_BATCH, env->seed ^ 0xaf7e5ull) != 0) return -1;
  if (env->p[0] == 0) { /* compaction: its setup, then one forced run */
    int64_t p[BENCH_MAX_PARAMS] = {env->p[1], AFTER_SIZE, 50};
    bench_env e = *env;
    e.p = p;
    if (compact_setup(&s->c, &e) != 0 || compact_run(&s->c, 1) != 0) return -1;
    return 0;
  }
  /* roll: fill one segment of `segments` MiB, time the call that rolls it */
  s->c.path = env->path;
  bp_config cfg = {.dir = env->dir,
                   .durability = env->durability,
                   .partitions = 1,
                   .segment_bytes = env->p[1] * COMPACT_SEGMENT};
  if (env->path->open(&cfg, &s->c.st) != 0) return -1;
  for (int64_t segs = 1; segs < 2;) {
    uint64_t t0 = now_ns();
    if (env->path->produce(s->c.st, 0, payload_batch(&s->pool, s->next++), AFTER_BATCH, NULL))
      return -1;
    uint64_t ns = now_ns() - t0;
    if (env->path->segments(s->c.st, 0, &segs) != 0) return -1;
    if (segs >= 2) after_call_done(s, ns);
  }
  return 0;
}

static int after_run(void *v, int64_t n) {
  after_state *s = v;
  for (int64_t op = 0; op < n; op++)
    for (int i = 0; i < AFTER_CALLS; i++) {
      uint64_t t0 = now_ns();
      if (s->c.path->produce(s->c.st, 0, payload_batch(&s->pool, s->next++), AFTER_BATCH, NULL))
        return -1;
      after_call_done(s, now_ns() - t0);
    }
  return 0;
}

static int after_finish(void *v, int64_t n, bench_result *r) {
  after_state *s = v;
  (void)n;
  r->msgs_per_op = (double)AFTER_CALLS * AFTER_BATCH;
  r->payload_bytes_per_op = (double)AFTER_CALLS * AFTER_BATCH * AFTER_SIZE;
  result_latency(r, &s->h);
  result_metric(r, "max_ms", (double)s->max_ns / 1e6);
  result_metric(r, "slow_calls", (double)s->slow);
  return 0;
}

static void after_teardown(void *v) {
  after_state *s = v;
  compact_teardown(&s->c);
  payload_pool_free(&s->pool);
}

static const char *const after_labels[] = {"compaction", "roll"};

const bench_def bench_produce_after_compaction = {
    .name = "ProduceAfterCompaction",
    .what = "300 produce calls (100 x 100 B) right after a compaction or roll left index rows owed",
    .flags = BENCH_ONCE,
    .paths = 1u << PATH_API,
    .na = {[PATH_SQL] = "the extension's store writes a compaction's rows in its swap",
           [PATH_FILE] = no_keys,
           [PATH_SQLITE] = "no segments",
           [PATH_KAFKA] = "no catalog"},
    .naxes = 2,
    .axes = {{"after", "", after_labels, {{1, {0}}, {2, {0, 1}}, {2, {0, 1}}}},
             {"segments", "", NULL, {{1, {5}}, {1, {20}}, {1, {100}}}}},
    .state_size = sizeof(after_state),
    .setup = after_setup,
    .run = after_run,
    .finish = after_finish,
    .teardown = after_teardown,
};

/* ---- KeyLookup ----------------------------------------------------------------- */
typedef struct lookup_state {
  const bench_path *path;
  bp_store *st;
  bp_reader *rd;
  payload_pool pool;
  int64_t keys;
  unsigned char *key_text; /* keys * 16 bytes */
  uint32_t *draws;
  uint64_t next;
  bp_sink sink;
  hist h;
} lookup_state;

static int lookup_setup(void *v, const bench_env *env) {
  lookup_state *s = v;
  size_t size = (size_t)env->p[0], batch = prefill_batch(size);
  s->path = env->path;
  s->keys = env->tier == TIER_SMOKE ? 100 : LOOKUP_KEYS;
  if (payload_pool_init(&s->pool, size, batch, env->seed) != 0) return -1;
  s->key_text = malloc((size_t)s->keys * PAYLOAD_KEY_LEN);
  s->draws = malloc(LOOKUP_DRAWS * sizeof *s->draws);
  takhin_record *recs = calloc(batch, sizeof *recs);
  if (!s->key_text || !s->draws || !recs) {
    free(recs);
    bench_errorf("out of memory");
    return -1;
  }
  for (int64_t k = 0; k < s->keys; k++) key16(s->key_text + k * PAYLOAD_KEY_LEN, (uint64_t)k);
  bp_config cfg = {.dir = env->dir, .durability = env->durability, .partitions = 1, .compacted = 1};
  int rc = env->path->open(&cfg, &s->st);
  /* Every key twice: keys 0..K-1, then again; the latest is the second. */
  for (int64_t i = 0; rc == 0 && i < 2 * s->keys; i += (int64_t)batch) {
    size_t m = 2 * s->keys - i < (int64_t)batch ? (size_t)(2 * s->keys - i) : batch;
    const takhin_record *src = payload_batch(&s->pool, (uint64_t)i / batch);
    for (size_t j = 0; j < m; j++) {
      recs[j] = src[j];
      recs[j].key = s->key_text + ((i + (int64_t)j) % s->keys) * PAYLOAD_KEY_LEN;
    }
    rc = env->path->produce(s->st, 0, recs, m, NULL);
  }
  free(recs);
  if (rc != 0 || env->path->flush(s->st) != 0 || env->path->reader_open(s->st, 0, &s->rd) != 0)
    return -1;
  uint64_t seed = env->seed ^ 0x10c4ull;
  for (int i = 0; i < LOOKUP_DRAWS; i++)
    s->draws[i] = (uint32_t)(rng_next(&seed) % (uint64_t)s->keys);
  return 0;
}

static int lookup_prepare(void *v, int64_t n) {
  lookup_state *s = v;
  (void)n;
  memset(&s->sink, 0, sizeof s->sink);
  hist_reset(&s->h);
  return 0;
}

static int lookup_run(void *v, int64_t n) {
  lookup_state *s = v;
  for (int64_t op = 0; op < n; op++) {
    uint32_t k = s->draws[s->next++ & (LOOKUP_DRAWS - 1)];
    int64_t off;
    uint64_t t0 = now_ns();
    if (s->path->read_key(s->rd, s->key_text + (size_t)k * PAYLOAD_KEY_LEN, PAYLOAD_KEY_LEN,
                          &s->sink, &off) != 0)
      return -1;
    hist_record(&s->h, now_ns() - t0);
    if (off != s->keys + k) {
      bench_errorf("key %u: latest record at offset %lld, expected %lld", k, (long long)off,
                   (long long)(s->keys + k));
      return -1;
    }
  }
  return 0;
}

static int lookup_finish(void *v, int64_t n, bench_result *r) {
  lookup_state *s = v;
  if (s->sink.msgs != (uint64_t)n || s->sink.bytes != (uint64_t)n * s->pool.size) {
    bench_errorf("looked up %llu records / %llu bytes, expected %lld / %llu",
                 (unsigned long long)s->sink.msgs, (unsigned long long)s->sink.bytes, (long long)n,
                 (unsigned long long)n * s->pool.size);
    return -1;
  }
  result_latency(r, &s->h);
  r->msgs_per_op = 1;
  r->payload_bytes_per_op = (double)s->pool.size;
  return 0;
}

static void lookup_teardown(void *v) {
  lookup_state *s = v;
  if (s->rd) s->path->reader_close(s->rd);
  if (s->st) s->path->close(s->st);
  payload_pool_free(&s->pool);
  free(s->key_text);
  free(s->draws);
}

const bench_def bench_key_lookup = {
    .name = "KeyLookup",
    .what = "latest record of a random key of a compacted partition (10,000 keys x 2 versions)",
    .flags = BENCH_OPS,
    .paths = PATHS_ALL & ~(1u << PATH_FILE),
    .na = {[PATH_FILE] = no_keys},
    .naxes = 1,
    .axes = {{"size", "B", NULL, {{1, {1024}}, {2, {100, 1024}}, {2, {100, 1024}}}}},
    .state_size = sizeof(lookup_state),
    .setup = lookup_setup,
    .prepare = lookup_prepare,
    .run = lookup_run,
    .finish = lookup_finish,
    .teardown = lookup_teardown,
};
