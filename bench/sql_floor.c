/*
** sql_floor.c -- takhin-sql-floor: the lowest cost a range SELECT through a
** virtual table can have on this machine, beside the api path's range read,
** to show how far the sql path's aim (BENCHMARKS.md: sql/api >= 0.5x of
** SequentialFetch) is from what SQLite allows.
**
** It writes 10,000 records of 1 KiB (a 16-byte decimal key, the rest random:
** SequentialFetch's data) to a takhin store in a scratch folder, then
** alternates, for a number of rounds:
**   api    takhin_cursor_seek + takhin_cursor_next, 100 records a read, every
**          key and value into the sink (bench/path_api.c's read_range)
**   noop   the sql path's statement and reader loop (bench/path_sql.c's
**          read_range) on a virtual table that does no work of its own: its
**          rows are the same records, decoded beforehand and kept in memory,
**          handed to SQLite as they are (SQLITE_STATIC, type known)
** and prints the CPU time (user + system) per row of each and the ratio
** api / (api + noop): what sql/api would be if takhin's virtual table cost
** nothing beyond the api read it has to do anyway.
**
**   ./build/takhin-sql-floor [rounds]
** Under callgrind, collect one side: --collect-atstart=no
** --toggle-collect=floor_noop (or floor_api).
*/
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ftw.h>
#include <unistd.h>

#include "takhin.h"

#define NREC 10000
#define PER_READ 100
#define KEY_LEN 16
#define VAL_LEN (1024 - KEY_LEN)

static takhin_message *rows; /* the records, decoded, with their bytes copied */
static int64_t nrows;

typedef struct {
  sqlite3_vtab_cursor base;
  int64_t off, end;
} fcur;

static int f_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                     char **err) {
  (void)aux, (void)argc, (void)argv, (void)err;
  int rc = sqlite3_declare_vtab(
      db,
      "CREATE TABLE x(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers)");
  if (rc) return rc;
  *out = sqlite3_malloc(sizeof **out);
  if (!*out) return SQLITE_NOMEM;
  memset(*out, 0, sizeof **out);
  return SQLITE_OK;
}
static int f_disconnect(sqlite3_vtab *v) {
  sqlite3_free(v);
  return SQLITE_OK;
}
/* partition = (idxNum bit 1), offset >= (2), LIMIT (4): consumed as takhin
** consumes them, their values in argv in that order. */
static int f_best(sqlite3_vtab *v, sqlite3_index_info *info) {
  (void)v;
  int at[3] = {-1, -1, -1};
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (!c->usable) continue;
    if (c->iColumn == 0 && c->op == SQLITE_INDEX_CONSTRAINT_EQ) at[0] = i;
    else if (c->iColumn == 1 && c->op == SQLITE_INDEX_CONSTRAINT_GE) at[1] = i;
    else if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) at[2] = i;
  }
  int n = 0;
  info->idxNum = 0;
  for (int k = 0; k < 3; k++) {
    if (at[k] < 0) continue;
    info->aConstraintUsage[at[k]].argvIndex = ++n;
    info->aConstraintUsage[at[k]].omit = 1;
    info->idxNum |= 1 << k;
  }
  info->estimatedCost = 10;
  info->estimatedRows = 100;
  return SQLITE_OK;
}
static int f_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out) {
  (void)v;
  fcur *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}
static int f_close(sqlite3_vtab_cursor *c) {
  sqlite3_free(c);
  return SQLITE_OK;
}
static int f_filter(sqlite3_vtab_cursor *base, int idx, const char *s, int argc,
                    sqlite3_value **argv) {
  (void)s;
  fcur *c = (fcur *)base;
  int a = (idx & 1) != 0; /* the partition is always 0 */
  c->off = idx & 2 && a < argc ? sqlite3_value_int64(argv[a++]) : 0;
  int64_t lim = idx & 4 && a < argc ? sqlite3_value_int64(argv[a]) : nrows;
  if (c->off < 0) c->off = 0;
  c->end = lim >= 0 && c->off + lim < nrows ? c->off + lim : nrows;
  return SQLITE_OK;
}
static int f_next(sqlite3_vtab_cursor *base) {
  ((fcur *)base)->off++;
  return SQLITE_OK;
}
static int f_eof(sqlite3_vtab_cursor *base) {
  fcur *c = (fcur *)base;
  return c->off >= c->end;
}
static int f_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col) {
  fcur *c = (fcur *)base;
  const takhin_message *m = &rows[c->off];
  switch (col) {
  case 1: sqlite3_result_int64(ctx, m->offset); break;
  case 3: sqlite3_result_text(ctx, m->key, (int)m->key_len, SQLITE_STATIC); break;
  case 4: sqlite3_result_blob(ctx, m->value, (int)m->value_len, SQLITE_STATIC); break;
  default: sqlite3_result_null(ctx);
  }
  return SQLITE_OK;
}
static int f_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *r) {
  *r = ((fcur *)base)->off;
  return SQLITE_OK;
}
static sqlite3_module noop_module = {.xCreate = f_connect,
                                     .xConnect = f_connect,
                                     .xBestIndex = f_best,
                                     .xDisconnect = f_disconnect,
                                     .xDestroy = f_disconnect,
                                     .xOpen = f_open,
                                     .xClose = f_close,
                                     .xFilter = f_filter,
                                     .xNext = f_next,
                                     .xEof = f_eof,
                                     .xColumn = f_column,
                                     .xRowid = f_rowid};

typedef struct {
  uint64_t msgs, bytes, check;
} sink;

/* bench/path.h bp_sink_take */
static inline void sink_take(sink *s, const void *key, size_t klen, const void *val, size_t vlen) {
  s->msgs++;
  s->bytes += klen + vlen;
  if (vlen) s->check += ((const unsigned char *)val)[vlen - 1];
  if (klen) s->check += ((const unsigned char *)key)[0];
}

/* bench/path_sql.c sql_read_range, for every PER_READ rows of the log. */
static __attribute__((noinline)) int floor_noop(sqlite3_stmt *st, sink *s) {
  for (int64_t offset = 0; offset < NREC; offset += PER_READ) {
    int64_t got = 0;
    sqlite3_bind_int(st, 1, 0);
    sqlite3_bind_int64(st, 2, offset);
    sqlite3_bind_int64(st, 3, PER_READ);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (sqlite3_column_int64(st, 2) != offset + got) break;
      const void *k = sqlite3_column_blob(st, 0);
      size_t kl = (size_t)sqlite3_column_bytes(st, 0);
      const void *v = sqlite3_column_blob(st, 1);
      size_t vl = (size_t)sqlite3_column_bytes(st, 1);
      sink_take(s, k, kl, v, vl);
      got++;
    }
    sqlite3_reset(st);
    if (got != PER_READ) return -1;
  }
  return 0;
}

/* bench/path_api.c api_read_range, likewise. */
static __attribute__((noinline)) int floor_api(takhin_cursor *c, sink *s) {
  for (int64_t offset = 0; offset < NREC; offset += PER_READ) {
    if (takhin_cursor_seek(c, offset, PER_READ, 0) != TAKHIN_OK) return -1;
    takhin_message m;
    for (int64_t i = 0; i < PER_READ; i++) {
      if (takhin_cursor_next(c, &m) != TAKHIN_OK || m.offset != offset + i) return -1;
      sink_take(s, m.key, m.key_len, m.value, m.value_len);
    }
  }
  return 0;
}

/* CPU time of this thread, user + system, exact (not tick-sampled as
** getrusage's split is): takhin's own threads are not the read's. */
static double cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static int die(const char *what, int rc) {
  fprintf(stderr, "takhin-sql-floor: %s: %s (%s)\n", what, takhin_errstr(rc), takhin_errmsg());
  return 1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20;
  if (rounds < 1 || rounds > 10000) {
    fprintf(stderr, "usage: takhin-sql-floor [rounds 1..10000]\n");
    return 2;
  }
  char dir[] = "/tmp/takhin-sql-floor-XXXXXX", path[64];
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
  snprintf(path, sizeof path, "%s/bench.db", dir);
  takhin_store *s;
  int rc = takhin_open(path, NULL, &s);
  if (rc) return die("takhin_open", rc);
  const char *const config[] = {"segment_bytes", "1073741824", NULL};
  if ((rc = takhin_topic_create(s, "bench", 1, config))) return die("takhin_topic_create", rc);
  static unsigned char keys[PER_READ][KEY_LEN + 1], vals[PER_READ][VAL_LEN];
  uint64_t x = 12345;
  for (int64_t b = 0; b < NREC / PER_READ; b++) {
    takhin_record recs[PER_READ];
    for (int i = 0; i < PER_READ; i++) {
      snprintf((char *)keys[i], sizeof keys[i], "%016lld", (long long)(b * PER_READ + i));
      for (int k = 0; k < VAL_LEN; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        vals[i][k] = (unsigned char)(x >> 56);
      }
      recs[i] = (takhin_record){.key = keys[i],
                                .key_len = KEY_LEN,
                                .value = vals[i],
                                .value_len = VAL_LEN,
                                .timestamp = TAKHIN_TIMESTAMP_NOW};
    }
    if ((rc = takhin_produce(s, "bench", 0, recs, PER_READ, NULL)))
      return die("takhin_produce", rc);
  }
  takhin_cursor *c;
  if ((rc = takhin_cursor_open(s, "bench", 0, &c))) return die("takhin_cursor_open", rc);
  /* The noop table's rows: the same records, decoded once, bytes copied. */
  rows = calloc(NREC, sizeof *rows);
  unsigned char *bytes = malloc((size_t)NREC * (KEY_LEN + VAL_LEN));
  if (!rows || !bytes) return die("malloc", TAKHIN_ENOMEM);
  if ((rc = takhin_cursor_seek(c, 0, 0, 0))) return die("takhin_cursor_seek", rc);
  for (nrows = 0; nrows < NREC; nrows++) {
    takhin_message *m = &rows[nrows];
    if ((rc = takhin_cursor_next(c, m))) return die("takhin_cursor_next", rc);
    unsigned char *p = bytes + (size_t)nrows * (KEY_LEN + VAL_LEN);
    memcpy(p, m->key, m->key_len);
    memcpy(p + KEY_LEN, m->value, m->value_len);
    m->key = p;
    m->value = p + KEY_LEN;
  }
  /* The sql path's connection settings: WAL, synchronous=NORMAL, NOMUTEX. */
  sqlite3 *db;
  snprintf(path, sizeof path, "%s/noop.db", dir);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) ||
      sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", 0, 0, 0) ||
      sqlite3_create_module(db, "noop", &noop_module, NULL) ||
      sqlite3_exec(db, "CREATE VIRTUAL TABLE t USING noop", 0, 0, 0)) {
    fprintf(stderr, "takhin-sql-floor: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT key, value, offset FROM t WHERE partition = ?1 AND offset >= ?2 "
                         "LIMIT ?3",
                         -1, &st, NULL)) {
    fprintf(stderr, "takhin-sql-floor: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  double *api = calloc((size_t)rounds, sizeof *api), *noop = calloc((size_t)rounds, sizeof *noop);
  if (!api || !noop) return die("malloc", TAKHIN_ENOMEM);
  sink k = {0};
  /* Each side reads its 10 MB once untimed first: in the suite a case runs
  ** op after op over the same log, with the caches warm for it, and the
  ** other side's pass in between would leave them cold. */
  for (int r = 0; r < rounds; r++) {
    if (floor_api(c, &k)) return die("api read", TAKHIN_EINVAL);
    double t0 = cpu_ns();
    if (floor_api(c, &k)) return die("api read", TAKHIN_EINVAL);
    double t1 = cpu_ns();
    int bad = floor_noop(st, &k);
    double t2 = cpu_ns();
    bad = bad || floor_noop(st, &k);
    double t3 = cpu_ns();
    if (bad) {
      fprintf(stderr, "takhin-sql-floor: noop read: %s\n", sqlite3_errmsg(db));
      return 1;
    }
    api[r] = (t1 - t0) / NREC;
    noop[r] = (t3 - t2) / NREC;
  }
  qsort(api, (size_t)rounds, sizeof *api, cmp_double);
  qsort(noop, (size_t)rounds, sizeof *noop, cmp_double);
  double a = api[rounds / 2], n = noop[rounds / 2];
  printf("rows: %d of %d B, %d per read; %d rounds, medians of CPU (user + system) per row\n", NREC,
         KEY_LEN + VAL_LEN, PER_READ, rounds);
  printf("api read            %8.1f ns/row\n", a);
  printf("no-op vtab SELECT   %8.1f ns/row\n", n);
  printf("floor of sql/api    %8.3fx  (api / (api + no-op vtab))\n", a / (a + n));
  fprintf(stderr, "(check %llu)\n", (unsigned long long)k.check);
  sqlite3_finalize(st);
  sqlite3_close(db);
  takhin_cursor_close(c);
  takhin_close(s);
  free(api);
  free(noop);
  free(rows);
  free(bytes);
  return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}
