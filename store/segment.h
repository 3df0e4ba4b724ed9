/*
** segment.h -- interface to segment.c: one segment file of a partition's
** log, its sparse offset index, its file handle and mapping (through the
** store's descriptor cache), and the scans that validate it.
*/
#ifndef TAKHIN_SEGMENT_H
#define TAKHIN_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "host.h"

#define TK_INDEX_INTERVAL 4096 /* bytes of log per index entry (Kafka's default) */

typedef struct tk_index_entry {
  int64_t offset;   /* base offset of the batch the stretch starts with */
  int64_t position; /* its byte position in the segment file */
  int64_t max_ts;   /* largest record timestamp within the stretch */
  int64_t run_max;  /* largest timestamp from the segment start through this stretch */
} tk_index_entry;

struct tk_segment {
  tk_partition *part;
  int64_t base_offset;
  /* visible end: complete, validated batches handed to the OS (meta_lock) */
  int64_t next_offset;
  int64_t size;
  int64_t max_ts;
  int sealed;
  int64_t created_ms;
  int64_t records; /* records in the file after compaction; -1 = dense (next - base) */
  /* A scan found offsets skipped between batches of a file loaded without
  ** its catalog row (a compacted file): not dense after all. Set before
  ** the segment's batches are visible; read without a lock. */
  atomic_int gaps;
  /* sparse index (meta_lock for the array; persisted tracks the catalog) */
  tk_index_entry *idx;
  size_t idx_n, idx_cap, idx_persisted;
  int64_t last_idx_pos; /* position of the newest index entry's batch */
  int cat_dirty;        /* segment row differs from the catalog */
  /* The catalog holds a row for this segment that claims no more than
  ** memory does: appends to the active segment may leave it behind (the
  ** file is the truth; see tk_part_persist). append_lock. */
  int cat_row;
  size_t idx_inflight; /* index rows the persist running now writes (append_lock) */
  /* A compaction run deleted its index rows from the catalog ahead of its
  ** swap (compact_plan.c); the run owes them back if the segment stays. */
  int rows_dropped;
  /* Bumped (append_lock) when its index rows are owed again from the
  ** start (tk_part_owe_rows): a chunk tk_part_write_owed wrote before is
  ** not to be settled then, even where idx_persisted is back at its start. */
  unsigned rows_gen;
  /* file handle, managed by the store's cache (fd_lock) */
  int fd;
  int fd_users;
  int synced_dirty; /* FSYNC/flush(sync): written since the last fdatasync */
  struct tk_segment *lru_prev, *lru_next;
  atomic_int refs;
  int unlinked; /* retired: the file is gone or its path names another file; never reopen it */
  /* The one file (inode) this segment describes, from its first open (fd_lock).
  ** A reopen by path that finds another file (compaction renamed its
  ** replacement over it) or none (retention) retires the segment instead of
  ** reading bytes its index does not describe. */
  int bound;
  uint64_t dev, ino;
  /* read-only shared mapping for readers (fd_lock): made on first read and
  ** kept for the segment's life, of the segment's own file (see bound). A
  ** sealed segment's mapping never extends past the file's end; the active
  ** one's may, but bytes past the visible end are never touched, and the
  ** writer never cuts a file below its visible end (tk_part_undo zeroes) */
  _Atomic(const uint8_t *) map; /* published after map_len; readers load it without a lock */
  size_t map_len;
  int map_failed;
};

/* Every offset from base to next is in some batch: each batch starts right
** after the one before, which is what checks a batch's baseOffset (the CRC
** does not cover it). Otherwise batches only have to follow one another. */
static inline int tk_seg_dense(tk_segment *g) {
  return g->records < 0 && !atomic_load_explicit(&g->gaps, memory_order_relaxed);
}

/* Allocate an empty segment (refs = 1). NULL on out of memory. */
tk_segment *tk_seg_new(tk_partition *p, int64_t base, int64_t created_ms);
/* Path of the segment's file into out (PATH_MAX). */
void tk_seg_path(const tk_segment *g, char *out, size_t cap);
/* A file descriptor for the segment, counted as in use until released.
** TAKHIN_ERANGE when the segment is retired (its file was deleted or
** replaced): the caller looks the offset up again. */
int tk_seg_fd_acquire(tk_segment *g, int *fd);
/* Bind a segment not yet opened to the file open at fd (a compaction's new
** file, before it is renamed into place). */
void tk_seg_bind(tk_segment *g, int fd);
/* Whether g's path no longer names g's file (deleted, or replaced by
** compaction); if so g is marked retired. A read-only handle asks before
** it reloads a segment the catalog describes differently. */
int tk_seg_retired(tk_segment *g);
void tk_seg_fd_release(tk_segment *g);
/* The segment's bytes mapped into memory (at least `need` of them), or NULL
** when it cannot be (then read with pread). */
const uint8_t *tk_seg_map(tk_segment *g, int64_t need, int sealed);
/* Record a batch of hdr written at pos in the in-memory index and visible end.
** Caller holds meta_lock for writing (or owns the segment exclusively). */
int tk_seg_note_batch(tk_segment *g, int64_t pos, const tk_batch_hdr *h);
/* Make room for the index entries of a segment of up to bytes bytes, so
** that appends never reallocate the array (meta_lock held for writing, or
** the segment owned); tk_seg_trim_index gives the unused part back when it
** is sealed. Out of memory only means the array grows as needed later. */
void tk_seg_reserve_index(tk_segment *g, int64_t bytes);
void tk_seg_trim_index(tk_segment *g);
/* Find the index entry to start reading offset from: largest entry with
** offset <= target; returns its position (0 when none) and in *entry_offset
** the offset the entry names (-1 when none). meta_lock held. */
int64_t tk_seg_index_lookup(const tk_segment *g, int64_t target, int64_t *entry_offset);
/* Walk the segment file from pos (a batch boundary whose state g already
** reflects) to its end, noting every batch. Below lenient_end (the catalog's
** indexed size) only headers are checked; past it each batch must be complete
** and pass CRC and decoding. res->good_end is where good data ends. */
typedef struct tk_scan_result {
  int64_t good_end;
  int64_t file_size;
  int64_t recovered; /* of those, batches past lenient_end (unknown to the catalog) */
  int lenient_broke; /* zone 1 disagreed and no catalog end was given to check it against */
  /* damaged batches found in zone 1 (kept, read as ECORRUPT), and the first */
  int64_t damaged;
  int64_t damaged_pos, damaged_lo, damaged_hi;
  const char *damaged_why; /* static string */
} tk_scan_result;
int tk_seg_scan(tk_segment *g, int64_t pos, int64_t lenient_end, tk_scan_result *res);
/* tk_seg_scan with the catalog's next offset for lenient_end: the walk of
** zone 1 must end there. If it does not, zone 1 is walked again checking
** every batch's CRC and that its offsets follow the previous batch's; a
** batch that fails is damage, kept in place (never truncated) with the
** offsets between its neighbours, and the catalog's end stands. */
int tk_seg_scan_indexed(tk_segment *g, int64_t pos, int64_t lenient_end, int64_t lenient_next,
                        tk_scan_result *res);
/* Whether index entries e[0..n) describe g's file as it is: each names a
** sound batch (header parses, CRC passes) that ends by limit and whose
** baseOffset is the entry's offset. 1 when all do, 0 when one does not, or
** an error status. For a catalog that may describe another file (an older
** catalog restored, or a compaction's commit lost after its renames). */
int tk_seg_index_matches(tk_segment *g, const tk_index_entry *e, size_t n, int64_t limit);
/* The first sound batch (header parses, CRC passes) starting in [from,
** limit - 61] and ending by limit, with baseOffset >= min_base and its last
** offset < max_next (-1: any): 1 with *at and *h, 0 when there is none, or
** an error. How a reader or recovery finds its feet again after a batch
** whose header cannot be trusted. */
int tk_seg_resync(tk_segment *g, int64_t from, int64_t limit, int64_t min_base, int64_t max_next,
                  int64_t *at, tk_batch_hdr *h);

#endif /* TAKHIN_SEGMENT_H */
