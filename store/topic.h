/*
** topic.h -- interface to the topic files: a topic's configuration
** (topic.c), the topic object, its metadata file beside the data
** (topic_meta.c), create/delete/alter (topic_admin.c) and the open-time
** reconciliation of catalog and folders (reconcile.c).
*/
#ifndef TAKHIN_TOPIC_H
#define TAKHIN_TOPIC_H

#include <stdatomic.h>
#include <stdint.h>

#include "host.h"

#define TK_MAX_BATCH_BYTES (1 << 30) /* hard ceiling whatever the config says */

/* ---- configuration (topic.c) ------------------------------------------- */
typedef struct tk_topic_config {
  int compact;     /* cleanup_policy contains compact */
  int delete_;     /* cleanup_policy contains delete */
  int compression; /* TK_CODEC_* */
  int64_t segment_bytes;
  int64_t segment_ms;
  int64_t retention_bytes;
  int64_t retention_ms;
  int64_t max_message_bytes;
  int64_t delete_retention_ms;
  int64_t min_compaction_lag_ms;
  double min_cleanable_dirty_ratio;
} tk_topic_config;

#include "topic_config.h" /* the table of keys (topic_config.c) */

void tk_config_defaults(tk_topic_config *c);
/* Apply key/value pairs (NULL-terminated array) over c. EINVAL naming the key. */
int tk_config_apply(tk_topic_config *c, const char *const *kv);
const char *tk_config_policy_name(const tk_topic_config *c);
const char *tk_config_codec_name(const tk_topic_config *c);

/* ---- the topic (store.c keeps the table of them) ------------------------ */
struct tk_topic {
  takhin_store *store;
  int64_t topic_id;
  char name[TK_MAX_TOPIC_NAME + 1];
  tk_topic_config cfg;
  int32_t nparts;
  tk_partition *
      *parts; /* replaced whole (topics_lock held for writing) when partitions are added */
  atomic_int refs;
  atomic_int deleted;      /* its rows are gone: appends and reads get ENOTFOUND */
  atomic_int deleting;     /* deletes under way, waiting out maintenance (topic_admin.c) */
  atomic_uint sticky_next; /* round-robin partition for null-key batches */
  tk_topic *hnext;         /* hash chain */
  int64_t created_ms;      /* with name and topic_id: this incarnation (topic_meta.c) */
  int64_t meta_epoch;      /* epoch of its metadata files (topics_lock or every append_lock) */
  int dropping; /* DROP TABLE's COMMIT marked its folders "-drop" (topic_drop.c); topics_lock */
};

void tk_topic_ref(tk_topic *t);
/* ENOTFOUND (message set) when t is deleted or a delete of it is under way,
** else OK. Every maintenance step (compaction, retention, DeleteRecords,
** key-index catch-up) checks it under the partition's maint_lock before it
** writes rows: a delete marks deleting before it takes each maint_lock in
** turn, and removes the rows only after, so a step that starts later never
** writes rows for a topic_id the next topic created may reuse
** (topic_admin.c). */
int tk_topic_gone(const tk_topic *t);
/* The first step of a delete (takhin_topic_delete, DROP TABLE's
** tk_topic_drop_mark): mark the topic deleting, wait out the maintenance
** running on its partitions, and return it (*out, referenced) with
** topics_lock held for writing; tk_topic_delete_end clears the mark and
** releases the lock, the caller then drops its reference. */
int tk_topic_delete_begin(takhin_store *s, const char *topic, tk_topic **out);
void tk_topic_delete_end(takhin_store *s, tk_topic *t);
/* Remove the files of a partition folder and the folder (best effort;
** topic_admin.c). */
void tk_clear_dir(const char *dir, int remove_dir);

/* ---- metadata beside the data (topic_meta.c, reconcile.c) --------------- */
#define TK_META_FILE "topic.meta"
typedef struct tk_meta {
  char name[TK_MAX_TOPIC_NAME + 1];
  int64_t topic_id, created_ms, epoch, log_start, key_from;
  int32_t partitions, partition;
  tk_topic_config cfg;
} tk_meta;
/* Read "<dir>/topic.meta": ENOTFOUND (no message) when there is none,
** EFORMAT naming the bad line when it is unreadable. */
int tk_meta_read(const char *dir, tk_meta *m);
/* Write it atomically (tmp, fsync, rename, fsync dir). */
int tk_meta_write(const char *dir, const tk_meta *m);
int tk_meta_same(const tk_meta *a, const tk_meta *b);
/* The metadata of partition p as the store holds it now; the caller holds
** p's append_lock (or owns p) so no other write of its file races. */
void tk_meta_of(const tk_partition *p, tk_meta *m);
int tk_meta_write_part(tk_partition *p);
/* Open (writer), before the topics load (topics_lock held): finish marked
** deletes and reconcile the catalog with the data folder (reconcile.c). */
int tk_reconcile(takhin_store *s);
/* Open (writer), after the topics loaded: write every metadata file that is
** missing or differs from what the store now holds. */
int tk_reconcile_finish(takhin_store *s);
/* The created_ms of a catalog topic row (0 when unknown). cat_lock held. */
int64_t tk_cat_topic_created(takhin_store *s, int64_t topic_id);
/* The path partition part of topic (topic_id id) is renamed to when it is
** deleted: "<data_dir>/<topic>-<part>.<id>-delete", the topic part
** shortened so the folder name fits in 255 bytes (as Kafka does). */
void tk_delete_marker(const takhin_store *s, const char *topic, int32_t part, int64_t id, char *out,
                      size_t cap);
/* The same with "-drop": the mark of a DROP TABLE whose COMMIT is under way
** (topic_drop.c). On open it is finished only when the catalog no longer
** holds the topic, and renamed back when it does (the COMMIT never
** happened). */
void tk_drop_marker(const takhin_store *s, const char *topic, int32_t part, int64_t id, char *out,
                    size_t cap);
typedef void (*tk_marker_fn)(const takhin_store *s, const char *topic, int32_t part, int64_t id,
                             char *out, size_t cap);
/* The last step of a delete, with the topic out of the table: wake its
** waiting cursors, let its files go, remove its folders (renamed by the
** delete to marker's names) and drop the table's reference (topic_admin.c). */
void tk_topic_remove_marked(takhin_store *s, tk_topic *t, tk_marker_fn marker);

/* ---- DROP TABLE's delete, in two steps (topic_drop.c) --------------------
** The SQLite extension deletes a topic as part of the host's COMMIT, whose
** own commit can still fail after the extension's xSync: so the files may
** only go once that commit is done. */
/* xSync: mark the topic's folders "-drop" and delete its catalog rows inside
** the committing transaction; appends and reads then see ENOTFOUND. Again
** on a marked topic (a COMMIT retried after SQLITE_BUSY, a DROP after a
** rollback that renamed only some folders back): marks what is unmarked. */
int tk_topic_drop_mark(takhin_store *s, const char *topic);
/* xCommit (committed = 1): remove the marked folders and the topic.
** xRollback or a failed commit (committed = 0): rename them back, the topic
** is as it was. A topic not marked: nothing to do. */
int tk_topic_drop_finish(takhin_store *s, const char *topic, int committed);

#endif /* TAKHIN_TOPIC_H */
