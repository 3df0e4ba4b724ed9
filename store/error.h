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

/* Milliseconds since the epoch (CLOCK_REALTIME, as record timestamps). */
int64_t tk_now_ms(void);

#endif /* TAKHIN_ERROR_H */
