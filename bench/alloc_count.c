/*
** alloc_count.c -- count every heap allocation in the process.
**
** The bench executable defines malloc, calloc, realloc, reallocarray, free and
** the aligned family itself; the dynamic linker binds every caller to the
** executable's definition first, so libsqlite3.so's, libzstd's and takhin's
** allocations all land here (the executable is linked with exported symbols
** to make sure). Each wrapper bumps two relaxed atomic counters and calls
** glibc's real allocator through its __libc_* entry points, which need no
** lookup and so cannot recurse the way dlsym(RTLD_NEXT) can during startup.
**
** Counting follows Go's -benchmem: a realloc that returns memory counts as
** one allocation of the new size; frees are not counted.
**
** Sanitizer builds interpose malloc themselves; there the bench is built with
** BENCH_NO_ALLOC_COUNT and allocs/op is reported as null.
**
** The calling thread's own count (alloc_count_thread) is for
** tests/test_alloc_free.c, which links this file: a producer's hot path must
** not allocate, whatever the store's background threads do meanwhile.
*/
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

#ifdef BENCH_NO_ALLOC_COUNT

int alloc_count_enabled(void) { return 0; }
void alloc_count_get(uint64_t *allocs, uint64_t *bytes) { *allocs = *bytes = 0; }
uint64_t alloc_count_thread(void) { return 0; }

#else

#include <errno.h>
#include <malloc.h> /* the prototypes of what is defined below */
#include <stdatomic.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

/* Separate cache lines: the counters are hit from every thread. */
static _Alignas(64) _Atomic uint64_t n_allocs;
static _Alignas(64) _Atomic uint64_t n_bytes;
/* initial-exec TLS of the executable: no allocation, no lookup on first use */
static _Thread_local uint64_t t_allocs;

static inline void count(size_t size) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, size, memory_order_relaxed);
  t_allocs++;
}

int alloc_count_enabled(void) { return 1; }

void alloc_count_get(uint64_t *allocs, uint64_t *bytes) {
  *allocs = atomic_load_explicit(&n_allocs, memory_order_relaxed);
  *bytes = atomic_load_explicit(&n_bytes, memory_order_relaxed);
}

uint64_t alloc_count_thread(void) { return t_allocs; }

void *malloc(size_t size) {
  void *p = __libc_malloc(size);
  if (p) count(size);
  return p;
}

void *calloc(size_t n, size_t size) {
  void *p = __libc_calloc(n, size);
  if (p) count(n * size);
  return p;
}

void *realloc(void *old, size_t size) {
  void *p = __libc_realloc(old, size);
  if (p) count(size);
  return p;
}

void *reallocarray(void *old, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, total);
}

void free(void *p) { __libc_free(p); }

void *memalign(size_t align, size_t size) {
  void *p = __libc_memalign(align, size);
  if (p) count(size);
  return p;
}

void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }

int posix_memalign(void **out, size_t align, size_t size) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  void *p = __libc_memalign(align, size);
  if (!p) return ENOMEM;
  count(size);
  *out = p;
  return 0;
}

void *valloc(size_t size) { return memalign(4096, size); }

void *pvalloc(size_t size) { return memalign(4096, (size + 4095) & ~(size_t)4095); }

#endif /* BENCH_NO_ALLOC_COUNT */
