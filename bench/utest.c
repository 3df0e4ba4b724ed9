/*
** utest.c -- the Mann-Whitney U test (see utest.h).
**
** Exact test: pool both samples, give tied values their mid-rank, and count,
** over all C(N, n1) ways of choosing which n1 pooled values are "x", how many
** give each rank sum. Mid-ranks are halves, so the counting uses doubled ranks
** (integers). The count is a knapsack over the pooled values, O(N * n1 * N^2)
** additions: 5e7 at 50 + 50, a few milliseconds. This is the permutation
** distribution given the ties, which is what benchstat computes for small
** samples with ties, and scipy's "exact" method when there are none.
** Two-sided p = 2 * min(P(S <= s), P(S >= s)), capped at 1.
**
** Normal approximation (either side above UTEST_EXACT_LIMIT): mean n1*n2/2,
** variance n1*n2/12 * ((N+1) - sum(t^3 - t) / (N(N-1))) over tie groups of
** size t, with a continuity correction of 1/2, as scipy.stats.mannwhitneyu's
** "asymptotic" method.
*/
#include "utest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct labeled {
  double v;
  int first; /* 1 when the value belongs to x */
} labeled;

static int cmp_labeled(const void *a, const void *b) {
  double x = ((const labeled *)a)->v, y = ((const labeled *)b)->v;
  return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* P(S <= s) and P(S >= s) for the doubled rank sum S of n1 values drawn
** without replacement from the doubled ranks r2[0..n). */
static int exact_tails(const int *r2, size_t n, size_t n1, long s, double *lo, double *hi) {
  long max = 0;
  for (size_t i = 0; i < n; i++) max += r2[i];
  size_t width = (size_t)max + 1;
  /* ways[k * width + t]: subsets of size k of the values seen so far with sum t */
  double *ways = calloc((n1 + 1) * width, sizeof *ways);
  if (!ways) return -1;
  ways[0] = 1;
  for (size_t i = 0; i < n; i++) {
    size_t kmax = i + 1 < n1 ? i + 1 : n1;
    for (size_t k = kmax; k >= 1; k--) {
      double *to = ways + k * width, *from = ways + (k - 1) * width;
      for (size_t t = (size_t)max; t >= (size_t)r2[i]; t--) {
        to[t] += from[t - (size_t)r2[i]];
        if (t == 0) break;
      }
    }
  }
  double total = 0, below = 0, above = 0;
  const double *row = ways + n1 * width;
  for (size_t t = 0; t < width; t++) {
    total += row[t];
    if ((long)t <= s) below += row[t];
    if ((long)t >= s) above += row[t];
  }
  free(ways);
  *lo = below / total;
  *hi = above / total;
  return 0;
}

static int mann_whitney(const double *x, size_t n1, const double *y, size_t n2, int approx,
                        utest_result *out) {
  out->u = NAN;
  out->p = NAN;
  out->exact = 0;
  if (n1 == 0 || n2 == 0) return -1;
  size_t n = n1 + n2;
  labeled *pool = malloc(n * sizeof *pool);
  int *r2 = malloc(n * sizeof *r2);
  if (!pool || !r2) {
    free(pool);
    free(r2);
    return -1;
  }
  for (size_t i = 0; i < n1; i++) pool[i] = (labeled){x[i], 1};
  for (size_t i = 0; i < n2; i++) pool[n1 + i] = (labeled){y[i], 0};
  qsort(pool, n, sizeof *pool, cmp_labeled);
  /* Doubled mid-ranks: a tie group at 0-based positions [i, j) holds ranks
  ** i+1 .. j, whose mean doubled is i + 1 + j. */
  long s = 0;         /* doubled rank sum of x */
  double tie_sum = 0; /* sum of t^3 - t over tie groups */
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && pool[j].v == pool[i].v) j++;
    double t = (double)(j - i);
    tie_sum += t * t * t - t;
    for (size_t k = i; k < j; k++) {
      r2[k] = (int)(i + 1 + j);
      if (pool[k].first) s += r2[k];
    }
    i = j;
  }
  double u = (double)s / 2 - (double)n1 * (double)(n1 + 1) / 2;
  out->u = u;
  int rc = 0;
  if (!approx && n1 <= UTEST_EXACT_LIMIT && n2 <= UTEST_EXACT_LIMIT) {
    double lo, hi;
    rc = exact_tails(r2, n, n1, s, &lo, &hi);
    if (rc == 0) {
      double p = 2 * (lo < hi ? lo : hi);
      out->p = p > 1 ? 1 : p;
      out->exact = 1;
    }
  } else {
    double nn = (double)n, mu = (double)n1 * (double)n2 / 2;
    double var = (double)n1 * (double)n2 / 12 * ((nn + 1) - tie_sum / (nn * (nn - 1)));
    if (var <= 0) {
      out->p = 1; /* every value equal: nothing moved */
    } else {
      double z = (fabs(u - mu) - 0.5) / sqrt(var);
      if (z < 0) z = 0;
      double p = erfc(z / sqrt(2.0)); /* 2 * (1 - Phi(z)) */
      out->p = p > 1 ? 1 : p;
    }
  }
  free(pool);
  free(r2);
  return rc;
}

int utest_mann_whitney(const double *x, size_t n1, const double *y, size_t n2, utest_result *out) {
  return mann_whitney(x, n1, y, n2, 0, out);
}

int utest_mann_whitney_approx(const double *x, size_t n1, const double *y, size_t n2,
                              utest_result *out) {
  return mann_whitney(x, n1, y, n2, 1, out);
}

/* Copy the non-NaN values of v[0..n) into a fresh sorted array. */
static double *clean_sorted(const double *v, size_t n, size_t *out_n) {
  double *c = malloc((n ? n : 1) * sizeof *c);
  if (!c) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!isnan(v[i])) c[k++] = v[i];
  qsort(c, k, sizeof *c, cmp_double);
  *out_n = k;
  return c;
}

static double median_sorted(const double *v, size_t n) {
  if (n == 0) return NAN;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int utest_judge(const double *old, size_t n_old, const double *cur, size_t n_cur,
                int higher_is_better, double threshold, double min_abs, utest_verdict *v) {
  memset(v, 0, sizeof *v);
  v->p = NAN;
  size_t na, nb;
  double *a = clean_sorted(old, n_old, &na), *b = clean_sorted(cur, n_cur, &nb);
  if (!a || !b) {
    free(a);
    free(b);
    return -1;
  }
  v->n_old = (int)na;
  v->n_new = (int)nb;
  v->old_median = median_sorted(a, na);
  v->new_median = median_sorted(b, nb);
  double d = v->new_median - v->old_median;
  if (v->old_median != 0) v->change = d / fabs(v->old_median);
  else v->change = d == 0 ? 0 : d > 0 ? INFINITY : -INFINITY;
  v->too_few = na < UTEST_MIN_SAMPLES || nb < UTEST_MIN_SAMPLES;
  int rc = 0;
  if (na && nb) {
    utest_result r;
    rc = utest_mann_whitney(a, na, b, nb, &r);
    /* The p-value is printed whenever it can be computed; it only counts
    ** with enough samples. */
    v->p = r.p;
  }
  free(a);
  free(b);
  if (rc != 0 || na == 0 || nb == 0) return rc;
  v->significant = !v->too_few && v->p < UTEST_ALPHA;
  if (threshold > 0) {
    if (higher_is_better) v->worse = v->change < -threshold && -d >= min_abs;
    else v->worse = v->change > threshold && d >= min_abs;
  }
  v->alarm = v->worse && v->significant;
  return 0;
}
