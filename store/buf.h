/*
** buf.h -- a growable byte buffer that keeps its capacity between uses, so hot
** paths reach a steady state with no allocation at all.
*/
#ifndef TAKHIN_BUF_H
#define TAKHIN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct tk_buf {
  uint8_t *p;
  size_t len;
  size_t cap;
} tk_buf;

/* Make room for extra more bytes past len. 0 on success, -1 out of memory
** (the buffer is unchanged). */
static inline int tk_buf_reserve(tk_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t want = b->len + extra;
  if (want < b->len) return -1; /* overflow */
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < want) {
    if (cap > SIZE_MAX / 2) { cap = want; break; }
    cap *= 2;
  }
  uint8_t *np = (uint8_t *)realloc(b->p, cap);
  if (!np) return -1;
  b->p = np;
  b->cap = cap;
  return 0;
}

static inline void tk_buf_free(tk_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

#endif /* TAKHIN_BUF_H */
