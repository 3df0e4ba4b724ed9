/*
** runner.c -- runs one benchmark case the way Go's testing package runs b.N.
**
** Setup happens once per case, in a fresh directory, outside any timing.
** Then timed runs of n operations: n = 1 first, then Go's prediction
** (n = goal * prev_n / prev_ns, plus 20%, at most 100x and at least +1) until
** a run lasts -benchtime; -benchtime Nx makes exactly one run of N. Every run
** reuses the case's state (a produce benchmark keeps appending to its log, a
** fetch benchmark re-reads its pre-filled log); only the last run is
** reported. Each timed run is bracketed by process-wide snapshots, so
** allocations, CPU time, context switches, storage bytes and lock waits are
** the deltas of exactly the timed window.
*/
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hwcount.h"
#include "runner.h"

volatile sig_atomic_t bench_interrupted;

/* ---- errors -------------------------------------------------------------- */
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char err_msg[512];

void bench_errorf(const char *fmt, ...) {
  pthread_mutex_lock(&err_mu);
  if (!err_msg[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&err_mu);
}

const char *bench_error(void) { return err_msg; }

void bench_error_clear(void) { err_msg[0] = 0; }

void result_latency(bench_result *r, const hist *h) {
  r->p50_ms = hist_quantile(h, 0.50) / 1e6;
  r->p99_ms = hist_quantile(h, 0.99) / 1e6;
  r->p999_ms = hist_quantile(h, 0.999) / 1e6;
}

/* ---- one case ------------------------------------------------------------ */
static void fill_figures(bench_result *r, int64_t n, uint64_t ns, const proc_snap *a,
                         const proc_snap *b) {
  double dn = (double)n, secs = (double)ns / 1e9;
  r->iterations = n;
  r->ns_per_op = (double)ns / dn;
  if (r->def->flags & BENCH_OPS) result_metric(r, "ops_per_s", ns ? 1e9 * dn / (double)ns : 0);
  if (r->payload_bytes_per_op > 0 && secs > 0)
    r->mb_per_s = r->payload_bytes_per_op * dn / secs / 1e6;
  if (r->msgs_per_op > 0 && secs > 0) r->msgs_per_s = r->msgs_per_op * dn / secs;
  if (alloc_count_enabled()) {
    r->allocs_per_op = (double)(b->allocs - a->allocs) / dn;
    r->bytes_per_op = (double)(b->alloc_bytes - a->alloc_bytes) / dn;
  }
  result_metric(r, "cpu_user_ns_per_op", (double)(b->utime_ns - a->utime_ns) / dn);
  result_metric(r, "cpu_sys_ns_per_op", (double)(b->stime_ns - a->stime_ns) / dn);
  /* Busy cores on average: above 1 only when several threads ran at once. */
  result_metric(r, "cpu_cores_busy",
                ns ? (double)(b->utime_ns - a->utime_ns + b->stime_ns - a->stime_ns) / (double)ns
                   : 0);
  result_metric(r, "ctx_switches_per_op",
                (double)(b->nvcsw - a->nvcsw + b->nivcsw - a->nivcsw) / dn);
  result_metric(r, "vol_ctx_switches_per_op", (double)(b->nvcsw - a->nvcsw) / dn);
  result_metric(r, "invol_ctx_switches_per_op", (double)(b->nivcsw - a->nivcsw) / dn);
  if (a->have_io && b->have_io) {
    result_metric(r, "storage_write_bytes_per_op", (double)(b->write_bytes - a->write_bytes) / dn);
    result_metric(r, "storage_read_bytes_per_op", (double)(b->read_bytes - a->read_bytes) / dn);
    result_metric(r, "wchar_per_op", (double)(b->wchar - a->wchar) / dn);
    result_metric(r, "rchar_per_op", (double)(b->rchar - a->rchar) / dn);
  }
  if (lock_wait_enabled()) {
    result_metric(r, "lock_wait_ns_per_op", (double)(b->lock_wait_ns - a->lock_wait_ns) / dn);
    result_metric(r, "lock_contended_per_op", (double)(b->lock_contended - a->lock_contended) / dn);
  }
}

/* Page faults and hardware counters of the timed window (hwcount.c). */
static void fill_hw(bench_result *r, int64_t n, const hw_snap *a, const hw_snap *b) {
  double dn = (double)n;
  result_metric(r, "minor_faults_per_op", (double)(b->minflt - a->minflt) / dn);
  result_metric(r, "major_faults_per_op", (double)(b->majflt - a->majflt) / dn);
  if (!a->have_hw || !b->have_hw) return;
  double cyc = b->hw[HW_CYCLES] - a->hw[HW_CYCLES],
         ins = b->hw[HW_INSTRUCTIONS] - a->hw[HW_INSTRUCTIONS];
  result_metric(r, "ipc", cyc > 0 ? ins / cyc : NAN);
  result_metric(r, "cache_misses_per_op", (b->hw[HW_CACHE_MISSES] - a->hw[HW_CACHE_MISSES]) / dn);
  double refs = b->hw[HW_CACHE_REFS] - a->hw[HW_CACHE_REFS];
  result_metric(r, "cache_miss_pct",
                refs > 0 ? 100.0 * (b->hw[HW_CACHE_MISSES] - a->hw[HW_CACHE_MISSES]) / refs : NAN);
}

static int64_t predict_n(int64_t goal_ns, int64_t prev_n, uint64_t prev_ns) {
  double ns = prev_ns ? (double)prev_ns : 1;
  double n = (double)goal_ns * (double)prev_n / ns;
  n += n / 5;
  if (n > 100.0 * (double)prev_n) n = 100.0 * (double)prev_n;
  if (n < (double)prev_n + 1) n = (double)prev_n + 1;
  if (n > 1e9) n = 1e9;
  return (int64_t)n;
}

/* With TAKHIN_BENCH_PERF_CTL (and _ACK) naming the fifos of
** perf record --control fifo:CTL,ACK -D -1, only the timed runs are
** recorded, not the setup around them (BENCHMARKS.md, "Profiling"). */
static void perf_control(const char *cmd) {
  const char *ctl = getenv("TAKHIN_BENCH_PERF_CTL"), *ack = getenv("TAKHIN_BENCH_PERF_ACK");
  if (!ctl) return;
  int fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* no reader (no perf): ENXIO, go on */
  if (fd < 0) return;
  ssize_t w = write(fd, cmd, strlen(cmd));
  close(fd);
  if (w <= 0 || !ack || (fd = open(ack, O_RDONLY | O_CLOEXEC)) < 0) return;
  char reply[16];
  if (read(fd, reply, sizeof reply) < 0) { /* perf answers "ack"; nothing to do either way */
  }
  close(fd);
}

int run_case(const run_opts *o, const bench_def *def, const int64_t *p, int path, int durability,
             bench_result *out) {
  static unsigned seq;
  char params[160], dir[4096];
  result_init(out);
  out->def = def;
  memcpy(out->p, p, sizeof out->p);
  bench_params_name(def, p, params, sizeof params);
  int cold = o->cold && def->cold;
  /* A cold-cache result is another case: its name says so, so it is never
  ** compared with or taken for the warm one. */
  snprintf(out->name, sizeof out->name, "Benchmark%s%s%s%s", def->name, params[0] ? "/" : "",
           params, cold ? "/cache=cold" : "");
  out->path = path;
  out->durability = durability;
  out->procs = (int)sysconf(_SC_NPROCESSORS_ONLN);
  snprintf(dir, sizeof dir, "%s/case-%04u-%s", o->tmpdir, ++seq, bench_paths[path]->name);

  bench_error_clear();
  void *st = calloc(1, def->state_size);
  if (!st || fs_mkdir_p(dir) != 0) {
    free(st);
    bench_errorf("cannot create %s", dir);
    return -1;
  }
  bench_env env = {.path = bench_paths[path],
                   .dir = dir,
                   .durability = durability,
                   .p = p,
                   .tier = o->tier,
                   .seed = o->seed,
                   .cold = cold};
  int rc = def->setup(st, &env);
  int once = (def->flags & BENCH_ONCE) != 0;
  int64_t n = o->benchtime_n > 0 && !once ? o->benchtime_n : 1;
  while (rc == 0) {
    /* Cold cache: before every timed run, the benchmark closes its store,
    ** its files are synced and dropped from the page cache, and it reopens. */
    if (cold && (rc = def->cold(st)) != 0) break;
    if (def->prepare && (rc = def->prepare(st, n)) != 0) break;
    proc_snap a, b;
    hw_snap ha, hb;
    perf_control("enable\n");
    hw_snap_take(&ha);
    proc_snap_take(&a);
    uint64_t t0 = now_ns();
    rc = def->run(st, n);
    uint64_t t1 = now_ns();
    proc_snap_take(&b);
    hw_snap_take(&hb);
    perf_control("disable\n");
    /* finish runs even after a failed run: it joins threads started by prepare. */
    int frc = def->finish(st, n, out);
    if (rc == 0) rc = frc;
    if (rc != 0) break;
    fill_figures(out, n, t1 - t0, &a, &b);
    fill_hw(out, n, &ha, &hb);
    if (once || o->benchtime_n > 0 || (int64_t)(t1 - t0) >= o->benchtime_ns || n >= 1000000000)
      break;
    if (bench_interrupted) {
      bench_errorf("interrupted");
      rc = -1;
      break;
    }
    n = predict_n(o->benchtime_ns, n, t1 - t0);
  }
  if (rc != 0 && !bench_error()[0]) bench_errorf("failed without a message");
  def->teardown(st);
  free(st);
  if (fs_rm_rf(dir) != 0) fprintf(stderr, "takhin-bench: could not remove %s\n", dir);
  return rc;
}
