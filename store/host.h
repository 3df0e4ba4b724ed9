/*
** host.h -- the store as the SQLite extension (sqlite_ext/) sees it: a
** store opened on the host's own connection, topics and partitions by
** name, appends that an SQL transaction can take back (mark/undo), and the
** segments that keep zero-copy column values alive. The types stay opaque
** here; everything else about the store is none of the extension's business.
*/
#ifndef TAKHIN_HOST_H
#define TAKHIN_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "takhin.h"
#include "topic_config.h" /* the table of topic configs: CREATE keys, takhin_topics columns */

struct sqlite3;

typedef struct tk_topic tk_topic;
typedef struct tk_partition tk_partition;
typedef struct tk_segment tk_segment;

#define TK_MAX_TOPIC_NAME 249
#define TK_MAX_PARTITIONS 100000

/* takhin_open on the extension's host connection (no threads of ours may
** then touch the catalog: BUFFERED and maintenance_ms are refused). */
int tk_open_borrowed(struct sqlite3 *db, const char *path, const takhin_options *opt,
                     takhin_store **out);
/* A statement that writes is running on db (its transaction holds ours). */
int tk_sql_writer_active(struct sqlite3 *db);
/* fn(s, arg), its status returned. grouped (borrowed catalog, a call made
** from a read-only statement): the catalog write groups fn makes
** (tk_cat_begin..commit) each run in a savepoint of their own, which they
** would otherwise lack (catalog.c). */
int tk_host_run(takhin_store *s, int grouped, int (*fn)(takhin_store *s, void *arg), void *arg);

/* Kafka's topic-name rule; EINVAL with a message quoting it (topic.c). */
int tk_topic_name_check(const char *name);
/* Find a topic by name and take a reference (tk_topic_unref when done). */
int tk_store_topic(takhin_store *s, const char *name, tk_topic **out);
/* ... and its partition part (store.c). */
int tk_store_partition(takhin_store *s, const char *topic, int32_t part, tk_topic **t,
                       tk_partition **p);
void tk_topic_unref(tk_topic *t);
/* What the extension needs of a topic in hand: its catalog id (for rowids),
** and what an INSERT checks a row against, read under topics_lock as
** takhin_topic_describe does (configs change under it) (store.c). */
typedef struct tk_topic_limits {
  int64_t topic_id;
  int32_t partitions;
  int64_t max_message_bytes;
  int compacted;
} tk_topic_limits;
void tk_topic_limits_get(takhin_store *s, tk_topic *t, tk_topic_limits *out);

/* Append records to a partition in hand (partition.c). */
int tk_part_append(tk_partition *p, const takhin_record *recs, size_t n, int64_t *first);
/* Where the log ends now, to undo the appends made after it: the SQL
** extension's COMMIT appends one batch per partition and must take back
** those already written if a later one fails (all or nothing). An append
** only ever changes the newest index entry's timestamps, so those are all
** the mark keeps of it. */
typedef struct tk_part_mark {
  size_t nsegs;
  int64_t size, next_offset, max_ts, last_idx_pos;
  size_t idx_n;
  int64_t last_entry_max_ts, last_entry_run_max;
  int64_t key_upto;
  uint64_t persists;
} tk_part_mark;
void tk_part_mark_get(tk_partition *p, tk_part_mark *m);
/* Cut the log back to m. EINVAL when it cannot (a segment rolled since). */
int tk_part_undo(tk_partition *p, const tk_part_mark *m);

/* A segment's references (segment.c): a ref keeps its mapping valid. */
void tk_seg_ref(tk_segment *g);
void tk_seg_unref(tk_segment *g);
/* The segment whose read-only mapping holds bytes [p, p + n) of the record
** c returned last, or NULL when they are elsewhere (a pread buffer, a
** decompressed batch). The mapping, and the bytes in it, last as long as
** the segment does: a ref (tk_seg_ref) keeps them valid after c moves on
** (cursor.c). */
tk_segment *tk_cursor_mapped_seg(const takhin_cursor *c, const void *p, size_t n);
/* g's whole mapping (NULL if it has none yet), which a ref keeps valid the
** same way; *len gets its length. */
const void *tk_seg_mapping(const tk_segment *g, size_t *len);

#endif /* TAKHIN_HOST_H */
