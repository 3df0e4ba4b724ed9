/*
** registry.c -- which benchmarks and paths exist, in run order.
**
** Order matters: a benchmark whose derived figures need another's results
** (BatchWriteThroughput's speed-up over WriteThroughput) comes after it.
** Benchmarks of the issue that are not written yet are listed as pending,
** with what they will measure through, and never run.
*/
#include <stdio.h>

#include "bench.h"

const bench_def *const bench_defs[] = {
    &bench_write_throughput,
    &bench_batch_write_throughput,
    &bench_produce_latency,
    &bench_sequential_fetch,
    &bench_random_fetch,
    &bench_fetch_latency,
    &bench_tail_fetch,
    &bench_concurrent_producers,
    &bench_concurrent_consumers,
    &bench_segment_rollover,
    &bench_mixed_workload,
    &bench_compaction,
    &bench_compacted_produce,
    &bench_key_lookup,
    &bench_produce_after_compaction,
    &bench_tm_produce,
    &bench_tm_fetch,
    &bench_tm_balance,
    &bench_tm_multi_topic,
};
const size_t bench_ndefs = sizeof bench_defs / sizeof bench_defs[0];

/* Nothing pending: every benchmark of the issue is written. The table stays
** for the next one (it must not be empty in C, so one NULL row marks it). */
const char *const bench_pending[][2] = {{NULL, NULL}};
const size_t bench_npending = 0;

/* Indexed by PATH_*; the order is also the default -path order. */
const bench_path *const bench_paths[PATH_COUNT] = {
    [PATH_API] = &bench_path_api,     [PATH_SQL] = &bench_path_sql,
    [PATH_FILE] = &bench_path_file,   [PATH_SQLITE] = &bench_path_sqlite,
    [PATH_KAFKA] = &bench_path_kafka, [PATH_MMAP] = &bench_path_mmap,
};

const char *bench_path_na(const bench_def *def, int path, int durability) {
  const bench_path *bp = bench_paths[path];
  const char *why = bp->unavailable ? bp->unavailable() : NULL;
  if (why) return why;
  if (!(def->paths & (1u << path)))
    return def->na[path] ? def->na[path] : "this benchmark does not apply to the path";
  /* Read benchmarks run once, in the first mode listed; a path that has
  ** only some modes (sql: os) reads a store written in its own. */
  if ((def->flags & BENCH_DURABLE) && bp->mode_unavailable) return bp->mode_unavailable(durability);
  return NULL;
}

void bench_params_name(const bench_def *def, const int64_t *p, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (int a = 0; a < def->naxes && len < cap; a++) {
    const bench_axis *ax = &def->axes[a];
    int w;
    if (ax->labels)
      w = snprintf(out + len, cap - len, "%s%s=%s", a ? "/" : "", ax->key, ax->labels[p[a]]);
    else
      w = snprintf(out + len, cap - len, "%s%s=%lld%s", a ? "/" : "", ax->key, (long long)p[a],
                   ax->unit ? ax->unit : "");
    if (w < 0) break;
    len += (size_t)w;
  }
}
