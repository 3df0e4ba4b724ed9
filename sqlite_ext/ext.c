/*
** ext.c -- entry point of the takhin SQLite extension (`.load takhin`), the
** per-connection context and its store, the scalar functions, and the value
** mapping described in ext.h.
**
** The store lives beside the connection's main database file and borrows the
** connection itself as its catalog (see store/catalog.c), so catalog rows
** commit with the statements that change them. The first connection of a
** process to touch a store becomes its writer; when another process (or
** connection) already is, this one opens it read-only: SELECT works and
** writes get "locked by another writer".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"

SQLITE_EXTENSION_INIT1

static void conn_release(void *p) {
  tkx_conn *c = p;
  if (!c || --c->refs > 0) return;
  takhin_close(c->store);
  sqlite3_free(c->drops);
  sqlite3_free(c);
}

char *tkx_errmsg(int rc) {
  return sqlite3_mprintf("takhin: %s (%s)", takhin_errmsg(), takhin_errstr(rc));
}

/* The catalog tables exist on the connection. A store first opened inside a
** statement that later rolled back lost them with it, or, a writer's on a
** catalog of an older format, lost its upgrade: the tables are the old
** format's again, and the newest format's table is the one missing (a
** reader reads an older format as it is: its tables are all there is). */
static int catalog_present(sqlite3 *db, int read_only) {
  return read_only ? sqlite3_table_column_metadata(db, "main", "takhin_cat_meta", "key", NULL, NULL,
                                                   NULL, NULL, NULL) == SQLITE_OK
                   : sqlite3_table_column_metadata(db, "main", "takhin_cat_index_run", "entries",
                                                   NULL, NULL, NULL, NULL, NULL) == SQLITE_OK;
}

takhin_store *tkx_store(tkx_conn *c, char **msg) {
  if (c->store && catalog_present(c->db, c->read_only)) return c->store;
  if (c->store) { /* rolled back under us: start again from what is committed */
    takhin_close(c->store);
    c->store = NULL;
    c->read_only = 0;
  }
  const char *path = sqlite3_db_filename(c->db, "main");
  if (!path || !*path) {
    *msg = sqlite3_mprintf("takhin: the database is not a file (:memory: or temporary); open a "
                           "database file, e.g. sqlite3 app.db, then .load takhin");
    return NULL;
  }
  takhin_options o;
  takhin_options_init(&o);
  int rc = tk_open_borrowed(c->db, path, &o, &c->store);
  if (rc == TAKHIN_ELOCKED) {
    o.read_only = 1;
    rc = tk_open_borrowed(c->db, path, &o, &c->store);
    if (!rc) c->read_only = 1;
  }
  if (rc) {
    *msg = tkx_errmsg(rc);
    c->store = NULL;
    return NULL;
  }
  return c->store;
}

int tkx_is_text(const void *p, size_t n) {
  const unsigned char *s = p;
  size_t i = 0;
  while (i < n) {
    /* ASCII without NUL, 8 bytes at a time: text values are mostly ASCII,
    ** and every column read of a key or value runs this check. A word that
    ** is not goes straight to its first byte that is not (the lowest set
    ** bit of the mask is exact: the NUL test's borrow only runs upwards),
    ** so a binary value is usually refused at its first high byte. */
    while (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      uint64_t bad = (w | ((w - 0x0101010101010101ull) & ~w)) & 0x8080808080808080ull;
      if (bad) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        i += (size_t)__builtin_ctzll(bad) >> 3;
#endif
        break;
      }
      i += 8;
    }
    if (i >= n) break;
    unsigned char ch = s[i];
    if (ch == 0) return 0;
    if (ch < 0x80) {
      i++;
      continue;
    }
    size_t len = (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || i + len > n) return 0;
    if (len == 2 && ch < 0xC2) return 0; /* overlong */
    for (size_t k = 1; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80) return 0;
    if (len == 3) {
      unsigned cp = (ch & 0x0Fu) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu);
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    } else if (len == 4) {
      unsigned cp = (ch & 0x07u) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 |
                    (s[i + 3] & 0x3Fu);
      if (cp < 0x10000 || cp > 0x10FFFF) return 0;
    }
    i += len;
  }
  return 1;
}

/* ---- scalar functions --------------------------------------------------- */

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, TAKHIN_VERSION, -1, SQLITE_STATIC);
}

/* Argument i must be a non-NULL integer; otherwise set an error naming it. */
static int int_arg(sqlite3_context *ctx, sqlite3_value **argv, int i, const char *fn,
                   const char *what, int64_t *out) {
  if (sqlite3_value_type(argv[i]) != SQLITE_INTEGER) {
    char *m = sqlite3_mprintf("%s: %s must be an integer, got %s", fn, what,
                              sqlite3_value_type(argv[i]) == SQLITE_NULL   ? "NULL"
                              : sqlite3_value_type(argv[i]) == SQLITE_TEXT ? "text"
                              : sqlite3_value_type(argv[i]) == SQLITE_BLOB ? "a blob"
                                                                           : "a real");
    sqlite3_result_error(ctx, m, -1);
    sqlite3_free(m);
    return 0;
  }
  *out = sqlite3_value_int64(argv[i]);
  return 1;
}

static const char *text_arg(sqlite3_context *ctx, sqlite3_value **argv, int i, const char *fn,
                            const char *what) {
  if (sqlite3_value_type(argv[i]) != SQLITE_TEXT) {
    char *m = sqlite3_mprintf("%s: %s must be text", fn, what);
    sqlite3_result_error(ctx, m, -1);
    sqlite3_free(m);
    return NULL;
  }
  return (const char *)sqlite3_value_text(argv[i]);
}

static void result_takhin_error(sqlite3_context *ctx, int rc) {
  tkx_conn *c = sqlite3_user_data(ctx);
  char *m = rc == TAKHIN_EREADONLY && c->read_only ? sqlite3_mprintf("%s", TKX_LOCKED_MSG)
                                                   : tkx_errmsg(rc);
  sqlite3_result_error(ctx, m, -1);
  sqlite3_free(m);
}

static takhin_store *ctx_store(sqlite3_context *ctx) {
  char *msg = NULL;
  takhin_store *s = tkx_store(sqlite3_user_data(ctx), &msg);
  if (!s) {
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
  }
  return s;
}

/* takhin_commit(group, topic, partition, offset [, metadata]) -> offset */
/* tk_host_run's calls: the offsets of takhin_commit(), takhin_flush(). */
struct commit_call {
  const char *group;
  const takhin_offset_commit *oc;
};
static int run_commit(takhin_store *s, void *arg) {
  const struct commit_call *cc = arg;
  return takhin_group_commit(s, cc->group, cc->oc, 1);
}
static int run_flush(takhin_store *s, void *arg) {
  (void)arg;
  return takhin_flush(s, 0);
}

static void fn_commit(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  int64_t part, off;
  const char *group = text_arg(ctx, argv, 0, "takhin_commit", "group");
  const char *topic = group ? text_arg(ctx, argv, 1, "takhin_commit", "topic") : NULL;
  if (!topic || !int_arg(ctx, argv, 2, "takhin_commit", "partition", &part) ||
      !int_arg(ctx, argv, 3, "takhin_commit", "offset", &off))
    return;
  /* metadata is a string (Kafka's): a blob would be cut at its first zero
  ** byte, a number silently turned into text */
  if (argc > 4 && sqlite3_value_type(argv[4]) != SQLITE_NULL &&
      sqlite3_value_type(argv[4]) != SQLITE_TEXT)
    return sqlite3_result_error(ctx, "takhin_commit: metadata must be text or NULL", -1);
  const char *meta = argc > 4 && sqlite3_value_type(argv[4]) != SQLITE_NULL
                         ? (const char *)sqlite3_value_text(argv[4])
                         : NULL;
  takhin_store *s = ctx_store(ctx);
  if (!s) return;
  if (part < INT32_MIN || part > INT32_MAX) part = -1;
  takhin_offset_commit oc = {topic, (int32_t)part, off, meta};
  struct commit_call cc = {group, &oc};
  int rc = tk_host_run(s, 1, run_commit,
                       &cc); /* the offsets commit together, also from a plain SELECT */
  if (rc) return result_takhin_error(ctx, rc);
  sqlite3_result_int64(ctx, off);
}

/* takhin_flush() -> 1: the catalog rows still pending for what was appended
** (index entries, key rows) are written now, as takhin_flush does in C.
** Refused inside a transaction or a writing statement: rolled back, those
** rows would be missing while the store counts them written, and a
** compaction would miss keys. */
static void fn_flush(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc, (void)argv;
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  if (tkx_in_transaction(db))
    return sqlite3_result_error(ctx,
                                "takhin: takhin_flush writes catalog rows the store then counts as "
                                "written: run it outside a transaction, in a SELECT of its own",
                                -1);
  takhin_store *s = ctx_store(ctx);
  if (!s) return;
  int rc = tk_host_run(s, 1, run_flush, NULL);
  if (rc) return result_takhin_error(ctx, rc);
  sqlite3_result_int(ctx, 1);
}

/* takhin_offset_for_time(topic, partition, timestamp_ms) -> offset */
static void fn_offset_for_time(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int64_t part, ts, off;
  const char *topic = text_arg(ctx, argv, 0, "takhin_offset_for_time", "topic");
  if (!topic || !int_arg(ctx, argv, 1, "takhin_offset_for_time", "partition", &part) ||
      !int_arg(ctx, argv, 2, "takhin_offset_for_time", "timestamp", &ts))
    return;
  takhin_store *s = ctx_store(ctx);
  if (!s) return;
  if (part < INT32_MIN || part > INT32_MAX) part = -1;
  int rc = takhin_offset_for_time(s, topic, (int32_t)part, ts, &off);
  if (rc) return result_takhin_error(ctx, rc);
  sqlite3_result_int64(ctx, off);
}

/* takhin_partition_for_key(key, partitions) -> Kafka's partition for key */
static void fn_partition_for_key(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int64_t n;
  if (!int_arg(ctx, argv, 1, "takhin_partition_for_key", "partitions", &n)) return;
  if (n < 1 || n > INT32_MAX)
    return sqlite3_result_error(ctx, "takhin_partition_for_key: partitions must be >= 1", -1);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return sqlite3_result_error(ctx, "takhin_partition_for_key: key is NULL", -1);
  const void *k = sqlite3_value_type(argv[0]) == SQLITE_BLOB
                      ? sqlite3_value_blob(argv[0])
                      : (const void *)sqlite3_value_text(argv[0]);
  int len = sqlite3_value_bytes(argv[0]);
  sqlite3_result_int(ctx, takhin_partition_for_key(k ? k : "", (size_t)len, (int32_t)n));
}

int tkx_register_functions(sqlite3 *db, tkx_conn *c) {
  /* Only pure functions are INNOCUOUS; the others touch the store's files and
  ** catalog, so DIRECTONLY keeps them out of views and triggers of a schema
  ** someone else may have written. */
  const int pure = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  const int io = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  struct {
    const char *name;
    int nargs, flags;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
  } f[] = {
      {"takhin_version", 0, pure, fn_version},
      {"takhin_partition_for_key", 2, pure, fn_partition_for_key},
      {"takhin_commit", 4, io, fn_commit},
      {"takhin_commit", 5, io, fn_commit},
      {"takhin_offset_for_time", 3, io, fn_offset_for_time},
      {"takhin_flush", 0, io, fn_flush},
  };
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    c->refs++;
    int rc = sqlite3_create_function_v2(db, f[i].name, f[i].nargs, f[i].flags, c, f[i].fn, NULL,
                                        NULL, conn_release);
    if (rc != SQLITE_OK) return rc; /* SQLite already called conn_release */
  }
  return SQLITE_OK;
}

void tkx_conn_ref(tkx_conn *c) { c->refs++; }
void tkx_conn_unref(void *c) { conn_release(c); }

/* The entry point sqlite3_load_extension looks up by name; no header
** declares it (SQLite finds it with dlsym), so it is declared here. */
int sqlite3_takhin_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

#ifdef _WIN32
__declspec(dllexport)
#endif
    __attribute__((visibility("default"))) int sqlite3_takhin_init(
        sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  tkx_conn *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->db = db;
  c->refs = 1; /* ours until registration is done */
  int rc = tkx_register_functions(db, c);
  if (rc == SQLITE_OK) rc = tkx_register_messages(db, c);
  if (rc == SQLITE_OK) rc = tkx_register_meta(db, c);
  if (rc == SQLITE_OK) rc = tkx_register_drops(db, c);
  /* Open the store now when we can: outside any transaction its catalog
  ** tables commit at once and WAL can be switched on (neither works inside
  ** the statement that would otherwise open it first). A database that is
  ** not a file, or any failure, is reported on first use instead. */
  const char *path = sqlite3_db_filename(db, "main");
  if (rc == SQLITE_OK && path && *path && sqlite3_get_autocommit(db) &&
      !sqlite3_db_readonly(db, "main")) {
    char *msg = NULL;
    if (!tkx_store(c, &msg)) sqlite3_free(msg);
  }
  if (rc != SQLITE_OK && pzErrMsg)
    *pzErrMsg = sqlite3_mprintf("takhin: registration failed: %s", sqlite3_errstr(rc));
  conn_release(c);
  return rc;
}
