/*
** utest.h -- the Mann-Whitney U test and the verdict -compare draws from it.
**
** benchstat (golang.org/x/perf) judges a change between two sets of benchmark
** samples with a two-sided Mann-Whitney U test: it assumes nothing about the
** shape of the distribution (benchmark timings are skewed and have outliers)
** and only ranks matter, so one wild run cannot make or break a verdict.
** -compare does the same, and raises an alarm only when a change is both
** larger than the plan's threshold and significant.
**
** Pure functions of their arguments: no I/O, no globals, so the unit tests
** (tests/test_bench_utest.c) drive them with recorded sample sets.
*/
#ifndef TAKHIN_BENCH_UTEST_H
#define TAKHIN_BENCH_UTEST_H

#include <stddef.h>

/* Fewer samples than this per side and no verdict is given: with 6 and 6 the
** smallest two-sided p an exact U test can reach is 2/924 = 0.002, with 3 and
** 3 it is 0.1, which can never be significant. */
#define UTEST_MIN_SAMPLES 6
#define UTEST_ALPHA 0.05

/* Largest side for the exact distribution; above it the normal approximation
** with tie correction (as benchstat, which switches at 50 too). */
#define UTEST_EXACT_LIMIT 50

typedef struct utest_result {
  double u;  /* U of the first sample: pairs (x, y) with x > y, ties counting 1/2 */
  double p;  /* two-sided p-value; 1 when every value is equal; NaN if a side is empty */
  int exact; /* 1: exact permutation distribution (ties included); 0: normal approximation */
} utest_result;

/* Two-sided Mann-Whitney U test of x[0..n1) against y[0..n2). Returns 0, or -1
** when a side is empty or memory runs out (p is NaN then). */
int utest_mann_whitney(const double *x, size_t n1, const double *y, size_t n2, utest_result *out);

/* The same with the normal approximation whatever the sizes (tests compare it
** with reference values). */
int utest_mann_whitney_approx(const double *x, size_t n1, const double *y, size_t n2,
                              utest_result *out);

/* How one figure of one case moved between two sets of samples. */
typedef struct utest_verdict {
  double old_median, new_median;
  double change; /* (new - old) / |old|; +/-INFINITY when old is 0 and new is not */
  double p;      /* NaN when there are too few samples to test */
  int n_old, n_new;
  int too_few;     /* a side has fewer than UTEST_MIN_SAMPLES: no verdict */
  int significant; /* p < UTEST_ALPHA with enough samples */
  int worse;       /* the change passes the threshold in the bad direction */
  int alarm;       /* worse and significant: a regression */
} utest_verdict;

/* Judge samples old[0..n_old) against cur[0..n_cur) for a figure where
** higher_is_better says which way is good. threshold is the relative change
** that counts as worse (0.10 for -10% MB/s); 0 judges nothing (context only).
** min_abs is an absolute floor on the bad change as well (allocs/op: 0.5) so a
** rounding blip on a tiny figure is not a regression. NaN samples are skipped.
** Returns 0, -1 on allocation failure. */
int utest_judge(const double *old, size_t n_old, const double *cur, size_t n_cur,
                int higher_is_better, double threshold, double min_abs, utest_verdict *v);

#endif /* TAKHIN_BENCH_UTEST_H */
