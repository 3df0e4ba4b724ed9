/*
** keyindex.c -- the key index of a compacted topic: each key's latest
** offset (the catalog table takhin_cat_key), from which compaction decides
** what survives.
**
** The index is the partition's, and this file is the only code that changes
** its state (the pending keys, key_from, key_upto, keys_tracked). It has two
** faces:
**
**   - below the partition (partition.c calls them, append_lock held): an
**     append notes the keys of its records (tk_key_note); the partition's
**     catalog persist writes the newest record of each pending key and moves
**     key_upto in its own transaction (tk_key_persist_rows, _done); a write
**     that failed or was taken back forgets keys (tk_key_forget_from,
**     tk_key_undo). Rows are only written for records already in the file:
**     a row for a record a crash could still take back would make
**     compaction drop the key's real latest record.
**   - above it (store.c, cursor.c, compaction.c): load the state on open,
**     catch the index up with the log (tk_key_catch_up, which reads the
**     log through a cursor), bring it up to date before compaction or a
**     lookup (tk_key_cover_log), and look a key up (tk_key_lookup).
**
** So the produce path runs partition -> keyindex -> catalog, and the
** compaction path compaction -> keyindex -> partition (flush) -> keyindex
** rows: compaction itself never asks the partition for key-index work.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "cursor.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "sqlite_compat.h"

/* ---- pending keys (append_lock held) ------------------------------------ */

static uint64_t key_hash(const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
  return h;
}

void tk_key_free(tk_partition *p) {
  tk_buf_free(&p->keybuf);
  free(p->keys);
  free(p->kset);
  p->keys = NULL;
  p->kset = NULL;
  p->nkeys = p->keys_cap = p->kset_cap = 0;
}

void tk_key_start_at(tk_partition *p, int64_t from) {
  TK_ASSERT_HELD(&p->append_lock);
  p->key_from = p->key_upto = from;
  p->keys_tracked = 1;
}

void tk_key_forget_from(tk_partition *p, int64_t from) {
  TK_ASSERT_HELD(&p->append_lock);
  size_t n = p->nkeys;
  while (n && p->keys[n - 1].offset >= from) n--;
  p->nkeys = n;
  p->keybuf.len = n ? p->keys[n - 1].key_at + p->keys[n - 1].key_len : 0;
}

size_t tk_key_pending_weight(const tk_partition *p) { return p->nkeys / 64; }

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

void tk_key_note(tk_partition *p, const takhin_record *keys, size_t nkeys, int64_t base) {
  TK_ASSERT_HELD(&p->append_lock);
  /* On failure the key index no longer covers the log: key_upto stops (and
  ** compaction with it) until the next open rebuilds the index from the log. */
  if (p->topic->cfg.compact && nkeys && note_keys(p, keys, nkeys, base)) p->keys_tracked = 0;
}

/* Key rows for pending keys [0, nk): only the newest record of each key
** is written (an older one in the same flush would be overwritten by it at
** once), so a key that repeats within a flush costs one row. The probe
** table is the partition's, reused: no allocation in steady state.
** cat_lock held, inside the persist transaction. */
static int write_latest_keys(tk_partition *p, size_t nk) {
  TK_ASSERT_HELD(&p->topic->store->cat_lock);
  takhin_store *s = p->topic->store;
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

int tk_key_persist_rows(tk_partition *p, tk_key_persist *kp) {
  TK_ASSERT_HELD(&p->append_lock);
  TK_ASSERT_HELD(&p->topic->store->cat_lock);
  takhin_store *s = p->topic->store;
  tk_topic *t = p->topic;
  /* Key rows only for records already in the file (see the top). */
  size_t nk = 0;
  while (nk < p->nkeys && p->keys[nk].offset < p->next_offset) nk++;
  int rc = write_latest_keys(p, nk);
  kp->n = nk;
  kp->upto = nk < p->nkeys ? p->keys[nk].offset : p->next_offset;
  kp->move_upto = t->cfg.compact && p->keys_tracked && kp->upto > p->key_upto;
  if (!rc && kp->move_upto) rc = tk_key_set_upto(s, t->topic_id, p->id, kp->upto);
  return rc;
}

void tk_key_persist_done(tk_partition *p, const tk_key_persist *kp) {
  TK_ASSERT_HELD(&p->append_lock);
  if (kp->n) { /* drop the written ones; what is left is still unwritten */
    memmove(p->keys, p->keys + kp->n, (p->nkeys - kp->n) * sizeof *p->keys);
    p->nkeys -= kp->n;
    if (p->nkeys == 0) p->keybuf.len = 0;
  }
  if (kp->move_upto) p->key_upto = kp->upto;
}

void tk_key_undo(tk_partition *p, int64_t next, int64_t key_upto, int persisted) {
  TK_ASSERT_HELD(&p->append_lock);
  tk_key_forget_from(p, next);
  /* A persist ran inside the transaction being rolled back: the key rows it
  ** wrote are gone from memory too, so stop key_upto (and compaction) until
  ** the next open rebuilds the key index from the log. */
  if (persisted && p->key_upto != key_upto) {
    p->key_upto = key_upto;
    p->keys_tracked = 0;
  }
}

/* ---- catalog rows (cat_lock held) ----------------------------------------- */

int tk_key_write(takhin_store *s, int64_t topic_id, int32_t part, const void *key, size_t len,
                 int64_t offset, int tombstone) {
  TK_ASSERT_HELD(&s->cat_lock);
  sqlite3_stmt *st = tk_sql_prepare(s, "key_upsert");
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_blob64(st, 3, len ? key : "", len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, offset);
  sqlite3_bind_int(st, 5, tombstone);
  return tk_cat_step_done(s, st, "write key row");
}

/* Run the named statement over (topic, partition, v). */
static int set_bound(takhin_store *s, const char *name, int64_t topic_id, int32_t part, int64_t v) {
  sqlite3_stmt *st = tk_sql_prepare(s, name);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, v);
  return tk_cat_step_done(s, st, name);
}

int tk_key_set_upto(takhin_store *s, int64_t topic_id, int32_t part, int64_t upto) {
  TK_ASSERT_HELD(&s->cat_lock);
  return set_bound(s, "set_key_upto", topic_id, part, upto);
}

int tk_key_set_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t from) {
  TK_ASSERT_HELD(&s->cat_lock);
  return set_bound(s, "set_key_from", topic_id, part, from);
}

int tk_key_load(tk_partition *p) {
  TK_ASSERT_HELD(&p->topic->store->cat_lock);
  takhin_store *s = p->topic->store;
  sqlite3_stmt *st = tk_sql_prepare(s, "key_state");
  if (!st) return TAKHIN_OK; /* as before: the error is set, the open goes on */
  sqlite3_bind_int64(st, 1, p->topic->topic_id);
  sqlite3_bind_int(st, 2, p->id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    p->key_from = sqlite3_column_int64(st, 0);
    p->key_upto = sqlite3_column_int64(st, 1);
    p->clean_upto = sqlite3_column_int64(st, 2);
  }
  tk_cat_done(s, st);
  return TAKHIN_OK;
}

/* ---- catching up with the log, and lookups --------------------------------- */

/* Once the key index covers the whole log, appends note every new key:
** persists may then move key_upto (see keys_tracked). */
static void keys_tracked(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  p->keys_tracked = 1;
  pthread_mutex_unlock(&p->append_lock);
}

int tk_key_catch_up(tk_partition *p) {
  takhin_store *s = p->topic->store;
  if (!p->topic->cfg.compact || s->opt.read_only) {
    keys_tracked(p); /* nothing to catch up; a later switch to compact starts at its end */
    return TAKHIN_OK;
  }
  int64_t id = p->topic->topic_id, hwm, start;
  tk_part_offsets(p, &start, NULL, &hwm); /* the written log: its keys can be read */
  /* A key row past the end of the log (the file lost a tail the catalog
  ** kept: power loss in OS mode) could make compaction drop its key's real
  ** latest record: rebuild the partition's key index from the log. */
  int64_t dangling = 0;
  pthread_mutex_lock(&s->cat_lock);
  static const char sql[] =
      "SELECT count(*) FROM takhin_cat_key WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3";
  sqlite3_stmt *st = tk_cat_prepare(s, sql);
  int rc = st ? TAKHIN_OK : TAKHIN_ECATALOG;
  if (st) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, p->id);
    sqlite3_bind_int64(st, 3, hwm);
    if (sqlite3_step(st) == SQLITE_ROW) dangling = sqlite3_column_int64(st, 0);
    tk_cat_done(s, st);
  }
  if (!rc && dangling) {
    /* The wipe and the lowered key_upto land together: committed apart, a
    ** crash between them would leave an empty key index that claims to
    ** cover the log. */
    static const char wipe[] = "DELETE FROM takhin_cat_key WHERE topic_id = ?1 AND partition = ?2";
    rc = tk_cat_begin(s);
    if (!rc && !(st = tk_cat_prepare(s, wipe))) rc = TAKHIN_ECATALOG;
    if (!rc) {
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int(st, 2, p->id);
      rc = tk_cat_step_done(s, st, "rebuild key index");
    }
    if (!rc) rc = tk_key_set_upto(s, id, p->id, p->key_from);
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    if (!rc) p->key_upto = p->key_from;
  } else if (!rc && p->key_upto > hwm) {
    /* Past the end of the log (its tail was lost): appends from hwm on must
    ** move it, and a crash before they do must not skip their keys. */
    rc = tk_key_set_upto(s, id, p->id, hwm);
    if (!rc) p->key_upto = hwm;
  }
  pthread_mutex_unlock(&s->cat_lock);
  if (!rc && p->key_upto >= hwm) keys_tracked(p);
  if (rc || p->key_upto >= hwm) return rc;
  int64_t from = p->key_upto > start ? p->key_upto : start;
  if (from < p->key_from) from = p->key_from;
  takhin_cursor *c;
  if ((rc = tk_cursor_open_part(s, p->topic, p, &c))) return rc;
  takhin_message m;
  rc = takhin_cursor_seek(c, from, 0, 0);
  pthread_mutex_lock(&s->cat_lock);
  if (!rc) rc = tk_cat_begin(s);
  while (!rc && (rc = takhin_cursor_next(c, &m)) != TAKHIN_END) {
    int64_t past = rc == TAKHIN_ECORRUPT ? tk_cursor_past_damage(c) : -1;
    if (past > 0) {
      /* A damaged batch's keys cannot be read (recovery and reads report
      ** it): index the others rather than refuse to open the store. */
      rc = takhin_cursor_seek(c, past < hwm ? past : hwm, 0, 0);
      continue;
    }
    if (!rc && m.key) rc = tk_key_write(s, id, p->id, m.key, m.key_len, m.offset, m.value == NULL);
  }
  if (rc == TAKHIN_END) rc = TAKHIN_OK;
  if (!rc) rc = tk_key_set_upto(s, id, p->id, hwm);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  takhin_cursor_close(c);
  if (!rc) p->key_upto = hwm, keys_tracked(p);
  return rc;
}

/* The key index is behind the log: a catch-up the open could not finish
** (it writes the catalog, which a full disk refuses; see
** takhin_recovery_info.key_index_deferred), or key rows lost since. */
static int keys_behind(tk_partition *p) {
  takhin_store *s = p->topic->store;
  /* The extension's store (borrowed catalog) keeps its old rule: the next
  ** open rebuilds; a lookup may run inside any statement of the host's. */
  if (!p->topic->cfg.compact || s->opt.read_only || s->borrowed) return 0;
  pthread_mutex_lock(&p->append_lock);
  int tracked = p->keys_tracked;
  pthread_mutex_unlock(&p->append_lock);
  return !tracked;
}

/* Retry it before anything relies on the key index. maint_lock held: one
** catch-up at a time, never beside a compaction. */
static int catch_up_if_behind(tk_partition *p) {
  TK_ASSERT_HELD(&p->maint_lock);
  return keys_behind(p) ? tk_key_catch_up(p) : TAKHIN_OK;
}

int tk_key_lookup(tk_partition *p, const void *key, size_t len, int64_t *offset, int *tombstone) {
  takhin_store *s = p->topic->store;
  if (!p->topic->cfg.compact)
    return tk_err(TAKHIN_EINVAL, "key lookups need a compacted topic: \"%s\" has cleanup_policy=%s "
                  "and no key index", p->topic->name, tk_config_policy_name(&p->topic->cfg));
  int rc = TAKHIN_OK;
  if (!s->opt.read_only) {
    pthread_mutex_lock(&p->append_lock);
    int pending = p->nkeys > 0;
    pthread_mutex_unlock(&p->append_lock);
    if (pending) rc = tk_part_flush(p, 1, 0); /* a key just produced must be found */
    if (rc) return rc;
    /* An index behind the log would answer with an older record, or none. */
    if (keys_behind(p)) {
      pthread_mutex_lock(&p->maint_lock);
      rc = catch_up_if_behind(p);
      pthread_mutex_unlock(&p->maint_lock);
    }
    if (rc) {
      char why[512];
      snprintf(why, sizeof why, "%s", takhin_errmsg());
      return tk_err(rc, "the key index of %s-%d is behind its log and cannot be brought up to date: %s",
                    p->topic->name, (int)p->id, why);
    }
  }
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = tk_sql_prepare(s, "key_lookup");
  if (!st) {
    rc = TAKHIN_ECATALOG;
  } else {
    sqlite3_bind_int64(st, 1, p->topic->topic_id);
    sqlite3_bind_int(st, 2, p->id);
    sqlite3_bind_blob64(st, 3, len ? key : "", len, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
      *offset = sqlite3_column_int64(st, 0);
      *tombstone = sqlite3_column_int(st, 1);
    } else if (step == SQLITE_DONE) {
      rc = tk_err(TAKHIN_ENOTFOUND, "key has no record in %s-%d", p->topic->name, (int)p->id);
    } else {
      rc = tk_cat_error(s, "key lookup");
    }
    tk_cat_done(s, st);
  }
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

int tk_key_cover_log(tk_partition *p) {
  TK_ASSERT_HELD(&p->maint_lock);
  int rc = tk_part_flush(p, 1, 0); /* pending batches into the files, their key rows written */
  /* Not fatal: compaction never goes past what the index covers. */
  if (!rc && catch_up_if_behind(p)) { /* left for the next run */ }
  return rc;
}

int64_t tk_key_covered(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  int64_t covered = p->key_upto; /* key rows below it are all written, tracked or not */
  pthread_mutex_unlock(&p->append_lock);
  return covered;
}
