/*
** main.c -- takhin-bench: flags in Go's test-runner style, the list of cases
** to run, progress on a terminal, and the reports at the end.
**
** Cases run in registry order; within a benchmark by durability mode, then by
** parameters, then -count repetitions, with the paths innermost so api, file
** and sqlite of one case run back to back and share the machine's state.
** Results print as they complete (Go's format); the ratio report, JSON, CSV
** and -compare table follow.
**
** Where they print: the Go benchmark lines always go to the run's results
** folder (results/<UTC time>-<commit>/bench.txt), and to stdout when stdout is
** not a terminal (a pipe, benchstat, CI logs). On a terminal stdout gets one
** compact table per benchmark family instead (table.c). Either way the run
** ends with the scorecard (scorecard.c), the bottleneck report
** (bottleneck.c) and, last, the results folder's path.
*/
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "hwcount.h"
#include "runner.h"
#include "scorecard.h"
#include "table.h"

#ifndef TAKHIN_SOURCE_DIR
#define TAKHIN_SOURCE_DIR "."
#endif

typedef struct bcase {
  const bench_def *def;
  int64_t p[BENCH_MAX_PARAMS];
  int path, durability;
} bcase;

/* A (benchmark, path, mode) the selection asked for that cannot run, and why. */
typedef struct na_note {
  const bench_def *def;
  int path;
  const char *why;
} na_note;

typedef struct flags {
  const char *bench, *benchtime, *paths, *durability, *json, *csv, *compare, *against, *tmpdir;
  const char *results;
  int count, list, tier, full, cold;
  uint64_t seed;
} flags;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: takhin-bench [flags]\n"
      "  -bench REGEX       run cases whose full name matches (POSIX ERE, unanchored);\n"
      "                     names look like BenchmarkWriteThroughput/messages=1000/size=1024B/api\n"
      "  -benchtime D|Nx    run each case until a run lasts D (5s, 300ms) or exactly N ops\n"
      "                     (default 1s; -quick 200ms; -smoke 4x)\n"
      "  -count N           run each case N times (default 1)\n"
      "  -path LIST         api,sql,file,sqlite,mmap or all (default all available)\n"
      "  -durability LIST   os,fsync,buffered for the produce benchmarks (default os;\n"
      "                     -full: all three). Read benchmarks use the first mode.\n"
      "  -quick             small matrices, 200ms: the whole suite in 2-3 minutes\n"
      "  -full              the issue's matrices under every durability mode\n"
      "  -smoke             every benchmark on every path once, minimal matrices (CI)\n"
      "  -list              list benchmarks, their matrices and the pending ones\n"
      "  -json FILE         write machine info and every result as JSON\n"
      "  -csv FILE          write every result as CSV\n"
      "  -compare FILES     compare with baseline JSON file(s), comma-separated;\n"
      "                     exit 1 on a regression\n"
      "  -against FILES     with -compare: compare these JSON files instead of running\n"
      "  -tmpdir DIR        scratch space (default: a fresh folder under /tmp, removed after)\n"
      "  -seed N            payload and offset seed (default 1)\n"
      "  -cold              fetch benchmarks (SequentialFetch, RandomFetch,\n"
      "                     TopicManagerFetchThroughput) drop the page cache of their\n"
      "                     files before every timed run; their names get /cache=cold\n"
      "  -results DIR       keep the run in DIR/<UTC time>-<commit>/ (default: results/ of\n"
      "                     the source tree); -results none keeps nothing\n");
}

/* "5s", "300ms", "1.5s", "2m", "500us" -> ns; "100x" -> count. */
static int parse_benchtime(const char *s, int64_t *ns, int64_t *n) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v <= 0) return -1;
  *ns = 0;
  *n = 0;
  if (!strcmp(end, "x")) *n = (int64_t)v;
  else if (!strcmp(end, "s")) *ns = (int64_t)(v * 1e9);
  else if (!strcmp(end, "ms")) *ns = (int64_t)(v * 1e6);
  else if (!strcmp(end, "us")) *ns = (int64_t)(v * 1e3);
  else if (!strcmp(end, "m")) *ns = (int64_t)(v * 60e9);
  else return -1;
  return 0;
}

/* Comma list of names -> indexes in order, duplicates dropped. Errors name
** the flag (-path, -durability) and what it accepts. */
static int parse_list(const char *flag, const char *s, const char *const *names, int count,
                      const char *also, int *order, int *n) {
  char buf[256], want[160] = "";
  for (int k = 0; k < count; k++)
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", k ? ", " : "", names[k]);
  if (also) snprintf(want + strlen(want), sizeof want - strlen(want), ", or %s", also);
  snprintf(buf, sizeof buf, "%s", s);
  *n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < count && strcmp(tok, names[k]) != 0) k++;
    if (k == count) {
      fprintf(stderr, "takhin-bench: -%s: unknown value \"%s\" (want a comma list of %s)\n", flag,
              tok, want);
      return -1;
    }
    int dup = 0;
    for (int i = 0; i < *n; i++) dup |= order[i] == k;
    if (!dup) order[(*n)++] = k;
  }
  if (*n == 0) {
    fprintf(stderr, "takhin-bench: -%s: empty list (want a comma list of %s)\n", flag, want);
    return -1;
  }
  return 0;
}

/* A whole number for -name, or an error naming the flag. */
static int parse_whole(const char *name, const char *val, unsigned long long min,
                       unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(val, &end, 10);
  if (end == val || *end || errno || val[0] == '-' || v < min) {
    fprintf(stderr, "takhin-bench: -%s: \"%s\" is not a whole number >= %llu\n", name, val, min);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_flags(int argc, char **argv, flags *fl) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') goto bad;
    a += a[1] == '-' ? 2 : 1; /* -flag and --flag */
    char name[32];
    const char *val = strchr(a, '=');
    size_t nl = val ? (size_t)(val - a) : strlen(a);
    if (nl >= sizeof name) goto bad;
    memcpy(name, a, nl);
    name[nl] = 0;
    if (val) val++;
    /* Boolean flags. */
    if (!strcmp(name, "list")) fl->list = 1;
    else if (!strcmp(name, "cold")) fl->cold = 1;
    else if (!strcmp(name, "quick") || !strcmp(name, "smoke")) {
      /* The last tier flag wins, so a script's -full can be overridden. */
      fl->tier = name[0] == 'q' ? TIER_QUICK : TIER_SMOKE;
      fl->full = 0;
    } else if (!strcmp(name, "full")) {
      fl->tier = TIER_FULL;
      fl->full = 1;
    } else if (!strcmp(name, "h") || !strcmp(name, "help")) {
      usage(stdout);
      exit(0);
    } else {
      static const char *const valued[] = {"bench",      "benchtime", "count", "path",
                                           "durability", "json",      "csv",   "compare",
                                           "against",    "tmpdir",    "seed",  "results"};
      size_t k = 0;
      while (k < sizeof valued / sizeof valued[0] && strcmp(name, valued[k]) != 0) k++;
      if (k == sizeof valued / sizeof valued[0]) goto bad;
      if (!val) {
        if (i + 1 >= argc) {
          fprintf(stderr, "takhin-bench: -%s: needs a value\n", name);
          return -1;
        }
        val = argv[++i];
      }
      if (!strcmp(name, "bench")) fl->bench = val;
      else if (!strcmp(name, "benchtime")) fl->benchtime = val;
      else if (!strcmp(name, "count")) {
        unsigned long long v;
        if (parse_whole(name, val, 1, &v) != 0) return -1;
        fl->count = v > 1000000 ? 1000000 : (int)v;
      } else if (!strcmp(name, "path")) fl->paths = val;
      else if (!strcmp(name, "durability")) fl->durability = val;
      else if (!strcmp(name, "json")) fl->json = val;
      else if (!strcmp(name, "csv")) fl->csv = val;
      else if (!strcmp(name, "compare")) fl->compare = val;
      else if (!strcmp(name, "against")) fl->against = val;
      else if (!strcmp(name, "tmpdir")) fl->tmpdir = val;
      else if (!strcmp(name, "results")) fl->results = val;
      else {
        unsigned long long v;
        if (parse_whole(name, val, 0, &v) != 0) return -1;
        fl->seed = (uint64_t)v;
      }
    }
  }
  return 0;
bad:
  fprintf(stderr, "takhin-bench: unknown argument %s\n\n", argv[i]);
  usage(stderr);
  return -1;
}

static void list_benchmarks(int tier) {
  static const char *const tier_names[] = {"-smoke", "-quick", "default/-full"};
  printf("benchmarks (matrices for %s):\n", tier_names[tier]);
  for (size_t d = 0; d < bench_ndefs; d++) {
    const bench_def *def = bench_defs[d];
    printf("  Benchmark%-30s", def->name);
    int cases = 1;
    for (int a = 0; a < def->naxes; a++) {
      const bench_axis *ax = &def->axes[a];
      const bench_list *l = &ax->tier[tier];
      cases *= l->n;
      printf("%s%s=", a ? " x " : "", ax->key);
      for (int k = 0; k < l->n; k++) {
        if (ax->labels) printf("%s%s", k ? "," : "", ax->labels[l->v[k]]);
        else printf("%s%lld%s", k ? "," : "", (long long)l->v[k], ax->unit);
      }
    }
    printf("  (%d cases; paths", cases);
    for (int p = 0; p < PATH_COUNT; p++)
      if (def->paths & (1u << p)) printf(" %s", bench_paths[p]->name);
    printf("%s)\n      %s\n", def->flags & BENCH_DURABLE ? "; per durability mode" : "", def->what);
    for (int p = 0; p < PATH_COUNT; p++)
      if (!(def->paths & (1u << p)))
        printf("      n/a on %s: %s\n", bench_paths[p]->name,
               def->na[p] ? def->na[p] : "does not apply");
  }
  if (bench_npending) printf("pending:\n");
  for (size_t i = 0; i < bench_npending; i++)
    printf("  Benchmark%-30s %s\n", bench_pending[i][0], bench_pending[i][1]);
  printf("paths:\n");
  for (int p = 0; p < PATH_COUNT; p++) {
    const char *why = bench_paths[p]->unavailable ? bench_paths[p]->unavailable() : NULL;
    printf("  %-8s %s\n", bench_paths[p]->name, why ? why : "available");
  }
}

static na_note na_notes[64];
static size_t n_na;

static void note_na(const bench_def *def, int path, const char *why) {
  for (size_t i = 0; i < n_na; i++)
    if (na_notes[i].def == def && na_notes[i].path == path && !strcmp(na_notes[i].why, why)) return;
  if (n_na < sizeof na_notes / sizeof na_notes[0]) na_notes[n_na++] = (na_note){def, path, why};
}

/* Every case selected by the flags, in run order. Cases a path cannot run
** are left out and noted (na_notes) when the name matches -bench. */
static bcase *build_cases(const flags *fl, const regex_t *re, const int *paths, int npaths,
                          const int *durs, int ndurs, size_t *ncases) {
  size_t n = 0, cap = 64;
  bcase *v = malloc(cap * sizeof *v);
  for (size_t d = 0; v && d < bench_ndefs; d++) {
    const bench_def *def = bench_defs[d];
    int nd = def->flags & BENCH_DURABLE ? ndurs : 1;
    for (int di = 0; di < nd; di++) {
      int idx[BENCH_MAX_PARAMS] = {0};
      for (;;) { /* odometer over the axes, first axis slowest */
        int64_t p[BENCH_MAX_PARAMS] = {0};
        for (int a = 0; a < def->naxes; a++) p[a] = def->axes[a].tier[fl->tier].v[idx[a]];
        char params[160], full[256];
        bench_params_name(def, p, params, sizeof params);
        for (int c = 0; c < fl->count; c++) {
          for (int pi = 0; pi < npaths; pi++) {
            int path = paths[pi];
            snprintf(full, sizeof full, "Benchmark%s/%s/%s", def->name, params,
                     bench_paths[path]->name);
            if (regexec(re, full, 0, NULL, 0) != 0) continue;
            /* the kafka path runs only where a benchmark lists it: no note elsewhere */
            if (path == PATH_KAFKA && !(def->paths & PATH_BIT_KAFKA)) continue;
            const char *na = bench_path_na(def, path, durs[di]);
            if (na) {
              /* A path missing here altogether is reported once, above. */
              if (!bench_paths[path]->unavailable || !bench_paths[path]->unavailable())
                note_na(def, path, na);
              continue;
            }
            if (n == cap) {
              bcase *nv = realloc(v, (cap *= 2) * sizeof *v);
              if (!nv) {
                free(v);
                return NULL;
              }
              v = nv;
            }
            v[n] = (bcase){.def = def, .path = path, .durability = durs[di]};
            memcpy(v[n].p, p, sizeof p);
            n++;
          }
        }
        int a = def->naxes - 1;
        while (a >= 0 && ++idx[a] == def->axes[a].tier[fl->tier].n) idx[a--] = 0;
        if (a < 0) break;
      }
    }
  }
  *ncases = n;
  return v;
}

static void on_sigint(int sig) {
  (void)sig;
  bench_interrupted = 1;
  signal(SIGINT, SIG_DFL); /* a second ^C ends the process */
}

static void fmt_dur(char *out, size_t cap, double secs) {
  int s = (int)(secs + 0.5);
  snprintf(out, cap, "%d:%02d", s / 60, s % 60);
}

static void progress(size_t done, size_t total, const char *what, uint64_t start) {
  double el = (double)(now_ns() - start) / 1e9;
  char e[16], eta[16] = "?";
  fmt_dur(e, sizeof e, el);
  if (done) fmt_dur(eta, sizeof eta, el / (double)done * (double)(total - done));
  fprintf(stderr, "\r\033[K[%zu/%zu] %s  elapsed %s  ETA %s", done + 1, total, what, e, eta);
}

/* Escape s into a JSON string body (no quotes). */
static void json_escape(char *out, size_t cap, const char *s) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
    else if (c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o] = 0;
}

/* ---- the results folder --------------------------------------------------- */
/* The source tree's commit, with "-dirty" when tracked files differ from it;
** "nogit" outside a git checkout. */
static void source_commit(char *out, size_t cap) {
  snprintf(out, cap, "nogit");
  if (strchr(TAKHIN_SOURCE_DIR, '\'')) return;
  FILE *p =
      popen("cd '" TAKHIN_SOURCE_DIR "' 2>/dev/null && c=$(git rev-parse --short HEAD 2>/dev/null)"
            " && { git diff --quiet HEAD -- 2>/dev/null || c=\"$c-dirty\"; } && echo \"$c\"",
            "r");
  if (!p) return;
  char line[64];
  if (fgets(line, sizeof line, p) && line[0] != '\n') {
    line[strcspn(line, "\n")] = 0;
    snprintf(out, cap, "%s", line);
  }
  pclose(p);
}

/* Go-format output: always the results file, stdout only when it is not a
** terminal (a terminal gets the tables). */
static FILE *go_file;
static int stdout_tty;

static void out_go(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_go(const char *fmt, ...) {
  va_list ap;
  if (go_file) {
    va_start(ap, fmt);
    vfprintf(go_file, fmt, ap);
    va_end(ap);
  }
  if (!stdout_tty) {
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
  }
}

/* Both: the results file and stdout. */
static void out_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_all(const char *fmt, ...) {
  va_list ap;
  if (go_file) {
    va_start(ap, fmt);
    vfprintf(go_file, fmt, ap);
    va_end(ap);
  }
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
}

/* Charts: scripts/bench_charts.sh of the source tree draws them with gnuplot
** into dir. Returns a line saying what happened. */
static void draw_charts(const char *dir, char *msg, size_t cap) {
  char script[4096], cmd[8192];
  snprintf(script, sizeof script, "%s/scripts/bench_charts.sh", TAKHIN_SOURCE_DIR);
  if (access(script, R_OK) != 0) {
    snprintf(msg, cap, "charts: skipped (%.400s not found)", script);
    return;
  }
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
    snprintf(msg, cap,
             "charts: skipped: gnuplot is not installed (scripts/deps.sh bench installs it)");
    return;
  }
  if (strchr(dir, '\'') || strchr(script, '\'')) {
    snprintf(msg, cap, "charts: skipped (a quote in the folder name)");
    return;
  }
  snprintf(cmd, sizeof cmd, "bash '%s' '%s' >'%s/charts.log' 2>&1", script, dir, dir);
  int rc = system(cmd);
  if (rc == 0) snprintf(msg, cap, "charts: drawn (charts-*.png)");
  else snprintf(msg, cap, "charts: the chart script failed, see %s/charts.log", dir);
}

int main(int argc, char **argv) {
  flags fl = {.bench = ".", .count = 1, .tier = TIER_FULL, .seed = 1};
  if (parse_flags(argc, argv, &fl) != 0) return 2;
  if (fl.list) {
    list_benchmarks(fl.tier);
    return 0;
  }

  /* Before any thread exists, so the inherited counters see every one. */
  hw_open();
  bench_results results = {0};
  machine_info mi;
  machine_info_get(&mi);
  int failures = 0;

  if (fl.against) { /* compare two sets of files, run nothing */
    bench_results old = {0};
    if (!fl.compare) {
      fprintf(stderr, "takhin-bench: -against: needs -compare BASELINE.json\n");
      return 2;
    }
    run_mode mo, mc;
    if (results_load_json(fl.compare, &old, &mo) != 0 ||
        results_load_json(fl.against, &results, &mc) != 0 || run_mode_check(&mo, &mc) != 0) {
      results_free(&old);
      results_free(&results);
      return 2;
    }
    int reg = compare_print(stdout, &old, &results);
    results_free(&old);
    results_free(&results);
    return reg ? 1 : 0;
  }

  const char *path_names[PATH_COUNT];
  for (int p = 0; p < PATH_COUNT; p++) path_names[p] = bench_paths[p]->name;
  static const char *const dur_names[] = {"os", "fsync", "buffered"};
  int paths[PATH_COUNT], npaths = 0, durs[3], ndurs = 0;
  if (!fl.paths || !strcmp(fl.paths, "all")) {
    for (int p = 0; p < PATH_COUNT; p++) paths[npaths++] = p;
  } else if (parse_list("path", fl.paths, path_names, PATH_COUNT, "all", paths, &npaths) != 0) {
    return 2;
  }
  const char *dur_flag = fl.durability ? fl.durability : fl.full ? "os,fsync,buffered" : "os";
  if (parse_list("durability", dur_flag, dur_names, 3, NULL, durs, &ndurs) != 0) return 2;

  run_opts ro = {.tier = fl.tier, .seed = fl.seed};
  const char *bt = fl.benchtime            ? fl.benchtime
                   : fl.tier == TIER_SMOKE ? "4x"
                   : fl.tier == TIER_QUICK ? "200ms"
                                           : "1s";
  if (parse_benchtime(bt, &ro.benchtime_ns, &ro.benchtime_n) != 0) {
    fprintf(stderr, "takhin-bench: -benchtime: bad value \"%s\" (want 5s, 300ms or 1000x)\n", bt);
    return 2;
  }

  const char *tier_name = fl.tier == TIER_SMOKE   ? "smoke"
                          : fl.tier == TIER_QUICK ? "quick"
                          : fl.full               ? "full"
                                                  : "default";
  /* The baseline is read and its mode checked before anything runs: a
  ** mismatch found after minutes of benchmarks would waste them. */
  bench_results baseline = {0};
  if (fl.compare) {
    run_mode mo, mc = {.tier = ""};
    snprintf(mc.tier, sizeof mc.tier, "%s", tier_name);
    snprintf(mc.benchtime, sizeof mc.benchtime, "%s", bt);
    snprintf(mc.file, sizeof mc.file, "this run");
    if (results_load_json(fl.compare, &baseline, &mo) != 0 || run_mode_check(&mo, &mc) != 0) {
      results_free(&baseline);
      return 2;
    }
  }

  regex_t re;
  if (regcomp(&re, fl.bench, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "takhin-bench: -bench: bad regular expression \"%s\"\n", fl.bench);
    return 2;
  }
  size_t ncases = 0;
  bcase *cases = build_cases(&fl, &re, paths, npaths, durs, ndurs, &ncases);
  regfree(&re);
  if (!cases) {
    fprintf(stderr, "takhin-bench: out of memory\n");
    return 2;
  }

  /* Scratch space: always a fresh folder of our own, so removing it at the
  ** end can never touch anything else. */
  char tmpl[4096];
  const char *base = fl.tmpdir ? fl.tmpdir : "/tmp";
  if (fs_mkdir_p(base) != 0) {
    fprintf(stderr, "takhin-bench: cannot create %s: %s\n", base, strerror(errno));
    return 2;
  }
  snprintf(tmpl, sizeof tmpl, "%s/takhin-bench-XXXXXX", base);
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "takhin-bench: cannot create a folder in %s: %s\n", base, strerror(errno));
    return 2;
  }
  ro.tmpdir = tmpl;
  ro.cold = fl.cold;
  signal(SIGINT, on_sigint);

  /* The results folder: results/<UTC time>-<commit>/, made before the run
  ** so a run that cannot keep its results says so at once. */
  char commit[64], rdir[4096] = "";
  source_commit(commit, sizeof commit);
  const char *rroot = fl.results ? fl.results : TAKHIN_SOURCE_DIR "/results";
  if (strcmp(rroot, "none") != 0) {
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H%M%SZ", &tm);
    snprintf(rdir, sizeof rdir, "%s/%s-%s", rroot, stamp, commit);
    char gopath[4200];
    snprintf(gopath, sizeof gopath, "%s/bench.txt", rdir);
    if (fs_mkdir_p(rdir) != 0 || !(go_file = fopen(gopath, "w"))) {
      fprintf(
          stderr,
          "takhin-bench: cannot create the results folder %s: %s (-results DIR or -results none)\n",
          rdir, strerror(errno));
      fs_rm_rf(tmpl);
      return 2;
    }
  }
  stdout_tty = isatty(STDOUT_FILENO);

  int width = 0;
  for (size_t i = 0; i < ncases; i++) {
    char params[160];
    bench_params_name(cases[i].def, cases[i].p, params, sizeof params);
    int w = (int)(strlen(cases[i].def->name) + strlen(params) +
                  strlen(bench_paths[cases[i].path]->name) + 16);
    if (w > width) width = w;
  }
  report_set_width(width);
  report_header(stdout, &mi);
  if (go_file) report_header(go_file, &mi);
  out_all("benchtime: %s\n", bt);
  if (fl.cold)
    out_all("cache: cold (fetch benchmarks drop their files' page cache before each timed run)\n");
  for (int i = 0; i < npaths; i++) {
    const char *why =
        bench_paths[paths[i]]->unavailable ? bench_paths[paths[i]]->unavailable() : NULL;
    if (why) out_all("%s\n", why);
  }
  for (size_t i = 0; i < n_na; i++)
    out_all("n/a: Benchmark%s on %s: %s\n", na_notes[i].def->name,
            bench_paths[na_notes[i].path]->name, na_notes[i].why);
  if (!alloc_count_enabled())
    out_all("note: allocation counting is off in this build (sanitizer)\n");
  if (!lock_wait_enabled())
    out_all("note: lock-wait accounting is off in this build (sanitizer)\n");
  if (stdout_tty && ncases)
    printf(
        "%zu cases; a table per benchmark as it completes (every figure: Go benchmark lines in %s/bench.txt)\n",
        ncases, rdir[0] ? rdir : "the results folder, off with -results none:");
  fflush(stdout);

  int show_progress = isatty(STDERR_FILENO);
  uint64_t start = now_ns();
  int last_dur = -1;
  size_t ran = 0; /* cases that finished, passed or failed */
  for (size_t i = 0; i < ncases && !bench_interrupted; i++) {
    const bcase *c = &cases[i];
    bench_result r;
    if (show_progress) {
      char params[160], what[256];
      bench_params_name(c->def, c->p, params, sizeof params);
      snprintf(what, sizeof what, "%s/%s/%s [%s]", c->def->name, params, bench_paths[c->path]->name,
               durability_name(c->durability));
      progress(i, ncases, what, start);
    }
    int rc = run_case(&ro, c->def, c->p, c->path, c->durability, &r);
    if (show_progress) fprintf(stderr, "\r\033[K");
    if (c->durability != last_dur) {
      out_go("durability: %s\n", durability_name(c->durability));
      last_dur = c->durability;
    }
    /* A case ^C cut short did not fail: it did not finish. */
    if (rc != 0 && bench_interrupted && !strcmp(bench_error(), "interrupted")) break;
    ran++;
    /* On a terminal: a family's table once its last case is done. */
    int family_done = i + 1 == ncases || cases[i + 1].def != c->def || bench_interrupted;
    if (rc != 0) {
      out_all("--- FAIL: %s/%s-%d\n    %s\n", r.name, bench_paths[c->path]->name, r.procs,
              bench_error());
      fflush(stdout);
      failures++;
      if (stdout_tty && family_done) table_print(stdout, &results, c->def);
      continue;
    }
    if (c->def->derive) c->def->derive(&r, &results);
    if (go_file) report_line(go_file, &r);
    if (!stdout_tty) report_line(stdout, &r);
    if (results_push(&results, &r) != 0) {
      fprintf(stderr, "takhin-bench: out of memory\n");
      break;
    }
    if (stdout_tty && family_done) table_print(stdout, &results, c->def);
  }
  if (fs_rm_rf(tmpl) != 0) fprintf(stderr, "takhin-bench: could not remove %s\n", tmpl);
  char total[16];
  fmt_dur(total, sizeof total, (double)(now_ns() - start) / 1e9);
  if (ncases == 0)
    out_all("note: no case matches -bench \"%s\" on the available paths\n", fl.bench);
  /* After ^C there is no verdict line: "ok" would claim cases that never ran.
  ** The line says what did run; the exit status is 1. ("interrupted after"
  ** has a space, so benchstat does not read it as a configuration line.) */
  if (bench_interrupted)
    out_all("interrupted after %s: %zu of %zu cases ran (%zu reported, %d failed), %zu not run\n",
            total, ran, ncases, results.n, failures, ncases - ran);
  else
    out_all("%s\ttakhin/bench\t%s (%zu cases, %d failed)\n", failures ? "FAIL" : "ok", total,
            ncases, failures);

  if (go_file) report_ratios(go_file, &results);
  if (!stdout_tty) report_ratios(stdout, &results);

  /* The verdict: the scorecard, then the bottlenecks of the worst cases;
  ** on stdout, in the results folder and in the JSON. */
  sc_line sc[SC_MAX];
  int nsc = scorecard_eval(&results, sc, SC_MAX);
  char *extra = NULL;
  size_t extra_len = 0;
  FILE *xj = open_memstream(&extra, &extra_len);
  if (xj) {
    fprintf(xj, "\"scorecard\": ");
    scorecard_json(xj, sc, nsc);
    fprintf(xj, ",\n  \"bottlenecks\": ");
    bottleneck_report(NULL, xj, &results, sc, nsc, hw_unavailable());
    fclose(xj);
  }
  scorecard_print(stdout, sc, nsc);
  if (fl.tier == TIER_SMOKE)
    printf(
        "note: -smoke runs each case a few times to see that it works: these verdicts measure nothing\n");
  bottleneck_report(stdout, NULL, &results, sc, nsc, hw_unavailable());

  char settings[1024], bench_esc[256], dir_esc[512];
  json_escape(bench_esc, sizeof bench_esc, fl.bench);
  json_escape(dir_esc, sizeof dir_esc, base);
  snprintf(settings, sizeof settings,
           "{\"bench\": \"%s\", \"benchtime\": \"%s\", \"count\": %d, \"tier\": \"%s\", "
           "\"durability\": \"%s\", \"seed\": %llu, \"tmpdir\": \"%s\", "
           "\"alloc_counting\": %s, \"lock_wait\": %s}",
           bench_esc, bt, fl.count, tier_name, dur_flag, (unsigned long long)fl.seed, dir_esc,
           alloc_count_enabled() ? "true" : "false", lock_wait_enabled() ? "true" : "false");
  if (fl.json && report_json(fl.json, &mi, &results, settings, extra) != 0) {
    fprintf(stderr, "takhin-bench: cannot write %s\n", fl.json);
    failures++;
  }
  if (fl.csv && report_csv(fl.csv, &results) != 0) {
    fprintf(stderr, "takhin-bench: cannot write %s\n", fl.csv);
    failures++;
  }
  int regressions = 0;
  if (fl.compare) regressions = compare_print(stdout, &baseline, &results);
  results_free(&baseline);
  if (rdir[0]) { /* the rest of the results folder, then its path, last */
    char fpath[4300], charts[512];
    int bad = go_file && fclose(go_file) != 0;
    go_file = NULL;
    snprintf(fpath, sizeof fpath, "%s/results.json", rdir);
    bad |= report_json(fpath, &mi, &results, settings, extra) != 0;
    snprintf(fpath, sizeof fpath, "%s/results.csv", rdir);
    bad |= report_csv(fpath, &results) != 0;
    snprintf(fpath, sizeof fpath, "%s/scorecard.txt", rdir);
    FILE *f = fopen(fpath, "w");
    if (f) {
      scorecard_print(f, sc, nsc);
      bottleneck_report(f, NULL, &results, sc, nsc, hw_unavailable());
      bad |= fclose(f) != 0;
    } else {
      bad = 1;
    }
    snprintf(fpath, sizeof fpath, "%s/tables.txt", rdir);
    if ((f = fopen(fpath, "w"))) {
      for (size_t d = 0; d < bench_ndefs; d++) table_print(f, &results, bench_defs[d]);
      bad |= fclose(f) != 0;
    }
    /* What the charts stamp on every image, and how the run was made. */
    snprintf(fpath, sizeof fpath, "%s/run.txt", rdir);
    if ((f = fopen(fpath, "w"))) {
      fprintf(f, "command:");
      for (int i = 0; i < argc; i++) fprintf(f, " %s", argv[i]);
      fprintf(f,
              "\ncommit: %s\ndate: %s\nloadavg: %.2f %.2f %.2f\ncores: %d\ncpu: %s\ntier: %s\n"
              "benchtime: %s\nelapsed: %s\n",
              commit, mi.date, mi.load[0], mi.load[1], mi.load[2], mi.cores, mi.cpu, tier_name, bt,
              total);
      bad |= fclose(f) != 0;
    }
    if (bad) {
      fprintf(stderr, "takhin-bench: could not write every file of %s\n", rdir);
      failures++;
    }
    draw_charts(rdir, charts, sizeof charts);
    printf("\n%s\nresults: %s\n", charts, rdir);
  }
  free(extra);
  free(cases);
  results_free(&results);
  return failures || regressions || bench_interrupted ? 1 : 0;
}
