/*
** hwcount.c -- the bottleneck signals the other snapshots lack: page faults
** (getrusage) and, where the kernel exposes a hardware PMU, cycles,
** instructions and last-level cache misses through perf_event_open.
**
** The counters are opened once, before any benchmark thread exists, with
** inherit set: every thread created later (benchmark workers, takhin's own
** background threads) counts into them, and a read of the parent counter
** sums the live children as perf's own `perf stat` does. They are not
** grouped (the kernel refuses group reads of inherited counters), so each is
** scaled by its own time_enabled / time_running when the PMU multiplexes.
**
** Virtual machines often have no PMU: perf_event_open then fails (ENOENT)
** and the figures are reported "not available" with the reason, never 0.
*/
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hwcount.h"

static int hw_fd[HW_NCOUNTERS] = {-1, -1, -1, -1};
static char hw_why[160] = "not opened";
static int hw_ok;

static const unsigned long long hw_config[HW_NCOUNTERS] = {
    PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_HW_INSTRUCTIONS, PERF_COUNT_HW_CACHE_REFERENCES,
    PERF_COUNT_HW_CACHE_MISSES};

void hw_open(void) {
  for (int i = 0; i < HW_NCOUNTERS; i++) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = hw_config[i];
    a.inherit = 1;
    a.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    if (fd < 0) {
      snprintf(hw_why, sizeof hw_why, "perf_event_open: %s%s", strerror(errno),
               errno == ENOENT ? " (no hardware PMU, as in most VMs)"
               : errno == EACCES || errno == EPERM
                   ? " (kernel.perf_event_paranoid forbids it for this user)"
                   : "");
      hw_close();
      return;
    }
    hw_fd[i] = fd;
  }
  hw_ok = 1;
  hw_why[0] = 0;
}

void hw_close(void) {
  for (int i = 0; i < HW_NCOUNTERS; i++) {
    if (hw_fd[i] >= 0) close(hw_fd[i]);
    hw_fd[i] = -1;
  }
  hw_ok = 0;
}

const char *hw_unavailable(void) { return hw_ok ? NULL : hw_why; }

void hw_snap_take(hw_snap *s) {
  memset(s, 0, sizeof *s);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s->minflt = (uint64_t)ru.ru_minflt;
    s->majflt = (uint64_t)ru.ru_majflt;
  }
  if (!hw_ok) return;
  s->have_hw = 1;
  for (int i = 0; i < HW_NCOUNTERS; i++) {
    uint64_t v[3]; /* value, time enabled, time running */
    if (read(hw_fd[i], v, sizeof v) != (ssize_t)sizeof v) {
      s->have_hw = 0;
      return;
    }
    s->hw[i] = v[2] ? (double)v[0] * ((double)v[1] / (double)v[2]) : 0;
  }
}
