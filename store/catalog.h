/*
** catalog.h -- interface to catalog.c (the SQLite catalog: topics,
** partitions, segment and index rows, transactions) and sqlfile.c (the
** named statements in the files of sql/, which every catalog statement is).
*/
#ifndef TAKHIN_CATALOG_H
#define TAKHIN_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "segment.h"
#include "sql_names.h" /* TK_SQL_<NAME>: the ids of the named statements */
#include "topic.h"

struct sqlite3_stmt;

/* ---- rows in memory as a table (catrows.c) ------------------------------ */
/* One row for takhin_rows: integer columns v0..v3 and a blob (which must
** stay valid while the statement runs). */
typedef struct tk_row {
  int64_t v[4];
  const void *blob;
  size_t blob_len;
} tk_row;
/* Positions 0..n-1; get fills *out and returns 1, or 0 where no row is. */
typedef struct tk_rows {
  size_t n;
  void *ctx;
  int (*get)(void *ctx, size_t pos, tk_row *out);
} tk_rows;
/* Make takhin_rows(?) known on a catalog connection (once per connection). */
int tk_cat_rows_register(struct sqlite3 *db);
/* Bind rows to parameter i of st: takhin_rows(?i) yields them. rows must
** stay valid while the statement runs. */
int tk_cat_bind_rows(struct sqlite3_stmt *st, int i, const tk_rows *rows);

/* ---- catalog (catalog.c) --------------------------------------------- */
/* Open the catalog: its own connection, or borrow (the extension's host
** connection, which is then never closed here). */
int tk_cat_open(takhin_store *s, int read_only, struct sqlite3 *borrow);
void tk_cat_close(takhin_store *s);
int tk_cat_begin(takhin_store *s);
int tk_cat_commit(takhin_store *s);
void tk_cat_rollback(takhin_store *s);
int tk_cat_insert_topic(takhin_store *s, const char *name, int32_t nparts,
                        const tk_topic_config *cfg, int64_t *id);
int tk_cat_insert_partition(takhin_store *s, int64_t topic_id, int32_t part);
/* Drop a new partition's dead-offset rows (takhin_cat_dead, _dead_from) an
** older release may have left with a deleted topic of the same topic_id. */
int tk_cat_forget_dead(takhin_store *s, int64_t topic_id, int32_t part);
/* Calls fn for each topic row; fn returns a status. */
int tk_cat_each_topic(takhin_store *s,
                      int (*fn)(takhin_store *, int64_t id, const char *name, int32_t nparts,
                                const tk_topic_config *cfg, void *arg),
                      void *arg);
int tk_cat_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t *out);
int tk_cat_set_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t v);
/* SQLite's data_version: changes whenever another connection (the writer
** process) commits to the catalog. */
int tk_cat_data_version(takhin_store *s, int64_t *out);
typedef struct tk_seg_row {
  int64_t base, next, size, max_ts, created_ms, records;
  int sealed;
} tk_seg_row;
int tk_cat_segments(takhin_store *s, int64_t topic_id, int32_t part, int64_t min_base,
                    tk_seg_row **rows, size_t *n);
/* The index entries of the segment at seg_base (malloc'd, the caller
** frees *rows), read from its runs. OUT *damaged_from: INT64_MAX when every
** run is sound; otherwise the offset from which the entries were dropped
** for a damaged run (tk_index_run_bound), at or below its first_offset: a
** writer deletes the runs from there (tk_cat_delete_index_runs_from). */
int tk_cat_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                 tk_index_entry **rows, size_t *n, int64_t *damaged_from);
int tk_cat_upsert_segment(takhin_store *s, int64_t topic_id, int32_t part, const tk_segment *g);
/* Entries e[0, n) of the segment at seg_base, replacing every entry the
** catalog holds from e[0].offset on: packed runs (index_run.c), one row
** per TK_INDEX_RUN_MAX entries. */
int tk_cat_upsert_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                        const tk_index_entry *e, size_t n);
int tk_cat_delete_segment(takhin_store *s, int64_t topic_id, int32_t part, int64_t base);
int tk_cat_delete_topic(takhin_store *s, int64_t topic_id);
/* The topic_id of name; ENOTFOUND (no message) when there is none. */
int tk_cat_topic_id(takhin_store *s, const char *name, int64_t *id);
int tk_cat_update_topic(takhin_store *s, int64_t topic_id, int32_t nparts,
                        const tk_topic_config *cfg);
/* The named statement id (TK_SQL_*), ready to bind: prepared once per
** connection and cached by id, except on a borrowed connection outside
** tk_cat_begin..commit (see catalog.c). Give it back with tk_cat_done or
** tk_cat_step_done. NULL, with the error set, when it does not prepare. */
struct sqlite3_stmt *tk_cat_stmt(takhin_store *s, int id);
/* Prepare statements ids[0..n) into the cache ahead of their first use, on a
** thread that is idle anyway (own connection only; a failure is left to
** the use to report). cat_lock held. */
void tk_cat_prepare_ahead(takhin_store *s, const int *ids, size_t n);
/* Step a statement that returns no rows, reset it; map errors. */
int tk_cat_step_done(takhin_store *s, struct sqlite3_stmt *st, const char *what);
/* Give back a statement from tk_cat_stmt (reset, or finalized when the
** connection is borrowed). */
void tk_cat_done(takhin_store *s, struct sqlite3_stmt *st);
/* Rows changed by the last statement. */
int64_t tk_cat_changes(takhin_store *s);
/* ECATALOG with SQLite's message. */
int tk_cat_error(takhin_store *s, const char *what);
/* Drop a segment's index entries at or past position (rebuild after a
** rescan, an undone append): exactly those, at once. */
int tk_cat_delete_index_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                             int64_t position);
/* Drop a segment's runs whose first_offset is at or past first_offset
** (those tk_cat_index found damaged, and the ones after them). */
int tk_cat_delete_index_runs_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                                  int64_t first_offset);
/* The catalog connection (reconcile.c reads its last insert rowid). */
struct sqlite3 *tk_cat_db(takhin_store *s);

/* ---- the named statements in sql/ (sqlfile.c) --------------------------- */
/* The SQL of statement id (TK_SQL_*), placeholders expanded; static
** storage. NULL, with the error set, if the embedded files are unusable. */
const char *tk_sql_text(int id);
/* Its name in its file of sql/, for messages. */
const char *tk_sql_name(int id);

#endif /* TAKHIN_CATALOG_H */
