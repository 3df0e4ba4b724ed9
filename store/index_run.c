/*
** index_run.c -- the packed index rows of the catalog. A segment's sparse
** index (one entry per ~4 KiB of log) is stored as runs of entries, one
** row per run (one per write), not one row per entry: a 1 GiB segment's
** 262,144 entries, written at its roll by the checkpoint thread, take 16
** rows, not 262,144, so writing them splits a handful of B-tree pages
** (SQLite allocates for each split) instead of thousands. The extension's
** store writes its active segment every 256 entries: ~1,000 rows then.
**
** A write of entries from offset o replaces every entry at or past o: the
** catalog deletes the runs that start at or past o (catalog.c), and on
** load a run cuts the entries before it at its first offset. So runs may
** overlap by the entries rewritten (the active segment's newest entry,
** whose timestamp changes after it was written), and the later one wins.
*/
#include <string.h>

#include "buf.h"
#include "error.h"
#include "index_run.h"
#include "takhin.h"

static void put64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static int64_t get64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
  return (int64_t)u;
}

void tk_index_run_encode(const tk_index_entry *e, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++, out += TK_INDEX_RUN_ENTRY) {
    put64(out, e[i].offset);
    put64(out + 8, e[i].position);
    put64(out + 16, e[i].max_ts);
  }
}

void tk_index_run_entry(const uint8_t *at, tk_index_entry *out) {
  out->offset = get64(at);
  out->position = get64(at + 8);
  out->max_ts = get64(at + 16);
  out->run_max = out->max_ts;
}

int tk_index_run_merge(tk_index_entry **v, size_t *n, size_t *cap, int64_t first_offset,
                       const void *blob, size_t len) {
  const uint8_t *b = blob;
  if (!b || len == 0 || len % TK_INDEX_RUN_ENTRY || get64(b) != first_offset)
    return TAKHIN_ECORRUPT;
  size_t add = len / TK_INDEX_RUN_ENTRY, keep = *n;
  /* A run holds consecutive entries: offsets and positions rise. One that
  ** does not is damaged here, before the later runs' trims hide it (a
  ** garbage offset past theirs would take its sound neighbours with it). */
  for (size_t i = 1; i < add; i++) {
    const uint8_t *at = b + i * TK_INDEX_RUN_ENTRY, *prev = at - TK_INDEX_RUN_ENTRY;
    if (get64(at) <= get64(prev) || get64(at + 8) <= get64(prev + 8)) return TAKHIN_ECORRUPT;
  }
  while (keep && (*v)[keep - 1].offset >= first_offset) keep--;
  if (keep + add < keep || tk_array_reserve(v, cap, keep + add, sizeof **v, 64))
    return tk_err(TAKHIN_ENOMEM, "out of memory reading the index");
  tk_index_entry *e = *v + keep;
  for (size_t i = 0; i < add; i++, b += TK_INDEX_RUN_ENTRY) tk_index_run_entry(b, &e[i]);
  *n = keep + add;
  return TAKHIN_OK;
}

int64_t tk_index_run_bound(int64_t first_offset, const void *blob, size_t len) {
  if (!blob || len < TK_INDEX_RUN_ENTRY) return first_offset;
  int64_t first = get64(blob);
  return first < first_offset ? first : first_offset;
}
