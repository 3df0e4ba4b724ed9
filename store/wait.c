/*
** wait.c -- waiting for partitions to grow: the store side of
** takhin_cursor_wait and takhin_cursor_wait_any.
**
** One condition variable per store, a sequence number bumped on every
** append that becomes readable, and per partition a count of the threads
** waiting on it. An append costs one atomic increment and one atomic load;
** it takes the mutex and broadcasts only when someone waits on its
** partition. The variable is the store's rather than the partition's
** because one Kafka Fetch waits on many partitions at once; a waiter that
** wakes for another partition's append re-checks its own and sleeps again.
**
** No wakeup is lost: a waiter registers on its partitions, reads the
** sequence, checks its condition, and sleeps only while the sequence is
** unchanged (read under the mutex). An appender publishes its batch (under
** meta_lock), bumps the sequence, then reads the waiter counts: whichever
** of the two comes second sees the other's write (sequentially consistent
** atomics), so either the waiter sees the new sequence or the appender sees
** the waiter and broadcasts under the mutex.
**
** A read-only handle shares no memory with the writer process and is never
** signalled: its waits poll, re-reading the partition every
** TK_WAIT_POLL_MS. takhin_close wakes every waiter (they return EMISUSE)
** and waits for them to leave before it frees anything.
*/
#include <time.h>

#include "wait.h"
#include "error.h"

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_wait_init(takhin_store *s) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wait_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->wait_mu, NULL);
  atomic_init(&s->wait_seq, 0);
}

void tk_wait_notify(tk_partition *p) {
  takhin_store *s = p->topic->store;
  atomic_fetch_add(&s->wait_seq, 1);
  if (atomic_load(&p->waiters) > 0) {
    pthread_mutex_lock(&s->wait_mu);
    pthread_cond_broadcast(&s->wait_cv);
    pthread_mutex_unlock(&s->wait_mu);
  }
}

void tk_wait_notify_all(takhin_store *s) {
  atomic_fetch_add(&s->wait_seq, 1);
  pthread_mutex_lock(&s->wait_mu);
  pthread_cond_broadcast(&s->wait_cv);
  pthread_mutex_unlock(&s->wait_mu);
}

void tk_wait_close(takhin_store *s) {
  pthread_mutex_lock(&s->wait_mu);
  s->wait_closing = 1;
  atomic_fetch_add(&s->wait_seq, 1);
  pthread_cond_broadcast(&s->wait_cv);
  while (s->wait_active > 0) pthread_cond_wait(&s->wait_cv, &s->wait_mu);
  pthread_mutex_unlock(&s->wait_mu);
}

int tk_wait_for(takhin_store *s, tk_partition *const *parts, size_t n, int (*ready)(void *arg),
                void *arg, int64_t timeout_ms) {
  pthread_mutex_lock(&s->wait_mu);
  if (s->wait_closing) {
    pthread_mutex_unlock(&s->wait_mu);
    return tk_err(TAKHIN_EMISUSE, "the store is closing: nothing more to wait for");
  }
  s->wait_active++;
  pthread_mutex_unlock(&s->wait_mu);
  for (size_t i = 0; i < n; i++) atomic_fetch_add(&parts[i]->waiters, 1);
  int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
  int rc;
  for (;;) {
    uint64_t seq = atomic_load(&s->wait_seq);
    rc = ready(arg);
    if (rc > 0) {
      rc = TAKHIN_OK;
      break;
    }
    if (rc < 0) break;
    int64_t now = mono_ms();
    if (now >= deadline) {
      rc = TAKHIN_END;
      break;
    }
    int64_t until = deadline;
    if (s->opt.read_only && until - now > TK_WAIT_POLL_MS) until = now + TK_WAIT_POLL_MS;
    pthread_mutex_lock(&s->wait_mu);
    if (s->wait_closing) {
      pthread_mutex_unlock(&s->wait_mu);
      rc = tk_err(TAKHIN_EMISUSE, "the store was closed while waiting");
      break;
    }
    if (atomic_load(&s->wait_seq) == seq) {
      if (until == INT64_MAX) {
        pthread_cond_wait(&s->wait_cv, &s->wait_mu);
      } else {
        struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000};
        pthread_cond_timedwait(&s->wait_cv, &s->wait_mu, &ts);
      }
    }
    pthread_mutex_unlock(&s->wait_mu);
  }
  for (size_t i = 0; i < n; i++) atomic_fetch_sub(&parts[i]->waiters, 1);
  pthread_mutex_lock(&s->wait_mu);
  if (--s->wait_active == 0 && s->wait_closing) pthread_cond_broadcast(&s->wait_cv);
  pthread_mutex_unlock(&s->wait_mu);
  return rc;
}
