/*
** topic_drop.c -- DROP TABLE's delete of a topic (the SQLite extension,
** sqlite_ext/drop.c), in two steps around the host's commit.
**
** The extension deletes a topic in the COMMIT of the transaction that
** dropped its table: the catalog rows must go inside that transaction, so in
** its xSync, but SQLite's own commit comes after every xSync and can still
** fail (an I/O error, a commit hook, a crash). The segment files are the
** truth, so they go only after that commit:
**   tk_topic_drop_mark    (xSync)  renames every partition folder to
**                                  "<topic>-<n>.<id>-drop" and deletes the
**                                  rows in the committing transaction;
**   tk_topic_drop_finish  (xCommit) removes the marked folders, or
**                         (xRollback, a failed commit) renames them back.
** A crash in between leaves "-drop" marks: the next open (reconcile.c) puts
** back those whose topic the catalog still holds (the commit never
** happened) and removes the others (it did). The C API's delete uses
** "-delete" marks instead, which recovery always finishes (topic_admin.c).
** Between the steps the topic stays in the topic table, flagged dropping and
** deleted: appends and cursors see ENOTFOUND rather than missing files.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "topic.h"

/* Rename partition folders of t to their "-drop" marks (back = 0) or back
** (back = 1). A folder not there needs no rename (never made, or a
** rename done by an earlier call). Returns the first error; the caller
** holds every append_lock. */
static int drop_rename(tk_topic *t, int back) {
  int rc = TAKHIN_OK;
  for (int32_t i = 0; i < t->nparts; i++) {
    char marked[TK_PATH_MAX];
    tk_drop_marker(t->store, t->name, i, t->topic_id, marked, sizeof marked);
    const char *from = back ? marked : t->parts[i]->dir, *to = back ? t->parts[i]->dir : marked;
    if (rename(from, to) != 0 && errno != ENOENT && !rc)
      rc = tk_err_sys(errno,
                      back ? "rename (restoring a dropped topic's folder)"
                           : "rename (marking a dropped topic's folder)",
                      from);
  }
  return rc;
}

static void lock_parts(tk_topic *t, int lock) {
  for (int32_t i = 0; i < t->nparts; i++) {
    if (lock) pthread_mutex_lock(&t->parts[i]->append_lock);
    else pthread_mutex_unlock(&t->parts[i]->append_lock);
  }
}

int tk_topic_drop_mark(takhin_store *s, const char *topic) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "tk_topic_drop_mark: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  if (!topic) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  /* Running compactions and the like end first (no row of the topic may
  ** land after its rows go); topics_lock is then held for writing. */
  tk_topic *t;
  int rc = tk_topic_delete_begin(s, topic, &t);
  if (rc) return rc;
  /* Appends in flight finish first and later ones wait (lock_all's order). */
  lock_parts(t, 1);
  /* Marked already (a COMMIT retried after SQLITE_BUSY, or a rollback that
  ** could rename only some folders back): the rename again is a no-op for
  ** the folders still marked (ENOENT) and marks those renamed back, which
  ** xCommit would otherwise leave, rowless, for the next open to adopt. */
  rc = drop_rename(t, 0);
  /* the marks outlive a power cut before the rows go */
  if (!rc) rc = tk_sync_dir(s->data_dir);
  if (!rc) {
    /* No key rows may land after the topic's are gone (the key-writer
    ** thread takes no append_lock, so it finishes while they are held). */
    for (int32_t i = 0; i < t->nparts; i++) tk_key_wait_written(t->parts[i]);
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_topic(s, t->topic_id);
    pthread_mutex_unlock(&s->cat_lock);
  }
  if (rc && !t->dropping) { /* the topic stays as it was: take the marks back */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", takhin_errmsg());
    drop_rename(t, 1);
    tk_sync_dir(s->data_dir);
    rc = tk_err(rc, "%s", msg);
  } else if (!rc) {
    t->dropping = 1;
    atomic_store(&t->deleted, 1); /* appends and cursors: ENOTFOUND until the commit ends */
  }
  lock_parts(t, 0);
  tk_topic_delete_end(s, t);
  tk_topic_unref(t);
  return rc;
}

int tk_topic_drop_finish(takhin_store *s, const char *topic, int committed) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "tk_topic_drop_finish: store is NULL or closed");
  if (!topic) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  pthread_rwlock_wrlock(&s->topics_lock);
  tk_topic *t = tk_store_find(s, topic);
  if (!t || !t->dropping) {
    pthread_rwlock_unlock(&s->topics_lock);
    return TAKHIN_OK;
  }
  lock_parts(t, 1);
  if (!committed) {
    int rc = drop_rename(t, 1);
    int src = tk_sync_dir(s->data_dir);
    if (!rc) rc = src;
    if (!rc) {
      t->dropping = 0;
      atomic_store(&t->deleted, 0);
    } else {
      /* Left dropping: the rows are back, so the next open renames the
      ** marks back (reconcile.c); until then the topic reads ENOTFOUND. */
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", takhin_errmsg());
      rc = tk_err(rc,
                  "%s: topic \"%s\" stays unusable until the store is opened again, which "
                  "restores its folders",
                  msg, t->name);
    }
    lock_parts(t, 0);
    pthread_rwlock_unlock(&s->topics_lock);
    return rc;
  }
  for (int32_t i = 0; i < t->nparts; i++)
    t->parts[i]->wbuf.len = 0; /* BUFFERED batches of a deleted topic go nowhere */
  lock_parts(t, 0);
  tk_store_remove(s, t);
  pthread_rwlock_unlock(&s->topics_lock);
  tk_topic_remove_marked(s, t, tk_drop_marker);
  return TAKHIN_OK;
}
