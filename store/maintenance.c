/*
** maintenance.c -- store-wide housekeeping: retention over every topic in
** one call, the optional background thread (takhin_options.
** maintenance_ms, off by default) that runs it on an interval, and the
** checkpoint thread, which writes the catalog rows a partition holds back
** (the active segment's, partition.c) once it has been idle for
** TK_PERSIST_MS. That thread is made when a partition first holds rows
** back, sleeps while none does, and otherwise looks every half period.
** Sealed segments' index rows a roll or a compaction left owed it writes
** at once instead, TK_PERSIST_BG_CHUNK entries (one run) per transaction without
** append_lock (tk_part_write_owed): the producer does not pay for them. It
** only tries a partition's append_lock (a producer holding it: it looks
** again 200 us later), and, like the maintenance thread, runs SCHED_BATCH
** (tk_thread_init): waking it does not take a producer's core.
*/
#include <errno.h>
#include <string.h>
#include <time.h>

#include "testing.h"

#include "compaction.h"
#include "partition.h"
#include "store.h"

typedef struct maint_acc {
  takhin_retention_result total;
  int first_rc;
} maint_acc;

static void retain_one(tk_partition *p, void *arg) {
  maint_acc *a = arg;
  int rc = tk_part_retention(p, &a->total);
  if (!rc && p->topic->cfg.compact) { /* compaction when the dirty ratio says so */
    takhin_compaction_result cr;
    memset(&cr, 0, sizeof cr);
    rc = tk_part_compact(p, 0, &cr);
  }
  /* A topic being deleted refuses maintenance (ENOTFOUND): not an error of
  ** the store-wide run, which found it in the table a moment before. */
  if (rc == TAKHIN_ENOTFOUND && tk_topic_gone(p->topic)) rc = TAKHIN_OK;
  if (rc && !a->first_rc) a->first_rc = rc;
}

int takhin_maintenance_run(takhin_store *s, takhin_retention_result *out) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_maintenance_run: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  maint_acc a = {{0, 0}, TAKHIN_OK};
  tk_store_each_partition(s, retain_one, &a);
  if (out) *out = a.total;
  return a.first_rc;
}

static void *maint_main(void *arg) {
  takhin_store *s = arg;
  tk_thread_init("takhin-maint", 1);
  pthread_mutex_lock(&s->flusher_mu);
  while (!s->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = s->opt.maintenance_ms;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->flusher_cv, &s->flusher_mu, &ts);
    if (s->stopping) break;
    pthread_mutex_unlock(&s->flusher_mu);
    /* Errors are not lost: the next explicit call reports them; the thread
    ** has no caller to hand them to. */
    takhin_maintenance_run(s, NULL);
    pthread_mutex_lock(&s->flusher_mu);
  }
  pthread_mutex_unlock(&s->flusher_mu);
  return NULL;
}

int tk_maint_start(takhin_store *s) {
  if (s->opt.maintenance_ms <= 0 || s->opt.read_only) return TAKHIN_OK;
  if (pthread_create(&s->maint, NULL, maint_main, s) != 0)
    return tk_err(TAKHIN_ENOMEM, "cannot start the maintenance thread");
  s->maint_running = 1;
  return TAKHIN_OK;
}

/* ---- the checkpoint thread ---------------------------------------------- */

static void checkpoint_one(tk_partition *p, void *arg) {
  int *still = arg;
  if (tk_part_checkpoint_idle(p, tk_now_ms())) *still = 1;
}

typedef struct owed_pass {
  takhin_store *s;
  int wrote, busy;
} owed_pass;

/* One chunk a partition a pass: the pass holds the store's topic list
** (tk_store_each_partition), which a topic's creation or delete waits for,
** and a 1 GiB segment owes 16 chunks, a compaction run one per new segment. */
static void write_owed_one(tk_partition *p, void *arg) {
  owed_pass *o = arg;
  if (__atomic_load_n(&o->s->ckpt_stop, __ATOMIC_RELAXED))
    return; /* closing: its flushes write them */
  int r = tk_part_write_owed(p);
  if (r == 1) o->wrote = 1;
  if (r != 0) o->busy = 1; /* busy, or maybe another chunk */
}

/* One pass over every partition's owed rows: 1 if a partition was busy
** (its locks) or wrote a chunk (it may owe another), to look again. One that
** owes rows the thread cannot write (its segment row is not written yet)
** is left to its producer (partition.c). */
static int write_owed(takhin_store *s, int *wrote) {
  owed_pass o = {s, 0, 0};
  tk_store_each_partition(s, write_owed_one, &o);
  *wrote = o.wrote;
  return o.busy;
}

static void *ckpt_main(void *arg) {
  takhin_store *s = arg;
  tk_thread_init("takhin-ckpt", 1);
  struct timespec ts; /* the next idle look, once kicked */
  int have_ts = 0;
  pthread_mutex_lock(&s->ckpt_mu);
  while (!s->ckpt_stop) {
    if (s->ckpt_owed) {
      s->ckpt_owed = 0;
      pthread_mutex_unlock(&s->ckpt_mu);
      int wrote, busy = write_owed(s, &wrote);
      if (busy && !wrote) { /* the catalog (the key writer) or a producer is busy: a moment */
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
      }
      pthread_mutex_lock(&s->ckpt_mu);
      if (busy) s->ckpt_owed = 1;
      continue;
    }
    if (!s->ckpt_kicked) {
      pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
      continue;
    }
    /* Half a period: rows wait between one and one and a half of them. A
    ** wake-up for owed rows keeps the deadline: rolls elsewhere every few
    ** milliseconds must not put the idle look off for ever. */
    if (!have_ts) {
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += TK_PERSIST_MS / 2 * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      have_ts = 1;
    }
    int waited = pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
    if (s->ckpt_stop) break;
    if (waited != ETIMEDOUT) continue; /* woken early: owed rows first, the same deadline */
    have_ts = 0;
    s->ckpt_kicked = 0;
    pthread_mutex_unlock(&s->ckpt_mu);
    int still = 0;
    tk_store_each_partition(s, checkpoint_one, &still);
    pthread_mutex_lock(&s->ckpt_mu);
    if (still) s->ckpt_kicked = 1;
  }
  pthread_mutex_unlock(&s->ckpt_mu);
  return NULL;
}

#ifdef TAKHIN_TESTING
int tk_ckpt_refuse; /* testing.h */
#else
#define tk_ckpt_refuse 0
#endif

static int ckpt_wake(takhin_store *s, int owed) {
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&s->ckpt_mu);
  if (s->ckpt_stop) {
    rc = TAKHIN_EMISUSE; /* closing: the last flushes write every row */
  } else if (!s->ckpt_running) {
    if (!tk_ckpt_refuse && pthread_create(&s->ckpt, NULL, ckpt_main, s) == 0) s->ckpt_running = 1;
    else rc = TAKHIN_ENOMEM;
  }
  if (!rc && owed && !s->ckpt_owed) {
    s->ckpt_owed = 1;
    pthread_cond_signal(&s->ckpt_cv);
  } else if (!rc && !owed && !s->ckpt_kicked) {
    s->ckpt_kicked = 1;
    pthread_cond_signal(&s->ckpt_cv);
  }
  pthread_mutex_unlock(&s->ckpt_mu);
  return rc;
}

int tk_ckpt_kick(takhin_store *s) { return ckpt_wake(s, 0); }

int tk_ckpt_owe(takhin_store *s) { return ckpt_wake(s, 1); }

void tk_ckpt_stop(takhin_store *s) {
  pthread_mutex_lock(&s->ckpt_mu);
  __atomic_store_n(&s->ckpt_stop, 1, __ATOMIC_RELAXED); /* write_owed_one reads it unlocked */
  pthread_cond_broadcast(&s->ckpt_cv);
  int running = s->ckpt_running;
  s->ckpt_running = 0;
  pthread_mutex_unlock(&s->ckpt_mu);
  if (running) pthread_join(s->ckpt, NULL);
}
