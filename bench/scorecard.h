/*
** scorecard.h -- targets met or missed (scorecard.c) and the bottleneck
** report built on them (bottleneck.c).
*/
#ifndef TAKHIN_BENCH_SCORECARD_H
#define TAKHIN_BENCH_SCORECARD_H

#include <stdio.h>

#include "bench.h"

typedef struct sc_line {
  size_t target;       /* index into the target table */
  char case_name[192]; /* the case the figure comes from; "" when not run */
  char note[160];
  double measured;   /* NaN: not run */
  double margin_pct; /* good side of the limit, % of it; NaN when the limit is 0 */
  double margin_abs;
  int met;
  const char *verdict; /* "met", "MISSED", "not run" */
} sc_line;

#define SC_MAX 32
int scorecard_eval(const bench_results *rs, sc_line *lines, size_t cap);
void scorecard_print(FILE *f, const sc_line *lines, int n);
/* A JSON array (no trailing newline). */
void scorecard_json(FILE *f, const sc_line *lines, int n);
const char *scorecard_target_what(const sc_line *l);
const char *scorecard_target_source(const sc_line *l);
int scorecard_target_path(const sc_line *l);
const char *scorecard_target_figure(const sc_line *l);

/* bottleneck.c: the top three signals of the worst-missed and the slowest
** cases. hw_why: why hardware counters are unavailable, or NULL. */
void bottleneck_report(FILE *f, FILE *json, const bench_results *rs, const sc_line *lines, int n,
                       const char *hw_why);

#endif /* TAKHIN_BENCH_SCORECARD_H */
