/*
** keyindex.h -- interface to keyindex.c: the key index of a compacted
** topic (each key's latest offset, in the catalog's takhin_cat_key), whose
** state lives in the partition but is changed only by keyindex.c.
*/
#ifndef TAKHIN_KEYINDEX_H
#define TAKHIN_KEYINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dead.h"
#include "host.h"

/* A keyed record of a compacted topic whose key-index row is not written yet. */
typedef struct tk_key_pending {
  int64_t offset;
  size_t key_at, key_len; /* in the partition's keybuf */
  int tombstone;
} tk_key_pending;

/* Keys whose records are in the file but whose rows are not written yet,
** each once with its newest offset: a key produced again and again costs
** one row per write of the map, not one per record or per persist. Open
** addressing with linear probes, at most 3/4 full; offset -1 marks an empty
** slot. A slot is 32 bytes and holds a key of up to TK_KEY_INLINE bytes
** itself (zero-padded), so the producer's probe of such a key touches one
** cache line and compares two words; longer keys live in bytes. Steady state
** allocates nothing: the table and key bytes are kept when cleared. */
#define TK_KEY_INLINE 16
typedef struct tk_key_slot {
  int64_t offset;  /* the key's newest record; -1: the slot is empty */
  uint32_t hash;   /* the key's hash (31 bits: key_hash) | tombstone << 31 */
  uint32_t len;    /* the key's length (under 1 GiB: batch.c) */
  uint64_t key[2]; /* the key, zero-padded; longer ones: key[0] = where in bytes */
} tk_key_slot;
typedef struct tk_keymap {
  tk_key_slot *slot;
  size_t cap, n;      /* cap: 0 or a power of two; n keys held */
  size_t grow_at;     /* n past which the table doubles (3/4 of cap) */
  tk_buf bytes;       /* the keys longer than TK_KEY_INLINE */
  int64_t max_offset; /* newest offset held (-1: empty) */
  int64_t since_ms;   /* when the oldest unwritten key came in */
  tk_dead dead;       /* offsets its puts superseded, written with its rows */
} tk_keymap;

/* ---- for partition.c (append_lock held, or the partition owned) -------- */
/* Free the pending keys (the partition is going away). */
void tk_key_free(tk_partition *p);
/* The index covers the log up to from and every keyed record from there on
** is noted: a new log (from 0), or a topic switched to compact. */
void tk_key_start_at(tk_partition *p, int64_t from);
/* Remember the keys of records [base, base + nkeys) of a compacted topic.
** On out of memory the index stops covering the log (until the next open
** rebuilds it): never an error for the append. */
void tk_key_note(tk_partition *p, const takhin_record *keys, size_t nkeys, int64_t base);
/* Forget the pending keys of records at offset from and later: those
** records were never written or were taken back, and their offsets will be
** given to other records. */
void tk_key_forget_from(tk_partition *p, int64_t from);
/* How many index entries' worth of catalog work the pending keys are (a
** key row is cheap, but thousands should not wait for the persist timer). */
size_t tk_key_pending_weight(const tk_partition *p);
/* Inside the partition's persist transaction (cat_lock held): take the
** pending keys whose records are in the file into the map of latest keys,
** and write the map's rows and move key_upto when it is due (flush: now;
** otherwise when it is full or a second old, so that a hot key costs one row
** a second); then, once that transaction committed, tk_key_persist_done. */
typedef struct tk_key_persist {
  int wrote;    /* the map's rows were written */
  int64_t upto; /* key_upto after the commit, if move_upto */
  int move_upto;
} tk_key_persist;
int tk_key_persist_rows(tk_partition *p, int flush, tk_key_persist *kp);
void tk_key_persist_done(tk_partition *p, const tk_key_persist *kp);
/* tk_part_undo: forget keys from next on; persisted says a persist ran
** since the mark (its rows are rolled back): key_upto returns to key_upto
** and the index stops tracking until the next open rebuilds it. */
void tk_key_undo(tk_partition *p, int64_t next, int64_t key_upto, int persisted);

/* ---- catalog rows (cat_lock held, inside a transaction) ----------------- */
/* Set key_upto / set key_from. */
int tk_key_set_upto(takhin_store *s, int64_t topic_id, int32_t part, int64_t upto);
int tk_key_set_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t from);
/* On open (cat_lock held, before the segments load): key_from, key_upto,
** clean_upto and dead_from from the catalog. */
int tk_key_load(tk_partition *p);
/* Compaction's step 3 (cat_lock held, inside its transaction): the
** tombstones of [from, to) first seen at or before expired_before are
** forgotten, their offsets marked dead; dead chunks wholly below from go. */
int tk_key_forget_expired(takhin_store *s, int64_t topic_id, int32_t part, int64_t from, int64_t to,
                          int64_t expired_before);

/* ---- for the rest of the store ------------------------------------------ */
/* After open (writer, compacted topics): index keys of [key_upto, hwm). */
int tk_key_catch_up(tk_partition *p);
/* Before a compaction (maint_lock held), after the caller's tk_part_flush
** wrote pending batches and their key rows: a catch-up the open could not
** finish, retried (its failure is not an error: compaction stays below
** tk_key_covered). The key index never calls up into the partition. */
int tk_key_cover_log(tk_partition *p);
/* key_upto: key rows below it are all written, tracked or not. */
int64_t tk_key_covered(tk_partition *p);
/* dead_from: takhin_cat_dead is exact for offsets from there on. */
int64_t tk_key_dead_from(tk_partition *p);
/* The key-writer thread (keyindex.c): a map handed over is queued or being
** written (append_lock held; takes back a finished one first). */
int tk_key_writing(tk_partition *p);
/* The key-writer thread has a map of p queued or is writing it (so holds
** or is about to take cat_lock), and p's own map is not full (append_lock
** held): a persist that can wait had better (partition.c). */
int tk_key_writer_busy(tk_partition *p);
/* Wait until no map of p is queued or being written. Hold none of the
** partition's locks nor cat_lock: the thread takes cat_lock to write. */
void tk_key_wait_written(tk_partition *p);
/* Let the thread write what is queued, and stop it (takhin_close, after
** flushing every partition and before freeing them). */
void tk_key_writer_stop(takhin_store *s);
/* Keys noted and not written yet, a map handed to the writer thread and
** not taken back counting as one (append_lock held). */
size_t tk_key_unwritten(const tk_partition *p);
/* Latest offset of key in the key index. The caller first flushes the
** partition when tk_key_unwritten says keys wait (takhin_cursor_get_key).
** ENOTFOUND when none; *tombstone says whether it is a tombstone. */
int tk_key_lookup(tk_partition *p, const void *key, size_t len, int64_t *offset, int *tombstone);

#endif /* TAKHIN_KEYINDEX_H */
