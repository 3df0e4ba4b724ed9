/*
** sqlfile.c -- named statements of sql/compaction.sql. The file is compiled
** in whole; on first use it is split at its "-- name: <name>" lines into
** statements, looked up by name. The returned strings live as long as the
** process, so catalog.c can cache prepared statements by their address.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "store.h"

extern const char takhin_compaction_sql[]; /* generated from sql/compaction.sql */

#define MAX_STMTS 64

static struct {
  char *name, *sql;
} stmts[MAX_STMTS];
static int nstmts;
static char *text; /* our copy, cut into pieces */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void split(void) {
  text = strdup(takhin_compaction_sql);
  if (!text) return;
  static const char marker[] = "-- name: ";
  char *p = strstr(text, marker);
  while (p && nstmts < MAX_STMTS) {
    *p = 0; /* ends the previous statement */
    char *name = p + sizeof marker - 1;
    char *eol = strchr(name, '\n');
    if (!eol) break;
    *eol = 0;
    char *body = eol + 1;
    p = strstr(body, marker);
    stmts[nstmts].name = name;
    stmts[nstmts].sql = body;
    nstmts++;
  }
}

const char *tk_sql(const char *name) {
  pthread_once(&once, split);
  for (int i = 0; i < nstmts; i++)
    if (!strcmp(stmts[i].name, name)) return stmts[i].sql;
  return NULL;
}

/* The SQLite extension can be unloaded while the process lives on: give the
** copy back then (a library's destructors run at unload and at exit). */
__attribute__((destructor)) static void sqlfile_free(void) {
  free(text);
  text = NULL;
  nstmts = 0;
}

struct sqlite3_stmt *tk_sql_prepare(takhin_store *s, const char *name) {
  TK_ASSERT_HELD(&s->cat_lock);
  const char *sql = tk_sql(name);
  if (!sql) {
    tk_err(TAKHIN_ECATALOG, "sql/compaction.sql has no statement \"%s\"", name);
    return NULL;
  }
  return tk_cat_prepare(s, sql);
}
