/*
** cursor.h -- interface to cursor.c beyond the public takhin_cursor_*.
*/
#ifndef TAKHIN_CURSOR_H
#define TAKHIN_CURSOR_H

#include <stdint.h>

#include "host.h"

/* A cursor on a partition already in hand (no lookup by name). */
int tk_cursor_open_part(takhin_store *s, tk_topic *t, tk_partition *p, takhin_cursor **out);
/* The cursor reads only what is already in the files: it never flushes
** BUFFERED batches (which takes append_lock), so a reader holding cat_lock,
** which ranks below append_lock, may use it (the key-index catch-up). */
void tk_cursor_written_only(takhin_cursor *c);
/* After takhin_cursor_next gave ECORRUPT for a damaged batch: the first
** offset after the offsets it makes unreadable, to seek to; else -1. */
int64_t tk_cursor_past_damage(const takhin_cursor *c);

#endif /* TAKHIN_CURSOR_H */
