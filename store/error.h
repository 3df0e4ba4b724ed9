/*
** error.h -- interface to error.c: the per-thread last-error message
** behind takhin_errmsg(), and the clock. Every store file uses it.
*/
#ifndef TAKHIN_ERROR_H
#define TAKHIN_ERROR_H

#include <stdint.h>

#include "takhin.h" /* the TAKHIN_* statuses */

#define TK_PATH_MAX 4700 /* any path the library builds fits */

/* Record a message for takhin_errmsg() and return rc. */
int tk_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Map an errno from a failed system call to a status, with a message. */
int tk_err_sys(int err, const char *what, const char *path);

/* Lock ownership and invariants the comments state ("append_lock held"),
** checked as SQLite's assert(sqlite3_mutex_held(...)) are: in debug builds
** (no NDEBUG) and in TAKHIN_DEBUG builds (the sanitizer builds define it,
** as they are RelWithDebInfo, NDEBUG included). Release builds compile
** them away. Ownership is read from glibc's lock words (the owner's thread
** id); elsewhere a lock only counts as held by someone. */
#if defined(TAKHIN_DEBUG) || !defined(NDEBUG)
#define TK_DEBUG 1
#include <pthread.h>
void tk_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));
int tk_mutex_held(pthread_mutex_t *m);     /* by the calling thread */
int tk_rwlock_wrheld(pthread_rwlock_t *l); /* for writing, by the calling thread */
#define tk_assert(c) ((c) ? (void)0 : tk_assert_fail(#c, __FILE__, __LINE__))
#else
#define TK_DEBUG 0
#define tk_assert(c) ((void)0)
#endif
#define TK_ASSERT_HELD(m) tk_assert(tk_mutex_held(m))
#define TK_ASSERT_WRHELD(l) tk_assert(tk_rwlock_wrheld(l))

/* Milliseconds since the epoch (CLOCK_REALTIME, as record timestamps). */
int64_t tk_now_ms(void);

#endif /* TAKHIN_ERROR_H */
