/*
** maintenance.c -- store-wide housekeeping: retention over every topic in
** one call, and the optional background thread (takhin_options.
** maintenance_ms, off by default) that runs it on an interval.
*/
#include <string.h>
#include <time.h>

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
  pthread_setname_np(pthread_self(), "takhin-maint"); /* as top and perf show it */
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
