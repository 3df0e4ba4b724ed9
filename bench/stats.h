/*
** stats.h -- measuring instruments: a latency histogram, the monotonic clock,
** and process-wide snapshots (allocations, CPU time, context switches, storage
** I/O, lock waits) whose differences around a timed run become per-op figures.
*/
#ifndef TAKHIN_BENCH_STATS_H
#define TAKHIN_BENCH_STATS_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- histogram: HDR-style log-linear buckets over nanoseconds -------------
** Values below 128 ns get a bucket each; above, every power of two is split
** into 64 linear sub-buckets, so a percentile is off by at most 1/64 (1.6%)
** whatever the scale. Fixed size: recording never allocates. */
#define HIST_SUB_BITS 6
#define HIST_BUCKETS (128 + 57 * 64)
typedef struct hist {
  uint64_t count, max, sum;
  uint64_t b[HIST_BUCKETS];
} hist;

void hist_reset(hist *h);
static inline void hist_record(hist *h, uint64_t v) {
  unsigned idx;
  if (v < 128) {
    idx = (unsigned)v;
  } else {
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    idx = 128u + (shift - 1u) * 64u + (unsigned)((v >> shift) - 64u);
  }
  h->b[idx]++;
  h->count++;
  h->sum += v;
  if (v > h->max) h->max = v;
}
void hist_merge(hist *into, const hist *from);
/* Value (ns) at quantile q in [0,1]: the midpoint of the bucket holding that
** rank, capped at the largest value seen. 0 when empty. */
double hist_quantile(const hist *h, double q);

/* ---- process-wide counters ----------------------------------------------- */
typedef struct proc_snap {
  uint64_t allocs, alloc_bytes;          /* alloc_count.c */
  uint64_t lock_wait_ns, lock_contended; /* lock_wait.c */
  uint64_t utime_ns, stime_ns, nvcsw, nivcsw;
  uint64_t rchar, wchar, read_bytes, write_bytes; /* /proc/self/io */
  int have_io;
} proc_snap;

/* Fills every field; never allocates (the timed window must stay clean). */
void proc_snap_take(proc_snap *s);

/* alloc_count.c: every malloc-family call in the process since start. */
int alloc_count_enabled(void);
void alloc_count_get(uint64_t *allocs, uint64_t *bytes);
/* The calling thread's malloc-family calls since it started. */
uint64_t alloc_count_thread(void);

/* lock_wait.c: time threads spent blocked acquiring pthread mutexes and
** rwlocks (and C11 mtx) after a failed try-lock, process-wide. */
int lock_wait_enabled(void);
void lock_wait_get(uint64_t *wait_ns, uint64_t *contended);

#endif /* TAKHIN_BENCH_STATS_H */
