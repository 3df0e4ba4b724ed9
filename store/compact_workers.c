/*
** compact_workers.c -- the threads compaction runs its helpers on: the
** plan (compact_plan.c), the syncing of new files and, on the extension's
** store, the rewriting (compaction.c).
**
** A run used to start and join up to five threads of its own. On the
** paravirtualized guests we measure on, each start and exit costs page
** table changes (the stack given back, then faulted in again) that trap to
** the host, and a small compaction paid that on every call. Here a store
** keeps the threads it started: each runs one job at a time and then waits
** for the next, until takhin_close joins them (tk_compact_workers_stop).
** The first run starts them, later runs reuse them; at most TK_CW_MAX exist,
** enough for a few runs of different partitions at once. A thread start
** costs about 0.3 ms there, and a first run's rewriting thread paid five
** (6% of a 10-segment run): the plan, off the critical path, starts the
** syncing threads as idle ones ahead of need (tk_cw_add_spare).
**
** A job is handed over only if a thread can start it at once (one idle, or
** a new one started): the jobs of a run wait for one another (the plan for
** the rewriting, the rewriting for the plan), so a job queued behind
** another could wait forever. When none can, tk_cw_start says so and the
** caller does the work itself, as it did where no thread could be started.
** The threads never touch the catalog themselves; what a job does is its
** own affair (the plan job takes cat_lock as the caller would).
**
** The workers also keep one run's rewriting buffers between runs
** (tk_cw_take_buffers, tk_cw_keep_buffers), for the same reason: freeing
** them gave their pages back (0.1-0.8 ms of munmap at the end of a small
** run) and the next run faulted fresh ones in again, a trap to the host
** per page there.
*/
#include <stdatomic.h>
#include <stdlib.h>

#include "compaction.h"
#include "store.h"

typedef struct tk_cworkers {
  pthread_mutex_t mu;
  pthread_cond_t work;    /* a job queued, or stop */
  pthread_cond_t done;    /* a job finished */
  tk_cw_job *head, *tail; /* queued jobs, each with a thread reserved for it */
  int spare;              /* threads waiting with no job reserved */
  int nth;
  int stop;
  pthread_t th[TK_CW_MAX];
  void *kept; /* a run's buffers, for the next run (freed by kept_free at close) */
  void (*kept_free)(void *);
} tk_cworkers;

static void *cw_main(void *arg) {
  tk_cworkers *w = arg;
  tk_thread_init(NULL, 0); /* each job names it */
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stop) pthread_cond_wait(&w->work, &w->mu);
    if (!w->head) break; /* stopping, and nothing queued */
    tk_cw_job *j = w->head;
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    j->fn(j->arg);
    pthread_mutex_lock(&w->mu);
    j->finished = 1; /* the job's memory is the caller's again from here */
    w->spare++;
    pthread_cond_broadcast(&w->done);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* The store's workers, made on first use (two runs may race to it). */
static tk_cworkers *workers(takhin_store *s) {
  tk_cworkers *w = atomic_load(&s->cworkers);
  if (w) return w;
  tk_cworkers *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  pthread_mutex_init(&n->mu, NULL);
  pthread_cond_init(&n->work, NULL);
  pthread_cond_init(&n->done, NULL);
  if (atomic_compare_exchange_strong(&s->cworkers, &w, n)) return n;
  pthread_mutex_destroy(&n->mu); /* another run made them first: w is theirs */
  pthread_cond_destroy(&n->work);
  pthread_cond_destroy(&n->done);
  free(n);
  return w;
}

int tk_cw_start(takhin_store *s, tk_cw_job *j, void (*fn)(void *), void *arg) {
  tk_cworkers *w = workers(s);
  j->fn = fn;
  j->arg = arg;
  j->next = NULL;
  j->taken = j->finished = 0;
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  int taken = 0;
  if (!w->stop) {
    if (w->spare > 0) {
      w->spare--;
      taken = 1;
    } else if (w->nth < TK_CW_MAX && pthread_create(&w->th[w->nth], NULL, cw_main, w) == 0) {
      w->nth++; /* the new thread is this job's */
      taken = 1;
    }
  }
  if (taken) {
    if (w->tail) w->tail->next = j;
    else w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->work);
  }
  pthread_mutex_unlock(&w->mu);
  j->taken = taken;
  return taken;
}

int tk_cw_add_spare(takhin_store *s, int want) {
  tk_cworkers *w = workers(s);
  if (!w) return -1;
  pthread_mutex_lock(&w->mu);
  int added = 0;
  if (w->stop || (w->spare < want && w->nth >= TK_CW_MAX)) added = -1;
  else if (w->spare < want) added = pthread_create(&w->th[w->nth], NULL, cw_main, w) == 0 ? 1 : -1;
  if (added > 0) {
    w->nth++;
    w->spare++; /* idle from the start: the next tk_cw_start takes it */
  }
  pthread_mutex_unlock(&w->mu);
  return added;
}

void tk_cw_wait(takhin_store *s, tk_cw_job *j) {
  if (!j->taken) return; /* never handed over */
  tk_cworkers *w = atomic_load(&s->cworkers);
  pthread_mutex_lock(&w->mu);
  while (!j->finished) pthread_cond_wait(&w->done, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

void *tk_cw_take_buffers(takhin_store *s) {
  tk_cworkers *w = atomic_load(&s->cworkers);
  if (!w) return NULL;
  pthread_mutex_lock(&w->mu);
  void *b = w->kept;
  w->kept = NULL;
  pthread_mutex_unlock(&w->mu);
  return b;
}

void *tk_cw_kept_buffers(takhin_store *s) {
  tk_cworkers *w = atomic_load(&s->cworkers);
  if (!w) return NULL;
  pthread_mutex_lock(&w->mu);
  void *b = w->kept;
  pthread_mutex_unlock(&w->mu);
  return b;
}

void tk_cw_keep_buffers(takhin_store *s, void *b, void (*free_fn)(void *)) {
  if (!b) return;
  tk_cworkers *w = workers(s);
  if (w) {
    pthread_mutex_lock(&w->mu);
    int kept = !w->kept && !w->stop;
    if (kept) {
      w->kept = b;
      w->kept_free = free_fn;
    }
    pthread_mutex_unlock(&w->mu);
    if (kept) return;
  }
  free_fn(b); /* another run's are kept already, or no workers */
}

void tk_compact_workers_stop(takhin_store *s) {
  tk_cworkers *w = atomic_exchange(&s->cworkers, NULL);
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->nth; i++) pthread_join(w->th[i], NULL);
  if (w->kept) w->kept_free(w->kept);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->done);
  free(w);
}
