/*
** path_sqlite.c -- the sqlite path: what a user would build instead of takhin.
**
** Each partition is its own database file "p<part>.db" holding one plain table
**   log("offset" INTEGER PRIMARY KEY, key BLOB, value BLOB)
** in WAL mode, so partitions can be written in parallel as takhin's can (one
** database would allow a single writer for all of them). Prepared statements
** only; one transaction per produce call (so per message for single writes);
** blobs bound SQLITE_STATIC, as a careful user would. Reads use a prepared
** range SELECT on the primary key and a point SELECT, each reader on its own
** connection (WAL readers do not block the writer). A reader connection is
** set up as a careful user sets one up for a read-heavy log, and as takhin
** reads its segments: PRAGMA mmap_size=1 GiB (the database file is read
** through a mapping, no copy into SQLite's page cache; 1 GiB covers every
** benchmark's log) and PRAGMA cache_size=-65536 (64 MiB for what the mapping
** does not serve: WAL frames and interior pages), instead of the defaults of
** no mapping and a 2 MB cache.
**
** Durability maps onto synchronous: os = NORMAL (a commit is written to the
** WAL, synced only at checkpoints), fsync = FULL (the WAL is synced at every
** commit), buffered = OFF (never synced).
**
** A compacted store (Compaction, CompactedProduce, KeyLookup) adds what a
** user would add for keys: CREATE INDEX log_key ON log(key), kept up to date
** by every INSERT (the counterpart of takhin's key index). Compaction is
**   DELETE FROM log WHERE "offset" NOT IN (SELECT max("offset") FROM log GROUP BY key)
** without VACUUM: the pages it frees go to the freelist, counted as reclaimed.
** A key lookup is SELECT ... WHERE key = ? ORDER BY "offset" DESC LIMIT 1.
** Topic-level produce goes through the benchmark's own split by
** takhin_partition_for_key; every partition of every topic is its own file.
**
** Connections are opened SQLITE_OPEN_NOMUTEX: each is used by one thread at a
** time (the writer under the partition's pthread mutex, which is the lock the
** lock accounting sees), so SQLite's own per-call mutex would be pure cost.
*/
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct spart {
  pthread_mutex_t mu;
  char file[4200];
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *insert;
  int64_t next_offset;
} spart;

static int db_fail(sqlite3 *db, const char *what);

struct bp_store {
  int32_t nparts;
  spart *parts;
};

struct bp_reader {
  sqlite3 *db;
  sqlite3_stmt *range, *one, *key;
};

static int db_fail(sqlite3 *db, const char *what) {
  bench_errorf("sqlite path: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
  return -1;
}

static int open_db(const char *file, sqlite3 **out) {
  int rc = sqlite3_open_v2(file, out,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) return db_fail(*out, "open");
  sqlite3_busy_timeout(*out, 10000);
  return 0;
}

static int sqlite_close(bp_store *st);

static int sqlite_open(const bp_config *cfg, bp_store **out) {
  static const char *const sync_mode[] = {"NORMAL", "FULL", "OFF"};
  int32_t nparts = cfg->partitions * bp_topics(cfg);
  bp_store *st = calloc(1, sizeof *st);
  if (!st || !(st->parts = calloc((size_t)nparts, sizeof *st->parts))) {
    free(st);
    return db_fail(NULL, "calloc");
  }
  st->nparts = nparts;
  for (int32_t i = 0; i < nparts; i++) {
    spart *p = &st->parts[i];
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->file, sizeof p->file, "%s/p%d.db", cfg->dir, (int)i);
    char sql[320];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             "CREATE TABLE log(\"offset\" INTEGER PRIMARY KEY, key BLOB, value BLOB);%s",
             sync_mode[cfg->durability], cfg->compacted ? "CREATE INDEX log_key ON log(key);" : "");
    if (cfg->existing) /* reopened: the table and index are there */
      snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;",
               sync_mode[cfg->durability]);
    if (open_db(p->file, &p->db) != 0 || sqlite3_exec(p->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, "BEGIN", -1, &p->begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, "COMMIT", -1, &p->commit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, "INSERT INTO log(\"offset\", key, value) VALUES(?1, ?2, ?3)", -1,
                           &p->insert, NULL) != SQLITE_OK) {
      if (!bench_error()[0]) db_fail(p->db, "setup");
      sqlite_close(st);
      return -1;
    }
  }
  *out = st;
  return 0;
}

static int sqlite_close(bp_store *st) {
  for (int32_t i = 0; i < st->nparts; i++) {
    spart *p = &st->parts[i];
    sqlite3_finalize(p->begin);
    sqlite3_finalize(p->commit);
    sqlite3_finalize(p->insert);
    sqlite3_close(p->db);
    pthread_mutex_destroy(&p->mu);
  }
  free(st->parts);
  free(st);
  return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? 0 : db_fail(db, what);
}

static int produce_locked(spart *p, const takhin_record *recs, size_t n, int64_t *first_offset) {
  if (step_done(p->db, p->begin, "BEGIN") != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_int64(p->insert, 1, p->next_offset + (int64_t)i);
    sqlite3_bind_blob(p->insert, 2, recs[i].key, (int)recs[i].key_len, SQLITE_STATIC);
    sqlite3_bind_blob(p->insert, 3, recs[i].value, (int)recs[i].value_len, SQLITE_STATIC);
    if (step_done(p->db, p->insert, "INSERT") != 0) {
      sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
  }
  if (step_done(p->db, p->commit, "COMMIT") != 0) return -1;
  if (first_offset) *first_offset = p->next_offset;
  p->next_offset += (int64_t)n;
  return 0;
}

static int sqlite_produce(bp_store *st, int32_t part, const takhin_record *recs, size_t n,
                          int64_t *first_offset) {
  spart *p = &st->parts[part];
  pthread_mutex_lock(&p->mu);
  int rc = produce_locked(p, recs, n, first_offset);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* A single integer from a statement on a partition's writer connection. */
static int query_i64(spart *p, const char *sql, int64_t *out) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(p->db, sql, -1, &s, NULL);
  if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
    *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return 0;
  }
  sqlite3_finalize(s);
  return db_fail(p->db, sql);
}

/* Bytes in use: pages minus the freelist. */
static int used_bytes(spart *p, int64_t *out) {
  int64_t pages, free_pages, page_size;
  if (query_i64(p, "PRAGMA page_count", &pages) != 0 ||
      query_i64(p, "PRAGMA freelist_count", &free_pages) != 0 ||
      query_i64(p, "PRAGMA page_size", &page_size) != 0)
    return -1;
  *out = (pages - free_pages) * page_size;
  return 0;
}

static int sqlite_compactable_bytes(bp_store *st, int32_t part, int64_t *bytes) {
  spart *p = &st->parts[part];
  pthread_mutex_lock(&p->mu);
  int rc = used_bytes(p, bytes);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

static int sqlite_compact(bp_store *st, int32_t part, bp_compaction *out) {
  spart *p = &st->parts[part];
  int64_t before, after, keys;
  pthread_mutex_lock(&p->mu);
  int rc = used_bytes(p, &before);
  if (rc == 0 && sqlite3_exec(p->db,
                              "DELETE FROM log WHERE \"offset\" NOT IN "
                              "(SELECT max(\"offset\") FROM log GROUP BY key)",
                              NULL, NULL, NULL) != SQLITE_OK)
    rc = db_fail(p->db, "compaction DELETE");
  if (rc == 0) out->records_removed = sqlite3_changes64(p->db);
  if (rc == 0) rc = used_bytes(p, &after);
  if (rc == 0) rc = query_i64(p, "SELECT count(*) FROM log", &keys);
  pthread_mutex_unlock(&p->mu);
  if (rc) return rc;
  out->bytes_reclaimed = before - after;
  out->keys_kept = keys;
  out->lib_duration_ms = -1;
  return 0;
}

static int sqlite_flush(bp_store *st) {
  (void)st; /* every commit is already in the WAL file */
  return 0;
}

static int sqlite_reader_open(bp_store *st, int32_t part, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) return db_fail(NULL, "calloc");
  if (open_db(st->parts[part].file, &r->db) != 0 ||
      sqlite3_exec(r->db, "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536;", NULL, NULL,
                   NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(r->db,
                         "SELECT \"offset\", key, value FROM log"
                         " WHERE \"offset\" >= ?1 AND \"offset\" < ?2 ORDER BY \"offset\"",
                         -1, &r->range, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(r->db, "SELECT key, value FROM log WHERE \"offset\" = ?1", -1, &r->one,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(r->db,
                         "SELECT key, value, \"offset\" FROM log WHERE key = ?1"
                         " ORDER BY \"offset\" DESC LIMIT 1",
                         -1, &r->key, NULL) != SQLITE_OK) {
    if (!bench_error()[0]) db_fail(r->db, "prepare");
    sqlite3_finalize(r->range);
    sqlite3_finalize(r->one);
    sqlite3_close(r->db);
    free(r);
    return -1;
  }
  *out = r;
  return 0;
}

static void sqlite_reader_close(bp_reader *r) {
  if (!r) return;
  sqlite3_finalize(r->range);
  sqlite3_finalize(r->one);
  sqlite3_finalize(r->key);
  sqlite3_close(r->db);
  free(r);
}

static int sqlite_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  sqlite3_bind_int64(r->range, 1, offset);
  sqlite3_bind_int64(r->range, 2, offset + n);
  int64_t got = 0;
  int rc;
  while ((rc = sqlite3_step(r->range)) == SQLITE_ROW) {
    if (sqlite3_column_int64(r->range, 0) != offset + got) break;
    const void *k = sqlite3_column_blob(r->range, 1);
    size_t kl = (size_t)sqlite3_column_bytes(r->range, 1);
    const void *v = sqlite3_column_blob(r->range, 2);
    size_t vl = (size_t)sqlite3_column_bytes(r->range, 2);
    bp_sink_take(sink, k, kl, v, vl);
    got++;
  }
  sqlite3_reset(r->range);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return db_fail(r->db, "range SELECT");
  if (got != n) {
    bench_errorf("sqlite path: range SELECT from %lld returned %lld of %lld rows",
                 (long long)offset, (long long)got, (long long)n);
    return -1;
  }
  return 0;
}

static int sqlite_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  sqlite3_bind_int64(r->one, 1, offset);
  int rc = sqlite3_step(r->one);
  if (rc == SQLITE_ROW) {
    const void *k = sqlite3_column_blob(r->one, 0);
    size_t kl = (size_t)sqlite3_column_bytes(r->one, 0);
    const void *v = sqlite3_column_blob(r->one, 1);
    size_t vl = (size_t)sqlite3_column_bytes(r->one, 1);
    bp_sink_take(sink, k, kl, v, vl);
  }
  sqlite3_reset(r->one);
  if (rc == SQLITE_ROW) return 0;
  if (rc == SQLITE_DONE) {
    bench_errorf("sqlite path: no row at offset %lld", (long long)offset);
    return -1;
  }
  return db_fail(r->db, "point SELECT");
}

static int sqlite_read_key(bp_reader *r, const void *key, size_t len, bp_sink *sink,
                           int64_t *offset) {
  sqlite3_bind_blob(r->key, 1, key, (int)len, SQLITE_STATIC);
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
  if (rc == SQLITE_ROW) return 0;
  if (rc == SQLITE_DONE) {
    bench_errorf("sqlite path: no row for key %.*s", (int)len, (const char *)key);
    return -1;
  }
  return db_fail(r->db, "key SELECT");
}

const bench_path bench_path_sqlite = {
    .name = "sqlite",
    .reopens = 1,
    .unavailable = NULL,
    .open = sqlite_open,
    .close = sqlite_close,
    .produce = sqlite_produce,
    .flush = sqlite_flush,
    .segments = NULL,
    .reader_open = sqlite_reader_open,
    .reader_close = sqlite_reader_close,
    .read_range = sqlite_read_range,
    .read_one = sqlite_read_one,
    .compactable_bytes = sqlite_compactable_bytes,
    .compact = sqlite_compact,
    .read_key = sqlite_read_key,
};
