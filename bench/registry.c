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
    &bench_write_throughput,     &bench_batch_write_throughput, &bench_produce_latency,
    &bench_sequential_fetch,     &bench_random_fetch,           &bench_fetch_latency,
    &bench_concurrent_producers, &bench_concurrent_consumers,   &bench_segment_rollover,
    &bench_mixed_workload,
};
const size_t bench_ndefs = sizeof bench_defs / sizeof bench_defs[0];

const char *const bench_pending[][2] = {
    {"Compaction", "not written yet (will measure takhin_compact)"},
    {"TopicManagerProduceThroughput", "not written yet (will use takhin_produce_topic)"},
    {"TopicManagerFetchThroughput", "not written yet (will use takhin_produce_topic)"},
    {"TopicManagerPartitionBalance", "not written yet (will use takhin_topic_balance)"},
    {"TopicManagerMultiTopic", "not written yet (will use takhin_produce_topic)"},
};
const size_t bench_npending = sizeof bench_pending / sizeof bench_pending[0];

/* Indexed by PATH_*; the order is also the default -path order. */
const bench_path *const bench_paths[PATH_COUNT] = {
    [PATH_API] = &bench_path_api,
    [PATH_SQL] = &bench_path_sql,
    [PATH_FILE] = &bench_path_file,
    [PATH_SQLITE] = &bench_path_sqlite,
};

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
