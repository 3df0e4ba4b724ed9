/*
** error.c -- status codes, their names, and the per-thread detail message
** behind takhin_errmsg(). Also the one clock the library reads.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "takhin.h"

/* Per thread, because one store serves many threads: a shared message would
** be overwritten by another thread's failure before the caller could read it. */
static _Thread_local char tk_errbuf[1024];

const char *takhin_errmsg(void) { return tk_errbuf; }

int tk_err(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tk_errbuf, sizeof tk_errbuf, fmt, ap);
  va_end(ap);
  return rc;
}

int tk_err_sys(int err, const char *what, const char *path) {
  int rc = TAKHIN_EIO;
  if (err == ENOSPC || err == EDQUOT) rc = TAKHIN_ENOSPC;
  else if (err == ENOMEM) rc = TAKHIN_ENOMEM;
  return tk_err(rc, "%s %s: %s", what, path ? path : "", strerror(err));
}

const char *takhin_errstr(int rc) {
  switch (rc) {
  case TAKHIN_OK: return "ok";
  case TAKHIN_END: return "end of log (no more records)";
  case TAKHIN_EMISUSE: return "API misuse (NULL or closed handle, wrong call order)";
  case TAKHIN_EINVAL: return "invalid argument";
  case TAKHIN_ENOTFOUND: return "no such topic, partition, group or record";
  case TAKHIN_EEXISTS: return "already exists";
  case TAKHIN_ERANGE: return "offset out of range";
  case TAKHIN_ETOOBIG: return "record batch larger than max_message_bytes";
  case TAKHIN_ECORRUPT: return "corrupt segment file or catalog row";
  case TAKHIN_EIO: return "I/O error";
  case TAKHIN_ENOSPC: return "no space left on device";
  case TAKHIN_ELOCKED: return "locked by another writer";
  case TAKHIN_EREADONLY: return "store is open read-only";
  case TAKHIN_EFORMAT: return "unsupported catalog format version";
  case TAKHIN_ENOMEM: return "out of memory";
  case TAKHIN_ECATALOG: return "catalog (SQLite) error";
  case TAKHIN_ELOST: return "acknowledged records were lost (a BUFFERED write failed)";
  default: return "unknown status code";
  }
}

int64_t tk_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#if TK_DEBUG
void tk_assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "takhin: %s:%d: assertion failed: %s\n", file, line, what);
  abort();
}

/* glibc records the owner's thread id in the lock word of a mutex (every
** type) and of a write-locked rwlock. */
int tk_mutex_held(pthread_mutex_t *m) {
#ifdef __GLIBC__
  return m->__data.__owner == gettid();
#else
  int rc = pthread_mutex_trylock(m);
  if (rc == 0) pthread_mutex_unlock(m);
  return rc == EBUSY;
#endif
}

int tk_rwlock_wrheld(pthread_rwlock_t *l) {
#ifdef __GLIBC__
  return l->__data.__cur_writer == gettid();
#else
  int rc = pthread_rwlock_tryrdlock(l);
  if (rc == 0) pthread_rwlock_unlock(l);
  return rc == EBUSY;
#endif
}
#endif
