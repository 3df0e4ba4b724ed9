/*
** reaper.c -- releases segments whose files are gone (replaced by
** compaction, deleted by retention) on a thread of its own.
**
** Such a segment's file is already unlinked, or its path already names the
** compacted file; what is left is the last close of its descriptor, and
** with it the kernel freeing the file's cached pages and inode: about
** 0.4 ms per MiB, a quarter of a compaction run, and under the partition's
** append lock for retention. Kafka defers the same work
** (file.delete.delay.ms); here the caller hands the segments over and goes
** on, and one thread per store, started on first use, releases them.
**
** Nothing changes for readers: a cursor holding such a segment keeps its
** reference and its bytes until it lets go. Each queued segment also holds
** a reference to its topic, so a topic deleted meanwhile stays allocated
** until its segments are released. takhin_close drains the queue and joins
** the thread before anything else is freed (in the SQLite extension that is
** when the connection closes, before SQLite unloads the extension). The
** thread never touches the catalog. A hand-over that cannot be queued (out
** of memory, no thread) releases inline.
*/
#include <stdlib.h>

#include "segment.h"
#include "store.h"
#include "topic.h"

struct tk_reap_item {
  tk_topic *topic;
  tk_segment *seg;
};

static void release(tk_topic *t, tk_segment *g) {
  tk_seg_unref(g);
  tk_topic_unref(t);
}

static void *reaper_main(void *arg) {
  takhin_store *s = arg;
  tk_thread_init("takhin-reaper", 1);
  pthread_mutex_lock(&s->reap_mu);
  for (;;) {
    while (s->reap_n == 0 && !s->reap_stop) pthread_cond_wait(&s->reap_cv, &s->reap_mu);
    if (s->reap_n == 0) break; /* stopping, and nothing left */
    struct tk_reap_item it = s->reap_q[--s->reap_n];
    pthread_mutex_unlock(&s->reap_mu);
    release(it.topic, it.seg);
    pthread_mutex_lock(&s->reap_mu);
  }
  pthread_mutex_unlock(&s->reap_mu);
  return NULL;
}

void tk_reap(takhin_store *s, tk_topic *t, tk_segment *g) {
  pthread_mutex_lock(&s->reap_mu);
  int queued = 0;
  if (!s->reap_stop) {
    (void)TK_ARRAY_GROW(s->reap_q, s->reap_n, s->reap_cap, 64); /* failing: see below */
    if (!s->reaper_running && s->reap_n < s->reap_cap &&
        pthread_create(&s->reaper, NULL, reaper_main, s) == 0)
      s->reaper_running = 1;
    if (s->reaper_running && s->reap_n < s->reap_cap) {
      s->reap_q[s->reap_n++] = (struct tk_reap_item){t, g};
      pthread_cond_signal(&s->reap_cv);
      queued = 1;
    }
  }
  pthread_mutex_unlock(&s->reap_mu);
  if (!queued) release(t, g);
}

void tk_reaper_drain(takhin_store *s) {
  pthread_mutex_lock(&s->reap_mu);
  s->reap_stop = 1;
  pthread_cond_signal(&s->reap_cv);
  int running = s->reaper_running;
  pthread_mutex_unlock(&s->reap_mu);
  if (running) pthread_join(s->reaper, NULL);
  /* The thread empties the queue before it exits; without one it is empty. */
  pthread_mutex_lock(&s->reap_mu);
  s->reaper_running = 0;
  s->reap_stop = 0;
  while (s->reap_n) {
    struct tk_reap_item it = s->reap_q[--s->reap_n];
    release(it.topic, it.seg);
  }
  free(s->reap_q);
  s->reap_q = NULL;
  s->reap_cap = 0;
  pthread_mutex_unlock(&s->reap_mu);
}
