/*
** partition.h -- interface to a partition's files: partition.c (appends,
** flushes, group commit, and the API other modules use: offsets,
** compaction's swap, removal of old segments), recovery.c (load on open,
** read-only refresh) and retention.c (retention and DeleteRecords).
*/
#ifndef TAKHIN_PARTITION_H
#define TAKHIN_PARTITION_H

#include <pthread.h>
#include <stdint.h>
#include <zstd.h>

#include "buf.h"
#include "host.h"
#include "keyindex.h"
#include "segment.h"
#include "topic.h"

#define TK_PERSIST_ENTRIES 256 /* index entries pending before a catalog write */
#define TK_PERSIST_MS 1000     /* ... or this long since the last one */
#define TK_PERSIST_CHUNK 4096  /* index entries per catalog transaction at a roll or checkpoint */
/* Sealed segments' owed index entries (a roll, a compaction): the checkpoint
** thread writes them at once, TK_PERSIST_BG_CHUNK per transaction (one
** run, index_run.h: 384 KiB), holding append_lock only to take and to
** settle a chunk; a producer writes TK_PERSIST_APPEND_CHUNK per append only
** when no thread can (or the entries have waited TK_PERSIST_OWED_MS), a
** fraction of a millisecond each. */
#define TK_PERSIST_BG_CHUNK 16384
#define TK_PERSIST_APPEND_CHUNK 64
#define TK_PERSIST_OWED_MS (2 * TK_PERSIST_MS)

/* fsync a directory so a file created or renamed in it survives power loss. */
int tk_sync_dir(const char *dir);

struct tk_partition {
  tk_topic *topic;
  int32_t id;
  char dir[4400];
  pthread_mutex_t
      maint_lock; /* one of compaction, retention, DeleteRecords at a time; before append_lock */
  pthread_mutex_t append_lock;
  pthread_rwlock_t meta_lock;
  tk_segment **segs; /* oldest first; the last is active */
  size_t nsegs, segs_cap;
  int64_t log_start;
  int64_t next_offset;  /* visible high watermark */
  int64_t pending_next; /* BUFFERED: next offset including unwritten batches */
  int log_start_dirty;
  /* writer state (append_lock) */
  tk_buf wbuf; /* encoded batch (OS/FSYNC) or pending batches (BUFFERED) */
  tk_buf zbuf; /* zstd scratch */
  ZSTD_CCtx *cctx;
  int64_t pending_since_ms;
  int64_t last_persist_ms;
  /* The active segment's row and index rows stay in memory until it rolls,
  ** a flush or close, or TK_PERSIST_MS without appends (the checkpoint
  ** thread, maintenance.c): never on the produce path (see
  ** tk_part_persist). Not for the extension's store (borrowed catalog). */
  int defer;
  atomic_int rows_owed;   /* sealed segments owe rows (chunked); read unlocked too */
  int64_t owed_since_ms;  /* when an append first found rows_owed (0: none owed) */
  int64_t last_append_ms; /* append_lock */
  atomic_int ckpt_due;    /* rows held back: the checkpoint thread looks (set under append_lock) */
  /* compacted topics: key-index rows waiting for the next persist; all of
  ** the key-index state below is keyindex.c's to change */
  tk_key_pending *keys;
  size_t nkeys, keys_cap;
  tk_buf keybuf;
  tk_keymap latest; /* keys of records in the file whose rows are not written yet */
  int64_t key_from, key_upto, clean_upto; /* see takhin_cat_partition */
  int64_t dead_from;                      /* see takhin_cat_dead_from (keyindex.c) */
  /* latest and keys[] hold every keyed record from key_upto on, so a
  ** persist that writes them may move key_upto past what it wrote. Not
  ** after a load until tk_key_catch_up has indexed what the last run left
  ** unwritten (append_lock). */
  int keys_tracked;
  /* The key-index writer thread's share (keyindex.c): a map of latest keys
  ** handed over by a persist, written in a transaction of its own with
  ** key_upto moved to kw_upto (if kw_move). kw_state: KW_IDLE, KW_QUEUED
  ** (writing and kw_* belong to the writer thread; set under append_lock),
  ** KW_DONE (kw_rc says how it went; append_lock holders take it back). */
  tk_keymap writing;
  atomic_int kw_state;
  int kw_rc, kw_move;
  int64_t kw_upto;
  tk_partition *kw_next; /* the store's queue (kw_mu) */
  uint64_t persists;     /* catalog writes that committed (append_lock) */
  /* BUFFERED: acknowledged records a failed write dropped, not yet reported
  ** to the application (append_lock): lost_n records in [lost_from,
  ** lost_to), the failure's status and message. See tk_part_take_lost. */
  int64_t lost_from, lost_to, lost_n;
  int lost_rc;
  char lost_msg[256];
  /* compaction (maint_lock): the catalog still holds the swap rows of a
  ** run whose renames are done and synced; the next run's first write
  ** drops them (compaction.c), or the next open does */
  int swaps_done;
  /* FSYNC group commit */
  pthread_mutex_t sync_lock;
  pthread_cond_t sync_cond;
  int syncing;
  int64_t synced_next; /* every offset below is on disk */
  /* read-only handles: the catalog's data_version of the last refresh that
  ** reconciled every segment row (-1: none yet); while it stands, only the
  ** active segment's file can have changed (append_lock) */
  int64_t seen_version;
  atomic_int waiters; /* threads in tk_wait_for on this partition (wait.c) */
};

static inline takhin_store *tk_part_store(const tk_partition *p) { return p->topic->store; }
/* The active segment (the last; a loaded partition always has one). */
static inline tk_segment *tk_part_active(const tk_partition *p) { return p->segs[p->nsegs - 1]; }

/* Between the partition's own files (partition.c, recovery.c, retention.c): */
/* Append g to the segment array. Caller holds meta_lock for writing or owns
** the partition exclusively. */
int tk_part_push_seg(tk_partition *p, tk_segment *g);
/* Write segment rows, index entries and the log start that changed since
** the last call, and the key rows that are due, in one catalog transaction.
** flush: every row (all key rows too), however many. Otherwise (an append
** or a roll) what is due: sealed segments' index rows, none while the
** checkpoint thread writes them, else TK_PERSIST_APPEND_CHUNK at most
** (TK_PERSIST_CHUNK on the extension's store; rows_owed says whether more
** wait), and the active segment's rows only where p->defer is
** off or the catalog has no row for it yet (a new segment). append_lock
** held: only appenders change segment state, so it can be read without
** meta_lock. */
int tk_part_persist(tk_partition *p, int flush);
/* The persist at the end of a writer's load: every row, but the active
** segment's tail held back (p->defer; its row is written when the
** catalog's claims more) and sealed segments' index rows a chunk at a
** time; every key row. Reserves the active segment's index array. */
int tk_part_persist_opened(tk_partition *p);
/* After an append or a load: if rows are held back now, tell the
** checkpoint thread (append_lock held). */
void tk_part_note_held(tk_partition *p);
/* The checkpoint thread's call: if p has rows held back and no append for
** TK_PERSIST_MS, write them, TK_PERSIST_CHUNK index rows per transaction
** (append_lock taken per chunk, so a producer that resumes waits for one
** chunk at most). 1 while rows stay held back, else 0. */
int tk_part_checkpoint_idle(tk_partition *p, int64_t now);
/* The checkpoint thread's call for owed rows: the next TK_PERSIST_BG_CHUNK
** index rows of the oldest sealed segment that owes some, written under
** cat_lock only (the rows of a sealed segment do not change); the segment's
** idx_persisted moves after, under append_lock, if nobody wrote or dropped
** them meanwhile. 1 when a chunk was written, 2 when the partition or the
** catalog was busy (look again), 0 when nothing is owed that it can write. */
int tk_part_write_owed(tk_partition *p);
/* Create the file of a new segment starting at base and make it active
** (append_lock held, or the partition owned). */
int tk_part_new_active(tk_partition *p, int64_t base, int64_t now);
/* BUFFERED: write the pending batches (append_lock held). */
int tk_part_write_pending(tk_partition *p);
/* Remove the ndrop oldest (sealed) segments and move the log start to
** new_start, catalog first, files after: a crash in between leaves files the
** next open recognises as already deleted. append_lock held. */
int tk_part_drop_prefix(tk_partition *p, size_t ndrop, int64_t new_start,
                        takhin_retention_result *out);

/* Allocate and initialise a partition (no files touched). NULL on OOM. */
tk_partition *tk_part_new(tk_topic *t, int32_t id);
void tk_part_free(tk_partition *p);
/* Load segments from the catalog and recover them against the files. */
int tk_part_load(tk_partition *p, takhin_recovery_info *rec);
/* Create the folder and the first segment of a new partition. */
int tk_part_create(tk_partition *p);
/* Append one validated, pre-encoded batch taking n offsets (rawio.c). */
int tk_part_append_raw(tk_partition *p, const uint8_t *batch, size_t len, int64_t n,
                       const takhin_record *keys, size_t nkeys, int64_t *first);
/* Write pending batches (BUFFERED) and, if persist, index rows to the catalog. */
int tk_part_flush(tk_partition *p, int persist, int sync);
/* BUFFERED: ELOST naming the acknowledged records a failed write dropped
** since the last report (and forget them), or OK. Only calls that answer
** the application take it: produce, takhin_flush, takhin_close. */
int tk_part_take_lost(tk_partition *p);
/* Read-only handles: pick up what the writer process appended since. */
int tk_part_refresh(tk_partition *p);
int tk_part_delete_records(tk_partition *p, int64_t offset);
int tk_part_retention(tk_partition *p, takhin_retention_result *out);
/* Log start, high watermark (the offset the next record will get: in
** BUFFERED mode acknowledged records still in memory count, as everywhere
** a caller sees one) and the written end (next_offset: what readers can
** read without a flush), each NULL-able, read together under meta_lock. */
void tk_part_offsets(tk_partition *p, int64_t *log_start, int64_t *hwm, int64_t *written);
/* takhin_partition_info_get / takhin_segments_list of a partition in hand. */
void tk_part_info(tk_partition *p, takhin_partition_info *out);
int tk_part_segments(tk_partition *p, takhin_segment_info **out, size_t *n);
/* Compaction's swap: each fresh[i] (non-NULL) takes the place of old[i] in
** the segment array and is what readers find from now on; old[i] is retired
** (its path names the new file) and released on the reaper thread. The new
** segments' index rows are owed (rows_owed), written as a roll's are: by
** the checkpoint thread at once (tk_part_write_owed), by appends as a
** fallback, or at a flush (on the SQL extension's store the swap wrote
** them). Takes over the
** caller's references to both; swapped entries become NULL. */
void tk_part_swap_segments(tk_partition *p, tk_segment **old, tk_segment **fresh, size_t n);
/* After a compaction run, its last step done: wake the checkpoint thread for
** the index rows the swap left owed. Not from the swap itself: the thread's
** chunks would take cat_lock and a core from the run's last steps, which
** the caller waits for (BENCHMARKS.md, fix 11). */
void tk_part_owed_after_run(tk_partition *p);
/* Segments of segs[] (NULL-able) whose index rows a compaction run deleted
** from the catalog (rows_dropped) and that are still in the partition (the
** run failed before its commit): their rows are owed again. */
void tk_part_owe_rows(tk_partition *p, tk_segment **segs, size_t n);
/* The topic is deleted: mark every segment retired, never to be reopened. */
void tk_part_retire_files(tk_partition *p);
/* Segment holding offset (or the first after it), with a ref; NULL at the end.
** *pos receives where to start reading, *end the segment's visible end. */
tk_segment *tk_part_locate(tk_partition *p, int64_t offset, int64_t *pos, int64_t *end,
                           int64_t *hwm, int64_t *seg_next, int *sealed, int64_t *entry_offset);

#endif /* TAKHIN_PARTITION_H */
