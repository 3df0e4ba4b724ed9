/*
** test_dead.c -- the dead offsets of a compacted partition (takhin_cat_dead,
** store/dead.c): compaction plans a segment from its bitmap chunks instead
** of the key index's survivors query, and must get exactly the query's
** answer. Every run here plans both ways (tk_compact_dead_mode 2) and
** counts the segments where they differ; the log must then match a model
** (each key's latest record). Also: a kill -9 with keys in memory, failing
** key writes, damaged or lost chunk rows, a lost catalog, and a catalog
** from before the table: compaction never drops a live record.
*/
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

extern atomic_int tk_key_writer_delay_ms;
extern int tk_key_map_keys;
extern atomic_int tk_key_writer_fail_every;
extern int tk_compact_caller_plans;

enum { NKEYS_MAX = 4096, CAP = 200000 };

/* Latest offset of every key, and key and tombstone of every offset. */
typedef struct model {
  int64_t latest[NKEYS_MAX];
  int64_t n;
  int *key_of;
  int *is_tomb;
} model;

static void model_init(model *m) {
  for (int i = 0; i < NKEYS_MAX; i++) m->latest[i] = -1;
  m->n = 0;
  m->key_of = calloc(CAP, sizeof *m->key_of);
  m->is_tomb = calloc(CAP, sizeof *m->is_tomb);
}

static void model_free(model *m) {
  free(m->key_of);
  free(m->is_tomb);
}

static void value_of(char *buf, size_t vlen, int64_t off) {
  for (size_t j = 0; j < vlen; j++) buf[j] = (char)('a' + (off * 7 + (int64_t)j) % 26);
}

#define VLEN 40

/* n records over nkeys keys in batches of up to bs (keys repeat inside a
** batch when nkeys is small), tomb_pct of them tombstones. */
static void produce(takhin_store *s, model *m, int64_t n, int nkeys, int tomb_pct, int bs,
                    unsigned *seed) {
  takhin_record recs[64];
  char keys[64][16], vals[64][VLEN];
  for (int64_t i = 0; i < n;) {
    int cnt = 1 + (int)(rand_r(seed) % (unsigned)bs);
    if (cnt > n - i) cnt = (int)(n - i);
    for (int j = 0; j < cnt; j++) {
      int64_t off = m->n + j;
      int k = (int)(rand_r(seed) % (unsigned)nkeys);
      int tomb = (int)(rand_r(seed) % 100) < tomb_pct;
      int kl = snprintf(keys[j], 16, "key-%d", k);
      value_of(vals[j], VLEN, off);
      recs[j] = (takhin_record){.key = keys[j],
                                .key_len = (size_t)kl,
                                .value = tomb ? NULL : vals[j],
                                .value_len = tomb ? 0 : VLEN,
                                .timestamp = 1000 + off};
      m->key_of[off] = k;
      m->is_tomb[off] = tomb;
    }
    int64_t first;
    cr_assert_eq(takhin_produce(s, "t", 0, recs, (size_t)cnt, &first), TAKHIN_OK, "%s",
                 takhin_errmsg());
    cr_assert_eq(first, m->n);
    for (int j = 0; j < cnt; j++) m->latest[m->key_of[m->n + j]] = m->n + j;
    m->n += cnt;
    i += cnt;
  }
}

/* The child's records (produce() from the same seed), in the model only. */
static void produce_model_only(model *m, int64_t n, int nkeys, int tomb_pct, int bs,
                               unsigned *seed) {
  for (int64_t i = 0; i < n;) {
    int cnt = 1 + (int)(rand_r(seed) % (unsigned)bs);
    if (cnt > n - i) cnt = (int)(n - i);
    for (int j = 0; j < cnt; j++) {
      int64_t off = m->n + j;
      m->key_of[off] = (int)(rand_r(seed) % (unsigned)nkeys);
      m->is_tomb[off] = (int)(rand_r(seed) % 100) < tomb_pct;
      m->latest[m->key_of[off]] = off;
    }
    m->n += cnt;
    i += cnt;
  }
}

static int64_t active_base(takhin_store *s) {
  takhin_segment_info *g;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &g, &n), TAKHIN_OK);
  int64_t b = g[n - 1].base_offset;
  takhin_free(g);
  return b;
}

/* Whether offset o is to be in the log after compacting below end. */
static int live(const model *m, int64_t o, int64_t end, int tombs_gone) {
  if (o >= end) return 1;
  return m->latest[m->key_of[o]] == o && !(tombs_gone && m->is_tomb[o]);
}

/* Read the partition: every record right, every live one there; exact: no
** other record below end either. */
static void check_log(takhin_store *s, const model *m, int64_t end, int tombs_gone, int exact) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message msg;
  int64_t expect = 0;
  int rc;
  char buf[VLEN];
  while ((rc = takhin_cursor_next(c, &msg)) == TAKHIN_OK) {
    for (; expect < msg.offset; expect++)
      cr_assert(!live(m, expect, end, tombs_gone), "live offset %lld missing", (long long)expect);
    cr_assert(msg.offset < m->n);
    if (exact)
      cr_assert(live(m, msg.offset, end, tombs_gone), "dead offset %lld kept",
                (long long)msg.offset);
    char key[16];
    int kl = snprintf(key, sizeof key, "key-%d", m->key_of[msg.offset]);
    cr_assert_eq(msg.key_len, (size_t)kl);
    cr_assert(memcmp(msg.key, key, (size_t)kl) == 0);
    if (m->is_tomb[msg.offset]) {
      cr_assert_null(msg.value);
    } else {
      value_of(buf, VLEN, msg.offset);
      cr_assert_eq(msg.value_len, VLEN);
      cr_assert(memcmp(msg.value, buf, VLEN) == 0);
    }
    expect = msg.offset + 1;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  for (; expect < m->n; expect++)
    cr_assert(!live(m, expect, end, tombs_gone), "live offset %lld missing", (long long)expect);
  takhin_cursor_close(c);
}

/* One forced run, planned both ways: returns the segments planned from dead
** offsets; the two ways must agree (unless damage made some fall back,
** then the query answered: counted in *fallbacks). */
static long compact_both(takhin_store *s, long *fallbacks) {
  long planned = atomic_load(&tk_compact_dead_planned);
  long mism = atomic_load(&tk_compact_dead_mismatches);
  long fb = atomic_load(&tk_compact_dead_fallbacks);
  tk_compact_dead_mode = 2;
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  tk_compact_dead_mode = 0;
  cr_assert_eq(atomic_load(&tk_compact_dead_mismatches), mism,
               "segments planned from dead offsets differ from the survivors query");
  if (fallbacks) *fallbacks = atomic_load(&tk_compact_dead_fallbacks) - fb;
  else cr_assert_eq(atomic_load(&tk_compact_dead_fallbacks), fb, "no chunk is damaged");
  return atomic_load(&tk_compact_dead_planned) - planned;
}

static takhin_store *open_db(const char *db) {
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "%s", takhin_errmsg());
  return s;
}

static void create_topic(takhin_store *s, const char *retention_ms) {
  const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "8192", "delete_retention_ms",
      retention_ms,     NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
}

/* Run SQL on the catalog of a closed store. */
static void sql(const char *db, const char *q) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  char *msg = NULL;
  cr_assert_eq(sqlite3_exec(h, q, NULL, NULL, &msg), SQLITE_OK, "%s: %s", q, msg ? msg : "");
  sqlite3_close(h);
}

static int64_t sql_count(const char *db, const char *q) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

/* Many keys and few, tombstones, keys repeated in a batch and in a map,
** small maps (many writes, some queued behind a slow writer thread), reopens
** between rounds: every run planned from dead offsets agrees with the
** query, and the log matches the model. */
Test(dead, bitmaps_equal_the_survivors_query) {
  struct {
    int nkeys, tomb, bs, map_keys, delay;
    const char *retention;
  } w[] = {{3000, 5, 40, 8192, 0, "3600000"},
           {40, 10, 64, 16, 0, "3600000"},
           {500, 20, 8, 64, 2, "0"},
           {7, 0, 64, 4, 1, "3600000"}};
  for (size_t k = 0; k < sizeof w / sizeof *w; k++) {
    char name[64], db[4096];
    snprintf(name, sizeof name, "dead_diff_%zu", k);
    snprintf(db, sizeof db, "%s", tu_store_path(name));
    tk_key_map_keys = w[k].map_keys;
    atomic_store(&tk_key_writer_delay_ms, w[k].delay);
    tk_compact_caller_plans = k % 2; /* odd ones plan as the SQL extension does */
    takhin_store *s = open_db(db);
    create_topic(s, w[k].retention);
    model m;
    model_init(&m);
    unsigned seed = 7 + (unsigned)k;
    int tombs_gone = !strcmp(w[k].retention, "0");
    long planned = 0;
    for (int round = 0; round < 4; round++) {
      produce(s, &m, 4000, w[k].nkeys, w[k].tomb, w[k].bs, &seed);
      planned += compact_both(s, NULL);
      check_log(s, &m, active_base(s), tombs_gone, 1);
      if (round % 2) { /* reopen: the key index and the dead offsets go on */
        takhin_close(s);
        s = open_db(db);
      }
    }
    /* nothing new: a second run plans the same and removes nothing */
    takhin_compaction_result r = {0};
    tk_compact_dead_mode = 2;
    cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK);
    tk_compact_dead_mode = 0;
    cr_assert_eq(r.records_removed, 0);
    cr_assert_gt(planned, 0, "segments were planned from dead offsets");
    check_log(s, &m, active_base(s), tombs_gone, 1);
    takhin_close(s);
    model_free(&m);
  }
  tk_key_map_keys = 8192;
  atomic_store(&tk_key_writer_delay_ms, 0);
  tk_compact_caller_plans = 0;
}

/* Key writes that fail (rolled back) take their dead offsets with them;
** written again later, both land. */
Test(dead, failed_key_writes_roll_back_the_bits) {
  const char *db = tu_store_path("dead_kw_fail");
  tk_key_map_keys = 32;
  atomic_store(&tk_key_writer_fail_every, 3);
  takhin_store *s = open_db(db);
  create_topic(s, "3600000");
  model m;
  model_init(&m);
  unsigned seed = 99;
  for (int round = 0; round < 3; round++) {
    produce(s, &m, 5000, 200, 3, 32, &seed);
    cr_assert_gt(compact_both(s, NULL), 0);
    check_log(s, &m, active_base(s), 0, 1);
  }
  atomic_store(&tk_key_writer_fail_every, 0);
  tk_key_map_keys = 8192;
  takhin_close(s);
  model_free(&m);
}

/* kill -9 with keys (and their dead offsets) in memory: the open's catch-up
** notes them again, and the bitmaps still equal the query. */
Test(dead, killed_mid_produce) {
  const char *db = tu_store_path("dead_kill");
  takhin_store *s = open_db(db);
  create_topic(s, "3600000");
  model m;
  model_init(&m);
  unsigned seed = 5;
  produce(s, &m, 3000, 300, 0, 32, &seed);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  unsigned child_seed = seed;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(2);
    model cm = m;
    produce(cs, &cm, 6000, 300, 0, 32, &child_seed);
    char ok = 1;
    if (write(fds[1], &ok, 1) != 1) _exit(3);
    pause();
    _exit(4);
  }
  close(fds[1]);
  char ok = 0;
  cr_assert_eq(read(fds[0], &ok, 1), 1);
  close(fds[0]);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st));
  produce_model_only(&m, 6000, 300, 0, 32, &seed);
  s = open_db(db);
  cr_assert_gt(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  produce(s, &m, 2000, 300, 0, 32, &seed);
  cr_assert_gt(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* A store with a log to compact, closed; returns the model's state. */
static void make_store(const char *db, model *m, unsigned *seed) {
  takhin_store *s = open_db(db);
  create_topic(s, "3600000");
  model_init(m);
  produce(s, m, 8000, 400, 5, 32, seed);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* Chunk rows truncated or overwritten: those segments fall back to the
** query, nothing live is lost, and the result is still exact. */
Test(dead, damaged_chunks_fall_back_to_the_query) {
  const char *const damage[] = {
      "UPDATE takhin_cat_dead SET bits = substr(bits, 1, 100) WHERE chunk % 2 = 0",
      "UPDATE takhin_cat_dead SET bits = randomblob(516)",
      "UPDATE takhin_cat_dead SET bits = zeroblob(516) WHERE chunk = 0",
  };
  for (size_t k = 0; k < sizeof damage / sizeof *damage; k++) {
    char name[64], db[4096];
    snprintf(name, sizeof name, "dead_damage_%zu", k);
    snprintf(db, sizeof db, "%s", tu_store_path(name));
    model m;
    unsigned seed = 11 + (unsigned)k;
    make_store(db, &m, &seed);
    cr_assert_gt(sql_count(db, "SELECT count(*) FROM takhin_cat_dead"), 0);
    sql(db, damage[k]);
    takhin_store *s = open_db(db);
    long fb = 0;
    compact_both(s, &fb);
    cr_assert_gt(fb, 0, "damaged chunks were seen");
    check_log(s, &m, active_base(s), 0, 1);
    /* more produce ORs into the damaged rows: they stay damaged, never trusted */
    produce(s, &m, 3000, 400, 5, 32, &seed);
    compact_both(s, &fb);
    check_log(s, &m, active_base(s), 0, 1);
    takhin_close(s);
    model_free(&m);
  }
}

/* Chunk rows deleted: their offsets read as live, so compaction keeps more
** than it could, never less. */
Test(dead, lost_chunks_keep_every_live_record) {
  const char *db = tu_store_path("dead_lost_rows");
  model m;
  unsigned seed = 21;
  make_store(db, &m, &seed);
  sql(db, "DELETE FROM takhin_cat_dead");
  takhin_store *s = open_db(db);
  tk_compact_dead_mode = 0;
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, &m, active_base(s), 0, 0); /* every live record, maybe more */
  produce(s, &m, 3000, 400, 5, 32, &seed);
  cr_assert_eq(takhin_compact(s, "t", 0, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  check_log(s, &m, active_base(s), 0, 0);
  takhin_close(s);
  model_free(&m);
}

/* The catalog lost: the open rebuilds it from the segments and replays the
** keys, which notes the dead offsets again from key_from. */
Test(dead, catalog_rebuilt_from_the_log) {
  const char *db = tu_store_path("dead_rebuild");
  model m;
  unsigned seed = 31;
  make_store(db, &m, &seed);
  tu_remove_catalog(db);
  takhin_store *s = open_db(db);
  cr_assert_gt(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* The same after a compaction: the log has holes (records an earlier run
** removed) that a catalog rebuilt from the log has no bit for. They are no
** survivors: the plan still agrees with the query, and a segment whose
** records were mostly removed is compacted again when more of them die. */
Test(dead, catalog_rebuilt_after_compaction) {
  const char *db = tu_store_path("dead_rebuild_holes");
  model m;
  unsigned seed = 37;
  make_store(db, &m, &seed);
  takhin_store *s = open_db(db);
  cr_assert_gt(compact_both(s, NULL), 0);
  takhin_close(s);
  tu_remove_catalog(db);
  s = open_db(db);
  produce(s, &m, 8000, 400, 5, 32, &seed);
  cr_assert_gt(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* Power loss took the log's tail (the catalog kept it): records of the
** tail had superseded older ones, whose dead bits went to the catalog with
** the tail's key rows. Those older records are their keys' latest again;
** the open rebuilds the key index and its bits, and no run drops them. */
Test(dead, lost_tail_takes_its_supersessions_along) {
  const char *db = tu_store_path("dead_lost_tail");
  model m;
  unsigned seed = 43;
  make_store(db, &m, &seed);
  takhin_store *s = open_db(db);
  int64_t base = active_base(s);
  takhin_close(s);
  cr_assert_gt(sql_count(db, "SELECT count(*) FROM takhin_cat_dead"), 0);
  char path[4200];
  tu_segment_path(path, sizeof path, db, "t", 0, base);
  int64_t size = tu_file_size(path);
  cr_assert_gt(size, 0);
  cr_assert_eq(truncate(path, (off_t)(size / 4)), 0);
  s = open_db(db);
  takhin_segment_info *g;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &g, &n), TAKHIN_OK);
  int64_t hwm = g[n - 1].next_offset;
  takhin_free(g);
  cr_assert_lt(hwm, m.n, "the tail is gone");
  /* the model of what is left: each key's latest below hwm */
  m.n = hwm;
  for (int k = 0; k < NKEYS_MAX; k++) m.latest[k] = -1;
  for (int64_t o = 0; o < hwm; o++) m.latest[m.key_of[o]] = o;
  check_log(s, &m, 0, 0, 1);
  /* a new segment (few keys touched again), then every sealed one compacted */
  produce(s, &m, 150, 400, 0, 32, &seed);
  compact_both(s, NULL);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* The index entries of the closed store at db, as the store loads them. */
static tu_index_row *index_entries(const char *db, size_t *n) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  tu_index_row *r;
  cr_assert_eq(tu_cat_index_rows(h, -1, -1, -1, &r, n), 0, "%s", tu_error());
  sqlite3_close(h);
  return r;
}

/* Make the index of the closed store at db format 1's (and 2's): a row per
** entry in takhin_cat_index, no takhin_cat_index_run. */
static void index_as_format_1(const char *db, const tu_index_row *r, size_t n) {
  sql(db,
      "DROP TABLE takhin_cat_index_run;"
      "CREATE TABLE takhin_cat_index(topic_id INTEGER NOT NULL, partition INTEGER NOT NULL,"
      " segment_base INTEGER NOT NULL, offset INTEGER NOT NULL, position INTEGER NOT NULL,"
      " max_timestamp INTEGER NOT NULL, PRIMARY KEY (topic_id, partition, segment_base, offset),"
      " FOREIGN KEY (topic_id, partition, segment_base) REFERENCES takhin_cat_segment"
      " ON DELETE CASCADE) STRICT, WITHOUT ROWID");
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, "INSERT INTO takhin_cat_index VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  for (size_t i = 0; i < n; i++) {
    sqlite3_bind_int64(st, 1, r[i].topic_id);
    sqlite3_bind_int(st, 2, r[i].partition);
    sqlite3_bind_int64(st, 3, r[i].segment_base);
    sqlite3_bind_int64(st, 4, r[i].offset);
    sqlite3_bind_int64(st, 5, r[i].position);
    sqlite3_bind_int64(st, 6, r[i].max_ts);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(h));
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* A catalog made before takhin_cat_dead (format 1): a read-only open reads
** it as it is; a writer's open adds the tables with dead_from = key_upto,
** replaces the index rows of format 1 (takhin_cat_index, a row per entry)
** with format 3's runs, rebuilt from the files, and stamps format 3, which
** releases of formats 1 and 2 refuse; segments below dead_from are planned
** by the query, those after from their bits, and both agree. */
Test(dead, catalog_from_before_the_table) {
  const char *db = tu_store_path("dead_upgrade");
  model m;
  unsigned seed = 41;
  make_store(db, &m, &seed);
  size_t n_idx;
  tu_index_row *idx = index_entries(db, &n_idx);
  cr_assert_gt(n_idx, 0);
  sql(db, "DROP TABLE takhin_cat_dead; DROP TABLE takhin_cat_dead_from;"
          "DELETE FROM takhin_cat_meta WHERE key = 'dead_offsets';"
          "UPDATE takhin_cat_meta SET value = 1 WHERE key = 'format_version'");
  index_as_format_1(db, idx, n_idx);
  /* a reader reads format 1 as it is, and changes nothing */
  takhin_options ro;
  takhin_options_init(&ro);
  ro.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(db, &ro, &s), TAKHIN_OK, "read-only, format 1: %s", takhin_errmsg());
  check_log(s, &m, 0, 0, 0);
  takhin_close(s);
  cr_assert_eq(sql_count(db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"), 1);
  /* a writer upgrades it */
  s = open_db(db);
  takhin_close(s);
  cr_assert_eq(sql_count(db, "SELECT value FROM takhin_cat_meta WHERE key = 'format_version'"),
               TAKHIN_FORMAT_VERSION);
  cr_assert_eq(TAKHIN_FORMAT_VERSION, 3);
  cr_assert_eq(sql_count(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'takhin_cat_index'"),
               0, "format 1's index table is left");
  cr_assert_eq(
      sql_count(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'takhin_cat_index_run'"), 1);
  /* the index, rebuilt from the files, is the one the store had written */
  size_t n_up;
  tu_index_row *up = index_entries(db, &n_up);
  cr_assert_eq(n_up, n_idx, "%zu index entries after the upgrade, %zu before", n_up, n_idx);
  for (size_t i = 0; i < n_idx; i++)
    cr_assert(up[i].topic_id == idx[i].topic_id && up[i].partition == idx[i].partition &&
                  up[i].segment_base == idx[i].segment_base && up[i].offset == idx[i].offset &&
                  up[i].position == idx[i].position && up[i].max_ts == idx[i].max_ts,
              "entry %zu: segment %lld offset %lld @%lld ts %lld, was segment %lld offset %lld "
              "@%lld ts %lld",
              i, (long long)up[i].segment_base, (long long)up[i].offset, (long long)up[i].position,
              (long long)up[i].max_ts, (long long)idx[i].segment_base, (long long)idx[i].offset,
              (long long)idx[i].position, (long long)idx[i].max_ts);
  free(up);
  free(idx);
  int64_t from = sql_count(db, "SELECT dead_from FROM takhin_cat_dead_from");
  cr_assert_eq(from, sql_count(db, "SELECT key_upto FROM takhin_cat_partition"));
  cr_assert_gt(from, 0);
  s = open_db(db);
  /* everything so far is below dead_from: the query plans it */
  cr_assert_eq(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  produce(s, &m, 8000, 400, 5, 32, &seed);
  cr_assert_gt(compact_both(s, NULL), 0);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* The rows go with the topic; a new topic of the same name starts clean. */
Test(dead, rows_go_with_the_topic) {
  const char *db = tu_store_path("dead_delete");
  model m;
  unsigned seed = 51;
  make_store(db, &m, &seed);
  cr_assert_gt(sql_count(db, "SELECT count(*) FROM takhin_cat_dead"), 0);
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_delete(s, "t"), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
  cr_assert_eq(sql_count(db, "SELECT count(*) FROM takhin_cat_dead"), 0);
  cr_assert_eq(sql_count(db, "SELECT count(*) FROM takhin_cat_dead_from"), 0);
  model_free(&m);
}

/* A topic deleted by a takhin release from before takhin_cat_dead (a
** format 1 release: it refuses this format 2 catalog now, but a catalog
** restored or edited by hand can hold the same leftovers) leaves the
** topic's chunk rows behind; a topic created next gets the same
** topic_id. Its records are not superseded by the old topic's: the rows
** left must not plan them away. */
Test(dead, rows_an_older_release_left_are_not_the_next_topics) {
  const char *db = tu_store_path("dead_leftover");
  model m;
  unsigned seed = 73;
  make_store(db, &m, &seed);
  model_free(&m);
  int64_t old_id = sql_count(db, "SELECT topic_id FROM takhin_cat_topic WHERE name = 't'");
  cr_assert_gt(sql_count(db, "SELECT count(*) FROM takhin_cat_dead"), 0);
  /* what an older release's delete leaves: every row but these two tables' */
  sql(db, "CREATE TABLE left_dead AS SELECT * FROM takhin_cat_dead;"
          "CREATE TABLE left_from AS SELECT * FROM takhin_cat_dead_from");
  takhin_store *s = open_db(db);
  cr_assert_eq(takhin_topic_delete(s, "t"), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
  sql(db, "INSERT INTO takhin_cat_dead SELECT * FROM left_dead;"
          "INSERT INTO takhin_cat_dead_from SELECT * FROM left_from;"
          "DROP TABLE left_dead; DROP TABLE left_from");
  s = open_db(db);
  create_topic(s, "3600000");
  cr_assert_eq(sql_count(db, "SELECT topic_id FROM takhin_cat_topic WHERE name = 't'"), old_id,
               "the new topic reuses the old topic_id");
  model_init(&m);
  seed = 74;
  produce(s, &m, 8000, 3000, 0, 32, &seed);
  compact_both(s, NULL);
  check_log(s, &m, active_base(s), 0, 1);
  takhin_close(s);
  model_free(&m);
}

/* A topic switched to compact (and back, and to compact again): dead_from
** follows key_from, the records before it are never planned, and those
** after agree with the query. */
Test(dead, topic_switched_to_compact) {
  const char *db = tu_store_path("dead_switch");
  takhin_store *s = open_db(db);
  const char *const cfg[] = {"segment_bytes", "8192", NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  model m;
  model_init(&m);
  unsigned seed = 61;
  produce(s, &m, 3000, 200, 0, 32, &seed);
  const char *const to_compact[] = {"cleanup_policy", "compact", NULL};
  const char *const to_delete[] = {"cleanup_policy", "delete", NULL};
  cr_assert_eq(takhin_topic_alter_config(s, "t", to_compact), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t from = m.n;
  produce(s, &m, 4000, 200, 5, 32, &seed);
  cr_assert_gt(compact_both(s, NULL), 0);
  cr_assert_eq(takhin_topic_alter_config(s, "t", to_delete), TAKHIN_OK, "%s", takhin_errmsg());
  produce(s, &m, 2000, 200, 0, 32, &seed);
  cr_assert_eq(takhin_topic_alter_config(s, "t", to_compact), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t from2 = m.n;
  produce(s, &m, 4000, 200, 5, 32, &seed);
  takhin_close(s);
  s = open_db(db);
  cr_assert_gt(compact_both(s, NULL), 0);
  /* below from nothing was compacted; [from, from2) as of the first era's
  ** key index, with later records of the same keys in the delete era
  ** unseen; past from2 the latest of each key */
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message msg;
  int64_t expect = 0;
  while (takhin_cursor_next(c, &msg) == TAKHIN_OK) {
    if (msg.offset < from) cr_assert_eq(msg.offset, expect, "records before compact all stay");
    expect = msg.offset + 1;
  }
  cr_assert_eq(expect, m.n);
  takhin_cursor_close(c);
  (void)from2;
  takhin_close(s);
  model_free(&m);
}
