/*
** dead.h -- interface to dead.c: the record of superseded ("dead") offsets
** of a compacted partition, kept beside the key index as bitmap chunks
** (takhin_cat_dead) so that compaction learns a segment's survivors from a
** few rows instead of one SQLite row per surviving record.
*/
#ifndef TAKHIN_DEAD_H
#define TAKHIN_DEAD_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

struct sqlite3_stmt;

/* A chunk covers 1 << TK_DEAD_SHIFT offsets: a bitmap of TK_DEAD_BITMAP
** bytes (bit i of byte i / 8, lowest bit first, is offset chunk * 4096 + i;
** set = superseded), then its CRC-32C, little-endian: a blob of
** TK_DEAD_BLOB bytes. Any other blob is damage, and compaction asks the
** key index itself for the segments it covers. */
#define TK_DEAD_SHIFT 12
#define TK_DEAD_BITMAP 512
#define TK_DEAD_BLOB (TK_DEAD_BITMAP + 4)

/* Offsets learned dead, written with the key rows that made them so (in
** the same transaction), and the scratch the write builds its chunks in;
** kept across clears, so that steady state allocates nothing. A map's
** supersessions are recent offsets: they are bits of a window (chunk
** aligned, growing up to TK_DEAD_WINDOW offsets), one store per record;
** any other offset (an upsert's stored one, a late record) goes to a list. */
#define TK_DEAD_WINDOW (1 << 22)
typedef struct tk_dead_chunk tk_dead_chunk;
typedef struct tk_dead_order tk_dead_order;
typedef struct tk_dead {
  size_t n;         /* offsets noted (a repeat counts again) */
  uint64_t *win;    /* bit i: offset win_base + i */
  size_t win_cap;   /* words */
  size_t win_hi;    /* words [0, win_hi) may hold bits */
  int64_t win_base; /* a multiple of 1 << TK_DEAD_SHIFT */
  int64_t *v;       /* the others */
  size_t nv, cap;
  tk_dead_chunk *chunk; /* scratch of tk_dead_write */
  size_t nchunk, chunk_cap;
  uint32_t *tab; /* chunk index + 1 per slot (0: empty), open addressing */
  size_t tab_cap;
  tk_dead_order *order; /* the chunks in chunk order */
  size_t order_cap;
} tk_dead;

/* Note o dead (the produce path: a store, and now and then the slow way).
** 0, or -1 out of memory. */
int tk_dead_push_slow(tk_dead *d, int64_t o);
static inline int tk_dead_push(tk_dead *d, int64_t o) {
  uint64_t i = (uint64_t)(o - d->win_base); /* below the window: huge */
  if (i >= (uint64_t)d->win_hi * 64) return tk_dead_push_slow(d, o);
  d->win[i >> 6] |= 1ULL << (i & 63);
  d->n++;
  return 0;
}
/* Empty d, keeping its memory. */
void tk_dead_clear(tk_dead *d);
/* Note every offset of src in d too. 0, or -1 out of memory. */
int tk_dead_merge(tk_dead *d, const tk_dead *src);
void tk_dead_free(tk_dead *d);

/* Register takhin_supersede, takhin_bits_or and takhin_bit on a catalog
** connection (catrows.c calls it with takhin_rows). */
int tk_dead_register(struct sqlite3 *db);
/* Bind d to parameter i of st: takhin_supersede(stored, new, ?i) appends
** the offset it supersedes to d. */
int tk_dead_bind(struct sqlite3_stmt *st, int i, tk_dead *d);
/* OR d's offsets into the partition's chunk rows (cat_lock held, inside the
** transaction of the key rows that made them dead). d keeps them: its owner
** empties it once that transaction committed (a rollback, even after this
** returned, writes them again with the rows). */
int tk_dead_write(takhin_store *s, int64_t topic_id, int32_t part, tk_dead *d);
/* A chunk row's blob: 1 when it is TK_DEAD_BLOB bytes whose CRC matches. */
int tk_dead_blob_ok(const void *blob, int len);

#endif /* TAKHIN_DEAD_H */
