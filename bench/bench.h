/*
** bench.h -- shared types of takhin-bench, the storage performance suite.
**
** A benchmark (bench_def) is a parameter matrix plus five hooks: setup builds
** the state once per case in a fresh directory, prepare runs untimed before
** every timed run (reset histograms, start threads), run is the timed loop of
** n operations, finish collects per-op figures after the run, teardown frees.
** The runner (runner.c) scales n the way Go's testing package scales b.N and
** wraps each timed run in process-wide snapshots (allocations, rusage,
** /proc/self/io, lock waits), so the benchmarks themselves only do the work.
**
** Benchmarks never talk to a storage engine directly: they call the path
** table (path.h), so one benchmark body measures api, sql, file and sqlite
** alike.
*/
#ifndef TAKHIN_BENCH_H
#define TAKHIN_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "path.h"
#include "stats.h"

#define BENCH_MAX_PARAMS 4
#define BENCH_MAX_METRICS 40
#define BENCH_MAX_VALUES 8

/* Matrix tiers: -smoke (CI: does it run), -quick (2-3 minutes), the default
** and -full (the matrices). */
enum { TIER_SMOKE, TIER_QUICK, TIER_FULL, TIER_COUNT };

typedef struct bench_list {
  int n;
  int64_t v[BENCH_MAX_VALUES];
} bench_list;

/* One axis of a matrix: "size" with unit "B" prints as size=1024B; an axis
** with labels prints labels[value] (partition=shared). */
typedef struct bench_axis {
  const char *key;
  const char *unit;
  const char *const *labels;
  bench_list tier[TIER_COUNT];
} bench_axis;

#define BENCH_DURABLE 1u /* writes: run once per requested durability mode */
#define BENCH_OPS 2u     /* report ops/s (the issue asks for it with latencies) */
#define BENCH_ONCE                                                                                 \
  4u /* one timed run of one op, whatever -benchtime says: an op
                            consumes state that setup/prepare built (Compaction) */

typedef struct bench_result bench_result;
typedef struct bench_results bench_results;

/* What setup gets: the path to measure and a fresh, empty directory. */
typedef struct bench_env {
  const bench_path *path;
  const char *dir;
  int durability;   /* TAKHIN_DURABILITY_* */
  const int64_t *p; /* parameter values, in axis order */
  int tier;
  uint64_t seed;
  int cold; /* -cold and the benchmark has a cold hook */
} bench_env;

typedef struct bench_def {
  const char *name; /* without the "Benchmark" prefix */
  const char *what; /* one line for -list */
  unsigned flags;   /* BENCH_* */
  unsigned paths;   /* bit (1u << PATH_*) per path this benchmark supports */
  /* For a path left out of `paths`: why (printed as an n/a line). */
  const char *na[PATH_COUNT];
  int naxes;
  bench_axis axes[BENCH_MAX_PARAMS];
  size_t state_size;
  int (*setup)(void *st, const bench_env *env);        /* untimed */
  int (*prepare)(void *st, int64_t n);                 /* untimed, may be NULL */
  int (*run)(void *st, int64_t n);                     /* timed */
  int (*finish)(void *st, int64_t n, bench_result *r); /* untimed */
  void (*teardown)(void *st);
  /* -cold: make the next timed run start from disk, untimed: close the
  ** store, bench_drop_cache() its directory, reopen. NULL: no cold mode. */
  int (*cold)(void *st);
  /* After the result is complete: figures that need other results
  ** (speed-up over single writes, scaling against one thread). May be NULL. */
  void (*derive)(bench_result *r, const bench_results *all);
} bench_def;

typedef struct bench_metric {
  char key[40];
  double v;
} bench_metric;

/* One measured case. NaN marks a figure that does not apply (JSON null). */
struct bench_result {
  const bench_def *def; /* NULL for results loaded from a JSON file */
  int64_t p[BENCH_MAX_PARAMS];
  char name[192]; /* "BenchmarkWriteThroughput/messages=1000/size=1024B" */
  int path;       /* PATH_* */
  int durability; /* TAKHIN_DURABILITY_* */
  int procs;
  int64_t iterations;
  double ns_per_op, mb_per_s, msgs_per_s, allocs_per_op, bytes_per_op;
  double p50_ms, p99_ms, p999_ms;
  /* Filled by finish: payload per op, for MB/s and msg/s. */
  double payload_bytes_per_op, msgs_per_op;
  int nmetrics;
  bench_metric m[BENCH_MAX_METRICS];
};

struct bench_results {
  bench_result *v;
  size_t n, cap;
};

/* ---- registry.c ---------------------------------------------------------- */
extern const bench_def *const bench_defs[];
extern const size_t bench_ndefs;
/* Benchmarks of the issue that wait for a library feature: name and need. */
extern const char *const bench_pending[][2];
extern const size_t bench_npending;
/* "messages=1000/size=1024B" for parameter values p of def. */
void bench_params_name(const bench_def *def, const int64_t *p, char *out, size_t cap);

/* ---- the benchmarks ------------------------------------------------------ */
extern const bench_def bench_write_throughput, bench_batch_write_throughput, bench_produce_latency,
    bench_segment_rollover, bench_sequential_fetch, bench_random_fetch, bench_fetch_latency,
    bench_tail_fetch, bench_concurrent_producers, bench_concurrent_consumers, bench_mixed_workload,
    bench_compaction, bench_compacted_produce, bench_key_lookup, bench_produce_after_compaction,
    bench_tm_produce, bench_tm_fetch, bench_tm_balance, bench_tm_multi_topic;

/* bench_concurrency.c: scaling-x and scaling-eff against the same case with
** axis 0 (threads or partitions) = 1; a bench_def derive hook. */
void bench_scaling_derive(bench_result *r, const bench_results *all);

/* ---- results (report.c) -------------------------------------------------- */
void result_init(bench_result *r);
void result_metric(bench_result *r, const char *key, double v);
double result_get_metric(const bench_result *r, const char *key); /* NaN if absent */
int results_push(bench_results *rs, const bench_result *r);
void results_free(bench_results *rs);
/* Median of a figure over every result with this name, path and durability;
** NaN if none. figure is a JSON field name ("mb_per_s") or a metric key. */
double results_median(const bench_results *rs, const char *name, int path, int durability,
                      const char *figure);
double result_figure(const bench_result *r, const char *figure);

typedef struct machine_info {
  char cpu[128], kernel[256], sqlite[32], zstd[32], date[32], takhin[32];
  int cores;
  double load[3]; /* load average when the run started: other work skews figures */
} machine_info;
void machine_info_get(machine_info *mi);

const char *durability_name(int durability); /* "os", "fsync", "buffered" */
/* Percentiles of h (ns) into r's p50/p99/p999, in ms. */
void result_latency(bench_result *r, const hist *h);

void report_set_width(int name_width);
void report_header(FILE *f, const machine_info *mi);
void report_line(FILE *f, const bench_result *r);
void report_ratios(FILE *f, const bench_results *rs);
/* extra: more members of the top-level object ("\"scorecard\": [...]"), or NULL. */
int report_json(const char *file, const machine_info *mi, const bench_results *rs,
                const char *settings, const char *extra);
int report_csv(const char *file, const bench_results *rs);

/* ---- compare.c ----------------------------------------------------------- */
/* How a run was made (the JSON "settings"): another mode or -benchtime
** measures other matrices or amounts of work, so such runs are not compared. */
typedef struct run_mode {
  char tier[16];      /* "smoke", "quick", "default", "full"; "" when not recorded */
  char benchtime[32]; /* as given: "200ms", "4x" */
  char file[256];     /* where it came from, for messages */
} run_mode;
/* Load results from a comma-separated list of JSON files written by -json.
** mode (may be NULL) receives their mode; files made in different modes are
** refused with a message (-1). */
int results_load_json(const char *files, bench_results *out, run_mode *mode);
/* 0 when old and cur were made the same way; else says why not on stderr, -1. */
int run_mode_check(const run_mode *old, const run_mode *cur);
/* Print old/new/change, p-value and sample counts per figure (utest.c);
** returns the number of regressions. */
int compare_print(FILE *f, const bench_results *old, const bench_results *cur);

/* ---- errors -------------------------------------------------------------- */
/* Record why the current case failed (first message wins; thread-safe). */
void bench_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bench_error(void);
void bench_error_clear(void);

/* ---- payload.c: what benchmarks write ------------------------------------ */
/* A pool of records of `size` payload bytes (a 16-byte key plus size-16 value
** bytes of random data), built before timing so the timed loop only indexes. */
typedef struct payload_pool {
  takhin_record *recs;
  size_t n, size, batch;
  unsigned char *keys, *random;
} payload_pool;
#define PAYLOAD_KEY_LEN 16
int payload_pool_init(payload_pool *p, size_t size, size_t batch, uint64_t seed);
/* Records of batch number i, `batch` of them, contiguous. */
static inline const takhin_record *payload_batch(const payload_pool *p, uint64_t i) {
  return p->recs + (i % (p->n / p->batch)) * p->batch;
}
void payload_pool_free(payload_pool *p);

/* Records per pre-fill batch for messages of `size` bytes: about 16 KiB per
** batch (Kafka's default producer batch.size), between 1 and 100 records. */
static inline size_t prefill_batch(size_t size) {
  size_t n = 16384 / (size ? size : 1);
  return n < 1 ? 1 : n > 100 ? 100 : n;
}

/* Fill a partition of a fresh store with `messages` records, one produce call
** per pool batch, then flush: the untimed pre-fill of the read benchmarks. */
int prefill(const bench_path *path, bp_store *st, int32_t part, const payload_pool *pool,
            int64_t messages);

static inline uint64_t rng_next(uint64_t *s) { /* splitmix64: tiny and good enough */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Why path cannot run def (in durability mode dur), or NULL when it can. */
const char *bench_path_na(const bench_def *def, int path, int durability);

/* Descriptors open in the process (/proc/self/fd); -1 if unknown. */
int fd_count(void);

int fs_mkdir_p(const char *path);
/* Sync every regular file under dir and drop it from the page cache
** (posix_fadvise DONTNEED). Pages a process still maps are not dropped, so
** callers close their store first. */
int bench_drop_cache(const char *dir);
int fs_rm_rf(const char *path);

#endif /* TAKHIN_BENCH_H */
