/*
** compare.c -- -compare: old against new, figure by figure, with the plan's
** regression thresholds.
**
** Either side may hold several runs of a case (-count, or several JSON files
** from interleaved A/B runs): each side is reduced to its median first.
** Regressions (the plan's alerting thresholds):
**   MB/s down more than 10%; where a benchmark has no MB/s, msg/s, and where
**     it has neither, ops/s (1e9 / ns/op)
**   allocs/op up more than 20%, and by at least 0.5 allocations per op so an
**     amortized buffer growth landing in one run and not the other (0 vs 0.01)
**     is not flagged
**   p99 up more than 50%
** ns/op, msg/s and B/op are shown for context.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "json.h"

static double num_or_nan(const json *v) {
  return v && (v->type == JSON_NUM) ? v->num : NAN;
}

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

static int load_one(const char *file, bench_results *out) {
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

int results_load_json(const char *files, bench_results *out) {
  char *list = strdup(files), *save = NULL;
  if (!list) return -1;
  int rc = 0;
  for (char *f = strtok_r(list, ",", &save); f && rc == 0; f = strtok_r(NULL, ",", &save))
    rc = load_one(f, out);
  free(list);
  return rc;
}

typedef struct figure {
  const char *key, *unit;
  int higher_is_better;
  double threshold; /* relative change that is a regression; 0 = context only */
} figure;

/* Which throughput figure carries the -10% rule for this case. */
static const char *gate_figure(const bench_results *rs, const bench_result *r) {
  if (!isnan(results_median(rs, r->name, r->path, r->durability, "mb_per_s"))) return "mb_per_s";
  if (!isnan(results_median(rs, r->name, r->path, r->durability, "msgs_per_s"))) return "msgs_per_s";
  return "ops_per_s";
}

/* Numbers people read: integers when large, 4 significant digits when small. */
static const char *num(char *buf, size_t cap, double v) {
  if (fabs(v) >= 1000) snprintf(buf, cap, "%.0f", v);
  else snprintf(buf, cap, "%.4g", v);
  return buf;
}

int compare_print(FILE *f, const bench_results *old, const bench_results *cur) {
  static const figure figs[] = {
      {"ns_per_op", "ns/op", 0, 0},       {"ops_per_s", "ops/s", 1, 0.10},
      {"mb_per_s", "MB/s", 1, 0.10},      {"msgs_per_s", "msg/s", 1, 0.10},
      {"allocs_per_op", "allocs/op", 0, 0.20}, {"bytes_per_op", "B/op", 0, 0},
      {"p99_ms", "p99-ms", 0, 0.50},
  };
  int regressions = 0, compared = 0, missing = 0;
  fprintf(f, "\ncomparison (median of each side); regression: MB/s or ops/s -10%%, "
             "allocs/op +20%%, p99 +50%%\n");
  fprintf(f, "%-64s %-8s %-10s %14s %14s %9s\n", "case", "mode", "figure", "old", "new", "change");
  for (size_t i = 0; i < cur->n; i++) {
    const bench_result *r = &cur->v[i];
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = cur->v[j].path == r->path && cur->v[j].durability == r->durability &&
             !strcmp(cur->v[j].name, r->name);
    if (seen) continue;
    char label[256];
    snprintf(label, sizeof label, "%s/%s", r->name, bench_paths[r->path]->name);
    if (isnan(results_median(old, r->name, r->path, r->durability, "ns_per_op"))) {
      missing++;
      continue;
    }
    compared++;
    const char *gate = gate_figure(cur, r);
    int first = 1;
    for (size_t k = 0; k < sizeof figs / sizeof figs[0]; k++) {
      const figure *fg = &figs[k];
      /* ops/s only where it is the gate; it repeats ns/op otherwise. */
      if (!strcmp(fg->key, "ops_per_s") && strcmp(gate, "ops_per_s") != 0) continue;
      double a = results_median(old, r->name, r->path, r->durability, fg->key);
      double b = results_median(cur, r->name, r->path, r->durability, fg->key);
      if (isnan(a) || isnan(b)) continue;
      double change = a != 0 ? (b - a) / fabs(a) : (b == 0 ? 0 : INFINITY);
      /* Of the three throughput figures only the gate one can regress: they
      ** move together, and one case should not count three times. */
      int throughput = !strcmp(fg->key, "mb_per_s") || !strcmp(fg->key, "msgs_per_s") ||
                       !strcmp(fg->key, "ops_per_s");
      int gated = fg->threshold > 0 && (!throughput || !strcmp(fg->key, gate));
      int bad = 0;
      if (gated) {
        if (fg->higher_is_better) bad = change < -fg->threshold;
        else bad = change > fg->threshold;
        if (!strcmp(fg->key, "allocs_per_op") && b - a < 0.5) bad = 0;
      }
      regressions += bad;
      char ch[32];
      if (isinf(change)) snprintf(ch, sizeof ch, "new");
      else snprintf(ch, sizeof ch, "%+.2f%%", change * 100);
      char na[32], nb[32];
      fprintf(f, "%-64s %-8s %-10s %14s %14s %9s%s\n", first ? label : "",
              first ? durability_name(r->durability) : "", fg->unit, num(na, sizeof na, a),
              num(nb, sizeof nb, b), ch, bad ? "  REGRESSION" : "");
      first = 0;
    }
  }
  fprintf(f, "%d case(s) compared, %d without a baseline, %d regression(s)\n", compared, missing,
          regressions);
  return regressions;
}
