/*
** compact_plan.c -- the plan a compaction run follows: for each candidate
** segment, the offsets that survive and, when some do not, the new file to
** write them to, made ahead of the rewriting on a helper thread (one of the
** store's compaction workers, compact_workers.c).
**
** The survivors of a segment are the clear bits of its 1-3 chunk rows of
** dead offsets (takhin_cat_dead, store/dead.c), kept by the key index as it
** writes key rows, where they cover the segment (from dead_from on) and
** are sound; otherwise the key index's "survivors" query (sql/compaction.sql)
** steps them out of SQLite a row each (about 75 ns a row, as much as the
** rewrite at 100 B). Neither the plan nor the rewrite needs the other's
** resources -- the plan holds the catalog lock, the rewrite only files --
** so the helper plans segment i+1.. while the caller rewrites segment i, at
** most PLAN_AHEAD segments ahead (memory stays bounded whatever the
** partition's size). Segment 0 the caller plans itself while the helper
** starts: waiting for the helper's start was 1-2 ms of a 10-segment run.
** The catalog lock is still taken per segment, never across a rewrite.
** Creating each <base>.log.cleaned file is shared out too (on an ext4 without a journal, allocating an inode
** scans past every recently deleted one: up to half a millisecond a file):
** the helper makes it, unless the caller is already waiting for that
** segment, idle, and makes it itself. Files made but not taken (the run
** failed or stopped) are removed by tk_plan_stop; a crash leaves them to
** open's sweep of stray .cleaned files. The helper also deletes the
** catalog's index rows of the segments it plans to rewrite, a few per
** transaction (drop_index_rows; those the caller plans, the swap does), and
** prepares the statements of the run's last steps once it is done: both
** off the rewriting side's critical path.
**
** On the SQLite extension's store the catalog is the host's connection,
** which only the calling thread may use: there the roles swap, the caller
** plans (tk_plan_run) and a helper thread rewrites. Where no thread can be
** started, tk_plan_get runs the plan itself, in order: same plan,
** sequentially.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "compaction.h"
#include "dead.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "sqlite_compat.h"
#include "testing.h"

#define PLAN_AHEAD 4

#ifdef TAKHIN_TESTING
/* Test hook (testing.h): the survivors query of candidate n (1-based) fails,
** to prove an error on the helper thread reaches the caller and undoes the
** run. */
int tk_compact_plan_fail_at;
/* Test hooks (testing.h): how segments are planned (0: from the dead
** offsets where they cover it, 1: by the survivors query always, 2: both,
** compared), and what happened. */
int tk_compact_dead_mode;
atomic_long tk_compact_dead_planned, tk_compact_dead_fallbacks, tk_compact_dead_mismatches;
#else
#define tk_compact_plan_fail_at 0
#define tk_compact_dead_mode 0
#endif

/* The new file of a planned segment: who makes it (mu guards `file`). */
enum { FILE_NONE, FILE_WANTED, FILE_HELPER, FILE_READY, FILE_FAILED };

typedef struct plan_slot {
  int64_t *keep;
  size_t n, cap;
  int64_t *gone; /* expired tombstones of the segment, taken out of keep */
  size_t ngone, gone_cap;
  int file; /* FILE_NONE: not needed, or taken; WANTED: not made yet; HELPER: being made */
  int fd;   /* FILE_READY: the new file, until the caller takes it */
  char tmp[TK_PATH_MAX + 16];
} plan_slot;

struct tk_plan {
  tk_partition *p;
  tk_segment *const *cand; /* candidates; a NULL one is planned as empty */
  size_t ncand;
  int64_t expired_before;
  int64_t dead_from;          /* segments from here on are planned from takhin_cat_dead */
  plan_slot slot[PLAN_AHEAD]; /* segment i's survivors are in slot[i % PLAN_AHEAD] */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t made;    /* segments [0, made) are planned */
  size_t dropped; /* ... and [first, dropped) lost their index rows (the helper's) */
  /* "caller" below is the rewriting side, "helper" the planning side,
  ** whichever threads they run on (see the top of the file) */
  size_t freed;   /* the caller is done with segments [0, freed) */
  size_t waiting; /* i + 1 while the caller waits for segment i, else 0 */
  int done;       /* the helper has stopped (all planned, stopped, or failed) */
  int stop;       /* the caller gives up */
  int rc;         /* the helper's error, with its message in err */
  char err[512];
  int threaded;  /* the planning and the rewriting run on different threads */
  size_t first;  /* the helper plans from here on; 1: the caller plans segment 0 */
  int spares;    /* idle threads the planning may still start for the syncing */
  tk_cw_job job; /* ... the planning on one of the store's workers (if taken) */
};

/* Statement id with (topic, partition, from) bound, and for
** expired_tombstones also to and expired_before. */
static sqlite3_stmt *range_stmt(takhin_store *s, int id, tk_partition *p, const tk_segment *g,
                                int64_t expired_before) {
  sqlite3_stmt *st = tk_cat_stmt(s, id);
  if (!st) return NULL;
  sqlite3_bind_int64(st, 1, p->topic->topic_id);
  sqlite3_bind_int(st, 2, p->id);
  sqlite3_bind_int64(st, 3, g->base_offset);
  if (id == TK_SQL_EXPIRED_TOMBSTONES) {
    sqlite3_bind_int64(st, 4, g->next_offset);
    sqlite3_bind_int64(st, 5, expired_before);
  }
  return st;
}

/* A segment's survivors from its chunks of takhin_cat_dead (cat_lock held;
** slot->gone read): the offsets of [base, next) whose bit is clear, but the
** expired tombstones. An offset the key index holds no row for is a set bit
** (superseded, a tombstone forgotten, a hole of an earlier run), so this is
** the survivors query's answer (tests compare the two) from 1-3 rows. 0, or
** 1: a chunk is damaged (ask the query), or -1: out of memory. */
static int from_bits(takhin_store *s, tk_partition *p, const tk_segment *g, plan_slot *slot) {
  int64_t base = g->base_offset, next = g->next_offset;
  slot->n = 0;
  if (next <= base) return 0;
  sqlite3_stmt *st = range_stmt(s, TK_SQL_DEAD_CHUNKS, p, g, 0);
  if (!st) return 1;
  sqlite3_bind_int64(st, 4, next);
  int64_t want = base >> TK_DEAD_SHIFT, last = (next - 1) >> TK_DEAD_SHIFT;
  size_t gi = 0;
  int r = 0, step;
  static const uint8_t none[TK_DEAD_BITMAP]; /* a chunk with no row: no dead offset */
  while (want <= last && r == 0) {
    step = sqlite3_step(st);
    int64_t c = last + 1;
    const uint8_t *bits = NULL;
    if (step == SQLITE_ROW) {
      c = sqlite3_column_int64(st, 0);
      bits = sqlite3_column_blob(st, 1);
      if (c < want || c > last || !tk_dead_blob_ok(bits, sqlite3_column_bytes(st, 1))) {
        r = 1;
        break;
      }
    } else if (step != SQLITE_DONE) {
      r = 1;
      break;
    }
    /* chunks want..c-1 have no row, c (if any) has bits */
    for (; want <= last && want <= c; want++) {
      const uint8_t *b = want == c ? bits : none;
      int64_t lo = want << TK_DEAD_SHIFT, hi = lo + (1 << TK_DEAD_SHIFT);
      if (lo < base) lo = base;
      if (hi > next) hi = next;
      if (TK_ARRAY_GROW(slot->keep, slot->n + (size_t)(hi - lo), slot->cap, 1024)) {
        r = -1;
        break;
      }
      int64_t chunk0 = want << TK_DEAD_SHIFT;
      for (int64_t w = (lo - chunk0) >> 6; w <= (hi - 1 - chunk0) >> 6; w++) {
        uint64_t dead;
        memcpy(&dead, b + w * 8, 8); /* little-endian bytes: bit i = offset i */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        dead = __builtin_bswap64(dead);
#endif
        uint64_t live = ~dead;
        int64_t w0 = chunk0 + w * 64;
        if (w0 < lo) live &= ~0ULL << (lo - w0);
        if (w0 + 64 > hi) live &= (hi - w0) >= 64 ? ~0ULL : (1ULL << (hi - w0)) - 1;
        while (live) {
          int64_t off = w0 + __builtin_ctzll(live);
          live &= live - 1;
          while (gi < slot->ngone && slot->gone[gi] < off) gi++;
          if (gi < slot->ngone && slot->gone[gi] == off) continue;
          slot->keep[slot->n++] = off;
        }
      }
    }
  }
  tk_cat_done(s, st);
  return r;
}

/* Offsets of [from, to) that survive, sorted, into slot (its arrays grow
** with TK_ARRAY_GROW and are reused from one segment to the next): every
** key's latest offset in the range but the expired tombstones, which are
** few and read first from their own index. bits: from the dead offsets
** (from_bits) unless a chunk is damaged; otherwise by the query, which,
** stepped once per surviving row, tests nothing: not the tombstone state,
** not even the range's end, which is checked here on the offset it returns
** (sql/compaction.sql). */
static int survivors(tk_partition *p, size_t i, const tk_segment *g, int64_t expired_before,
                     int bits, plan_slot *slot) {
  takhin_store *s = p->topic->store;
  if (tk_compact_plan_fail_at > 0 && i + 1 == (size_t)tk_compact_plan_fail_at)
    return tk_err(TAKHIN_ECATALOG, "survivors of candidate segment %zu failed (test hook)", i);
  int rc = TAKHIN_OK, step;
  slot->n = 0;
  slot->ngone = 0;
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = range_stmt(s, TK_SQL_EXPIRED_TOMBSTONES, p, g, expired_before);
  if (!st) {
    pthread_mutex_unlock(&s->cat_lock);
    return TAKHIN_ECATALOG;
  }
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (TK_ARRAY_GROW(slot->gone, slot->ngone, slot->gone_cap, 64)) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
      break;
    }
    slot->gone[slot->ngone++] = sqlite3_column_int64(st, 0);
  }
  if (!rc && step != SQLITE_DONE) rc = tk_cat_error(s, "expired tombstones");
  tk_cat_done(s, st);
  if (!rc && bits) {
    int r = from_bits(s, p, g, slot);
    if (r <= 0) {
      pthread_mutex_unlock(&s->cat_lock);
#ifdef TAKHIN_TESTING
      if (!r) atomic_fetch_add(&tk_compact_dead_planned, 1);
#endif
      return r < 0 ? tk_err(TAKHIN_ENOMEM, "out of memory compacting") : TAKHIN_OK;
    }
#ifdef TAKHIN_TESTING
    atomic_fetch_add(&tk_compact_dead_fallbacks, 1);
#endif
    slot->n = 0; /* damaged: the key index answers */
  }
  if (!rc && !(st = range_stmt(s, TK_SQL_SURVIVORS, p, g, expired_before))) rc = TAKHIN_ECATALOG;
  if (rc) {
    pthread_mutex_unlock(&s->cat_lock);
    return rc;
  }
  size_t gi = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t off = sqlite3_column_int64(st, 0);
    if (off >= g->next_offset) {
      step = SQLITE_DONE;
      break;
    }
    while (gi < slot->ngone && slot->gone[gi] < off) gi++; /* both in offset order */
    if (gi < slot->ngone && slot->gone[gi] == off) continue;
    if (TK_ARRAY_GROW(slot->keep, slot->n, slot->cap, 1024)) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
      break;
    }
    slot->keep[slot->n++] = off;
  }
  if (!rc && step != SQLITE_DONE) rc = tk_cat_error(s, "survivors");
  tk_cat_done(s, st);
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

/* Segments to be rewritten lose their index rows from the catalog ahead of
** the swap, a few segments per transaction of their own, while the caller
** rewrites: the run's swap transaction, on its critical path, then finds
** none to delete (deleting is about 2,400 instructions a row in SQLite's
** b-tree). The catalog stays a cache of the files meanwhile: a segment row
** without index rows is loaded by walking the file's batch headers, and
** the run owes the rows back where a segment stays (rows_dropped, set when
** the segment is planned; tk_part_owe_rows). A failure here costs nothing:
** the swap transaction deletes the rows itself. The helper's alone: those
** of segments the caller plans (segment 0, or all where no helper runs)
** are left to the swap, no commit of their own on the critical path.
** Candidates [dropped, upto). */
static void drop_index_rows(tk_plan *pl, size_t upto) {
  tk_partition *p = pl->p;
  takhin_store *s = p->topic->store;
  size_t from = pl->dropped, any = 0;
  pl->dropped = upto;
  for (size_t i = from; i < upto; i++) any |= pl->cand[i] && pl->cand[i]->rows_dropped;
  if (!any) return;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_begin(s);
  for (size_t i = from; i < upto && !rc; i++)
    if (pl->cand[i] && pl->cand[i]->rows_dropped)
      rc = tk_cat_delete_index_from(s, p->topic->topic_id, p->id, pl->cand[i]->base_offset, 0);
  if (!rc) tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
}

/* Candidate i's survivors into slot, and whether it needs a new file:
** only when some of its records do not survive. */
static int plan_survivors(tk_plan *pl, size_t i, plan_slot *slot) {
  tk_segment *g = pl->cand[i];
  slot->n = 0;
  slot->fd = -1;
  slot->file = FILE_NONE;
  if (!g) return TAKHIN_OK;
  /* Below dead_from the dead offsets may miss some: the query answers. */
  int bits = g->base_offset >= pl->dead_from && tk_compact_dead_mode != 1;
  int rc = survivors(pl->p, i, g, pl->expired_before, bits, slot);
  if (rc) return rc;
#ifdef TAKHIN_TESTING
  if (bits && tk_compact_dead_mode == 2) { /* the query's answer must be the same */
    plan_slot ref;
    memset(&ref, 0, sizeof ref);
    rc = survivors(pl->p, i, g, pl->expired_before, 0, &ref);
    if (!rc && (ref.n != slot->n || (ref.n && memcmp(ref.keep, slot->keep, ref.n * 8))))
      atomic_fetch_add(&tk_compact_dead_mismatches, 1);
    free(ref.keep);
    free(ref.gone);
    if (rc) return rc;
  }
#endif
  int64_t records = g->records >= 0 ? g->records : g->next_offset - g->base_offset;
  if ((int64_t)slot->n >= records) return TAKHIN_OK; /* nothing to reclaim: not read again */
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  snprintf(slot->tmp, sizeof slot->tmp, "%s.cleaned", path);
  slot->file = FILE_WANTED;
  return TAKHIN_OK;
}

static int make_file(const plan_slot *slot, int *fd) {
  *fd = open(slot->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  return *fd < 0 ? tk_err_sys(errno, "create", slot->tmp) : TAKHIN_OK;
}

/* The helper's error (mu held): its message is per thread, carried over. */
static void plan_fail(tk_plan *pl, int rc) {
  pl->rc = rc;
  snprintf(pl->err, sizeof pl->err, "%s", takhin_errmsg());
}

/* Plan every candidate in order, PLAN_AHEAD at most ahead of the caller,
** until done, failed or stopped. Returns the planning's error (its message
** is also kept for the rewriting side). */
static int plan_loop(tk_plan *pl) {
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&pl->mu);
  for (size_t i = pl->first; i < pl->ncand && !pl->stop; i++) {
    while (i >= pl->freed + PLAN_AHEAD && !pl->stop) pthread_cond_wait(&pl->cv, &pl->mu);
    if (pl->stop) break;
    pthread_mutex_unlock(&pl->mu);
    /* slot i % PLAN_AHEAD is free: the caller is done with i - PLAN_AHEAD */
    plan_slot *slot = &pl->slot[i % PLAN_AHEAD];
    rc = plan_survivors(pl, i, slot);
    int rewrite = slot->file != FILE_NONE; /* read before the caller can take it */
    /* Its rows go ahead (drop_index_rows), marked before they do, as a
    ** failed commit may have deleted them. Not on the SQL extension's
    ** store: each transaction there is a commit of the host's connection
    ** (its sync setting, its hooks); its swap deletes them. */
    if (!rc && rewrite && !pl->p->topic->store->borrowed) pl->cand[i]->rows_dropped = 1;
    pthread_mutex_lock(&pl->mu);
    if (rc) {
      plan_fail(pl, rc);
      break;
    }
    pl->made = i + 1;
    /* The new file: ours to make unless the caller is idle, waiting for
    ** this very segment; then it makes it itself (tk_plan_get). */
    if (slot->file == FILE_WANTED && pl->waiting != i + 1) {
      slot->file = FILE_HELPER;
      pthread_mutex_unlock(&pl->mu);
      int fd;
      rc = make_file(slot, &fd);
      pthread_mutex_lock(&pl->mu);
      slot->fd = fd;
      slot->file = rc ? FILE_FAILED : FILE_READY;
      if (rc) plan_fail(pl, rc);
    }
    pthread_cond_broadcast(&pl->cv);
    if (rc) break;
    /* One idle thread ready for the syncing of new files, made while the
    ** caller rewrites: a first run no longer starts them on the rewriting
    ** side, its critical path (compact_workers.c). One at a time, as the
    ** syncing takes them, and at most as many as it can use: keeping four
    ** idle made a fresh store's 10-segment run start about seven threads,
    ** two of them used. */
    if (pl->spares > 0 && rewrite) {
      pthread_mutex_unlock(&pl->mu);
      int r = tk_cw_add_spare(pl->p->topic->store, 1);
      pl->spares = r < 0 ? 0 : pl->spares - r;
      pthread_mutex_lock(&pl->mu);
    }
    /* Rows of the segments planned, PLAN_AHEAD at a time, after the plan
    ** of the one the caller may wait for is out and its sync thread started */
    if (i + 1 - pl->dropped >= PLAN_AHEAD || i + 1 == pl->ncand) {
      pthread_mutex_unlock(&pl->mu);
      drop_index_rows(pl, i + 1);
      pthread_mutex_lock(&pl->mu);
    }
  }
  if (!rc && !pl->stop && pl->threaded) {
    /* Idle now: the statements of the run's last steps (compaction.c) are
    ** prepared here rather than on the caller's critical path, the first
    ** time a store compacts (about 450,000 instructions) */
    static const int ids[] = {TK_SQL_UPSERT_SEGMENT,    TK_SQL_ADD_SWAP,
                              TK_SQL_MARK_EXPIRED_DEAD, TK_SQL_FORGET_EXPIRED_TOMBSTONES,
                              TK_SQL_TRIM_DEAD,         TK_SQL_SET_CLEAN_UPTO,
                              TK_SQL_KEYS_KEPT};
    takhin_store *s = pl->p->topic->store;
    pthread_mutex_unlock(&pl->mu);
    pthread_mutex_lock(&s->cat_lock);
    tk_cat_prepare_ahead(s, ids, sizeof ids / sizeof *ids);
    pthread_mutex_unlock(&s->cat_lock);
    pthread_mutex_lock(&pl->mu);
  }
  pl->done = 1;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
  return rc;
}

static void plan_main(void *arg) {
  pthread_setname_np(pthread_self(), "takhin-plan"); /* as top and perf show it */
  plan_loop(arg);
}

int tk_plan_start(tk_plan **out, tk_partition *p, tk_segment *const *cand, size_t ncand,
                  int64_t expired_before, int by_caller) {
  tk_plan *pl = calloc(1, sizeof *pl);
  if (!pl) return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
  pl->p = p;
  pl->cand = cand;
  pl->ncand = ncand;
  pl->expired_before = expired_before;
  pl->dead_from = tk_key_dead_from(p);
  for (int k = 0; k < PLAN_AHEAD; k++) pl->slot[k].fd = -1;
  pthread_mutex_init(&pl->mu, NULL);
  pthread_cond_init(&pl->cv, NULL);
  if (by_caller)
    pl->threaded = 1; /* the caller starts the rewriting thread, or calls tk_plan_inline */
  else {
    /* The helper's start (a thread's, on a store's first run; its stack's
    ** faults) was time the caller spent waiting for segment 0: the caller
    ** plans segment 0 itself (tk_plan_get), the helper from 1 on. */
    pl->spares = TK_COMPACT_SYNC_THREADS; /* the plan job reads these from its start, */
    pl->first = pl->dropped = 1;
    pl->threaded = 1; /* threaded too (plan_loop): set before it may run, not after */
    if (!tk_cw_start(p->topic->store, &pl->job, plan_main, pl))
      pl->threaded = 0, pl->spares = 0, pl->first = pl->dropped = 0; /* no job runs */
  }
  *out = pl;
  return TAKHIN_OK;
}

int tk_plan_get(tk_plan *pl, size_t i, const int64_t **keep, size_t *n, int *fd, const char **tmp) {
  plan_slot *slot = &pl->slot[i % PLAN_AHEAD];
  int rc = TAKHIN_OK, mine = 0;
  *fd = -1;
  if (!pl->threaded || i < pl->first) { /* in order, on the caller's thread */
    rc = plan_survivors(pl, i, slot);
    mine = !rc && slot->file == FILE_WANTED;
  } else {
    pthread_mutex_lock(&pl->mu);
    pl->waiting = i + 1;
    while (pl->made <= i && !pl->done) pthread_cond_wait(&pl->cv, &pl->mu);
    pl->waiting = 0;
    while (pl->made > i && slot->file == FILE_HELPER) pthread_cond_wait(&pl->cv, &pl->mu);
    if (pl->made <= i || slot->file == FILE_FAILED) { /* the helper failed on segment i */
      rc = tk_err(pl->rc ? pl->rc : TAKHIN_ECATALOG, "%s",
                  pl->rc ? pl->err : "compaction plan stopped early");
    } else if (slot->file == FILE_WANTED) { /* we were idle: we make it */
      slot->file = FILE_NONE;
      mine = 1;
    } else if (slot->file == FILE_READY) { /* the caller's now */
      *fd = slot->fd;
      slot->fd = -1;
      slot->file = FILE_NONE;
    }
    pthread_mutex_unlock(&pl->mu);
  }
  if (mine) rc = make_file(slot, fd);
  *keep = slot->keep;
  *n = rc ? 0 : slot->n;
  *tmp = slot->tmp;
  return rc;
}

int tk_plan_run(tk_plan *pl) { return plan_loop(pl); }

void tk_plan_inline(tk_plan *pl) { pl->threaded = 0; }

void tk_plan_abort(tk_plan *pl) {
  if (!pl->threaded) return;
  pthread_mutex_lock(&pl->mu);
  pl->stop = 1;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
}

void tk_plan_done(tk_plan *pl, size_t i) {
  if (!pl->threaded) return;
  pthread_mutex_lock(&pl->mu);
  if (i + 1 > pl->freed) pl->freed = i + 1;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
}

void tk_plan_stop(tk_plan *pl) {
  if (!pl) return;
  if (pl->job.taken) {
    tk_plan_abort(pl);
    tk_cw_wait(pl->p->topic->store, &pl->job);
  }
  for (int k = 0; k < PLAN_AHEAD; k++) {
    plan_slot *slot = &pl->slot[k];
    if (slot->fd >= 0) { /* made, never taken: the run ended before it */
      close(slot->fd);
      unlink(slot->tmp);
    }
    free(slot->keep);
    free(slot->gone);
  }
  pthread_mutex_destroy(&pl->mu);
  pthread_cond_destroy(&pl->cv);
  free(pl);
}
