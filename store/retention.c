/*
** retention.c -- deleting from the front of a partition's log: the
** retention policy (retention_bytes, retention_ms; whole sealed segments
** only, never the active one) and DeleteRecords. Both decide how many
** segments go and ask the partition to remove them (tk_part_drop_prefix).
** Both refuse a topic deleted or being deleted (tk_topic_gone, under
** maint_lock): a caller that found the partition before a delete must not
** write the log start of a topic_id the next topic may reuse.
*/
#include "partition.h"
#include "store.h"

int tk_part_delete_records(tk_partition *p, int64_t offset) {
  pthread_mutex_lock(&p->maint_lock);
  pthread_mutex_lock(&p->append_lock);
  int rc = tk_topic_gone(p->topic); /* no rows for a topic being deleted (topic_admin.c) */
  if (!rc) rc = tk_part_write_pending(p);
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
  rc = tk_part_drop_prefix(p, ndrop, offset, NULL);
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
  int rc = tk_topic_gone(p->topic); /* no rows for a topic being deleted (topic_admin.c) */
  if (!rc) rc = tk_part_write_pending(p);
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
    rc = tk_part_drop_prefix(p, ndrop, start, out);
  }
out:
  pthread_mutex_unlock(&p->append_lock);
  pthread_mutex_unlock(&p->maint_lock);
  return rc;
}
