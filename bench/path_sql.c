/*
** path_sql.c -- the sql path: takhin through SQL on its loaded SQLite
** extension, as an application using only SQL would drive it.
**
** One SQLite connection per store, on "<dir>/bench.db", with the extension
** (takhin.so, found next to the takhin-bench executable, or for an installed
** takhin-bench where the dynamic loader finds it) loaded into it. The
** bench links one libsqlite3 and the extension links none, so there is one
** SQLite in the process, as in the sqlite3 shell. The connection is set to
** WAL and synchronous=NORMAL, what takhin's own catalog connection uses on the
** api path, so both paths run the same store configuration. Topics are made
** with CREATE VIRTUAL TABLE bench USING takhin(partitions=N, segment_bytes=..,
** max_message_bytes=16777216, cleanup_policy=...), the api path's settings.
**
**   produce        INSERT INTO t(partition, key, value, timestamp) VALUES (?,?,?,?),
**                  one statement (its own transaction) for one record, and
**                  BEGIN .. n INSERTs .. COMMIT for a batch: the extension
**                  appends a COMMIT's rows as one batch per partition
**   produce_topic  INSERT INTO t(key, value, timestamp): partition NULL, so
**                  the extension's Kafka partitioner picks it; BEGIN..COMMIT
**   read_range     SELECT key, value, offset FROM t
**                  WHERE partition = ? AND offset >= ? LIMIT ?  (all pushed down)
**   read_one       SELECT key, value FROM t WHERE partition = ? AND offset = ?
**   read_tail      SELECT key, value, offset FROM t WHERE partition = ?
**                  ORDER BY offset DESC LIMIT ?  (read backwards, LIMIT pushed)
**   read_key       SELECT key, value, offset FROM t WHERE partition = ? AND key = ?
**                  (a key-index lookup on a compacted topic)
**   segments       SELECT segments FROM takhin_partitions WHERE topic = ? AND partition = ?
**   balance        SELECT partition, high_watermark - log_start_offset
**                  FROM takhin_partitions WHERE topic = ?
**   compact        SELECT * FROM takhin_compact(?)
** Every statement is prepared once (open or reader_open) and reused; blobs
** are bound SQLITE_STATIC. INSERT cannot return the offsets the log assigns
** (they exist only at COMMIT), so the path counts offsets itself for
** produce's first_offset, as the sqlite path does.
**
** Threads: the connection is opened SQLITE_OPEN_NOMUTEX and used by one
** thread at a time: every produce, metadata query and read holds the store's
** pthread mutex (the lock the lock accounting sees), as the sqlite path does
** per partition. SQLite's own per-call mutex (FULLMUTEX, the default of a
** serialized build) cost about 15% of a range SELECT for nothing here. A
** reader has its own prepared statements on the same connection. Only one
** connection of a process can write a store (a second one opens it
** read-only: sqlite_ext/ext.c tkx_store), so SQL writers never run in
** parallel; see BENCHMARKS.md for what that means for ConcurrentProducers.
**
** Durability: the extension opens its store with takhin's defaults and has
** no way to choose another mode (BUFFERED is refused on a borrowed
** connection), so the path runs in durability os only and says n/a for the
** others.
*/
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_TOPICS 64

typedef struct sql_topic {
  char name[16];
  sqlite3_stmt *ins_part; /* INSERT with the partition given */
  sqlite3_stmt *ins_key;  /* INSERT with partition NULL: the partitioner picks */
} sql_topic;

struct bp_store {
  pthread_mutex_t mu; /* one connection: produce calls take turns */
  sqlite3 *db;
  int32_t ntopics, nparts;
  int compacted;
  sql_topic topics[MAX_TOPICS];
  int64_t *next; /* per global partition: the offset the next record gets */
  sqlite3_stmt *begin, *commit, *rollback, *segs, *parts, *sealed, *compact;
};

struct bp_reader {
  bp_store *st;
  int32_t part;
  sqlite3_stmt *range, *one, *key, *tail;
};

/* ---- finding the extension ------------------------------------------------ */
static pthread_once_t locate_once = PTHREAD_ONCE_INIT;
static char ext_path[4200];
static char ext_why[4400];

static void locate(void) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    snprintf(ext_why, sizeof ext_why,
             "sql path: n/a: cannot read /proc/self/exe to find takhin.so next to takhin-bench");
    return;
  }
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(ext_path, sizeof ext_path, "%s/takhin.so", exe);
  if (access(ext_path, R_OK) == 0) return;
  /* An installed takhin-bench (/usr/bin) loads the installed extension, by
  ** the bare name the dynamic loader finds, as `.load takhin` does. */
  void *h = dlopen("takhin.so", RTLD_LAZY | RTLD_LOCAL);
  if (h) {
    dlclose(h);
    snprintf(ext_path, sizeof ext_path, "takhin.so");
    return;
  }
  snprintf(
      ext_why, sizeof ext_why,
      "sql path: n/a: the takhin SQLite extension %s is missing, and no takhin.so is installed "
      "where the dynamic loader finds it; build it with cmake --build <build dir> --target takhin_ext",
      ext_path);
}

static const char *sql_unavailable(void) {
  pthread_once(&locate_once, locate);
  return ext_why[0] ? ext_why : NULL;
}

static const char *sql_mode_unavailable(int durability) {
  if (durability == TAKHIN_DURABILITY_OS) return NULL;
  return "the SQLite extension opens its store with takhin's default durability (os); fsync and "
         "buffered cannot be chosen through SQL";
}

/* ---- helpers ---------------------------------------------------------------- */
static int db_fail(sqlite3 *db, const char *what) {
  bench_errorf("sql path: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
  return -1;
}

/* Prepare sqlite3_mprintf(fmt, ...) (%w quotes an identifier) once, to keep. */
static int prep(sqlite3 *db, sqlite3_stmt **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  if (!sql) return db_fail(NULL, "prepare");
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
  if (rc != SQLITE_OK) {
    bench_errorf("sql path: prepare %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_free(sql);
    return -1;
  }
  sqlite3_free(sql);
  return 0;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    bench_errorf("sql path: %s: %s", sql, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

/* Step a statement that returns no rows, then reset it. */
static int step_done(sqlite3 *db, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) {
    db_fail(db, what);
    sqlite3_reset(s);
    return -1;
  }
  sqlite3_reset(s);
  return 0;
}

static int sql_close(bp_store *st);

static int sql_open(const bp_config *cfg, bp_store **out) {
  if (sql_unavailable()) {
    bench_errorf("%s", ext_why);
    return -1;
  }
  if (bp_topics(cfg) > MAX_TOPICS) {
    bench_errorf("sql path: at most %d topics", MAX_TOPICS);
    return -1;
  }
  /* cfg->durability is ignored: the store runs in os, its only mode here
  ** (produce benchmarks in other modes are n/a, see sql_mode_unavailable). */
  bp_store *st = calloc(1, sizeof *st);
  if (!st) return db_fail(NULL, "calloc");
  pthread_mutex_init(&st->mu, NULL);
  st->ntopics = bp_topics(cfg);
  st->nparts = cfg->partitions;
  st->compacted = cfg->compacted;
  st->next = calloc((size_t)(st->ntopics * st->nparts), sizeof *st->next);
  char file[4200];
  snprintf(file, sizeof file, "%s/bench.db", cfg->dir);
  char *err = NULL;
  if (!st->next) {
    db_fail(NULL, "calloc");
    goto fail;
  }
  if (sqlite3_open_v2(file, &st->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    db_fail(st->db, "open");
    goto fail;
  }
  sqlite3_busy_timeout(st->db, 10000);
  sqlite3_enable_load_extension(st->db, 1);
  if (sqlite3_load_extension(st->db, ext_path, "sqlite3_takhin_init", &err) != SQLITE_OK) {
    bench_errorf("sql path: load %s: %s", ext_path, err ? err : sqlite3_errmsg(st->db));
    sqlite3_free(err);
    goto fail;
  }
  sqlite3_enable_load_extension(st->db, 0);
  if (exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") != 0) goto fail;
  long long seg = cfg->segment_bytes ? cfg->segment_bytes : 1073741824;
  for (int32_t t = 0; t < st->ntopics; t++) {
    sql_topic *tp = &st->topics[t];
    if (t == 0) snprintf(tp->name, sizeof tp->name, "bench");
    else snprintf(tp->name, sizeof tp->name, "bench%d", (int)t);
    char *sql = sqlite3_mprintf(
        "CREATE VIRTUAL TABLE \"%w\" USING takhin(partitions=%d, segment_bytes=%lld, "
        "max_message_bytes=16777216, cleanup_policy=%s)",
        tp->name, (int)cfg->partitions, seg, cfg->compacted ? "compact" : "delete");
    int rc = cfg->existing ? 0 : sql ? exec(st->db, sql) : db_fail(NULL, "mprintf");
    sqlite3_free(sql);
    if (rc != 0 ||
        prep(st->db, &tp->ins_part,
             "INSERT INTO \"%w\"(partition, key, value, timestamp) VALUES (?1, ?2, ?3, ?4)",
             tp->name) != 0 ||
        prep(st->db, &tp->ins_key, "INSERT INTO \"%w\"(key, value, timestamp) VALUES (?1, ?2, ?3)",
             tp->name) != 0)
      goto fail;
  }
  if (prep(st->db, &st->begin, "BEGIN") != 0 || prep(st->db, &st->commit, "COMMIT") != 0 ||
      prep(st->db, &st->rollback, "ROLLBACK") != 0 ||
      prep(st->db, &st->segs,
           "SELECT segments FROM takhin_partitions WHERE topic = ?1 AND partition = ?2") != 0 ||
      prep(st->db, &st->parts,
           "SELECT partition, high_watermark - log_start_offset FROM takhin_partitions "
           "WHERE topic = ?1") != 0 ||
      prep(st->db, &st->sealed,
           "SELECT coalesce(sum(size_bytes), 0) FROM takhin_segments "
           "WHERE topic = ?1 AND partition = ?2 AND sealed") != 0)
    goto fail;
  if (cfg->compacted &&
      prep(
          st->db, &st->compact,
          "SELECT bytes_reclaimed, records_removed, keys_kept, duration_ms FROM takhin_compact(?1)") !=
          0)
    goto fail;
  *out = st;
  return 0;
fail:
  sql_close(st);
  return -1;
}

static int sql_close(bp_store *st) {
  for (int32_t t = 0; t < st->ntopics; t++) {
    sqlite3_finalize(st->topics[t].ins_part);
    sqlite3_finalize(st->topics[t].ins_key);
  }
  sqlite3_stmt *stmts[] = {st->begin, st->commit, st->rollback, st->segs,
                           st->parts, st->sealed, st->compact};
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
  int rc = 0;
  /* Closing the connection closes the store it owns (takhin_close). */
  if (st->db && sqlite3_close(st->db) != SQLITE_OK) rc = db_fail(st->db, "close");
  pthread_mutex_destroy(&st->mu);
  free(st->next);
  free(st);
  return rc;
}

/* ---- writing ------------------------------------------------------------------ */
static void bind_record(sqlite3_stmt *s, int at, const takhin_record *r) {
  if (r->key) sqlite3_bind_blob(s, at, r->key, (int)r->key_len, SQLITE_STATIC);
  else sqlite3_bind_null(s, at);
  if (r->value) sqlite3_bind_blob(s, at + 1, r->value, (int)r->value_len, SQLITE_STATIC);
  else sqlite3_bind_null(s, at + 1);
  if (r->timestamp == TAKHIN_TIMESTAMP_NOW) sqlite3_bind_null(s, at + 2);
  else sqlite3_bind_int64(s, at + 2, r->timestamp);
}

/* n INSERTs of stmt (already bound to a partition, or not), one transaction. */
static int insert_locked(bp_store *st, sqlite3_stmt *ins, int at, const takhin_record *recs,
                         size_t n) {
  if (n > 1 && step_done(st->db, st->begin, "BEGIN") != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    bind_record(ins, at, &recs[i]);
    if (step_done(st->db, ins, n > 1 ? "INSERT" : "INSERT (autocommit)") != 0) {
      if (n > 1) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
  }
  if (n > 1 && step_done(st->db, st->commit, "COMMIT") != 0) {
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return 0;
}

static int sql_produce(bp_store *st, int32_t g, const takhin_record *recs, size_t n,
                       int64_t *first_offset) {
  sql_topic *tp = &st->topics[g / st->nparts];
  pthread_mutex_lock(&st->mu);
  sqlite3_bind_int(tp->ins_part, 1, g % st->nparts);
  int rc = insert_locked(st, tp->ins_part, 2, recs, n);
  if (rc == 0) {
    if (first_offset) *first_offset = st->next[g];
    st->next[g] += (int64_t)n;
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static int sql_produce_topic(bp_store *st, int32_t topic, const takhin_record *recs, size_t n) {
  pthread_mutex_lock(&st->mu);
  int rc = insert_locked(st, st->topics[topic].ins_key, 1, recs, n);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* Every COMMIT handed its batch to the OS (durability os); what may still
** wait are catalog rows (index entries, key rows): written now, as the api
** path's takhin_flush does. */
static int sql_flush(bp_store *st) {
  pthread_mutex_lock(&st->mu);
  int rc = exec(st->db, "SELECT takhin_flush()");
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* ---- metadata ----------------------------------------------------------------- */
static int one_i64(bp_store *st, sqlite3_stmt *s, const char *what, int64_t *out) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
  else db_fail(st->db, what);
  sqlite3_reset(s);
  return rc == SQLITE_ROW ? 0 : -1;
}

static int sql_segments(bp_store *st, int32_t g, int64_t *out) {
  pthread_mutex_lock(&st->mu);
  sqlite3_bind_text(st->segs, 1, st->topics[g / st->nparts].name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st->segs, 2, g % st->nparts);
  int rc = one_i64(st, st->segs, "takhin_partitions", out);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static int sql_balance(bp_store *st, int32_t topic, int64_t *counts, double *imbalance) {
  pthread_mutex_lock(&st->mu);
  sqlite3_bind_text(st->parts, 1, st->topics[topic].name, -1, SQLITE_STATIC);
  int64_t total = 0, max = 0, rows = 0;
  int rc;
  while ((rc = sqlite3_step(st->parts)) == SQLITE_ROW) {
    int64_t p = sqlite3_column_int64(st->parts, 0), c = sqlite3_column_int64(st->parts, 1);
    if (p >= 0 && p < st->nparts && counts) counts[p] = c;
    total += c;
    if (c > max) max = c;
    rows++;
  }
  sqlite3_reset(st->parts);
  pthread_mutex_unlock(&st->mu);
  if (rc != SQLITE_DONE) return db_fail(st->db, "takhin_partitions");
  if (rows != st->nparts) {
    bench_errorf("sql path: takhin_partitions has %lld rows for %s, expected %d", (long long)rows,
                 st->topics[topic].name, (int)st->nparts);
    return -1;
  }
  double mean = (double)total / (double)rows;
  *imbalance = total ? ((double)max - mean) / mean : 0.0;
  return 0;
}

static int sql_compactable_bytes(bp_store *st, int32_t g, int64_t *bytes) {
  pthread_mutex_lock(&st->mu);
  sqlite3_bind_text(st->sealed, 1, st->topics[g / st->nparts].name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st->sealed, 2, g % st->nparts);
  int rc = one_i64(st, st->sealed, "takhin_segments", bytes);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* takhin_compact(t) compacts every partition of t; the Compaction benchmark
** has one. */
static int sql_compact(bp_store *st, int32_t g, bp_compaction *out) {
  if (!st->compact) {
    bench_errorf("sql path: compaction needs a compacted store");
    return -1;
  }
  pthread_mutex_lock(&st->mu);
  sqlite3_bind_text(st->compact, 1, st->topics[g / st->nparts].name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st->compact);
  if (rc == SQLITE_ROW) {
    out->bytes_reclaimed = sqlite3_column_int64(st->compact, 0);
    out->records_removed = sqlite3_column_int64(st->compact, 1);
    out->keys_kept = sqlite3_column_int64(st->compact, 2);
    out->lib_duration_ms = sqlite3_column_int64(st->compact, 3);
    while ((rc = sqlite3_step(st->compact)) == SQLITE_ROW) {}
  }
  if (rc != SQLITE_DONE) db_fail(st->db, "takhin_compact");
  sqlite3_reset(st->compact);
  pthread_mutex_unlock(&st->mu);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- reading ------------------------------------------------------------------ */
static void sql_reader_close(bp_reader *r) {
  if (!r) return;
  pthread_mutex_lock(&r->st->mu);
  sqlite3_finalize(r->range);
  sqlite3_finalize(r->one);
  sqlite3_finalize(r->key);
  sqlite3_finalize(r->tail);
  pthread_mutex_unlock(&r->st->mu);
  free(r);
}

static int sql_reader_open(bp_store *st, int32_t g, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) return db_fail(NULL, "calloc");
  r->st = st;
  r->part = g % st->nparts;
  const char *t = st->topics[g / st->nparts].name;
  pthread_mutex_lock(&st->mu);
  int rc =
      prep(st->db, &r->range,
           "SELECT key, value, offset FROM \"%w\" WHERE partition = ?1 AND offset >= ?2 LIMIT ?3",
           t) != 0 ||
      prep(st->db, &r->one, "SELECT key, value FROM \"%w\" WHERE partition = ?1 AND offset = ?2",
           t) != 0 ||
      prep(
          st->db, &r->tail,
          "SELECT key, value, offset FROM \"%w\" WHERE partition = ?1 ORDER BY offset DESC LIMIT ?2",
          t) != 0 ||
      (st->compacted &&
       prep(st->db, &r->key,
            "SELECT key, value, offset FROM \"%w\" WHERE partition = ?1 AND key = ?2", t) != 0);
  pthread_mutex_unlock(&st->mu);
  if (rc) {
    sql_reader_close(r);
    return -1;
  }
  *out = r;
  return 0;
}

static int sql_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  pthread_mutex_lock(&r->st->mu);
  sqlite3_bind_int(r->range, 1, r->part);
  sqlite3_bind_int64(r->range, 2, offset);
  sqlite3_bind_int64(r->range, 3, n);
  int64_t got = 0;
  int rc;
  while ((rc = sqlite3_step(r->range)) == SQLITE_ROW) {
    if (sqlite3_column_int64(r->range, 2) != offset + got) break;
    const void *k = sqlite3_column_blob(r->range, 0);
    size_t kl = (size_t)sqlite3_column_bytes(r->range, 0);
    const void *v = sqlite3_column_blob(r->range, 1);
    size_t vl = (size_t)sqlite3_column_bytes(r->range, 1);
    bp_sink_take(sink, k, kl, v, vl);
    got++;
  }
  sqlite3_reset(r->range);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) db_fail(r->st->db, "range SELECT");
  pthread_mutex_unlock(&r->st->mu);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return -1;
  if (got != n) {
    bench_errorf("sql path: range SELECT from offset %lld returned %lld of %lld rows",
                 (long long)offset, (long long)got, (long long)n);
    return -1;
  }
  return 0;
}

static int sql_read_tail(bp_reader *r, int64_t n, bp_sink *sink) {
  pthread_mutex_lock(&r->st->mu);
  sqlite3_bind_int(r->tail, 1, r->part);
  sqlite3_bind_int64(r->tail, 2, n);
  int64_t got = 0, prev = -1;
  int rc;
  while ((rc = sqlite3_step(r->tail)) == SQLITE_ROW) {
    int64_t off = sqlite3_column_int64(r->tail, 2);
    if (prev >= 0 && off != prev - 1) break; /* newest first, no gaps */
    prev = off;
    const void *k = sqlite3_column_blob(r->tail, 0);
    size_t kl = (size_t)sqlite3_column_bytes(r->tail, 0);
    const void *v = sqlite3_column_blob(r->tail, 1);
    size_t vl = (size_t)sqlite3_column_bytes(r->tail, 1);
    bp_sink_take(sink, k, kl, v, vl);
    got++;
  }
  sqlite3_reset(r->tail);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) db_fail(r->st->db, "tail SELECT");
  pthread_mutex_unlock(&r->st->mu);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return -1;
  if (got != n) {
    bench_errorf("sql path: tail SELECT returned %lld of %lld rows in order", (long long)got,
                 (long long)n);
    return -1;
  }
  return 0;
}

static int sql_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  pthread_mutex_lock(&r->st->mu);
  sqlite3_bind_int(r->one, 1, r->part);
  sqlite3_bind_int64(r->one, 2, offset);
  int rc = sqlite3_step(r->one);
  if (rc == SQLITE_ROW) {
    const void *k = sqlite3_column_blob(r->one, 0);
    size_t kl = (size_t)sqlite3_column_bytes(r->one, 0);
    const void *v = sqlite3_column_blob(r->one, 1);
    size_t vl = (size_t)sqlite3_column_bytes(r->one, 1);
    bp_sink_take(sink, k, kl, v, vl);
  }
  sqlite3_reset(r->one);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) db_fail(r->st->db, "point SELECT");
  pthread_mutex_unlock(&r->st->mu);
  if (rc == SQLITE_ROW) return 0;
  if (rc == SQLITE_DONE) bench_errorf("sql path: no row at offset %lld", (long long)offset);
  return -1;
}

static int sql_read_key(bp_reader *r, const void *key, size_t len, bp_sink *sink, int64_t *offset) {
  if (!r->key) {
    bench_errorf("sql path: key lookups need a compacted store");
    return -1;
  }
  pthread_mutex_lock(&r->st->mu);
  sqlite3_bind_int(r->key, 1, r->part);
  sqlite3_bind_blob(r->key, 2, key, (int)len, SQLITE_STATIC);
  int rc = sqlite3_step(r->key);
  if (rc == SQLITE_ROW) {
    const void *k = sqlite3_column_blob(r->key, 0);
    size_t kl = (size_t)sqlite3_column_bytes(r->key, 0);
    const void *v = sqlite3_column_blob(r->key, 1);
    size_t vl = (size_t)sqlite3_column_bytes(r->key, 1);
    bp_sink_take(sink, k, kl, v, vl);
    *offset = sqlite3_column_int64(r->key, 2);
  }
  sqlite3_reset(r->key);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) db_fail(r->st->db, "key SELECT");
  pthread_mutex_unlock(&r->st->mu);
  if (rc == SQLITE_ROW) return 0;
  if (rc == SQLITE_DONE) bench_errorf("sql path: no row for key %.*s", (int)len, (const char *)key);
  return -1;
}

const bench_path bench_path_sql = {
    .name = "sql",
    .reopens = 1,
    .unavailable = sql_unavailable,
    .open = sql_open,
    .close = sql_close,
    .produce = sql_produce,
    .flush = sql_flush,
    .segments = sql_segments,
    .reader_open = sql_reader_open,
    .reader_close = sql_reader_close,
    .read_range = sql_read_range,
    .read_tail = sql_read_tail,
    .read_one = sql_read_one,
    .mode_unavailable = sql_mode_unavailable,
    .produce_topic = sql_produce_topic,
    .balance = sql_balance,
    .compactable_bytes = sql_compactable_bytes,
    .compact = sql_compact,
    .read_key = sql_read_key,
};
