/*
** lock_wait.c -- how long threads wait for locks, process-wide.
**
** The bench executable defines pthread_mutex_lock, pthread_rwlock_rdlock,
** pthread_rwlock_wrlock and mtx_lock. Each first tries the lock without
** blocking (the try-lock functions are not wrapped); only when that fails does
** it read the clock, block in the real function (found once with
** dlsym(RTLD_NEXT)) and add the blocked time to a counter. An uncontended lock
** therefore costs one try-lock, as before, and the figure is exactly "time
** spent blocked on a held lock" across takhin, SQLite (its mutexes are pthread
** mutexes) and the bench's own per-partition mutexes in the file and sqlite
** paths.
**
** Not seen: spin loops and atomics, re-acquisition inside pthread_cond_wait
** (glibc does it internally), and waiting on condition variables, which is
** waiting for work rather than for a lock.
**
** ThreadSanitizer builds intercept these functions themselves; there the bench
** is built with BENCH_NO_LOCK_WAIT and the figure is reported as null.
*/
#include <stdint.h>

#include "stats.h"

#ifdef BENCH_NO_LOCK_WAIT

int lock_wait_enabled(void) { return 0; }
void lock_wait_get(uint64_t *wait_ns, uint64_t *contended) { *wait_ns = *contended = 0; }

#else

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <threads.h>

static _Alignas(64) _Atomic uint64_t wait_total_ns;
static _Alignas(64) _Atomic uint64_t wait_count;

int lock_wait_enabled(void) { return 1; }

void lock_wait_get(uint64_t *wait_ns, uint64_t *contended) {
  *wait_ns = atomic_load_explicit(&wait_total_ns, memory_order_relaxed);
  *contended = atomic_load_explicit(&wait_count, memory_order_relaxed);
}

static void add_wait(uint64_t t0) {
  atomic_fetch_add_explicit(&wait_total_ns, now_ns() - t0, memory_order_relaxed);
  atomic_fetch_add_explicit(&wait_count, 1, memory_order_relaxed);
}

/* Resolve the real function once; any thread may get here first, and every
** one of them stores the same pointer, so a plain atomic store is enough. */
static void *real(_Atomic(void *) *slot, const char *name) {
  void *f = atomic_load_explicit(slot, memory_order_acquire);
  if (!f) {
    f = dlsym(RTLD_NEXT, name);
    if (!f) {
      fprintf(stderr, "takhin-bench: cannot find the real %s\n", name);
      abort();
    }
    atomic_store_explicit(slot, f, memory_order_release);
  }
  return f;
}

static _Atomic(void *) real_mutex_lock, real_rdlock, real_wrlock, real_mtx_lock;

int pthread_mutex_lock(pthread_mutex_t *m) {
  int rc = pthread_mutex_trylock(m);
  if (rc != EBUSY) return rc;
  int (*fn)(pthread_mutex_t *) =
      (int (*)(pthread_mutex_t *))real(&real_mutex_lock, "pthread_mutex_lock");
  uint64_t t0 = now_ns();
  rc = fn(m);
  add_wait(t0);
  return rc;
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l) {
  int rc = pthread_rwlock_tryrdlock(l);
  if (rc != EBUSY) return rc;
  int (*fn)(pthread_rwlock_t *) =
      (int (*)(pthread_rwlock_t *))real(&real_rdlock, "pthread_rwlock_rdlock");
  uint64_t t0 = now_ns();
  rc = fn(l);
  add_wait(t0);
  return rc;
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l) {
  int rc = pthread_rwlock_trywrlock(l);
  if (rc != EBUSY) return rc;
  int (*fn)(pthread_rwlock_t *) =
      (int (*)(pthread_rwlock_t *))real(&real_wrlock, "pthread_rwlock_wrlock");
  uint64_t t0 = now_ns();
  rc = fn(l);
  add_wait(t0);
  return rc;
}

int mtx_lock(mtx_t *m) {
  int rc = mtx_trylock(m);
  if (rc != thrd_busy) return rc;
  int (*fn)(mtx_t *) = (int (*)(mtx_t *))real(&real_mtx_lock, "mtx_lock");
  uint64_t t0 = now_ns();
  rc = fn(m);
  add_wait(t0);
  return rc;
}

#endif /* BENCH_NO_LOCK_WAIT */
