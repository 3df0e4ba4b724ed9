/*
** test_sql_select.c -- the SQLite extension (build/takhin.so) driven through SQL:
** SELECT pushdown checked against full scans and EXPLAIN QUERY
** PLAN, ORDER BY, tail reads and the estimates the planner is given.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- SELECT: pushdown and plans ------------------------------------------ */

typedef struct row {
  int part;
  int64_t off, ts;
  char key[16];
} row;

#define PD_N 300

/* Topic pd: 3 partitions, small segments, PD_N rows in batches of varying
** size; row i goes to partition i % 3 with key "k<i>" and a timestamp that
** jumps back and forth. */
static void fill_pd(sqlite3 *db) {
  exec_ok(db, "CREATE VIRTUAL TABLE pd USING takhin(partitions=3, segment_bytes=2048)");
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(
                   db, "INSERT INTO pd(partition, key, value, timestamp) VALUES (?1, ?2, ?3, ?4)",
                   -1, &st, NULL),
               SQLITE_OK);
  int i = 0, chunk = 1;
  while (i < PD_N) {
    exec_ok(db, "BEGIN");
    for (int k = 0; k < chunk && i < PD_N; k++, i++) {
      char key[16], val[16];
      snprintf(key, sizeof key, "k%d", i);
      snprintf(val, sizeof val, "v%d", i);
      sqlite3_bind_int(st, 1, i % 3);
      sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, val, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 4, 1000 + (int64_t)((i * 37) % 101) * 10);
      cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
      sqlite3_reset(st);
    }
    exec_ok(db, "COMMIT");
    chunk = chunk % 13 + 2;
  }
  sqlite3_finalize(st);
}

/* Every row of pd by a plain full scan (no constraints). */
static size_t scan_all(sqlite3 *db, row *out) {
  sqlite3_stmt *st;
  cr_assert_eq(
      sqlite3_prepare_v2(db, "SELECT partition, offset, timestamp, key FROM pd", -1, &st, NULL),
      SQLITE_OK);
  size_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    cr_assert_lt(n, PD_N);
    out[n].part = sqlite3_column_int(st, 0);
    out[n].off = sqlite3_column_int64(st, 1);
    out[n].ts = sqlite3_column_int64(st, 2);
    snprintf(out[n].key, sizeof out[n].key, "%s", sqlite3_column_text(st, 3));
    n++;
  }
  sqlite3_finalize(st);
  return n;
}

typedef struct filt {
  const char *where; /* SQL after WHERE, or "" */
  int limit;         /* -1: none */
  const char *idx;   /* expected idxStr letters (any order) */
  unsigned pmask;    /* partitions kept (bit p) */
  int64_t lo, hi;    /* offsets in [lo, hi) */
  int64_t ts_min;    /* timestamp >= ts_min */
  const char *key;   /* key = ..., or NULL */
} filt;

#define ALL 0xffffffffu
#define NOTS INT64_MIN

Test(sql, select_pushdown_matches_full_scan) {
  const char *path = tu_store_path("sql_pushdown");
  sqlite3 *db = db_open(path);
  fill_pd(db);
  static row all[PD_N];
  size_t n = scan_all(db, all);
  cr_assert_eq(n, PD_N);
  /* the full scan is every partition in order, offsets dense from 0, and
  ** agrees with the C API reading the same files */
  takhin_store *s = c_open(path, 1);
  size_t at = 0;
  for (int p = 0; p < 3; p++) {
    takhin_cursor *c;
    takhin_message m;
    cr_assert_eq(takhin_cursor_open(s, "pd", p, &c), TAKHIN_OK, "%s", takhin_errmsg());
    int64_t want_off = 0;
    while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
      cr_assert_lt(at, n);
      cr_assert_eq(all[at].part, p);
      cr_assert_eq(all[at].off, want_off);
      cr_assert_eq(m.offset, want_off);
      cr_assert_eq(all[at].ts, m.timestamp);
      cr_assert_eq(strlen(all[at].key), m.key_len);
      cr_assert(!memcmp(all[at].key, m.key, m.key_len));
      int i = atoi(all[at].key + 1);
      cr_assert_eq(i % 3, p);
      cr_assert_eq(m.timestamp, 1000 + (int64_t)((i * 37) % 101) * 10);
      at++, want_off++;
    }
    takhin_cursor_close(c);
  }
  cr_assert_eq(at, n);
  takhin_close(s);
  cr_assert_gt(q_int(db, "SELECT max(segments) FROM takhin_partitions WHERE topic = 'pd'"), 1,
               "several segments per partition");

  const filt cases[] = {
      {"", -1, "", ALL, 0, INT64_MAX, NOTS, NULL},
      {"partition = 1", -1, "P", 1u << 1, 0, INT64_MAX, NOTS, NULL},
      {"partition IN (0, 2)", -1, "I", 1u | 4u, 0, INT64_MAX, NOTS, NULL},
      {"partition IN (2, 0, 2, 7)", -1, "I", 1u | 4u, 0, INT64_MAX, NOTS, NULL},
      {"partition = 5", -1, "P", 0, 0, INT64_MAX, NOTS, NULL},
      {"offset = 17", -1, "o", ALL, 17, 18, NOTS, NULL},
      {"offset > 90", -1, "g", ALL, 91, INT64_MAX, NOTS, NULL},
      {"offset >= 90", -1, "G", ALL, 90, INT64_MAX, NOTS, NULL},
      {"offset < 5", -1, "l", ALL, 0, 5, NOTS, NULL},
      {"offset <= 5", -1, "L", ALL, 0, 6, NOTS, NULL},
      {"offset BETWEEN 10 AND 20", -1, "GL", ALL, 10, 21, NOTS, NULL},
      {"offset > 1000", -1, "g", ALL, 1001, INT64_MAX, NOTS, NULL},
      {"offset >= 20 AND offset < 10", -1, "Gl", ALL, 20, 10, NOTS, NULL},
      {"offset >= -5 AND offset < 3", -1, "Gl", ALL, 0, 3, NOTS, NULL},
      {"partition = 2 AND offset >= 30 AND offset < 40", -1, "GPl", 1u << 2, 30, 40, NOTS, NULL},
      {"partition = 1 AND offset = 3", -1, "Po", 1u << 1, 3, 4, NOTS, NULL},
      {"timestamp >= 1500", -1, "t", ALL, 0, INT64_MAX, 1500, NULL},
      {"timestamp > 1500", -1, "u", ALL, 0, INT64_MAX, 1501, NULL},
      {"timestamp >= 99999", -1, "t", ALL, 0, INT64_MAX, 99999, NULL},
      {"partition = 0 AND timestamp >= 1900", -1, "Pt", 1u, 0, INT64_MAX, 1900, NULL},
      {"partition = 0 AND key = 'k42'", -1, "P", 1u, 0, INT64_MAX, NOTS, "k42"},
      {"partition = 0 AND offset >= 50 ORDER BY partition, offset", 10, "GNP", 1u, 50, INT64_MAX,
       NOTS, NULL},
      {"ORDER BY partition, offset", 7, "N", ALL, 0, INT64_MAX, NOTS, NULL},
      {"partition IN (1, 2) AND offset > 95 ORDER BY partition, offset", 4, "INg", 6u, 96,
       INT64_MAX, NOTS, NULL},
      {"partition = 1 AND offset >= 90 ORDER BY partition, offset", 1000, "GNP", 2u, 90, INT64_MAX,
       NOTS, NULL},
      /* an inexact constraint keeps LIMIT in SQLite's hands */
      {"timestamp >= 1500 ORDER BY partition, offset", 5, "t", ALL, 0, INT64_MAX, 1500, NULL},
      {"partition = 0 AND key >= 'k5' ORDER BY partition, offset", 3, "P", 1u, 0, INT64_MAX, NOTS,
       NULL},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    const filt *f = &cases[ci];
    int bare = !*f->where || !strncmp(f->where, "ORDER", 5);
    char *sql = sqlite3_mprintf("SELECT partition, offset, timestamp, key FROM pd%s%s",
                                bare ? " " : " WHERE ", f->where);
    if (f->limit >= 0) {
      char *l = sqlite3_mprintf("%s LIMIT %d", sql, f->limit);
      sqlite3_free(sql);
      sql = l;
    }
    sqlite3_str *want = sqlite3_str_new(NULL);
    int kept = 0;
    for (size_t i = 0; i < n; i++) {
      const row *r = &all[i];
      if (!(f->pmask & (1u << r->part)) || r->off < f->lo || r->off >= f->hi || r->ts < f->ts_min)
        continue;
      if (f->key && strcmp(r->key, f->key)) continue;
      if (strstr(f->where, "key >= 'k5'") && strcmp(r->key, "k5") < 0) continue;
      if (f->limit >= 0 && kept >= f->limit) break;
      sqlite3_str_appendf(want, "%d|%lld|%lld|%s\n", r->part, (long long)r->off, (long long)r->ts,
                          r->key);
      kept++;
    }
    char *w = sqlite3_str_finish(want);
    char *got = q(db, "%s", sql);
    cr_assert_str_eq(got, w ? w : "", "rows of %s\n--- got:\n%s--- want:\n%s", sql, got,
                     w ? w : "");
    char idx[64], exp[64];
    plan_idx(db, sql, idx, sizeof idx);
    snprintf(exp, sizeof exp, "%s", f->idx);
    sorted(exp);
    cr_assert_str_eq(idx, exp, "idxStr of %s is \"%s\", want \"%s\"", sql, idx, exp);
    sqlite3_free(got);
    sqlite3_free(w);
    sqlite3_free(sql);
  }
  sqlite3_close(db);
}

/* Constraints with values of other types, compared with what SQLite itself
** answers on an ordinary table holding the same rows. */
Test(sql, pushdown_edge_values_match_sqlite) {
  const char *path = tu_store_path("sql_pushdown_edge");
  sqlite3 *db = db_open(path);
  fill_pd(db);
  exec_ok(
      db,
      "CREATE TABLE copy(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers TEXT)");
  exec_ok(db, "INSERT INTO copy SELECT * FROM pd");
  const char *wheres[] = {
      "offset = 10",
      "offset = '10'",
      "offset = 10.0",
      "offset = 10.5",
      "offset > 9.5",
      "offset >= 9.5",
      "offset < 10.5",
      "offset <= 10.5",
      "offset < 10.0",
      "offset > -0.5",
      "offset > -1.5",
      "offset >= -0.5",
      "offset < -0.5",
      "offset <= -0.5",
      "offset <= -1",
      "offset = NULL",
      "offset > NULL",
      "offset IN (3, 5, 7)",
      "offset = 3 OR offset = 5",
      "partition = '1'",
      "partition = 1.0",
      "partition IN ('2', 1.0)",
      "partition = NULL",
      "partition = -1",
      "partition = 1 AND offset = 3.5",
      "timestamp >= 1500.5",
      "timestamp > 1499.5",
      "timestamp > -3",
      "timestamp >= NULL",
      "offset > 'abc'",
      "offset < 'abc'",
      "partition = 'x'",
  };
  for (size_t i = 0; i < sizeof wheres / sizeof *wheres; i++) {
    char *got =
        q(db, "SELECT partition, offset FROM pd WHERE %s ORDER BY partition, offset", wheres[i]);
    char *want =
        q(db, "SELECT partition, offset FROM copy WHERE %s ORDER BY partition, offset", wheres[i]);
    cr_expect_str_eq(got, want, "WHERE %s: the vtab returned %d bytes of rows, SQLite %d",
                     wheres[i], (int)strlen(got), (int)strlen(want));
    sqlite3_free(got);
    sqlite3_free(want);
  }
  sqlite3_close(db);
}

static int has_temp_btree(sqlite3 *db, const char *sql) {
  char *p = plan(db, sql);
  int r = strstr(p, "USE TEMP B-TREE FOR ORDER BY") != NULL;
  sqlite3_free(p);
  return r;
}

Test(sql, order_by_and_query_plans) {
  const char *path = tu_store_path("sql_orderby");
  sqlite3 *db = db_open(path);
  fill_pd(db);
  exec_ok(
      db,
      "CREATE TABLE copy(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers TEXT)");
  exec_ok(db, "INSERT INTO copy SELECT * FROM pd");
  struct {
    const char *tail;
    int consumed;
  } cases[] = {
      {"ORDER BY partition, offset", 1},
      {"ORDER BY partition", 1},
      {"WHERE partition = 1 ORDER BY offset", 1},
      {"WHERE partition = 1 ORDER BY partition, offset", 1},
      {"WHERE partition IN (2, 0) ORDER BY partition, offset", 1},
      {"WHERE offset >= 10 AND offset < 20 ORDER BY partition, offset", 1},
      {"WHERE timestamp >= 1500 ORDER BY partition, offset", 1},
      {"ORDER BY offset, partition", 1},
      {"WHERE partition IN (2, 0) ORDER BY offset, partition", 1},
      {"ORDER BY value, partition, offset", 0},
      {"ORDER BY timestamp, partition, offset", 0},
      {"ORDER BY partition DESC, offset DESC", 1},
      {"WHERE partition = 1 ORDER BY offset DESC", 1},
      /* the LIMIT is taken only with the order it needs (issue 12: these
      ** returned the oldest records) */
      {"WHERE partition = 0 ORDER BY offset DESC LIMIT 1", 1},
      {"ORDER BY partition DESC, offset DESC LIMIT 5", 1},
      {"ORDER BY offset DESC, partition LIMIT 5", 1},
      {"ORDER BY offset DESC, partition DESC LIMIT 4 OFFSET 3", 1},
      {"ORDER BY partition, offset DESC LIMIT 3", 1},
      {"WHERE partition IN (0, 2) ORDER BY partition DESC, offset LIMIT 3", 1},
      {"WHERE offset < 50 ORDER BY offset DESC, partition LIMIT 5", 1},
      {"ORDER BY value DESC LIMIT 3", 0},
      {"ORDER BY offset DESC, value LIMIT 3", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *sql = sqlite3_mprintf("SELECT partition, offset, value FROM pd %s", cases[i].tail);
    cr_assert_eq(!has_temp_btree(db, sql), cases[i].consumed, "%s: ORDER BY %s", sql,
                 cases[i].consumed ? "should come out of the scan" : "needs SQLite's sort");
    char *got = q(db, "%s", sql);
    char *want = q(db, "SELECT partition, offset, value FROM copy %s", cases[i].tail);
    cr_assert_str_eq(got, want, "rows of %s come out in the asked order", sql);
    sqlite3_free(got);
    sqlite3_free(want);
    sqlite3_free(sql);
  }
  /* the tail of a partition is read backwards: no sort, LIMIT pushed */
  EXPECT_ROWS(db, "99\n", "SELECT offset FROM pd WHERE partition = 0 ORDER BY offset DESC LIMIT 1");
  char *tp = plan(db, "SELECT * FROM pd WHERE partition = 0 ORDER BY offset DESC LIMIT 10");
  cr_assert(strstr(tp, "SCAN pd VIRTUAL TABLE INDEX 4:PN") && !strstr(tp, "TEMP B-TREE"), "%s", tp);
  sqlite3_free(tp);
  /* the plan names what is pushed down, per the idxStr legend */
  char *p = plan(db, "SELECT * FROM pd WHERE partition = 0 AND offset >= 100 LIMIT 10");
  cr_assert(strstr(p, "SCAN pd VIRTUAL TABLE INDEX 0:PGN"), "%s", p);
  sqlite3_free(p);
  p = plan(db, "SELECT * FROM pd");
  cr_assert(strstr(p, "SCAN pd VIRTUAL TABLE INDEX 0:\n"), "a bare scan pushes nothing: %s", p);
  sqlite3_free(p);
  p = plan(db, "SELECT * FROM pd ORDER BY value");
  cr_assert(strstr(p, "USE TEMP B-TREE FOR ORDER BY"), "%s", p);
  sqlite3_free(p);
  /* the eponymous table: topic = is pushed down too, and ordered by topic */
  exec_ok(db, "CREATE VIRTUAL TABLE aa USING takhin(partitions=2)");
  exec_ok(
      db,
      "INSERT INTO aa(partition, key, value, timestamp) VALUES (1,'x','1',1),(0,'y','2',2),(1,'z','3',3)");
  char idx[64];
  plan_idx(db, "SELECT * FROM takhin_messages WHERE topic = 'pd' AND partition = 1 AND offset < 5",
           idx, sizeof idx);
  cr_assert_str_eq(idx, "PTl");
  plan_idx(db, "SELECT * FROM takhin_messages WHERE topic = 'pd' AND partition IN (0,1) LIMIT 3",
           idx, sizeof idx);
  cr_assert_str_eq(idx, "INT");
  cr_assert(!has_temp_btree(
      db,
      "SELECT topic, partition, offset FROM takhin_messages ORDER BY topic, partition, offset"));
  cr_assert(!has_temp_btree(
      db, "SELECT * FROM takhin_messages WHERE topic = 'aa' AND partition = 1 ORDER BY offset"));
  cr_assert(has_temp_btree(db, "SELECT * FROM takhin_messages ORDER BY partition, offset"));
  cr_assert(has_temp_btree(db, "SELECT * FROM takhin_messages ORDER BY key"));
  EXPECT_ROWS(
      db, "aa|0|0|y\naa|1|0|x\naa|1|1|z\n",
      "SELECT topic, partition, offset, key FROM takhin_messages ORDER BY topic, partition, offset LIMIT 3");
  EXPECT_ROWS(db, "aa|1|1|z\n",
              "SELECT topic, partition, offset, key FROM takhin_messages "
              "WHERE topic = 'aa' AND partition = 1 AND offset >= 1");
  cr_assert_eq(q_int(db, "SELECT count(*) FROM takhin_messages"), PD_N + 3);
  cr_assert_eq(
      q_int(db, "SELECT count(*) FROM takhin_messages WHERE topic = 'pd' AND partition IN (0, 2)"),
      200);
  sqlite3_close(db);
}

/* "The last N records" reads about N records, not the partition: with the
** first segment corrupted, a full scan fails on its CRC while the tail,
** read backwards from the end through the index, never goes there. */
Test(sql, tail_reads_only_the_end) {
  const char *path = tu_store_path("sql_tail");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE tl USING takhin(partitions=1, segment_bytes=4096)");
  for (int b = 0; b < 50; b++) /* 50 batches of 20 records, about 1.5 KiB each */
    exec_ok(
        db,
        "WITH RECURSIVE c(x) AS (VALUES(%d) UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
        "INSERT INTO tl(partition, key, value, timestamp) SELECT 0, 'k' || x, printf('%%040d', x), x FROM c",
        b * 20, b * 20 + 19);
  cr_assert_eq(q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 'tl'") > 5, 1);
  sqlite3_close(db);
  char seg[4096];
  tu_segment_path(seg, sizeof seg, path, "tl", 0, 0);
  FILE *f = fopen(seg, "r+b");
  cr_assert(f, "%s", seg);
  cr_assert_eq(fseek(f, 200, SEEK_SET), 0); /* inside the first batch's records */
  cr_assert_eq(fputc('#', f), '#');
  fclose(f);
  db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE IF NOT EXISTS tl USING takhin");
  exec_err(db, "CRC", "SELECT count(*) FROM tl");
  EXPECT_ROWS(db, "999|k999\n998|k998\n997|k997\n",
              "SELECT offset, key FROM tl WHERE partition = 0 ORDER BY offset DESC LIMIT 3");
  EXPECT_ROWS(db, "999\n", "SELECT offset FROM tl ORDER BY offset DESC LIMIT 1");
  EXPECT_ROWS(db, "500\n",
              "SELECT count(*) FROM (SELECT offset FROM tl ORDER BY offset DESC LIMIT 500)");
  exec_err(db, "CRC",
           "SELECT offset FROM tl ORDER BY offset DESC"); /* all the way back: the bad batch */
  sqlite3_close(db);
}

/* The planner's estimates come from the log: a join drives from the side
** the vtab says is smaller. */
Test(sql, estimates_follow_the_log) {
  const char *path = tu_store_path("sql_estimates");
  sqlite3 *db = db_open(path);
  fill_pd(db);
  exec_ok(db, "CREATE VIRTUAL TABLE tiny USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO tiny(partition, key, value, timestamp) VALUES (0, 'k7', 'x', 1)");
  /* pd's point lookup (partition, offset) is cheap: the plan scans tiny and
  ** probes pd with P and o pushed down */
  char *p = plan(
      db,
      "SELECT * FROM tiny JOIN pd ON pd.partition = tiny.partition AND pd.offset = tiny.offset");
  const char *scan_tiny = strstr(p, "SCAN tiny");
  const char *scan_pd = strstr(p, "SCAN pd VIRTUAL TABLE INDEX 0:");
  cr_assert(scan_tiny && scan_pd && scan_tiny < scan_pd, "tiny drives the join:\n%s", p);
  char idx[16];
  snprintf(idx, sizeof idx, "%.2s", scan_pd + strlen("SCAN pd VIRTUAL TABLE INDEX 0:"));
  sorted(idx);
  cr_assert_str_eq(idx, "Po", "%s", p);
  sqlite3_free(p);
  EXPECT_ROWS(
      db, "k7|k0\n",
      "SELECT tiny.key, pd.key FROM tiny JOIN pd ON pd.partition = tiny.partition AND pd.offset = tiny.offset");
  sqlite3_close(db);
}

/* With the topic fixed, takhin_messages rows come out by partition, offset:
** the ORDER BY needs no sort (as for a topic's own table). */
Test(sql, messages_order_by_with_topic_is_consumed) {
  const char *path = tu_store_path("sql_msg_order");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE aa USING takhin(partitions=2)");
  exec_ok(db,
          "INSERT INTO aa(partition, key, value, timestamp) VALUES (1,'x','1',1),(0,'y','2',2)");
  const char *sql = "SELECT * FROM takhin_messages WHERE topic = 'aa' ORDER BY partition, offset";
  char *p = plan(db, sql);
  cr_expect(!strstr(p, "USE TEMP B-TREE"), "%s:\n%s", sql, p);
  sqlite3_free(p);
  EXPECT_ROWS(
      db, "0|y\n1|x\n",
      "SELECT partition, key FROM takhin_messages WHERE topic = 'aa' ORDER BY partition, offset");
  sqlite3_close(db);
}
