/*
** index_run.h -- the catalog's packed form of a segment's sparse index: a
** run of consecutive entries in one blob (takhin_cat_index_run.entries).
*/
#ifndef TAKHIN_INDEX_RUN_H
#define TAKHIN_INDEX_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"

/* Bytes per entry in a run: base offset, file position and max timestamp,
** each a little-endian int64. run_max is not stored (recomputed on load). */
#define TK_INDEX_RUN_ENTRY 24
/* Entries per run at most: a longer write is split, so the blob SQLite
** builds (and the encode buffer) stay a few hundred KiB. */
#define TK_INDEX_RUN_MAX 16384

/* Encode e[0, n) into out (n * TK_INDEX_RUN_ENTRY bytes). */
void tk_index_run_encode(const tk_index_entry *e, size_t n, uint8_t *out);

/* Decode the entry at `at` (TK_INDEX_RUN_ENTRY bytes) into *out. */
void tk_index_run_entry(const uint8_t *at, tk_index_entry *out);

/* Add the run stored under first_offset, blob[0, len), to the entries
** loaded so far (*v, *n, *cap: an array grown with TK_ARRAY_GROW's rules):
** entries at or past first_offset are replaced by the run's, as the later
** write, which starts there, replaced them. TAKHIN_OK; TAKHIN_ECORRUPT
** (nothing changed, no message) when the blob is not a run that starts at
** first_offset: empty, a length not a multiple of TK_INDEX_RUN_ENTRY, a
** first entry of another offset, or entries whose offsets or positions do
** not rise; TAKHIN_ENOMEM with the error set. Whether the entries make
** sense for the file is the loader's to check. */
int tk_index_run_merge(tk_index_entry **v, size_t *n, size_t *cap, int64_t first_offset,
                       const void *blob, size_t len);

/* A run tk_index_run_merge refused: the offset from which the entries read
** can no longer be trusted -- the lower of first_offset and its first
** entry's offset (when the blob holds one). A damaged first_offset moves
** the run in first_offset order, so the sound runs read after it may have
** left stale entries (those the lost run replaced) or a hole: the loader
** keeps only the entries below this bound. */
int64_t tk_index_run_bound(int64_t first_offset, const void *blob, size_t len);

#endif
