/*
** bottleneck.c -- the plan's "Identifying Bottlenecks" turned into
** measurement. For the cases behind the worst-missed targets and for the
** slowest cases against the physical limit (lowest api/file), rank what the
** timed run recorded and name the top three:
**
**   lock contention   time blocked on held locks / thread time   (measured)
**   user CPU          user CPU / thread time                     (measured)
**   system CPU        system CPU / thread time                   (measured)
**   off-CPU waiting   1 - CPU / thread time: I/O, sleep, queue   (measured)
**   allocations       allocs/op x ~60 ns / thread time           (estimated)
**   page faults       faults/op x ~0.5 us (major ~50 us)         (estimated)
**   disk I/O          bytes written beyond the payload, bytes read back,
**                     per payload byte                          (measured)
**   memory stalls     1 - IPC / 2, with cache misses per op     (perf, where available)
**
** Thread time is wall time x min(threads, cores): what the threads could
** have used. Shares are of that, so signals of one case compare; the two
** estimated ones use a typical cost per event and say so.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scorecard.h"

#define MAX_CASES 5
#define ALLOC_NS 60.0
#define MINFLT_NS 500.0
#define MAJFLT_NS 50000.0

typedef struct signal {
  const char *name;
  double score; /* share-like, for ranking */
  char detail[160];
  const char *fix; /* the plan's solutions, short */
} signal;

typedef struct pick {
  char name[192];
  int path;
  char why[160];
  const char *force; /* a signal that is the missed figure itself: always shown */
} pick;

static double fig(const bench_results *rs, const pick *p, const char *figure) {
  return results_median(rs, p->name, p->path, TAKHIN_DURABILITY_OS, figure);
}

static double nz(double v) { return isnan(v) ? 0 : v; }

static int cmp_signal(const void *a, const void *b) {
  double x = ((const signal *)a)->score, y = ((const signal *)b)->score;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int add_pick(pick *v, int n, const char *name, int path, const char *why) {
  if (n >= MAX_CASES || !name[0]) return n;
  for (int i = 0; i < n; i++)
    if (v[i].path == path && !strcmp(v[i].name, name)) return n;
  snprintf(v[n].name, sizeof v[n].name, "%s", name);
  v[n].path = path;
  snprintf(v[n].why, sizeof v[n].why, "%s", why);
  v[n].force = NULL;
  return n + 1;
}

static int cmp_margin(const void *a, const void *b) {
  const sc_line *x = *(const sc_line *const *)a, *y = *(const sc_line *const *)b;
  double mx = isnan(x->margin_pct) ? x->margin_abs * 100 : x->margin_pct;
  double my = isnan(y->margin_pct) ? y->margin_abs * 100 : y->margin_pct;
  return mx < my ? -1 : mx > my;
}

/* Worst-missed targets first (up to three cases), then the slowest api
** cases against the file path. */
static int choose(const bench_results *rs, const sc_line *lines, int n, pick *v) {
  const sc_line *missed[SC_MAX];
  int nm = 0, np = 0;
  for (int i = 0; i < n && nm < SC_MAX; i++)
    if (!isnan(lines[i].measured) && !lines[i].met) missed[nm++] = &lines[i];
  qsort(missed, (size_t)nm, sizeof missed[0], cmp_margin);
  for (int i = 0; i < nm && np < 3; i++) {
    char why[160];
    if (!isnan(missed[i]->margin_pct))
      snprintf(why, sizeof why, "%s target missed by %.0f%%: %s",
               scorecard_target_source(missed[i]), -missed[i]->margin_pct,
               scorecard_target_what(missed[i]));
    else
      snprintf(why, sizeof why, "%s target missed: %s", scorecard_target_source(missed[i]),
               scorecard_target_what(missed[i]));
    int before = np;
    np = add_pick(v, np, missed[i]->case_name, scorecard_target_path(missed[i]), why);
    if (np > before && !strcmp(scorecard_target_figure(missed[i]), "allocs_per_op"))
      v[np - 1].force = "allocations";
  }
  /* Slowest: lowest api/file of throughput (MB/s, else ops/s), os mode. */
  while (np < MAX_CASES) {
    double worst = INFINITY;
    const char *wname = NULL;
    for (size_t i = 0; i < rs->n; i++) {
      const bench_result *r = &rs->v[i];
      if (r->path != PATH_API || r->durability != TAKHIN_DURABILITY_OS) continue;
      const char *f = isnan(r->mb_per_s) ? "ops_per_s" : "mb_per_s";
      double a = results_median(rs, r->name, PATH_API, TAKHIN_DURABILITY_OS, f);
      double b = results_median(rs, r->name, PATH_FILE, TAKHIN_DURABILITY_OS, f);
      if (!(a > 0) || !(b > 0) || a / b >= worst) continue;
      int taken = 0;
      for (int k = 0; k < np; k++) taken |= v[k].path == PATH_API && !strcmp(v[k].name, r->name);
      if (taken) continue;
      worst = a / b;
      wname = r->name;
    }
    if (!wname) break;
    char why[160];
    snprintf(why, sizeof why, "among the slowest against the file path: api/file %.2fx", worst);
    np = add_pick(v, np, wname, PATH_API, why);
  }
  return np;
}

/* "174 ms", "13.6 us", "850 ns": a time in the unit that reads best. */
static const char *fmt_ns(char *out, size_t cap, double ns) {
  if (ns >= 1e9) snprintf(out, cap, "%.3g s", ns / 1e9);
  else if (ns >= 1e6) snprintf(out, cap, "%.3g ms", ns / 1e6);
  else if (ns >= 1e3) snprintf(out, cap, "%.3g us", ns / 1e3);
  else snprintf(out, cap, "%.3g ns", ns);
  return out;
}

static int online_cores(void) {
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c > 0 ? (int)c : 1;
}

/* The signals of one case, ranked; returns how many. */
static int signals_of(const bench_results *rs, const pick *p, signal *s, const char *hw_why,
                      char *head, size_t headcap) {
  double ns = fig(rs, p, "ns_per_op");
  double threads = fig(rs, p, "threads");
  if (isnan(threads) || threads < 1) threads = 1;
  double par = threads < online_cores() ? threads : online_cores();
  double tt = ns * par;
  double usr = nz(fig(rs, p, "cpu_user_ns_per_op")), sys = nz(fig(rs, p, "cpu_sys_ns_per_op"));
  double lock = fig(rs, p, "lock_wait_ns_per_op");
  double allocs = fig(rs, p, "allocs_per_op");
  double minflt = fig(rs, p, "minor_faults_per_op"), majflt = fig(rs, p, "major_faults_per_op");
  double mbps = fig(rs, p, "mb_per_s");
  double payload = mbps > 0 ? mbps * 1e6 * ns / 1e9 : NAN;
  double wb = fig(rs, p, "storage_write_bytes_per_op"),
         rb = fig(rs, p, "storage_read_bytes_per_op");
  double msgs = fig(rs, p, "msgs_per_s") * ns / 1e9;
  double busy = fig(rs, p, "cpu_cores_busy");
  int k = 0;
  char t1[32], t2[32];
  snprintf(head, headcap, "%s/op, %g thread%s, %.2f cores busy of %d", fmt_ns(t1, sizeof t1, ns),
           threads, threads == 1 ? "" : "s", nz(busy), online_cores());
  if (!(tt > 0)) return 0;

  if (!isnan(lock)) {
    s[k] = (signal){"lock contention", lock / (ns * threads), "",
                    "smaller critical sections, rwlocks"};
    snprintf(s[k].detail, sizeof s[k].detail, "%.1f%% of thread time blocked on held locks (%s/op)",
             100 * s[k].score, fmt_ns(t2, sizeof t2, lock));
    k++;
  }
  s[k] = (signal){"user CPU", usr / tt, "", "hot loops: perf record (see Profiling)"};
  snprintf(s[k].detail, sizeof s[k].detail, "%.0f%% of thread time in user code (%s/op)",
           100 * s[k].score, fmt_ns(t2, sizeof t2, usr));
  k++;
  s[k] = (signal){"system CPU", sys / tt, "", "fewer, larger syscalls and copies"};
  snprintf(s[k].detail, sizeof s[k].detail, "%.0f%% of thread time in the kernel (%s/op)",
           100 * s[k].score, fmt_ns(t2, sizeof t2, sys));
  k++;
  /* Blocked on a lock is off-CPU too: counted once, as lock contention. */
  double off = 1 - (usr + sys) / tt - (isnan(lock) ? 0 : lock / (ns * threads));
  static char busy_fix[96];
  double la[1] = {-1};
  if (getloadavg(la, 1) == 1 && la[0] > online_cores())
    snprintf(busy_fix, sizeof busy_fix, "busy machine: load %.1f on %d cores", la[0],
             online_cores());
  else snprintf(busy_fix, sizeof busy_fix, "I/O waits, sleeps, other work");
  s[k] = (signal){"off-CPU waiting", off > 0 ? off : 0, "", busy_fix};
  snprintf(s[k].detail, sizeof s[k].detail,
           "%.0f%% of thread time on no CPU (I/O, sleep, run queue)", 100 * s[k].score);
  k++;
  if (!isnan(allocs)) {
    s[k] = (signal){"allocations", allocs * ALLOC_NS / tt, "", "reuse buffers, preallocate"};
    snprintf(s[k].detail, sizeof s[k].detail,
             "%.3g allocs/op%s%.3g per message; est. %.1f%% of time at ~60 ns", allocs,
             msgs > 0 ? ", " : "", msgs > 0 ? allocs / msgs : 0, 100 * s[k].score);
    if (!(msgs > 0))
      snprintf(s[k].detail, sizeof s[k].detail, "%.3g allocs/op; est. %.1f%% of time at ~60 ns",
               allocs, 100 * s[k].score);
    k++;
  }
  if (!isnan(minflt)) {
    s[k] = (signal){"page faults", (minflt * MINFLT_NS + nz(majflt) * MAJFLT_NS) / tt, "",
                    "map once, reuse buffers, prefault"};
    snprintf(s[k].detail, sizeof s[k].detail,
             "%.3g minor + %.3g major faults/op; est. %.1f%% of time", minflt, nz(majflt),
             100 * s[k].score);
    k++;
  }
  if (payload > 0 && (!isnan(wb) || !isnan(rb))) {
    double wamp = nz(wb) / payload, ramp = nz(rb) / payload;
    double sc = (wamp > 1 ? (wamp - 1) / 4 : 0) + (ramp > 1 ? 0.5 : ramp / 2);
    s[k] = (signal){"disk I/O", sc > 1 ? 1 : sc, "", "batch writes, bigger buffers"};
    snprintf(s[k].detail, sizeof s[k].detail, "%.2f B written, %.2f B read from disk per payload B",
             wamp, ramp);
    k++;
  }
  if (!hw_why) {
    double ipc = fig(rs, p, "ipc"), miss = fig(rs, p, "cache_misses_per_op");
    if (!isnan(ipc)) {
      s[k] = (signal){"memory stalls", ipc < 2 ? (1 - ipc / 2) * (usr + sys) / tt : 0, "",
                      "fewer pointer chases, smaller working set"};
      snprintf(s[k].detail, sizeof s[k].detail, "IPC %.2f, %.3g cache misses/op", ipc, nz(miss));
      k++;
    }
  }
  qsort(s, (size_t)k, sizeof *s, cmp_signal);
  return k;
}

void bottleneck_report(FILE *f, FILE *json, const bench_results *rs, const sc_line *lines, int n,
                       const char *hw_why) {
  pick v[MAX_CASES];
  int np = choose(rs, lines, n, v);
  if (f) {
    fprintf(
        f,
        "\nbottlenecks: top three signals of the timed run, for the worst-missed targets' cases and the slowest\n");
    fprintf(
        f,
        "  cases against the file path (share of thread time = wall time x min(threads, cores); est. = estimated)\n");
    fprintf(f, "  hardware counters (IPC, cache misses): %s\n",
            hw_why ? "not available: " : "available");
    if (hw_why) fprintf(f, "    %s\n", hw_why);
    if (!np) fprintf(f, "  no case to report (nothing missed, no api and file pair ran)\n");
  }
  if (json) fprintf(json, "{\"hardware_counters\": %s, \"cases\": [", hw_why ? "false" : "true");
  for (int i = 0; i < np; i++) {
    signal s[10];
    char head[160];
    int k = signals_of(rs, &v[i], s, hw_why, head, sizeof head);
    /* The missed figure is itself a signal (allocations): it is one of the
    ** three whatever its estimated share of time. */
    for (int j = 3; v[i].force && j < k; j++)
      if (!strcmp(s[j].name, v[i].force)) {
        signal t = s[j];
        s[j] = s[2];
        s[2] = t;
      }
    if (f) {
      fprintf(f, "  %s/%s: %s\n    why here: %s\n", v[i].name + 9, bench_paths[v[i].path]->name,
              head, v[i].why);
      for (int j = 0; j < k && j < 3; j++)
        fprintf(f, "    %d. %-16s %s  -> %s\n", j + 1, s[j].name, s[j].detail, s[j].fix);
    }
    if (json) {
      fprintf(json, "%s\n    {\"case\": \"%s\", \"path\": \"%s\", \"why\": \"%s\", \"top\": [",
              i ? "," : "", v[i].name, bench_paths[v[i].path]->name, v[i].why);
      for (int j = 0; j < k && j < 3; j++)
        fprintf(json, "%s{\"signal\": \"%s\", \"score\": %.4f, \"detail\": \"%s\"}", j ? ", " : "",
                s[j].name, s[j].score, s[j].detail);
      fprintf(json, "]}");
    }
  }
  if (json) fprintf(json, "\n  ]}");
}
