/*
** scorecard.c -- the verdict of a run: every target of the performance plan
** (PERFORMANCE_PLAN.md, "Performance Targets") and every stricter aim of
** ours (BENCHMARKS.md, "Targets"), with the figure measured, met or missed,
** and the margin.
**
** The targets[] table below is the one place a target is written down: the
** terminal, the results folder and the JSON all print from it. A target whose
** case did not run in this mode (a -bench filter, a path left out, -smoke's
** matrices) is "not run", never "met". Figures are the median over -count
** repetitions, durability os (takhin's default, where the plan's targets
** apply).
*/
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scorecard.h"

enum { LT, LE, GE }; /* met when measured < limit, <= limit, >= limit */

typedef enum {
  K_FIGURE,      /* the figure of the first case of `cases` ('|'-separated) that ran */
  K_RATIO,       /* the figure of path over other's, same case */
  K_WORST,       /* the worst figure over every case matching the regex `cases` */
  K_WORST_RATIO, /* the worst of path's figure over other's, same case, over `cases` (regex) */
  K_PER_MSG,     /* K_WORST of figure / the case's messages=N parameter */
  K_SCALING,     /* scaling_eff of `cases` with %d = N (see sc_scaling) */
} sc_kind;

typedef struct sc_target {
  const char *what;   /* what is measured, short */
  const char *source; /* "plan" or "aim" */
  sc_kind kind;
  const char *cases;
  int path, other;
  const char *figure;
  int op;
  double limit;
  const char *unit;
  int n;       /* K_SCALING: the N the target is stated at */
  int threads; /* K_SCALING: 1 when N is a thread count (capped at cores), 0 partitions */
} sc_target;

#define OS TAKHIN_DURABILITY_OS
static const sc_target targets[] = {
    {"produce MB/s, 1 KiB, batch=100", "plan", K_FIGURE,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_API, -1, "mb_per_s", GE, 500,
     "MB/s", 0, 0},
    {"produce vs file, 1 KiB, b=100", "aim", K_RATIO,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_API, PATH_FILE, "mb_per_s", GE, 0.6,
     "x", 0, 0},
    {"produce vs sqlite, 1 KiB, b=100", "aim", K_RATIO,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_API, PATH_SQLITE, "mb_per_s", GE,
     10, "x", 0, 0},
    {"fetch MB/s, 1 KiB, fetch=100", "plan", K_FIGURE,
     "BenchmarkSequentialFetch/messages=10000/size=1024B/fetch=100|"
     "BenchmarkSequentialFetch/messages=1000/size=1024B/fetch=100",
     PATH_API, -1, "mb_per_s", GE, 1000, "MB/s", 0, 0},
    {"fetch vs file, 1 KiB, fetch=100", "aim", K_RATIO,
     "BenchmarkSequentialFetch/messages=10000/size=1024B/fetch=100|"
     "BenchmarkSequentialFetch/messages=1000/size=1024B/fetch=100",
     PATH_API, PATH_FILE, "mb_per_s", GE, 0.5, "x", 0, 0},
    {"fetch vs mmap, 1 KiB, fetch=100", "aim", K_RATIO,
     "BenchmarkSequentialFetch/messages=10000/size=1024B/fetch=100|"
     "BenchmarkSequentialFetch/messages=1000/size=1024B/fetch=100",
     PATH_API, PATH_MMAP, "mb_per_s", GE, 0.5, "x", 0, 0},
    {"produce p99, 1 KiB", "plan", K_FIGURE, "BenchmarkProduceLatency/size=1024B", PATH_API, -1,
     "p99_ms", LT, 2, "ms", 0, 0},
    {"produce p99, 1 KiB", "aim", K_FIGURE, "BenchmarkProduceLatency/size=1024B", PATH_API, -1,
     "p99_ms", LT, 0.05, "ms", 0, 0},
    {"fetch p99, 1 KiB, cached", "plan", K_FIGURE, "BenchmarkFetchLatency/size=1024B", PATH_API, -1,
     "p99_ms", LT, 1, "ms", 0, 0},
    {"fetch p99, 1 KiB, cached", "aim", K_FIGURE, "BenchmarkFetchLatency/size=1024B", PATH_API, -1,
     "p99_ms", LT, 0.02, "ms", 0, 0},
    {"compaction per 100 MB, all cases", "plan", K_WORST, "^BenchmarkCompaction/", PATH_API, -1,
     "ms_per_100mb", LT, 100, "ms", 0, 0},
    {"compaction vs file, all cases", "aim", K_WORST_RATIO, "^BenchmarkCompaction/", PATH_API,
     PATH_FILE, "ms_per_100mb", LE, 1.5, "x", 0, 0},
    {"batch speedup, 1 KiB, batch=100", "plan", K_FIGURE,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_API, -1, "speedup_vs_single", GE, 2,
     "x", 0, 0},
    {"allocs per batch produce call", "plan", K_WORST, "^BenchmarkBatchWriteThroughput/", PATH_API,
     -1, "allocs_per_op", LT, 10, "", 0, 0},
    {"allocs per message, single write", "aim", K_PER_MSG, "^BenchmarkWriteThroughput/", PATH_API,
     -1, "allocs_per_op", LE, 0, "", 0, 0},
    {"partition imbalance, every count", "plan", K_WORST, "^BenchmarkTopicManagerPartitionBalance/",
     PATH_API, -1, "imbalance_pct", LT, 5, "%", 0, 0},
    {"SQL batch INSERT vs api", "aim", K_RATIO,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_SQL, PATH_API, "mb_per_s", GE, 0.5,
     "x", 0, 0},
    {"SQL range SELECT vs api", "aim", K_RATIO,
     "BenchmarkSequentialFetch/messages=10000/size=1024B/fetch=100|"
     "BenchmarkSequentialFetch/messages=1000/size=1024B/fetch=100",
     PATH_SQL, PATH_API, "mb_per_s", GE, 0.5, "x", 0, 0},
    {"Kafka produce (librdkafka) vs api", "aim", K_RATIO,
     "BenchmarkBatchWriteThroughput/batch=100/size=1024B", PATH_KAFKA, PATH_API, "mb_per_s", GE,
     0.3, "x", 0, 0},
    {"Kafka fetch (librdkafka) vs api", "aim", K_RATIO,
     "BenchmarkSequentialFetch/messages=10000/size=1024B/fetch=100|"
     "BenchmarkSequentialFetch/messages=1000/size=1024B/fetch=100",
     PATH_KAFKA, PATH_API, "mb_per_s", GE, 0.3, "x", 0, 0},
    {"scaling: producers, 1 partition", "plan", K_SCALING,
     "BenchmarkConcurrentProducers/producers=%d/size=1024B/partition=shared", PATH_API, -1,
     "scaling_eff", GE, 0.7, "", 4, 1},
    {"scaling: consumers", "plan", K_SCALING,
     "BenchmarkConcurrentConsumers/consumers=%d/size=1024B", PATH_API, -1, "scaling_eff", GE, 0.9,
     "", 4, 1},
    {"scaling: partitions, produce", "plan", K_SCALING,
     "BenchmarkTopicManagerProduceThroughput/partitions=%d/size=1024B", PATH_API, -1, "scaling_eff",
     GE, 0.95, "", 16, 0},
    {"scaling: partitions, fetch", "plan", K_SCALING,
     "BenchmarkTopicManagerFetchThroughput/partitions=%d/size=1024B", PATH_API, -1, "scaling_eff",
     GE, 0.95, "", 16, 0},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static int has_case(const bench_results *rs, const char *name, int path) {
  for (size_t i = 0; i < rs->n; i++)
    if (rs->v[i].path == path && rs->v[i].durability == OS && !strcmp(rs->v[i].name, name))
      return 1;
  return 0;
}

static int better(int op, double a, double b) { return op == GE ? a > b : a < b; }

/* The value of parameter key ("messages") in a case name, or NaN. */
static double name_param(const char *name, const char *key) {
  char pat[48];
  snprintf(pat, sizeof pat, "/%s=", key);
  const char *p = strstr(name, pat);
  return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* The parts of the case used that differ from the preferred (first) one:
** "fallback: messages=1000". */
static void fallback_note(char *out, size_t cap, const char *cases, const char *used) {
  char pref[256], u[256];
  snprintf(pref, sizeof pref, "%.*s", (int)strcspn(cases, "|"), cases);
  snprintf(u, sizeof u, "%s", used);
  size_t len = (size_t)snprintf(out, cap, "fallback:");
  char *sp = NULL, *su = NULL;
  char *a = strtok_r(pref, "/", &sp), *b = strtok_r(u, "/", &su);
  for (; b && len < cap; a = a ? strtok_r(NULL, "/", &sp) : NULL, b = strtok_r(NULL, "/", &su))
    if (!a || strcmp(a, b) != 0) len += (size_t)snprintf(out + len, cap - len, " %s", b);
}

static void eval(const sc_target *t, const bench_results *rs, sc_line *l) {
  memset(l, 0, sizeof *l);
  l->measured = NAN;
  l->margin_pct = NAN;
  int cores = online_cores();
  if (t->kind == K_FIGURE || t->kind == K_RATIO) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", t->cases);
    int first = 1;
    for (char *save = NULL, *c = strtok_r(buf, "|", &save); c;
         c = strtok_r(NULL, "|", &save), first = 0) {
      if (!has_case(rs, c, t->path) || (t->kind == K_RATIO && !has_case(rs, c, t->other))) continue;
      double v = results_median(rs, c, t->path, OS, t->figure);
      if (t->kind == K_RATIO) {
        double o = results_median(rs, c, t->other, OS, t->figure);
        v = o > 0 ? v / o : NAN;
      }
      if (isnan(v)) continue;
      l->measured = v;
      snprintf(l->case_name, sizeof l->case_name, "%s", c);
      if (!first) fallback_note(l->note, sizeof l->note, t->cases, c);
      break;
    }
  } else if (t->kind == K_WORST || t->kind == K_PER_MSG || t->kind == K_WORST_RATIO) {
    regex_t re;
    if (regcomp(&re, t->cases, REG_EXTENDED | REG_NOSUB) != 0) return;
    int ncases = 0;
    for (size_t i = 0; i < rs->n; i++) {
      const bench_result *r = &rs->v[i];
      if (r->path != t->path || r->durability != OS || regexec(&re, r->name, 0, NULL, 0) != 0)
        continue;
      int seen = 0; /* each name once: its median */
      for (size_t j = 0; j < i && !seen; j++)
        seen = rs->v[j].path == r->path && rs->v[j].durability == OS &&
               !strcmp(rs->v[j].name, r->name);
      if (seen) continue;
      double v = results_median(rs, r->name, t->path, OS, t->figure);
      if (t->kind == K_PER_MSG) v /= name_param(r->name, "messages");
      if (t->kind == K_WORST_RATIO) {
        double o = has_case(rs, r->name, t->other)
                       ? results_median(rs, r->name, t->other, OS, t->figure)
                       : NAN;
        v = o > 0 ? v / o : NAN;
      }
      if (isnan(v)) continue;
      ncases++;
      if (isnan(l->measured) || better(t->op, l->measured, v)) {
        l->measured = v;
        snprintf(l->case_name, sizeof l->case_name, "%s", r->name);
      }
    }
    regfree(&re);
    if (ncases)
      snprintf(l->note, sizeof l->note, "worst of %d: %.120s", ncases,
               strchr(l->case_name, '/') ? strchr(l->case_name, '/') + 1 : l->case_name);
  } else { /* K_SCALING */
    /* The plan's efficiency, throughput(N) / (N x throughput(1)), holds "up
    ** to CPU count": a thread count is taken at min(N, cores); a partition
    ** count at N itself, since those benchmarks run min(partitions, cores)
    ** threads and scaling_eff already divides by that. */
    int want = t->threads && cores < t->n ? cores : t->n;
    for (int n = want; n >= 2 && isnan(l->measured); n--) {
      char name[192];
      snprintf(name, sizeof name, t->cases, n);
      if (!has_case(rs, name, t->path)) continue;
      l->measured = results_median(rs, name, t->path, OS, t->figure);
      snprintf(l->case_name, sizeof l->case_name, "%s", name);
      if (t->threads)
        snprintf(l->note, sizeof l->note, "measured at N=%d of %d%s", n, t->n,
                 n < t->n && n == cores ? ": cores"
                 : n < t->n             ? ": largest N run"
                                        : "");
      else
        snprintf(l->note, sizeof l->note, "%d partitions on %d threads%s", n, n < cores ? n : cores,
                 n < t->n    ? " (largest count run)"
                 : n > cores ? ": cores"
                             : "");
    }
  }
  if (isnan(l->measured)) {
    l->verdict = "not run";
    if (!l->note[0]) snprintf(l->note, sizeof l->note, "case not in this run");
    return;
  }
  int met = t->op == GE   ? l->measured >= t->limit
            : t->op == LT ? l->measured < t->limit
                          : l->measured <= t->limit;
  l->verdict = met ? "met" : "MISSED";
  l->met = met;
  /* Margin: how far on the good side of the limit, as a share of it;
  ** negative = missed by that much. A limit of 0 has no share: absolute. */
  if (t->limit != 0)
    l->margin_pct =
        (t->op == GE ? l->measured - t->limit : t->limit - l->measured) / t->limit * 100.0;
  l->margin_abs = t->op == GE ? l->measured - t->limit : t->limit - l->measured;
}

static void fmt_val(char *out, size_t cap, double v, const char *unit) {
  const char *sp = unit[0] && strcmp(unit, "x") && strcmp(unit, "%") ? " " : "";
  if (!strcmp(unit, "ms") && v < 1) snprintf(out, cap, "%.3g us", v * 1e3);
  else if (fabs(v) >= 1000) snprintf(out, cap, "%.0f%s%s", v, sp, unit);
  else snprintf(out, cap, "%.3g%s%s", v, sp, unit);
}

int scorecard_eval(const bench_results *rs, sc_line *lines, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < NTARGETS && n < cap; i++, n++) {
    eval(&targets[i], rs, &lines[n]);
    lines[n].target = i;
  }
  return (int)n;
}

void scorecard_print(FILE *f, const sc_line *lines, int n) {
  int met = 0, missed = 0, notrun = 0;
  for (int i = 0; i < n; i++) {
    if (isnan(lines[i].measured)) notrun++;
    else if (lines[i].met) met++;
    else missed++;
  }
  fprintf(
      f,
      "\nscorecard: %d targets, %d met, %d missed, %d not run  (from: plan = PERFORMANCE_PLAN.md, "
      "aim = BENCHMARKS.md)\n",
      n, met, missed, notrun);
  fprintf(f, "%-7s  %-32s  %-4s  %-17s  %-9s  %-6s  %s\n", "verdict", "target", "from", "limit",
          "measured", "margin", "note");
  for (int i = 0; i < n; i++) {
    const sc_line *l = &lines[i];
    const sc_target *t = &targets[l->target];
    char what[96], lim[48], meas[32], marg[24];
    snprintf(what, sizeof what, "%s", t->what);
    char v[24];
    fmt_val(v, sizeof v, t->limit, t->unit);
    snprintf(lim, sizeof lim, "%s %s", t->op == GE ? ">=" : t->op == LT ? "<" : "<=", v);
    if (t->kind == K_RATIO || t->kind == K_WORST_RATIO)
      snprintf(lim, sizeof lim, "%s/%s %s %s", bench_paths[t->path]->name,
               bench_paths[t->other]->name,
               t->op == GE   ? ">="
               : t->op == LT ? "<"
                             : "<=",
               v);
    if (isnan(l->measured)) snprintf(meas, sizeof meas, "-");
    else fmt_val(meas, sizeof meas, l->measured, t->unit);
    if (isnan(l->measured)) snprintf(marg, sizeof marg, "-");
    else if (!isnan(l->margin_pct)) snprintf(marg, sizeof marg, "%+.0f%%", l->margin_pct);
    else snprintf(marg, sizeof marg, "%+.3g", l->margin_abs);
    /* 120 columns: a long note goes on a line of its own. */
    int w = fprintf(f, "%-7s  %-32.32s  %-4s  %-17s  %-9s  %-6s", l->verdict, what, t->source, lim,
                    meas, marg);
    if (w + 2 + (int)strlen(l->note) <= 120) fprintf(f, "  %s\n", l->note);
    else fprintf(f, "\n%9s%s\n", "", l->note);
  }
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c >= 0x20) fputc(c, f);
  }
  fputc('"', f);
}

static void json_num(FILE *f, double v) {
  if (isnan(v) || isinf(v)) fputs("null", f);
  else fprintf(f, "%.6g", v);
}

void scorecard_json(FILE *f, const sc_line *lines, int n) {
  fprintf(f, "[");
  for (int i = 0; i < n; i++) {
    const sc_line *l = &lines[i];
    const sc_target *t = &targets[l->target];
    fprintf(f, "%s\n    {\"target\": ", i ? "," : "");
    json_str(f, t->what);
    fprintf(f, ", \"source\": \"%s\", \"path\": \"%s\"", t->source, bench_paths[t->path]->name);
    if (t->kind == K_RATIO || t->kind == K_WORST_RATIO)
      fprintf(f, ", \"over_path\": \"%s\"", bench_paths[t->other]->name);
    fprintf(f, ", \"figure\": \"%s\", \"op\": \"%s\", \"limit\": ", t->figure,
            t->op == GE   ? ">="
            : t->op == LT ? "<"
                          : "<=");
    json_num(f, t->limit);
    fprintf(f, ", \"unit\": \"%s\", \"case\": ", t->unit);
    if (l->case_name[0]) json_str(f, l->case_name);
    else fputs("null", f);
    fprintf(f, ", \"measured\": ");
    json_num(f, l->measured);
    fprintf(f, ", \"verdict\": \"%s\", \"margin_pct\": ",
            isnan(l->measured) ? "not run"
            : l->met           ? "met"
                               : "missed");
    json_num(f, l->margin_pct);
    fprintf(f, ", \"note\": ");
    json_str(f, l->note);
    fprintf(f, "}");
  }
  fprintf(f, "\n  ]");
}

const char *scorecard_target_what(const sc_line *l) { return targets[l->target].what; }
const char *scorecard_target_source(const sc_line *l) { return targets[l->target].source; }
int scorecard_target_path(const sc_line *l) { return targets[l->target].path; }
const char *scorecard_target_figure(const sc_line *l) { return targets[l->target].figure; }
