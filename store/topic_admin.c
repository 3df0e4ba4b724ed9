/*
** topic_admin.c -- topic lifecycle: create, delete, list, describe, add
** partitions, alter config.
**
** Catalog and metadata files (topic_meta.c): a topic exists once its rows
** commit; each partition folder then gets its topic.meta. A change (alter,
** add_partitions) writes the files first and the catalog after, so the files
** always hold the newest intent, which recovery trusts (reconcile.c).
**
** A delete marks every partition folder first, renaming it
** "<topic>-<n>.<id>-delete" (as Kafka does), then removes the rows, then the
** folders. A crash in between leaves marked folders, and the next open
** finishes the delete; recovery removes no folder that is not marked.
** Deleting stops appends under every partition's append_lock, so no append
** can be writing into a folder that is being removed, and later calls see
** ENOTFOUND. Before that it waits out the maintenance running on the
** topic's partitions (compaction, retention, DeleteRecords, key-index
** catch-up), holding no store lock while it waits: a step that wrote rows
** after the topic's are gone would leave them to the next topic created,
** which may get the same topic_id (takhin_topic_delete).
*/
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "wait.h"
#include "topic.h"

void tk_clear_dir(const char *dir, int remove_dir) {
  DIR *d = opendir(dir); /* partition folders hold only files: no recursion */
  if (!d) return;
  struct dirent *e;
  char path[TK_PATH_MAX];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, TK_META_FILE))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  /* topic.meta last: a folder a crash or a failed unlink left half removed
  ** still says whose it was (id and creation time), so a "-drop" mark is not
  ** mistaken for a newer topic that reuses the name and id (reconcile.c). */
  snprintf(path, sizeof path, "%s/%s", dir, TK_META_FILE);
  unlink(path);
  if (remove_dir) rmdir(dir);
}

/* Partition folders [from, to) of topic must hold no data: one that does
** is a folder recovery could not give to any topic (kept, never removed),
** and a new partition must neither adopt nor wipe it. */
static int check_free_folders(takhin_store *s, const char *topic, int32_t from, int32_t to) {
  for (int32_t i = from; i < to; i++) {
    char dir[TK_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s-%d", s->data_dir, topic, (int)i);
    DIR *d = opendir(dir);
    if (!d) continue;
    struct dirent *e;
    int busy = 0;
    while (!busy && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, TK_META_FILE) ||
          !strcmp(e->d_name, TK_META_FILE ".tmp"))
        continue;
      char path[TK_PATH_MAX + 256];
      struct stat st;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      busy = lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 0;
    }
    closedir(d);
    if (busy)
      return tk_err(TAKHIN_EEXISTS,
                    "folder %s already holds files that no topic owns (recovery "
                    "keeps such folders): move it away before creating partition %d of \"%s\"",
                    dir, (int)i, topic);
  }
  return TAKHIN_OK;
}

/* Create the folders, first segments and metadata files of partitions
** [from, to) of t. */
static int create_partitions(tk_topic *t, int32_t from, int32_t to) {
  int rc = TAKHIN_OK;
  for (int32_t i = from; i < to && !rc; i++) {
    tk_partition *p = t->parts[i];
    /* check_free_folders let only empty files and a stale topic.meta through */
    tk_clear_dir(p->dir, 0);
    rc = tk_part_create(p);
    pthread_mutex_lock(&p->append_lock);
    if (!rc) rc = tk_meta_write_part(p);
    pthread_mutex_unlock(&p->append_lock);
  }
  return rc;
}

int takhin_topic_create(takhin_store *s, const char *topic, int32_t partitions,
                        const char *const *config) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_create: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  int rc = tk_topic_name_check(topic);
  if (rc) return rc;
  if (partitions < 1 || partitions > TK_MAX_PARTITIONS)
    return tk_err(TAKHIN_EINVAL, "partitions must be in [1, %d], got %d", TK_MAX_PARTITIONS,
                  (int)partitions);
  tk_topic_config cfg;
  tk_config_defaults(&cfg);
  if ((rc = tk_config_apply(&cfg, config))) return rc;
  pthread_rwlock_wrlock(&s->topics_lock);
  if (tk_store_find(s, topic)) {
    rc = tk_err(TAKHIN_EEXISTS, "topic \"%s\" already exists", topic);
    goto out;
  }
  if ((rc = check_free_folders(s, topic, 0, partitions))) goto out;
  int64_t id = 0;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  if (!rc) rc = tk_cat_insert_topic(s, topic, partitions, &cfg, &id);
  for (int32_t i = 0; !rc && i < partitions; i++) rc = tk_cat_insert_partition(s, id, i);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) goto out;
  tk_topic *t = tk_topic_new(s, id, topic, partitions, &cfg);
  if (!t) rc = tk_err(TAKHIN_ENOMEM, "out of memory creating topic \"%s\"", topic);
  if (t) {
    pthread_mutex_lock(&s->cat_lock);
    t->created_ms = tk_cat_topic_created(s, id);
    pthread_mutex_unlock(&s->cat_lock);
  }
  if (!rc) rc = create_partitions(t, 0, partitions);
  if (!rc) rc = tk_store_insert(s, t);
  if (rc) { /* undo: rows, then folders; keep the first error's message */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", takhin_errmsg());
    pthread_mutex_lock(&s->cat_lock);
    tk_cat_delete_topic(s, id);
    pthread_mutex_unlock(&s->cat_lock);
    if (t) {
      for (int32_t i = 0; i < partitions; i++) tk_clear_dir(t->parts[i]->dir, 1);
      tk_topic_unref(t);
    }
    rc = tk_err(rc, "%s", msg);
  }
out:
  pthread_rwlock_unlock(&s->topics_lock);
  return rc;
}

/* Rename partition folders [0, n) of t to their deletion markers (back = 0)
** or back again (back = 1). Returns the first error; *done counts the
** renames made. */
static int mark_folders(tk_topic *t, int32_t n, int back, int32_t *done) {
  takhin_store *s = t->store;
  int rc = TAKHIN_OK;
  for (int32_t i = 0; i < n && !rc; i++) {
    char marked[TK_PATH_MAX];
    tk_delete_marker(s, t->name, i, t->topic_id, marked, sizeof marked);
    const char *from = back ? marked : t->parts[i]->dir, *to = back ? t->parts[i]->dir : marked;
    if (rename(from, to) == 0) {
      if (done) (*done)++;
    } else if (errno != ENOENT) { /* a folder that was never made needs no mark */
      rc = tk_err_sys(errno, "rename (marking for deletion)", from);
    }
  }
  return rc;
}

int tk_topic_gone(const tk_topic *t) {
  if (atomic_load(&t->deleted))
    return tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" was deleted", t->name);
  if (atomic_load(&t->deleting))
    return tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" is being deleted", t->name);
  return TAKHIN_OK;
}

/* Wait out the maintenance steps running on t's partitions: each holds
** its partition's maint_lock from before it first writes a row until after
** its last, and t->deleting (set by the caller) makes every later one stop
** at its start (tk_topic_gone). topics_lock is held only to read the
** partition array (replaced whole when partitions are added; the
** partitions themselves live as long as t), never while waiting: a long
** compaction must not stop the other topics. Partitions added meanwhile
** start with deleting already set, so none of their steps writes a row. */
static void wait_maintenance(takhin_store *s, tk_topic *t) {
  for (int32_t i = 0;; i++) {
    pthread_rwlock_rdlock(&s->topics_lock);
    tk_partition *p = i < t->nparts ? t->parts[i] : NULL;
    pthread_rwlock_unlock(&s->topics_lock);
    if (!p) break;
    pthread_mutex_lock(&p->maint_lock);
    pthread_mutex_unlock(&p->maint_lock);
  }
}

/* The delete proper (topics_lock held for writing; t is in the table and
** no maintenance step runs on it): marks, rows, then the table. */
static int delete_locked(takhin_store *s, tk_topic *t) {
  /* Wait out appends in flight and hold off new ones while the folders are
  ** marked and the rows go (every partition, in order: lock_all's rule). */
  for (int32_t i = 0; i < t->nparts; i++) pthread_mutex_lock(&t->parts[i]->append_lock);
  int32_t marked = 0;
  int rc = mark_folders(t, t->nparts, 0, &marked);
  if (!rc) rc = tk_sync_dir(s->data_dir); /* the marks outlive a power cut before the rows go */
  if (!rc) {
    /* No key rows may land after the topic's are gone (the key-writer
    ** thread takes no append_lock, so it finishes while they are held). */
    for (int32_t i = 0; i < t->nparts; i++) tk_key_wait_written(t->parts[i]);
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_topic(s, t->topic_id);
    pthread_mutex_unlock(&s->cat_lock);
  }
  if (rc) { /* the topic stays as it was: take the marks back */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", takhin_errmsg());
    mark_folders(t, t->nparts, 1, NULL);
    tk_sync_dir(s->data_dir);
    for (int32_t i = t->nparts; i-- > 0;) pthread_mutex_unlock(&t->parts[i]->append_lock);
    return tk_err(rc, "%s", msg);
  }
  atomic_store(&t->deleted, 1); /* later appends see ENOTFOUND */
  for (int32_t i = t->nparts; i-- > 0;) {
    t->parts[i]->wbuf.len = 0; /* BUFFERED batches of a deleted topic go nowhere */
    pthread_mutex_unlock(&t->parts[i]->append_lock);
  }
  tk_store_remove(s, t);
  return TAKHIN_OK;
}

/* A delete first marks the topic (deleting) and waits out the maintenance
** running on its partitions with no store lock held (wait_maintenance);
** then, under topics_lock for writing, it goes on only if the topic is
** still the one in the table: a second delete of the same topic that waited
** beside this one finds it gone (ENOTFOUND), and never deletes a topic of
** the same name created since. Until tk_topic_delete_end, creating the name
** again gets EEXISTS, and maintenance of the topic gets ENOTFOUND. */
int tk_topic_delete_begin(takhin_store *s, const char *topic, tk_topic **out) {
  *out = NULL;
  pthread_rwlock_rdlock(&s->topics_lock);
  tk_topic *t = tk_store_find(s, topic);
  if (t) {
    tk_topic_ref(t); /* ours, while no lock is held */
    atomic_fetch_add(&t->deleting, 1);
  }
  pthread_rwlock_unlock(&s->topics_lock);
  if (!t) return tk_err(TAKHIN_ENOTFOUND, "unknown topic \"%.249s\"", topic);
  wait_maintenance(s, t);
  pthread_rwlock_wrlock(&s->topics_lock);
  if (tk_store_find(s, topic) != t) {
    tk_topic_delete_end(s, t);
    tk_topic_unref(t);
    return tk_err(TAKHIN_ENOTFOUND, "unknown topic \"%.249s\" (deleted meanwhile)", topic);
  }
  *out = t;
  return TAKHIN_OK;
}

void tk_topic_delete_end(takhin_store *s, tk_topic *t) {
  atomic_fetch_sub(&t->deleting, 1); /* deleted, or (failed) live again */
  pthread_rwlock_unlock(&s->topics_lock);
}

int takhin_topic_delete(takhin_store *s, const char *topic) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_delete: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  if (!topic) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  tk_topic *t;
  int rc = tk_topic_delete_begin(s, topic, &t);
  if (rc) return rc;
  rc = delete_locked(s, t);
  tk_topic_delete_end(s, t);
  if (rc) {
    tk_topic_unref(t);
    return rc;
  }
  tk_topic_remove_marked(s, t, tk_delete_marker);
  tk_topic_unref(t); /* ours */
  return TAKHIN_OK;
}

void tk_topic_remove_marked(takhin_store *s, tk_topic *t, tk_marker_fn marker) {
  tk_wait_notify_all(s); /* waiting cursors of the topic return ENOTFOUND */
  for (int32_t i = 0; i < t->nparts; i++) {
    tk_part_retire_files(t->parts[i]);
    char dir[TK_PATH_MAX];
    marker(s, t->name, i, t->topic_id, dir, sizeof dir);
    tk_clear_dir(dir, 1);
  }
  tk_topic_unref(t); /* the table's reference; cursors may keep theirs */
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int takhin_topic_list(takhin_store *s, char ***names, size_t *n) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_list: store is NULL or closed");
  if (!names || !n) return tk_err(TAKHIN_EMISUSE, "takhin_topic_list: NULL argument");
  *names = NULL;
  *n = 0;
  if (s->opt.read_only) tk_store_refresh(s); /* pick up topics the writer created */
  pthread_rwlock_rdlock(&s->topics_lock);
  size_t bytes = (s->ntopics + 1) * sizeof(char *);
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b]; t; t = t->hnext) bytes += strlen(t->name) + 1;
  char **v = malloc(bytes);
  if (!v) {
    pthread_rwlock_unlock(&s->topics_lock);
    return tk_err(TAKHIN_ENOMEM, "out of memory listing topics");
  }
  char *str = (char *)(v + s->ntopics + 1);
  size_t k = 0;
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b]; t; t = t->hnext) {
      size_t len = strlen(t->name) + 1;
      memcpy(str, t->name, len);
      v[k++] = str;
      str += len;
    }
  v[k] = NULL;
  pthread_rwlock_unlock(&s->topics_lock);
  qsort(v, k, sizeof *v, cmp_str);
  *names = v;
  *n = k;
  return TAKHIN_OK;
}

int takhin_topic_partitions(takhin_store *s, const char *topic, int32_t *out) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_partitions: store is NULL or closed");
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_topic_partitions: NULL argument");
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  pthread_rwlock_rdlock(&s->topics_lock);
  *out = t->nparts;
  pthread_rwlock_unlock(&s->topics_lock);
  tk_topic_unref(t);
  return TAKHIN_OK;
}

/* The caller's struct is size bytes (its sizeof(takhin_topic_desc), see
** takhin.h): fill what fits, zero what this library does not know. */
int takhin_topic_describe_size(takhin_store *s, const char *topic, takhin_topic_desc *dst,
                               size_t size) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_describe: store is NULL or closed");
  if (!dst) return tk_err(TAKHIN_EMISUSE, "takhin_topic_describe: NULL argument");
  if (size < offsetof(takhin_topic_desc, partitions) + sizeof dst->partitions)
    return tk_err(TAKHIN_EINVAL, "takhin_topic_describe: size %zu is too small", size);
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  takhin_topic_desc d, *out = &d;
  memset(out, 0, sizeof *out);
  pthread_rwlock_rdlock(&s->topics_lock);
  const tk_topic_config *c = &t->cfg;
  snprintf(out->name, sizeof out->name, "%s", t->name);
  out->partitions = t->nparts;
  tk_config_describe(c, out);
  pthread_rwlock_unlock(&s->topics_lock);
  tk_topic_unref(t);
  memcpy(dst, &d, size < sizeof d ? size : sizeof d);
  if (size > sizeof d) memset((char *)dst + sizeof d, 0, size - sizeof d);
  return TAKHIN_OK;
}

/* Hold every partition's append_lock of t (in partition order, so two
** callers cannot deadlock), making the topic's config safe to change. */
static void lock_all(tk_topic *t, int lock) {
  for (int32_t i = 0; i < t->nparts; i++) {
    if (lock) pthread_mutex_lock(&t->parts[i]->append_lock);
    else pthread_mutex_unlock(&t->parts[i]->append_lock);
  }
}

/* Write the metadata files of partitions [0, n) of t as they would be with
** cfg, partition count nparts, epoch and key_from (NULL: the partitions'
** own); callers hold those partitions' append_locks. */
static int write_metas(tk_topic *t, int32_t n, const tk_topic_config *cfg, int32_t nparts,
                       int64_t epoch, const int64_t *key_from) {
  int rc = TAKHIN_OK;
  for (int32_t i = 0; i < n && !rc; i++) {
    tk_meta m;
    tk_meta_of(t->parts[i], &m);
    m.cfg = *cfg;
    m.partitions = nparts;
    m.epoch = epoch;
    if (key_from) m.key_from = key_from[i];
    rc = tk_meta_write(t->parts[i]->dir, &m);
  }
  return rc;
}

/* After a failed change: put the files back as the store still has it
** (best effort; recovery trusts the higher epoch, so use a new one). */
static void restore_metas(tk_topic *t, int32_t n) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", takhin_errmsg());
  t->meta_epoch += 2;
  write_metas(t, n, &t->cfg, t->nparts, t->meta_epoch, NULL);
  tk_err(TAKHIN_OK, "%s", msg); /* keep the first error's message */
}

int takhin_topic_alter_config(takhin_store *s, const char *topic, const char *const *config) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_alter_config: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  if (!topic) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  pthread_rwlock_wrlock(&s->topics_lock);
  tk_topic *t = topic ? tk_store_find(s, topic) : NULL;
  int rc = TAKHIN_OK;
  int64_t *kf = NULL;
  if (!t) {
    rc = tk_err(TAKHIN_ENOTFOUND, "unknown topic \"%.249s\"", topic ? topic : "(null)");
    goto out;
  }
  tk_topic_config cfg = t->cfg;
  if ((rc = tk_config_apply(&cfg, config))) goto out;
  if (!(kf = malloc((size_t)t->nparts * sizeof *kf))) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory altering topic \"%s\"", t->name);
    goto out;
  }
  lock_all(t, 1);
  /* Switched to compact: records so far have no key rows, so compaction
  ** starts after them. */
  int to_compact = cfg.compact && !t->cfg.compact;
  for (int32_t i = 0; i < t->nparts; i++)
    kf[i] = to_compact ? t->parts[i]->pending_next : t->parts[i]->key_from;
  /* The files first: they hold the intent, which recovery trusts. */
  rc = write_metas(t, t->nparts, &cfg, t->nparts, t->meta_epoch + 1, kf);
  if (!rc) {
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_begin(s);
    if (!rc) rc = tk_cat_update_topic(s, t->topic_id, t->nparts, &cfg);
    for (int32_t i = 0; i < t->nparts && !rc && to_compact; i++)
      rc = tk_key_set_from(s, t->topic_id, i, kf[i]);
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    pthread_mutex_unlock(&s->cat_lock);
  }
  if (rc) {
    restore_metas(t, t->nparts);
  } else {
    for (int32_t i = 0; i < t->nparts && to_compact; i++) {
      tk_key_start_at(t->parts[i], kf[i]); /* lock_all holds its append_lock */
    }
    t->cfg = cfg;
    t->meta_epoch++;
  }
  lock_all(t, 0);
out:
  free(kf);
  pthread_rwlock_unlock(&s->topics_lock);
  return rc;
}

int takhin_topic_add_partitions(takhin_store *s, const char *topic, int32_t total) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_add_partitions: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  if (!topic) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  pthread_rwlock_wrlock(&s->topics_lock);
  tk_topic *t = topic ? tk_store_find(s, topic) : NULL;
  int rc = TAKHIN_OK;
  tk_partition **np = NULL;
  int32_t old = 0;
  if (!t) {
    rc = tk_err(TAKHIN_ENOTFOUND, "unknown topic \"%.249s\"", topic ? topic : "(null)");
    goto out;
  }
  old = t->nparts;
  if (total <= old || total > TK_MAX_PARTITIONS) {
    rc = tk_err(TAKHIN_EINVAL,
                "topic \"%s\" has %d partitions: the new count must be larger "
                "(partitions are never removed) and at most %d, got %d",
                topic, (int)old, TK_MAX_PARTITIONS, (int)total);
    goto out;
  }
  if ((rc = check_free_folders(s, t->name, old, total))) goto out;
  np = calloc((size_t)total, sizeof *np);
  if (!np) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory adding partitions");
    goto out;
  }
  memcpy(np, t->parts, (size_t)old * sizeof *np);
  for (int32_t i = old; i < total && !rc; i++)
    if (!(np[i] = tk_part_new(t, i))) rc = tk_err(TAKHIN_ENOMEM, "out of memory adding partitions");
  if (rc) goto out;
  /* The old partitions' append_locks: retention writes their metadata
  ** files too, and must see the new count once it is there. */
  lock_all(t, 1);
  rc = write_metas(t, old, &t->cfg, total, t->meta_epoch + 1, NULL); /* the intent first */
  pthread_mutex_lock(&s->cat_lock);
  if (!rc) rc = tk_cat_begin(s);
  for (int32_t i = old; i < total && !rc; i++) rc = tk_cat_insert_partition(s, t->topic_id, i);
  if (!rc) rc = tk_cat_update_topic(s, t->topic_id, total, &t->cfg);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) {
    restore_metas(t, old);
    lock_all(t, 0);
    goto out;
  }
  tk_partition **prev = t->parts;
  t->parts = np;
  t->nparts = total;
  t->meta_epoch++;
  for (int32_t i = 0; i < old; i++) pthread_mutex_unlock(&t->parts[i]->append_lock);
  np = prev; /* the old array is freed below; its partitions live on in the new one */
  rc = create_partitions(t, old, total);
  /* If a folder could not be made, the partition stays (its rows are in);
  ** its first append reports the error, and the next open recreates it. */
  free(np);
  np = NULL;
out:
  if (np) {
    for (int32_t i = old; i < total; i++) tk_part_free(np[i]);
    free(np);
  }
  pthread_rwlock_unlock(&s->topics_lock);
  return rc;
}
