/*
** compact_plan.c -- the plan a compaction run follows: for each candidate
** segment, the offsets that survive (sql/compaction.sql "survivors"),
** queried one segment ahead of the rewriting on a helper thread.
**
** A run has two halves of similar weight: stepping the survivors out of
** SQLite (about 75 ns a row) and rewriting the segment files. Neither needs
** the other's resources -- the query holds the catalog lock, the rewrite
** only files -- so the helper queries segment i+1.. while the caller
** rewrites segment i, at most PLAN_AHEAD segments ahead (memory stays
** bounded whatever the partition's size). The catalog lock is still taken
** per segment, never across a rewrite.
**
** Where no thread of ours may run (the SQLite extension's store, whose
** connection belongs to the host) or one cannot be started, tk_plan_get
** runs the query itself, in order: same plan, sequentially.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sqlite_compat.h"

#define PLAN_AHEAD 4

/* Test hook: the survivors query of candidate n (1-based) fails, to prove
** an error on the helper thread reaches the caller and undoes the run. */
int tk_compact_plan_fail_at;

typedef struct plan_slot {
  int64_t *keep;
  size_t n, cap;
} plan_slot;

struct tk_plan {
  tk_partition *p;
  tk_segment *const *cand; /* candidates; NULL entries are skipped */
  size_t ncand;
  int64_t expired_before;
  plan_slot slot[PLAN_AHEAD]; /* segment i's survivors are in slot[i % PLAN_AHEAD] */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t made;  /* segments [0, made) are planned */
  size_t freed; /* the caller is done with segments [0, freed) */
  int done;     /* the helper has stopped (all planned, stopped, or failed) */
  int stop;     /* the caller gives up */
  int rc;       /* the helper's error, with its message in err */
  char err[512];
  int threaded;
  pthread_t th;
};

/* Offsets of [from, to) that survive, sorted, into slot (its array grows
** with realloc and is reused from one segment to the next). */
static int survivors(tk_partition *p, size_t i, const tk_segment *g, int64_t expired_before,
                     plan_slot *slot) {
  takhin_store *s = p->topic->store;
  if (tk_compact_plan_fail_at > 0 && i + 1 == (size_t)tk_compact_plan_fail_at)
    return tk_err(TAKHIN_ECATALOG, "survivors of candidate segment %zu failed (test hook)", i);
  const char *sql = tk_sql("survivors");
  if (!sql) return tk_err(TAKHIN_ECATALOG, "sql/compaction.sql has no statement \"survivors\"");
  int rc = TAKHIN_OK, step;
  slot->n = 0;
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = tk_cat_prepare(s, sql);
  if (!st) {
    pthread_mutex_unlock(&s->cat_lock);
    return TAKHIN_ECATALOG;
  }
  sqlite3_bind_int64(st, 1, p->topic->topic_id);
  sqlite3_bind_int(st, 2, p->id);
  sqlite3_bind_int64(st, 3, g->base_offset);
  sqlite3_bind_int64(st, 4, g->next_offset);
  sqlite3_bind_int64(st, 5, expired_before);
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (slot->n == slot->cap) {
      size_t cap = slot->cap ? slot->cap * 2 : 1024;
      int64_t *v = realloc(slot->keep, cap * sizeof *v);
      if (!v) {
        rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
        break;
      }
      slot->keep = v;
      slot->cap = cap;
    }
    slot->keep[slot->n++] = sqlite3_column_int64(st, 0);
  }
  if (!rc && step != SQLITE_DONE) rc = tk_cat_error(s, "survivors");
  tk_cat_done(s, st);
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

static void *plan_main(void *arg) {
  tk_plan *pl = arg;
  pthread_setname_np(pthread_self(), "takhin-plan"); /* as top and perf show it */
  pthread_mutex_lock(&pl->mu);
  for (size_t i = 0; i < pl->ncand && !pl->stop; i++) {
    while (i - pl->freed >= PLAN_AHEAD && !pl->stop) pthread_cond_wait(&pl->cv, &pl->mu);
    if (pl->stop) break;
    pthread_mutex_unlock(&pl->mu);
    /* slot i % PLAN_AHEAD is free: the caller is done with i - PLAN_AHEAD */
    int rc = pl->cand[i] ? survivors(pl->p, i, pl->cand[i], pl->expired_before, &pl->slot[i % PLAN_AHEAD])
                         : TAKHIN_OK;
    pthread_mutex_lock(&pl->mu);
    if (rc) { /* the error message is per thread: carry it to the caller */
      pl->rc = rc;
      snprintf(pl->err, sizeof pl->err, "%s", takhin_errmsg());
      break;
    }
    pl->made = i + 1;
    pthread_cond_broadcast(&pl->cv);
  }
  pl->done = 1;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
  return NULL;
}

int tk_plan_start(tk_plan **out, tk_partition *p, tk_segment *const *cand, size_t ncand,
                  int64_t expired_before) {
  tk_plan *pl = calloc(1, sizeof *pl);
  if (!pl) return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
  pl->p = p;
  pl->cand = cand;
  pl->ncand = ncand;
  pl->expired_before = expired_before;
  pthread_mutex_init(&pl->mu, NULL);
  pthread_cond_init(&pl->cv, NULL);
  if (!p->topic->store->borrowed && pthread_create(&pl->th, NULL, plan_main, pl) == 0) pl->threaded = 1;
  *out = pl;
  return TAKHIN_OK;
}

int tk_plan_get(tk_plan *pl, size_t i, const int64_t **keep, size_t *n) {
  plan_slot *slot = &pl->slot[i % PLAN_AHEAD];
  if (!pl->threaded) { /* in order, on the caller's thread */
    int rc = pl->cand[i] ? survivors(pl->p, i, pl->cand[i], pl->expired_before, slot) : TAKHIN_OK;
    if (!pl->cand[i]) slot->n = 0;
    *keep = slot->keep;
    *n = slot->n;
    return rc;
  }
  pthread_mutex_lock(&pl->mu);
  while (pl->made <= i && !pl->done) pthread_cond_wait(&pl->cv, &pl->mu);
  int rc = TAKHIN_OK;
  if (pl->made <= i) /* the helper failed on segment i (it cannot have been stopped: we wait) */
    rc = tk_err(pl->rc ? pl->rc : TAKHIN_ECATALOG, "%s", pl->rc ? pl->err : "compaction plan stopped early");
  pthread_mutex_unlock(&pl->mu);
  *keep = slot->keep;
  *n = pl->cand[i] && !rc ? slot->n : 0;
  return rc;
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
  if (pl->threaded) {
    pthread_mutex_lock(&pl->mu);
    pl->stop = 1;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    pthread_join(pl->th, NULL);
  }
  for (int k = 0; k < PLAN_AHEAD; k++) free(pl->slot[k].keep);
  pthread_mutex_destroy(&pl->mu);
  pthread_cond_destroy(&pl->cv);
  free(pl);
}
