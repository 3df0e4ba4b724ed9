/*
** compare.c -- -compare: old against new, case by case, judged as benchstat
** judges a change.
**
** Every result in a JSON file is one sample; a side holds all the samples of
** its files (-count repetitions, or the interleaved rounds of
** scripts/bench_compare.sh). Per case and figure the two sides' medians give
** the change, and a two-sided Mann-Whitney U test (utest.c) its p-value. A
** regression needs both (the plan's alerting thresholds):
**   MB/s down more than 10%; where a benchmark has no MB/s, msg/s, and where
**     it has neither, ops/s (1e9 / ns/op)
**   allocs/op up more than 20%, and by at least 0.5 allocations per op so an
**     amortized buffer growth landing in one run and not the other (0 vs 0.01)
**     is not flagged
**   p99 up more than 50%
** and p < 0.05 with at least UTEST_MIN_SAMPLES samples a side: on a shared
** machine a single pair of runs moves by 10-30%, so a threshold on medians
** alone flags noise (two runs of one binary reported 2 regressions).
** ns/op, msg/s and B/op are shown for context.
**
** Runs made with another mode (-quick, -full, ...) or -benchtime measure other
** matrices and other amounts of work per sample: they are refused, not
** compared.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "json.h"
#include "utest.h"

static double num_or_nan(const json *v) { return v && (v->type == JSON_NUM) ? v->num : NAN; }

static int path_index(const char *name) {
  for (int i = 0; i < PATH_COUNT; i++)
    if (!strcmp(bench_paths[i]->name, name)) return i;
  return -1;
}

static int durability_index(const char *name) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(durability_name(i), name)) return i;
  return -1;
}

static char *slurp(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
    if (len + 1 == cap) {
      char *n = realloc(buf, cap *= 2);
      if (!n) {
        free(buf);
        buf = NULL;
      } else {
        buf = n;
      }
    }
  }
  fclose(f);
  if (buf) buf[len] = 0;
  return buf;
}

/* A mode that names the flags a user would type. */
static void mode_describe(const run_mode *m, char *out, size_t cap) {
  const char *t = m->tier;
  snprintf(out, cap, "%s%s, -benchtime %s", !strcmp(t, "default") ? "the default mode" : "-",
           !strcmp(t, "default") ? "" : t, m->benchtime);
}

int run_mode_check(const run_mode *old, const run_mode *cur) {
  if (!old->tier[0] || !cur->tier[0]) return 0; /* not recorded: nothing to hold against it */
  if (!strcmp(old->tier, cur->tier) && !strcmp(old->benchtime, cur->benchtime)) return 0;
  char a[96], b[96];
  mode_describe(old, a, sizeof a);
  mode_describe(cur, b, sizeof b);
  fprintf(stderr,
          "takhin-bench: -compare: %s was run with %s, %s with %s;\n"
          "  %s, so their figures are not comparable.\n"
          "  Run both sides with the same mode and -benchtime.\n",
          old->file, a, cur->file, b,
          strcmp(old->tier, cur->tier)
              ? "another mode runs other parameter matrices"
              : "another -benchtime does another amount of work per sample");
  return -1;
}

static int load_one(const char *file, bench_results *out, run_mode *mode) {
  char *text = slurp(file);
  if (!text) {
    fprintf(stderr, "takhin-bench: cannot read %s\n", file);
    return -1;
  }
  char err[160];
  json *doc = json_parse(text, err, sizeof err);
  free(text);
  if (!doc) {
    fprintf(stderr, "takhin-bench: %s: %s\n", file, err);
    return -1;
  }
  const json *settings = json_get(doc, "settings");
  const json *tier = settings ? json_get(settings, "tier") : NULL,
             *bt = settings ? json_get(settings, "benchtime") : NULL;
  memset(mode, 0, sizeof *mode);
  snprintf(mode->file, sizeof mode->file, "%s", file);
  if (tier && tier->type == JSON_STR && bt && bt->type == JSON_STR) {
    snprintf(mode->tier, sizeof mode->tier, "%s", tier->str);
    snprintf(mode->benchtime, sizeof mode->benchtime, "%s", bt->str);
  }
  const json *results = json_get(doc, "results");
  if (!results || results->type != JSON_ARR) {
    fprintf(stderr, "takhin-bench: %s: no \"results\" array\n", file);
    json_free(doc);
    return -1;
  }
  for (size_t i = 0; i < results->n; i++) {
    const json *o = &results->items[i];
    const json *name = json_get(o, "name"), *path = json_get(o, "path"),
               *dur = json_get(o, "durability");
    if (!name || name->type != JSON_STR || !path || path->type != JSON_STR || !dur ||
        dur->type != JSON_STR)
      continue;
    bench_result r;
    result_init(&r);
    snprintf(r.name, sizeof r.name, "%s", name->str);
    r.path = path_index(path->str);
    r.durability = durability_index(dur->str);
    if (r.path < 0 || r.durability < 0) continue;
    r.procs = (int)num_or_nan(json_get(o, "procs"));
    r.iterations = (int64_t)num_or_nan(json_get(o, "iterations"));
    r.ns_per_op = num_or_nan(json_get(o, "ns_per_op"));
    r.mb_per_s = num_or_nan(json_get(o, "mb_per_s"));
    r.msgs_per_s = num_or_nan(json_get(o, "msgs_per_s"));
    r.allocs_per_op = num_or_nan(json_get(o, "allocs_per_op"));
    r.bytes_per_op = num_or_nan(json_get(o, "bytes_per_op"));
    r.p50_ms = num_or_nan(json_get(o, "p50_ms"));
    r.p99_ms = num_or_nan(json_get(o, "p99_ms"));
    r.p999_ms = num_or_nan(json_get(o, "p999_ms"));
    const json *m = json_get(o, "metrics");
    for (size_t k = 0; m && m->type == JSON_OBJ && k < m->n; k++)
      result_metric(&r, m->keys[k], num_or_nan(&m->items[k]));
    if (results_push(out, &r) != 0) {
      json_free(doc);
      return -1;
    }
  }
  json_free(doc);
  return 0;
}

int results_load_json(const char *files, bench_results *out, run_mode *mode) {
  char *list = strdup(files), *save = NULL;
  if (!list) return -1;
  int rc = 0, first = 1;
  run_mode m0 = {.tier = ""}, m;
  for (char *f = strtok_r(list, ",", &save); f && rc == 0; f = strtok_r(NULL, ",", &save)) {
    rc = load_one(f, out, &m);
    if (rc != 0) break;
    /* One side is one kind of run: its files must agree with each other. */
    if (first) m0 = m;
    else if (!m0.tier[0]) m0 = m;
    else rc = run_mode_check(&m0, &m);
    first = 0;
  }
  free(list);
  if (mode) *mode = m0;
  return rc;
}

typedef struct figure {
  const char *key, *unit;
  int higher_is_better;
  double threshold; /* relative change that is a regression; 0 = context only */
  double min_abs;   /* and the least absolute change that is one */
} figure;

/* Every sample of a figure for one case (name, path, durability). */
static size_t samples(const bench_results *rs, const bench_result *c, const char *key, double *out,
                      size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < rs->n && n < cap; i++) {
    const bench_result *r = &rs->v[i];
    if (r->path != c->path || r->durability != c->durability || strcmp(r->name, c->name) != 0)
      continue;
    double v = result_figure(r, key);
    if (!isnan(v)) out[n++] = v;
  }
  return n;
}

/* Which throughput figure carries the -10% rule for this case. */
static const char *gate_figure(const bench_results *rs, const bench_result *r) {
  if (!isnan(results_median(rs, r->name, r->path, r->durability, "mb_per_s"))) return "mb_per_s";
  if (!isnan(results_median(rs, r->name, r->path, r->durability, "msgs_per_s")))
    return "msgs_per_s";
  return "ops_per_s";
}

/* Numbers people read: integers when large, 4 significant digits when small. */
static const char *num(char *buf, size_t cap, double v) {
  if (fabs(v) >= 1000) snprintf(buf, cap, "%.0f", v);
  else snprintf(buf, cap, "%.4g", v);
  return buf;
}

#define MAX_SAMPLES 512

int compare_print(FILE *f, const bench_results *old, const bench_results *cur) {
  static const figure figs[] = {
      {"ns_per_op", "ns/op", 0, 0, 0},
      {"ops_per_s", "ops/s", 1, 0.10, 0},
      {"mb_per_s", "MB/s", 1, 0.10, 0},
      {"msgs_per_s", "msg/s", 1, 0.10, 0},
      {"allocs_per_op", "allocs/op", 0, 0.20, 0.5},
      {"bytes_per_op", "B/op", 0, 0, 0},
      {"p99_ms", "p99-ms", 0, 0.50, 0},
  };
  static double a[MAX_SAMPLES], b[MAX_SAMPLES];
  int regressions = 0, compared = 0, missing = 0, unjudged = 0, noise = 0;
  /* No line of this table may start with "Benchmark": benchstat would take it
  ** for a result and report a syntax error. Case names drop the prefix. The
  ** title is no "key: value" line either (a space before the colon). */
  fprintf(
      f,
      "\ncomparison of the medians, two-sided Mann-Whitney U test; a regression is\n"
      "MB/s or ops/s -10%%, allocs/op +20%%, p99 +50%% with p < %.2f and >= %d samples a side\n",
      UTEST_ALPHA, UTEST_MIN_SAMPLES);
  fprintf(f, "%-56s %-8s %-9s %11s %11s %9s %7s %7s\n", "case", "mode", "figure", "old", "new",
          "change", "p", "n");
  for (size_t i = 0; i < cur->n; i++) {
    const bench_result *r = &cur->v[i];
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = cur->v[j].path == r->path && cur->v[j].durability == r->durability &&
             !strcmp(cur->v[j].name, r->name);
    if (seen) continue;
    char label[256];
    const char *name = !strncmp(r->name, "Benchmark", 9) ? r->name + 9 : r->name;
    snprintf(label, sizeof label, "%s/%s", name, bench_paths[r->path]->name);
    if (samples(old, r, "ns_per_op", a, MAX_SAMPLES) == 0) {
      missing++;
      continue;
    }
    compared++;
    const char *gate = gate_figure(cur, r);
    int first = 1, case_unjudged = 0;
    for (size_t k = 0; k < sizeof figs / sizeof figs[0]; k++) {
      const figure *fg = &figs[k];
      /* ops/s only where it is the gate; it repeats ns/op otherwise. */
      if (!strcmp(fg->key, "ops_per_s") && strcmp(gate, "ops_per_s") != 0) continue;
      size_t na = samples(old, r, fg->key, a, MAX_SAMPLES);
      size_t nb = samples(cur, r, fg->key, b, MAX_SAMPLES);
      if (!na || !nb) continue;
      /* Of the three throughput figures only the gate one can regress: they
      ** move together, and one case should not count three times. */
      int throughput = !strcmp(fg->key, "mb_per_s") || !strcmp(fg->key, "msgs_per_s") ||
                       !strcmp(fg->key, "ops_per_s");
      int gated = fg->threshold > 0 && (!throughput || !strcmp(fg->key, gate));
      utest_verdict v;
      if (utest_judge(a, na, b, nb, fg->higher_is_better, gated ? fg->threshold : 0, fg->min_abs,
                      &v) != 0) {
        fprintf(stderr, "takhin-bench: out of memory\n");
        return regressions + 1;
      }
      regressions += v.alarm;
      if (gated && v.too_few) case_unjudged = 1;
      if (gated && v.worse && !v.alarm && !v.too_few) noise++;
      char ch[32], pv[16], ns[16], na_[32], nb_[32];
      if (isinf(v.change)) snprintf(ch, sizeof ch, "new");
      else snprintf(ch, sizeof ch, "%+.2f%%", v.change * 100);
      if (isnan(v.p)) snprintf(pv, sizeof pv, "-");
      else snprintf(pv, sizeof pv, "%.3f", v.p);
      snprintf(ns, sizeof ns, "%d+%d", v.n_old, v.n_new);
      const char *verdict = v.alarm                ? "  REGRESSION"
                            : v.worse && v.too_few ? "  (too few samples to judge)"
                            : v.worse              ? "  (not significant)"
                                                   : "";
      fprintf(f, "%-56s %-8s %-9s %11s %11s %9s %7s %7s%s\n", first ? label : "",
              first ? durability_name(r->durability) : "", fg->unit,
              num(na_, sizeof na_, v.old_median), num(nb_, sizeof nb_, v.new_median), ch, pv, ns,
              verdict);
      first = 0;
    }
    unjudged += case_unjudged;
  }
  fprintf(f, "%d case(s) compared, %d without a baseline, %d regression(s)", compared, missing,
          regressions);
  if (noise) fprintf(f, ", %d change(s) past a threshold but not significant", noise);
  fputc('\n', f);
  if (unjudged)
    fprintf(f,
            "%d case(s) not judged: fewer than %d samples a side (use -count %d, or "
            "scripts/bench_compare.sh)\n",
            unjudged, UTEST_MIN_SAMPLES, UTEST_MIN_SAMPLES);
  return regressions;
}
