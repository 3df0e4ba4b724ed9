/*
** test_bench_utest.c -- the statistics behind takhin-bench -compare
** (bench/utest.c): the Mann-Whitney U test against reference p-values, and the
** verdict on recorded sample sets (no alarm for noise, an alarm for a shift).
**
** References:
**  - scipy.stats.mannwhitneyu documentation, its example (Conover's data):
**    males [19 22 16 29 24], females [20 11 17 12]: U = 17,
**    method="exact" p = 0.1111111111111111, method="asymptotic" (continuity
**    correction) p = 0.11134688653314041.
**  - R's wilcox.test help page, x = c(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91,
**    1.64, 0.73, 1.46), y = c(1.15, 0.88, 0.90, 0.74, 1.21): W = 35, one-sided
**    p = 0.1272, so two-sided 0.2544.
**  - Complete separation of 6 and 6: p = 2 / C(12, 6) = 2/924.
**  - With ties, the exact p is checked against brute force over every one of
**    the C(N, n1) labellings (a different algorithm from the counting one).
*/
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "utest.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const double males[] = {19, 22, 16, 29, 24}, females[] = {20, 11, 17, 12};

Test(utest, scipy_example_exact) {
  utest_result r;
  cr_assert_eq(utest_mann_whitney(males, N(males), females, N(females), &r), 0);
  cr_assert_eq(r.u, 17);
  cr_assert(r.exact);
  cr_assert_float_eq(r.p, 0.1111111111111111, 1e-12, "p = %.17g", r.p);
}

Test(utest, scipy_example_asymptotic) {
  utest_result r;
  cr_assert_eq(utest_mann_whitney_approx(males, N(males), females, N(females), &r), 0);
  cr_assert(!r.exact);
  cr_assert_float_eq(r.p, 0.11134688653314041, 1e-9, "p = %.17g", r.p);
}

Test(utest, r_wilcox_example) {
  static const double x[] = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
  static const double y[] = {1.15, 0.88, 0.90, 0.74, 1.21};
  utest_result r;
  cr_assert_eq(utest_mann_whitney(x, N(x), y, N(y), &r), 0);
  cr_assert_eq(r.u, 35);
  cr_assert_float_eq(r.p, 2 * 0.1272, 1e-4, "p = %.6f", r.p);
}

Test(utest, symmetric_in_its_arguments) {
  utest_result a, b;
  utest_mann_whitney(males, N(males), females, N(females), &a);
  utest_mann_whitney(females, N(females), males, N(males), &b);
  cr_assert_eq(a.u + b.u, (double)(N(males) * N(females)));
  cr_assert_float_eq(a.p, b.p, 1e-12);
}

Test(utest, complete_separation_6_6) {
  static const double a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12};
  utest_result r;
  utest_mann_whitney(a, 6, b, 6, &r);
  cr_assert_eq(r.u, 0);
  cr_assert_float_eq(r.p, 2.0 / 924, 1e-12);
}

Test(utest, all_equal_is_p_1) {
  static const double a[] = {5, 5, 5, 5, 5, 5}, b[] = {5, 5, 5, 5, 5, 5};
  utest_result r;
  utest_mann_whitney(a, 6, b, 6, &r);
  cr_assert_eq(r.p, 1);
  utest_mann_whitney_approx(a, 6, b, 6, &r);
  cr_assert_eq(r.p, 1);
}

Test(utest, empty_side_is_an_error) {
  utest_result r;
  cr_assert_eq(utest_mann_whitney(males, N(males), NULL, 0, &r), -1);
  cr_assert(isnan(r.p));
}

/* Two-sided p by enumerating every labelling: the reference for ties. */
static double brute_p(const double *x, int n1, const double *y, int n2) {
  double pool[20];
  int n = n1 + n2;
  for (int i = 0; i < n1; i++) pool[i] = x[i];
  for (int i = 0; i < n2; i++) pool[n1 + i] = y[i];
  /* U of a labelling: pairs (a in x, b in y) with a > b, ties 1/2. */
  double u_obs = 0;
  for (int i = 0; i < n1; i++)
    for (int j = 0; j < n2; j++) u_obs += x[i] > y[j] ? 1 : x[i] == y[j] ? 0.5 : 0;
  double total = 0, lo = 0, hi = 0;
  for (uint32_t m = 0; m < (1u << n); m++) {
    if (__builtin_popcount(m) != n1) continue;
    double u = 0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        if ((m >> i & 1) && !(m >> j & 1))
          u += pool[i] > pool[j] ? 1 : pool[i] == pool[j] ? 0.5 : 0;
    total++;
    if (u <= u_obs + 1e-9) lo++;
    if (u >= u_obs - 1e-9) hi++;
  }
  double p = 2 * (lo < hi ? lo : hi) / total;
  return p > 1 ? 1 : p;
}

Test(utest, ties_match_brute_force) {
  /* allocs/op style figures: few distinct values, many ties */
  static const double sets[][2][7] = {
      {{12, 12, 12, 13, 12, 12, 12}, {12, 13, 13, 13, 12, 13, 13}},
      {{1, 2, 2, 3, 3, 3, 4}, {2, 3, 3, 4, 4, 5, 5}},
      {{7, 7, 7, 7, 7, 7, 8}, {7, 7, 7, 7, 7, 7, 7}},
      {{0.5, 1, 1, 1.5, 2, 2, 2}, {1, 1, 1.5, 1.5, 2, 2.5, 3}},
  };
  for (size_t s = 0; s < N(sets); s++) {
    utest_result r;
    utest_mann_whitney(sets[s][0], 7, sets[s][1], 7, &r);
    double want = brute_p(sets[s][0], 7, sets[s][1], 7);
    cr_assert(r.exact);
    cr_assert_float_eq(r.p, want, 1e-12, "set %zu: p %.12f, brute force %.12f", s, r.p, want);
  }
  /* unequal sizes with ties */
  static const double a[] = {3, 3, 4, 5, 5}, b[] = {1, 3, 3, 3, 4, 4, 5, 6, 6};
  utest_result r;
  utest_mann_whitney(a, N(a), b, N(b), &r);
  cr_assert_float_eq(r.p, brute_p(a, N(a), b, N(b)), 1e-12);
}

Test(utest, large_samples_use_the_approximation) {
  double a[60], b[60];
  for (int i = 0; i < 60; i++) {
    a[i] = 100 + (i * 37 % 60) * 0.1; /* 100.0 .. 105.9 */
    b[i] = 103 + (i * 41 % 60) * 0.1; /* 103.0 .. 108.9 */
  }
  utest_result r;
  utest_mann_whitney(a, 60, b, 60, &r);
  cr_assert(!r.exact);
  cr_assert_lt(r.p, 1e-6);
}

/* ---- verdicts on recorded sample sets ------------------------------------
** MB/s of WriteThroughput/messages=1000/size=1024B/api, six interleaved runs
** of the same binary on this 2-core machine while others were building. */
static const double same_a[] = {121.4, 95.2, 118.7, 97.3, 120.9, 96.1};
static const double same_b[] = {96.0, 119.8, 94.4, 97.1, 122.3, 95.3};

Test(verdict, same_distribution_raises_no_alarm) {
  utest_verdict v;
  cr_assert_eq(utest_judge(same_a, 6, same_b, 6, 1, 0.10, 0, &v), 0);
  /* the medians alone say -10.9%: the old median rule flagged this */
  cr_assert_lt(v.change, -0.10, "change %.3f", v.change);
  cr_assert(v.worse);
  cr_assert(!v.significant, "p = %.4f", v.p);
  cr_assert(!v.alarm);
  cr_assert_eq(v.n_old, 6);
  cr_assert_eq(v.n_new, 6);
}

Test(verdict, same_distribution_both_ways) {
  utest_verdict v;
  utest_judge(same_b, 6, same_a, 6, 1, 0.10, 0, &v);
  cr_assert(!v.alarm);
  utest_judge(same_a, 6, same_a, 6, 1, 0.10, 0, &v);
  cr_assert(!v.alarm);
  cr_assert_eq(v.p, 1);
}

Test(verdict, clear_shift_raises_an_alarm) {
  static const double old[] = {100.2, 101.5, 99.1, 102.3, 98.4, 100.6};
  static const double cur[] = {80.3, 82.2, 79.6, 81.4, 83.0, 80.5};
  utest_verdict v;
  utest_judge(old, 6, cur, 6, 1, 0.10, 0, &v);
  cr_assert(v.alarm);
  cr_assert_float_eq(v.p, 2.0 / 924, 1e-12);
  cr_assert_lt(v.change, -0.19);
}

Test(verdict, significant_but_small_change_is_no_alarm) {
  static const double old[] = {100.2, 101.5, 99.1, 102.3, 98.4, 100.6};
  static const double cur[] = {95.3, 96.2, 94.6,
                               95.4, 96.0, 94.5}; /* -5%: under the 10% threshold */
  utest_verdict v;
  utest_judge(old, 6, cur, 6, 1, 0.10, 0, &v);
  cr_assert(v.significant);
  cr_assert(!v.worse);
  cr_assert(!v.alarm);
}

Test(verdict, improvement_is_no_alarm) {
  static const double old[] = {80.3, 82.2, 79.6, 81.4, 83.0, 80.5};
  static const double cur[] = {100.2, 101.5, 99.1, 102.3, 98.4, 100.6};
  utest_verdict v;
  utest_judge(old, 6, cur, 6, 1, 0.10, 0, &v);
  cr_assert(v.significant);
  cr_assert(!v.alarm);
}

Test(verdict, too_few_samples_give_no_verdict) {
  static const double old[] = {100, 101, 99, 102, 98};
  static const double cur[] = {50, 51, 49, 52, 48};
  utest_verdict v;
  utest_judge(old, 5, cur, 5, 1, 0.10, 0, &v);
  cr_assert(v.too_few);
  cr_assert(v.worse);
  cr_assert(!v.alarm);
  cr_assert_float_eq(v.p, 2.0 / 252, 1e-12); /* still computed and printed */
}

Test(verdict, allocs_with_ties) {
  /* allocs/op: integers, every run alike within a side */
  static const double old[] = {12, 12, 12, 12, 12, 12}, cur[] = {15, 15, 15, 15, 15, 15};
  utest_verdict v;
  utest_judge(old, 6, cur, 6, 0, 0.20, 0.5, &v);
  cr_assert(v.alarm);
  cr_assert_float_eq(v.p, 2.0 / 924, 1e-12);
  /* +100% of a tiny figure, under the absolute floor of 0.5 allocations */
  static const double o2[] = {0.01, 0.01, 0.01, 0.01, 0.01, 0.01},
                      c2[] = {0.02, 0.02, 0.02, 0.02, 0.02, 0.02};
  utest_judge(o2, 6, c2, 6, 0, 0.20, 0.5, &v);
  cr_assert(v.significant);
  cr_assert(!v.alarm);
}

Test(verdict, p99_up_by_half) {
  static const double old[] = {1.10, 1.21, 1.05, 1.32, 1.15, 1.18};
  static const double cur[] = {2.05, 1.96, 2.31, 1.88, 2.12, 2.20};
  utest_verdict v;
  utest_judge(old, 6, cur, 6, 0, 0.50, 0, &v);
  cr_assert(v.alarm);
}

Test(verdict, nan_samples_are_skipped) {
  static const double old[] = {100, NAN, 101, 99, 102, 98, 100.5, NAN};
  static const double cur[] = {80, 82, 79, 81, 83, 80.5};
  utest_verdict v;
  utest_judge(old, N(old), cur, 6, 1, 0.10, 0, &v);
  cr_assert_eq(v.n_old, 6);
  cr_assert(v.alarm);
}
