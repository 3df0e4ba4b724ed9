/*
** vtab_meta.c -- the store's metadata as read-only eponymous tables, and
** retention as a table-valued function:
**
**   takhin_topics         name, partitions, and every topic config
**   takhin_partitions     topic, partition, log_start_offset, high_watermark, size_bytes, segments
**   takhin_segments       topic, partition, base_offset, next_offset, size_bytes, max_timestamp, sealed
**   takhin_group_offsets  group_id, topic, partition, committed_offset, high_watermark, lag, metadata
**   takhin_retention(t)   segments_deleted, bytes_deleted   (applies retention to topic t)
**   takhin_compact(t)     segments_compacted, bytes_reclaimed, records_removed, keys_kept,
**                         duration_ms   (compacts topic t now, whatever its dirty ratio)
**
** Each is small, so xFilter materializes its rows from the C API into an
** array and the cursor walks it. A constraint topic = '...' (or, for the
** function, its argument) narrows the work to one topic. All are
** DIRECTONLY: they read the store's files; takhin_retention and takhin_compact
** rewrite them.
*/
#include <stdio.h>
#include <string.h>

#include "ext.h"

typedef struct cell {
  int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_NULL */
  int64_t i;
  double d;
  char *t; /* sqlite3_malloc'd */
} cell;

typedef struct meta_vtab meta_vtab;
typedef struct meta_cursor meta_cursor;

/* Fill the cursor's rows; topic is the pushed-down topic or NULL. */
typedef int (*meta_fill)(meta_cursor *c, takhin_store *s, const char *topic);

typedef struct meta_def {
  const char *name;
  const char *schema;
  int ncols;     /* visible columns */
  int topic_col; /* column that topic = pushes down to, -1 none */
  int required;  /* the topic argument is required (table-valued function) */
  meta_fill fill;
  int rewrites; /* deletes or rewrites segment files: refused inside a transaction */
} meta_def;

struct meta_vtab {
  sqlite3_vtab base;
  tkx_conn *conn;
  const meta_def *def;
};

struct meta_cursor {
  sqlite3_vtab_cursor base;
  meta_vtab *vt;
  cell *cells; /* rows * ncols */
  size_t rows, cap, at;
  const char *topic_arg;
};

/* ---- filling ------------------------------------------------------------- */

static cell *new_row(meta_cursor *c) {
  int nc = c->vt->def->ncols;
  if (c->rows == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    cell *nv = sqlite3_realloc64(c->cells, cap * (size_t)nc * sizeof *nv);
    if (!nv) return NULL;
    c->cells = nv;
    c->cap = cap;
  }
  cell *r = &c->cells[c->rows++ * (size_t)nc];
  memset(r, 0, (size_t)nc * sizeof *r);
  return r;
}

static void set_i(cell *x, int64_t v) { x->type = SQLITE_INTEGER, x->i = v; }
static void set_d(cell *x, double v) { x->type = SQLITE_FLOAT, x->d = v; }
static int set_t(cell *x, const char *v) {
  if (!v) {
    x->type = SQLITE_NULL;
    return SQLITE_OK;
  }
  x->type = SQLITE_TEXT;
  x->t = sqlite3_mprintf("%s", v);
  return x->t ? SQLITE_OK : SQLITE_NOMEM;
}

static void free_cells(meta_cursor *c) {
  int nc = c->vt->def->ncols;
  for (size_t i = 0; i < c->rows * (size_t)nc; i++) sqlite3_free(c->cells[i].t);
  c->rows = c->at = 0;
}

static int want(const char *filter, const char *name) { return !filter || !strcmp(filter, name); }

static int fill_topics(meta_cursor *c, takhin_store *s, const char *topic) {
  char **names;
  size_t n;
  int rc = takhin_topic_list(s, &names, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    takhin_topic_desc d;
    if (!want(topic, names[i]) || takhin_topic_describe(s, names[i], &d)) continue;
    cell *r = new_row(c);
    if (!r) {
      rc = TAKHIN_ENOMEM;
      break;
    }
    set_t(&r[0], d.name);
    set_i(&r[1], d.partitions);
    for (int k = 0; k < TK_NCONFIGS; k++) { /* the columns of topic_config.h's table */
      const tk_config_def *def = &tk_config_defs[k];
      const char *f = (const char *)&d + def->desc_off;
      cell *x = &r[2 + k];
      if (def->type == TK_CFG_INT) set_i(x, *(const int64_t *)f);
      else if (def->type == TK_CFG_REAL) set_d(x, *(const double *)f);
      else if (set_t(x, f)) rc = TAKHIN_ENOMEM;
    }
  }
  takhin_free(names);
  return rc;
}

/* Rows of one partition (a topic that vanished meanwhile just has none). */
typedef int (*partition_rows)(meta_cursor *c, takhin_store *s, const char *topic, int32_t p);

/* Call fn for every partition of every topic the filter admits. */
static int each_partition(meta_cursor *c, takhin_store *s, const char *topic, partition_rows fn) {
  char **names;
  size_t n;
  int rc = takhin_topic_list(s, &names, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    int32_t np;
    if (!want(topic, names[i]) || takhin_topic_partitions(s, names[i], &np)) continue;
    for (int32_t p = 0; p < np && !rc; p++) rc = fn(c, s, names[i], p);
  }
  takhin_free(names);
  return rc;
}

static int partition_row(meta_cursor *c, takhin_store *s, const char *topic, int32_t p) {
  takhin_partition_info pi;
  if (takhin_partition_info_get(s, topic, p, &pi)) return TAKHIN_OK;
  cell *r = new_row(c);
  if (!r) return TAKHIN_ENOMEM;
  set_t(&r[0], topic);
  set_i(&r[1], p);
  set_i(&r[2], pi.log_start_offset);
  set_i(&r[3], pi.high_watermark);
  set_i(&r[4], pi.size_bytes);
  set_i(&r[5], pi.segments);
  return TAKHIN_OK;
}

static int segment_rows(meta_cursor *c, takhin_store *s, const char *topic, int32_t p) {
  takhin_segment_info *g;
  size_t ng;
  if (takhin_segments_list(s, topic, p, &g, &ng)) return TAKHIN_OK;
  int rc = TAKHIN_OK;
  for (size_t k = 0; k < ng && !rc; k++) {
    cell *r = new_row(c);
    if (!r) {
      rc = TAKHIN_ENOMEM;
      break;
    }
    set_t(&r[0], topic);
    set_i(&r[1], p);
    set_i(&r[2], g[k].base_offset);
    set_i(&r[3], g[k].next_offset);
    set_i(&r[4], g[k].size_bytes);
    set_i(&r[5], g[k].max_timestamp);
    set_i(&r[6], g[k].sealed);
  }
  takhin_free(g);
  return rc;
}

static int fill_partitions(meta_cursor *c, takhin_store *s, const char *topic) {
  return each_partition(c, s, topic, partition_row);
}

static int fill_segments(meta_cursor *c, takhin_store *s, const char *topic) {
  return each_partition(c, s, topic, segment_rows);
}

static int fill_groups(meta_cursor *c, takhin_store *s, const char *topic) {
  takhin_group_offset *g;
  size_t n;
  int rc = takhin_group_list(s, NULL, &g, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    if (!want(topic, g[i].topic)) continue;
    cell *r = new_row(c);
    if (!r) {
      rc = TAKHIN_ENOMEM;
      break;
    }
    set_t(&r[0], g[i].group);
    set_t(&r[1], g[i].topic);
    set_i(&r[2], g[i].partition);
    set_i(&r[3], g[i].committed_offset);
    set_i(&r[4], g[i].high_watermark);
    set_i(&r[5], g[i].lag);
    set_t(&r[6], g[i].metadata);
  }
  takhin_free(g);
  return rc;
}

static int fill_retention(meta_cursor *c, takhin_store *s, const char *topic) {
  takhin_retention_result rr;
  int rc = takhin_retention_apply(s, topic, -1, &rr);
  if (rc) return rc;
  cell *r = new_row(c);
  if (!r) return TAKHIN_ENOMEM;
  set_i(&r[0], rr.segments_deleted);
  set_i(&r[1], rr.bytes_deleted);
  return TAKHIN_OK;
}

static int fill_compact(meta_cursor *c, takhin_store *s, const char *topic) {
  takhin_compaction_result r;
  int rc = takhin_compact(s, topic, -1, 1, &r);
  if (rc) return rc;
  cell *row = new_row(c);
  if (!row) return TAKHIN_ENOMEM;
  set_i(&row[0], r.segments_compacted);
  set_i(&row[1], r.bytes_reclaimed);
  set_i(&row[2], r.records_removed);
  set_i(&row[3], r.keys_kept);
  set_i(&row[4], r.duration_ms);
  return TAKHIN_OK;
}

static const meta_def defs[] = {
    {"takhin_topics", "CREATE TABLE x(name TEXT, partitions INTEGER" TK_CONFIG_COLUMN_DEFS ")",
     2 + TK_NCONFIGS, 0, 0, fill_topics, 0},
    {"takhin_partitions",
     "CREATE TABLE x(topic TEXT, partition INTEGER, log_start_offset INTEGER, high_watermark "
     "INTEGER, size_bytes INTEGER, segments INTEGER)",
     6, 0, 0, fill_partitions, 0},
    {"takhin_segments",
     "CREATE TABLE x(topic TEXT, partition INTEGER, base_offset INTEGER, next_offset INTEGER, "
     "size_bytes INTEGER, max_timestamp INTEGER, sealed INTEGER)",
     7, 0, 0, fill_segments, 0},
    {"takhin_group_offsets",
     "CREATE TABLE x(group_id TEXT, topic TEXT, partition INTEGER, committed_offset INTEGER, "
     "high_watermark INTEGER, lag INTEGER, metadata TEXT)",
     7, 1, 0, fill_groups, 0},
    {"takhin_retention",
     "CREATE TABLE x(segments_deleted INTEGER, bytes_deleted INTEGER, topic HIDDEN)", 2, 2, 1,
     fill_retention, 1},
    {"takhin_compact",
     "CREATE TABLE x(segments_compacted INTEGER, bytes_reclaimed INTEGER, records_removed INTEGER, "
     "keys_kept INTEGER, duration_ms INTEGER, topic HIDDEN)",
     5, 5, 1, fill_compact, 1},
};

/* ---- the module ----------------------------------------------------------- */

static int meta_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err) {
  (void)argc;
  (void)err;
  const meta_def *def = NULL;
  for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
    if (!strcmp(argv[0], defs[i].name)) def = &defs[i];
  if (!def) return SQLITE_ERROR;
  int rc = sqlite3_declare_vtab(db, def->schema);
  if (rc != SQLITE_OK) return rc;
  meta_vtab *vt = sqlite3_malloc(sizeof *vt);
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  vt->conn = aux;
  vt->def = def;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY); /* reads the store; retention deletes */
  *out = &vt->base;
  return SQLITE_OK;
}

static int meta_disconnect(sqlite3_vtab *base) {
  sqlite3_free(base);
  return SQLITE_OK;
}

/* idxNum 1: argv[0] is the topic (an = constraint on the topic column, or
** the function's argument). Nothing else is pushed down. */
static int meta_best_index(sqlite3_vtab *base, sqlite3_index_info *info) {
  meta_vtab *vt = (meta_vtab *)base;
  int found = 0;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn != vt->def->topic_col || c->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c->usable) {
      if (vt->def->required) return SQLITE_CONSTRAINT; /* try another plan */
      continue;
    }
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    found = 1;
    break;
  }
  if (vt->def->required && !found) {
    sqlite3_free(base->zErrMsg);
    base->zErrMsg = sqlite3_mprintf("%s(topic) needs the topic argument", vt->def->name);
    return SQLITE_ERROR;
  }
  info->idxNum = found;
  info->estimatedRows = found ? 10 : 100;
  info->estimatedCost = found ? 10 : 100;
  return SQLITE_OK;
}

static int meta_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out) {
  meta_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->vt = (meta_vtab *)base;
  *out = &c->base;
  return SQLITE_OK;
}

static int meta_close(sqlite3_vtab_cursor *base) {
  meta_cursor *c = (meta_cursor *)base;
  free_cells(c);
  sqlite3_free(c->cells);
  sqlite3_free(c);
  return SQLITE_OK;
}

/* tk_host_run's call of the table's fill (c->topic_arg set). */
static int run_fill(takhin_store *s, void *arg) {
  meta_cursor *c = arg;
  return c->vt->def->fill(c, s, c->topic_arg);
}

static int meta_filter(sqlite3_vtab_cursor *base, int idxNum, const char *idxStr, int argc,
                       sqlite3_value **argv) {
  (void)idxStr;
  meta_cursor *c = (meta_cursor *)base;
  meta_vtab *vt = c->vt;
  free_cells(c);
  const char *topic = NULL;
  if (idxNum && argc > 0) {
    if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
      if (vt->def->required) {
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = sqlite3_mprintf("%s: topic must be text", vt->def->name);
        return SQLITE_ERROR;
      }
      return SQLITE_OK; /* topic = NULL matches nothing */
    }
    topic = (const char *)sqlite3_value_text(argv[0]);
  }
  c->topic_arg = topic;
  if (vt->def->rewrites && tkx_in_transaction(vt->conn->db)) {
    /* The catalog rows would roll back with the transaction (the user's, or
    ** that of a statement that writes, INSERT ... SELECT), the files could
    ** not. */
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg =
        sqlite3_mprintf("takhin: %s deletes or rewrites segment files, which a ROLLBACK "
                        "cannot bring back: run it outside a transaction, in a SELECT "
                        "of its own",
                        vt->def->name);
    return SQLITE_ERROR;
  }
  char *msg = NULL;
  takhin_store *s = tkx_store(vt->conn, &msg);
  if (!s) {
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = msg;
    return SQLITE_ERROR;
  }
  /* Called from a read-only statement: group each set of catalog writes. */
  int rc = tk_host_run(s, vt->def->rewrites, run_fill, c);
  if (rc == TAKHIN_ENOMEM) return SQLITE_NOMEM;
  if (rc) {
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = rc == TAKHIN_EREADONLY && vt->conn->read_only
                           ? sqlite3_mprintf("%s", TKX_LOCKED_MSG)
                           : tkx_errmsg(rc);
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

static int meta_next(sqlite3_vtab_cursor *base) {
  ((meta_cursor *)base)->at++;
  return SQLITE_OK;
}

static int meta_eof(sqlite3_vtab_cursor *base) {
  meta_cursor *c = (meta_cursor *)base;
  return c->at >= c->rows;
}

static int meta_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col) {
  meta_cursor *c = (meta_cursor *)base;
  const meta_def *d = c->vt->def;
  if (col >= d->ncols) { /* the hidden argument */
    if (c->topic_arg) sqlite3_result_text(ctx, c->topic_arg, -1, SQLITE_TRANSIENT);
    return SQLITE_OK;
  }
  const cell *x = &c->cells[c->at * (size_t)d->ncols + (size_t)col];
  switch (x->type) {
  case SQLITE_INTEGER: sqlite3_result_int64(ctx, x->i); break;
  case SQLITE_FLOAT: sqlite3_result_double(ctx, x->d); break;
  case SQLITE_TEXT: sqlite3_result_text(ctx, x->t, -1, SQLITE_TRANSIENT); break;
  default: sqlite3_result_null(ctx);
  }
  return SQLITE_OK;
}

static int meta_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid) {
  *rowid = (sqlite3_int64)((meta_cursor *)base)->at;
  return SQLITE_OK;
}

static sqlite3_module meta_module = {
    .iVersion = 0,
    .xConnect = meta_connect,
    .xBestIndex = meta_best_index,
    .xDisconnect = meta_disconnect,
    .xOpen = meta_open,
    .xClose = meta_close,
    .xFilter = meta_filter,
    .xNext = meta_next,
    .xEof = meta_eof,
    .xColumn = meta_column,
    .xRowid = meta_rowid,
};

int tkx_register_meta(sqlite3 *db, tkx_conn *c) {
  for (size_t i = 0; i < sizeof defs / sizeof *defs; i++) {
    tkx_conn_ref(c);
    int rc = sqlite3_create_module_v2(db, defs[i].name, &meta_module, c, tkx_conn_unref);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}
