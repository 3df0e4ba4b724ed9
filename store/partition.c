/*
** partition.c -- one partition's log: appending batches, rolling segments,
** writing the index to the catalog in batches, group commit, and the
** partition's API to the other modules (offsets, compaction's swap,
** retention's removal of old segments). Recovery on open and the read-only
** refresh are in recovery.c, retention's policy in retention.c.
**
** Append path (append_lock held): encode the records into the partition's
** reusable buffer (no allocation in steady state), roll if the active
** segment is full or old, pwrite() the batch at the segment's end (one
** syscall per produce call, or per flush in BUFFERED mode), then publish the
** new end and index entries under meta_lock. Index rows reach SQLite every
** TK_PERSIST_ENTRIES entries or TK_PERSIST_MS, never once per message; a crash
** in between only costs recovery a short scan.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "catalog.h"
#include "partition.h"
#include "store.h"
#include "testing.h"
#include "wait.h"

#ifdef TAKHIN_TESTING
atomic_long tk_owed_rows_by_append;          /* testing.h */
atomic_long tk_owed_chunks_failed;           /* testing.h */
void (*tk_write_owed_hook)(tk_partition *p); /* testing.h */
#endif

tk_partition *tk_part_new(tk_topic *t, int32_t id) {
  tk_partition *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->topic = t;
  p->id = id;
  p->seen_version = -1;
  p->defer = !t->store->borrowed && !t->store->opt.read_only;
  snprintf(p->dir, sizeof p->dir, "%s/%s-%d", t->store->data_dir, t->name, (int)id);
  pthread_mutex_init(&p->maint_lock, NULL);
  pthread_mutex_init(&p->append_lock, NULL);
  pthread_rwlock_init(&p->meta_lock, NULL);
  pthread_mutex_init(&p->sync_lock, NULL);
  pthread_cond_init(&p->sync_cond, NULL);
  return p;
}

void tk_part_free(tk_partition *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nsegs; i++) tk_seg_unref(p->segs[i]);
  free(p->segs);
  p->segs = NULL;
  p->nsegs = 0;
  tk_buf_free(&p->wbuf);
  tk_buf_free(&p->zbuf);
  tk_key_free(p);
  pthread_mutex_destroy(&p->maint_lock);
  ZSTD_freeCCtx(p->cctx);
  p->cctx = NULL;
  pthread_mutex_destroy(&p->append_lock);
  pthread_rwlock_destroy(&p->meta_lock);
  pthread_mutex_destroy(&p->sync_lock);
  pthread_cond_destroy(&p->sync_cond);
  free(p);
}

int tk_part_push_seg(tk_partition *p, tk_segment *g) {
  if (TK_ARRAY_GROW(p->segs, p->nsegs, p->segs_cap, 8))
    return tk_err(TAKHIN_ENOMEM, "out of memory adding a segment");
  p->segs[p->nsegs++] = g;
  return TAKHIN_OK;
}

int tk_sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tk_err_sys(errno, "open directory", dir);
  int rc = fsync(fd) ? tk_err_sys(errno, "fsync", dir) : TAKHIN_OK;
  close(fd);
  return rc;
}

/* What a persist writes: every row (a flush), the rows due (a roll, an
** append), or, for the checkpoint thread, every row but a chunk at a time. */
enum { PERSIST_DUE, PERSIST_ALL, PERSIST_ALL_CHUNK, PERSIST_OPEN };

/* Whether the active segment's rows are held back now (see partition.h). */
static int holds_active(const tk_partition *p, const tk_segment *g, int mode) {
  return (mode == PERSIST_DUE || mode == PERSIST_OPEN) && p->defer && g->cat_row &&
         g == tk_part_active(p);
}

static int rows_pending(const tk_segment *g) { return g->cat_dirty || g->idx_persisted < g->idx_n; }

/* Sealed segments' rows are owed: the checkpoint thread writes them now
** (append_lock held). No thread (or closing): the producers, a small chunk
** per append, with the active segment's rows no longer held back either. */
static void owe(tk_partition *p) {
  takhin_store *s = tk_part_store(p);
  p->rows_owed = 1;
  if (p->defer && !s->borrowed && tk_ckpt_owe(s)) p->defer = 0;
}

/* Recount what stays unwritten after a persist: sealed segments' rows
** (rows_owed) and rows of any segment (ckpt_due). */
static void count_owed(tk_partition *p) {
  int owed = 0;
  for (size_t i = 0; i + 1 < p->nsegs && !owed; i++) owed = rows_pending(p->segs[i]);
  if (owed) {
    owe(p);
  } else {
    p->rows_owed = 0;
    p->owed_since_ms = 0;
  }
  if (!owed && !(p->nsegs && rows_pending(tk_part_active(p))))
    atomic_store_explicit(&p->ckpt_due, 0, memory_order_relaxed);
}

/* Whether an append (or a roll) writes a chunk of the sealed segments'
** owed rows itself: on the extension's store, as always; elsewhere only
** when no thread writes them, or they have waited TK_PERSIST_OWED_MS (the
** thread cannot keep up). */
static int producer_pays(const tk_partition *p, int64_t now) {
  return tk_part_store(p)->borrowed || !p->defer ||
         (p->owed_since_ms && now - p->owed_since_ms >= TK_PERSIST_OWED_MS);
}

static int persist(tk_partition *p, int mode) {
  TK_ASSERT_HELD(&p->append_lock);
  takhin_store *s = tk_part_store(p);
  tk_topic *t = p->topic;
  int rc;
  /* A deleted topic's catalog rows are gone, and the next topic created may
  ** get its topic_id (INTEGER PRIMARY KEY gives the largest + 1 again):
  ** rows written now, by whoever found the partition before the delete and
  ** flushes it after (a compaction, a key lookup), would become that
  ** topic's, and a key row left over outranks its keys' records there (the
  ** upsert keeps the larger offset), so its compaction would drop them.
  ** Sound under append_lock: the delete holds every append_lock from before
  ** its rows go until deleted is set. */
  if (atomic_load(&t->deleted))
    return tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" was deleted", t->name);
  /* Index rows per transaction: a 1 GiB segment has 262144, a third of a
  ** second of SQLite in one go; a roll writes them in chunks instead, and
  ** an append (DUE) none while the checkpoint thread writes them. */
  size_t budget = mode == PERSIST_ALL ? SIZE_MAX : TK_PERSIST_CHUNK;
  if (mode == PERSIST_DUE && !s->borrowed)
    budget = producer_pays(p, tk_now_ms()) ? TK_PERSIST_APPEND_CHUNK : 0;
#ifdef TAKHIN_TESTING
  int sealed_rows = 0; /* the producer paid for sealed segments' rows */
#endif
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  for (size_t i = 0; !rc && i < p->nsegs; i++) {
    tk_segment *g = p->segs[i];
    g->idx_inflight = 0;
    if (!rows_pending(g) || holds_active(p, g, mode)) continue;
    /* A sealed segment whose row is written and whose entries are owed to
    ** the checkpoint thread: nothing to write here once the budget is
    ** spent (an append's is 0 while the thread writes them). */
    if (budget == 0 && !g->cat_dirty && g->cat_row && g != tk_part_active(p)) continue;
    rc = tk_cat_upsert_segment(s, t->topic_id, p->id, g);
    size_t n = g->idx_n - g->idx_persisted;
    /* The active segment's rows are all or none while it may be held back:
    ** its newest entry still changes. */
    if (n > budget && (g != tk_part_active(p) || mode == PERSIST_ALL_CHUNK)) n = budget;
    budget -= n < budget ? n : budget;
    if (!rc && n) /* idx is NULL until a segment has entries */
      rc = tk_cat_upsert_index(s, t->topic_id, p->id, g->base_offset, g->idx + g->idx_persisted, n);
    g->idx_inflight = n;
#ifdef TAKHIN_TESTING
    sealed_rows |= n && g != tk_part_active(p);
#endif
  }
  if (!rc && p->log_start_dirty) rc = tk_cat_set_log_start(s, t->topic_id, p->id, p->log_start);
  tk_key_persist kp; /* the key rows ride in the same transaction */
  if (!rc) rc = tk_key_persist_rows(p, mode == PERSIST_ALL || mode == PERSIST_OPEN, &kp);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  if (!rc) {
    tk_key_persist_done(p, &kp);
    for (size_t i = 0; i < p->nsegs; i++) {
      tk_segment *g = p->segs[i];
      if (!rows_pending(g) || holds_active(p, g, mode)) continue;
      g->cat_dirty = 0;
      g->cat_row = 1;
      g->idx_persisted += g->idx_inflight;
    }
    p->log_start_dirty = 0;
    p->last_persist_ms = tk_now_ms();
    p->persists++;
#ifdef TAKHIN_TESTING
    if (mode == PERSIST_DUE && sealed_rows) atomic_fetch_add(&tk_owed_rows_by_append, 1);
#endif
  }
  pthread_mutex_unlock(&s->cat_lock);
  count_owed(p);
  return rc;
}

int tk_part_persist(tk_partition *p, int flush) {
  return persist(p, flush ? PERSIST_ALL : PERSIST_DUE);
}

int tk_part_persist_opened(tk_partition *p) {
  if (p->nsegs) {
    pthread_rwlock_wrlock(&p->meta_lock);
    tk_seg_reserve_index(tk_part_active(p), p->topic->cfg.segment_bytes);
    pthread_rwlock_unlock(&p->meta_lock);
  }
  int rc = persist(p, PERSIST_OPEN);
  tk_part_note_held(p);
  return rc;
}

/* Catalog rows waiting: index entries, plus key rows weighted lightly (a
** key row is cheap, but thousands should not wait for the timer). Held
** back rows (p->defer) do not count. */
static size_t pending_index_rows(const tk_partition *p) {
  const tk_segment *g = tk_part_active(p);
  return (p->defer ? 0 : g->idx_n - g->idx_persisted) + tk_key_pending_weight(p);
}

void tk_part_note_held(tk_partition *p) {
  TK_ASSERT_HELD(&p->append_lock);
  if (!p->defer || atomic_load_explicit(&p->ckpt_due, memory_order_relaxed) || !p->nsegs ||
      !(p->rows_owed || rows_pending(tk_part_active(p))))
    return;
  atomic_store_explicit(&p->ckpt_due, 1, memory_order_relaxed);
  /* No thread: rows are held back no longer than until a roll, flush or
  ** close, as the extension's are never; write them as before instead. */
  if (tk_ckpt_kick(tk_part_store(p))) p->defer = 0;
}

int tk_part_checkpoint_idle(tk_partition *p, int64_t now) {
  if (!atomic_load_explicit(&p->ckpt_due, memory_order_relaxed)) return 0;
  for (;;) {
    if (pthread_mutex_trylock(&p->append_lock)) return 1; /* in use: not idle */
    int due = atomic_load_explicit(&p->ckpt_due, memory_order_relaxed);
    int idle = now - p->last_append_ms >= TK_PERSIST_MS;
    int rc = due && idle ? persist(p, PERSIST_ALL_CHUNK) : TAKHIN_OK;
    due = atomic_load_explicit(&p->ckpt_due, memory_order_relaxed);
    pthread_mutex_unlock(&p->append_lock);
    /* a failure is retried at the thread's next look */
    if (!due || !idle || rc) return due;
  }
}

int tk_part_write_owed(tk_partition *p) {
  takhin_store *s = tk_part_store(p);
  if (s->borrowed || s->opt.read_only) return 0; /* no thread writes the host's catalog */
  /* Only tried, as cat_lock is below: a producer holds append_lock for
  ** every append, and a thread waiting on it turns each of the producer's
  ** unlocks into a futex wake, a system call and a cross-core interrupt,
  ** about a fifth of a producer's time right after a compaction left 100
  ** segments' rows owed (BENCHMARKS.md, fix 13). Busy with rows owed: the
  ** thread looks again shortly; with none, there is nothing to look for
  ** (an owe() after this read wakes the thread again). */
  if (pthread_mutex_trylock(&p->append_lock))
    return atomic_load_explicit(&p->rows_owed, memory_order_relaxed) ? 2 : 0;
  /* The oldest sealed segment owing rows whose segment row is written (a
  ** roll's persist that failed owes that row: the producer writes both). A
  ** segment owing rows is no compaction run's candidate (tk_part_compact
  ** takes only segments with every row written, under append_lock; a
  ** failed run's are owed again once the run is over), so no run drops or
  ** replaces its rows while this chunk is written. */
  tk_segment *g = NULL;
  if (p->rows_owed && !atomic_load(&p->topic->deleted))
    for (size_t i = 0; i + 1 < p->nsegs && !g; i++) {
      tk_segment *c = p->segs[i];
      if (c->idx_persisted < c->idx_n && !c->cat_dirty && c->cat_row && !c->rows_dropped) g = c;
    }
  if (!g) {
    pthread_mutex_unlock(&p->append_lock);
    return 0;
  }
  /* cat_lock before append_lock goes: whoever removes the segment's rows
  ** (retention, a topic delete: both under append_lock) does it after this
  ** chunk, in a transaction of its own that removes the chunk too. Not
  ** waited for here: the key writer may hold it for milliseconds, and
  ** producers wait for append_lock meanwhile. */
  if (pthread_mutex_trylock(&s->cat_lock)) {
    pthread_mutex_unlock(&p->append_lock);
    return 2;
  }
  size_t from = g->idx_persisted, n = g->idx_n - from;
  if (n > TK_PERSIST_BG_CHUNK) n = TK_PERSIST_BG_CHUNK;
  const tk_index_entry *e = g->idx + from; /* a sealed segment's array is fixed */
  int64_t id = p->topic->topic_id, base = g->base_offset;
  unsigned gen = g->rows_gen;
  tk_seg_ref(g);
  pthread_mutex_unlock(&p->append_lock);
  int rc = tk_cat_begin(s);
  if (!rc) rc = tk_cat_upsert_index(s, id, p->id, base, e, n);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
#ifdef TAKHIN_TESTING
  if (rc) atomic_fetch_add(&tk_owed_chunks_failed, 1);
  if (tk_write_owed_hook) tk_write_owed_hook(p);
#endif
  pthread_mutex_lock(&p->append_lock);
  /* Settle: unless a persist wrote them meanwhile (a flush: idx_persisted
  ** moved past from), the segment left the partition, or its rows were
  ** dropped and owed again (a flush, then a failed compaction run: back
  ** at 0, which may be from, without this chunk in the catalog). */
  int here = 0;
  for (size_t i = 0; i < p->nsegs && !here; i++) here = p->segs[i] == g;
  if (!rc && here && g->idx_persisted == from && g->rows_gen == gen) g->idx_persisted = from + n;
  /* Not after a failure: nothing changed, and count_owed would wake the
  ** thread to fail again at once, in a loop for as long as the catalog
  ** refuses (a full disk). The next persist or idle look tries again. */
  if (!rc) count_owed(p);
  pthread_mutex_unlock(&p->append_lock);
  tk_seg_unref(g);
  return rc ? 0 : 1; /* a failure: the producers write them (TK_PERSIST_OWED_MS) */
}

int tk_part_new_active(tk_partition *p, int64_t base, int64_t now) {
  TK_ASSERT_HELD(&p->append_lock);
  takhin_store *s = tk_part_store(p);
  tk_segment *g = tk_seg_new(p, base, now);
  if (!g) return tk_err(TAKHIN_ENOMEM, "out of memory creating a segment");
  int fd, rc = tk_seg_fd_acquire(g, &fd); /* creates the file */
  if (rc) {
    tk_seg_unref(g);
    return rc;
  }
  tk_seg_fd_release(g);
  if (s->opt.durability == TAKHIN_DURABILITY_FSYNC && (rc = tk_sync_dir(p->dir))) {
    tk_seg_unref(g);
    return rc;
  }
  g->cat_dirty = 1;
  tk_seg_reserve_index(g, p->topic->cfg.segment_bytes); /* appends never reallocate it */
  pthread_rwlock_wrlock(&p->meta_lock);
  if (p->nsegs) {
    tk_part_active(p)->sealed = 1;
    tk_part_active(p)->cat_dirty = 1;
    tk_seg_trim_index(tk_part_active(p)); /* readers search it: under meta_lock */
  }
  rc = tk_part_push_seg(p, g);
  pthread_rwlock_unlock(&p->meta_lock);
  if (rc) tk_seg_unref(g);
  return rc;
}

int tk_part_create(tk_partition *p) {
  if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) return tk_err_sys(errno, "mkdir", p->dir);
  pthread_mutex_lock(&p->append_lock);
  tk_key_start_at(p, 0); /* a new log: every keyed record is noted from offset 0 */
  int rc = tk_part_new_active(p, 0, tk_now_ms());
  if (!rc) rc = tk_part_persist(p, 1);
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}

/* fdatasync one segment. */
static int sync_seg(tk_segment *g) {
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  if (fdatasync(fd) != 0) {
    char path[TK_PATH_MAX];
    tk_seg_path(g, path, sizeof path);
    rc = tk_err_sys(errno, "fdatasync", path);
  }
  tk_seg_fd_release(g);
  return rc;
}

/* Seal the active segment and start a new one at base: the high watermark,
** or past offsets a failed BUFFERED write lost (see drop_pending). */
static int roll(tk_partition *p, int64_t base, int64_t now) {
  TK_ASSERT_HELD(&p->append_lock);
  int rc;
  if (tk_part_store(p)->opt.durability == TAKHIN_DURABILITY_FSYNC &&
      (rc = sync_seg(tk_part_active(p))))
    return rc;
  if ((rc = tk_part_new_active(p, base, now))) return rc;
  /* The sealed row and the new row land together; the sealed segment's
  ** index rows are owed, written by the checkpoint thread (without one,
  ** by the next appends, a small chunk each); if this fails, recovery
  ** adopts the new file on the next open. */
  tk_part_persist(p, 0);
  return TAKHIN_OK;
}

/* pwrite len bytes of complete batches at the active segment's end, then
** publish them to readers. On failure the file is cut back to its old end so
** the log stays readable up to the last complete batch (ENOSPC included). */
static int write_out(tk_partition *p, const uint8_t *buf, size_t len) {
  tk_segment *g = tk_part_active(p);
  char path[TK_PATH_MAX];
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(fd, buf + done, len - done, g->size + (off_t)done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      tk_seg_path(g, path, sizeof path);
      rc = tk_err_sys(e, "write", path);
      if (ftruncate(fd, g->size) != 0) { /* the next append overwrites the tail anyway */
      }
      tk_seg_fd_release(g);
      return rc;
    }
    done += (size_t)w;
  }
  pthread_rwlock_wrlock(&p->meta_lock);
  int64_t pos = g->size;
  for (size_t off = 0; off < len && !rc;) {
    tk_batch_hdr h;
    tk_batch_parse_header(buf + off, len - off, &h); /* we encoded it: it parses */
    rc = tk_seg_note_batch(g, pos, &h);
    pos += tk_batch_total(&h);
    off += (size_t)tk_batch_total(&h);
  }
  p->next_offset = g->next_offset;
  if (p->pending_next < p->next_offset) p->pending_next = p->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
  g->synced_dirty = 1;
  tk_seg_fd_release(g);
  return rc;
}

/* pending_next is read by cursors under meta_lock; write it the same way. */
static void set_pending_next(tk_partition *p, int64_t v) {
  pthread_rwlock_wrlock(&p->meta_lock);
  p->pending_next = v;
  pthread_rwlock_unlock(&p->meta_lock);
}

/* BUFFERED mode: drop the pending batches after a write of them failed with
** cause (keeping them would wedge every later flush), and their keys.
** Records from offset unacked on were never acknowledged (the produce call
** whose flush failed is told so by its own error): their offsets go to the
** next records. Records below it were acknowledged: they are lost, and the
** application must learn it, so the loss is kept for tk_part_take_lost, and
** their offsets are never handed out again -- the log resumes at unacked in
** a new segment, rolled now if the disk allows (so that a reopen keeps the
** gap too) or else by the next append. append_lock held. */
static void drop_pending(tk_partition *p, int cause, int64_t unacked) {
  TK_ASSERT_HELD(&p->append_lock);
  int64_t from = p->next_offset;
  p->wbuf.len = 0;
  p->pending_since_ms = 0;
  tk_key_forget_from(p, from);
  if (unacked <= from) {
    set_pending_next(p, from);
    return;
  }
  char why[sizeof p->lost_msg];
  snprintf(why, sizeof why, "%s", takhin_errmsg());
  if (!p->lost_n) {
    p->lost_from = from;
    p->lost_rc = cause;
    snprintf(p->lost_msg, sizeof p->lost_msg, "%s", why);
  }
  p->lost_to = unacked;
  p->lost_n += unacked - from;
  set_pending_next(p, unacked);
  if (roll(p, unacked, tk_now_ms()) == TAKHIN_OK) {
    /* the gap is part of the log now: readers may seek to its end */
    pthread_rwlock_wrlock(&p->meta_lock);
    p->next_offset = unacked;
    pthread_rwlock_unlock(&p->meta_lock);
  }                         /* else the next append rolls: see tk_part_append */
  tk_err(cause, "%s", why); /* the caller reports the write's failure, not the roll's */
}

/* BUFFERED mode: write what is pending; records from offset unacked on are
** not acknowledged yet (see drop_pending). append_lock held. */
static int write_pending_acked(tk_partition *p, int64_t unacked) {
  TK_ASSERT_HELD(&p->append_lock);
  if (p->wbuf.len == 0) return TAKHIN_OK;
  int rc = write_out(p, p->wbuf.p, p->wbuf.len);
  if (rc) drop_pending(p, rc, unacked);
  p->wbuf.len = 0;
  p->pending_since_ms = 0;
  return rc;
}

int tk_part_write_pending(tk_partition *p) { return write_pending_acked(p, p->pending_next); }

static int take_lost(tk_partition *p) {
  if (!p->lost_n) return TAKHIN_OK;
  int rc = tk_err(TAKHIN_ELOST,
                  "%lld acknowledged records between offsets %lld and %lld of %s-%d "
                  "were lost: writing them failed (%s: %s); later records continue at offset %lld",
                  (long long)p->lost_n, (long long)p->lost_from, (long long)p->lost_to - 1,
                  p->topic->name, (int)p->id, takhin_errstr(p->lost_rc), p->lost_msg,
                  (long long)p->lost_to);
  p->lost_n = 0;
  return rc;
}

int tk_part_take_lost(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  int rc = take_lost(p);
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}

/* FSYNC mode: wait until every offset below target is on disk. One caller
** fdatasyncs for all who wait meanwhile (group commit). */
static int wait_durable(tk_partition *p, int64_t target) {
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&p->sync_lock);
  while (p->synced_next < target && !rc) {
    if (p->syncing) {
      pthread_cond_wait(&p->sync_cond, &p->sync_lock);
      continue;
    }
    p->syncing = 1;
    pthread_mutex_unlock(&p->sync_lock);
    pthread_mutex_lock(&p->append_lock);
    int64_t upto = p->next_offset;
    tk_segment *g = tk_part_active(p);
    tk_seg_ref(g);
    pthread_mutex_unlock(&p->append_lock);
    rc = sync_seg(g); /* earlier segments were synced when they were sealed */
    tk_seg_unref(g);
    pthread_mutex_lock(&p->sync_lock);
    p->syncing = 0;
    if (!rc && upto > p->synced_next) p->synced_next = upto;
    pthread_cond_broadcast(&p->sync_cond);
  }
  pthread_mutex_unlock(&p->sync_lock);
  return rc;
}

static int ensure_cctx(tk_partition *p) {
  if (p->topic->cfg.compression != TK_CODEC_ZSTD || p->cctx) return TAKHIN_OK;
  p->cctx = ZSTD_createCCtx();
  if (!p->cctx) return tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
  ZSTD_CCtx_setParameter(p->cctx, ZSTD_c_compressionLevel, 3);
  return TAKHIN_OK;
}

/* The batch of n offsets just put at wbuf[start, start + blen), with base
** offset base: roll when it does not fit the active segment (or follows a
** gap), then write it, or leave it pending (BUFFERED). append_lock held. On
** error the batch is not stored. Shared by encoded (tk_part_append) and
** as-sent (tk_part_append_raw) batches. */
static int place_batch(tk_partition *p, size_t start, size_t blen, int64_t base, int64_t n,
                       int64_t now) {
  TK_ASSERT_HELD(&p->append_lock);
  takhin_store *s = tk_part_store(p);
  const tk_topic_config *cfg = &p->topic->cfg;
  int rc = TAKHIN_OK;
  if ((int64_t)blen > cfg->max_message_bytes) {
    p->wbuf.len = start;
    return tk_err(TAKHIN_ETOOBIG,
                  "record batch of %zu bytes is larger than max_message_bytes %lld of topic \"%s\"",
                  blen, (long long)cfg->max_message_bytes, p->topic->name);
  }
  tk_segment *g = tk_part_active(p);
  int64_t seg_bytes = g->size + (int64_t)start;
  /* Nothing pending, yet the log does not end at base: a failed BUFFERED
  ** write lost the offsets in between, which are never reused. */
  int gap = start == 0 && base != g->next_offset;
  if (gap || (seg_bytes > 0 && (seg_bytes + (int64_t)blen > cfg->segment_bytes ||
                                now - g->created_ms >= cfg->segment_ms))) {
    if (start > 0) { /* the pending batches belong to the old segment */
      rc = write_out(p, p->wbuf.p, start);
      if (rc) { /* they are lost; this call's batch is not stored either */
        drop_pending(p, rc, base);
        if (p->lost_n) rc = take_lost(p);
        return rc;
      }
      memmove(p->wbuf.p, p->wbuf.p + start, blen);
      p->wbuf.len = blen;
      start = 0;
    }
    if ((rc = roll(p, base, now))) {
      p->wbuf.len = start;
      return rc;
    }
  }
  if (s->opt.durability == TAKHIN_DURABILITY_BUFFERED) {
    set_pending_next(p, base + n);
    if (!p->pending_since_ms) p->pending_since_ms = now;
    if ((int64_t)p->wbuf.len >= s->opt.flush_bytes || now - p->pending_since_ms >= s->opt.flush_ms)
      rc = write_pending_acked(p, base);
    /* This batch was among those dropped: it is not acknowledged. ELOST when
    ** acknowledged ones went with it, else the write's own error. */
    if (rc && p->lost_n) rc = take_lost(p);
    return rc;
  }
  rc = write_out(p, p->wbuf.p, blen);
  p->wbuf.len = 0;
  return rc;
}

/* After a batch is placed: its keys (records at base, base + 1, ...) into
** the key index of a compacted topic, and index rows to the catalog when
** enough are pending. append_lock held. */
static void note_appended(tk_partition *p, const takhin_record *keys, size_t nkeys, int64_t base,
                          int64_t now) {
  TK_ASSERT_HELD(&p->append_lock);
  tk_key_note(p, keys, nkeys, base);
  p->last_append_ms = now;
  /* The timer writes what is not held back: with p->defer only key rows
  ** (none in a plain topic), so a plain producer's steady state runs no
  ** SQLite at all; sealed segments' rows a roll or compaction left owed
  ** go on the checkpoint thread (or, without one, a small chunk per
  ** append). */
  size_t rows = pending_index_rows(p);
  int64_t age = now - p->last_persist_ms;
  if (p->rows_owed && !p->owed_since_ms) p->owed_since_ms = now;
  int due = rows >= TK_PERSIST_ENTRIES || (p->rows_owed && producer_pays(p, now)) ||
            (age >= TK_PERSIST_MS && (!p->defer || tk_key_unwritten(p)));
  /* The key-writer thread holds cat_lock while it writes a map (and may be
  ** preempted there on a busy machine): rather than wait for it, the
  ** producer leaves the persist to a later append, up to 4 times as many
  ** rows or as old. A catalog failure here loses nothing either: the batch
  ** is in the file and the next persist or recovery writes its index rows. */
  if (due &&
      (rows >= 4 * TK_PERSIST_ENTRIES || age >= 4 * TK_PERSIST_MS || !tk_key_writer_busy(p))) {
    tk_part_persist(p, 0);
  }
  tk_part_note_held(p);
  tk_wait_notify(p); /* the batch is readable (BUFFERED: by a flush on demand) */
}

/* The start of every append: takes append_lock (the caller releases it)
** and refuses a deleted topic. A failed BUFFERED write lost acknowledged
** records since the last call that could say so: this call says it, and
** stores nothing. */
static int append_begin(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  if (atomic_load(&p->topic->deleted))
    return tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" was deleted", p->topic->name);
  return take_lost(p);
}

int tk_part_append(tk_partition *p, const takhin_record *recs, size_t n, int64_t *first) {
  takhin_store *s = tk_part_store(p);
  const tk_topic_config *cfg = &p->topic->cfg;
  int buffered = s->opt.durability == TAKHIN_DURABILITY_BUFFERED;
  int64_t base = 0;
  int rc = append_begin(p);
  if (rc) goto out;
  if ((rc = ensure_cctx(p))) goto out;
  if (cfg->compact)
    for (size_t i = 0; i < n; i++)
      if (!recs[i].key) {
        rc = tk_err(TAKHIN_EINVAL,
                    "topic \"%s\" is compacted (cleanup_policy=%s): record %zu has "
                    "a null key, and compaction keeps records by key",
                    p->topic->name, tk_config_policy_name(cfg), i);
        goto out;
      }
  int64_t now = tk_now_ms();
  size_t start = buffered ? p->wbuf.len : 0;
  p->wbuf.len = start;
  base = p->pending_next;
  rc = tk_batch_encode(&p->wbuf, base, recs, n, now, cfg->compression, p->cctx, &p->zbuf, NULL);
  if (rc) goto out;
  if ((rc = place_batch(p, start, p->wbuf.len - start, base, (int64_t)n, now))) goto out;
  if (first) *first = base;
  note_appended(p, recs, n, base, now);
out:
  pthread_mutex_unlock(&p->append_lock);
  if (!rc && s->opt.durability == TAKHIN_DURABILITY_FSYNC) rc = wait_durable(p, base + (int64_t)n);
  return rc;
}

int tk_part_flush(tk_partition *p, int do_persist, int sync) {
  pthread_mutex_lock(&p->append_lock);
  /* A flush writes every key row: first the map the key-writer thread has
  ** (waited for without append_lock, which producers need meanwhile). */
  while (do_persist && tk_key_writing(p)) {
    pthread_mutex_unlock(&p->append_lock);
    tk_key_wait_written(p);
    pthread_mutex_lock(&p->append_lock);
  }
  int rc = tk_part_write_pending(p);
  if (!rc && sync) {
    for (size_t i = 0; i < p->nsegs && !rc; i++)
      if (p->segs[i]->synced_dirty && !(rc = sync_seg(p->segs[i]))) p->segs[i]->synced_dirty = 0;
  }
  if (!rc && do_persist) rc = tk_part_persist(p, 1);
  tk_part_note_held(p); /* BUFFERED: batches it wrote are held-back rows now */
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}

tk_segment *tk_part_locate(tk_partition *p, int64_t offset, int64_t *pos, int64_t *end,
                           int64_t *hwm, int64_t *seg_next, int *sealed, int64_t *entry_offset) {
  tk_segment *g = NULL;
  pthread_rwlock_rdlock(&p->meta_lock);
  *hwm = p->next_offset;
  if (offset < p->next_offset && p->nsegs) {
    size_t lo = 0, hi = p->nsegs; /* last segment with base <= offset */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (p->segs[mid]->base_offset <= offset) lo = mid + 1;
      else hi = mid;
    }
    size_t i = lo ? lo - 1 : 0;
    while (i < p->nsegs && p->segs[i]->next_offset <= offset) i++; /* compacted away */
    if (i < p->nsegs) {
      g = p->segs[i];
      *entry_offset = -1;
      *pos = offset <= g->base_offset ? 0 : tk_seg_index_lookup(g, offset, entry_offset);
      *end = g->size;
      *seg_next = g->next_offset;
      *sealed = g->sealed;
      tk_seg_ref(g);
    }
  }
  pthread_rwlock_unlock(&p->meta_lock);
  return g;
}

/* ---- what other modules ask of the partition --------------------------- */

/* The high watermark is pending_next everywhere: the offset the next record
** will get (takhin_partition_info.high_watermark). In OS and FSYNC mode it
** equals next_offset (a record is written before its append returns); in
** BUFFERED mode it also counts acknowledged records still in memory, which
** a reader that asks for them writes out first (cursor.c, rawio.c), so a
** group may commit up to it and takhin_topic_balance counts them. */
void tk_part_offsets(tk_partition *p, int64_t *log_start, int64_t *hwm, int64_t *written) {
  pthread_rwlock_rdlock(&p->meta_lock);
  /* the one high-watermark rule above holds because of this */
  tk_assert(tk_part_store(p)->opt.durability == TAKHIN_DURABILITY_BUFFERED ||
            p->pending_next == p->next_offset);
  if (log_start) *log_start = p->log_start;
  if (hwm) *hwm = p->pending_next;
  if (written) *written = p->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
}

void tk_part_info(tk_partition *p, takhin_partition_info *out) {
  pthread_rwlock_rdlock(&p->meta_lock);
  out->log_start_offset = p->log_start;
  out->high_watermark = p->pending_next;
  out->size_bytes = 0;
  for (size_t i = 0; i < p->nsegs; i++) out->size_bytes += p->segs[i]->size;
  out->segments = (int64_t)p->nsegs;
  pthread_rwlock_unlock(&p->meta_lock);
}

int tk_part_segments(tk_partition *p, takhin_segment_info **out, size_t *n) {
  int rc = TAKHIN_OK;
  pthread_rwlock_rdlock(&p->meta_lock);
  takhin_segment_info *v = malloc((p->nsegs ? p->nsegs : 1) * sizeof *v);
  if (!v) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory listing segments");
  } else {
    for (size_t i = 0; i < p->nsegs; i++) {
      tk_segment *g = p->segs[i];
      v[i] = (takhin_segment_info){g->base_offset, g->next_offset, g->size, g->max_ts, g->sealed};
    }
    *out = v;
    *n = p->nsegs;
  }
  pthread_rwlock_unlock(&p->meta_lock);
  return rc;
}

void tk_part_swap_segments(tk_partition *p, tk_segment **old, tk_segment **fresh, size_t n) {
  takhin_store *s = tk_part_store(p);
  pthread_mutex_lock(&p->append_lock);
  pthread_rwlock_wrlock(&p->meta_lock);
  int owed = 0;
  for (size_t i = 0; i < n; i++) {
    if (!fresh[i]) continue;
    for (size_t k = 0; k < p->nsegs; k++)
      if (p->segs[k] == old[i]) {
        p->segs[k] = fresh[i];
        /* the run's step 3 wrote its segment row: tk_part_write_owed
        ** takes only a segment whose row the catalog has */
        fresh[i]->cat_dirty = 0;
        fresh[i]->cat_row = 1;
        /* Its index rows are owed, as a roll leaves a sealed segment's
        ** (compaction.c wrote its segment row only; all of them on the
        ** extension's store) */
        fresh[i]->idx_persisted = s->borrowed ? fresh[i]->idx_n : 0;
        owed |= fresh[i]->idx_persisted < fresh[i]->idx_n;
        pthread_mutex_lock(&s->fd_lock);
        old[i]->unlinked = 1; /* its path now names the new file */
        pthread_mutex_unlock(&s->fd_lock);
        tk_seg_unref(old[i]); /* the array's reference */
        /* ... and the caller's, most likely the last: released off this thread */
        tk_topic_ref(p->topic);
        tk_reap(s, p->topic, old[i]);
        old[i] = NULL;
        fresh[i] = NULL;
        break;
      }
  }
  pthread_rwlock_unlock(&p->meta_lock);
  /* the checkpoint thread is told when the run is over (tk_part_owed_after_run) */
  if (owed) p->rows_owed = 1;
  pthread_mutex_unlock(&p->append_lock);
}

void tk_part_owed_after_run(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  if (p->rows_owed) {
    owe(p);               /* the checkpoint thread writes them now */
    tk_part_note_held(p); /* ... and the held-back ones when idle */
  }
  pthread_mutex_unlock(&p->append_lock);
}

void tk_part_owe_rows(tk_partition *p, tk_segment **segs, size_t n) {
  pthread_mutex_lock(&p->append_lock);
  int owed = 0;
  for (size_t i = 0; i < n; i++) {
    tk_segment *g = segs[i];
    if (!g || !g->rows_dropped) continue;
    g->rows_dropped = 0;
    for (size_t k = 0; k < p->nsegs; k++)
      if (p->segs[k] == g) {
        g->idx_persisted = 0;
        g->rows_gen++;
        owed |= g->idx_n > 0;
        break;
      }
  }
  if (owed) {
    owe(p);
    tk_part_note_held(p);
  }
  pthread_mutex_unlock(&p->append_lock);
}

void tk_part_retire_files(tk_partition *p) {
  takhin_store *s = tk_part_store(p);
  pthread_rwlock_rdlock(&p->meta_lock);
  pthread_mutex_lock(&s->fd_lock);
  for (size_t k = 0; k < p->nsegs; k++) p->segs[k]->unlinked = 1; /* never reopen */
  pthread_mutex_unlock(&s->fd_lock);
  pthread_rwlock_unlock(&p->meta_lock);
}

/* ---- removing old segments (retention.c, DeleteRecords) --------------- */

int tk_part_drop_prefix(tk_partition *p, size_t ndrop, int64_t new_start,
                        takhin_retention_result *out) {
  TK_ASSERT_HELD(&p->append_lock);
  takhin_store *s = tk_part_store(p);
  tk_topic *t = p->topic;
  int rc;
  /* The metadata file first (topic_meta.c): it holds the intent recovery
  ** trusts. Not fatal: retention must run on a full disk, and an older log
  ** start there only brings records back, never loses any. */
  tk_meta m;
  tk_meta_of(p, &m);
  m.log_start = new_start;
  tk_meta_write(p->dir, &m);
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  for (size_t i = 0; !rc && i < ndrop; i++)
    rc = tk_cat_delete_segment(s, t->topic_id, p->id, p->segs[i]->base_offset);
  if (!rc) rc = tk_cat_set_log_start(s, t->topic_id, p->id, new_start);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) {
    m.log_start = p->log_start; /* the call fails: the file must not move it either */
    tk_meta_write(p->dir, &m);
    return rc;
  }
  tk_segment **gone = NULL;
  if (ndrop && !(gone = malloc(ndrop * sizeof *gone))) ndrop = 0; /* files stay until next open */
  pthread_rwlock_wrlock(&p->meta_lock);
  if (ndrop) {
    memcpy(gone, p->segs, ndrop * sizeof *gone);
    memmove(p->segs, p->segs + ndrop, (p->nsegs - ndrop) * sizeof *p->segs);
    p->nsegs -= ndrop;
  }
  p->log_start = new_start;
  pthread_rwlock_unlock(&p->meta_lock);
  for (size_t i = 0; i < ndrop; i++) {
    tk_segment *g = gone[i];
    char path[TK_PATH_MAX];
    tk_seg_path(g, path, sizeof path);
    if (out) {
      out->segments_deleted++;
      out->bytes_deleted += g->size;
    }
    pthread_mutex_lock(&s->fd_lock);
    g->unlinked = 1; /* readers holding it keep their open handle */
    pthread_mutex_unlock(&s->fd_lock);
    unlink(path);
    tk_topic_ref(t);
    tk_reap(s, t, g); /* its last close frees the file's pages: not under append_lock */
  }
  free(gone);
  return TAKHIN_OK;
}

/* ---- undo (the SQL extension's all-or-nothing COMMIT) ------------------ */

void tk_part_mark_get(tk_partition *p, tk_part_mark *m) {
  pthread_mutex_lock(&p->append_lock);
  tk_segment *g = tk_part_active(p);
  m->nsegs = p->nsegs;
  m->size = g->size;
  m->next_offset = g->next_offset;
  m->max_ts = g->max_ts;
  m->last_idx_pos = g->last_idx_pos;
  m->idx_n = g->idx_n;
  if (g->idx_n) {
    m->last_entry_max_ts = g->idx[g->idx_n - 1].max_ts;
    m->last_entry_run_max = g->idx[g->idx_n - 1].run_max;
  }
  m->key_upto = p->key_upto;
  m->persists = p->persists;
  pthread_mutex_unlock(&p->append_lock);
}

int tk_part_undo(tk_partition *p, const tk_part_mark *m) {
  takhin_store *s = tk_part_store(p);
  pthread_mutex_lock(&p->append_lock);
  int rc = TAKHIN_OK;
  if (p->nsegs != m->nsegs || p->wbuf.len) {
    rc = tk_err(TAKHIN_EINVAL, "cannot take back the append to %s-%d: the segment rolled",
                p->topic->name, (int)p->id);
    goto out;
  }
  tk_segment *g = tk_part_active(p);
  int fd;
  if ((rc = tk_seg_fd_acquire(g, &fd))) goto out;
  /* Zero the taken-back bytes rather than truncate: readers (in this
  ** process or a read-only one) may map the file, and a truncated page
  ** would fault under them. Zeros never parse as a batch: the next append
  ** overwrites them, or recovery cuts them after a crash. */
  static const uint8_t zeros[65536];
  for (int64_t at = m->size; at < g->size && !rc;) {
    size_t n =
        (size_t)(g->size - at < (int64_t)sizeof zeros ? g->size - at : (int64_t)sizeof zeros);
    ssize_t w = pwrite(fd, zeros, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(g, path, sizeof path);
      rc = tk_err_sys(errno, "write", path);
    } else {
      at += w;
    }
  }
  tk_seg_fd_release(g);
  if (rc) goto out;
  pthread_rwlock_wrlock(&p->meta_lock);
  g->size = m->size;
  g->next_offset = m->next_offset;
  g->max_ts = m->max_ts;
  g->last_idx_pos = m->last_idx_pos;
  g->idx_n = m->idx_n;
  if (m->idx_n) { /* an append changes only the newest entry's timestamps */
    g->idx[m->idx_n - 1].max_ts = m->last_entry_max_ts;
    g->idx[m->idx_n - 1].run_max = m->last_entry_run_max;
  }
  if (g->idx_persisted > (m->idx_n ? m->idx_n - 1 : 0))
    g->idx_persisted = m->idx_n ? m->idx_n - 1 : 0;
  g->cat_dirty = 1;
  p->next_offset = p->pending_next = m->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
  /* A persist ran inside the transaction being rolled back: its rows go
  ** with it. Write the active segment's index rows again (and see
  ** tk_key_undo for the key rows). */
  if (p->persists != m->persists) g->idx_persisted = 0;
  tk_key_undo(p, m->next_offset, m->key_upto, p->persists != m->persists);
  pthread_mutex_lock(&s->cat_lock);
  tk_cat_delete_index_from(s, p->topic->topic_id, p->id, g->base_offset, m->size);
  pthread_mutex_unlock(&s->cat_lock);
out:
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}

/* ---- appending a batch encoded by someone else (the Kafka server) ------ */

/* Append one complete, already validated RecordBatch v2 as it was sent: only
** baseOffset (and partitionLeaderEpoch, which a leader stamps) are set, both
** outside the CRC, so the bytes on disk are the producer's. n is the number
** of offsets it takes (lastOffsetDelta + 1); keys (nkeys entries, keys only)
** feed the key index of a compacted topic. Mirrors tk_part_append, with the
** encoder replaced by a copy. */
int tk_part_append_raw(tk_partition *p, const uint8_t *batch, size_t len, int64_t n,
                       const takhin_record *keys, size_t nkeys, int64_t *first) {
  takhin_store *s = tk_part_store(p);
  int buffered = s->opt.durability == TAKHIN_DURABILITY_BUFFERED;
  int64_t base = 0;
  int rc = append_begin(p);
  if (rc) goto out;
  int64_t now = tk_now_ms();
  size_t start = buffered ? p->wbuf.len : 0;
  p->wbuf.len = start;
  if (tk_buf_reserve(&p->wbuf, len)) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory appending a batch");
    goto out;
  }
  base = p->pending_next;
  uint8_t *b = p->wbuf.p + start;
  memcpy(b, batch, len);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)base >> (56 - 8 * i));
  memset(b + 12, 0, 4); /* partitionLeaderEpoch: takhin is leader epoch 0 */
  p->wbuf.len = start + len;
  if ((rc = place_batch(p, start, len, base, n, now))) goto out;
  if (first) *first = base;
  note_appended(p, keys, nkeys, base, now);
out:
  pthread_mutex_unlock(&p->append_lock);
  if (!rc && s->opt.durability == TAKHIN_DURABILITY_FSYNC) rc = wait_durable(p, base + n);
  return rc;
}
