/*
** wait.h -- waiting for new data (wait.c): consumers at the high watermark
** sleep until an append to one of their partitions, a timeout, a topic
** delete or takhin_close.
*/
#ifndef TAKHIN_WAIT_H
#define TAKHIN_WAIT_H

#include <stddef.h>
#include <stdint.h>

#include "partition.h"
#include "store.h"

#define TK_WAIT_POLL_MS 20 /* a read-only handle's waits re-read the partition this often */
void tk_wait_init(takhin_store *s);
/* An append to p became readable (appenders call it once per batch). */
void tk_wait_notify(tk_partition *p);
/* Wake every waiter of the store (a topic was deleted). */
void tk_wait_notify_all(takhin_store *s);
/* takhin_close: end every wait (EMISUSE) and return once none is left. */
void tk_wait_close(takhin_store *s);
/* Block until ready(arg) returns > 0 (TAKHIN_OK), < 0 (that status), the
** timeout passes (TAKHIN_END; timeout_ms < 0 waits without one) or the
** store closes (EMISUSE). ready is called first without waiting, then
** after every append to one of parts[0..n) (every TK_WAIT_POLL_MS on a
** read-only handle), never with a lock of the store held. */
int tk_wait_for(takhin_store *s, tk_partition *const *parts, size_t n, int (*ready)(void *arg),
                void *arg, int64_t timeout_ms);

#endif
