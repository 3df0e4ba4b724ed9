/*
** runner.h -- running one case: options shared by main.c and runner.c.
*/
#ifndef TAKHIN_BENCH_RUNNER_H
#define TAKHIN_BENCH_RUNNER_H

#include <signal.h>
#include <stdint.h>

#include "bench.h"

typedef struct run_opts {
  int64_t benchtime_ns; /* run until one timed run lasts this long ... */
  int64_t benchtime_n;  /* ... or, when > 0, exactly this many operations */
  const char *tmpdir;   /* scratch root; each case gets a fresh folder in it */
  int tier;
  uint64_t seed;
  int cold; /* -cold: benchmarks with a cold hook drop the page cache before each timed run */
} run_opts;

/* Set by SIGINT: the runner stops after the current timed run. */
extern volatile sig_atomic_t bench_interrupted;

/* Run def with parameters p on one path and durability; fills *out. 0, or -1
** with bench_error() saying why. The case folder is removed either way. */
int run_case(const run_opts *o, const bench_def *def, const int64_t *p, int path, int durability,
             bench_result *out);

#endif /* TAKHIN_BENCH_RUNNER_H */
