/*
** dead.c -- superseded ("dead") offsets of a compacted partition, as bitmap
** chunks in takhin_cat_dead (sql/schema.sql).
**
** The key index learns that a record is superseded at the moment it takes
** in a newer record of the same key: in the producer's map of latest keys
** (a put that replaces a slot's offset; keyindex.c) or in the upsert of key
** rows, whose DO UPDATE WHERE calls takhin_supersede(stored, new, ?) and so
** hands the older offset to C without a row stepped out of SQLite. Both
** land in a tk_dead, which the key writer ORs into the chunk rows in the
** transaction of the key rows themselves (tk_dead_write): a rollback drops
** them together. Compaction then reads a segment's 1-3 chunk rows instead
** of stepping one key row per survivor (compact_plan.c).
**
** A chunk's blob carries its CRC-32C: a blob of the wrong size or CRC is
** damage, which takhin_bits_or leaves as it is (a damaged chunk stays
** visibly damaged, never half-trusted) and compaction answers with the key
** index's own query for the segments it covers.
*/
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "crc32c.h"
#include "dead.h"
#include "sqlite_compat.h"
#include "store.h"

#define DEAD_PTR_TYPE "takhin_dead"

struct tk_dead_chunk {
  int64_t chunk;
  size_t slot; /* its slot in tab, cleared after the write */
  uint8_t b[TK_DEAD_BLOB];
};

struct tk_dead_order {
  int64_t chunk;
  size_t idx;
};

int tk_dead_push_slow(tk_dead *d, int64_t o) {
  if (o < 0) return 0;
  if (!d->win_hi) { /* an empty window starts a chunk below o's */
    int64_t c = (o >> TK_DEAD_SHIFT) - 1;
    d->win_base = (c > 0 ? c : 0) << TK_DEAD_SHIFT;
  }
  uint64_t i = (uint64_t)(o - d->win_base);
  if (o >= d->win_base && i < TK_DEAD_WINDOW) {
    size_t need = (size_t)(i >> 6) + 1;
    if (need > d->win_cap) {
      size_t cap = d->win_cap ? d->win_cap : 1 << 10;
      while (cap < need) cap *= 2;
      uint64_t *w = realloc(d->win, cap * sizeof *w);
      if (!w) return -1;
      memset(w + d->win_cap, 0, (cap - d->win_cap) * sizeof *w);
      d->win = w;
      d->win_cap = cap;
    }
    d->win_hi = need > d->win_hi ? need : d->win_hi; /* words above were clear */
    d->win[i >> 6] |= 1ULL << (i & 63);
    d->n++;
    return 0;
  }
  if (tk_array_reserve(&d->v, &d->cap, d->nv + 1, sizeof *d->v, 256)) return -1;
  d->v[d->nv++] = o;
  d->n++;
  return 0;
}

void tk_dead_clear(tk_dead *d) {
  if (d->win_hi) memset(d->win, 0, d->win_hi * sizeof *d->win);
  d->win_hi = 0;
  d->nv = 0;
  d->n = 0;
}

int tk_dead_merge(tk_dead *d, const tk_dead *src) {
  for (size_t w = 0; w < src->win_hi; w++)
    for (uint64_t b = src->win[w]; b; b &= b - 1)
      if (tk_dead_push(d, src->win_base + (int64_t)w * 64 + __builtin_ctzll(b))) return -1;
  for (size_t i = 0; i < src->nv; i++)
    if (tk_dead_push(d, src->v[i])) return -1;
  return 0;
}

void tk_dead_free(tk_dead *d) {
  free(d->win);
  free(d->v);
  free(d->chunk);
  free(d->tab);
  free(d->order);
  memset(d, 0, sizeof *d);
}

static void seal(uint8_t *b) {
  uint32_t c = tk_crc32c(0, b, TK_DEAD_BITMAP);
  b[TK_DEAD_BITMAP] = (uint8_t)c;
  b[TK_DEAD_BITMAP + 1] = (uint8_t)(c >> 8);
  b[TK_DEAD_BITMAP + 2] = (uint8_t)(c >> 16);
  b[TK_DEAD_BITMAP + 3] = (uint8_t)(c >> 24);
}

int tk_dead_blob_ok(const void *blob, int len) {
  if (!blob || len != TK_DEAD_BLOB) return 0;
  const uint8_t *b = blob;
  uint32_t c = tk_crc32c(0, b, TK_DEAD_BITMAP);
  return b[TK_DEAD_BITMAP] == (uint8_t)c && b[TK_DEAD_BITMAP + 1] == (uint8_t)(c >> 8) &&
         b[TK_DEAD_BITMAP + 2] == (uint8_t)(c >> 16) && b[TK_DEAD_BITMAP + 3] == (uint8_t)(c >> 24);
}

static size_t chunk_hash(int64_t c, size_t mask) {
  return (size_t)(((uint64_t)c * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
}

/* Twice the slots (at most half full), every chunk placed again. */
static int tab_grow(tk_dead *d) {
  size_t cap = d->tab_cap ? d->tab_cap * 2 : 64;
  uint32_t *t = calloc(cap, sizeof *t);
  if (!t) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  for (size_t i = 0; i < d->nchunk; i++) {
    size_t j = chunk_hash(d->chunk[i].chunk, cap - 1);
    while (t[j]) j = (j + 1) & (cap - 1);
    t[j] = (uint32_t)i + 1;
    d->chunk[i].slot = j;
  }
  free(d->tab);
  d->tab = t;
  d->tab_cap = cap;
  return TAKHIN_OK;
}

/* The bitmap of chunk c, made (all clear) when new; NULL: out of memory. */
static uint8_t *chunk_of(tk_dead *d, int64_t c) {
  if ((d->nchunk + 1) * 2 > d->tab_cap && tab_grow(d)) return NULL;
  size_t mask = d->tab_cap - 1, j = chunk_hash(c, mask);
  for (; d->tab[j]; j = (j + 1) & mask)
    if (d->chunk[d->tab[j] - 1].chunk == c) return d->chunk[d->tab[j] - 1].b;
  if (d->nchunk >= UINT32_MAX - 1 ||
      tk_array_reserve(&d->chunk, &d->chunk_cap, d->nchunk + 1, sizeof *d->chunk, 16)) {
    tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
    return NULL;
  }
  tk_dead_chunk *k = &d->chunk[d->nchunk];
  k->chunk = c;
  k->slot = j;
  memset(k->b, 0, TK_DEAD_BITMAP);
  d->tab[j] = (uint32_t)++d->nchunk;
  return k->b;
}

static int order_cmp(const void *a, const void *b) {
  int64_t x = ((const tk_dead_order *)a)->chunk, y = ((const tk_dead_order *)b)->chunk;
  return (x > y) - (x < y);
}

static int chunk_row(void *ctx, size_t pos, tk_row *out) {
  const tk_dead *d = ctx;
  const tk_dead_chunk *k = &d->chunk[d->order[pos].idx];
  out->v[0] = k->chunk;
  out->blob = k->b;
  out->blob_len = TK_DEAD_BLOB;
  return 1;
}

/* Forget the chunks built (their table slots too). */
static void chunks_reset(tk_dead *d) {
  for (size_t i = 0; i < d->nchunk; i++) d->tab[d->chunk[i].slot] = 0;
  d->nchunk = 0;
}

int tk_dead_write(takhin_store *s, int64_t topic_id, int32_t part, tk_dead *d) {
  TK_ASSERT_HELD(&s->cat_lock);
  if (!d->win_hi && !d->nv) return TAKHIN_OK;
  int rc = TAKHIN_OK;
  /* The window a chunk (64 words) at a time: its base is chunk aligned. */
  for (size_t w0 = 0; w0 < d->win_hi; w0 += TK_DEAD_BITMAP / 8) {
    size_t nw = d->win_hi - w0 < TK_DEAD_BITMAP / 8 ? d->win_hi - w0 : TK_DEAD_BITMAP / 8;
    uint64_t any = 0;
    for (size_t w = 0; w < nw; w++) any |= d->win[w0 + w];
    if (!any) continue;
    uint8_t *b = chunk_of(d, (d->win_base >> TK_DEAD_SHIFT) + (int64_t)(w0 * 64 >> TK_DEAD_SHIFT));
    if (!b) {
      rc = TAKHIN_ENOMEM;
      goto out;
    }
    for (size_t w = 0; w < nw; w++) {
      uint64_t x = d->win[w0 + w];
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
      x = __builtin_bswap64(x); /* bit i of the word: bit i % 8 of byte i / 8 */
#endif
      uint64_t y;
      memcpy(&y, b + w * 8, 8);
      y |= x;
      memcpy(b + w * 8, &y, 8);
    }
  }
  int64_t last = -1;
  uint8_t *b = NULL;
  for (size_t i = 0; i < d->nv; i++) {
    int64_t o = d->v[i];
    int64_t c = o >> TK_DEAD_SHIFT;
    if (c != last || !b) { /* neighbours mostly share a chunk */
      if (!(b = chunk_of(d, c))) {
        rc = TAKHIN_ENOMEM;
        goto out;
      }
      last = c;
    }
    size_t bit = (size_t)(o & ((1 << TK_DEAD_SHIFT) - 1));
    b[bit >> 3] |= (uint8_t)(1u << (bit & 7));
  }
  /* In chunk order, so the rows go into the b-tree in order. */
  if (tk_array_reserve(&d->order, &d->order_cap, d->nchunk, sizeof *d->order, 16)) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
    goto out;
  }
  tk_dead_order *ord = d->order;
  for (size_t i = 0; i < d->nchunk; i++) {
    ord[i].chunk = d->chunk[i].chunk;
    ord[i].idx = i;
    seal(d->chunk[i].b);
  }
  qsort(ord, d->nchunk, sizeof *ord, order_cmp);
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_DEAD_OR);
  if (!st) {
    rc = TAKHIN_ECATALOG;
    goto out;
  }
  tk_rows rows = {.n = d->nchunk, .ctx = d, .get = chunk_row};
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  tk_cat_bind_rows(st, 3, &rows);
  rc = tk_cat_step_done(s, st, "write dead offsets");
out:
  chunks_reset(d);
  return rc;
}

/* ---- SQL functions ---------------------------------------------------------- */

/* takhin_supersede(stored, new, sink): whether new replaces stored (new >
** stored); the older of the two, when they differ, is superseded: appended
** to the tk_dead bound as sink (NULL from SQL: nothing is noted). */
static void fn_supersede(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
      sqlite3_value_type(argv[1]) != SQLITE_INTEGER) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  int64_t stored = sqlite3_value_int64(argv[0]), nw = sqlite3_value_int64(argv[1]);
  tk_dead *d = sqlite3_value_pointer(argv[2], DEAD_PTR_TYPE);
  if (d && nw != stored && tk_dead_push(d, nw < stored ? nw : stored)) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_int(ctx, nw > stored);
}

/* takhin_bits_or(old, new): the chunk with the bits of both. A damaged old
** chunk stays as it is: compaction sees the damage and asks the key index. */
static void fn_bits_or(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  const uint8_t *a = sqlite3_value_blob(argv[0]);
  int alen = sqlite3_value_bytes(argv[0]);
  const uint8_t *b = sqlite3_value_blob(argv[1]);
  int blen = sqlite3_value_bytes(argv[1]);
  if (!tk_dead_blob_ok(a, alen) || !tk_dead_blob_ok(b, blen)) {
    sqlite3_result_value(ctx, argv[0]);
    return;
  }
  uint8_t out[TK_DEAD_BLOB];
  for (int i = 0; i < TK_DEAD_BITMAP; i++) out[i] = a[i] | b[i];
  seal(out);
  sqlite3_result_blob(ctx, out, TK_DEAD_BLOB, SQLITE_TRANSIENT);
}

/* takhin_bit(offset): a chunk with offset's bit alone. */
static void fn_bit(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0) {
    sqlite3_result_null(ctx);
    return;
  }
  int64_t o = sqlite3_value_int64(argv[0]);
  uint8_t out[TK_DEAD_BLOB];
  memset(out, 0, TK_DEAD_BITMAP);
  size_t bit = (size_t)(o & ((1 << TK_DEAD_SHIFT) - 1));
  out[bit >> 3] = (uint8_t)(1u << (bit & 7));
  seal(out);
  sqlite3_result_blob(ctx, out, TK_DEAD_BLOB, SQLITE_TRANSIENT);
}

int tk_dead_register(struct sqlite3 *db) {
  /* A borrowed connection another store of this process already set up. */
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(
          db, "SELECT takhin_supersede(1, 2, NULL), takhin_bits_or(NULL, NULL), takhin_bit(0)", -1,
          &st, NULL) == SQLITE_OK) {
    sqlite3_finalize(st);
    return TAKHIN_OK;
  }
  const int pure = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  if (sqlite3_create_function_v2(db, "takhin_supersede", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                 fn_supersede, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_create_function_v2(db, "takhin_bits_or", 2, pure, NULL, fn_bits_or, NULL, NULL,
                                 NULL) != SQLITE_OK ||
      sqlite3_create_function_v2(db, "takhin_bit", 1, pure, NULL, fn_bit, NULL, NULL, NULL) !=
          SQLITE_OK)
    return tk_err(TAKHIN_ECATALOG, "catalog: cannot register the dead-offset functions: %s",
                  sqlite3_errmsg(db));
  return TAKHIN_OK;
}

int tk_dead_bind(struct sqlite3_stmt *st, int i, tk_dead *d) {
  return sqlite3_bind_pointer(st, i, d, DEAD_PTR_TYPE, NULL) == SQLITE_OK ? TAKHIN_OK
                                                                          : TAKHIN_ECATALOG;
}
