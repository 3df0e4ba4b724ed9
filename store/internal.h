/*
** internal.h -- the library's private structures and the functions the store/
** files share. Nothing here is part of the public API.
**
** Object graph and locks (outermost first; take them in this order only):
**
**   takhin_store
**     topics_lock (rwlock)   read: any operation on a topic; write: the set of
**                            topics changes (create).
**     cat_lock (mutex)       the one SQLite connection to the catalog.
**     fd_lock (mutex)        the segment file-handle cache (LRU, budget).
**   tk_topic (refcounted; a cursor keeps its topic alive)
**   tk_partition
**     append_lock (mutex)    serializes appends, rolls, flushes, retention;
**                            held across the write() of a batch.
**     meta_lock (rwlock)     the segment array, each segment's visible end and
**                            index array, log start. Only ever held for
**                            in-memory work, never across I/O, so readers
**                            never wait for a writer's I/O.
**     sync_lock (mutex)      FSYNC mode group commit.
**   tk_segment (refcounted; readers hold a ref while they pread)
*/
#ifndef TAKHIN_INTERNAL_H
#define TAKHIN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <zstd.h>

#include "batch.h"
#include "buf.h"
#include "takhin.h"

struct sqlite3; /* only catalog.c and the extension see SQLite's headers */
struct sqlite3_stmt;

#define TK_INDEX_INTERVAL 4096        /* bytes of log per index entry (Kafka's default) */
#define TK_PERSIST_ENTRIES 256        /* index entries pending before a catalog write */
#define TK_PERSIST_MS 1000            /* ... or this long since the last one */
#define TK_MAX_TOPIC_NAME 249
#define TK_MAX_PARTITIONS 100000
#define TK_MAX_BATCH_BYTES (1 << 30)  /* hard ceiling whatever the config says */
#define TK_PATH_MAX 4700              /* any path the library builds fits */

/* ---- errors (error.c) ------------------------------------------------ */
/* Record a message for takhin_errmsg() and return rc. */
int tk_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Map an errno from a failed system call to a status, with a message. */
int tk_err_sys(int err, const char *what, const char *path);

/* ---- time (error.c) -------------------------------------------------- */
int64_t tk_now_ms(void);

/* ---- topic configuration (topic.c) ----------------------------------- */
typedef struct tk_topic_config {
  int compact;            /* cleanup_policy contains compact */
  int delete_;            /* cleanup_policy contains delete */
  int compression;        /* TK_CODEC_* */
  int64_t segment_bytes;
  int64_t segment_ms;
  int64_t retention_bytes;
  int64_t retention_ms;
  int64_t max_message_bytes;
  int64_t delete_retention_ms;
  int64_t min_compaction_lag_ms;
  double min_cleanable_dirty_ratio;
} tk_topic_config;

/* ---- BEGIN s2: topic configuration table (topic_config.c) ---------------- */
#include "topic_config.h"
/* ---- END s2 ------------------------------------------------------------- */

void tk_config_defaults(tk_topic_config *c);
/* Apply key/value pairs (NULL-terminated array) over c. EINVAL naming the key. */
int tk_config_apply(tk_topic_config *c, const char *const *kv);
const char *tk_config_policy_name(const tk_topic_config *c);
const char *tk_config_codec_name(const tk_topic_config *c);
/* Kafka's topic-name rule; EINVAL with a message quoting it. */
int tk_topic_name_check(const char *name);

/* ---- segments (segment.c) -------------------------------------------- */
typedef struct tk_index_entry {
  int64_t offset;   /* base offset of the batch the stretch starts with */
  int64_t position; /* its byte position in the segment file */
  int64_t max_ts;   /* largest record timestamp within the stretch */
  int64_t run_max;  /* largest timestamp from the segment start through this stretch */
} tk_index_entry;

typedef struct tk_partition tk_partition;

typedef struct tk_segment {
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
} tk_segment;

/* Every offset from base to next is in some batch: each batch starts right
** after the one before, which is what checks a batch's baseOffset (the CRC
** does not cover it). Otherwise batches only have to follow one another. */
static inline int tk_seg_dense(tk_segment *g) {
  return g->records < 0 && !atomic_load_explicit(&g->gaps, memory_order_relaxed);
}

/* Allocate an empty segment (refs = 1). NULL on out of memory. */
tk_segment *tk_seg_new(tk_partition *p, int64_t base, int64_t created_ms);
void tk_seg_ref(tk_segment *g);
void tk_seg_unref(tk_segment *g);
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
/* The first sound batch (header parses, CRC passes) starting in [from,
** limit - 61] and ending by limit, with baseOffset >= min_base and its last
** offset < max_next (-1: any): 1 with *at and *h, 0 when there is none, or
** an error. How a reader or recovery finds its feet again after a batch
** whose header cannot be trusted. */
int tk_seg_resync(tk_segment *g, int64_t from, int64_t limit, int64_t min_base, int64_t max_next,
                  int64_t *at, tk_batch_hdr *h);

/* ---- partitions (partition.c) ---------------------------------------- */
/* fsync a directory so a file created or renamed in it survives power loss. */
int tk_sync_dir(const char *dir);

typedef struct tk_topic tk_topic;

/* A keyed record of a compacted topic whose key-index row is not written yet. */
typedef struct tk_key_pending {
  int64_t offset;
  size_t key_at, key_len; /* in the partition's keybuf */
  int tombstone;
} tk_key_pending;

struct tk_partition {
  tk_topic *topic;
  int32_t id;
  char dir[4400];
  pthread_mutex_t maint_lock; /* one of compaction, retention, DeleteRecords at a time; before append_lock */
  pthread_mutex_t append_lock;
  pthread_rwlock_t meta_lock;
  tk_segment **segs; /* oldest first; the last is active */
  size_t nsegs, segs_cap;
  int64_t log_start;
  int64_t next_offset;    /* visible high watermark */
  int64_t pending_next;   /* BUFFERED: next offset including unwritten batches */
  int log_start_dirty;
  /* writer state (append_lock) */
  tk_buf wbuf;    /* encoded batch (OS/FSYNC) or pending batches (BUFFERED) */
  tk_buf zbuf;    /* zstd scratch */
  ZSTD_CCtx *cctx;
  int64_t pending_since_ms;
  int64_t last_persist_ms;
  /* compacted topics: key-index rows waiting for the next persist */
  tk_key_pending *keys;
  size_t nkeys, keys_cap;
  tk_buf keybuf;
  uint32_t *kset; /* probe table of persist()'s key dedupe (UINT32_MAX = empty) */
  size_t kset_cap;
  int64_t key_from, key_upto, clean_upto; /* see takhin_cat_partition */
  /* keys[] holds every keyed record from key_upto on, so a persist may move
  ** key_upto past what it wrote. Not after a load until tk_key_catch_up has
  ** indexed what the last run left unwritten (append_lock). */
  int keys_tracked;
  uint64_t persists; /* catalog writes that committed (append_lock) */
  /* BUFFERED: acknowledged records a failed write dropped, not yet reported
  ** to the application (append_lock): lost_n records in [lost_from,
  ** lost_to), the failure's status and message. See tk_part_take_lost. */
  int64_t lost_from, lost_to, lost_n;
  int lost_rc;
  char lost_msg[256];
  /* FSYNC group commit */
  pthread_mutex_t sync_lock;
  pthread_cond_t sync_cond;
  int syncing;
  int64_t synced_next; /* every offset below is on disk */
  /* read-only handles: the catalog's data_version of the last refresh that
  ** reconciled every segment row (-1: none yet); while it stands, only the
  ** active segment's file can have changed (append_lock) */
  int64_t seen_version;
};

/* Allocate and initialise a partition (no files touched). NULL on OOM. */
tk_partition *tk_part_new(tk_topic *t, int32_t id);
void tk_part_free(tk_partition *p);
/* Load segments from the catalog and recover them against the files. */
int tk_part_load(tk_partition *p, takhin_recovery_info *rec);
/* Create the folder and the first segment of a new partition. */
int tk_part_create(tk_partition *p);
int tk_part_append(tk_partition *p, const takhin_record *recs, size_t n, int64_t *first);
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
/* Where the log ends now, to undo the appends made after it: the SQL
** extension's COMMIT appends one batch per partition and must take back
** those already written if a later one fails (all or nothing). */
typedef struct tk_part_mark {
  size_t nsegs;
  int64_t size, next_offset, max_ts, last_idx_pos;
  size_t idx_n;
  tk_index_entry last_entry;
  int64_t key_upto;
  uint64_t persists;
} tk_part_mark;
void tk_part_mark_get(tk_partition *p, tk_part_mark *m);
/* Cut the log back to m. EINVAL when it cannot (a segment rolled since). */
int tk_part_undo(tk_partition *p, const tk_part_mark *m);
int tk_part_retention(tk_partition *p, takhin_retention_result *out);
/* Segment holding offset (or the first after it), with a ref; NULL at the end.
** *pos receives where to start reading, *end the segment's visible end. */
tk_segment *tk_part_locate(tk_partition *p, int64_t offset, int64_t *pos, int64_t *end,
                           int64_t *hwm, int64_t *seg_next, int *sealed, int64_t *entry_offset);
/* A cursor on a partition already in hand (no lookup by name). */
int tk_cursor_open_part(takhin_store *s, tk_topic *t, tk_partition *p, takhin_cursor **out);
/* After takhin_cursor_next gave ECORRUPT for a damaged batch: the first
** offset after the offsets it makes unreadable, to seek to; else -1. */
int64_t tk_cursor_past_damage(const takhin_cursor *c);
/* The segment whose read-only mapping holds bytes [p, p + n) of the record
** c returned last, or NULL when they are elsewhere (a pread buffer, a
** decompressed batch). The mapping, and the bytes in it, last as long as
** the segment does: a ref (tk_seg_ref) keeps them valid after c moves on. */
tk_segment *tk_cursor_mapped_seg(const takhin_cursor *c, const void *p, size_t n);
/* Latest offset of key in the key index (persisting pending rows first).
** ENOTFOUND when none; *tombstone says whether it is a tombstone. */
int tk_key_lookup(tk_partition *p, const void *key, size_t len, int64_t *offset, int *tombstone);

/* ---- topics and the store (store.c, topic.c) ------------------------- */
struct tk_topic {
  takhin_store *store;
  int64_t topic_id;
  char name[TK_MAX_TOPIC_NAME + 1];
  tk_topic_config cfg;
  int32_t nparts;
  tk_partition **parts; /* replaced whole (topics_lock held for writing) when partitions are added */
  atomic_int refs;
  atomic_int deleted;
  atomic_uint sticky_next; /* round-robin partition for null-key batches */
  tk_topic *hnext; /* hash chain */
  int64_t created_ms; /* with name and topic_id: this incarnation (topic_meta.c) */
  int64_t meta_epoch; /* epoch of its metadata files (topics_lock or every append_lock) */
};

void tk_topic_ref(tk_topic *t);
void tk_topic_unref(tk_topic *t);

typedef struct tk_catalog tk_catalog;

#define TK_STORE_OPEN 0x74616b68u   /* "takh" */
#define TK_STORE_CLOSED 0x64656164u /* "dead" */

struct takhin_store {
  uint32_t magic; /* TK_STORE_OPEN while usable; see takhin_close */
  char db_path[3900];
  char data_dir[3900]; /* "<db>-takhin" */
  takhin_options opt;
  int lock_fd;
  pthread_rwlock_t topics_lock;
  tk_topic **topics; /* hash table of nbuckets chains */
  size_t nbuckets, ntopics;
  pthread_mutex_t cat_lock;
  tk_catalog *cat;
  pthread_mutex_t fd_lock;
  tk_segment *lru_head, *lru_tail; /* idle open files, most recent first */
  int open_fds;
  int nmaps; /* segment mappings (fd_lock); bounded below vm.max_map_count */
  takhin_recovery_info recovery;
  /* BUFFERED mode flusher */
  pthread_t flusher;
  int flusher_running;
  pthread_mutex_t flusher_mu; /* also the maintenance thread's */
  pthread_cond_t flusher_cv;  /* broadcast on close */
  int stopping;
  pthread_t maint;
  int maint_running;
  int borrowed; /* the catalog is the SQLite extension's host connection */
  /* segments whose files are gone, released by the reaper thread (reaper.c) */
  pthread_mutex_t reap_mu;
  pthread_cond_t reap_cv;
  struct tk_reap_item *reap_q;
  size_t reap_n, reap_cap;
  pthread_t reaper;
  int reaper_running, reap_stop;
};

/* Hand over one reference to g, a segment whose file is gone, and one to
** its topic t: both are released on the store's reaper thread (reaper.c),
** or at once where no thread may run. Never fails. */
void tk_reap(takhin_store *s, tk_topic *t, tk_segment *g);
/* Release everything queued and stop the reaper thread (a later tk_reap
** starts a new one). takhin_close calls it before freeing anything. */
void tk_reaper_drain(takhin_store *s);

/* A compaction run's plan (compact_plan.c): the surviving offsets of each
** candidate segment cand[i] (NULL entries skipped) and, if some records do
** not survive, its new file, made ahead of the caller on a helper thread
** where threads may run. tk_plan_get waits for segment i and returns a
** view of its sorted offsets, valid until tk_plan_done(i), and the new
** file's descriptor and path (*fd = -1: leave the segment as it is); the
** descriptor is the caller's to write, close, or unlink. Segments are
** taken in order. tk_plan_stop (NULL-safe) joins the helper, removes files
** made but not taken, and frees the plan.
** by_caller (the extension's store, whose catalog connection must stay on
** the calling thread): no helper; the caller runs tk_plan_run while another
** thread takes the segments, or calls tk_plan_inline first when it cannot
** start one. The taking side calls tk_plan_abort when it gives up. */
typedef struct tk_plan tk_plan;
int tk_plan_start(tk_plan **out, tk_partition *p, tk_segment *const *cand, size_t ncand,
                  int64_t expired_before, int by_caller);
int tk_plan_run(tk_plan *pl);
void tk_plan_inline(tk_plan *pl);
void tk_plan_abort(tk_plan *pl);
int tk_plan_get(tk_plan *pl, size_t i, const int64_t **keep, size_t *n, int *fd, const char **tmp);
void tk_plan_done(tk_plan *pl, size_t i);
void tk_plan_stop(tk_plan *pl);

/* The handle is an open store (NULL and closed handles are not). */
static inline int tk_store_live(const takhin_store *s) { return s && s->magic == TK_STORE_OPEN; }

/* Find a topic by name and take a reference (tk_topic_unref when done). */
int tk_store_topic(takhin_store *s, const char *name, tk_topic **out);
int tk_store_partition(takhin_store *s, const char *topic, int32_t part, tk_topic **t,
                       tk_partition **p);
/* Build a tk_topic from a catalog row (store.c owns the table). */
tk_topic *tk_topic_new(takhin_store *s, int64_t id, const char *name, int32_t nparts,
                       const tk_topic_config *cfg);
/* The topic table (topics_lock held for writing). */
tk_topic *tk_store_find(const takhin_store *s, const char *name);
int tk_store_insert(takhin_store *s, tk_topic *t);
void tk_store_remove(takhin_store *s, tk_topic *t);
/* Call fn on every partition of every topic (topics_lock read-held inside). */
void tk_store_each_partition(takhin_store *s, void (*fn)(tk_partition *, void *), void *arg);
/* Borrowed catalog (the extension): on, the store's catalog write groups
** (tk_cat_begin..commit) run in a savepoint of their own, for calls made
** from a read-only statement; off again after the call (catalog.c). */
void tk_cat_group(takhin_store *s, int on);
/* A statement that writes is running on db (its transaction holds ours). */
int tk_sql_writer_active(struct sqlite3 *db);
/* takhin_open on the extension's host connection (no threads of ours may
** then touch the catalog: BUFFERED and maintenance_ms are refused). */
int tk_open_borrowed(struct sqlite3 *db, const char *path, const takhin_options *opt,
                     takhin_store **out);
/* Start the background maintenance thread if opt.maintenance_ms > 0. */
int tk_maint_start(takhin_store *s);
/* Read-only handles: load topics the writer created since. */
void tk_store_refresh(takhin_store *s);
/* Remove the files of a partition folder and the folder (best effort). */
void tk_clear_dir(const char *dir, int remove_dir);

/* ---- topic metadata beside the data (topic_meta.c, reconcile.c) ------- */
#define TK_META_FILE "topic.meta"
typedef struct tk_meta {
  char name[TK_MAX_TOPIC_NAME + 1];
  int64_t topic_id, created_ms, epoch, log_start, key_from;
  int32_t partitions, partition;
  tk_topic_config cfg;
} tk_meta;
/* Read "<dir>/topic.meta": ENOTFOUND (no message) when there is none,
** EFORMAT naming the bad line when it is unreadable. */
int tk_meta_read(const char *dir, tk_meta *m);
/* Write it atomically (tmp, fsync, rename, fsync dir). */
int tk_meta_write(const char *dir, const tk_meta *m);
int tk_meta_same(const tk_meta *a, const tk_meta *b);
/* The metadata of partition p as the store holds it now; the caller holds
** p's append_lock (or owns p) so no other write of its file races. */
void tk_meta_of(const tk_partition *p, tk_meta *m);
int tk_meta_write_part(tk_partition *p);
/* Open (writer), before the topics load (topics_lock held): finish marked
** deletes and reconcile the catalog with the data folder (reconcile.c). */
int tk_reconcile(takhin_store *s);
/* Open (writer), after the topics loaded: write every metadata file that is
** missing or differs from what the store now holds. */
int tk_reconcile_finish(takhin_store *s);
/* The created_ms of a catalog topic row (0 when unknown). cat_lock held. */
int64_t tk_cat_topic_created(takhin_store *s, int64_t topic_id);
/* The catalog connection (catalog.c), for reconcile.c's one-off statements. */
struct sqlite3 *tk_cat_db(takhin_store *s);
/* The path partition part of topic (topic_id id) is renamed to when it is
** deleted: "<data_dir>/<topic>-<part>.<id>-delete", the topic part
** shortened so the folder name fits in 255 bytes (as Kafka does). */
void tk_delete_marker(const takhin_store *s, const char *topic, int32_t part, int64_t id,
                      char *out, size_t cap);

/* ---- sql/compaction.sql (sqlfile.c) ----------------------------------- */
/* The statement named name, or NULL. Static storage. */
const char *tk_sql(const char *name);
/* ... prepared on the catalog (tk_cat_prepare; cat_lock held); NULL, with
** the error set, when there is no such statement or it does not prepare. */
struct sqlite3_stmt *tk_sql_prepare(takhin_store *s, const char *name);

/* ---- compaction and the key index (compaction.c) ---------------------- */
/* Upsert one key-index row / set key_upto (cat_lock held, inside a txn). */
int tk_key_write(takhin_store *s, int64_t topic_id, int32_t part, const void *key, size_t len,
                 int64_t offset, int tombstone);
int tk_key_set_upto(takhin_store *s, int64_t topic_id, int32_t part, int64_t upto);
int tk_key_set_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t from);
/* On open: finish or discard compaction swaps, then load key_from/key_upto/
** clean_upto (before the partition's segments are loaded). */
int tk_compact_recover(tk_partition *p, takhin_recovery_info *rec);
/* After open (writer, compacted topics): index keys of [key_upto, hwm). */
int tk_key_catch_up(tk_partition *p);
int tk_part_compact(tk_partition *p, int force, takhin_compaction_result *out);

/* ---- catalog (catalog.c) --------------------------------------------- */
/* Open the catalog: its own connection, or borrow (the extension's host
** connection, which is then never closed here). */
int tk_cat_open(takhin_store *s, int read_only, struct sqlite3 *borrow);
void tk_cat_close(takhin_store *s);
int tk_cat_begin(takhin_store *s);
int tk_cat_commit(takhin_store *s);
void tk_cat_rollback(takhin_store *s);
int tk_cat_insert_topic(takhin_store *s, const char *name, int32_t nparts,
                        const tk_topic_config *cfg, int64_t *id);
int tk_cat_insert_partition(takhin_store *s, int64_t topic_id, int32_t part);
/* Calls fn for each topic row; fn returns a status. */
int tk_cat_each_topic(takhin_store *s,
                      int (*fn)(takhin_store *, int64_t id, const char *name, int32_t nparts,
                                const tk_topic_config *cfg, void *arg),
                      void *arg);
int tk_cat_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t *out);
int tk_cat_set_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t v);
/* SQLite's data_version: changes whenever another connection (the writer
** process) commits to the catalog. */
int tk_cat_data_version(takhin_store *s, int64_t *out);
typedef struct tk_seg_row {
  int64_t base, next, size, max_ts, created_ms, records;
  int sealed;
} tk_seg_row;
int tk_cat_segments(takhin_store *s, int64_t topic_id, int32_t part, int64_t min_base,
                    tk_seg_row **rows, size_t *n);
int tk_cat_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                 tk_index_entry **rows, size_t *n);
int tk_cat_upsert_segment(takhin_store *s, int64_t topic_id, int32_t part, const tk_segment *g);
int tk_cat_upsert_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                        const tk_index_entry *e);
int tk_cat_delete_segment(takhin_store *s, int64_t topic_id, int32_t part, int64_t base);
int tk_cat_delete_topic(takhin_store *s, int64_t topic_id);
/* The topic_id of name; ENOTFOUND (no message) when there is none. */
int tk_cat_topic_id(takhin_store *s, const char *name, int64_t *id);
int tk_cat_update_topic(takhin_store *s, int64_t topic_id, int32_t nparts, const tk_topic_config *cfg);
/* A cached statement for sql, which must be a string with static storage
** (the cache is keyed by its address); reset and unbound. NULL on error. */
struct sqlite3_stmt *tk_cat_prepare(takhin_store *s, const char *sql);
/* Step a statement that returns no rows, reset it; map errors. */
int tk_cat_step_done(takhin_store *s, struct sqlite3_stmt *st, const char *what);
/* Give back a statement from tk_cat_prepare (reset, or finalized when the
** connection is borrowed). */
void tk_cat_done(takhin_store *s, struct sqlite3_stmt *st);
/* Rows changed by the last statement. */
int64_t tk_cat_changes(takhin_store *s);
/* Bind a topic config's ten columns (cleanup_policy .. min_cleanable_dirty_ratio,
** in the catalog's column order) to parameters first..first+9. */
/* ECATALOG with SQLite's message. */
int tk_cat_error(takhin_store *s, const char *what);
/* Drop index rows of a segment at or past position (rebuild after a rescan). */
int tk_cat_delete_index_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                             int64_t position);

#endif /* TAKHIN_INTERNAL_H */
