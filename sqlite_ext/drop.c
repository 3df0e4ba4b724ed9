/*
** drop.c -- DROP TABLE of a topic, inside a transaction or alone: the
** topic is deleted at COMMIT, once SQLite's commit is done, and stays if the
** transaction, a savepoint around the DROP, or the commit itself rolls back.
**
**   takhin_pending_drops(topic)    the topics the open transaction drops
**
** SQLite calls a table's xDestroy in the middle of DROP TABLE and tells the
** table nothing after it: no xSync, xCommit or xRollback reaches a destroyed
** table. So the topic's xDestroy (vtab_messages.c) deletes nothing: it
** INSERTs the topic's name into this eponymous table, and that INSERT enrols
** the table in the transaction (xBegin; a lone DROP TABLE's own, too), so
** it hears what becomes of it. xSavepoint/xRollbackTo trim the list with
** the savepoints, and COMMIT deletes the topics in two steps
** (store/topic_drop.c), because SQLite's own commit comes after every xSync
** and can still fail (an I/O error, a commit hook, a crash):
**   xSync      renames the topics' folders to "-drop" marks and deletes
**              their catalog rows inside the committing transaction, with
**              the schema row DROP TABLE removed;
**   xCommit    (the commit is done) removes the marked folders;
**   xRollback  (ROLLBACK, or a commit that failed after xSync) renames them
**              back: the topics, their tables and records are as they were.
** A crash between the two leaves the marks, and the next open settles them
** by the catalog: rows there mean the commit never happened (renamed back),
** none that it did (removed). The catalog rows cannot wait for xCommit:
** SQLite calls it after its commit, when a write would open a transaction
** that nothing commits.
**
** A takhin table that first writes after the DROP is still refused
** (vt_begin), as before the two steps: its appends would come after the
** marks in the same COMMIT. The marks are undone by xRollback now, so
** allowing it is possible, but is a change of its own.
** Rows come only from DROP TABLE: an INSERT of the user's is refused.
*/
#include <string.h>

#include "ext.h"
#include "topic.h" /* tk_topic_drop_mark/finish */

#define MAX_LEVELS 64

typedef struct drop_vtab {
  sqlite3_vtab base;
  tkx_conn *conn;
  size_t marks[MAX_LEVELS]; /* savepoint level -> list length at its start */
} drop_vtab;

typedef struct drop_cursor {
  sqlite3_vtab_cursor base;
  size_t at;
} drop_cursor;

static int drop_error(drop_vtab *vt, char *msg) {
  sqlite3_free(vt->base.zErrMsg);
  vt->base.zErrMsg = msg;
  return SQLITE_ERROR;
}

int tkx_drop_listed(const tkx_conn *c, const char *topic) {
  for (size_t i = 0; i < c->ndrops; i++)
    if (!strcmp(c->drops[i], topic)) return 1;
  return 0;
}

static int drop_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err) {
  (void)argc, (void)argv, (void)err;
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(topic TEXT)");
  if (rc != SQLITE_OK) return rc;
  drop_vtab *vt = sqlite3_malloc(sizeof *vt);
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  vt->conn = aux;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY); /* its COMMIT deletes topics */
  *out = &vt->base;
  return SQLITE_OK;
}

static int drop_disconnect(sqlite3_vtab *base) {
  sqlite3_free(base->zErrMsg);
  sqlite3_free(base);
  return SQLITE_OK;
}

static int drop_best_index(sqlite3_vtab *base, sqlite3_index_info *info) {
  (void)base;
  info->estimatedCost = 1;
  info->estimatedRows = 1;
  return SQLITE_OK;
}

static int drop_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out) {
  (void)base;
  drop_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int drop_close(sqlite3_vtab_cursor *c) {
  sqlite3_free(c);
  return SQLITE_OK;
}

static int drop_filter(sqlite3_vtab_cursor *c, int idxNum, const char *idxStr, int argc,
                       sqlite3_value **argv) {
  (void)idxNum, (void)idxStr, (void)argc, (void)argv;
  ((drop_cursor *)c)->at = 0;
  return SQLITE_OK;
}

static int drop_next(sqlite3_vtab_cursor *c) {
  ((drop_cursor *)c)->at++;
  return SQLITE_OK;
}

static int drop_eof(sqlite3_vtab_cursor *c) {
  return ((drop_cursor *)c)->at >= ((drop_vtab *)c->pVtab)->conn->ndrops;
}

static int drop_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col) {
  (void)col;
  const tkx_conn *conn = ((drop_vtab *)c->pVtab)->conn;
  sqlite3_result_text(ctx, conn->drops[((drop_cursor *)c)->at], -1, SQLITE_TRANSIENT);
  return SQLITE_OK;
}

static int drop_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *rowid) {
  *rowid = (sqlite3_int64)((drop_cursor *)c)->at;
  return SQLITE_OK;
}

/* Only tkx_drop_defer's INSERT: a row of the user's would delete a topic
** that no table was dropped for. */
static int drop_update(sqlite3_vtab *base, int argc, sqlite3_value **argv, sqlite3_int64 *rowid) {
  (void)rowid;
  drop_vtab *vt = (drop_vtab *)base;
  tkx_conn *c = vt->conn;
  if (!c->drop_adding || argc < 3 || sqlite3_value_type(argv[0]) != SQLITE_NULL)
    return drop_error(vt, sqlite3_mprintf("takhin_pending_drops: its rows come from DROP TABLE "
                                          "of a topic inside a transaction; they cannot be "
                                          "written"));
  const char *topic = (const char *)sqlite3_value_text(argv[2]);
  if (!topic || strlen(topic) > TK_MAX_TOPIC_NAME) return SQLITE_MISUSE;
  if (!tkx_drop_listed(c, topic)) {
    if (c->ndrops == c->drops_cap) {
      size_t cap = c->drops_cap ? 2 * c->drops_cap : 4;
      void *nd = sqlite3_realloc64(c->drops, cap * sizeof *c->drops);
      if (!nd) return SQLITE_NOMEM;
      c->drops = nd;
      c->drops_cap = cap;
    }
    strcpy(c->drops[c->ndrops++], topic);
  }
  return SQLITE_OK;
}

/* What was listed before this table joined the transaction is not its to
** take back: a failed statement that changed the schema makes SQLite
** connect every table again, and the new one joins beside the old. */
static int drop_begin(sqlite3_vtab *base) {
  drop_vtab *vt = (drop_vtab *)base;
  for (int i = 0; i < MAX_LEVELS; i++) vt->marks[i] = vt->conn->ndrops;
  return SQLITE_OK;
}

/* COMMIT, first step: mark the topics' folders and delete their rows (see
** the top of this file). A topic already gone counts as dropped (deleted
** elsewhere); one already marked, by a COMMIT that failed with SQLITE_BUSY
** and is tried again, has its rows deleted again (and any folder renamed
** back since marked again). */
static int drop_sync(sqlite3_vtab *base) {
  drop_vtab *vt = (drop_vtab *)base;
  tkx_conn *c = vt->conn;
  if (!c->ndrops) return SQLITE_OK;
  char *msg = NULL;
  takhin_store *s = tkx_store(c, &msg);
  if (!s) return drop_error(vt, msg);
  for (size_t i = 0; i < c->ndrops; i++) {
    int rc = tk_topic_drop_mark(s, c->drops[i]);
    if (rc && rc != TAKHIN_ENOTFOUND) return drop_error(vt, tkx_errmsg(rc));
  }
  return SQLITE_OK;
}

/* COMMIT done (committed = 1): remove the marked folders; ROLLBACK or a
** failed commit: rename them back. SQLite ignores what these return, so a
** folder that cannot be renamed back goes to its log; the next open of the
** store renames it back (the catalog still holds the topic). */
static int drop_end(drop_vtab *vt, int committed) {
  tkx_conn *c = vt->conn;
  for (size_t i = 0; i < c->ndrops && c->store; i++) {
    int rc = tk_topic_drop_finish(c->store, c->drops[i], committed);
    if (rc)
      sqlite3_log(SQLITE_IOERR, "takhin: DROP TABLE \"%s\": %s", c->drops[i], takhin_errmsg());
  }
  c->ndrops = 0;
  return SQLITE_OK;
}

static int drop_commit(sqlite3_vtab *base) { return drop_end((drop_vtab *)base, 1); }
static int drop_rollback(sqlite3_vtab *base) { return drop_end((drop_vtab *)base, 0); }

static int drop_savepoint(sqlite3_vtab *base, int i) {
  drop_vtab *vt = (drop_vtab *)base;
  if (i < 0 || i >= MAX_LEVELS)
    return drop_error(vt, sqlite3_mprintf("takhin: savepoints nest at most 64 deep"));
  vt->marks[i] = vt->conn->ndrops;
  return SQLITE_OK;
}

static int drop_release(sqlite3_vtab *base, int i) {
  (void)base, (void)i;
  return SQLITE_OK;
}

/* The DROPs made since savepoint i are undone: their tables come back. */
static int drop_rollback_to(sqlite3_vtab *base, int i) {
  drop_vtab *vt = (drop_vtab *)base;
  if (i < 0) vt->conn->ndrops = 0;
  else if (i < MAX_LEVELS && vt->marks[i] < vt->conn->ndrops) vt->conn->ndrops = vt->marks[i];
  return SQLITE_OK;
}

static sqlite3_module drop_module = {
    .iVersion = 2,
    .xConnect = drop_connect,
    .xBestIndex = drop_best_index,
    .xDisconnect = drop_disconnect,
    .xOpen = drop_open,
    .xClose = drop_close,
    .xFilter = drop_filter,
    .xNext = drop_next,
    .xEof = drop_eof,
    .xColumn = drop_column,
    .xRowid = drop_rowid,
    .xUpdate = drop_update,
    .xBegin = drop_begin,
    .xSync = drop_sync,
    .xCommit = drop_commit,
    .xRollback = drop_rollback,
    .xSavepoint = drop_savepoint,
    .xRelease = drop_release,
    .xRollbackTo = drop_rollback_to,
};

int tkx_drop_defer(tkx_conn *c, const char *topic, char **msg) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, "INSERT INTO main.takhin_pending_drops(topic) VALUES (?1)", -1,
                              &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  /* Our table's xUpdate must take the row: a table of the user's by that
  ** name would hide the eponymous one. */
  c->drop_adding = 1;
  size_t before = c->ndrops;
  if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  c->drop_adding = 0;
  if (rc == SQLITE_OK && !tkx_drop_listed(c, topic)) rc = SQLITE_ERROR;
  if (rc != SQLITE_OK) {
    *msg = sqlite3_mprintf("takhin: DROP TABLE \"%s\" could not be recorded for COMMIT (%s)", topic,
                           sqlite3_errmsg(c->db));
    if (c->ndrops > before) c->ndrops = before;
  }
  sqlite3_finalize(st);
  return rc;
}

int tkx_register_drops(sqlite3 *db, tkx_conn *c) {
  tkx_conn_ref(c);
  return sqlite3_create_module_v2(db, "takhin_pending_drops", &drop_module, c, tkx_conn_unref);
}
