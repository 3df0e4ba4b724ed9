/*
** buf.h -- a growable byte buffer, and growable typed arrays, that keep their
** capacity between uses, so hot paths reach a steady state with no
** allocation at all. Every array in store/ that grows by doubling goes
** through TK_ARRAY_GROW.
*/
#ifndef TAKHIN_BUF_H
#define TAKHIN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    if (cap > SIZE_MAX / 2) {
      cap = want;
      break;
    }
    cap *= 2;
  }
  uint8_t *np = (uint8_t *)realloc(b->p, cap);
  if (!np) return -1;
  b->p = np;
  b->cap = cap;
  return 0;
}

/* Make room for need elements of elem bytes in the array whose pointer is
** at vp (any T **, read and written with memcpy so no type is punned) and
** whose capacity, in elements, is *cap: it doubles, from first. 0 on
** success, -1 out of memory or on overflow (the array is unchanged). */
static inline int tk_array_reserve(void *vp, size_t *cap, size_t need, size_t elem, size_t first) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : first;
  while (nc < need) {
    if (nc > SIZE_MAX / 2) return -1;
    nc *= 2;
  }
  if (nc > SIZE_MAX / elem) return -1;
  void *v;
  memcpy(&v, vp, sizeof v);
  void *nv = realloc(v, nc * elem);
  if (!nv) return -1;
  memcpy(vp, &nv, sizeof nv);
  *cap = nc;
  return 0;
}

/* Room for one element past the n in array v (a T *) of capacity cap
** (size_t lvalues), doubling from first: 0, or -1 out of memory. */
#define TK_ARRAY_GROW(v, n, cap, first)                                                            \
  tk_array_reserve(&(v), &(cap), (n) + 1, sizeof *(v), (first))

static inline void tk_buf_free(tk_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

#endif /* TAKHIN_BUF_H */
