/*
** cursor.h -- interface to cursor.c beyond the public takhin_cursor_*.
*/
#ifndef TAKHIN_CURSOR_H
#define TAKHIN_CURSOR_H

#include <stdint.h>

#include "host.h"

/* A cursor on a partition already in hand (no lookup by name). */
int tk_cursor_open_part(takhin_store *s, tk_topic *t, tk_partition *p, takhin_cursor **out);
/* After takhin_cursor_next gave ECORRUPT for a damaged batch: the first
** offset after the offsets it makes unreadable, to seek to; else -1. */
int64_t tk_cursor_past_damage(const takhin_cursor *c);

#endif /* TAKHIN_CURSOR_H */
