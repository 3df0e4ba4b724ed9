/*
** ext.h -- what the files of the takhin SQLite extension share: the
** per-connection context (which owns the store opened on the connection's
** database file), error helpers, and the value mapping between record bytes
** and SQLite types.
**
** Record bytes <-> SQLite values: a key, value or header value whose bytes
** are valid UTF-8 without NUL reads back as TEXT, anything else as a BLOB.
** So text typed in the shell reads back as text, and every value's bytes
** round-trip exactly (a BLOB that happens to be valid UTF-8 reads back as
** TEXT with the same bytes). Integers and reals are stored as their text.
*/
#ifndef TAKHIN_EXT_H
#define TAKHIN_EXT_H

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include "host.h"
#include "takhin.h"

/* One per connection that loaded takhin; freed when the connection closes. */
typedef struct tkx_conn {
  sqlite3 *db;
  takhin_store *store; /* opened on first use */
  int read_only;       /* another writer holds the store: this one reads */
  int refs;            /* modules registered with this context */
  /* Topics a DROP TABLE inside the open transaction deletes at COMMIT
  ** (drop.c owns the list). */
  char (*drops)[TK_MAX_TOPIC_NAME + 1];
  size_t ndrops, drops_cap;
  int drop_adding; /* tkx_drop_defer's INSERT is running */
} tkx_conn;

/* The connection's store, opening it on first use (writer if possible, else
** read-only beside the writer). On failure *msg gets an sqlite3_mprintf'd
** message for the caller to hand to SQLite. */
takhin_store *tkx_store(tkx_conn *c, char **msg);

#define TKX_LOCKED_MSG                                                                             \
  "takhin: the store is locked by another writer; this connection can only read"

/* An sqlite3_mprintf'd message from the last takhin error. */
char *tkx_errmsg(int rc);

int tkx_is_text(const void *p, size_t n);
/* Set a record byte string as the result of ctx (TEXT or BLOB, see above),
** copied (SQLITE_TRANSIENT) or, with SQLITE_STATIC, without a copy: then
** the bytes must stay valid and unchanged until the statement ends (see
** vt_column). Inline: a range SELECT calls it for every key and value. */
static inline void tkx_result_bytes(sqlite3_context *ctx, const void *p, size_t n,
                                    sqlite3_destructor_type how) {
  if (!p) sqlite3_result_null(ctx);
  else if (tkx_is_text(p, n)) sqlite3_result_text64(ctx, p, n, how, SQLITE_UTF8);
  else sqlite3_result_blob64(ctx, p, n, how);
}

/* Headers as JSON (jansson): [["key","value"], ["key",null], ["key",{"hex":"00ff"}]].
** A key or value that is not UTF-8 without NUL is written as {"hex":...}. */
char *tkx_headers_to_json(const takhin_message *m); /* sqlite3_malloc'd; NULL on OOM */
/* Parse len bytes of JSON headers into an array (sqlite3_malloc'd, *out)
** whose keys and values are decoded into buf, which must hold cap >= len
** bytes (decoding never grows the text). Returns NULL on success or an
** sqlite3_mprintf'd message saying what is wrong and where. */
char *tkx_headers_from_json(const char *json, size_t len, char *buf, size_t cap,
                            takhin_header **out, size_t *n);

/* Inside a transaction a ROLLBACK could undo: the user's BEGIN, or the
** implicit one of a statement that writes (INSERT ... SELECT f()). What
** rewrites files or counts catalog rows as written is refused there. */
static inline int tkx_in_transaction(sqlite3 *db) {
  return !sqlite3_get_autocommit(db) || tk_sql_writer_active(db);
}

/* DROP TABLE of topic inside a transaction: have it deleted at COMMIT
** (drop.c). On failure *msg gets an sqlite3_mprintf'd message. */
int tkx_drop_defer(tkx_conn *c, const char *topic, char **msg);
/* topic is dropped by the open transaction. */
int tkx_drop_listed(const tkx_conn *c, const char *topic);
static inline int tkx_drop_pending(const tkx_conn *c, const char *topic) {
  return c->ndrops && tkx_drop_listed(c, topic);
}

/* Module client data is a counted reference to the connection context. */
void tkx_conn_ref(tkx_conn *c);
void tkx_conn_unref(void *c);

int tkx_register_messages(sqlite3 *db, tkx_conn *c);
int tkx_register_meta(sqlite3 *db, tkx_conn *c);
int tkx_register_functions(sqlite3 *db, tkx_conn *c);
int tkx_register_drops(sqlite3 *db, tkx_conn *c);

#endif
