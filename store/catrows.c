/*
** catrows.c -- takhin_rows(?), a table-valued function over rows held in
** memory, so that one execution of one statement writes a whole batch of
** catalog rows (a persist's index entries, a map of key rows):
**
**   INSERT INTO t(...) SELECT ?1, ?2, v0, v1, blob FROM takhin_rows(?3)
**
** with ?3 bound by tk_cat_bind_rows to a tk_rows (sqlite3_bind_pointer, so
** only C code can pass one; from SQL the argument is NULL and the function
** yields nothing). A statement run per row costs SQLite a few allocations
** (its cursors and records live only until the statement ends, and the
** system library has no lookaside) and the setup and teardown of a run;
** once per batch those vanish from the per-record cost of producing.
**
** Columns: v0..v3 (integers), blob (a blob, SQLITE_STATIC: valid while the
** statement runs), src (hidden: the argument). Rowids are the positions.
** xBestIndex: the only plan takes src by equality (idxNum 1, argv[0] = the
** pointer); without it the plan is refused.
*/
#include <string.h>

#include "catalog.h"
#include "sqlite_compat.h"

#define ROWS_PTR_TYPE "takhin_rows"

enum { COL_V0, COL_V1, COL_V2, COL_V3, COL_BLOB, COL_SRC };

typedef struct rows_cursor {
  sqlite3_vtab_cursor base;
  const tk_rows *rows;
  size_t pos;
  int have; /* row holds the row at pos */
  tk_row row;
} rows_cursor;

typedef struct rows_vtab {
  sqlite3_vtab base;
  rows_cursor cur; /* reused: a catalog statement opens one cursor at a time */
  int cur_busy;
} rows_vtab;

static int rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err) {
  (void)aux, (void)argc, (void)argv, (void)err;
  int rc =
      sqlite3_declare_vtab(db, "CREATE TABLE x(v0 INTEGER, v1 INTEGER, v2 INTEGER, v3 INTEGER, "
                               "blob BLOB, src HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  /* It reads memory a C caller points it at, never files: innocuous. */
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  rows_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  *out = &v->base;
  return SQLITE_OK;
}

static int rows_disconnect(sqlite3_vtab *vt) {
  sqlite3_free(vt);
  return SQLITE_OK;
}

static int rows_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
  rows_vtab *v = (rows_vtab *)vt;
  rows_cursor *c;
  if (!v->cur_busy) { /* the steady state: no allocation */
    c = &v->cur;
    v->cur_busy = 1;
  } else {
    c = sqlite3_malloc(sizeof *c);
    if (!c) return SQLITE_NOMEM;
  }
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int rows_close(sqlite3_vtab_cursor *cur) {
  rows_vtab *v = (rows_vtab *)cur->pVtab;
  if (cur == &v->cur.base) v->cur_busy = 0;
  else sqlite3_free(cur);
  return SQLITE_OK;
}

/* From pos on, the first position that holds a row. */
static void rows_seek(rows_cursor *c) {
  c->have = 0;
  while (c->rows && c->pos < c->rows->n && !(c->have = c->rows->get(c->rows->ctx, c->pos, &c->row)))
    c->pos++;
}

static int rows_filter(sqlite3_vtab_cursor *cur, int idx, const char *idxstr, int argc,
                       sqlite3_value **argv) {
  rows_cursor *c = (rows_cursor *)cur;
  (void)idxstr;
  c->rows = idx == 1 && argc == 1 ? sqlite3_value_pointer(argv[0], ROWS_PTR_TYPE) : NULL;
  c->pos = 0;
  rows_seek(c);
  return SQLITE_OK;
}

static int rows_next(sqlite3_vtab_cursor *cur) {
  rows_cursor *c = (rows_cursor *)cur;
  c->pos++;
  rows_seek(c);
  return SQLITE_OK;
}

static int rows_eof(sqlite3_vtab_cursor *cur) { return !((rows_cursor *)cur)->have; }

static int rows_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  rows_cursor *c = (rows_cursor *)cur;
  if (col <= COL_V3) sqlite3_result_int64(ctx, c->row.v[col]);
  else if (col == COL_BLOB)
    sqlite3_result_blob64(ctx, c->row.blob_len ? c->row.blob : "", c->row.blob_len, SQLITE_STATIC);
  else sqlite3_result_null(ctx);
  return SQLITE_OK;
}

static int rows_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out) {
  *out = (sqlite3_int64)((rows_cursor *)cur)->pos;
  return SQLITE_OK;
}

static int rows_best_index(sqlite3_vtab *vt, sqlite3_index_info *info) {
  (void)vt;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *k = &info->aConstraint[i];
    if (k->iColumn != COL_SRC || k->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!k->usable) return SQLITE_CONSTRAINT; /* try another join order */
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    info->idxNum = 1;
    info->estimatedCost = 1000;
    info->estimatedRows = 1000;
    return SQLITE_OK;
  }
  info->idxNum = 0; /* no source: no rows */
  info->estimatedCost = 1e12;
  info->estimatedRows = 0;
  return SQLITE_OK;
}

static const sqlite3_module rows_module = {
    .iVersion = 0,
    .xConnect = rows_connect,
    .xBestIndex = rows_best_index,
    .xDisconnect = rows_disconnect,
    .xOpen = rows_open,
    .xClose = rows_close,
    .xFilter = rows_filter,
    .xNext = rows_next,
    .xEof = rows_eof,
    .xColumn = rows_column,
    .xRowid = rows_rowid,
};

int tk_cat_rows_register(struct sqlite3 *db) {
  /* A borrowed connection another store of this process already set up. */
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM takhin_rows(NULL)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_finalize(st);
    return TAKHIN_OK;
  }
  /* eponymous-only (xCreate NULL): no CREATE VIRTUAL TABLE, nothing stored */
  if (sqlite3_create_module_v2(db, ROWS_PTR_TYPE, &rows_module, NULL, NULL) != SQLITE_OK)
    return tk_err(TAKHIN_ECATALOG, "catalog: cannot register takhin_rows: %s", sqlite3_errmsg(db));
  return TAKHIN_OK;
}

int tk_cat_bind_rows(struct sqlite3_stmt *st, int i, const tk_rows *rows) {
  return sqlite3_bind_pointer(st, i, (void *)rows, ROWS_PTR_TYPE, NULL) == SQLITE_OK
             ? TAKHIN_OK
             : TAKHIN_ECATALOG;
}
