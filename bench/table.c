/*
** table.c -- what a person at a terminal reads: one compact table per
** benchmark family, printed when its last case is done. Cases are rows, and
** for each of the family's 2-4 figures that matter the paths sit side by
** side, so "api against file" is one glance along a row. Every figure still
** goes to the Go benchmark lines (results folder, or stdout when it is not
** a terminal); this is a view of them, fitted to 120 columns.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "table.h"

#define WIDTH 120
#define CELL 7

typedef struct tcol {
  const char *figure; /* a result figure or metric key */
  const char *head;
  double scale; /* displayed = value * scale */
} tcol;

typedef struct tfam {
  const char *bench;
  tcol cols[4];
} tfam;

/* The figures that matter, per family, most important first: when a table
** would not fit, figures are dropped from the end. */
static const tfam fams[] = {
    {"WriteThroughput",
     {{"mb_per_s", "MB/s", 1}, {"allocs_per_op", "allocs/op", 1}, {"msgs_per_s", "k msg/s", 1e-3}}},
    {"BatchWriteThroughput",
     {{"mb_per_s", "MB/s", 1},
      {"speedup_vs_single", "speedup x", 1},
      {"allocs_per_op", "allocs/op", 1}}},
    {"ProduceLatency",
     {{"p50_ms", "p50 us", 1e3}, {"p99_ms", "p99 us", 1e3}, {"ops_per_s", "k ops/s", 1e-3}}},
    {"SequentialFetch",
     {{"mb_per_s", "MB/s", 1},
      {"allocs_per_op", "allocs/op", 1},
      {"storage_read_bytes_per_op", "disk rKB/op", 1e-3}}},
    {"RandomFetch",
     {{"mb_per_s", "MB/s", 1},
      {"msgs_per_s", "k msg/s", 1e-3},
      {"storage_read_bytes_per_op", "disk rKB/op", 1e-3}}},
    {"FetchLatency",
     {{"p50_ms", "p50 us", 1e3}, {"p99_ms", "p99 us", 1e3}, {"ops_per_s", "k ops/s", 1e-3}}},
    {"ConcurrentProducers",
     {{"msgs_per_s", "k msg/s", 1e-3},
      {"scaling_eff", "scaling eff", 1},
      {"p99_ms", "p99 us", 1e3}}},
    {"ConcurrentConsumers",
     {{"msgs_per_s", "k msg/s", 1e-3},
      {"scaling_eff", "scaling eff", 1},
      {"lock_wait_ns_per_op", "lockwait ns/op", 1}}},
    {"SegmentRollover", {{"msgs_per_s", "k msg/s", 1e-3}, {"segments_per_op", "segments/op", 1}}},
    {"MixedWorkload",
     {{"ops_per_s", "k ops/s", 1e-3},
      {"produce_p99_ms", "produce p99 us", 1e3},
      {"fetch_p99_ms", "fetch p99 us", 1e3}}},
    {"Compaction",
     {{"ms_per_100mb", "ms/100MB", 1},
      {"mb_reclaimed", "MB reclaimed", 1},
      {"duration_ms", "ms", 1}}},
    {"CompactedProduce",
     {{"mb_per_s", "MB/s", 1}, {"vs_plain", "vs plain x", 1}, {"allocs_per_op", "allocs/op", 1}}},
    {"KeyLookup",
     {{"p50_ms", "p50 us", 1e3}, {"p99_ms", "p99 us", 1e3}, {"ops_per_s", "k ops/s", 1e-3}}},
    {"TopicManagerProduceThroughput",
     {{"mb_per_s", "MB/s", 1}, {"scaling_eff", "scaling eff", 1}, {"threads", "threads", 1}}},
    {"TopicManagerFetchThroughput",
     {{"mb_per_s", "MB/s", 1}, {"scaling_eff", "scaling eff", 1}, {"threads", "threads", 1}}},
    {"TopicManagerPartitionBalance",
     {{"imbalance_pct", "imbalance %", 1}, {"msgs_per_s", "k msg/s", 1e-3}}},
    {"TopicManagerMultiTopic", {{"mb_per_s", "MB/s", 1}, {"store_fds", "store fds", 1}}},
};

/* At most CELL characters: 3 significant digits, k/M/G above 9999. */
static void cell(char *out, size_t cap, double v) {
  double a = fabs(v);
  if (isnan(v)) snprintf(out, cap, "-");
  else if (a >= 1e10) snprintf(out, cap, "%.3gG", v / 1e9);
  else if (a >= 1e7) snprintf(out, cap, "%.3gM", v / 1e6);
  else if (a >= 1e4) snprintf(out, cap, "%.3gk", v / 1e3);
  else if (a >= 100 || v == 0) snprintf(out, cap, "%.0f", v);
  else snprintf(out, cap, "%.3g", v);
}

void table_print(FILE *f, const bench_results *rs, const bench_def *def) {
  const tfam *fam = NULL;
  for (size_t i = 0; i < sizeof fams / sizeof fams[0] && !fam; i++)
    if (!strcmp(fams[i].bench, def->name)) fam = &fams[i];
  if (!fam) return;
  /* Paths and durability modes that ran; rows = distinct (name, mode). */
  int has_path[PATH_COUNT] = {0}, npaths = 0, modes = 0, first_mode = -1;
  size_t rows[512], nrows = 0;
  size_t label_w = 4, prefix = strlen(def->name) + 10; /* "Benchmark" + name + "/" */
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->v[i];
    if (r->def != def) continue;
    if (!has_path[r->path]) npaths++;
    has_path[r->path] = 1;
    if (first_mode < 0) first_mode = r->durability;
    if (r->durability != first_mode) modes = 1;
    int seen = 0;
    for (size_t k = 0; k < nrows && !seen; k++)
      seen = rs->v[rows[k]].durability == r->durability && !strcmp(rs->v[rows[k]].name, r->name);
    if (seen || nrows == sizeof rows / sizeof rows[0]) continue;
    rows[nrows++] = i;
    size_t w = strlen(r->name) > prefix ? strlen(r->name) - prefix : 1;
    if (w > label_w) label_w = w;
  }
  if (!nrows) return;
  if (modes) label_w += 9; /* " buffered" */
  if (label_w > 44) label_w = 44;
  int ncols = 0;
  while (ncols < 4 && fam->cols[ncols].figure) ncols++;
  /* Drop figures from the end until the table fits. */
  while (ncols > 1 && label_w + (size_t)ncols * ((size_t)npaths * (CELL + 1) + 2) > WIDTH) ncols--;
  size_t group_w = (size_t)npaths * (CELL + 1);

  fprintf(f, "\n%s  (median of each case; durability %s%s)\n", def->name,
          durability_name(first_mode), modes ? " and others, per row" : "");
  fprintf(f, "%-*s", (int)label_w, "");
  for (int c = 0; c < ncols; c++) {
    char h[64];
    snprintf(h, sizeof h, "%s", fam->cols[c].head);
    int pad = (int)group_w - (int)strlen(h);
    /* A figure's name is centred over its paths, with a rule either side. */
    fprintf(f, "  ");
    int left = pad > 0 ? pad / 2 : 0, right = pad > 0 ? pad - left : 0;
    for (int k = 0; k < left; k++) fputc(k == 0 ? ' ' : '-', f);
    fprintf(f, "%.*s", (int)group_w, h);
    for (int k = 0; k < right; k++) fputc(k == right - 1 ? ' ' : '-', f);
  }
  fprintf(f, "\n%-*s", (int)label_w, "case");
  for (int c = 0; c < ncols; c++) {
    fprintf(f, "  ");
    for (int p = 0; p < PATH_COUNT; p++)
      if (has_path[p]) fprintf(f, "%*s ", CELL, bench_paths[p]->name);
  }
  fputc('\n', f);
  for (size_t k = 0; k < nrows; k++) {
    const bench_result *r = &rs->v[rows[k]];
    char label[256];
    const char *params = strlen(r->name) > prefix ? r->name + prefix : "-";
    if (modes) snprintf(label, sizeof label, "%s %s", params, durability_name(r->durability));
    else snprintf(label, sizeof label, "%s", params);
    fprintf(f, "%-*.*s", (int)label_w, (int)label_w, label);
    for (int c = 0; c < ncols; c++) {
      fprintf(f, "  ");
      for (int p = 0; p < PATH_COUNT; p++) {
        if (!has_path[p]) continue;
        char v[32];
        cell(v, sizeof v,
             results_median(rs, r->name, p, r->durability, fam->cols[c].figure) *
                 fam->cols[c].scale);
        fprintf(f, "%*s ", CELL, v);
      }
    }
    fputc('\n', f);
  }
  fflush(f);
}
