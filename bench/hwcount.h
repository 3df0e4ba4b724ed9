/*
** hwcount.h -- page faults and hardware counters around a timed run.
*/
#ifndef TAKHIN_BENCH_HWCOUNT_H
#define TAKHIN_BENCH_HWCOUNT_H

#include <stdint.h>

enum { HW_CYCLES, HW_INSTRUCTIONS, HW_CACHE_REFS, HW_CACHE_MISSES, HW_NCOUNTERS };

typedef struct hw_snap {
  uint64_t minflt, majflt;
  int have_hw;
  double hw[HW_NCOUNTERS];
} hw_snap;

/* Open the process-wide counters; call before any thread is created. */
void hw_open(void);
void hw_close(void);
/* NULL when hardware counters work, else why not ("perf_event_open: ..."). */
const char *hw_unavailable(void);
/* Never allocates: it runs inside the timed window's brackets. */
void hw_snap_take(hw_snap *s);

#endif /* TAKHIN_BENCH_HWCOUNT_H */
