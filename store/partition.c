/*
** partition.c -- one partition's log: appending batches, rolling segments,
** writing the index to the catalog in batches, group commit, and the
** recovery that reconciles catalog rows with the segment files on open.
**
** Append path (append_lock held): encode the records into the partition's
** reusable buffer (no allocation in steady state), roll if the active
** segment is full or old, pwrite() the batch at the segment's end (one
** syscall per produce call, or per flush in BUFFERED mode), then publish the
** new end and index entries under meta_lock. Index rows reach SQLite every
** TK_PERSIST_ENTRIES entries or TK_PERSIST_MS, never once per message; a crash
** in between only costs recovery a short scan.
**
** Recovery trusts the files: see load_segment().
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static takhin_store *part_store(const tk_partition *p) { return p->topic->store; }

static tk_segment *active_seg(const tk_partition *p) { return p->segs[p->nsegs - 1]; }

tk_partition *tk_part_new(tk_topic *t, int32_t id) {
  tk_partition *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->topic = t;
  p->id = id;
  p->seen_version = -1;
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
  tk_buf_free(&p->keybuf);
  free(p->keys);
  free(p->kset);
  pthread_mutex_destroy(&p->maint_lock);
  ZSTD_freeCCtx(p->cctx);
  p->cctx = NULL;
  pthread_mutex_destroy(&p->append_lock);
  pthread_rwlock_destroy(&p->meta_lock);
  pthread_mutex_destroy(&p->sync_lock);
  pthread_cond_destroy(&p->sync_cond);
  free(p);
}

/* Append g to the segment array. Caller holds meta_lock for writing or owns
** the partition exclusively. */
static int push_seg(tk_partition *p, tk_segment *g) {
  if (p->nsegs == p->segs_cap) {
    size_t cap = p->segs_cap ? p->segs_cap * 2 : 8;
    tk_segment **ns = realloc(p->segs, cap * sizeof *ns);
    if (!ns) return tk_err(TAKHIN_ENOMEM, "out of memory adding a segment");
    p->segs = ns;
    p->segs_cap = cap;
  }
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

static uint64_t key_hash(const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
  return h;
}

/* Forget the pending keys of records at offset `from` and later: those
** records were never written or were taken back, and their offsets will be
** given to other records. append_lock held. */
static void forget_keys_from(tk_partition *p, int64_t from) {
  size_t n = p->nkeys;
  while (n && p->keys[n - 1].offset >= from) n--;
  p->nkeys = n;
  p->keybuf.len = n ? p->keys[n - 1].key_at + p->keys[n - 1].key_len : 0;
}

/* Key rows for pending keys [0, nk): only the newest record of each key
** is written (an older one in the same flush would be overwritten by it at
** once), so a key that repeats within a flush costs one row. The probe
** table is the partition's, reused: no allocation in steady state.
** cat_lock held, inside the persist transaction. */
static int write_latest_keys(tk_partition *p, size_t nk) {
  takhin_store *s = part_store(p);
  if (nk == 0) return TAKHIN_OK;
  size_t cap = 16;
  while (cap < nk * 2) cap *= 2;
  if (p->kset_cap < cap) {
    uint32_t *ns = realloc(p->kset, cap * sizeof *ns);
    if (!ns) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
    p->kset = ns;
    p->kset_cap = cap;
  }
  memset(p->kset, 0xff, cap * sizeof *p->kset);
  int rc = TAKHIN_OK;
  for (size_t i = nk; i-- > 0 && !rc;) { /* newest first */
    const tk_key_pending *k = &p->keys[i];
    const uint8_t *kb = p->keybuf.p + k->key_at;
    size_t h = (size_t)key_hash(kb, k->key_len) & (cap - 1);
    int seen = 0;
    for (; p->kset[h] != UINT32_MAX; h = (h + 1) & (cap - 1)) {
      const tk_key_pending *o = &p->keys[p->kset[h]];
      if (o->key_len == k->key_len && !memcmp(p->keybuf.p + o->key_at, kb, k->key_len)) {
        seen = 1;
        break;
      }
    }
    if (seen) continue;
    p->kset[h] = (uint32_t)i;
    rc = tk_key_write(s, p->topic->topic_id, p->id, kb, k->key_len, k->offset, k->tombstone);
  }
  return rc;
}

/* Write every segment row, index entry, log start and key row that changed
** since the last call, in one catalog transaction. append_lock held: only
** appenders change segment state, so it can be read without meta_lock. */
static int persist(tk_partition *p) {
  takhin_store *s = part_store(p);
  tk_topic *t = p->topic;
  int rc;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  for (size_t i = 0; !rc && i < p->nsegs; i++) {
    tk_segment *g = p->segs[i];
    if (!g->cat_dirty && g->idx_persisted == g->idx_n) continue;
    rc = tk_cat_upsert_segment(s, t->topic_id, p->id, g);
    for (size_t k = g->idx_persisted; !rc && k < g->idx_n; k++)
      rc = tk_cat_upsert_index(s, t->topic_id, p->id, g->base_offset, &g->idx[k]);
  }
  if (!rc && p->log_start_dirty) rc = tk_cat_set_log_start(s, t->topic_id, p->id, p->log_start);
  /* Key rows only for records already in the file: a row for a record a
  ** crash could still take back would make compaction drop the key's real
  ** latest record. */
  size_t nk = 0;
  while (nk < p->nkeys && p->keys[nk].offset < p->next_offset) nk++;
  rc = rc ? rc : write_latest_keys(p, nk);
  int64_t key_upto = nk < p->nkeys ? p->keys[nk].offset : p->next_offset;
  int move_upto = t->cfg.compact && p->keys_tracked && key_upto > p->key_upto;
  if (!rc && move_upto) rc = tk_key_set_upto(s, t->topic_id, p->id, key_upto);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  if (!rc && nk) { /* drop the written ones; what is left is still unwritten */
    memmove(p->keys, p->keys + nk, (p->nkeys - nk) * sizeof *p->keys);
    p->nkeys -= nk;
    if (p->nkeys == 0) p->keybuf.len = 0;
  }
  if (!rc && move_upto) p->key_upto = key_upto;
  if (!rc) {
    for (size_t i = 0; i < p->nsegs; i++) {
      p->segs[i]->cat_dirty = 0;
      p->segs[i]->idx_persisted = p->segs[i]->idx_n;
    }
    p->log_start_dirty = 0;
    p->last_persist_ms = tk_now_ms();
    p->persists++;
  }
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

/* Catalog rows waiting: index entries, plus key rows weighted lightly (a
** key row is cheap, but thousands should not wait for the timer). */
static size_t pending_index_rows(const tk_partition *p) {
  const tk_segment *g = active_seg(p);
  return g->idx_n - g->idx_persisted + p->nkeys / 64;
}

/* Remember the keys of records [base, base + n) for the key index. */
static int note_keys(tk_partition *p, const takhin_record *recs, size_t n, int64_t base) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += recs[i].key_len;
  if (p->nkeys + n > p->keys_cap) {
    size_t cap = p->keys_cap ? p->keys_cap : 256;
    while (cap < p->nkeys + n) cap *= 2;
    tk_key_pending *nk = realloc(p->keys, cap * sizeof *nk);
    if (!nk) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
    p->keys = nk;
    p->keys_cap = cap;
  }
  if (tk_buf_reserve(&p->keybuf, bytes)) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  for (size_t i = 0; i < n; i++) {
    tk_key_pending *k = &p->keys[p->nkeys++];
    k->offset = base + (int64_t)i;
    k->key_at = p->keybuf.len;
    k->key_len = recs[i].key_len;
    k->tombstone = recs[i].value == NULL;
    memcpy(p->keybuf.p + p->keybuf.len, recs[i].key, recs[i].key_len);
    p->keybuf.len += recs[i].key_len;
  }
  return TAKHIN_OK;
}

/* Create the file of a new segment starting at base and make it active. */
static int new_active_segment(tk_partition *p, int64_t base, int64_t now) {
  takhin_store *s = part_store(p);
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
  pthread_rwlock_wrlock(&p->meta_lock);
  if (p->nsegs) {
    active_seg(p)->sealed = 1;
    active_seg(p)->cat_dirty = 1;
  }
  rc = push_seg(p, g);
  pthread_rwlock_unlock(&p->meta_lock);
  if (rc) tk_seg_unref(g);
  return rc;
}

int tk_part_create(tk_partition *p) {
  if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) return tk_err_sys(errno, "mkdir", p->dir);
  pthread_mutex_lock(&p->append_lock);
  p->keys_tracked = 1; /* a new log: every keyed record is noted from offset 0 */
  int rc = new_active_segment(p, 0, tk_now_ms());
  if (!rc) rc = persist(p);
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
  int rc;
  if (part_store(p)->opt.durability == TAKHIN_DURABILITY_FSYNC && (rc = sync_seg(active_seg(p))))
    return rc;
  if ((rc = new_active_segment(p, base, now))) return rc;
  /* The sealed row and the new row land together; if this fails, recovery
  ** adopts the new file on the next open. */
  persist(p);
  return TAKHIN_OK;
}

/* pwrite len bytes of complete batches at the active segment's end, then
** publish them to readers. On failure the file is cut back to its old end so
** the log stays readable up to the last complete batch (ENOSPC included). */
static int write_out(tk_partition *p, const uint8_t *buf, size_t len) {
  tk_segment *g = active_seg(p);
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
      if (ftruncate(fd, g->size) != 0) { /* the next append overwrites the tail anyway */ }
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
  int64_t from = p->next_offset;
  p->wbuf.len = 0;
  p->pending_since_ms = 0;
  forget_keys_from(p, from);
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
  } /* else the next append rolls: see tk_part_append */
  tk_err(cause, "%s", why); /* the caller reports the write's failure, not the roll's */
}

/* BUFFERED mode: write what is pending; records from offset unacked on are
** not acknowledged yet (see drop_pending). append_lock held. */
static int write_pending_acked(tk_partition *p, int64_t unacked) {
  if (p->wbuf.len == 0) return TAKHIN_OK;
  int rc = write_out(p, p->wbuf.p, p->wbuf.len);
  if (rc) drop_pending(p, rc, unacked);
  p->wbuf.len = 0;
  p->pending_since_ms = 0;
  return rc;
}

static int write_pending(tk_partition *p) { return write_pending_acked(p, p->pending_next); }

static int take_lost(tk_partition *p) {
  if (!p->lost_n) return TAKHIN_OK;
  int rc = tk_err(TAKHIN_ELOST, "%lld acknowledged records between offsets %lld and %lld of %s-%d "
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
    tk_segment *g = active_seg(p);
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
static int place_batch(tk_partition *p, size_t start, size_t blen, int64_t base, int64_t n, int64_t now) {
  takhin_store *s = part_store(p);
  const tk_topic_config *cfg = &p->topic->cfg;
  int rc = TAKHIN_OK;
  if ((int64_t)blen > cfg->max_message_bytes) {
    p->wbuf.len = start;
    return tk_err(TAKHIN_ETOOBIG, "record batch of %zu bytes is larger than max_message_bytes %lld of topic \"%s\"",
                  blen, (long long)cfg->max_message_bytes, p->topic->name);
  }
  tk_segment *g = active_seg(p);
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
static void note_appended(tk_partition *p, const takhin_record *keys, size_t nkeys, int64_t base, int64_t now) {
  /* On failure the key index no longer covers the log: key_upto stops (and
  ** compaction with it) until the next open rebuilds the index from the log. */
  if (p->topic->cfg.compact && nkeys && note_keys(p, keys, nkeys, base)) p->keys_tracked = 0;
  if (pending_index_rows(p) >= TK_PERSIST_ENTRIES || now - p->last_persist_ms >= TK_PERSIST_MS) {
    /* A catalog failure here loses nothing: the batch is in the file and the
    ** next persist or recovery writes its index rows. */
    persist(p);
  }
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
  takhin_store *s = part_store(p);
  const tk_topic_config *cfg = &p->topic->cfg;
  int buffered = s->opt.durability == TAKHIN_DURABILITY_BUFFERED;
  int64_t base = 0;
  int rc = append_begin(p);
  if (rc) goto out;
  if ((rc = ensure_cctx(p))) goto out;
  if (cfg->compact)
    for (size_t i = 0; i < n; i++)
      if (!recs[i].key) {
        rc = tk_err(TAKHIN_EINVAL, "topic \"%s\" is compacted (cleanup_policy=%s): record %zu has "
                    "a null key, and compaction keeps records by key", p->topic->name,
                    tk_config_policy_name(cfg), i);
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
  int rc = write_pending(p);
  if (!rc && sync) {
    for (size_t i = 0; i < p->nsegs && !rc; i++)
      if (p->segs[i]->synced_dirty && !(rc = sync_seg(p->segs[i]))) p->segs[i]->synced_dirty = 0;
  }
  if (!rc && do_persist) rc = persist(p);
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

/* ---- recovery --------------------------------------------------------- */

static int parse_segment_name(const char *name, int64_t *base) {
  size_t n = strlen(name);
  if (n != 24 || strcmp(name + 20, ".log")) return 0;
  int64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    if (v > (INT64_MAX - 9) / 10) return 0;
    v = v * 10 + (name[i] - '0');
  }
  *base = v;
  return 1;
}

/* Base offsets of the segment files present (sorted), and tidy away files a
** crashed operation of ours left behind (*.tmp, *.cleaned). */
static int list_segment_files(tk_partition *p, int64_t **out, size_t *n, takhin_recovery_info *rec) {
  takhin_store *s = part_store(p);
  DIR *d = opendir(p->dir);
  *out = NULL;
  *n = 0;
  if (!d) {
    if (errno == ENOENT && !s->opt.read_only) {
      if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) return tk_err_sys(errno, "mkdir", p->dir);
      return TAKHIN_OK;
    }
    return errno == ENOENT ? TAKHIN_OK : tk_err_sys(errno, "open directory", p->dir);
  }
  int64_t *v = NULL;
  size_t cnt = 0, cap = 0;
  struct dirent *e;
  int rc = TAKHIN_OK;
  while ((e = readdir(d))) {
    int64_t base;
    size_t len = strlen(e->d_name);
    if (parse_segment_name(e->d_name, &base)) {
      if (cnt == cap) {
        cap = cap ? cap * 2 : 16;
        int64_t *nv = realloc(v, cap * sizeof *nv);
        if (!nv) { rc = tk_err(TAKHIN_ENOMEM, "out of memory listing %s", p->dir); break; }
        v = nv;
      }
      v[cnt++] = base;
    } else if (!s->opt.read_only && ((len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) ||
                                      (len > 8 && !strcmp(e->d_name + len - 8, ".cleaned")))) {
      /* compaction output no swap row vouches for: an unfinished run */
      char path[TK_PATH_MAX];
      snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name);
      if (unlink(path) == 0) rec->files_removed++;
    }
  }
  closedir(d);
  if (rc) { free(v); return rc; }
  for (size_t i = 1; i < cnt; i++) /* insertion sort: directories are small and mostly sorted */
    for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
      int64_t x = v[j]; v[j] = v[j - 1]; v[j - 1] = x;
    }
  *out = v;
  *n = cnt;
  return TAKHIN_OK;
}

static int has_base(const int64_t *v, size_t n, int64_t base) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] == base) return 1;
    if (v[mid] < base) lo = mid + 1; else hi = mid;
  }
  return 0;
}

/* Keep the longest prefix of catalog index entries that is plausible for a
** segment starting at base with at most limit bytes; a hand-edited or stale
** row must not send a reader into the middle of a batch. */
static size_t sane_index_prefix(const tk_index_entry *e, size_t n, int64_t base, int64_t limit) {
  size_t k = 0;
  for (; k < n; k++) {
    if (e[k].position < 0 || e[k].position >= limit || e[k].offset < base) break;
    if (k == 0 && e[k].position != 0) break;
    if (k > 0 && (e[k].position <= e[k - 1].position || e[k].offset <= e[k - 1].offset)) break;
  }
  return k;
}

/* Rebuild one segment's state from its catalog row and index rows and its
** file: walk the indexed zone by headers from the last index entry, then
** validate the unindexed tail batch by batch and truncate (writer only) a
** torn or corrupt tail. A file shorter than the catalog says was cut behind
** our back: everything from the last index entry inside it is revalidated. */
static int load_segment(tk_partition *p, tk_segment *g, const tk_seg_row *row, int64_t file_size,
                        takhin_recovery_info *rec) {
  takhin_store *s = part_store(p);
  tk_index_entry *e = NULL;
  size_t n = 0;
  int rc = TAKHIN_OK;
  int row_sane = row && row->size >= 0 && row->next >= g->base_offset;
  int64_t trusted = row_sane && row->size <= file_size ? row->size : 0;
  if (row) {
    rc = tk_cat_index(s, p->topic->topic_id, p->id, g->base_offset, &e, &n);
    if (rc) return rc;
  }
  size_t keep = sane_index_prefix(e, n, g->base_offset, row_sane && row->size < file_size ? row->size : file_size);
  /* Resume at the last kept entry: its stretch is re-walked to recompute it. */
  size_t resume = keep ? keep - 1 : 0;
  g->idx = e;
  g->idx_cap = n;
  g->idx_n = resume;
  g->idx_persisted = resume;
  for (size_t k = 0; k < resume; k++) e[k].run_max = k ? (e[k].max_ts > e[k - 1].run_max ? e[k].max_ts : e[k - 1].run_max) : e[k].max_ts;
  int64_t pos = keep ? e[resume].position : 0;
  g->size = pos;
  g->next_offset = keep ? e[resume].offset : g->base_offset;
  g->max_ts = resume ? e[resume - 1].run_max : -1;
  /* pos is where entry `resume` stood: the walk must re-create it there even
  ** when it lies closer than TK_INDEX_INTERVAL to the previous entry. */
  g->last_idx_pos = INT64_MIN / 2;
  tk_scan_result sr;
  /* Zone 1 must end where the catalog row says the segment ends: the
  ** catalog's next offset pins the last batch's lastOffsetDelta. */
  rc = tk_seg_scan_indexed(g, pos, trusted, trusted ? row->next : -1, &sr);
  if (rc) return rc;
  if (sr.damaged) {
    /* Kept in place: its offsets read as ECORRUPT, the ones around it
    ** as they were. Its timestamps are unknown; the catalog's stand. */
    if (row->max_ts > g->max_ts) g->max_ts = row->max_ts;
    if (rec->batches_damaged == 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(g, path, sizeof path);
      snprintf(rec->first_damage, sizeof rec->first_damage,
               "%s-%d/%s: damaged batch at byte %lld (offsets %lld-%lld): %s", p->topic->name, (int)p->id,
               strrchr(path, '/') + 1, (long long)sr.damaged_pos, (long long)sr.damaged_lo,
               (long long)sr.damaged_hi, sr.damaged_why);
    }
    rec->batches_damaged += sr.damaged;
  }
  rec->batches_recovered += sr.recovered;
  if (sr.good_end < sr.file_size && !s->opt.read_only) {
    int fd;
    if ((rc = tk_seg_fd_acquire(g, &fd))) return rc;
    if (ftruncate(fd, sr.good_end) != 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(g, path, sizeof path);
      rc = tk_err_sys(errno, "truncate", path);
    }
    tk_seg_fd_release(g);
    if (rc) return rc;
    rec->bytes_truncated += sr.file_size - sr.good_end;
    rec->segments_truncated++;
    g->cat_dirty = 1;
  }
  if (!row || g->size != row->size || g->next_offset != row->next || g->max_ts != row->max_ts)
    g->cat_dirty = 1;
  if (row && !s->opt.read_only && g->idx_n < n) {
    /* Catalog rows past what the file now holds would mislead a later open. */
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_index_from(s, p->topic->topic_id, p->id, g->base_offset,
                                  g->idx_n ? g->idx[g->idx_n - 1].position + 1 : 0);
    pthread_mutex_unlock(&s->cat_lock);
    g->idx_persisted = g->idx_n ? g->idx_n - 1 : 0;
  }
  return rc;
}

/* A catalog row whose segment file is gone (deleted by hand): report it in
** rec and, when it continues the log (lost_end not NULL), move *lost_end
** and *log_end to the end of its offsets -- if the row is plausible: a
** record takes at least a byte, so offsets never outnumber bytes, and a
** hand-edited next_offset cannot fling the log forward. */
static void note_missing(const tk_partition *p, const tk_seg_row *r, takhin_recovery_info *rec,
                         int64_t *lost_end, int64_t *log_end) {
  rec->segments_missing++;
  int plausible = r->next >= r->base && r->size >= 0 && r->next - r->base <= r->size;
  if (plausible) rec->offsets_lost += r->next - r->base;
  if (plausible && lost_end && r->next > *lost_end) *lost_end = *log_end = r->next;
  size_t used = strlen(rec->message);
  if (used + 1 < sizeof rec->message)
    snprintf(rec->message + used, sizeof rec->message - used, "%s%s-%d: segment %020lld.log is missing: %s%lld-%lld%s",
             used ? "; " : "", p->topic->name, (int)p->id, (long long)r->base,
             plausible ? "offsets " : "its catalog row is implausible (offsets ",
             (long long)r->base, (long long)r->next - 1, plausible ? " are lost" : ")");
}

static int64_t file_size_of(const tk_partition *p, int64_t base) {
  char path[TK_PATH_MAX];
  struct stat st;
  snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)base);
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int load_fresh(tk_partition *p, const tk_seg_row *r, int sealed, tk_segment **out);

/* Read-only handles: whether the catalog's row for r->base still says what r
** says (a compaction commits its rows, then renames its files). */
static int row_changed(tk_partition *p, const tk_seg_row *r) {
  takhin_store *s = part_store(p);
  tk_seg_row *rows = NULL;
  size_t n = 0;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_segments(s, p->topic->topic_id, p->id, r->base, &rows, &n);
  pthread_mutex_unlock(&s->cat_lock);
  int changed = !rc && (!n || rows[0].base != r->base || rows[0].size != r->size ||
                        rows[0].next != r->next || rows[0].records != r->records);
  free(rows);
  return changed;
}

/* Read-only handles: a compaction's new file for segment g waits beside
** its .log (committed, not renamed yet), or g's path names another file
** than the one g was loaded from (renamed since). */
static int swap_pending(tk_segment *g) {
  char path[TK_PATH_MAX + 16];
  struct stat st;
  tk_seg_path(g, path, sizeof path);
  strcat(path, ".cleaned");
  return stat(path, &st) == 0 || tk_seg_retired(g);
}

/* A read-only open of segment row r, whose file g was loaded from, when the
** two may not belong together: the writer's compaction committed new rows
** (and index rows) for a file not yet renamed over the old one, or renamed
** it between our reads of the catalog and of the file. The row and its
** index would then describe another file's bytes (reported as damage, read
** at wrong positions). Load the segment from the file alone instead, every
** batch checked, as tk_part_refresh loads a replaced segment; its refresh
** then follows the rename as for any compaction. */
static int load_unmatched(tk_partition *p, const tk_seg_row *r, tk_segment **g, takhin_recovery_info *rec,
                          const takhin_recovery_info *before) {
  tk_segment *n;
  int rc = load_fresh(p, r, 0, &n);
  if (rc || !n) return rc; /* gone meanwhile: keep what we have */
  n->sealed = r->sealed;
  if (r->sealed && r->next > n->next_offset) n->next_offset = r->next;
  pthread_rwlock_wrlock(&p->meta_lock);
  p->segs[p->nsegs - 1] = n;
  pthread_rwlock_unlock(&p->meta_lock);
  tk_seg_unref(*g);
  *g = n;
  /* what the mismatched load reported was not about the file */
  rec->batches_damaged = before->batches_damaged;
  rec->batches_recovered = before->batches_recovered;
  memcpy(rec->first_damage, before->first_damage, sizeof rec->first_damage);
  return TAKHIN_OK;
}

int tk_part_load(tk_partition *p, takhin_recovery_info *rec) {
  takhin_store *s = part_store(p);
  tk_topic *t = p->topic;
  tk_seg_row *rows = NULL;
  int64_t *files = NULL;
  size_t nrows = 0, nfiles = 0;
  int rc = tk_compact_recover(p, rec); /* first: it decides which file is <base>.log */
  if (rc) return rc;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_segments(s, t->topic_id, p->id, INT64_MIN, &rows, &nrows);
  if (!rc) rc = tk_cat_log_start(s, t->topic_id, p->id, &p->log_start);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) return rc;
  if ((rc = list_segment_files(p, &files, &nfiles, rec))) goto out;
  rec->partitions_checked++;
  int64_t expect = 0; /* segments must not overlap */
  /* Where the log ends so far (-1: nothing yet), and where it ended when
  ** the files of its last segments are gone. Only a missing segment that
  ** continues the log counts for the latter: a row beyond it (hand-made)
  ** must not move the high watermark. */
  int64_t log_end = -1, lost_end = 0;
  for (size_t i = 0; i < nrows; i++) {
    tk_seg_row *r = &rows[i];
    int64_t fsz = r->base >= expect ? file_size_of(p, r->base) : -1;
    /* A row wholly below the log start whose file is gone is retention's or
    ** DeleteRecords' (an older catalog restored still lists it): nothing
    ** was lost there. */
    if (r->base >= expect && (fsz < 0 || !has_base(files, nfiles, r->base)) && r->next > p->log_start)
      note_missing(p, r, rec, log_end < 0 || r->base == log_end ? &lost_end : NULL, &log_end);
    if (fsz < 0 || !has_base(files, nfiles, r->base)) {
      /* The file is gone (or the row overlaps its neighbour): its records
      ** cannot be served. Drop the row; the offsets read as removed. */
      if (!s->opt.read_only) {
        pthread_mutex_lock(&s->cat_lock);
        rc = tk_cat_delete_segment(s, t->topic_id, p->id, r->base);
        pthread_mutex_unlock(&s->cat_lock);
        if (rc) goto out;
      }
      continue;
    }
    tk_segment *g = tk_seg_new(p, r->base, r->created_ms);
    if (!g) { rc = tk_err(TAKHIN_ENOMEM, "out of memory loading segments"); goto out; }
    g->sealed = r->sealed;
    g->records = r->records;
    if ((rc = push_seg(p, g))) { tk_seg_unref(g); goto out; }
    int64_t damaged0 = rec->batches_damaged;
    takhin_recovery_info before = *rec;
    if ((rc = load_segment(p, g, r, fsz, rec))) goto out;
    if (s->opt.read_only && r->sealed && (fsz != r->size || rec->batches_damaged != damaged0) &&
        (swap_pending(g) || row_changed(p, r)) &&
        (rc = load_unmatched(p, r, &g, rec, &before)))
      goto out;
    expect = log_end = g->next_offset;
  }
  /* Files the catalog does not know: past the end, a segment whose row a
  ** crash kept from landing (adopt it); before the start, a file retention
  ** had already dropped from the catalog (finish deleting it). */
  int64_t first_base = p->nsegs ? p->segs[0]->base_offset : INT64_MAX;
  for (size_t i = 0; i < nfiles; i++) {
    int64_t b = files[i];
    if (p->nsegs && b <= active_seg(p)->base_offset) {
      if (b < first_base && b < p->log_start && !s->opt.read_only) {
        char path[TK_PATH_MAX];
        snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)b);
        if (unlink(path) == 0) rec->files_removed++;
      }
      continue;
    }
    if (p->nsegs && b < active_seg(p)->next_offset) continue; /* overlaps: leave it alone */
    tk_segment *g = tk_seg_new(p, b, tk_now_ms());
    if (!g) { rc = tk_err(TAKHIN_ENOMEM, "out of memory loading segments"); goto out; }
    if ((rc = push_seg(p, g))) { tk_seg_unref(g); goto out; }
    int64_t fsz = file_size_of(p, b);
    if ((rc = load_segment(p, g, NULL, fsz, rec))) goto out;
    if (g->next_offset == g->base_offset && p->nsegs > 1 && b > p->segs[p->nsegs - 2]->next_offset &&
        fsz != 0) {
      /* No valid batch, and not where a roll would have put it: its name
      ** must not move the high watermark. An empty file is where a roll
      ** put it: past offsets a failed BUFFERED write lost (drop_pending),
      ** whose catalog row a full disk kept from landing. Its name keeps
      ** those offsets from being handed out again. */
      p->nsegs--;
      if (!s->opt.read_only) {
        char path[TK_PATH_MAX];
        tk_seg_path(g, path, sizeof path);
        if (unlink(path) == 0) rec->files_removed++;
      }
      tk_seg_unref(g);
    }
  }
  for (size_t i = 0; i + 1 < p->nsegs; i++)
    if (!p->segs[i]->sealed) {
      p->segs[i]->sealed = 1;
      p->segs[i]->cat_dirty = 1;
    }
  if (p->nsegs) {
    tk_segment *last = active_seg(p);
    if (last->sealed) {
      last->sealed = 0;
      last->cat_dirty = 1;
    }
    p->next_offset = last->next_offset;
  } else {
    p->next_offset = p->log_start > 0 ? p->log_start : 0;
  }
  /* The files of the log's last offsets are gone, but those offsets were
  ** handed out: a writer continues after them, in a new segment (readers
  ** skip the gap), so no offset ever names two different records. */
  int resume_after_lost = !s->opt.read_only && lost_end > p->next_offset;
  if (resume_after_lost) p->next_offset = lost_end;
  /* The log start lies within [first segment, high watermark]. */
  int64_t lo = p->nsegs ? p->segs[0]->base_offset : p->next_offset;
  int64_t ls = p->log_start;
  if (ls < lo) ls = lo;
  if (ls > p->next_offset) ls = p->next_offset;
  if (ls != p->log_start) {
    p->log_start = ls;
    p->log_start_dirty = 1;
  }
  p->pending_next = p->next_offset;
  p->synced_next = p->next_offset;
  if (!s->opt.read_only) {
    if (!p->nsegs || resume_after_lost) {
      pthread_mutex_lock(&p->append_lock);
      rc = new_active_segment(p, p->next_offset, tk_now_ms());
      pthread_mutex_unlock(&p->append_lock);
      if (rc) goto out;
    }
    /* Not fatal: the state in memory is right and the catalog catches up at
    ** the next persist. A full disk must not keep the log from being read. */
    pthread_mutex_lock(&p->append_lock);
    persist(p);
    pthread_mutex_unlock(&p->append_lock);
  }
out:
  free(rows);
  free(files);
  return rc;
}

/* ---- read-only refresh ------------------------------------------------ */

/* A read-only handle's segment for catalog row r, read from the file its
** path names now, every batch validated: the row may describe a file that
** is not yet renamed into place (compaction commits its rows first), or
** the file may have been replaced since. Nothing is published: *out is
** NULL when the file is gone, or when a sealed row's file does not yet
** hold what the row says (a later refresh tries again). */
static int load_fresh(tk_partition *p, const tk_seg_row *r, int sealed, tk_segment **out) {
  *out = NULL;
  tk_segment *g = tk_seg_new(p, r->base, r->created_ms);
  if (!g) return tk_err(TAKHIN_ENOMEM, "out of memory loading segments");
  g->records = r->records;
  tk_scan_result sr;
  int rc = tk_seg_scan(g, 0, 0, &sr);
  if (rc == TAKHIN_ENOTFOUND || rc == TAKHIN_ERANGE || (!rc && sealed && sr.file_size != r->size)) {
    tk_seg_unref(g); /* gone, or not the row's file yet */
    return TAKHIN_OK;
  }
  if (rc) {
    tk_seg_unref(g);
    return rc;
  }
  g->sealed = sealed;
  /* Compaction keeps a segment's offset range even when its last records go. */
  if (sealed && r->next > g->next_offset) g->next_offset = r->next;
  *out = g;
  return TAKHIN_OK;
}

/* Read-only handles follow the writer process through the catalog and the
** files: appends to the active segment, new segments, segments the writer
** sealed, rewrote (compaction) or deleted (retention, DeleteRecords), and
** the log start. The catalog is read first: a segment it shows sealed was
** written to its end before, so scanning ours after reading it reaches that
** end; a segment is published only once loaded, so no reader ever sees a
** half-built one; a segment whose file was replaced is swapped for one
** loaded from the new file, and the old one is retired, never reopened by
** path (its holders finish with the file they have). */
int tk_part_refresh(tk_partition *p) {
  takhin_store *s = part_store(p);
  tk_topic *t = p->topic;
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&p->append_lock); /* no appends in a read-only handle: serializes refreshes */
  tk_seg_row *rows = NULL;
  size_t nrows = 0;
  int64_t ls = p->log_start, version = -1;
  int complete = 1; /* every row reconciled: the next refresh may skip them while the catalog stands */
  pthread_mutex_lock(&s->cat_lock);
  /* Unchanged since the last complete refresh: no segment was added,
  ** sealed, rewritten or deleted; only appends to the active segment are
  ** new. Reading every row costs ~1.4 us a segment, on every poll of a
  ** reader at the end of the log. */
  rc = tk_cat_data_version(s, &version);
  int fast = !rc && version == p->seen_version;
  /* The rows, then the log start: a row missing here was deleted before, so
  ** the log start read after it is past its segment. */
  if (!rc && !fast) rc = tk_cat_segments(s, t->topic_id, p->id, INT64_MIN, &rows, &nrows);
  if (!rc && !fast) rc = tk_cat_log_start(s, t->topic_id, p->id, &ls);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) goto out;
  if (p->nsegs) {
    tk_segment *g = active_seg(p);
    tk_scan_result sr;
    /* ERANGE: our active segment's file was deleted or replaced; its row
    ** (if any) reloads it below, else it falls below the log start. */
    rc = tk_seg_scan(g, g->size, 0, &sr);
    if (rc == TAKHIN_ERANGE) rc = TAKHIN_OK;
    if (rc) goto out;
  }
  size_t k = 0; /* p->segs[k]: the first segment not matched with a row yet */
  for (size_t i = 0; i < nrows; i++) {
    tk_seg_row *r = &rows[i];
    int sealed = r->sealed || i + 1 < nrows;
    while (k < p->nsegs && p->segs[k]->base_offset < r->base) k++;
    if (k < p->nsegs && p->segs[k]->base_offset == r->base) {
      tk_segment *g = p->segs[k], *n = NULL;
      /* Differs from its row (rewritten by compaction, or loaded while the
      ** writer still wrote it): reload if the path names another file. */
      int differs = sealed && (g->size != r->size || g->records != r->records);
      int stale = differs && tk_seg_retired(g);
      if (stale && (rc = load_fresh(p, r, 1, &n))) goto out;
      /* Not replaced yet (its file not renamed into place, or damaged):
      ** look again next time, whatever the catalog does meanwhile. */
      if (differs && !n) complete = 0;
      if (stale && !n && k + 1 == p->nsegs)
        break; /* our last segment: later ones would seal it short of its end */
      if (n) {
        pthread_rwlock_wrlock(&p->meta_lock);
        p->segs[k] = n;
        if (k + 1 < p->nsegs) n->sealed = 1;
        pthread_rwlock_unlock(&p->meta_lock);
        tk_seg_unref(g); /* retired: holders keep the file they have */
      }
      k++;
      continue;
    }
    if (k < p->nsegs) continue; /* a row between ours we never loaded: nothing to read there */
    if (p->nsegs && r->base < active_seg(p)->next_offset) continue; /* overlaps ours */
    tk_segment *n;
    if ((rc = load_fresh(p, r, sealed, &n))) goto out;
    if (!n) { /* not there yet: later segments must wait for it */
      complete = 0;
      break;
    }
    pthread_rwlock_wrlock(&p->meta_lock);
    if (p->nsegs) active_seg(p)->sealed = 1;
    rc = push_seg(p, n);
    pthread_rwlock_unlock(&p->meta_lock);
    if (rc) {
      tk_seg_unref(n);
      goto out;
    }
    k = p->nsegs;
  }
  /* Drop what the writer deleted (retention, DeleteRecords). */
  pthread_rwlock_wrlock(&p->meta_lock);
  if (p->nsegs) p->next_offset = active_seg(p)->next_offset;
  if (ls > p->next_offset) ls = p->next_offset;
  if (ls > p->log_start) p->log_start = ls;
  size_t drop = 0;
  while (drop + 1 < p->nsegs && p->segs[drop]->next_offset <= p->log_start) drop++;
  tk_segment **gone = NULL;
  if (drop) {
    gone = malloc(drop * sizeof *gone);
    if (gone) {
      memcpy(gone, p->segs, drop * sizeof *gone);
      memmove(p->segs, p->segs + drop, (p->nsegs - drop) * sizeof *p->segs);
      p->nsegs -= drop;
    } else {
      drop = 0;
    }
  }
  p->pending_next = p->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
  for (size_t i = 0; i < drop; i++) tk_seg_unref(gone[i]);
  free(gone);
  if (!fast) p->seen_version = complete ? version : -1;
out:
  free(rows);
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}

/* ---- deleting from the front ------------------------------------------ */

/* Drop the ndrop oldest (sealed) segments and move the log start to
** new_start, catalog first, files after: a crash in between leaves files the
** next open recognises as already deleted. append_lock held. */
static int drop_prefix(tk_partition *p, size_t ndrop, int64_t new_start,
                       takhin_retention_result *out) {
  takhin_store *s = part_store(p);
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

int tk_part_delete_records(tk_partition *p, int64_t offset) {
  pthread_mutex_lock(&p->maint_lock);
  pthread_mutex_lock(&p->append_lock);
  int rc = write_pending(p);
  if (rc) goto out;
  if (offset < p->log_start || offset > p->next_offset) {
    rc = tk_err(TAKHIN_ERANGE, "offset %lld out of range [%lld, %lld] for DeleteRecords on %s-%d",
                (long long)offset, (long long)p->log_start, (long long)p->next_offset,
                p->topic->name, (int)p->id);
    goto out;
  }
  if (offset == p->log_start) goto out;
  size_t ndrop = 0;
  while (ndrop + 1 < p->nsegs && p->segs[ndrop]->next_offset <= offset) ndrop++;
  rc = drop_prefix(p, ndrop, offset, NULL);
out:
  pthread_mutex_unlock(&p->append_lock);
  pthread_mutex_unlock(&p->maint_lock);
  return rc;
}

int tk_part_retention(tk_partition *p, takhin_retention_result *out) {
  const tk_topic_config *cfg = &p->topic->cfg;
  if (!cfg->delete_) return TAKHIN_OK; /* compact-only topics keep everything */
  pthread_mutex_lock(&p->maint_lock);
  pthread_mutex_lock(&p->append_lock);
  int rc = write_pending(p);
  if (rc) goto out;
  int64_t now = tk_now_ms(), total = 0;
  for (size_t i = 0; i < p->nsegs; i++) total += p->segs[i]->size;
  size_t ndrop = 0;
  while (ndrop + 1 < p->nsegs) { /* never the active segment */
    tk_segment *g = p->segs[ndrop];
    int below_start = g->next_offset <= p->log_start;
    int by_bytes = cfg->retention_bytes >= 0 && total - cfg->retention_bytes >= g->size;
    int by_time = cfg->retention_ms >= 0 && g->max_ts >= 0 && now - g->max_ts > cfg->retention_ms;
    if (!below_start && !by_bytes && !by_time) break;
    total -= g->size;
    ndrop++;
  }
  if (ndrop) {
    int64_t start = p->segs[ndrop - 1]->next_offset;
    if (start < p->log_start) start = p->log_start;
    rc = drop_prefix(p, ndrop, start, out);
  }
out:
  pthread_mutex_unlock(&p->append_lock);
  pthread_mutex_unlock(&p->maint_lock);
  return rc;
}

/* ---- undo (the SQL extension's all-or-nothing COMMIT) ------------------ */

void tk_part_mark_get(tk_partition *p, tk_part_mark *m) {
  pthread_mutex_lock(&p->append_lock);
  tk_segment *g = active_seg(p);
  m->nsegs = p->nsegs;
  m->size = g->size;
  m->next_offset = g->next_offset;
  m->max_ts = g->max_ts;
  m->last_idx_pos = g->last_idx_pos;
  m->idx_n = g->idx_n;
  if (g->idx_n) m->last_entry = g->idx[g->idx_n - 1];
  m->key_upto = p->key_upto;
  m->persists = p->persists;
  pthread_mutex_unlock(&p->append_lock);
}

int tk_part_undo(tk_partition *p, const tk_part_mark *m) {
  takhin_store *s = part_store(p);
  pthread_mutex_lock(&p->append_lock);
  int rc = TAKHIN_OK;
  if (p->nsegs != m->nsegs || p->wbuf.len) {
    rc = tk_err(TAKHIN_EINVAL, "cannot take back the append to %s-%d: the segment rolled",
                p->topic->name, (int)p->id);
    goto out;
  }
  tk_segment *g = active_seg(p);
  int fd;
  if ((rc = tk_seg_fd_acquire(g, &fd))) goto out;
  /* Zero the taken-back bytes rather than truncate: readers (in this
  ** process or a read-only one) may map the file, and a truncated page
  ** would fault under them. Zeros never parse as a batch: the next append
  ** overwrites them, or recovery cuts them after a crash. */
  static const uint8_t zeros[65536];
  for (int64_t at = m->size; at < g->size && !rc;) {
    size_t n = (size_t)(g->size - at < (int64_t)sizeof zeros ? g->size - at : (int64_t)sizeof zeros);
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
  if (m->idx_n) g->idx[m->idx_n - 1] = m->last_entry;
  if (g->idx_persisted > (m->idx_n ? m->idx_n - 1 : 0)) g->idx_persisted = m->idx_n ? m->idx_n - 1 : 0;
  g->cat_dirty = 1;
  p->next_offset = p->pending_next = m->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
  forget_keys_from(p, m->next_offset);
  if (p->persists != m->persists) {
    /* A persist ran inside the transaction being rolled back: its rows go
    ** with it. Write the active segment's index rows again; the key rows it
    ** wrote are gone from memory too, so stop key_upto (and compaction)
    ** until the next open rebuilds the key index from the log. */
    g->idx_persisted = 0;
    if (p->key_upto != m->key_upto) {
      p->key_upto = m->key_upto;
      p->keys_tracked = 0;
    }
  }
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
  takhin_store *s = part_store(p);
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
