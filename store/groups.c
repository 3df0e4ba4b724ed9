/*
** groups.c -- consumer group offsets, Kafka's __consumer_offsets as catalog
** rows: commit (atomic across partitions), fetch, list with lag, delete.
** Offsets are checked against the partitions' high watermarks first, so a
** group can never record having read past the end of a log.
*/
#include "sqlite_compat.h"
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "partition.h"
#include "store.h"

#define MAX_GROUP_ID 1024

static int check_group(const char *group) {
  if (!group || !*group) return tk_err(TAKHIN_EINVAL, "group id is NULL or empty");
  if (strlen(group) > MAX_GROUP_ID)
    return tk_err(TAKHIN_EINVAL, "group id is longer than %d bytes", MAX_GROUP_ID);
  return TAKHIN_OK;
}

int takhin_group_commit(takhin_store *s, const char *group, const takhin_offset_commit *offsets,
                        size_t n) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_group_commit: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  int rc = check_group(group);
  if (rc) return rc;
  if (!offsets || n == 0) return tk_err(TAKHIN_EINVAL, "takhin_group_commit: no offsets");
  if (n > SIZE_MAX / sizeof(int64_t))
    return tk_err(TAKHIN_EINVAL, "takhin_group_commit: %zu offsets cannot be held in memory", n);
  /* Validate everything before writing anything: the commit is atomic. */
  int64_t *ids = malloc(n * sizeof *ids);
  if (!ids) return tk_err(TAKHIN_ENOMEM, "out of memory committing offsets");
  for (size_t i = 0; i < n && !rc; i++) {
    const takhin_offset_commit *o = &offsets[i];
    tk_topic *t;
    tk_partition *p;
    if ((rc = tk_store_partition(s, o->topic, o->partition, &t, &p))) break;
    ids[i] = t->topic_id;
    int64_t hwm;
    tk_part_offsets(p, NULL, &hwm, NULL);
    if (o->offset < 0 || o->offset > hwm)
      rc = tk_err(TAKHIN_ERANGE,
                  "cannot commit offset %lld for %s-%d: out of range [0, %lld] "
                  "(the high watermark)",
                  (long long)o->offset, o->topic, (int)o->partition, (long long)hwm);
    tk_topic_unref(t);
  }
  if (!rc) {
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_begin(s);
    int64_t now = tk_now_ms();
    for (size_t i = 0; i < n && !rc; i++) {
      sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_COMMIT_OFFSET);
      if (!st) {
        rc = TAKHIN_ECATALOG;
        break;
      }
      sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 2, ids[i]);
      sqlite3_bind_int(st, 3, offsets[i].partition);
      sqlite3_bind_int64(st, 4, offsets[i].offset);
      if (offsets[i].metadata) sqlite3_bind_text(st, 5, offsets[i].metadata, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 6, now);
      rc = tk_cat_step_done(s, st, "commit group offset");
    }
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    pthread_mutex_unlock(&s->cat_lock);
  }
  free(ids);
  return rc;
}

static char *dup_or_null(const unsigned char *t) {
  if (!t) return NULL;
  size_t n = strlen((const char *)t) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, t, n);
  return c;
}

int takhin_group_fetch(takhin_store *s, const char *group, const char *topic, int32_t partition,
                       int64_t *offset, char **metadata) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_group_fetch: store is NULL or closed");
  if (!offset) return tk_err(TAKHIN_EMISUSE, "takhin_group_fetch: NULL argument");
  if (metadata) *metadata = NULL;
  int rc = check_group(group);
  if (rc) return rc;
  tk_topic *t;
  tk_partition *p;
  if ((rc = tk_store_partition(s, topic, partition, &t, &p))) return rc;
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_FETCH_OFFSET);
  if (!st) {
    rc = TAKHIN_ECATALOG;
  } else {
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, t->topic_id);
    sqlite3_bind_int(st, 3, partition);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
      *offset = sqlite3_column_int64(st, 0);
      if (metadata) *metadata = dup_or_null(sqlite3_column_text(st, 1));
    } else if (step == SQLITE_DONE) {
      rc = tk_err(TAKHIN_ENOTFOUND, "group \"%.200s\" has no offset for %s-%d", group, topic,
                  (int)partition);
    } else {
      rc = tk_cat_error(s, "fetch group offset");
    }
    tk_cat_done(s, st);
  }
  pthread_mutex_unlock(&s->cat_lock);
  tk_topic_unref(t);
  return rc;
}

int takhin_group_list(takhin_store *s, const char *group, takhin_group_offset **out, size_t *n) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_group_list: store is NULL or closed");
  if (!out || !n) return tk_err(TAKHIN_EMISUSE, "takhin_group_list: NULL argument");
  *out = NULL;
  *n = 0;
  /* Two passes over one statement: sizes first, so the result is one block
  ** the caller frees with a single takhin_free. */
  int rc = TAKHIN_OK;
  size_t rows = 0, strbytes = 0;
  takhin_group_offset *v = NULL;
  pthread_mutex_lock(&s->cat_lock);
  for (int pass = 0; pass < 2 && !rc; pass++) {
    sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_LIST_OFFSETS);
    if (!st) {
      rc = TAKHIN_ECATALOG;
      break;
    }
    if (group) sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    char *str = v ? (char *)(v + rows) : NULL;
    size_t k = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
      const char *cols[3] = {(const char *)sqlite3_column_text(st, 0),
                             (const char *)sqlite3_column_text(st, 1),
                             (const char *)sqlite3_column_text(st, 4)};
      if (pass == 0) {
        rows++;
        for (int c = 0; c < 3; c++) strbytes += cols[c] ? strlen(cols[c]) + 1 : 0;
        continue;
      }
      if (k == rows) break; /* rows appeared between the passes: cat_lock forbids it */
      takhin_group_offset *g = &v[k++];
      const char **dst[3] = {&g->group, &g->topic, &g->metadata};
      for (int c = 0; c < 3; c++) {
        *dst[c] = NULL;
        if (!cols[c]) continue;
        size_t len = strlen(cols[c]) + 1;
        memcpy(str, cols[c], len);
        *dst[c] = str;
        str += len;
      }
      g->partition = sqlite3_column_int(st, 2);
      g->committed_offset = sqlite3_column_int64(st, 3);
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW) rc = tk_cat_error(s, "list group offsets");
    tk_cat_done(s, st);
    if (pass == 0 && !rc && !(v = malloc(rows * sizeof *v + strbytes + 1)))
      rc = tk_err(TAKHIN_ENOMEM, "out of memory listing group offsets");
  }
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) {
    free(v);
    return rc;
  }
  for (size_t i = 0; i < rows; i++) { /* lag against the live high watermark */
    takhin_partition_info pi;
    if (takhin_partition_info_get(s, v[i].topic, v[i].partition, &pi) == TAKHIN_OK) {
      v[i].high_watermark = pi.high_watermark;
      v[i].lag = pi.high_watermark - v[i].committed_offset;
    } else {
      v[i].high_watermark = -1;
      v[i].lag = -1;
    }
  }
  *out = v;
  *n = rows;
  return TAKHIN_OK;
}

int takhin_group_delete(takhin_store *s, const char *group) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_group_delete: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  int rc = check_group(group);
  if (rc) return rc;
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_DELETE_GROUP);
  if (!st) {
    rc = TAKHIN_ECATALOG;
  } else {
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    rc = tk_cat_step_done(s, st, "delete group");
    if (!rc && tk_cat_changes(s) == 0)
      rc = tk_err(TAKHIN_ENOTFOUND, "group \"%.200s\" has no committed offsets", group);
  }
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}
