/*
** catalog.c -- the SQLite catalog: opening it (WAL, schema from
** sql/schema.sql, format-version check) and every statement the store runs
** against it: the named statements of sql/ (sqlfile.c), each prepared once
** per connection and reused, cached by id.
**
** The caller holds store->cat_lock around every function here; a multi-row
** change is bracketed by tk_cat_begin/tk_cat_commit so it lands atomically.
**
** Borrowed mode (the SQLite extension): the catalog is the host's own
** connection. Statements then run nested in whatever statement or
** transaction the host is executing, as FTS5 writes its shadow tables, and
** no statement outlives the call that prepared it (a cached statement would
** keep the host from closing its connection) -- except between
** tk_cat_begin and tk_cat_commit, where statements are cached and then
** finalized together, so a persist of many rows prepares each once.
** Atomicity: inside a statement that writes (the INSERT whose rows a
** persist indexes, its COMMIT) that statement's or the user's transaction
** holds ours. A call the extension makes from a read-only statement
** (SELECT * FROM takhin_compact(...), takhin_commit(...)) has nothing to
** group its rows, each would commit on its own: the extension says so with
** tk_host_run(grouped), and tk_cat_begin then opens a SAVEPOINT, which commits (or
** nests in the user's BEGIN) at tk_cat_commit. Never otherwise: during the
** user's COMMIT a savepoint of ours would be a transaction savepoint, and
** rolling back to it would discard the user's whole transaction.
** Rows read back are checked for sanity by the callers (partition.c): the
** catalog may have been edited by hand.
*/
#include "sqlite_compat.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "catalog.h"
#include "dead.h"
#include "index_run.h"
#include "partition.h" /* tk_sync_dir */
#include "store.h"

extern const char takhin_schema_sql[]; /* generated from sql/schema.sql */

struct tk_catalog {
  sqlite3 *db;
  sqlite3_stmt *st[TK_SQL_COUNT]; /* the named statements, by id, once prepared */
  int read_only;
  int borrowed;  /* db belongs to the host: see the top of this file */
  int hold;      /* borrowed: inside tk_cat_begin..commit statements are cached */
  int group;     /* borrowed: the extension asks begin/commit to group writes */
  int savepoint; /* borrowed: tk_cat_begin opened SAVEPOINT takhin_catalog_group */
  int sp_began;  /* ... and that savepoint began the transaction (no BEGIN around it) */
  int format;    /* format_version read at open (a reader may read an older one) */
  uint8_t *run;  /* encode buffer of index runs, TK_INDEX_RUN_MAX entries (cat_lock) */
};

static int cat_err(takhin_store *s, const char *what) {
  return tk_err(TAKHIN_ECATALOG, "catalog %s (%s): %s", what, s->db_path,
                s->cat && s->cat->db ? sqlite3_errmsg(s->cat->db) : "cannot open");
}

/* Statements are cached, except on a borrowed connection outside a hold. */
static int caching(const tk_catalog *c) { return !c->borrowed || c->hold > 0; }

/* A ready-to-bind named statement: cached (prepared on first use), or a
** fresh one that done() finalizes. Every statement of the store comes from
** here: the SQL text is in sql/ (sqlfile.c), looked up by id. */
sqlite3_stmt *tk_cat_stmt(takhin_store *s, int id) {
  tk_catalog *c = s->cat;
  sqlite3_stmt *st = caching(c) ? c->st[id] : NULL;
  if (st) {
    /* one a caller left mid-way (an early return without done()) */
    if (sqlite3_stmt_busy(st)) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
    }
    return st;
  }
  const char *sql = tk_sql_text(id);
  if (!sql) return NULL;
  if (!caching(c)) {
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
      cat_err(s, "prepare");
      return NULL;
    }
    return st;
  }
  if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL) !=
      SQLITE_OK) {
    cat_err(s, "prepare");
    return NULL;
  }
  return c->st[id];
}

void tk_cat_prepare_ahead(takhin_store *s, const int *ids, size_t n) {
  tk_catalog *c = s->cat;
  if (c->borrowed) return;
  for (size_t i = 0; i < n; i++) {
    const char *sql = c->st[ids[i]] ? NULL : tk_sql_text(ids[i]);
    if (sql) sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st[ids[i]], NULL);
  }
}

/* Own connection: every statement is cached. Borrowed: those prepared
** outside a hold are not, and a hold may have begun since. */
static int is_cached(const tk_catalog *c, const sqlite3_stmt *st) {
  if (!c->borrowed) return 1;
  for (int i = 0; i < TK_SQL_COUNT; i++)
    if (c->st[i] == st) return 1;
  return 0;
}

/* Give back a statement from tk_cat_stmt(). */
static void done(takhin_store *s, sqlite3_stmt *st) {
  if (!is_cached(s->cat, st)) {
    sqlite3_finalize(st);
  } else {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
}

/* Borrowed connection, end of a hold: finalize what was cached. */
static void drop_cache(tk_catalog *c) {
  for (int i = 0; i < TK_SQL_COUNT; i++) {
    sqlite3_finalize(c->st[i]);
    c->st[i] = NULL;
  }
}

void tk_cat_done(takhin_store *s, sqlite3_stmt *st) { done(s, st); }

/* Step a statement that returns no rows, then give it back. The message is
** taken before done(): finalizing would clear SQLite's error. */
static int run(takhin_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st), err = TAKHIN_OK;
  if (rc != SQLITE_DONE)
    err = (rc & 0xff) == SQLITE_FULL ? tk_err(TAKHIN_ENOSPC, "catalog %s: disk full", what)
                                     : cat_err(s, what);
  done(s, st);
  return err;
}

static int check_format(takhin_store *s) {
  /* Prepared afresh and finalized, not cached: a failed open may close and
  ** reopen the connection (reopen_immutable, move_aside) after this. */
  const char *sql = tk_sql_text(TK_SQL_FORMAT_VERSION);
  if (!sql) return TAKHIN_ECATALOG;
  sqlite3_stmt *st = NULL;
  int rc = TAKHIN_OK;
  if (sqlite3_prepare_v2(s->cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
    if ((sqlite3_errcode(s->cat->db) & 0xff) == SQLITE_ERROR && s->cat->read_only)
      return tk_err(TAKHIN_ECATALOG,
                    "catalog %s holds no takhin tables (%s): it is empty or not "
                    "a takhin catalog; a read-only open changes nothing: open the store once for "
                    "writing to rebuild the catalog from the data folder",
                    s->db_path, sqlite3_errmsg(s->cat->db));
    return cat_err(s, "reading format_version");
  }
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = tk_err(TAKHIN_EFORMAT,
                "catalog %s has no format_version row: it was not made by takhin "
                "or was damaged; restore it from a backup or open a new path",
                s->db_path);
  } else if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
             (sqlite3_column_int64(st, 0) != TAKHIN_FORMAT_VERSION &&
              /* a reader changes nothing, and reads formats 1 and 2 as
              ** they are (a writer's open upgrades them: add_columns) */
              !(s->cat->read_only && sqlite3_column_int64(st, 0) >= 1 &&
                sqlite3_column_int64(st, 0) < TAKHIN_FORMAT_VERSION))) {
    rc = tk_err(TAKHIN_EFORMAT,
                "catalog %s has format_version %s but this takhin %s reads version %d: open it "
                "with the takhin release that wrote it",
                s->db_path, (const char *)sqlite3_column_text(st, 0), TAKHIN_VERSION,
                TAKHIN_FORMAT_VERSION);
  } else {
    s->cat->format = (int)sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return rc;
}

/* Columns added to a table since its catalog was made (the schema's CREATE
** TABLE IF NOT EXISTS leaves an existing table as it is), then a catalog of
** format 1 stamped with this release's format. Writers only, after the
** schema, in its transaction where there is one. */
static int add_columns(takhin_store *s, sqlite3 *db) {
  const char *has = tk_sql_text(TK_SQL_SWAP_HAS_FINGERPRINT);
  const char *add = tk_sql_text(TK_SQL_ADD_SWAP_FINGERPRINT);
  if (!has || !add) return TAKHIN_ECATALOG;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, has, -1, &st, NULL) != SQLITE_OK) return cat_err(s, "table_info");
  int step = sqlite3_step(st);
  int64_t n = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  if (n < 0) return cat_err(s, "table_info");
  char *msg = NULL;
  if (n == 0 && sqlite3_exec(db, add, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = tk_err(TAKHIN_ECATALOG, "catalog %s: adding the swap fingerprint columns: %s",
                    s->db_path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
  }
  /* The index rows of formats 1 and 2 go (sql/catalog.sql drop_entry_index);
  ** then an older format becomes this release's (upgrade_format). */
  const char *drop = tk_sql_text(TK_SQL_DROP_ENTRY_INDEX);
  const char *up = tk_sql_text(TK_SQL_UPGRADE_FORMAT);
  if (!drop || !up) return TAKHIN_ECATALOG;
  /* The extension's store may open inside a statement of its host (loaded
  ** in a transaction, reopened after a rollback), where SQLite refuses DROP
  ** TABLE ("database table is locked"): the old rows then stay, never read,
  ** until an open outside a statement drops them. */
  int drc = sqlite3_exec(db, drop, NULL, NULL, &msg);
  if (drc != SQLITE_OK && !(s->cat->borrowed && (drc & 0xff) == SQLITE_LOCKED)) {
    int rc = tk_err(TAKHIN_ECATALOG, "catalog %s: dropping the old index rows: %s", s->db_path,
                    msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
  }
  sqlite3_free(msg);
  if (sqlite3_prepare_v2(db, up, -1, &st, NULL) != SQLITE_OK) return cat_err(s, "upgrade_format");
  sqlite3_bind_int(st, 1, TAKHIN_FORMAT_VERSION);
  step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step != SQLITE_DONE) return cat_err(s, "upgrading the catalog's format_version");
  return TAKHIN_OK;
}

/* SQLite failed to set up its WAL index and the catalog's file system has
** no free block left: say "disk full", not "disk I/O error". */
static int full_disk(takhin_store *s) {
  int ext = sqlite3_extended_errcode(s->cat->db);
  if (ext != SQLITE_IOERR_SHMOPEN && ext != SQLITE_IOERR_SHMSIZE && ext != SQLITE_IOERR_SHMMAP &&
      (ext & 0xff) != SQLITE_FULL)
    return 0;
  struct statvfs v;
  return statvfs(s->data_dir, &v) == 0 && v.f_bavail == 0;
}

/* "file:<path>?immutable=1", the path percent-encoded where a URI needs it. */
static char *immutable_uri(const char *path) {
  size_t n = strlen(path);
  char *u = sqlite3_malloc64(n * 3 + 32);
  if (!u) return NULL;
  char *o = u + sprintf(u, "file:");
  for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
        strchr("/-._~", *c))
      *o++ = (char)*c;
    else o += sprintf(o, "%%%02X", *c);
  }
  strcpy(o, "?immutable=1");
  return u;
}

/* Read-only handles on read-only media (a read-only mount, a folder the
** process may not write) or on a full disk with no writer running: SQLite
** cannot create the WAL index (-shm) it needs to read a WAL catalog, and
** fails with CANTOPEN or READONLY, or an I/O error sizing the -shm (a
** running writer has made it already). Reopen the catalog immutable: no
** -shm, no locks, and it never sees later changes -- right where nothing
** writes. Segment files stay the truth: batches the catalog does not know
** (a -wal left behind is not read) are found by the tail scan of recovery
** as usual. */
static int reopen_immutable(takhin_store *s) {
  tk_catalog *c = s->cat;
  int ext = sqlite3_extended_errcode(c->db), err = ext & 0xff;
  if (err != SQLITE_CANTOPEN && err != SQLITE_READONLY && ext != SQLITE_IOERR_SHMOPEN &&
      ext != SQLITE_IOERR_SHMSIZE && ext != SQLITE_IOERR_SHMMAP)
    return 0;
  char *uri = immutable_uri(s->db_path);
  if (!uri) return 0;
  sqlite3 *db = NULL;
  int ok = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                           NULL) == SQLITE_OK;
  sqlite3_free(uri);
  if (!ok) {
    sqlite3_close(db);
    return 0;
  }
  sqlite3_close(c->db);
  c->db = db;
  sqlite3_extended_result_codes(db, 1);
  return 1;
}

/* A SQLite error that means the file itself is not a sound database
** (garbage bytes, a damaged page), as opposed to locking or I/O trouble. */
static int is_damage(sqlite3 *db) {
  int e = db ? sqlite3_errcode(db) & 0xff : 0;
  return e == SQLITE_NOTADB || e == SQLITE_CORRUPT;
}

/* Open our own connection to the catalog, configure it and run the schema.
** *damaged: it failed because the file is not a sound database. */
static int open_own(takhin_store *s, tk_catalog *c, int read_only, int *damaged) {
  char *msg = NULL;
  int rc;
  *damaged = 0;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  /* FULLMUTEX is not needed: store->cat_lock serializes every use. */
  flags |= SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(s->db_path, &c->db, flags, NULL) != SQLITE_OK) {
    *damaged = is_damage(c->db);
    return cat_err(s, "open");
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, 5000);
  /* Catalog pages through a mapping instead of a pread each: compaction
  ** walks every key row of the range it cleans (a third less time there). */
  sqlite3_exec(c->db, "PRAGMA mmap_size=268435456", NULL, NULL, NULL);
  /* WAL lets read-only processes read while the writer commits; NORMAL skips
  ** the fsync per commit because recovery rebuilds the index from the files. */
  if (!read_only && sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL,
                                 NULL, NULL) != SQLITE_OK) {
    *damaged = is_damage(c->db);
    if (full_disk(s))
      return tk_err(TAKHIN_ENOSPC,
                    "catalog %s: the disk is full: SQLite has no room for the "
                    "catalog's WAL index (%s-shm, 32 KiB) a writer needs; free some space "
                    "(a read_only open works meanwhile)",
                    s->db_path, s->db_path);
    return cat_err(s, "configure");
  }
  if (!read_only) {
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(c->db, takhin_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
      *damaged = is_damage(c->db);
      rc = tk_err(TAKHIN_ECATALOG, "catalog schema (%s): %s", s->db_path,
                  msg ? msg : sqlite3_errmsg(c->db));
      sqlite3_free(msg);
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
      return rc;
    }
    if ((rc = add_columns(s, c->db))) {
      *damaged = is_damage(c->db);
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
      return rc;
    }
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
      *damaged = is_damage(c->db);
      return cat_err(s, "schema commit");
    }
  }
  rc = check_format(s);
  if (rc == TAKHIN_ECATALOG) *damaged = is_damage(c->db);
  return rc;
}

/* Keep a damaged catalog file (it may hold the application's own tables)
** as "<db>.damaged-<ms>", with its -wal and -shm beside it under the same
** new name so that sqlite3 opens it as it was; a new catalog is then built
** from the data folder. Nothing is deleted. */
static int move_aside(takhin_store *s, const char *why) {
  char to[TK_PATH_MAX], from[TK_PATH_MAX], to2[TK_PATH_MAX + 8];
  snprintf(to, sizeof to, "%s.damaged-%lld", s->db_path, (long long)tk_now_ms());
  if (rename(s->db_path, to) != 0)
    return tk_err(TAKHIN_ECATALOG, "catalog %s is damaged (%s) and cannot be moved aside to %s: %s",
                  s->db_path, why, to, strerror(errno));
  static const char *const side[] = {"-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
    snprintf(from, sizeof from, "%s%s", s->db_path, side[i]);
    snprintf(to2, sizeof to2, "%s%s", to, side[i]);
    if (rename(from, to2) != 0 && errno != ENOENT)
      return tk_err(TAKHIN_ECATALOG, "catalog %s is damaged (%s): cannot move %s aside: %s",
                    s->db_path, why, from, strerror(errno));
  }
  char dir[TK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", s->db_path);
  char *slash = strrchr(dir, '/');
  if (slash) *(slash == dir ? slash + 1 : slash) = 0;
  else snprintf(dir, sizeof dir, ".");
  tk_sync_dir(dir); /* best effort: the rename is what matters */
  snprintf(s->recovery.catalog_aside, sizeof s->recovery.catalog_aside, "%.4000s", to);
  return TAKHIN_OK;
}

struct sqlite3 *tk_cat_db(takhin_store *s) {
  return s->cat ? s->cat->db : NULL;
}

int tk_cat_open(takhin_store *s, int read_only, sqlite3 *borrow) {
  tk_catalog *c = calloc(1, sizeof *c);
  if (!c) return tk_err(TAKHIN_ENOMEM, "out of memory opening the catalog");
  s->cat = c;
  c->read_only = read_only;
  int rc = TAKHIN_OK;
  char *msg = NULL;
  if (borrow) {
    c->db = borrow;
    c->borrowed = 1;
    /* WAL lets other processes read while this one writes; it can only be
    ** switched outside a transaction, and is worth no failure. */
    if (!read_only && sqlite3_get_autocommit(borrow))
      sqlite3_exec(borrow, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (!read_only && sqlite3_exec(borrow, takhin_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
      rc = tk_err(TAKHIN_ECATALOG, "catalog schema (%s): %s", s->db_path,
                  msg ? msg : sqlite3_errmsg(borrow));
      sqlite3_free(msg);
      goto fail;
    }
    if (!read_only && (rc = add_columns(s, borrow))) goto fail;
    if ((rc = check_format(s)) || (rc = tk_cat_rows_register(borrow)) ||
        (rc = tk_dead_register(borrow)))
      goto fail;
    return TAKHIN_OK;
  }
  int damaged = 0;
  rc = open_own(s, c, read_only, &damaged);
  if (rc && damaged) {
    char why[512];
    snprintf(why, sizeof why, "%s", c->db ? sqlite3_errmsg(c->db) : "damaged");
    if (read_only) {
      /* A reader must not change anything, and has nothing to serve from. */
      rc = tk_err(TAKHIN_ECATALOG,
                  "catalog %s is damaged (%s): a read-only open changes nothing; "
                  "open the store once for writing, which keeps the damaged file as "
                  "%s.damaged-<ms> and rebuilds the catalog from the data folder",
                  s->db_path, why, s->db_path);
      goto fail;
    }
    sqlite3_close(c->db);
    c->db = NULL;
    if ((rc = move_aside(s, why))) goto fail;
    if ((rc = open_own(s, c, read_only, &damaged))) goto fail;
    s->recovery.catalog_moved_aside = 1;
  }
  if (rc == TAKHIN_ECATALOG && read_only && reopen_immutable(s)) rc = check_format(s);
  if (!rc) rc = tk_cat_rows_register(c->db);
  if (!rc) rc = tk_dead_register(c->db);
  if (rc) goto fail;
  return TAKHIN_OK;
fail:
  tk_cat_close(s);
  return rc;
}

void tk_cat_close(takhin_store *s) {
  tk_catalog *c = s->cat;
  if (!c) return;
  for (int i = 0; i < TK_SQL_COUNT; i++) sqlite3_finalize(c->st[i]);
  if (!c->borrowed) sqlite3_close(c->db);
  free(c->run);
  free(c);
  s->cat = NULL;
}

int tk_sql_writer_active(sqlite3 *db) {
  for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
    if (sqlite3_stmt_busy(st) && !sqlite3_stmt_readonly(st)) return 1;
  return 0;
}

/* Borrowed catalog: while on, tk_cat_begin..commit run in a savepoint. */
static void cat_group(takhin_store *s, int on) {
  pthread_mutex_lock(&s->cat_lock);
  if (s->cat) s->cat->group = on;
  pthread_mutex_unlock(&s->cat_lock);
}

int tk_host_run(takhin_store *s, int grouped, int (*fn)(takhin_store *s, void *arg), void *arg) {
  if (grouped) cat_group(s, 1);
  int rc = fn(s, arg);
  if (grouped) cat_group(s, 0);
  return rc;
}

int tk_cat_begin(takhin_store *s) {
  tk_catalog *c = s->cat;
  if (c->borrowed) {
    if (c->hold++ == 0 && c->group && !tk_sql_writer_active(c->db)) {
      c->sp_began = sqlite3_get_autocommit(c->db);
      if (sqlite3_exec(c->db, "SAVEPOINT takhin_catalog_group", NULL, NULL, NULL) != SQLITE_OK) {
        c->hold--;
        return cat_err(s, "savepoint");
      }
      c->savepoint = 1;
    }
    return TAKHIN_OK;
  }
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_BEGIN);
  return st ? run(s, st, "begin") : cat_err(s, "begin");
}

int tk_cat_commit(takhin_store *s) {
  tk_catalog *c = s->cat;
  if (c->borrowed) {
    if (c->hold == 0 || --c->hold > 0) return TAKHIN_OK;
    drop_cache(c);
    if (!c->savepoint) return TAKHIN_OK;
    c->savepoint = 0;
    if (sqlite3_exec(c->db, "RELEASE takhin_catalog_group", NULL, NULL, NULL) == SQLITE_OK)
      return TAKHIN_OK;
    int rc = cat_err(s, "commit");
    sqlite3_exec(c->db, "ROLLBACK TO takhin_catalog_group; RELEASE takhin_catalog_group", NULL,
                 NULL, NULL);
    /* Our savepoint was the transaction: never leave the connection inside
    ** one nobody owns (later statements would join it silently). */
    if (c->sp_began && !sqlite3_get_autocommit(c->db))
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_COMMIT);
  int rc = st ? run(s, st, "commit") : cat_err(s, "commit");
  if (rc) tk_cat_rollback(s);
  return rc;
}

void tk_cat_rollback(takhin_store *s) {
  tk_catalog *c = s->cat;
  if (c->borrowed) {
    if (c->hold == 0 || --c->hold > 0) return;
    drop_cache(c);
    if (c->savepoint)
      sqlite3_exec(c->db, "ROLLBACK TO takhin_catalog_group; RELEASE takhin_catalog_group", NULL,
                   NULL, NULL);
    c->savepoint = 0;
    return;
  }
  if (sqlite3_get_autocommit(s->cat->db)) return;
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_ROLLBACK);
  if (st) {
    sqlite3_step(st);
    done(s, st);
  }
}

int tk_cat_insert_topic(takhin_store *s, const char *name, int32_t nparts,
                        const tk_topic_config *cfg, int64_t *id) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_INSERT_TOPIC);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, nparts);
  tk_config_bind(st, 3, cfg); /* ?3.. in both topic statements */
  sqlite3_bind_int64(st, 3 + TK_NCONFIGS, tk_now_ms());
  int rc = run(s, st, "insert topic");
  if (!rc) *id = sqlite3_last_insert_rowid(s->cat->db);
  return rc;
}

int tk_cat_forget_dead(takhin_store *s, int64_t topic_id, int32_t part) {
  /* A release from before takhin_cat_dead (same format_version) deletes a
  ** topic without these rows, and the next topic may get its topic_id: its
  ** partitions must not inherit the old one's dead offsets. */
  static const int ids[] = {TK_SQL_WIPE_DEAD, TK_SQL_CLEAR_DEAD_FROM};
  int rc = TAKHIN_OK;
  for (size_t i = 0; i < sizeof ids / sizeof *ids && !rc; i++) {
    sqlite3_stmt *st = tk_cat_stmt(s, ids[i]);
    if (!st) return cat_err(s, "prepare");
    sqlite3_bind_int64(st, 1, topic_id);
    sqlite3_bind_int(st, 2, part);
    rc = run(s, st, tk_sql_name(ids[i]));
  }
  return rc;
}

int tk_cat_insert_partition(takhin_store *s, int64_t topic_id, int32_t part) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_INSERT_PARTITION);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  int rc = run(s, st, "insert partition");
  return rc ? rc : tk_cat_forget_dead(s, topic_id, part);
}

int tk_cat_each_topic(takhin_store *s,
                      int (*fn)(takhin_store *, int64_t, const char *, int32_t,
                                const tk_topic_config *, void *),
                      void *arg) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_TOPICS);
  if (!st) return cat_err(s, "prepare");
  int rc = TAKHIN_OK, step;
  while (rc == TAKHIN_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    int64_t nparts = sqlite3_column_int64(st, 2);
    tk_topic_config cfg;
    if (!name || tk_topic_name_check(name)) {
      rc = tk_err(TAKHIN_ECORRUPT, "catalog row for topic id %lld has an invalid name",
                  (long long)id);
      break;
    }
    if (nparts < 1 || nparts > TK_MAX_PARTITIONS) {
      rc = tk_err(TAKHIN_ECORRUPT, "catalog row for topic \"%s\" has %lld partitions", name,
                  (long long)nparts);
      break;
    }
    if (tk_config_from_row(st, 3, &cfg)) {
      char why[256]; /* tk_err writes the buffer takhin_errmsg() reads: copy first */
      snprintf(why, sizeof why, "%s", takhin_errmsg());
      rc = tk_err(TAKHIN_ECORRUPT, "catalog row for topic \"%s\" has a bad config: %s", name, why);
      break;
    }
    rc = fn(s, id, name, (int32_t)nparts, &cfg, arg);
  }
  if (rc == TAKHIN_OK && step != SQLITE_DONE) rc = cat_err(s, "reading topics");
  done(s, st);
  return rc;
}

int tk_cat_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t *out) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_LOG_START);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  int step = sqlite3_step(st);
  *out = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  done(s, st);
  return step == SQLITE_ROW || step == SQLITE_DONE ? TAKHIN_OK : cat_err(s, "reading log start");
}

int tk_cat_data_version(takhin_store *s, int64_t *out) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_DATA_VERSION);
  if (!st) return TAKHIN_ECATALOG;
  int step = sqlite3_step(st);
  *out = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  tk_cat_done(s, st);
  return step == SQLITE_ROW ? TAKHIN_OK : tk_cat_error(s, "reading data_version");
}

int tk_cat_set_log_start(takhin_store *s, int64_t topic_id, int32_t part, int64_t v) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_SET_LOG_START);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, v);
  return run(s, st, "update log start");
}

int tk_cat_segments(takhin_store *s, int64_t topic_id, int32_t part, int64_t min_base,
                    tk_seg_row **rows, size_t *n) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_SEGMENTS);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, min_base);
  tk_seg_row *v = NULL;
  size_t cnt = 0, cap = 0;
  int step, rc = TAKHIN_OK;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (TK_ARRAY_GROW(v, cnt, cap, 8)) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory reading segments");
      break;
    }
    tk_seg_row *r = &v[cnt++];
    r->base = sqlite3_column_int64(st, 0);
    r->next = sqlite3_column_int64(st, 1);
    r->size = sqlite3_column_int64(st, 2);
    r->max_ts = sqlite3_column_int64(st, 3);
    r->sealed = sqlite3_column_int(st, 4) != 0;
    r->created_ms = sqlite3_column_int64(st, 5);
    r->records = sqlite3_column_int64(st, 6);
  }
  if (!rc && step != SQLITE_DONE) rc = cat_err(s, "reading segments");
  done(s, st);
  if (rc) {
    free(v);
    return rc;
  }
  *rows = v;
  *n = cnt;
  return TAKHIN_OK;
}

/* Named statement id, ready, with ?1 ?2 ?3 bound to a segment: topic_id,
** partition, base offset. NULL, with the error set, when it does not prepare. */
static sqlite3_stmt *seg_stmt(takhin_store *s, int id, int64_t topic_id, int32_t part,
                              int64_t seg_base) {
  sqlite3_stmt *st = tk_cat_stmt(s, id);
  if (!st) {
    cat_err(s, "prepare");
    return NULL;
  }
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, seg_base);
  return st;
}

int tk_cat_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                 tk_index_entry **rows, size_t *n, int64_t *damaged_from) {
  *rows = NULL;
  *n = 0;
  *damaged_from = INT64_MAX;
  /* A reader of a format 1 or 2 catalog: its rows are of another shape, and
  ** the files are walked instead. */
  if (s->cat->format < TAKHIN_FORMAT_VERSION) return TAKHIN_OK;
  sqlite3_stmt *st = seg_stmt(s, TK_SQL_INDEX, topic_id, part, seg_base);
  if (!st) return TAKHIN_ECATALOG;
  tk_index_entry *v = NULL;
  size_t cnt = 0, cap = 0;
  int step, rc = TAKHIN_OK;
  /* Every run is read, a damaged one too: its first_offset may be damaged,
  ** which moves it in this order, and then stopping at it would keep the
  ** runs read before it that should follow it, with a hole or stale
  ** entries where its own were. The entries from the lowest offset a
  ** damaged run may have started at go instead (tk_index_run_bound): the
  ** rest is rebuilt by walking the file. */
  int64_t bound = INT64_MAX;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t first = sqlite3_column_int64(st, 0);
    const void *blob = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    size_t ulen = len > 0 ? (size_t)len : 0;
    /* first_position is read only by tk_cat_delete_index_from, to find the
    ** runs a cut removes whole: a wrong one there would keep entries past
    ** the cut or drop ones before it, so such a run is damaged too */
    tk_index_entry one;
    if (blob && ulen >= TK_INDEX_RUN_ENTRY) tk_index_run_entry(blob, &one);
    rc = blob && ulen >= TK_INDEX_RUN_ENTRY && one.position != sqlite3_column_int64(st, 2)
             ? TAKHIN_ECORRUPT
             : tk_index_run_merge(&v, &cnt, &cap, first, blob, ulen);
    if (rc == TAKHIN_ECORRUPT) {
      int64_t b = tk_index_run_bound(first, blob, ulen);
      if (b < bound) bound = b;
      rc = TAKHIN_OK;
    }
    if (rc) break;
  }
  if (!rc && step != SQLITE_DONE) rc = cat_err(s, "reading the index");
  done(s, st);
  if (rc) {
    free(v);
    return rc;
  }
  if (bound != INT64_MAX) {
    size_t keep = 0;
    while (keep < cnt && v[keep].offset < bound) keep++;
    cnt = keep;
    *damaged_from = bound;
  }
  *rows = v;
  *n = cnt;
  return TAKHIN_OK;
}

int tk_cat_upsert_segment(takhin_store *s, int64_t topic_id, int32_t part, const tk_segment *g) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_UPSERT_SEGMENT);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, g->base_offset);
  sqlite3_bind_int64(st, 4, g->next_offset);
  sqlite3_bind_int64(st, 5, g->size);
  sqlite3_bind_int64(st, 6, g->max_ts);
  sqlite3_bind_int(st, 7, g->sealed);
  sqlite3_bind_int64(st, 8, g->created_ms);
  sqlite3_bind_int64(st, 9, g->records);
  return run(s, st, "write segment row");
}

int tk_cat_upsert_index(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                        const tk_index_entry *e, size_t n) {
  if (n == 0) return TAKHIN_OK;
  tk_catalog *c = s->cat;
  if (!c->run && !(c->run = malloc((size_t)TK_INDEX_RUN_MAX * TK_INDEX_RUN_ENTRY)))
    return tk_err(TAKHIN_ENOMEM, "out of memory writing the index");
  /* The runs these entries replace whole go; one that starts before them
  ** and overlaps is cut at e[0] when read (index_run.c). */
  int rc = tk_cat_delete_index_runs_from(s, topic_id, part, seg_base, e[0].offset);
  for (size_t i = 0; !rc && i < n; i += TK_INDEX_RUN_MAX) {
    size_t k = n - i < TK_INDEX_RUN_MAX ? n - i : TK_INDEX_RUN_MAX;
    tk_index_run_encode(e + i, k, c->run);
    sqlite3_stmt *st = seg_stmt(s, TK_SQL_INSERT_INDEX_RUN, topic_id, part, seg_base);
    if (!st) return TAKHIN_ECATALOG;
    sqlite3_bind_int64(st, 4, e[i].offset);
    sqlite3_bind_int64(st, 5, e[i].position);
    sqlite3_bind_blob(st, 6, c->run, (int)(k * TK_INDEX_RUN_ENTRY), SQLITE_STATIC);
    rc = run(s, st, "write index run");
  }
  return rc;
}

int tk_cat_delete_segment(takhin_store *s, int64_t topic_id, int32_t part, int64_t base) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_DELETE_SEGMENT_INDEX);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, base);
  int rc = run(s, st, "delete index rows");
  if (rc) return rc;
  st = tk_cat_stmt(s, TK_SQL_DELETE_SEGMENT);
  if (!st) return cat_err(s, "prepare");
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, base);
  return run(s, st, "delete segment row");
}

int tk_cat_delete_index_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                             int64_t position) {
  sqlite3_stmt *st = seg_stmt(s, TK_SQL_DELETE_INDEX_FROM, topic_id, part, seg_base);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 4, position);
  int rc = run(s, st, "delete index rows");
  if (rc) return rc;
  /* The last run left starts before position; its entries at or past it
  ** go too. (The runs before it are cut at its start when read.) */
  if (!(st = seg_stmt(s, TK_SQL_LAST_INDEX_RUN, topic_id, part, seg_base))) return TAKHIN_ECATALOG;
  int step = sqlite3_step(st);
  int64_t first = 0, keep = -1;
  if (step == SQLITE_ROW) {
    first = sqlite3_column_int64(st, 0);
    const uint8_t *b = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    int64_t k = 0;
    /* The first entry at or past position ends the run; a damaged tail
    ** (less than a whole entry) goes with it. */
    for (; b && (k + 1) * TK_INDEX_RUN_ENTRY <= len; k++) {
      tk_index_entry one;
      tk_index_run_entry(b + k * TK_INDEX_RUN_ENTRY, &one);
      if (one.position >= position) break;
    }
    if (k * TK_INDEX_RUN_ENTRY < len) keep = k * TK_INDEX_RUN_ENTRY;
  }
  done(s, st);
  if (step != SQLITE_ROW && step != SQLITE_DONE) return cat_err(s, "reading the index");
  if (keep < 0) return TAKHIN_OK;
  if (!(st = seg_stmt(s, TK_SQL_CUT_INDEX_RUN, topic_id, part, seg_base))) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 4, first);
  sqlite3_bind_int64(st, 5, keep);
  return run(s, st, "cut an index run");
}

int tk_cat_delete_index_runs_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t seg_base,
                                  int64_t first_offset) {
  sqlite3_stmt *st = seg_stmt(s, TK_SQL_DELETE_INDEX_RUNS_FROM, topic_id, part, seg_base);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 4, first_offset);
  return run(s, st, "delete index runs");
}

int tk_cat_delete_topic(takhin_store *s, int64_t topic_id) {
  /* Children first and explicitly: the host connection of the extension may
  ** not have foreign_keys on, so ON DELETE CASCADE cannot be relied upon. */
  static const int ids[] = {
      TK_SQL_DELETE_TOPIC_INDEX,     TK_SQL_DELETE_TOPIC_KEYS,       TK_SQL_DELETE_TOPIC_DEAD,
      TK_SQL_DELETE_TOPIC_DEAD_FROM, TK_SQL_DELETE_TOPIC_SWAPS,      TK_SQL_DELETE_TOPIC_SEGMENTS,
      TK_SQL_DELETE_TOPIC_OFFSETS,   TK_SQL_DELETE_TOPIC_PARTITIONS, TK_SQL_DELETE_TOPIC,
  };
  int rc = TAKHIN_OK;
  for (size_t i = 0; i < sizeof ids / sizeof *ids && !rc; i++) {
    sqlite3_stmt *st = tk_cat_stmt(s, ids[i]);
    if (!st) return TAKHIN_ECATALOG;
    sqlite3_bind_int64(st, 1, topic_id);
    rc = run(s, st, "delete topic");
  }
  return rc;
}

int tk_cat_step_done(takhin_store *s, sqlite3_stmt *st, const char *what) {
  return run(s, st, what);
}

int tk_cat_error(takhin_store *s, const char *what) { return cat_err(s, what); }

int64_t tk_cat_changes(takhin_store *s) { return sqlite3_changes(s->cat->db); }

int tk_cat_update_topic(takhin_store *s, int64_t topic_id, int32_t nparts,
                        const tk_topic_config *cfg) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_UPDATE_TOPIC);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, nparts);
  tk_config_bind(st, 3, cfg); /* ?3.. in both topic statements */
  return run(s, st, "update topic");
}

int tk_cat_topic_id(takhin_store *s, const char *name, int64_t *id) {
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_TOPIC_ID);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int step = sqlite3_step(st), rc = TAKHIN_OK;
  if (step == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
  else if (step == SQLITE_DONE) rc = TAKHIN_ENOTFOUND;
  else rc = cat_err(s, "reading a topic");
  done(s, st);
  return rc;
}
