/*
** stats.c -- the histogram's quantiles and the process snapshot.
**
** The snapshot reads getrusage(RUSAGE_SELF) (all threads, CPU split into user
** and system, voluntary and involuntary context switches) and /proc/self/io
** (rchar/wchar: bytes through read/write-family calls, page cache included;
** read_bytes/write_bytes: bytes the storage layer had to fetch or was handed
** to write back). /proc/self/io is read with open/read into a stack buffer so
** taking a snapshot allocates nothing.
*/
#include "stats.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void hist_reset(hist *h) { memset(h, 0, sizeof *h); }

void hist_merge(hist *into, const hist *from) {
  for (unsigned i = 0; i < HIST_BUCKETS; i++) into->b[i] += from->b[i];
  into->count += from->count;
  into->sum += from->sum;
  if (from->max > into->max) into->max = from->max;
}

/* Lowest value of bucket idx and its width: the inverse of hist_record. */
static void bucket_range(unsigned idx, double *lo, double *width) {
  if (idx < 128) {
    *lo = idx;
    *width = 1;
    return;
  }
  unsigned shift = (idx - 128u) / 64u + 1u;
  unsigned sub = (idx - 128u) % 64u + 64u;
  *lo = (double)((uint64_t)sub << shift);
  *width = (double)(1ull << shift);
}

double hist_quantile(const hist *h, double q) {
  if (h->count == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > h->count) rank = h->count;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen >= rank) {
      double lo, w;
      bucket_range(i, &lo, &w);
      double mid = w > 1 ? lo + w / 2 : lo;
      return mid > (double)h->max ? (double)h->max : mid;
    }
  }
  return (double)h->max;
}

static uint64_t field_u64(const char *buf, const char *name) {
  const char *p = strstr(buf, name);
  if (!p) return 0;
  p += strlen(name);
  while (*p == ' ' || *p == ':') p++;
  return strtoull(p, NULL, 10);
}

void proc_snap_take(proc_snap *s) {
  memset(s, 0, sizeof *s);
  alloc_count_get(&s->allocs, &s->alloc_bytes);
  lock_wait_get(&s->lock_wait_ns, &s->lock_contended);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s->utime_ns =
        (uint64_t)ru.ru_utime.tv_sec * 1000000000ull + (uint64_t)ru.ru_utime.tv_usec * 1000ull;
    s->stime_ns =
        (uint64_t)ru.ru_stime.tv_sec * 1000000000ull + (uint64_t)ru.ru_stime.tv_usec * 1000ull;
    s->nvcsw = (uint64_t)ru.ru_nvcsw;
    s->nivcsw = (uint64_t)ru.ru_nivcsw;
  }
  char buf[512];
  int fd = open("/proc/self/io", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t got = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (got <= 0) return;
  buf[got] = 0;
  s->have_io = 1;
  s->rchar = field_u64(buf, "rchar");
  s->wchar = field_u64(buf, "wchar");
  /* "read_bytes" is searched with its line start so it cannot match inside
  ** "cancelled_write_bytes". */
  s->read_bytes = field_u64(buf, "\nread_bytes");
  s->write_bytes = field_u64(buf, "\nwrite_bytes");
}
