/*
** report.c -- results and everything that prints them: the Go-style text
** line, the ratio report, JSON and CSV, plus the machine description.
**
** The text line follows Go's benchmark format so benchstat and friends read
** it: "BenchmarkX/params/path-N <tab> iterations <tab> value unit ...", with
** Go's number formatting. Configuration lines ("cpu: ...", "durability: os")
** sit above the results they apply to, as in Go's output.
*/
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "bench.h"

static const char *const durability_names[] = {"os", "fsync", "buffered"};

const char *durability_name(int d) { return d >= 0 && d < 3 ? durability_names[d] : "?"; }

/* ---- results ------------------------------------------------------------- */
void result_init(bench_result *r) {
  memset(r, 0, sizeof *r);
  r->ns_per_op = r->mb_per_s = r->msgs_per_s = r->allocs_per_op = r->bytes_per_op = NAN;
  r->p50_ms = r->p99_ms = r->p999_ms = NAN;
}

void result_metric(bench_result *r, const char *key, double v) {
  for (int i = 0; i < r->nmetrics; i++) {
    if (strcmp(r->m[i].key, key) == 0) {
      r->m[i].v = v;
      return;
    }
  }
  if (r->nmetrics == BENCH_MAX_METRICS) return;
  snprintf(r->m[r->nmetrics].key, sizeof r->m[0].key, "%s", key);
  r->m[r->nmetrics++].v = v;
}

double result_get_metric(const bench_result *r, const char *key) {
  for (int i = 0; i < r->nmetrics; i++)
    if (strcmp(r->m[i].key, key) == 0) return r->m[i].v;
  return NAN;
}

double result_figure(const bench_result *r, const char *figure) {
  if (!strcmp(figure, "ns_per_op")) return r->ns_per_op;
  if (!strcmp(figure, "mb_per_s")) return r->mb_per_s;
  if (!strcmp(figure, "msgs_per_s")) return r->msgs_per_s;
  if (!strcmp(figure, "allocs_per_op")) return r->allocs_per_op;
  if (!strcmp(figure, "bytes_per_op")) return r->bytes_per_op;
  if (!strcmp(figure, "p50_ms")) return r->p50_ms;
  if (!strcmp(figure, "p99_ms")) return r->p99_ms;
  if (!strcmp(figure, "p999_ms")) return r->p999_ms;
  if (!strcmp(figure, "ops_per_s")) return r->ns_per_op > 0 ? 1e9 / r->ns_per_op : NAN;
  return result_get_metric(r, figure);
}

int results_push(bench_results *rs, const bench_result *r) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 64;
    bench_result *v = realloc(rs->v, cap * sizeof *v);
    if (!v) return -1;
    rs->v = v;
    rs->cap = cap;
  }
  rs->v[rs->n++] = *r;
  return 0;
}

void results_free(bench_results *rs) {
  free(rs->v);
  memset(rs, 0, sizeof *rs);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double results_median(const bench_results *rs, const char *name, int path, int durability,
                      const char *figure) {
  double vals[256];
  size_t n = 0;
  for (size_t i = 0; i < rs->n && n < 256; i++) {
    const bench_result *r = &rs->v[i];
    if (r->path != path || r->durability != durability || strcmp(r->name, name) != 0) continue;
    double v = result_figure(r, figure);
    if (!isnan(v)) vals[n++] = v;
  }
  if (n == 0) return NAN;
  qsort(vals, n, sizeof vals[0], cmp_double);
  return n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;
}

/* ---- machine ------------------------------------------------------------- */
void machine_info_get(machine_info *mi) {
  memset(mi, 0, sizeof *mi);
  snprintf(mi->cpu, sizeof mi->cpu, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) != 0) continue;
      const char *v = strchr(line, ':');
      if (!v) continue;
      v++;
      while (*v == ' ') v++;
      snprintf(mi->cpu, sizeof mi->cpu, "%s", v);
      mi->cpu[strcspn(mi->cpu, "\n")] = 0;
      break;
    }
    fclose(f);
  }
  mi->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (getloadavg(mi->load, 3) != 3) mi->load[0] = mi->load[1] = mi->load[2] = -1;
  struct utsname u;
  if (uname(&u) == 0)
    snprintf(mi->kernel, sizeof mi->kernel, "%s %s %s", u.sysname, u.release, u.machine);
  snprintf(mi->sqlite, sizeof mi->sqlite, "%s", sqlite3_libversion());
  snprintf(mi->zstd, sizeof mi->zstd, "%s", ZSTD_versionString());
  snprintf(mi->takhin, sizeof mi->takhin, "%s", TAKHIN_VERSION);
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(mi->date, sizeof mi->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- text ---------------------------------------------------------------- */
static int name_width = 60;

void report_set_width(int w) { name_width = w; }

/* Go's name for the architecture (GOARCH), which benchstat users expect, from
** the kernel's (uname -m). */
static const char *goarch(const char *machine) {
  static const char *const map[][2] = {
      {"x86_64", "amd64"},    {"amd64", "amd64"},
      {"i386", "386"},        {"i486", "386"},
      {"i586", "386"},        {"i686", "386"},
      {"aarch64", "arm64"},   {"arm64", "arm64"},
      {"armv6l", "arm"},      {"armv7l", "arm"},
      {"ppc64le", "ppc64le"}, {"ppc64", "ppc64"},
      {"s390x", "s390x"},     {"riscv64", "riscv64"},
      {"mips64", "mips64"},   {"loongarch64", "loong64"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(machine, map[i][0])) return map[i][1];
  return machine;
}

void report_header(FILE *f, const machine_info *mi) {
  struct utsname u;
  uname(&u);
  fprintf(f, "goos: linux\ngoarch: %s\npkg: takhin/bench\ncpu: %s\n", goarch(u.machine), mi->cpu);
  fprintf(f, "takhin: %s\nsqlite: %s\nzstd: %s\n", mi->takhin, mi->sqlite, mi->zstd);
  /* Facts that differ from run to run stay out of the "key: value"
  ** configuration lines: benchstat splits results whose configuration differs
  ** into separate tables, so two runs would never be compared. A key with a
  ** space ("load average") is not a configuration key. */
  fprintf(f, "load average: %.2f %.2f %.2f on %d cores%s\n", mi->load[0], mi->load[1], mi->load[2],
          mi->cores,
          mi->load[0] > 0.5 * mi->cores ? " (the machine is busy: figures will be noisy)" : "");
}

/* Go's testing.prettyPrint: more decimals for smaller numbers. */
static void pretty(FILE *f, double x, const char *unit) {
  double y = fabs(x);
  if (y == 0 || y >= 999.95) fprintf(f, "\t%10.0f %s", x, unit);
  else if (y >= 99.995) fprintf(f, "\t%12.1f %s", x, unit);
  else if (y >= 9.9995) fprintf(f, "\t%13.2f %s", x, unit);
  else if (y >= 0.99995) fprintf(f, "\t%14.3f %s", x, unit);
  else if (y >= 0.099995) fprintf(f, "\t%15.4f %s", x, unit);
  else if (y >= 0.0099995) fprintf(f, "\t%16.5f %s", x, unit);
  else fprintf(f, "\t%18.7f %s", x, unit);
}

/* Compact "value unit" for the bottleneck signals, so they do not double the
** width of the line: 4 significant digits, no padding. */
static void compact(FILE *f, double x, const char *unit) {
  if (fabs(x) >= 1000 || x == 0) fprintf(f, "\t%.0f %s", x, unit);
  else fprintf(f, "\t%.4g %s", x, unit);
}

/* Metrics shown on the text line, in this order; the rest go to JSON/CSV.
** Those from SIGNALS on are bottleneck signals, printed compactly. */
#define SIGNALS 14
static const char *const line_metrics[][2] = {
    {"mb_reclaimed", "MB-reclaimed"},
    {"keys_removed", "keys-removed"},
    {"duration_ms", "duration-ms"},
    {"ms_per_100mb", "ms/100MB"},
    {"vs_plain", "vs-plain-x"},
    {"imbalance_pct", "imbalance-%"},
    {"open_fds", "open-fds"},
    {"store_fds", "store-fds"},
    {"produce_p99_ms", "produce-p99-ms"},
    {"fetch_p99_ms", "fetch-p99-ms"},
    {"speedup_vs_single", "speedup-x"},
    {"scaling_vs_1", "scaling-x"},
    {"scaling_eff", "scaling-eff"},
    {"segments_per_op", "segments/op"},
    {"cpu_user_ns_per_op", "usr-ns/op"},
    {"cpu_sys_ns_per_op", "sys-ns/op"},
    {"ctx_switches_per_op", "ctxsw/op"},
    {"storage_write_bytes_per_op", "disk-wB/op"},
    {"storage_read_bytes_per_op", "disk-rB/op"},
    {"lock_wait_ns_per_op", "lockwait-ns/op"},
    {"minor_faults_per_op", "minflt/op"},
    {"major_faults_per_op", "majflt/op"},
    {"ipc", "ipc"},
    {"cache_misses_per_op", "cachemiss/op"},
};

void report_line(FILE *f, const bench_result *r) {
  char full[256];
  snprintf(full, sizeof full, "%s/%s-%d", r->name, bench_paths[r->path]->name, r->procs);
  fprintf(f, "%-*s\t%8lld", name_width, full, (long long)r->iterations);
  pretty(f, r->ns_per_op, "ns/op");
  if (!isnan(r->mb_per_s)) fprintf(f, "\t%8.2f MB/s", r->mb_per_s);
  if (!isnan(r->msgs_per_s)) pretty(f, r->msgs_per_s, "msg/s");
  double ops = result_get_metric(r, "ops_per_s");
  if (!isnan(ops)) pretty(f, ops, "ops/s");
  if (!isnan(r->p50_ms)) pretty(f, r->p50_ms, "p50-ms");
  if (!isnan(r->p99_ms)) pretty(f, r->p99_ms, "p99-ms");
  if (!isnan(r->p999_ms)) pretty(f, r->p999_ms, "p999-ms");
  if (!isnan(r->allocs_per_op)) pretty(f, r->allocs_per_op, "allocs/op");
  if (!isnan(r->bytes_per_op)) pretty(f, r->bytes_per_op, "B/op");
  for (size_t i = 0; i < sizeof line_metrics / sizeof line_metrics[0]; i++) {
    double v = result_get_metric(r, line_metrics[i][0]);
    if (isnan(v)) continue;
    if (i < SIGNALS) pretty(f, v, line_metrics[i][1]);
    else compact(f, v, line_metrics[i][1]);
  }
  fputc('\n', f);
  fflush(f);
}

/* The figure a ratio compares: MB/s where the benchmark has one, else ops/s. */
static double throughput(const bench_results *rs, const char *name, int path, int dur) {
  double v = results_median(rs, name, path, dur, "mb_per_s");
  return isnan(v) ? results_median(rs, name, path, dur, "ops_per_s") : v;
}

static void ratio_cell(FILE *f, double a, double b) {
  if (isnan(a) || isnan(b) || b <= 0) fprintf(f, "  %10s", "-");
  else fprintf(f, "  %9.2fx", a / b);
}

void report_ratios(FILE *f, const bench_results *rs) {
  int printed = 0;
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->v[i];
    /* One row per (name, durability): at its first result. */
    int first = 1;
    for (size_t j = 0; j < i && first; j++)
      if (rs->v[j].durability == r->durability && !strcmp(rs->v[j].name, r->name)) first = 0;
    if (!first) continue;
    double api = throughput(rs, r->name, PATH_API, r->durability);
    double sql = throughput(rs, r->name, PATH_SQL, r->durability);
    double file = throughput(rs, r->name, PATH_FILE, r->durability);
    double sqlite = throughput(rs, r->name, PATH_SQLITE, r->durability);
    double mmap = throughput(rs, r->name, PATH_MMAP, r->durability);
    int pairs = (!isnan(api) && !isnan(file)) + (!isnan(api) && !isnan(sqlite)) +
                (!isnan(sql) && !isnan(api)) + (!isnan(api) && !isnan(mmap));
    if (!pairs) continue;
    if (!printed++) {
      fprintf(
          f,
          "\nratios: median MB/s (ops/s where a benchmark has no MB/s); above 1x the first path is faster\n");
      fprintf(f, "%-*s  %-8s  %10s  %10s  %10s  %10s\n", name_width, "case", "mode", "api/file",
              "api/sqlite", "sql/api", "api/mmap");
    }
    /* Without the "Benchmark" prefix: benchstat reads any line starting with
    ** it as a result, and reports this row as a syntax error. */
    const char *name = !strncmp(r->name, "Benchmark", 9) ? r->name + 9 : r->name;
    fprintf(f, "%-*s  %-8s", name_width, name, durability_name(r->durability));
    ratio_cell(f, api, file);
    ratio_cell(f, api, sqlite);
    ratio_cell(f, sql, api);
    ratio_cell(f, api, mmap);
    fputc('\n', f);
  }
}

/* ---- JSON and CSV -------------------------------------------------------- */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void json_num(FILE *f, double v) {
  if (isnan(v) || isinf(v)) fputs("null", f);
  else fprintf(f, "%.10g", v);
}

int report_json(const char *file, const machine_info *mi, const bench_results *rs,
                const char *settings, const char *extra) {
  FILE *f = fopen(file, "w");
  if (!f) return -1;
  fprintf(f, "{\n  \"machine\": {\"cpu\": ");
  json_str(f, mi->cpu);
  fprintf(f, ", \"cores\": %d, \"kernel\": ", mi->cores);
  json_str(f, mi->kernel);
  fprintf(f, ", \"sqlite\": ");
  json_str(f, mi->sqlite);
  fprintf(f, ", \"zstd\": ");
  json_str(f, mi->zstd);
  fprintf(f, ", \"takhin\": ");
  json_str(f, mi->takhin);
  fprintf(f, ", \"date\": ");
  json_str(f, mi->date);
  fprintf(f, ", \"loadavg\": [%.2f, %.2f, %.2f]", mi->load[0], mi->load[1], mi->load[2]);
  fprintf(f, "},\n  \"settings\": %s,\n  \"results\": [", settings);
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->v[i];
    fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
    json_str(f, r->name);
    fprintf(f, ", \"path\": \"%s\", \"durability\": \"%s\", \"procs\": %d, \"iterations\": %lld",
            bench_paths[r->path]->name, durability_name(r->durability), r->procs,
            (long long)r->iterations);
    const char *const keys[] = {"ns_per_op",    "mb_per_s", "msgs_per_s", "allocs_per_op",
                                "bytes_per_op", "p50_ms",   "p99_ms",     "p999_ms"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      fprintf(f, ", \"%s\": ", keys[k]);
      json_num(f, result_figure(r, keys[k]));
    }
    fprintf(f, ",\n     \"metrics\": {");
    for (int m = 0; m < r->nmetrics; m++) {
      fprintf(f, "%s\"%s\": ", m ? ", " : "", r->m[m].key);
      json_num(f, r->m[m].v);
    }
    fprintf(f, "}}");
  }
  fprintf(f, "\n  ]%s%s\n}\n", extra ? ",\n  " : "", extra ? extra : "");
  return fclose(f) == 0 ? 0 : -1;
}

static void csv_num(FILE *f, double v) {
  if (!isnan(v) && !isinf(v)) fprintf(f, "%.10g", v);
}

int report_csv(const char *file, const bench_results *rs) {
  FILE *f = fopen(file, "w");
  if (!f) return -1;
  /* Metric columns: the union over all results, in order of first sight. */
  const char *cols[128];
  size_t ncols = 0;
  for (size_t i = 0; i < rs->n; i++) {
    for (int m = 0; m < rs->v[i].nmetrics; m++) {
      const char *k = rs->v[i].m[m].key;
      size_t c = 0;
      while (c < ncols && strcmp(cols[c], k) != 0) c++;
      if (c == ncols && ncols < 128) cols[ncols++] = k;
    }
  }
  fprintf(f, "name,path,durability,procs,iterations,ns_per_op,mb_per_s,msgs_per_s,allocs_per_op,"
             "bytes_per_op,p50_ms,p99_ms,p999_ms");
  for (size_t c = 0; c < ncols; c++) fprintf(f, ",%s", cols[c]);
  fputc('\n', f);
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->v[i];
    fprintf(f, "%s,%s,%s,%d,%lld", r->name, bench_paths[r->path]->name,
            durability_name(r->durability), r->procs, (long long)r->iterations);
    const char *const keys[] = {"ns_per_op",    "mb_per_s", "msgs_per_s", "allocs_per_op",
                                "bytes_per_op", "p50_ms",   "p99_ms",     "p999_ms"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      fputc(',', f);
      csv_num(f, result_figure(r, keys[k]));
    }
    for (size_t c = 0; c < ncols; c++) {
      fputc(',', f);
      csv_num(f, result_get_metric(r, cols[c]));
    }
    fputc('\n', f);
  }
  return fclose(f) == 0 ? 0 : -1;
}
