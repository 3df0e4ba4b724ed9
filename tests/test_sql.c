/*
** test_sql.c -- the SQLite extension (build/takhin.so) driven through SQL:
** CREATE VIRTUAL TABLE options, binding to existing topics, INSERT forms,
** SELECT pushdown checked against full scans and EXPLAIN QUERY PLAN,
** ORDER BY, transactions and savepoints (one batch per partition, read back
** from the segment files), UPDATE/DELETE/DROP, the value and headers
** mapping, the metadata tables and functions, bad input, DIRECTONLY, and
** the processes around it: a C API writer beside a SQL reader and the
** reverse, the real sqlite3 shell on examples/shell_session.sql, the Python
** example, and every ```sql example of sql/README.md.
**
** The extension is loaded into this binary's own libsqlite3 (the extension
** links none), exactly as the sqlite3 shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sqltest.h"
#include "testutil.h"


/* ---- helpers ------------------------------------------------------------- */

static char *vfmt(const char *fmt, va_list ap) { return sqlite3_vmprintf(fmt, ap); }

/* Run SQL that must fail; the message must contain want. */
static void exec_err(sqlite3 *db, const char *want, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  cr_assert_neq(rc, SQLITE_OK, "SQL should have failed: %s", sql);
  const char *msg = err ? err : sqlite3_errmsg(db);
  cr_assert(strstr(msg, want), "SQL: %s\n  error \"%s\"\n  lacks \"%s\"", sql, msg, want);
  sqlite3_free(err);
  sqlite3_free(sql);
}

/* Run SQL that must fail with exactly this message. */
static void exec_err_exact(sqlite3 *db, const char *want, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  cr_assert_neq(rc, SQLITE_OK, "SQL should have failed: %s", sql);
  const char *msg = err ? err : sqlite3_errmsg(db);
  cr_assert_str_eq(msg, want, "SQL: %s\n  error: %s\n  want:  %s", sql, msg, want);
  sqlite3_free(err);
}

/* Append one value as text: NULL as "NULL", a blob as x'hex'. */
static void put_value(sqlite3_str *o, sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: sqlite3_str_appendall(o, "NULL"); break;
    case SQLITE_BLOB: {
      const unsigned char *b = sqlite3_column_blob(st, i);
      int n = sqlite3_column_bytes(st, i);
      sqlite3_str_appendall(o, "x'");
      for (int k = 0; k < n; k++) sqlite3_str_appendf(o, "%02x", b[k]);
      sqlite3_str_appendall(o, "'");
      break;
    }
    default: sqlite3_str_appendall(o, (const char *)sqlite3_column_text(st, i));
  }
}

/* Rows of a query as "a|b\n" lines (sqlite3_free it); asserts success. */
static char *q(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  cr_assert_eq(rc, SQLITE_OK, "prepare: %s\n  error: %s", sql, sqlite3_errmsg(db));
  sqlite3_str *o = sqlite3_str_new(NULL);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      if (i) sqlite3_str_appendchar(o, 1, '|');
      put_value(o, st, i);
    }
    sqlite3_str_appendchar(o, 1, '\n');
  }
  cr_assert_eq(rc, SQLITE_DONE, "step: %s\n  error: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_free(sql);
  char *r = sqlite3_str_finish(o);
  return r ? r : sqlite3_mprintf("");
}

#define EXPECT_ROWS(db, want, ...)                                                    \
  do {                                                                                \
    char *got_ = q(db, __VA_ARGS__);                                                  \
    cr_assert_str_eq(got_, want, "query: %s\n--- got:\n%s--- want:\n%s", #__VA_ARGS__, got_, want); \
    sqlite3_free(got_);                                                               \
  } while (0)

static int64_t q_int(sqlite3 *db, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "prepare %s: %s", sql, sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  cr_assert_eq(rc, SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_free(sql);
  return v;
}

/* EXPLAIN QUERY PLAN details, one per line (sqlite3_free it). */
static char *plan(sqlite3 *db, const char *sql) {
  char *e = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, e, -1, &st, NULL), SQLITE_OK, "%s: %s", e, sqlite3_errmsg(db));
  sqlite3_str *o = sqlite3_str_new(NULL);
  while (sqlite3_step(st) == SQLITE_ROW) sqlite3_str_appendf(o, "%s\n", sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  sqlite3_free(e);
  char *r = sqlite3_str_finish(o);
  return r ? r : sqlite3_mprintf("");
}

static int cmp_char(const void *a, const void *b) { return *(const char *)a - *(const char *)b; }

/* The idxStr of the (first) takhin scan in the plan, letters sorted. */
static void plan_idx(sqlite3 *db, const char *sql, char *out, size_t cap) {
  char *p = plan(db, sql);
  const char *at = strstr(p, "VIRTUAL TABLE INDEX 0:");
  cr_assert(at, "no virtual table scan in the plan of %s:\n%s", sql, p);
  at += strlen("VIRTUAL TABLE INDEX 0:");
  size_t n = strcspn(at, " \n");
  cr_assert_lt(n, cap);
  memcpy(out, at, n);
  out[n] = 0;
  qsort(out, n, 1, cmp_char);
  sqlite3_free(p);
}

static void sorted(char *s) { qsort(s, strlen(s), 1, cmp_char); }

static int path_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walk the Kafka batches of a segment file: returns how many there are and
** stores each one's record count in counts (up to cap). */
static int segment_batches(const char *db, const char *topic, int part, int64_t base, int *counts,
                           int cap) {
  char path[4096];
  tu_segment_path(path, sizeof path, db, topic, part, base);
  FILE *f = fopen(path, "rb");
  cr_assert(f, "open %s", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
  cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  int n = 0;
  long off = 0;
  while (off + 61 <= size) {
    uint32_t len = be32(buf + off + 8);
    if (len == 0 && buf[off + 16] == 0) { /* a zeroed, taken-back tail: the log ends here */
      for (long i = off; i < size; i++) cr_assert_eq(buf[i], 0, "byte %ld of the zeroed tail", i);
      size = off;
      break;
    }
    cr_assert_eq(buf[off + 16], 2, "magic of the batch at %ld of %s", off, path);
    if (n < cap) counts[n] = (int)be32(buf + off + 57);
    n++;
    off += 12 + (long)len;
  }
  cr_assert_eq(off, size, "batches of %s end at the file's end", path);
  free(buf);
  return n;
}

/* The directory "<db>" lives in, for scratch files beside it. */
static void db_dir(const char *db, char *out, size_t cap) {
  snprintf(out, cap, "%s", db);
  char *slash = strrchr(out, '/');
  if (slash) *slash = 0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
  b[n] = 0;
  fclose(f);
  if (len) *len = (size_t)n;
  return b;
}

static takhin_store *c_open(const char *db, int read_only) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = read_only;
  takhin_store *s = NULL;
  int rc = takhin_open(db, &o, &s);
  cr_assert_eq(rc, TAKHIN_OK, "takhin_open(%s, read_only=%d): %s", db, read_only, takhin_errmsg());
  return s;
}

/* A prefix for shell commands that load the extension into another program
** (sqlite3, python3). Under ASan the extension needs the ASan runtime loaded
** first, so it is preloaded; the host program's own leaks are not ours. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
static void host_prefix(char *out, size_t cap) {
  out[0] = 0;
#ifdef TU_ASAN
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f)) {
    char *p = strchr(line, '/');
    if (p && strstr(p, "libasan.so")) {
      p[strcspn(p, "\n")] = 0;
      snprintf(out, cap, "LD_PRELOAD='%s' ASAN_OPTIONS=detect_leaks=0 ", p);
      break;
    }
  }
  if (f) fclose(f);
#else
  (void)cap;
#endif
}

/* ---- CREATE VIRTUAL TABLE ------------------------------------------------ */

Test(sql, create_options_parsed_strictly) {
  const char *path = tu_store_path("sql_create_opts");
  sqlite3 *db = db_open(path);
  /* open the store (and commit its catalog) first: a failed CREATE as the
  ** very first use is its own test, failed_first_create_leaves_store_usable */
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_err_exact(db, "unrecognized option: \"foo\"", "CREATE VIRTUAL TABLE t USING takhin(foo=1)");
  exec_err_exact(db, "unrecognized option: \"retention.ms\"",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=1, retention.ms=5)");
  exec_err_exact(db, "duplicate option: \"partitions\"",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=1, partitions=2)");
  exec_err_exact(db, "duplicate option: \"compression\"",
                 "CREATE VIRTUAL TABLE t USING takhin(compression='zstd', compression='none')");
  exec_err_exact(db, "malformed option: \"partitions\" (expected key=value)",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions)");
  exec_err_exact(db, "malformed option: \"=3\"", "CREATE VIRTUAL TABLE t USING takhin(=3)");
  exec_err_exact(db, "malformed option: \"compression=''\" (empty or too long value)",
                 "CREATE VIRTUAL TABLE t USING takhin(compression='')");
  exec_err_exact(db, "option partitions: \"0\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=0)");
  exec_err_exact(db, "option partitions: \"abc\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions='abc')");
  exec_err_exact(db, "option partitions: \"1.5\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=1.5)");
  exec_err_exact(db, "option partitions: \"100001\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=100001)");
  /* values the topic layer refuses name the key and the value */
  exec_err(db, "config compression: \"lz4\"", "CREATE VIRTUAL TABLE t USING takhin(compression='lz4')");
  exec_err(db, "config cleanup_policy: \"bogus\"", "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy=bogus)");
  exec_err(db, "config segment_bytes: \"abc\"", "CREATE VIRTUAL TABLE t USING takhin(segment_bytes='abc')");
  exec_err(db, "config segment_bytes", "CREATE VIRTUAL TABLE t USING takhin(segment_bytes=10)");
  exec_err(db, "config retention_ms", "CREATE VIRTUAL TABLE t USING takhin(retention_ms=-2)");
  exec_err(db, "config min_cleanable_dirty_ratio",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio=2)");
  exec_err_exact(db, "takhin tables live in the main database (the store beside it), not in \"temp\"",
                 "CREATE VIRTUAL TABLE temp.t USING takhin(partitions=1)");
  /* nothing of the failed statements was created */
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 't'");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s-takhin/t-0", path);
  cr_assert(!path_exists(dir), "no partition folder for a refused topic");

  /* every config is accepted, quoted either way, with spaces around '=' */
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions = 4, cleanup_policy='compact', "
              "compression=\"zstd\", segment_bytes=1048576, segment_ms=3600000, retention_bytes=1000000, "
              "retention_ms=-1, max_message_bytes=65536, delete_retention_ms=1000, "
              "min_compaction_lag_ms=5, min_cleanable_dirty_ratio=0.25)");
  EXPECT_ROWS(db, "orders|4|compact|zstd|1048576|3600000|1000000|-1|65536|1000|5|0.25\n",
              "SELECT * FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE plain USING takhin(partitions=1)");
  EXPECT_ROWS(db, "plain|1|delete|none|1073741824|604800000|-1|604800000|1048588|86400000|0|0.5\n",
              "SELECT * FROM takhin_topics WHERE name = 'plain'");
  /* arguments for a topic that exists already: refused, pointing at the binding form */
  takhin_store *s;
  sqlite3_close(db);
  s = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(s, "fromc", 1, NULL), TAKHIN_OK);
  takhin_close(s);
  db = db_open(path);
  exec_err_exact(db, "takhin: topic \"fromc\" already exists; bind to it with no arguments: CREATE "
                     "VIRTUAL TABLE \"fromc\" USING takhin",
                 "CREATE VIRTUAL TABLE fromc USING takhin(partitions=2)");
  exec_err_exact(db, "takhin: topic \"nosuch\" does not exist; create it with arguments, e.g. USING "
                     "takhin(partitions=1)",
                 "CREATE VIRTUAL TABLE nosuch USING takhin");
  sqlite3_close(db);
}

Test(sql, bad_topic_names_as_table_names) {
  const char *path = tu_store_path("sql_names");
  sqlite3 *db = db_open(path);
  exec_err(db, "the table name is the topic name: invalid character in topic name \"bad name\"",
           "CREATE VIRTUAL TABLE \"bad name\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"o'rders\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"..\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \".\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"a/b\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"a/b\" USING takhin");
  char longname[260];
  memset(longname, 'x', 250);
  longname[250] = 0;
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"%w\" USING takhin(partitions=1)", longname);
  longname[249] = 0; /* 249 is Kafka's limit: fine */
  exec_ok(db, "CREATE VIRTUAL TABLE \"%w\" USING takhin(partitions=1)", longname);
  /* names that need quoting in SQL work, and messages quote them back */
  exec_ok(db, "CREATE VIRTUAL TABLE \"my-topic.v1\" USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO \"my-topic.v1\"(key, value, timestamp) VALUES ('a','1',1),('b','2',2)");
  exec_err(db, "write DELETE FROM \"my-topic.v1\" WHERE partition = 0 AND offset < N",
           "DELETE FROM \"my-topic.v1\" WHERE offset = 1");
  EXPECT_ROWS(db, "my-topic.v1\n", "SELECT name FROM takhin_topics WHERE name LIKE 'my%%'");
  /* a rename would break the table <-> topic identity */
  exec_err_exact(db, "takhin: topics cannot be renamed (Kafka has no rename either)",
                 "ALTER TABLE \"my-topic.v1\" RENAME TO other");
  EXPECT_ROWS(db, "a\nb\n", "SELECT key FROM \"my-topic.v1\"");
  sqlite3_close(db);
}

Test(sql, memory_database_is_refused_clearly) {
  sqlite3 *db = db_open(":memory:");
  exec_err(db, "the database is not a file", "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  exec_err(db, "the database is not a file", "SELECT * FROM takhin_topics");
  exec_err(db, "the database is not a file", "SELECT * FROM takhin_messages");
  exec_err(db, "the database is not a file", "SELECT takhin_commit('g', 't', 0, 0)");
  EXPECT_ROWS(db, TAKHIN_VERSION "\n", "SELECT takhin_version()");
  sqlite3_close(db);
}

/* ---- binding to existing topics ----------------------------------------- */

Test(sql, bind_to_topics_made_by_sql_and_by_c) {
  const char *path = tu_store_path("sql_bind");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=2, compression='zstd')");
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (1, 'k', 'v', 5)");
  exec_ok(db, "CREATE VIRTUAL TABLE IF NOT EXISTS orders USING takhin"); /* a no-op */
  exec_err(db, "already exists", "CREATE VIRTUAL TABLE orders USING takhin");
  sqlite3_close(db);

  /* a fresh connection reconnects to the SQL-made topic (xConnect) */
  db = db_open(path);
  EXPECT_ROWS(db, "1|0|5|k|v|[]\n", "SELECT * FROM orders");
  sqlite3_close(db);

  /* the C API sees it with its config, and makes another topic */
  takhin_store *s = c_open(path, 0);
  takhin_topic_desc d;
  cr_assert_eq(takhin_topic_describe(s, "orders", &d), TAKHIN_OK);
  cr_assert_eq(d.partitions, 2);
  cr_assert_str_eq(d.compression, "zstd");
  cr_assert_eq(takhin_topic_create(s, "events", 3, (const char *const[]){"retention_ms", "-1", NULL}), TAKHIN_OK);
  takhin_record r[3] = {{.key = "a", .key_len = 1, .value = "x", .value_len = 1, .timestamp = 10},
                        {.key = NULL, .value = "\0\1", .value_len = 2, .timestamp = 11},
                        {.key = "c", .key_len = 1, .value = NULL, .timestamp = 12}};
  cr_assert_eq(takhin_produce(s, "events", 2, r, 3, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);

  /* no arguments binds to the C-made topic */
  db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE events USING takhin");
  EXPECT_ROWS(db, "2|0|10|a|x\n2|1|11|NULL|x'0001'\n2|2|12|c|NULL\n",
              "SELECT partition, offset, timestamp, key, value FROM events");
  EXPECT_ROWS(db, "events|3|-1\n", "SELECT name, partitions, retention_ms FROM takhin_topics WHERE name = 'events'");
  exec_ok(db, "INSERT INTO events(partition, key, value, timestamp) VALUES (0, 'z', 'sql', 20)");
  sqlite3_close(db);
  s = c_open(path, 1);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "events", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_eq(m.value_len, 3);
  cr_assert(!memcmp(m.value, "sql", 3));
  cr_assert_eq(m.timestamp, 20);
  takhin_cursor_close(c);
  takhin_close(s);
}

/* ---- INSERT ---------------------------------------------------------------- */

Test(sql, insert_forms) {
  const char *path = tu_store_path("sql_insert");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=4)");
  /* the key chooses the partition, as Kafka's murmur2 partitioner does */
  exec_ok(db, "INSERT INTO orders(key, value) VALUES ('user-1', '{\"total\":10}')");
  int32_t want = takhin_partition_for_key("user-1", 6, 4);
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM orders WHERE partition = %d AND key = 'user-1'", want);
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key('user-1', 4)"), want);
  for (int i = 0; i < 20; i++) exec_ok(db, "INSERT INTO orders(key, value) VALUES ('key-%d', 'v')", i);
  for (int i = 0; i < 20; i++) {
    char k[16];
    int n = snprintf(k, sizeof k, "key-%d", i);
    cr_assert_eq(q_int(db, "SELECT partition FROM orders WHERE key = 'key-%d'", i), takhin_partition_for_key(k, (size_t)n, 4));
  }
  /* every column given */
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp, headers) "
              "VALUES (2, NULL, x'00ff', 1700000000000, '[[\"trace\",\"abc\"]]')");
  EXPECT_ROWS(db, "2|NULL|x'00ff'|1700000000000|[[\"trace\",\"abc\"]]\n",
              "SELECT partition, key, value, timestamp, headers FROM orders WHERE timestamp = 1700000000000");
  /* without a timestamp the record gets the current time */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t before = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - 1000;
  exec_ok(db, "INSERT INTO orders(partition, key, value) VALUES (3, 'now', 'x')");
  int64_t ts = q_int(db, "SELECT timestamp FROM orders WHERE key = 'now'");
  cr_assert(ts >= before && ts <= before + 60000, "timestamp %lld is now", (long long)ts);
  /* the eponymous table takes the topic as a column */
  exec_ok(db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('orders', 'k', 'v')");
  EXPECT_ROWS(db, "orders|k|v\n", "SELECT topic, key, value FROM takhin_messages WHERE topic = 'orders' AND key = 'k'");
  exec_ok(db, "INSERT INTO takhin_messages(topic, partition, key, value, timestamp) VALUES ('orders', 1, 'k2', 'v2', 7)");
  EXPECT_ROWS(db, "1|k2|7\n", "SELECT partition, key, timestamp FROM orders WHERE key = 'k2'");
  /* INSERT ... SELECT, multi-row VALUES */
  exec_ok(db, "CREATE TABLE src(k TEXT, v TEXT)");
  exec_ok(db, "INSERT INTO src VALUES ('a','1'),('b','2'),('c','3')");
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) SELECT 0, k, v, 100 FROM src");
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (0,'d','4',100),(0,'e','5',100)");
  EXPECT_ROWS(db, "a|1\nb|2\nc|3\nd|4\ne|5\n", "SELECT key, value FROM orders WHERE partition = 0 AND timestamp = 100");
  /* null-key rows of one statement stick to one partition */
  exec_ok(db, "INSERT INTO orders(key, value, timestamp) VALUES (NULL,'n1',200),(NULL,'n2',200),(NULL,'n3',200)");
  EXPECT_ROWS(db, "1\n", "SELECT count(DISTINCT partition) FROM orders WHERE timestamp = 200");
  EXPECT_ROWS(db, "3\n", "SELECT count(*) FROM orders WHERE timestamp = 200");
  sqlite3_close(db);
}

Test(sql, compacted_topic_refuses_null_key) {
  const char *path = tu_store_path("sql_compact");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(partitions=2, cleanup_policy='compact')");
  exec_err_exact(db, "takhin: topic \"c\" is compacted: every record needs a key",
                 "INSERT INTO c(key, value) VALUES (NULL, 'v')");
  exec_err(db, "is compacted: every record needs a key",
           "INSERT INTO takhin_messages(topic, key, value) VALUES ('c', NULL, 'v')");
  /* all or nothing: a good row before the bad one is not stored either */
  exec_err(db, "every record needs a key", "INSERT INTO c(key, value) VALUES ('k', 'v'), (NULL, 'v')");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('k', NULL)"); /* a tombstone has a key */
  EXPECT_ROWS(db, "k|NULL\n", "SELECT key, value FROM c");
  EXPECT_ROWS(db, "1\n", "SELECT sum(high_watermark) FROM takhin_partitions WHERE topic = 'c'");
  exec_ok(db, "CREATE VIRTUAL TABLE cd USING takhin(cleanup_policy='compact,delete')");
  exec_err(db, "is compacted: every record needs a key", "INSERT INTO cd(key, value) VALUES (NULL, 'v')");
  sqlite3_close(db);
}

/* takhin_rows(?) feeds the store's batched catalog writes from memory
** through a pointer only C can bind: from SQL it yields nothing, whatever
** it is given, and never reads memory. */
Test(sql, takhin_rows_is_empty_from_sql) {
  const char *path = tu_store_path("sql_takhin_rows");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE c USING takhin(cleanup_policy='compact')");
  exec_ok(db, "INSERT INTO c(key, value) VALUES ('k', 'v1'), ('k', 'v2'), ('j', 'w')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(1)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(x'0102030405060708')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows(NULL)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_rows");
  EXPECT_ROWS(db, "k|v2\nj|w\n", "SELECT key, value FROM c WHERE offset IN (1, 2) ORDER BY offset");
  sqlite3_close(db);
}

/* The store's catalog tables are made on first use, inside whatever
** statement or transaction that is: when that one rolls back, the store
** must still work. */
Test(sql, failed_first_create_leaves_store_usable) {
  const char *path = tu_store_path("sql_first_create");
  sqlite3 *db = db_open(path);
  exec_err(db, "config compression: \"lz4\"", "CREATE VIRTUAL TABLE t USING takhin(compression='lz4')");
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO orders(key, value, timestamp) VALUES ('k', 'v', 1)");
  EXPECT_ROWS(db, "orders|1\n", "SELECT name, partitions FROM takhin_topics");
  sqlite3_close(db);
}

Test(sql, rolled_back_first_use_leaves_store_usable) {
  const char *path = tu_store_path("sql_first_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "BEGIN");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "ROLLBACK");
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  EXPECT_ROWS(db, "orders\n", "SELECT name FROM takhin_topics");
  sqlite3_close(db);
}

/* CREATE VIRTUAL TABLE and DROP TABLE make and delete files, which ROLLBACK
** cannot take back: either they are refused inside a transaction, or a
** ROLLBACK leaves the store as it was. */
Test(sql, create_in_rolled_back_transaction_leaves_no_topic) {
  const char *path = tu_store_path("sql_create_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "BEGIN");
  sqlite3_exec(db, "CREATE VIRTUAL TABLE x USING takhin(partitions=1)", NULL, NULL, NULL);
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'x'");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE x USING takhin(partitions=1)");
  sqlite3_close(db);
}

static void log_to_str(void *arg, int code, const char *msg) {
  sqlite3_str_appendf(arg, "%d %s\n", code, msg);
}

/* SQLite drops xDestroy's message, so DROP TABLE inside a transaction says
** SQLITE_LOCKED's text rather than "SQL logic error", and the whole message
** goes to SQLite's error log. Python's default mode meets it after an
** INSERT (its implicit BEGIN stays open): the second case. */
Test(sql, drop_in_transaction_says_locked_and_logs_why) {
  sqlite3_str *logged = sqlite3_str_new(NULL);
  sqlite3_shutdown();
  cr_assert_eq(sqlite3_config(SQLITE_CONFIG_LOG, log_to_str, logged), SQLITE_OK);
  cr_assert_eq(sqlite3_initialize(), SQLITE_OK);
  const char *path = tu_store_path("sql_drop_txn");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "BEGIN");
  exec_err_exact(db, "database table is locked", "DROP TABLE ev");
  cr_assert_eq(sqlite3_errcode(db), SQLITE_LOCKED);
  exec_ok(db, "ROLLBACK");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(key, value) VALUES ('k', 'v')");
  exec_err_exact(db, "database table is locked", "DROP TABLE ev");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM ev");
  char *log = sqlite3_str_value(logged);
  const char *why = "6 takhin: dropping topic \"ev\" deletes its files, which a ROLLBACK cannot bring back: "
                    "run DROP TABLE outside a transaction\n";
  cr_assert(log && strstr(log, why) && strstr(strstr(log, why) + 1, why), "SQLite's log:\n%s", log ? log : "");
  /* a failed DROP leaves no message behind for the next statement */
  exec_ok(db, "SELECT count(*) FROM ev");
  cr_assert_str_eq(sqlite3_errmsg(db), "not an error");
  exec_ok(db, "DROP TABLE ev"); /* outside a transaction: fine */
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  sqlite3_close(db);
}

Test(sql, drop_in_rolled_back_transaction_keeps_the_data) {
  const char *path = tu_store_path("sql_drop_rollback");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  exec_ok(db, "BEGIN");
  sqlite3_exec(db, "DROP TABLE ev", NULL, NULL, NULL);
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  EXPECT_ROWS(db, "0|a\n1|b\n", "SELECT partition, key FROM ev");
  sqlite3_close(db);
  db = db_open(path); /* and after a reopen */
  EXPECT_ROWS(db, "0|a\n1|b\n", "SELECT partition, key FROM ev");
  sqlite3_close(db);
}

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
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO pd(partition, key, value, timestamp) VALUES (?1, ?2, ?3, ?4)",
                                  -1, &st, NULL), SQLITE_OK);
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
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT partition, offset, timestamp, key FROM pd", -1, &st, NULL), SQLITE_OK);
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
      {"partition = 0 AND offset >= 50 ORDER BY partition, offset", 10, "GNP", 1u, 50, INT64_MAX, NOTS, NULL},
      {"ORDER BY partition, offset", 7, "N", ALL, 0, INT64_MAX, NOTS, NULL},
      {"partition IN (1, 2) AND offset > 95 ORDER BY partition, offset", 4, "INg", 6u, 96, INT64_MAX, NOTS, NULL},
      {"partition = 1 AND offset >= 90 ORDER BY partition, offset", 1000, "GNP", 2u, 90, INT64_MAX, NOTS, NULL},
      /* an inexact constraint keeps LIMIT in SQLite's hands */
      {"timestamp >= 1500 ORDER BY partition, offset", 5, "t", ALL, 0, INT64_MAX, 1500, NULL},
      {"partition = 0 AND key >= 'k5' ORDER BY partition, offset", 3, "P", 1u, 0, INT64_MAX, NOTS, NULL},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    const filt *f = &cases[ci];
    int bare = !*f->where || !strncmp(f->where, "ORDER", 5);
    char *sql = sqlite3_mprintf("SELECT partition, offset, timestamp, key FROM pd%s%s", bare ? " " : " WHERE ", f->where);
    if (f->limit >= 0) {
      char *l = sqlite3_mprintf("%s LIMIT %d", sql, f->limit);
      sqlite3_free(sql);
      sql = l;
    }
    sqlite3_str *want = sqlite3_str_new(NULL);
    int kept = 0;
    for (size_t i = 0; i < n; i++) {
      const row *r = &all[i];
      if (!(f->pmask & (1u << r->part)) || r->off < f->lo || r->off >= f->hi || r->ts < f->ts_min) continue;
      if (f->key && strcmp(r->key, f->key)) continue;
      if (strstr(f->where, "key >= 'k5'") && strcmp(r->key, "k5") < 0) continue;
      if (f->limit >= 0 && kept >= f->limit) break;
      sqlite3_str_appendf(want, "%d|%lld|%lld|%s\n", r->part, (long long)r->off, (long long)r->ts, r->key);
      kept++;
    }
    char *w = sqlite3_str_finish(want);
    char *got = q(db, "%s", sql);
    cr_assert_str_eq(got, w ? w : "", "rows of %s\n--- got:\n%s--- want:\n%s", sql, got, w ? w : "");
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
  exec_ok(db, "CREATE TABLE copy(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers TEXT)");
  exec_ok(db, "INSERT INTO copy SELECT * FROM pd");
  const char *wheres[] = {
      "offset = 10",        "offset = '10'",       "offset = 10.0",        "offset = 10.5",
      "offset > 9.5",       "offset >= 9.5",       "offset < 10.5",        "offset <= 10.5",
      "offset < 10.0",      "offset > -0.5",       "offset > -1.5",        "offset >= -0.5",
      "offset < -0.5",      "offset <= -0.5",      "offset <= -1",         "offset = NULL",
      "offset > NULL",      "offset IN (3, 5, 7)", "offset = 3 OR offset = 5",
      "partition = '1'",    "partition = 1.0",     "partition IN ('2', 1.0)", "partition = NULL",
      "partition = -1",     "partition = 1 AND offset = 3.5",
      "timestamp >= 1500.5", "timestamp > 1499.5",  "timestamp > -3",       "timestamp >= NULL",
      "offset > 'abc'",     "offset < 'abc'",      "partition = 'x'",
  };
  for (size_t i = 0; i < sizeof wheres / sizeof *wheres; i++) {
    char *got = q(db, "SELECT partition, offset FROM pd WHERE %s ORDER BY partition, offset", wheres[i]);
    char *want = q(db, "SELECT partition, offset FROM copy WHERE %s ORDER BY partition, offset", wheres[i]);
    cr_expect_str_eq(got, want, "WHERE %s: the vtab returned %d bytes of rows, SQLite %d", wheres[i],
                     (int)strlen(got), (int)strlen(want));
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
  exec_ok(db, "CREATE TABLE copy(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers TEXT)");
  exec_ok(db, "INSERT INTO copy SELECT * FROM pd");
  struct { const char *tail; int consumed; } cases[] = {
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
  exec_ok(db, "INSERT INTO aa(partition, key, value, timestamp) VALUES (1,'x','1',1),(0,'y','2',2),(1,'z','3',3)");
  char idx[64];
  plan_idx(db, "SELECT * FROM takhin_messages WHERE topic = 'pd' AND partition = 1 AND offset < 5", idx, sizeof idx);
  cr_assert_str_eq(idx, "PTl");
  plan_idx(db, "SELECT * FROM takhin_messages WHERE topic = 'pd' AND partition IN (0,1) LIMIT 3", idx, sizeof idx);
  cr_assert_str_eq(idx, "INT");
  cr_assert(!has_temp_btree(db, "SELECT topic, partition, offset FROM takhin_messages ORDER BY topic, partition, offset"));
  cr_assert(!has_temp_btree(db, "SELECT * FROM takhin_messages WHERE topic = 'aa' AND partition = 1 ORDER BY offset"));
  cr_assert(has_temp_btree(db, "SELECT * FROM takhin_messages ORDER BY partition, offset"));
  cr_assert(has_temp_btree(db, "SELECT * FROM takhin_messages ORDER BY key"));
  EXPECT_ROWS(db, "aa|0|0|y\naa|1|0|x\naa|1|1|z\n",
              "SELECT topic, partition, offset, key FROM takhin_messages ORDER BY topic, partition, offset LIMIT 3");
  EXPECT_ROWS(db, "aa|1|1|z\n", "SELECT topic, partition, offset, key FROM takhin_messages "
                               "WHERE topic = 'aa' AND partition = 1 AND offset >= 1");
  cr_assert_eq(q_int(db, "SELECT count(*) FROM takhin_messages"), PD_N + 3);
  cr_assert_eq(q_int(db, "SELECT count(*) FROM takhin_messages WHERE topic = 'pd' AND partition IN (0, 2)"), 200);
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
    exec_ok(db, "WITH RECURSIVE c(x) AS (VALUES(%d) UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
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
  EXPECT_ROWS(db, "500\n", "SELECT count(*) FROM (SELECT offset FROM tl ORDER BY offset DESC LIMIT 500)");
  exec_err(db, "CRC", "SELECT offset FROM tl ORDER BY offset DESC"); /* all the way back: the bad batch */
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
  char *p = plan(db, "SELECT * FROM tiny JOIN pd ON pd.partition = tiny.partition AND pd.offset = tiny.offset");
  const char *scan_tiny = strstr(p, "SCAN tiny");
  const char *scan_pd = strstr(p, "SCAN pd VIRTUAL TABLE INDEX 0:");
  cr_assert(scan_tiny && scan_pd && scan_tiny < scan_pd, "tiny drives the join:\n%s", p);
  char idx[16];
  snprintf(idx, sizeof idx, "%.2s", scan_pd + strlen("SCAN pd VIRTUAL TABLE INDEX 0:"));
  sorted(idx);
  cr_assert_str_eq(idx, "Po", "%s", p);
  sqlite3_free(p);
  EXPECT_ROWS(db, "k7|k0\n", "SELECT tiny.key, pd.key FROM tiny JOIN pd ON pd.partition = tiny.partition AND pd.offset = tiny.offset");
  sqlite3_close(db);
}

/* With the topic fixed, takhin_messages rows come out by partition, offset:
** the ORDER BY needs no sort (as for a topic's own table). */
Test(sql, messages_order_by_with_topic_is_consumed) {
  const char *path = tu_store_path("sql_msg_order");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE aa USING takhin(partitions=2)");
  exec_ok(db, "INSERT INTO aa(partition, key, value, timestamp) VALUES (1,'x','1',1),(0,'y','2',2)");
  const char *sql = "SELECT * FROM takhin_messages WHERE topic = 'aa' ORDER BY partition, offset";
  char *p = plan(db, sql);
  cr_expect(!strstr(p, "USE TEMP B-TREE"), "%s:\n%s", sql, p);
  sqlite3_free(p);
  EXPECT_ROWS(db, "0|y\n1|x\n", "SELECT partition, key FROM takhin_messages WHERE topic = 'aa' ORDER BY partition, offset");
  sqlite3_close(db);
}

/* ---- transactions ---------------------------------------------------------- */

Test(sql, transactions_one_batch_per_partition_at_commit) {
  const char *path = tu_store_path("sql_txn");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=3)");
  int counts[16];
  /* outside a transaction, one INSERT statement is one batch per partition */
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(0,'b','2',2),(1,'c','3',3)");
  cr_assert_eq(segment_batches(path, "ev", 0, 0, counts, 16), 1);
  cr_assert_eq(counts[0], 2);
  cr_assert_eq(segment_batches(path, "ev", 1, 0, counts, 16), 1);
  cr_assert_eq(counts[0], 1);

  /* inside one: nothing lands before COMMIT, then one batch per partition */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'d','4',4)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'e','5',5),(0,'f','6',6)");
  exec_ok(db, "INSERT INTO takhin_messages(topic, partition, key, value, timestamp) VALUES ('ev',0,'g','7',7)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'h','8',8)");
  EXPECT_ROWS(db, "0|2\n1|1\n2|0\n", "SELECT partition, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "3\n", "SELECT count(*) FROM ev"); /* pending rows are not readable yet */
  char seg[4200];
  tu_segment_path(seg, sizeof seg, path, "ev", 2, 0);
  cr_assert_eq(tu_file_size(seg), 0, "partition 2 is still empty before COMMIT");
  exec_ok(db, "COMMIT");
  /* partition 0: the old batch, d and f in one batch of ev's, and g in one
  ** of takhin_messages (each table appends its own rows) */
  cr_assert_eq(segment_batches(path, "ev", 0, 0, counts, 16), 3);
  cr_assert_eq(counts[1], 2, "d and f in one batch");
  cr_assert_eq(counts[2], 1, "g in the batch of takhin_messages");
  cr_assert_eq(segment_batches(path, "ev", 2, 0, counts, 16), 1);
  cr_assert_eq(counts[0], 2, "e and h in one batch");
  cr_assert_eq(segment_batches(path, "ev", 1, 0, counts, 16), 1, "partition 1 untouched");
  EXPECT_ROWS(db, "0|0|a\n0|1|b\n0|2|d\n0|3|f\n0|4|g\n1|0|c\n2|0|e\n2|1|h\n",
              "SELECT partition, offset, key FROM ev");

  /* ROLLBACK discards */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'x','x',9),(2,'y','y',9)");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev WHERE timestamp = 9");
  cr_assert_eq(segment_batches(path, "ev", 1, 0, counts, 16), 1);

  /* savepoints: ROLLBACK TO discards the rows after it, RELEASE keeps them */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s0','',10)");
  exec_ok(db, "SAVEPOINT a");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s1','',10)");
  exec_ok(db, "SAVEPOINT b");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s2','',10)");
  exec_ok(db, "ROLLBACK TO b");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s3','',10)");
  exec_ok(db, "RELEASE b");
  exec_ok(db, "SAVEPOINT c");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s4','',10)");
  exec_ok(db, "ROLLBACK TO a");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'s5','',10)");
  exec_ok(db, "RELEASE a");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "s0\ns5\n", "SELECT key FROM ev WHERE timestamp = 10");
  cr_assert_eq(segment_batches(path, "ev", 1, 0, counts, 16), 2);
  cr_assert_eq(counts[1], 2);

  /* a SAVEPOINT outside BEGIN is a transaction of its own */
  exec_ok(db, "SAVEPOINT outer");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'o1','',11)");
  exec_ok(db, "RELEASE outer");
  EXPECT_ROWS(db, "o1\n", "SELECT key FROM ev WHERE timestamp = 11");
  exec_ok(db, "SAVEPOINT outer");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'o3','',13)");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev WHERE timestamp = 13");

  /* a failing statement inside a transaction takes back only its own rows */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'ok','',12)");
  exec_err(db, "partition 9 out of range", "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'bad1','',12),(9,'bad2','',12)");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "ok\n", "SELECT key FROM ev WHERE timestamp = 12");
  sqlite3_close(db);
}

/* A COMMIT that fails in one partition takes back what it appended to the
** others: all of the transaction's rows land, or none. */
Test(sql, failed_commit_lands_nothing) {
  const char *path = tu_store_path("sql_txn_fail");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2, max_message_bytes=200)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'pre','x',1)");
  int64_t size0 = q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','small',2)");
  /* 1 + 170 bytes pass the per-row check, but the batch around it does not */
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'b',zeroblob(170),2)");
  exec_err(db, "larger than max_message_bytes 200", "COMMIT");
  cr_assert(sqlite3_get_autocommit(db), "the transaction was rolled back");
  EXPECT_ROWS(db, "0|1|0\n1|0|0\n",
              "SELECT partition, high_watermark, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  cr_assert_eq(q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 'ev' AND partition = 0"), size0);
  /* the taken-back bytes are zeroed in place (readers may map the file),
  ** so they can never be read back as records */
  char seg[4200];
  tu_segment_path(seg, sizeof seg, path, "ev", 0, 0);
  int64_t fsz = tu_file_size(seg);
  cr_assert_geq(fsz, size0);
  FILE *f = fopen(seg, "rb");
  cr_assert_not_null(f);
  fseek(f, size0, SEEK_SET);
  for (int64_t i = size0; i < fsz; i++) cr_assert_eq(fgetc(f), 0, "byte %lld after the log is zero", (long long)i);
  fclose(f);
  int counts[4];
  cr_assert_eq(segment_batches(path, "ev", 0, 0, counts, 4), 1, "partition 0's append was taken back");
  EXPECT_ROWS(db, "pre\n", "SELECT key FROM ev");
  /* the store goes on */
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'post','x',3)");
  EXPECT_ROWS(db, "0|0|pre\n0|1|post\n", "SELECT partition, offset, key FROM ev");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "0|0|pre\n0|1|post\n", "SELECT partition, offset, key FROM ev");
  sqlite3_close(db);
}

/* Rows above max_message_bytes together are split into several batches
** at COMMIT, each within the limit. */
Test(sql, large_transaction_is_chunked_under_the_limit) {
  const char *path = tu_store_path("sql_txn_chunk");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1, max_message_bytes=1000)");
  exec_ok(db, "BEGIN");
  for (int i = 0; i < 30; i++)
    exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('k%d', zeroblob(100), 5)", i);
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "30|100\n", "SELECT count(*), min(length(value)) FROM ev");
  int counts[64];
  int nb = segment_batches(path, "ev", 0, 0, counts, 64);
  cr_assert_gt(nb, 3, "30 x 100 bytes cannot fit one 1000-byte batch");
  int total = 0;
  for (int i = 0; i < nb; i++) total += counts[i];
  cr_assert_eq(total, 30);
  sqlite3_close(db);
}

/* ROLLBACK TO the savepoint that opened the transaction (no BEGIN): SQLite
** tells the vtab xRollbackTo(-1), "back to the start". */
Test(sql, rollback_to_transaction_savepoint_discards) {
  const char *path = tu_store_path("sql_svpt_outer");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "SAVEPOINT outer");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('gone', '', 1)");
  exec_ok(db, "ROLLBACK TO outer");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('kept', '', 2)");
  exec_ok(db, "RELEASE outer");
  EXPECT_ROWS(db, "kept\n", "SELECT key FROM ev");
  sqlite3_close(db);
}

/* Savepoints nest up to 64 deep around a write; deeper is refused clearly. */
Test(sql, savepoints_too_deep_are_refused) {
  const char *path = tu_store_path("sql_svpt_deep");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "BEGIN");
  for (int i = 0; i < 70; i++) exec_ok(db, "SAVEPOINT s%d", i);
  exec_err(db, "savepoints nest at most 64 deep", "INSERT INTO ev(key, value) VALUES ('k', 'v')");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  exec_ok(db, "BEGIN");
  for (int i = 0; i < 40; i++) exec_ok(db, "SAVEPOINT s%d", i);
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('deep', 'v', 1)");
  exec_ok(db, "ROLLBACK TO s39");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('k39', 'v', 1)");
  exec_ok(db, "ROLLBACK TO s20");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('k20', 'v', 1)");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "k20\n", "SELECT key FROM ev");
  sqlite3_close(db);
}

/* ---- UPDATE, DELETE, DROP ------------------------------------------------ */

Test(sql, update_is_refused) {
  const char *path = tu_store_path("sql_update");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('a', '1', 1)");
  exec_err_exact(db, "takhin: records are immutable: UPDATE is not supported (produce a new record instead)",
                 "UPDATE ev SET value = 'x'");
  exec_err(db, "records are immutable", "UPDATE ev SET value = 'x' WHERE partition = 0 AND offset = 0");
  exec_err(db, "records are immutable", "UPDATE takhin_messages SET key = 'x' WHERE topic = 'ev'");
  EXPECT_ROWS(db, "a|1\n", "SELECT key, value FROM ev");
  sqlite3_close(db);
}

Test(sql, delete_prefix_advances_log_start) {
  const char *path = tu_store_path("sql_delete");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2, segment_bytes=300)");
  for (int i = 0; i < 20; i++)
    exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'k%d','v',%d),(1,'k%d','v',%d)", i, i, i, i);
  int64_t segs = q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  cr_assert_gt(segs, 2);
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 12");
  EXPECT_ROWS(db, "0|12|20\n1|0|20\n",
              "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "12|19|8\n", "SELECT min(offset), max(offset), count(*) FROM ev WHERE partition = 0");
  cr_assert_lt(q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'ev' AND partition = 0"), segs,
               "whole segments below the new log start are deleted");
  EXPECT_ROWS(db, "0|1\n", "SELECT count(*) FILTER (WHERE next_offset <= 12), min(base_offset) <= 12 "
                          "FROM takhin_segments WHERE topic = 'ev' AND partition = 0");
  /* deleting nothing is fine; so is a prefix by key when it is the prefix */
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 5");
  exec_ok(db, "DELETE FROM ev WHERE partition = 1 AND key = 'k0'");
  EXPECT_ROWS(db, "0|12\n1|1\n", "SELECT partition, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  /* one statement may cut a prefix of every partition */
  exec_ok(db, "DELETE FROM ev WHERE offset < 15");
  EXPECT_ROWS(db, "0|15\n1|15\n", "SELECT partition, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");

  /* not a prefix: refused, explaining what DELETE means, and nothing changes */
  exec_err_exact(db, "takhin: DELETE removes a prefix of a partition (Kafka's DeleteRecords): offset 17 of "
                     "partition 0 is not the next one from the log start (15); write DELETE FROM \"ev\" "
                     "WHERE partition = 0 AND offset < N",
                 "DELETE FROM ev WHERE partition = 0 AND offset = 17");
  exec_err(db, "DELETE removes a prefix of a partition", "DELETE FROM ev WHERE partition = 1 AND offset IN (15, 16, 18)");
  exec_err(db, "DELETE removes a prefix of a partition", "DELETE FROM ev WHERE partition = 0 AND offset >= 18");
  exec_err(db, "DELETE removes a prefix of a partition", "DELETE FROM ev WHERE key = 'k16'");
  exec_err(db, "DELETE through the topic's own table", "DELETE FROM takhin_messages WHERE topic = 'ev'");
  EXPECT_ROWS(db, "0|15|20\n1|15|20\n",
              "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");

  /* in a transaction: applied at COMMIT, discarded by ROLLBACK */
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 17");
  EXPECT_ROWS(db, "15\n", "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "15\n", "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE partition = 0 AND offset < 17");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'k20','v',20)");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "0|17|21\n", "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions "
                               "WHERE topic = 'ev' AND partition = 0");
  /* everything: the log start reaches the high watermark; offsets go on */
  exec_ok(db, "DELETE FROM ev");
  EXPECT_ROWS(db, "0|21|21\n1|20|20\n",
              "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'new','v',30)");
  EXPECT_ROWS(db, "1|20|new\n", "SELECT partition, offset, key FROM ev");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "0|21|21\n1|20|21\n",
              "SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}

/* Two DELETEs of one partition in one transaction: the second continues
** the first (its scan still sees the rows the first one removes). */
Test(sql, two_deletes_in_one_transaction) {
  const char *path = tu_store_path("sql_delete_twice");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  for (int i = 0; i < 10; i++) exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES ('k%d', 'v', 1)", i);
  exec_ok(db, "BEGIN");
  exec_ok(db, "DELETE FROM ev WHERE offset < 3");
  exec_ok(db, "DELETE FROM ev WHERE offset < 5");
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "5\n", "SELECT log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}

Test(sql, drop_table_deletes_topic_and_files) {
  const char *path = tu_store_path("sql_drop");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db, "CREATE VIRTUAL TABLE keep USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  exec_ok(db, "INSERT INTO keep(key, value, timestamp) VALUES ('c','3',3)");
  exec_ok(db, "SELECT takhin_commit('g', 'ev', 0, 1)");
  char d0[4200], d1[4200];
  snprintf(d0, sizeof d0, "%s-takhin/ev-0", path);
  snprintf(d1, sizeof d1, "%s-takhin/ev-1", path);
  cr_assert(path_exists(d0) && path_exists(d1));
  exec_ok(db, "DROP TABLE ev");
  cr_assert(!path_exists(d0) && !path_exists(d1), "the partition folders are gone");
  EXPECT_ROWS(db, "keep\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_partitions WHERE topic = 'ev'");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  exec_err(db, "unknown topic \"ev\"", "INSERT INTO takhin_messages(topic, key, value) VALUES ('ev', 'k', 'v')");
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  int32_t np;
  cr_assert_eq(takhin_topic_partitions(s, "ev", &np), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_topic_partitions(s, "keep", &np), TAKHIN_OK);
  takhin_close(s);
  /* the name is free again */
  db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  sqlite3_close(db);
}

/* ---- values and headers ---------------------------------------------------- */

Test(sql, type_mapping) {
  const char *path = tu_store_path("sql_types");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES "
              "('text', 'héllo wörld', 1), (x'00ff', x'00ff', 2), (42, 42, 3), (1.5, -0.25, 4), "
              "(NULL, NULL, 5), ('', '', 6), (x'', x'', 7), (x'68656c6c6f', x'68656c6c6f', 8), "
              "(CAST(x'610062' AS TEXT), x'c3', 9), (x'ffffffff', zeroblob(3), 10)");
  EXPECT_ROWS(db,
              "text|text|text|text|héllo wörld\n"
              "blob|blob|x'00ff'|blob|x'00ff'\n"
              "text|text|42|text|42\n"
              "text|text|1.5|text|-0.25\n"
              "null|null|NULL|null|NULL\n"
              "text|text||text|\n"
              "text|text||text|\n"
              "text|text|hello|text|hello\n"
              "blob|blob|x'610062'|blob|x'c3'\n"
              "blob|blob|x'ffffffff'|blob|x'000000'\n",
              "SELECT typeof(key), typeof(value), key, typeof(value), value FROM ev ORDER BY offset");
  /* bytes survive exactly, whichever type they come back as */
  EXPECT_ROWS(db, "00FF|00FF\n3432|3432\n|\n68656C6C6F|68656C6C6F\n610062|C3\n",
              "SELECT hex(key), hex(value) FROM ev WHERE timestamp IN (2, 3, 6, 8, 9) ORDER BY offset");
  EXPECT_ROWS(db, "1|1\n", "SELECT key IS NULL, value IS NULL FROM ev WHERE timestamp = 5");
  EXPECT_ROWS(db, "0|0\n", "SELECT key IS NULL, value IS NULL FROM ev WHERE timestamp = 7");
  /* a large binary value round-trips byte for byte */
  sqlite3_stmt *st;
  unsigned char big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 131 + 7);
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO ev(key, value, timestamp) VALUES ('big', ?1, 11)", -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_blob(st, 1, big, sizeof big, SQLITE_STATIC);
  cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM ev WHERE key = 'big'", -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_type(st, 0), SQLITE_BLOB);
  cr_assert_eq(sqlite3_column_bytes(st, 0), (int)sizeof big);
  cr_assert(!memcmp(sqlite3_column_blob(st, 0), big, sizeof big));
  sqlite3_finalize(st);
  /* and the C API reads the same bytes */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get(c, 1, &m), TAKHIN_OK);
  cr_assert_eq(m.value_len, 2);
  cr_assert(!memcmp(m.value, "\x00\xff", 2));
  cr_assert_eq(takhin_cursor_get(c, 4, &m), TAKHIN_OK);
  cr_assert(m.key == NULL && m.value == NULL, "NULL is a null key and a null value (tombstone)");
  cr_assert_eq(takhin_cursor_get(c, 6, &m), TAKHIN_OK);
  cr_assert(m.key != NULL && m.key_len == 0, "x'' is an empty, non-null key");
  takhin_cursor_close(c);
  takhin_close(s);
}

Test(sql, headers_json_round_trip) {
  const char *path = tu_store_path("sql_headers");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  struct { const char *in, *out; } cases[] = {
      {"[]", "[]"},
      {"[[\"trace\",\"abc\"]]", "[[\"trace\",\"abc\"]]"},
      {"[[\"trace\",\"abc\"],[\"trace\",\"def\"],[\"flag\",null],[\"bin\",{\"hex\":\"00ff\"}]]",
       "[[\"trace\",\"abc\"],[\"trace\",\"def\"],[\"flag\",null],[\"bin\",{\"hex\":\"00ff\"}]]"},
      {" [ [ \"a\" , \"1\" ] , [\"b\",\"\"] ] ", "[[\"a\",\"1\"],[\"b\",\"\"]]"},
      {"[[\"q\",\"a\\\"b\\\\c\\nd\\te\\r\\u0001\\/\"]]", "[[\"q\",\"a\\\"b\\\\c\\nd\\te\\r\\u0001/\"]]"},
      {"[[\"u\",\"\\u00e9\\u20ac\"]]", "[[\"u\",\"é€\"]]"},
      {"[[\"h\",{\"hex\":\"DEADbeef\"}]]", "[[\"h\",{\"hex\":\"deadbeef\"}]]"},
      {"[[\"t\",{\"hex\":\"6869\"}]]", "[[\"t\",\"hi\"]]"}, /* valid UTF-8 bytes read back as a string */
      {"[[\"e\",{\"hex\":\"\"}]]", "[[\"e\",\"\"]]"},
      {"[[\"\",\"empty key\"]]", "[[\"\",\"empty key\"]]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', %d, %Q)", (int)i, cases[i].in);
    char *got = q(db, "SELECT headers FROM ev WHERE timestamp = %d", (int)i);
    char *want = sqlite3_mprintf("%s\n", cases[i].out);
    cr_assert_str_eq(got, want, "headers %s read back as\n%s", cases[i].in, got);
    sqlite3_free(got);
    sqlite3_free(want);
  }
  /* what SQLite's JSON functions build is accepted, and the output parses */
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', 100, "
              "json_array(json_array('x', '1'), json_array('x', '2'), json_array('n', NULL)))");
  EXPECT_ROWS(db, "x|1\nx|2\nn|NULL\n",
              "SELECT h.value ->> 0, h.value ->> 1 FROM ev, json_each(ev.headers) AS h WHERE ev.timestamp = 100");
  /* the C API sees the real headers, duplicates, nulls and bytes included */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  takhin_cursor *c;
  takhin_message m;
  takhin_header h;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get(c, 2, &m), TAKHIN_OK);
  cr_assert_eq(m.n_headers, 4);
  cr_assert_eq(takhin_message_header(&m, 1, &h), TAKHIN_OK);
  cr_assert(h.key_len == 5 && !memcmp(h.key, "trace", 5) && h.value_len == 3 && !memcmp(h.value, "def", 3));
  cr_assert_eq(takhin_message_header(&m, 2, &h), TAKHIN_OK);
  cr_assert(h.value == NULL, "null header value");
  cr_assert_eq(takhin_message_header(&m, 3, &h), TAKHIN_OK);
  cr_assert(h.value_len == 2 && !memcmp(h.value, "\x00\xff", 2));
  takhin_cursor_close(c);
  takhin_close(s);
}

/* Headers JSON as other tools write it is accepted byte for byte. The
** strings are what these commands printed (Python 3.11, jq 1.6), for
**   h = [["emoji","😀"],["nul","a\x00b"],["accent","héllo"],["ctl","a\tb\n\x01"],
**        ["quote","\"\\/"],["none",None]]
**   python3 -c 'import json; print(json.dumps(h))'                       (ensure_ascii)
**   python3 -c 'import json; print(json.dumps(h, ensure_ascii=False))'
**   jq -c -n '<h as JSON>'   and   jq -a -c -n '<h as JSON>'              (ASCII output) */
Test(sql, headers_json_from_python_jq_and_sqlite) {
  const char *path = tu_store_path("sql_headers_tools");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  const char *in[] = {
      "[[\"emoji\", \"\\ud83d\\ude00\"], [\"nul\", \"a\\u0000b\"], [\"accent\", \"h\\u00e9llo\"], "
      "[\"ctl\", \"a\\tb\\n\\u0001\"], [\"quote\", \"\\\"\\\\/\"], [\"none\", null]]",
      "[[\"emoji\", \"😀\"], [\"nul\", \"a\\u0000b\"], [\"accent\", \"héllo\"], "
      "[\"ctl\", \"a\\tb\\n\\u0001\"], [\"quote\", \"\\\"\\\\/\"], [\"none\", null]]",
      "[[\"emoji\",\"😀\"],[\"nul\",\"a\\u0000b\"],[\"accent\",\"héllo\"],"
      "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]",
      "[[\"emoji\",\"\\ud83d\\ude00\"],[\"nul\",\"a\\u0000b\"],[\"accent\",\"h\\u00e9llo\"],"
      "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]",
  };
  /* A value holding NUL reads back as {"hex":...}, as in the value column:
  ** SQLite's JSON functions (->>, json_each) would cut a "\u0000" string. */
  const char *out = "[[\"emoji\",\"😀\"],[\"nul\",{\"hex\":\"610062\"}],[\"accent\",\"héllo\"],"
                    "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]\n";
  for (int i = 0; i < 4; i++) {
    exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', %d, %Q)", i, in[i]);
    char *got = q(db, "SELECT headers FROM ev WHERE timestamp = %d", i);
    cr_assert_str_eq(got, out, "input %d: %s\nread back as\n%s", i, in[i], got);
    sqlite3_free(got);
  }
  /* SQLite's json_array() and json_object(), characters beyond the BMP too */
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', 10, "
              "json_array(json_array('emoji', '😀'), json_array('tab', 'a' || char(9) || 'b'), "
              "json_array('bin', json_object('hex', '00ff')), json_array('none', NULL)))");
  EXPECT_ROWS(db, "[[\"emoji\",\"😀\"],[\"tab\",\"a\\tb\"],[\"bin\",{\"hex\":\"00ff\"}],[\"none\",null]]\n",
              "SELECT headers FROM ev WHERE timestamp = 10");
  /* and SQLite reads what takhin writes */
  EXPECT_ROWS(db, "emoji|F09F9880|NULL\ntab|610962|NULL\nbin|NULL|00ff\nnone||NULL\n", /* hex(NULL) is empty */
              "SELECT h.value ->> 0, CASE WHEN h.value ->> '$[1].hex' IS NULL THEN hex(h.value ->> 1) END, "
              "h.value ->> '$[1].hex' FROM ev, json_each(ev.headers) AS h WHERE ev.timestamp = 10");
  sqlite3_close(db);

  /* The bytes themselves, through the C API; then a header key that is not
  ** UTF-8 (possible from C) reads back as {"hex":...} too. */
  takhin_store *s = c_open(path, 0);
  takhin_cursor *c;
  takhin_message m;
  takhin_header h;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  for (int64_t off = 0; off < 4; off++) {
    cr_assert_eq(takhin_cursor_get(c, off, &m), TAKHIN_OK);
    cr_assert_eq(m.n_headers, 6);
    cr_assert_eq(takhin_message_header(&m, 0, &h), TAKHIN_OK);
    cr_assert(h.value_len == 4 && !memcmp(h.value, "\xF0\x9F\x98\x80", 4), "U+1F600 from a surrogate pair");
    cr_assert_eq(takhin_message_header(&m, 1, &h), TAKHIN_OK);
    cr_assert(h.value_len == 3 && !memcmp(h.value, "a\0b", 3), "\\u0000 is the byte 0");
    cr_assert_eq(takhin_message_header(&m, 3, &h), TAKHIN_OK);
    cr_assert(h.value_len == 5 && !memcmp(h.value, "a\tb\n\x01", 5));
    cr_assert_eq(takhin_message_header(&m, 5, &h), TAKHIN_OK);
    cr_assert(h.key_len == 4 && !memcmp(h.key, "none", 4) && h.value == NULL);
  }
  takhin_cursor_close(c);
  takhin_header raw[] = {{"\xff\x00k", 3, "v\x00", 2}, {"", 0, "", 0}};
  takhin_record r = {.key = "c", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 20,
                     .headers = raw, .n_headers = 2};
  cr_assert_eq(takhin_produce(s, "ev", 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
  db = db_open(path);
  EXPECT_ROWS(db, "[[{\"hex\":\"ff006b\"},{\"hex\":\"7600\"}],[\"\",\"\"]]\n",
              "SELECT headers FROM ev WHERE timestamp = 20");
  /* what takhin writes, written again, lands the same bytes */
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) SELECT 'k', 'v', 21, headers FROM ev WHERE timestamp = 20");
  EXPECT_ROWS(db, "1\n", "SELECT count(DISTINCT headers) FROM ev WHERE timestamp IN (20, 21)");
  sqlite3_close(db);
}

/* Mutated headers JSON (fixed seed): every INSERT either lands, and then
** reads back as JSON SQLite accepts, or is refused with a headers message;
** none crashes or writes part of a row. */
Test(sql, mutated_headers_json_never_crash) {
  const char *path = tu_store_path("sql_headers_mut");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  static const char seed[] = "[[\"emoji\", \"\\ud83d\\ude00\"], [\"nul\", \"a\\u0000b\"], [\"bin\", {\"hex\":\"00ff\"}], "
                             "[\"none\", null], [\"u\", \"h\\u00e9\"]]";
  static const char alphabet[] = "[]{}\",:\\u0dDhex0123456789abcdefnul \x01\x80\xff";
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  int landed = 0, refused = 0;
  sqlite3_stmt *ins;
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', ?)", -1, &ins, NULL),
               SQLITE_OK);
  for (int i = 0; i < 3000; i++) {
    char buf[sizeof seed + 8];
    size_t n = sizeof seed - 1;
    memcpy(buf, seed, n);
    for (int m = 0; m < 1 + i % 4; m++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t at = (size_t)(x % n);
      switch ((x >> 32) % 3) {
        case 0: buf[at] = alphabet[(x >> 40) % (sizeof alphabet - 1)]; break; /* replace */
        case 1: memmove(buf + at, buf + at + 1, n - at - 1), n--; break;   /* delete */
        default: /* insert */
          if (n < sizeof buf - 1) {
            memmove(buf + at + 1, buf + at, n - at);
            buf[at] = alphabet[(x >> 40) % (sizeof alphabet - 1)];
            n++;
          }
      }
    }
    sqlite3_bind_text(ins, 1, buf, (int)n, SQLITE_TRANSIENT);
    int rc = sqlite3_step(ins);
    if (rc == SQLITE_DONE) {
      landed++;
    } else {
      cr_assert(!strncmp(sqlite3_errmsg(db), "takhin: headers", 15), "input %.*s: %s", (int)n, buf, sqlite3_errmsg(db));
      refused++;
    }
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  cr_assert_gt(landed, 10);
  cr_assert_gt(refused, 10);
  char *cnt = sqlite3_mprintf("%d\n", landed);
  EXPECT_ROWS(db, cnt, "SELECT count(*) FROM ev");
  EXPECT_ROWS(db, cnt, "SELECT count(*) FROM ev WHERE json_valid(headers) AND json_type(headers) = 'array'");
  sqlite3_free(cnt);
  sqlite3_close(db);
}

/* Each malformed headers value, and the exact message it gets: invalid JSON
** is told apart from valid JSON of the wrong shape, and both say where. */
Test(sql, malformed_headers_refused) {
  const char *path = tu_store_path("sql_headers_bad");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  static const char array[] = "takhin: headers must be a JSON array of [key, value] pairs, e.g. "
                              "'[[\"trace\",\"abc\"]]', got ";
  struct { const char *in, *a, *b; } bad[] = {
      {"", "takhin: headers are empty text: write '[]' or NULL for none", ""},
      {"{}", array, "an object"},
      {"null", array, "null"},
      {"\"x\"", array, "a string"},
      {"[", "takhin: headers are not valid JSON: ']' expected near end of file (line 1, column 1)", ""},
      {"[[\"a\",\"b\"]", "takhin: headers are not valid JSON: ']' expected near end of file (line 1, column 10)", ""},
      {"[[\"a\",\"b\"]] x", "takhin: headers are not valid JSON: end of file expected near 'x' (line 1, column 13)", ""},
      {"[[\"a\",\"b\"],]", "takhin: headers are not valid JSON: unexpected token near ']' (line 1, column 12)", ""},
      {"[[\"a\",nul]]", "takhin: headers are not valid JSON: invalid token near 'nul' (line 1, column 9)", ""},
      {"[[\"a\",\"\\q\"]]", "takhin: headers are not valid JSON: invalid escape near '\"\\q' (line 1, column 9)", ""},
      /* a lone surrogate encodes no character: such bytes go as {"hex":...} */
      {"[[\"a\",\"\\ud800\"]]",
       "takhin: headers are not valid JSON: invalid Unicode '\\uD800' near '\"\\ud800\"' (line 1, column 14)", ""},
      {"[[\"a\",{\"hex\":\"00\",\"hex\":\"01\"}]]",
       "takhin: headers are not valid JSON: duplicate object key near '\"hex\"' (line 1, column 23)", ""},
      {"[[\"a\"]]", "takhin: headers[0] ", "must be a [key, value] pair, got an array of 1"},
      {"[[\"a\",\"b\",\"c\"]]", "takhin: headers[0] ", "must be a [key, value] pair, got an array of 3"},
      {"[[\"k\",\"v\"],\"a\"]", "takhin: headers[1] ", "must be a [key, value] pair, got a string"},
      {"[[\"a\",1]]", "takhin: headers[0]: ", "the value must be a string, null or {\"hex\":\"...\"}, got a number"},
      {"[[\"a\",true]]", "takhin: headers[0]: ", "the value must be a string, null or {\"hex\":\"...\"}, got a boolean"},
      {"[[\"a\",[\"b\"]]]", "takhin: headers[0]: ", "the value must be a string, null or {\"hex\":\"...\"}, got an array"},
      {"[[\"a\",{\"hx\":\"00\"}]]", "takhin: headers[0]: ", "the value must be a string, null or {\"hex\":\"...\"}, got another object"},
      {"[[\"a\",{\"hex\":\"00\",\"x\":1}]]", "takhin: headers[0]: ", "the value must be a string, null or {\"hex\":\"...\"}, got another object"},
      {"[[1,\"b\"]]", "takhin: headers[0]: ", "the key must be a string or {\"hex\":\"...\"}, got a number"},
      {"[[null,\"b\"]]", "takhin: headers[0]: ", "the key must be a string or {\"hex\":\"...\"}, got null"},
      {"[[\"a\",{\"hex\":\"0\"}]]", "takhin: headers[0]: ", "the value's {\"hex\":\"...\"} has an odd number of digits (1)"},
      {"[[\"a\",{\"hex\":\"zz\"}]]", "takhin: headers[0]: ", "the value's {\"hex\":\"...\"} holds a non-hex character"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *sql = sqlite3_mprintf("INSERT INTO ev(key, value, headers) VALUES ('k', 'v', %Q)", bad[i].in);
    char *want = sqlite3_mprintf("%s%s", bad[i].a, bad[i].b);
    exec_err_exact(db, want, sql);
    sqlite3_free(want);
    sqlite3_free(sql);
  }
  /* not UTF-8 at all: jansson checks the text's encoding too */
  exec_err_exact(db, "takhin: headers are not valid JSON: unable to decode byte 0x80 near '\"' (line 1, column 7)",
                 "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', CAST(x'5b5b2261222c2280225d5d' AS TEXT))");
  exec_err_exact(db, "takhin: headers must be JSON text like '[[\"key\",\"value\"]]'",
                 "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', x'5b5d')");
  exec_err(db, "headers must be JSON text", "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', 5)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  EXPECT_ROWS(db, "0|0\n", "SELECT high_watermark, size_bytes FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}

/* ---- metadata tables and functions ------------------------------------------- */

Test(sql, metadata_tables) {
  const char *path = tu_store_path("sql_meta");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=2, segment_bytes=400)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1, compression='zstd')");
  for (int i = 0; i < 30; i++)
    exec_ok(db, "INSERT INTO a(partition, key, value, timestamp) VALUES (%d, 'k%d', 'value-%d', %d)", i % 2, i, i, 1000 + i);
  exec_ok(db, "INSERT INTO b(key, value, timestamp) VALUES ('x', 'y', 5)");
  EXPECT_ROWS(db, "a|2|delete|none\nb|1|delete|zstd\n", "SELECT name, partitions, cleanup_policy, compression FROM takhin_topics");
  EXPECT_ROWS(db, "b|1\n", "SELECT name, partitions FROM takhin_topics WHERE name = 'b'");
  /* partitions agree with the C API */
  takhin_store *s = c_open(path, 1);
  for (int p = 0; p < 2; p++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, "a", p, &pi), TAKHIN_OK);
    char *want = sqlite3_mprintf("a|%d|%lld|%lld|%lld|%lld\n", p, (long long)pi.log_start_offset,
                                 (long long)pi.high_watermark, (long long)pi.size_bytes, (long long)pi.segments);
    char *got = q(db, "SELECT * FROM takhin_partitions WHERE topic = 'a' AND partition = %d", p);
    cr_assert_str_eq(got, want, "takhin_partitions %s vs C %s", got, want);
    cr_assert_eq(pi.high_watermark, 15);
    cr_assert_gt(pi.segments, 1);
    sqlite3_free(got);
    sqlite3_free(want);
    /* and so do segments */
    takhin_segment_info *g;
    size_t ng;
    cr_assert_eq(takhin_segments_list(s, "a", p, &g, &ng), TAKHIN_OK);
    sqlite3_str *w = sqlite3_str_new(NULL);
    for (size_t k = 0; k < ng; k++)
      sqlite3_str_appendf(w, "a|%d|%lld|%lld|%lld|%lld|%d\n", p, (long long)g[k].base_offset, (long long)g[k].next_offset,
                          (long long)g[k].size_bytes, (long long)g[k].max_timestamp, g[k].sealed);
    takhin_free(g);
    char *ws = sqlite3_str_finish(w);
    got = q(db, "SELECT * FROM takhin_segments WHERE topic = 'a' AND partition = %d", p);
    cr_assert_str_eq(got, ws);
    sqlite3_free(got);
    sqlite3_free(ws);
  }
  takhin_close(s);
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM takhin_partitions WHERE topic = 'b'");
  EXPECT_ROWS(db, "3\n", "SELECT count(*) FROM takhin_partitions");
  /* segments: contiguous, only the last one open, sizes adding up */
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM takhin_segments s1 JOIN takhin_segments s2 "
                         "ON s1.topic = s2.topic AND s1.partition = s2.partition AND s2.base_offset > s1.base_offset "
                         "WHERE s1.topic = 'a' AND s2.base_offset != s1.next_offset "
                         "AND s2.base_offset = (SELECT min(base_offset) FROM takhin_segments s3 WHERE s3.topic = 'a' "
                         "AND s3.partition = s1.partition AND s3.base_offset > s1.base_offset)");
  EXPECT_ROWS(db, "0|0\n1|0\n", "SELECT partition, sum(sealed = 0) - 1 FROM takhin_segments WHERE topic = 'a' GROUP BY partition");
  EXPECT_ROWS(db, "1\n", "SELECT (SELECT sum(size_bytes) FROM takhin_segments WHERE topic = 'a') = "
                         "(SELECT sum(size_bytes) FROM takhin_partitions WHERE topic = 'a')");
  EXPECT_ROWS(db, "1\n", "SELECT (SELECT max(max_timestamp) FROM takhin_segments WHERE topic = 'a' AND partition = 1) = "
                         "(SELECT max(timestamp) FROM a WHERE partition = 1)");
  EXPECT_ROWS(db, "b|0|0|1|5|0\n", "SELECT topic, partition, base_offset, next_offset, max_timestamp, sealed "
                                   "FROM takhin_segments WHERE topic = 'b'");
  sqlite3_close(db);
}

Test(sql, group_offsets_and_commit) {
  const char *path = tu_store_path("sql_groups");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=2)");
  exec_ok(db, "CREATE VIRTUAL TABLE other USING takhin(partitions=1)");
  for (int i = 0; i < 10; i++) exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (0, 'k', 'v', %d)", i);
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (1, 'k', 'v', 1), (1, 'k', 'v', 2)");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "4\n", "SELECT takhin_commit('billing', 'orders', 0, 4)");
  EXPECT_ROWS(db, "2\n", "SELECT takhin_commit('billing', 'orders', 1, 2, 'host-7')");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_commit('audit', 'orders', 0, 0)");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_commit('audit', 'other', 0, 0)");
  EXPECT_ROWS(db, "audit|orders|0|0|10|10|NULL\n"
                  "audit|other|0|0|0|0|NULL\n"
                  "billing|orders|0|4|10|6|NULL\n"
                  "billing|orders|1|2|2|0|host-7\n",
              "SELECT * FROM takhin_group_offsets ORDER BY group_id, topic, partition");
  EXPECT_ROWS(db, "audit|0\n", "SELECT group_id, lag FROM takhin_group_offsets WHERE topic = 'other'");
  /* a commit moves the offset (backwards too, as Kafka allows) */
  exec_ok(db, "SELECT takhin_commit('billing', 'orders', 0, 10)");
  exec_ok(db, "SELECT takhin_commit('audit', 'orders', 0, 3)");
  EXPECT_ROWS(db, "audit|3|7\nbilling|10|0\n",
              "SELECT group_id, committed_offset, lag FROM takhin_group_offsets WHERE topic = 'orders' AND partition = 0 ORDER BY 1");
  /* lag follows the log */
  exec_ok(db, "INSERT INTO orders(partition, key, value, timestamp) VALUES (0, 'k', 'v', 20)");
  EXPECT_ROWS(db, "billing|11|1\n",
              "SELECT group_id, high_watermark, lag FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* a commit inside a transaction is rolled back with it */
  exec_ok(db, "BEGIN");
  exec_ok(db, "SELECT takhin_commit('billing', 'orders', 0, 1)");
  exec_ok(db, "ROLLBACK");
  EXPECT_ROWS(db, "10\n", "SELECT committed_offset FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* refused: out of range, unknown topic or partition, wrong types, NULLs */
  exec_err(db, "out of range", "SELECT takhin_commit('billing', 'orders', 0, -1)");
  exec_err(db, "out of range", "SELECT takhin_commit('billing', 'orders', 0, 12)");
  exec_err(db, "unknown topic \"nope\"", "SELECT takhin_commit('billing', 'nope', 0, 1)");
  exec_err(db, "partition", "SELECT takhin_commit('billing', 'orders', 2, 0)");
  exec_err(db, "partition", "SELECT takhin_commit('billing', 'orders', 4294967296, 0)");
  exec_err_exact(db, "takhin_commit: partition must be an integer, got text", "SELECT takhin_commit('billing', 'orders', '0', 1)");
  exec_err_exact(db, "takhin_commit: partition must be an integer, got a real", "SELECT takhin_commit('billing', 'orders', 0.5, 1)");
  exec_err_exact(db, "takhin_commit: offset must be an integer, got NULL", "SELECT takhin_commit('billing', 'orders', 0, NULL)");
  exec_err_exact(db, "takhin_commit: offset must be an integer, got a blob", "SELECT takhin_commit('billing', 'orders', 0, x'01')");
  exec_err_exact(db, "takhin_commit: group must be text", "SELECT takhin_commit(NULL, 'orders', 0, 1)");
  exec_err_exact(db, "takhin_commit: group must be text", "SELECT takhin_commit(7, 'orders', 0, 1)");
  exec_err_exact(db, "takhin_commit: topic must be text", "SELECT takhin_commit('billing', NULL, 0, 1)");
  exec_err(db, "group", "SELECT takhin_commit('', 'orders', 0, 1)");
  exec_err(db, "wrong number of arguments", "SELECT takhin_commit('billing', 'orders', 0)");
  EXPECT_ROWS(db, "4\n", "SELECT count(*) FROM takhin_group_offsets");
  EXPECT_ROWS(db, "10\n", "SELECT committed_offset FROM takhin_group_offsets WHERE group_id = 'billing' AND partition = 0");
  /* the C API reads what SQL committed */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  int64_t off;
  char *meta = NULL;
  cr_assert_eq(takhin_group_fetch(s, "billing", "orders", 1, &off, &meta), TAKHIN_OK);
  cr_assert_eq(off, 2);
  cr_assert_str_eq(meta, "host-7");
  takhin_free(meta);
  takhin_close(s);
}

Test(sql, offset_for_time_retention_version_partitioner) {
  const char *path = tu_store_path("sql_funcs");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=2, segment_bytes=300, retention_ms=-1)");
  for (int i = 0; i < 40; i++)
    exec_ok(db, "INSERT INTO t(partition, key, value, timestamp) VALUES (0, 'k%d', 'v', %lld)", i, 1700000000000LL + i * 1000LL);
  /* ListOffsets: the first offset with timestamp >= T */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, 0)");
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, 1700000000000)");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_offset_for_time('t', 0, 1700000000001)");
  EXPECT_ROWS(db, "25\n", "SELECT takhin_offset_for_time('t', 0, 1700000025000)");
  EXPECT_ROWS(db, "40\n", "SELECT takhin_offset_for_time('t', 0, 1800000000000)"); /* none: the high watermark */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 0, -2)");              /* earliest */
  EXPECT_ROWS(db, "40\n", "SELECT takhin_offset_for_time('t', 0, -1)");             /* latest */
  EXPECT_ROWS(db, "0\n", "SELECT takhin_offset_for_time('t', 1, 5)");               /* an empty partition */
  /* the same offset as the timestamp pushdown starts from */
  EXPECT_ROWS(db, "25\n", "SELECT min(offset) FROM t WHERE partition = 0 AND timestamp >= 1700000025000");
  exec_err_exact(db, "takhin_offset_for_time: partition must be an integer, got NULL", "SELECT takhin_offset_for_time('t', NULL, 5)");
  exec_err_exact(db, "takhin_offset_for_time: timestamp must be an integer, got text", "SELECT takhin_offset_for_time('t', 0, 'now')");
  exec_err_exact(db, "takhin_offset_for_time: topic must be text", "SELECT takhin_offset_for_time(NULL, 0, 5)");
  exec_err(db, "unknown topic \"nope\"", "SELECT takhin_offset_for_time('nope', 0, 5)");
  exec_err(db, "partition", "SELECT takhin_offset_for_time('t', 7, 5)");
  exec_err(db, "timestamp", "SELECT takhin_offset_for_time('t', 0, -3)");

  /* retention: nothing to do under retention_ms = -1 and no byte limit */
  EXPECT_ROWS(db, "0|0\n", "SELECT * FROM takhin_retention('t')");
  int64_t segs = q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't' AND partition = 0");
  cr_assert_gt(segs, 3);
  /* by bytes: whole sealed segments go, oldest first, until under the limit */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(takhin_topic_alter_config(s, "t", (const char *const[]){"retention_bytes", "700", NULL}), TAKHIN_OK);
  takhin_close(s);
  db = db_open(path);
  int64_t size_before = q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 't' AND partition = 0");
  char *r = q(db, "SELECT * FROM takhin_retention('t')");
  int64_t nseg = 0, nbytes = 0;
  cr_assert_eq(sscanf(r, "%lld|%lld", (long long *)&nseg, (long long *)&nbytes), 2, "%s", r);
  sqlite3_free(r);
  cr_assert_gt(nseg, 0);
  cr_assert_eq(q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't' AND partition = 0"), segs - nseg);
  cr_assert_eq(q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 't' AND partition = 0"), size_before - nbytes);
  cr_assert_leq(size_before - nbytes, 700 + 300);
  cr_assert_eq(q_int(db, "SELECT log_start_offset FROM takhin_partitions WHERE topic = 't' AND partition = 0"),
               q_int(db, "SELECT min(base_offset) FROM takhin_segments WHERE topic = 't' AND partition = 0"));
  EXPECT_ROWS(db, "0|0\n", "SELECT segments_deleted, bytes_deleted FROM takhin_retention WHERE topic = 't'");
  exec_err(db, "unknown topic \"nope\"", "SELECT * FROM takhin_retention('nope')");
  exec_err_exact(db, "takhin_retention: topic must be text", "SELECT * FROM takhin_retention(NULL)");
  exec_err(db, "takhin_retention(topic) needs the topic argument", "SELECT * FROM takhin_retention");

  /* takhin_version and the partitioner */
  EXPECT_ROWS(db, TAKHIN_VERSION "\n", "SELECT takhin_version()");
  const char *keys[] = {"user-1", "a", "", "orders-42", "ÿ"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    for (int n = 1; n <= 7; n += 3)
      cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(%Q, %d)", keys[i], n),
                   takhin_partition_for_key(keys[i], strlen(keys[i]), n), "key %s over %d", keys[i], n);
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(x'00ff10', 10)"), takhin_partition_for_key("\x00\xff\x10", 3, 10));
  cr_assert_eq(q_int(db, "SELECT takhin_partition_for_key(12345, 10)"), takhin_partition_for_key("12345", 5, 10));
  exec_err_exact(db, "takhin_partition_for_key: key is NULL", "SELECT takhin_partition_for_key(NULL, 4)");
  exec_err_exact(db, "takhin_partition_for_key: partitions must be >= 1", "SELECT takhin_partition_for_key('k', 0)");
  exec_err_exact(db, "takhin_partition_for_key: partitions must be an integer, got text",
                 "SELECT takhin_partition_for_key('k', 'four')");
  sqlite3_close(db);
}

/* retention by time uses the records' timestamps, not file times */
Test(sql, retention_by_time) {
  const char *path = tu_store_path("sql_retention_time");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE old USING takhin(partitions=1, segment_bytes=200, retention_ms=86400000)");
  for (int i = 0; i < 10; i++) /* year 2001: long past any retention */
    exec_ok(db, "INSERT INTO old(key, value, timestamp) VALUES ('k%d', 'v', %lld)", i, 1000000000000LL + i);
  int64_t segs = q_int(db, "SELECT segments FROM takhin_partitions WHERE topic = 'old'");
  cr_assert_gt(segs, 2);
  int64_t sealed = q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 'old' AND sealed");
  cr_assert_eq(sealed, segs - 1);
  cr_assert_eq(q_int(db, "SELECT segments_deleted FROM takhin_retention('old')"), sealed);
  EXPECT_ROWS(db, "1|0\n", "SELECT count(*), sum(sealed) FROM takhin_segments WHERE topic = 'old'");
  EXPECT_ROWS(db, "10\n", "SELECT high_watermark FROM takhin_partitions WHERE topic = 'old'");
  sqlite3_close(db);
}

/* ---- bad input ---------------------------------------------------------------- */

Test(sql, bad_input_clear_errors_nothing_written) {
  const char *path = tu_store_path("sql_bad");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=2, max_message_bytes=1000)");
  exec_ok(db, "INSERT INTO t(partition, key, value, timestamp) VALUES (0, 'k', 'v', 1)");
  /* unknown topic */
  exec_err(db, "no such table: nope", "SELECT * FROM nope");
  exec_err_exact(db, "takhin: unknown topic \"nope\" (no such topic, partition, group or record)",
                 "INSERT INTO takhin_messages(topic, key, value) VALUES ('nope', 'k', 'v')");
  /* wrong types and NULLs where a value is required */
  exec_err_exact(db, "takhin: partition must be an integer (or NULL to let the key choose)",
                 "INSERT INTO t(partition, key, value) VALUES ('1', 'k', 'v')");
  exec_err(db, "partition must be an integer", "INSERT INTO t(partition, key, value) VALUES (1.0, 'k', 'v')");
  exec_err(db, "partition must be an integer", "INSERT INTO t(partition, key, value) VALUES (x'01', 'k', 'v')");
  exec_err_exact(db, "takhin: partition 2 out of range [0, 2) for topic \"t\"",
                 "INSERT INTO t(partition, key, value) VALUES (2, 'k', 'v')");
  exec_err(db, "partition -1 out of range", "INSERT INTO t(partition, key, value) VALUES (-1, 'k', 'v')");
  exec_err_exact(db, "takhin: offset is assigned by the log; leave it out of the INSERT",
                 "INSERT INTO t(offset, key, value) VALUES (5, 'k', 'v')");
  exec_err_exact(db, "takhin: timestamp must be a non-negative integer (ms since the epoch) or NULL for now",
                 "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', -5)");
  exec_err(db, "timestamp must be a non-negative integer", "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', 'today')");
  exec_err(db, "timestamp must be a non-negative integer", "INSERT INTO t(key, value, timestamp) VALUES ('k', 'v', 1.5)");
  exec_err_exact(db, "takhin_messages: topic must be text naming a topic",
                 "INSERT INTO takhin_messages(topic, key, value) VALUES (NULL, 'k', 'v')");
  exec_err(db, "topic must be text", "INSERT INTO takhin_messages(topic, key, value) VALUES (5, 'k', 'v')");
  exec_err(db, "unknown topic", "INSERT INTO takhin_messages(topic, key, value) VALUES ('bad name', 'k', 'v')");
  /* an oversized record */
  exec_err_exact(db, "takhin: record of 1201 bytes is larger than max_message_bytes 1000 of topic \"t\" "
                     "(record batch larger than max_message_bytes)",
                 "INSERT INTO t(key, value) VALUES ('k', zeroblob(1200))");
  exec_err(db, "larger than max_message_bytes", "INSERT INTO t(key, value, headers) VALUES ('k', 'v', "
                                                "'[[\"h\",\"' || printf('%%.*c', 1000, 'x') || '\"]]')");
  exec_err(db, "larger than max_message_bytes 1000",
           "INSERT INTO t(partition, key, value) VALUES (0, 'ok', 'v'), (1, 'k', zeroblob(1200))");
  exec_err(db, "larger than max_message_bytes", "INSERT INTO t(partition, key, value) VALUES (0, 'k', zeroblob(980))");
  exec_ok(db, "CREATE VIRTUAL TABLE big USING takhin(partitions=1)");
  exec_err(db, "larger than max_message_bytes 1048588", "INSERT INTO big(key, value) VALUES ('k', zeroblob(2000000))");
  /* nothing was written */
  EXPECT_ROWS(db, "0|1\n1|0\n", "SELECT partition, high_watermark FROM takhin_partitions WHERE topic = 't'");
  EXPECT_ROWS(db, "0|0\n", "SELECT high_watermark, size_bytes FROM takhin_partitions WHERE topic = 'big'");
  EXPECT_ROWS(db, "0|0|k\n", "SELECT partition, offset, key FROM t");
  /* SELECT with values of the wrong type matches nothing rather than failing */
  EXPECT_ROWS(db, "", "SELECT * FROM t WHERE partition = 'x'");
  EXPECT_ROWS(db, "", "SELECT * FROM t WHERE offset = NULL");
  sqlite3_close(db);
}

/* SELECT naming a topic that does not exist is an error, as INSERT is. */
Test(sql, select_unknown_topic_is_an_error) {
  const char *path = tu_store_path("sql_unknown_select");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  exec_err(db, "unknown topic \"nope\"", "SELECT * FROM takhin_messages WHERE topic = 'nope'");
  sqlite3_close(db);
}

/* A topic deleted behind the table's back (through the C API, then another
** connection): every use names the problem, nothing crashes, and DROP TABLE
** still cleans up. */
Test(sql, topic_deleted_by_another_connection) {
  const char *path = tu_store_path("sql_deleted");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE gone USING takhin(partitions=2)");
  exec_ok(db, "INSERT INTO gone(partition, key, value, timestamp) VALUES (0,'a','1',1),(1,'b','2',2)");
  sqlite3_close(db);
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(takhin_topic_delete(s, "gone"), TAKHIN_OK);
  takhin_close(s);
  db = db_open(path);
  exec_err(db, "unknown topic \"gone\"", "SELECT * FROM gone");
  exec_err(db, "unknown topic \"gone\"", "SELECT count(*) FROM gone WHERE partition = 1 AND offset = 0");
  exec_err(db, "unknown topic \"gone\"", "INSERT INTO gone(key, value) VALUES ('k', 'v')");
  exec_err(db, "unknown topic \"gone\"", "DELETE FROM gone WHERE offset < 1");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_partitions WHERE topic = 'gone'");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_messages");
  exec_ok(db, "DROP TABLE gone");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'gone'");
  sqlite3_close(db);
}

/* The same while both are open: a C API writer in this process deletes the
** topic under a SQL reader that is in the middle of a scan. */
Test(sql, topic_deleted_while_sql_reads) {
  const char *path = tu_store_path("sql_deleted_live");
  takhin_store *w = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(w, "live", 1, (const char *const[]){"segment_bytes", "300", NULL}), TAKHIN_OK);
  for (int i = 0; i < 20; i++) {
    takhin_record r = {.key = "k", .key_len = 1, .value = "value", .value_len = 5, .timestamp = i};
    cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  }
  sqlite3 *db = db_open(path); /* the writer holds the store: this connection reads */
  exec_ok(db, "CREATE VIRTUAL TABLE live USING takhin");
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT offset, value FROM live", -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(takhin_topic_delete(w, "live"), TAKHIN_OK);
  int rc, rows = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) rows++;
  cr_assert(rc == SQLITE_DONE || rc == SQLITE_ERROR, "the scan ends or fails cleanly (%d: %s)", rc, sqlite3_errmsg(db));
  cr_assert_leq(rows, 20);
  sqlite3_finalize(st);
  sqlite3_close(db);
  takhin_close(w);
}

/* A connection reading beside a writer notices that the writer deleted a
** topic, and that a new topic of the same name is another log. */
Test(sql, reader_sees_topic_deleted_and_recreated_by_writer) {
  const char *path = tu_store_path("sql_deleted_reader");
  takhin_store *w = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(w, "live", 1, NULL), TAKHIN_OK);
  for (int i = 0; i < 5; i++) {
    takhin_record r = {.key = "old", .key_len = 3, .value = "v", .value_len = 1, .timestamp = i};
    cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  }
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE live USING takhin");
  EXPECT_ROWS(db, "5\n", "SELECT count(*) FROM live");
  cr_assert_eq(takhin_topic_delete(w, "live"), TAKHIN_OK);
  exec_err(db, "unknown topic \"live\"", "SELECT * FROM live");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_partitions");
  exec_err(db, "live", "INSERT INTO live(key, value) VALUES ('k', 'v')");
  cr_assert_eq(takhin_topic_create(w, "live", 1, NULL), TAKHIN_OK);
  takhin_record r = {.key = "new", .key_len = 3, .value = "v", .value_len = 1, .timestamp = 99};
  cr_assert_eq(takhin_produce(w, "live", 0, &r, 1, NULL), TAKHIN_OK);
  EXPECT_ROWS(db, "0|new|99\n", "SELECT offset, key, timestamp FROM live");
  sqlite3_close(db);
  takhin_close(w);
}

/* ---- security: DIRECTONLY -------------------------------------------------- */

/* Whatever reads or writes the store's files is usable only in top-level
** SQL, never from a view or trigger that someone else's schema may hold. */
Test(sql, directonly_views_and_triggers_refused) {
  const char *path = tu_store_path("sql_directonly");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE orders USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO orders(key, value, timestamp) VALUES ('k', 'v', 1)");
  exec_ok(db, "CREATE TABLE app(x)");
  /* views: creating one is allowed, using it is not */
  const char *views[][2] = {
      {"v1", "SELECT * FROM orders"},
      {"v2", "SELECT * FROM takhin_messages"},
      {"v3", "SELECT * FROM takhin_topics"},
      {"v4", "SELECT * FROM takhin_partitions"},
      {"v5", "SELECT * FROM takhin_segments"},
      {"v6", "SELECT * FROM takhin_group_offsets"},
      {"v7", "SELECT * FROM takhin_retention('orders')"},
      {"v8", "SELECT takhin_commit('g', 'orders', 0, 1)"},
      {"v9", "SELECT takhin_offset_for_time('orders', 0, 0)"},
      {"v10", "SELECT * FROM takhin_compact('orders')"},
  };
  for (size_t i = 0; i < sizeof views / sizeof *views; i++) {
    exec_ok(db, "CREATE VIEW %s AS %s", views[i][0], views[i][1]);
    exec_err(db, "unsafe use of", "SELECT * FROM %s", views[i][0]);
  }
  /* triggers on ordinary tables that write, read or commit */
  const char *bodies[] = {
      "INSERT INTO orders(key, value) VALUES ('from', 'trigger')",
      "SELECT takhin_commit('g', 'orders', 0, 1)",
      "INSERT INTO app SELECT value FROM takhin_messages",
      "DELETE FROM orders WHERE offset < 1",
      "SELECT * FROM takhin_retention('orders')",
  };
  for (int x = 0; x < 5; x++) {
    exec_ok(db, "CREATE TABLE app%d(x)", x);
    exec_ok(db, "CREATE TRIGGER tr%d AFTER INSERT ON app%d BEGIN %s; END", x, x, bodies[x]);
    exec_err(db, "unsafe use of", "INSERT INTO app%d VALUES (1)", x);
  }
  exec_err_exact(db, "unsafe use of virtual table \"orders\"", "INSERT INTO app0 VALUES (1)");
  exec_err_exact(db, "unsafe use of takhin_commit()", "INSERT INTO app1 VALUES (1)");
  /* nothing happened */
  EXPECT_ROWS(db, "k\n", "SELECT key FROM orders");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "0\n", "SELECT log_start_offset FROM takhin_partitions");
  /* pure functions are fine anywhere */
  exec_ok(db, "CREATE VIEW ok AS SELECT takhin_version() AS v, takhin_partition_for_key('k', 3) AS p");
  char want[64];
  snprintf(want, sizeof want, "%s|%d\n", TAKHIN_VERSION, takhin_partition_for_key("k", 1, 3));
  EXPECT_ROWS(db, want, "SELECT * FROM ok");
  sqlite3_close(db);
  /* and stay refused in a fresh connection, where the schema is untrusted */
  db = db_open(path);
  exec_err(db, "unsafe use of", "SELECT * FROM v1");
  exec_err(db, "unsafe use of", "INSERT INTO app1 VALUES (2)");
  sqlite3_close(db);
}

/* ---- processes -------------------------------------------------------------- */

static void send_cmd(int fd, char c) { cr_assert_eq(write(fd, &c, 1), 1); }

static long recv_long(int fd) {
  long v;
  cr_assert_eq(read(fd, &v, sizeof v), (ssize_t)sizeof v, "the other process answered");
  return v;
}

static void put_long(int fd, long v) {
  if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) _exit(90);
}

static int produce_n(takhin_store *s, const char *topic, int part, int first, int n) {
  for (int i = first; i < first + n; i++) {
    char k[16], v[16];
    int kl = snprintf(k, sizeof k, "k%d", i), vl = snprintf(v, sizeof v, "v%d", i);
    takhin_record r = {.key = k, .key_len = (size_t)kl, .value = v, .value_len = (size_t)vl, .timestamp = 1000 + i};
    if (takhin_produce(s, topic, part, &r, 1, NULL)) return -1;
  }
  return 0;
}

/* (a) A C API writer in another process; this process reads through SQL and
** gets "locked by another writer" for everything that would write. */
Test(sql, c_writer_process_sql_reader) {
  const char *path = tu_store_path("sql_proc_cwriter");
  int to_child[2], to_parent[2];
  cr_assert_eq(pipe(to_child), 0);
  cr_assert_eq(pipe(to_parent), 0);
  pid_t pid = fork(); /* before any SQLite connection exists in this process */
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    takhin_store *w;
    if (takhin_open(path, NULL, &w)) _exit(10);
    if (takhin_topic_create(w, "live", 2, NULL)) _exit(11);
    if (produce_n(w, "live", 0, 0, 10) || produce_n(w, "live", 1, 100, 5)) _exit(12);
    put_long(to_parent[1], 1);
    char cmd;
    while (read(to_child[0], &cmd, 1) == 1) {
      if (cmd == 'm') put_long(to_parent[1], produce_n(w, "live", 1, 105, 7));
    }
    takhin_close(w);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  cr_assert_eq(recv_long(to_parent[0]), 1, "the writer is ready");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE live USING takhin"); /* binding needs no writing */
  EXPECT_ROWS(db, "10|0|9\n5|100|104\n",
              "SELECT count(*), min(CAST(substr(key, 2) AS INTEGER)), max(CAST(substr(key, 2) AS INTEGER)) "
              "FROM live GROUP BY partition ORDER BY partition");
  EXPECT_ROWS(db, "0|3|k3|v3|1003\n", "SELECT partition, offset, key, value, timestamp FROM live WHERE partition = 0 AND offset = 3");
  EXPECT_ROWS(db, "live|0|0|10\nlive|1|0|5\n", "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  const char *locked = "takhin: the store is locked by another writer; this connection can only read";
  exec_err_exact(db, locked, "INSERT INTO live(key, value) VALUES ('k', 'v')");
  exec_err_exact(db, locked, "INSERT INTO takhin_messages(topic, key, value) VALUES ('live', 'k', 'v')");
  exec_err(db, "locked by another writer", "CREATE VIRTUAL TABLE other USING takhin(partitions=1)");
  exec_err(db, "locked by another writer", "DELETE FROM live WHERE partition = 0 AND offset < 2");
  exec_err(db, "", "DROP TABLE live"); /* its message: writes_beside_writer_say_locked */
  exec_err(db, "locked by another writer", "SELECT * FROM takhin_retention('live')");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'live'");
  EXPECT_ROWS(db, "live|0|0|10\nlive|1|0|5\n", "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  /* records the writer hands to the OS later show up */
  send_cmd(to_child[1], 'm');
  cr_assert_eq(recv_long(to_parent[0]), 0);
  EXPECT_ROWS(db, "12\n", "SELECT count(*) FROM live WHERE partition = 1");
  EXPECT_ROWS(db, "k111|1111\n", "SELECT key, timestamp FROM live WHERE partition = 1 AND offset = 11");
  close(to_child[1]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer exit status %d", st);
  sqlite3_close(db);
  /* once the writer is gone, a new connection writes */
  db = db_open(path);
  exec_ok(db, "INSERT INTO live(partition, key, value, timestamp) VALUES (0, 'sql', 'v', 1)");
  EXPECT_ROWS(db, "10|sql\n", "SELECT offset, key FROM live WHERE partition = 0 AND offset >= 10");
  sqlite3_close(db);
}

/* takhin_commit and DROP TABLE beside a writer say why they cannot write,
** as INSERT does. */
Test(sql, writes_beside_writer_say_locked) {
  const char *path = tu_store_path("sql_commit_locked");
  takhin_store *w = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(w, "t", 1, NULL), TAKHIN_OK);
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin");
  char *err = NULL;
  sqlite3_exec(db, "SELECT takhin_commit('g', 't', 0, 0)", NULL, NULL, &err);
  cr_expect(err && strstr(err, "locked by another writer"), "takhin_commit: %s", err ? err : "(no error)");
  sqlite3_free(err);
  err = NULL;
  /* SQLite drops xDestroy's message and reports the bare result code, so
  ** the most DROP TABLE can say is SQLITE_READONLY's (or SQLITE_LOCKED's)
  ** text rather than "SQL logic error" */
  sqlite3_exec(db, "DROP TABLE t", NULL, NULL, &err);
  cr_expect(err && (strstr(err, "locked") || strstr(err, "readonly") || strstr(err, "read-only")),
            "DROP TABLE: %s", err ? err : "(no error)");
  sqlite3_free(err);
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 't'");
  sqlite3_close(db);
  int32_t np;
  cr_assert_eq(takhin_topic_partitions(w, "t", &np), TAKHIN_OK);
  takhin_close(w);
}

/* (b) SQL writes, committed; a read-only C API process reads them, sees a
** transaction's rows only after COMMIT, and cannot take the writer lock. */
Test(sql, sql_writer_c_reader_process) {
  const char *path = tu_store_path("sql_proc_sqlwriter");
  int to_child[2], to_parent[2];
  cr_assert_eq(pipe(to_child), 0);
  cr_assert_eq(pipe(to_parent), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    char cmd;
    takhin_store *r = NULL;
    while (read(to_child[0], &cmd, 1) == 1) {
      if (cmd == 'o') { /* open read-only; the writer lock is taken */
        takhin_options o;
        takhin_options_init(&o);
        o.read_only = 1;
        takhin_store *w;
        int lrc = takhin_open(path, NULL, &w);
        put_long(to_parent[1], takhin_open(path, &o, &r) == TAKHIN_OK && lrc == TAKHIN_ELOCKED ? 1 : -lrc);
      } else if (cmd == 'c') { /* count the records of both partitions */
        long n = 0;
        for (int p = 0; p < 2; p++) {
          takhin_cursor *c;
          takhin_message m;
          if (takhin_cursor_open(r, "w", p, &c)) _exit(20);
          while (takhin_cursor_next(c, &m) == TAKHIN_OK) n++;
          takhin_cursor_close(c);
        }
        put_long(to_parent[1], n);
      } else if (cmd == 'b') { /* the bytes of w-1 offset 0 */
        takhin_cursor *c;
        takhin_message m;
        takhin_header h;
        long ok = takhin_cursor_open(r, "w", 1, &c) == TAKHIN_OK && takhin_cursor_next(c, &m) == TAKHIN_OK &&
                  m.key == NULL && m.value_len == 2 && !memcmp(m.value, "\x00\xff", 2) && m.n_headers == 1 &&
                  takhin_message_header(&m, 0, &h) == TAKHIN_OK && h.key_len == 5 && !memcmp(h.key, "trace", 5) &&
                  m.timestamp == 1700000000000LL;
        takhin_cursor_close(c);
        put_long(to_parent[1], ok);
      } else if (cmd == 's') { /* the log start of w-0 */
        takhin_partition_info pi;
        put_long(to_parent[1], takhin_partition_info_get(r, "w", 0, &pi) ? -1 : (long)pi.log_start_offset);
      }
    }
    takhin_close(r);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE w USING takhin(partitions=2)");
  exec_ok(db, "INSERT INTO w(partition, key, value, timestamp) VALUES (0,'a','1',1),(0,'b','2',2),(0,'c','3',3)");
  exec_ok(db, "INSERT INTO w(partition, key, value, timestamp, headers) VALUES (1, NULL, x'00ff', 1700000000000, '[[\"trace\",\"abc\"]]')");
  send_cmd(to_child[1], 'o');
  cr_assert_eq(recv_long(to_parent[0]), 1, "the reader opens read-only, and the writer lock is held");
  send_cmd(to_child[1], 'c');
  cr_assert_eq(recv_long(to_parent[0]), 4);
  send_cmd(to_child[1], 'b');
  cr_assert_eq(recv_long(to_parent[0]), 1, "the reader sees the exact bytes and headers");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO w(partition, key, value, timestamp) VALUES (0,'d','4',4),(1,'e','5',5)");
  send_cmd(to_child[1], 'c');
  cr_assert_eq(recv_long(to_parent[0]), 4, "nothing before COMMIT");
  exec_ok(db, "COMMIT");
  send_cmd(to_child[1], 'c');
  cr_assert_eq(recv_long(to_parent[0]), 6, "the transaction's rows after COMMIT");
  exec_ok(db, "DELETE FROM w WHERE partition = 0 AND offset < 2");
  send_cmd(to_child[1], 's');
  cr_assert_eq(recv_long(to_parent[0]), 2, "the reader sees the new log start");
  send_cmd(to_child[1], 'c');
  cr_assert_eq(recv_long(to_parent[0]), 4);
  close(to_child[1]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader exit status %d", st);
  sqlite3_close(db);
}

/* A failed COMMIT lands nothing, also when the rows span several topics
** (takhin_messages) or several tables: the appends made before the failing
** one are taken back. */
Test(sql, failed_commit_across_topics_lands_nothing) {
  const char *path = tu_store_path("sql_txn_fail_topics");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=1, max_message_bytes=200)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('a', 'k', 'small')");
  exec_ok(db, "INSERT INTO takhin_messages(topic, key, value) VALUES ('b', 'k', zeroblob(170))");
  exec_err(db, "larger than max_message_bytes", "COMMIT");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM a");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO a(key, value) VALUES ('k', 'small')");
  exec_ok(db, "INSERT INTO b(key, value) VALUES ('k', zeroblob(170))");
  exec_err(db, "larger than max_message_bytes", "COMMIT");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM a");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM a");
  sqlite3_close(db);
}

/* ---- the examples: shell session, Python, sql/README.md --------------------- */

Test(sql, shell_session_matches_expected) {
  if (system("command -v sqlite3 > /dev/null 2>&1") != 0) cr_skip_test("no sqlite3 shell on PATH");
  const char *path = tu_store_path("sql_shell");
  char dir[4096], out[4200], err[4200], cmd[32768];
  db_dir(path, dir, sizeof dir);
  snprintf(out, sizeof out, "%s/stdout", dir);
  snprintf(err, sizeof err, "%s/stderr", dir);
  char pre[4200];
  host_prefix(pre, sizeof pre);
  snprintf(cmd, sizeof cmd, "cd '%s' && %ssqlite3 -batch -cmd '.load %s' store.db < '%s/examples/shell_session.sql' > '%s' 2> '%s'",
           dir, pre, EXT_PATH, TAKHIN_SOURCE_DIR, out, err);
  int st = system(cmd);
  size_t nerr = 0, ngot = 0, nwant = 0;
  char *e = read_file(err, &nerr);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sqlite3 exit status %d; stderr:\n%s", st, e ? e : "");
  cr_assert_eq(nerr, 0, "the session prints no errors:\n%s", e);
  char *got = read_file(out, &ngot);
  char *want = read_file(TAKHIN_SOURCE_DIR "/examples/shell_session.expected", &nwant);
  cr_assert(got && want);
  if (ngot != nwant || memcmp(got, want, ngot)) {
    snprintf(cmd, sizeof cmd, "diff -u '%s/examples/shell_session.expected' '%s' >&2", TAKHIN_SOURCE_DIR, out);
    if (system(cmd)) { /* the diff is the message */ }
    cr_assert_fail("stdout differs from examples/shell_session.expected (diff above)");
  }
  free(e);
  free(got);
  free(want);
}

Test(sql, python_example_runs) {
  if (access("/usr/bin/python3", X_OK) != 0) cr_skip_test("no /usr/bin/python3");
  const char *path = tu_store_path("sql_python");
  char dir[4096], out[4200], cmd[32768];
  db_dir(path, dir, sizeof dir);
  snprintf(out, sizeof out, "%s/out", dir);
  char pre[4200];
  host_prefix(pre, sizeof pre);
  snprintf(cmd, sizeof cmd, "%s/usr/bin/python3 '%s/examples/python_example.py' '%s' '%s' > '%s' 2>&1",
           pre, TAKHIN_SOURCE_DIR, path, EXT_PATH, out);
  int st = system(cmd);
  char *o = read_file(out, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python exit status %d:\n%s", st, o ? o : "");
  cr_assert(strstr(o, "takhin " TAKHIN_VERSION "\n"), "%s", o);
  cr_assert(strstr(o, "row (0, 0, 1700000000000, 'user-1', '{\"total\":10}', '[]')\n"), "%s", o);
  cr_assert(strstr(o, "blob True bytes\n"), "%s", o);
  cr_assert(strstr(o, "headers True\n"), "json.dumps headers read back by json.loads:\n%s", o);
  cr_assert(strstr(o, "refused: takhin: records are immutable"), "%s", o);
  free(o);
  /* it runs as ./examples/python_example.py (shebang /usr/bin/python3) */
  cr_assert_eq(access(TAKHIN_SOURCE_DIR "/examples/python_example.py", X_OK), 0,
               "examples/python_example.py is not executable");
  /* A Python whose sqlite3 lacks enable_load_extension (pyenv's default
  ** build), faked by hiding the method: the script names the fix. */
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c 'import runpy, sqlite3, sys; sqlite3.Connection = type(\"Connection\", (), {}); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\"__main__\")' "
           "'%s/examples/python_example.py' '%s' '%s' > '%s' 2>&1",
           TAKHIN_SOURCE_DIR, path, EXT_PATH, out);
  st = system(cmd);
  o = read_file(out, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "python exit status %d:\n%s", st, o ? o : "");
  cr_assert(strstr(o, "cannot load SQLite extensions: it was built without enable_load_extension") &&
                strstr(o, "Run it with Debian's /usr/bin/python3"),
            "%s", o);
  free(o);
  /* what Python wrote is there for SQL and C */
  sqlite3 *db = db_open(path);
  EXPECT_ROWS(db, "orders|0|4\norders|1|1\n", "SELECT topic, partition, high_watermark FROM takhin_partitions");
  sqlite3_close(db);
}

/* Render one row as the README shows results: "a|b", NULL as NULL. */
static void readme_row(sqlite3_str *o, sqlite3_stmt *st) {
  for (int i = 0; i < sqlite3_column_count(st); i++) {
    if (i) sqlite3_str_appendchar(o, 1, '|');
    put_value(o, st, i);
  }
  sqlite3_str_appendchar(o, 1, '\n');
}

/* Does text match pattern, where "…" in pattern stands for any text? */
static int ellipsis_match(const char *pat, const char *text) {
  const char *e = strstr(pat, "…");
  if (!e) return !strcmp(pat, text);
  size_t n = (size_t)(e - pat);
  if (strncmp(pat, text, n)) return 0;
  for (const char *t = text + n;; t++) {
    if (ellipsis_match(e + strlen("…"), t)) return 1;
    if (!*t) return 0;
  }
}

/* Every `Error: …` quoted in the prose of sql/README.md (outside ``` blocks)
** must be the message of some example's "-- Error: " line, which
** readme_examples_run checks against what the statement really says: so the
** text cannot quote an error the code does not produce. An error-looking
** quote ("takhin: …", SQLite's generic texts) without the mark fails too. */
static int readme_prose_errors(const char *md, const char *errors, const char *logged) {
  int bad = 0, line = 1, fence = 0;
  for (const char *p = md; *p; p++) {
    if (*p == '\n') {
      line++;
      if (!strncmp(p + 1, "```", 3)) { /* a fence line: skip it whole */
        fence = !fence;
        const char *nl = strchr(p + 1, '\n');
        if (!nl) break;
        p = nl - 1;
      }
      continue;
    }
    if (fence || *p != '`' || p[1] == '`') continue;
    const char *end = strchr(p + 1, '`');
    if (!end) break;
    /* the quote, its line breaks and runs of spaces made single spaces */
    sqlite3_str *o = sqlite3_str_new(NULL);
    for (const char *c = p + 1; c < end; c++) {
      if (*c == '\n' || *c == ' ') {
        while (c + 1 < end && (c[1] == '\n' || c[1] == ' ')) c++;
        sqlite3_str_appendchar(o, 1, ' ');
      } else {
        sqlite3_str_appendchar(o, 1, *c);
      }
    }
    char *q = sqlite3_str_finish(o);
    int is_log = q && !strncmp(q, "Log: ", 5);
    if (q && ((!strncmp(q, "Error: ", 7) && q[7]) || is_log)) {
      int found = 0;
      for (const char *l = is_log ? logged : errors; *l && !found;) {
        const char *nl = strchr(l, '\n');
        char *one = sqlite3_mprintf("%.*s", (int)(nl - l), l);
        found = ellipsis_match(q + (is_log ? 5 : 7), one);
        sqlite3_free(one);
        l = nl + 1;
      }
      if (!found) {
        cr_log_error("sql/README.md:%d: `%s` is not the error of any example (add one that produces it)", line, q);
        bad++;
      }
    } else if (q && (!strncmp(q, "takhin: ", 8) || strstr(q, "SQL logic error") || strstr(q, "unsafe use") ||
                     strstr(q, "read-only") || strstr(q, "readonly"))) {
      cr_log_error("sql/README.md:%d: `%s` looks like an error message: quote it as `Error: ...` so the "
                   "test checks it", line, q);
      bad++;
    }
    for (const char *c = p + 1; c < end; c++) line += *c == '\n';
    sqlite3_free(q);
    p = end;
  }
  return bad;
}

/* Every ```sql block of sql/README.md, in order, on one fresh store. Lines
** starting with "." are shell commands and skipped. The "-- " lines right
** after a statement (on the lines that follow the one it ends on) are its
** result: rows as a|b|c (EXPLAIN QUERY PLAN: the detail of each line), or
** "Error: <message>". A statement without them must succeed and return no
** rows. A block whose first line is "-- connection: reader" runs on a
** second connection, which finds the store held by the first and reads. */
static void readme_log(void *arg, int code, const char *msg) {
  (void)code;
  sqlite3_str_appendf(arg, "%s\n", msg);
}

Test(sql, readme_examples_run) {
  /* what goes to SQLite's error log, for the README's `Log: …` quotes */
  sqlite3_str *logged = sqlite3_str_new(NULL);
  sqlite3_shutdown();
  cr_assert_eq(sqlite3_config(SQLITE_CONFIG_LOG, readme_log, logged), SQLITE_OK);
  cr_assert_eq(sqlite3_initialize(), SQLITE_OK);
  const char *path = tu_store_path("sql_readme");
  /* the topic the binding example says a C program made */
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(s, "clicks", 2, NULL), TAKHIN_OK);
  takhin_record r[3] = {{.key = "u1", .key_len = 2, .value = "/home", .value_len = 5, .timestamp = 1700000000000},
                        {.key = "u2", .key_len = 2, .value = "/cart", .value_len = 5, .timestamp = 1700000001000},
                        {.key = "u1", .key_len = 2, .value = "/pay", .value_len = 4, .timestamp = 1700000002000}};
  cr_assert_eq(takhin_produce(s, "clicks", 0, r, 2, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_produce(s, "clicks", 1, r + 2, 1, NULL), TAKHIN_OK);
  takhin_close(s);

  size_t len;
  char *md = read_file(TAKHIN_SOURCE_DIR "/sql/README.md", &len);
  cr_assert(md, "sql/README.md exists");
  sqlite3 *writer = db_open(path), *reader = NULL;
  sqlite3_str *errors = sqlite3_str_new(NULL); /* every "-- Error: " message */
  int blocks = 0, stmts = 0, failures = 0;
  char *p = md;
  while ((p = strstr(p, "```sql\n"))) {
    p += 7;
    sqlite3 *db = writer;
    if (!strncmp(p, "-- connection: reader\n", 22)) {
      if (!reader) reader = db_open(path);
      db = reader;
    }
    char *end = strstr(p, "\n```");
    cr_assert(end, "unterminated ```sql block");
    size_t n = (size_t)(end - p) + 1;
    char *sql = malloc(n + 1);
    memcpy(sql, p, n);
    sql[n] = 0;
    for (char *line = sql; *line;) { /* blank out shell dot-commands */
      char *nl = strchr(line, '\n');
      if (*line == '.') memset(line, ' ', nl ? (size_t)(nl - line) : strlen(line));
      if (!nl) break;
      line = nl + 1;
    }
    int line_no = 1;
    for (const char *q0 = md; q0 < p; q0++) line_no += *q0 == '\n';
    blocks++;
    const char *at = sql;
    for (;;) {
      sqlite3_stmt *st = NULL;
      const char *tail = NULL;
      int rc = sqlite3_prepare_v2(db, at, -1, &st, &tail);
      sqlite3_str *got = sqlite3_str_new(NULL);
      if (rc != SQLITE_OK) {
        sqlite3_str_appendf(got, "Error: %s\n", sqlite3_errmsg(db));
        tail = at + strcspn(at, ";");
        if (*tail) tail++;
      } else if (!st) {
        sqlite3_free(sqlite3_str_finish(got));
        break; /* only comments and blanks left */
      } else {
        int eqp = sqlite3_stmt_isexplain(st) == 2; /* EXPLAIN QUERY PLAN: its detail column */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
          if (eqp) sqlite3_str_appendf(got, "%s\n", sqlite3_column_text(st, 3));
          else readme_row(got, st);
        }
        if (rc != SQLITE_DONE) {
          sqlite3_str_reset(got);
          sqlite3_str_appendf(got, "Error: %s\n", sqlite3_errmsg(db));
        }
      }
      stmts++;
      /* the result lines: after the end of the statement's last line */
      sqlite3_str *want = sqlite3_str_new(NULL);
      const char *e = tail;
      while (*e == ' ' || *e == '\t') e++;
      if (*e == '\n' || *e == 0 || (e[0] == '-' && e[1] == '-')) {
        e = strchr(e, '\n');
        while (e && !strncmp(e + 1, "-- ", 3)) {
          const char *l = e + 4, *nl = strchr(l, '\n');
          sqlite3_str_append(want, l, nl ? (int)(nl - l) : (int)strlen(l));
          sqlite3_str_appendchar(want, 1, '\n');
          if (!strncmp(l, "Error: ", 7)) {
            sqlite3_str_append(errors, l + 7, nl ? (int)(nl - l - 7) : (int)strlen(l + 7));
            sqlite3_str_appendchar(errors, 1, '\n');
          }
          e = nl;
        }
      }
      char *g = sqlite3_str_finish(got), *w = sqlite3_str_finish(want);
      const char *gs = g ? g : "", *ws = w ? w : "";
      if (strcmp(gs, ws)) {
        int stmt_line = line_no;
        for (const char *q0 = sql; q0 < tail; q0++) stmt_line += *q0 == '\n';
        char *text = sqlite3_mprintf("%.*s", (int)(tail - at), at);
        cr_log_error("sql/README.md:%d: %s\n--- got:\n%s--- the README shows:\n%s", stmt_line, text, gs, ws);
        sqlite3_free(text);
        failures++;
      }
      sqlite3_free(g);
      sqlite3_free(w);
      sqlite3_finalize(st);
      at = tail;
    }
    free(sql);
    p = end + 4;
  }
  cr_assert_eq(failures, 0, "%d README example(s) do not match (see above)", failures);
  cr_assert_geq(blocks, 15, "README examples found: %d blocks, %d statements", blocks, stmts);
  cr_assert(reader, "sql/README.md has a -- connection: reader block");
  char *errs = sqlite3_str_finish(errors);
  sqlite3_close(reader);
  sqlite3_close(writer);
  /* logged stays allocated: SQLite's log callback holds it to the end */
  char *logs = sqlite3_str_value(logged);
  int bad = readme_prose_errors(md, errs ? errs : "", logs ? logs : "");
  cr_assert_eq(bad, 0, "%d error text(s) quoted in sql/README.md are not checked (see above)", bad);
  sqlite3_free(errs);
  /* one section per table and function */
  const char *names[] = {"takhin_messages", "takhin_topics", "takhin_partitions", "takhin_segments",
                         "takhin_group_offsets", "takhin_retention", "takhin_compact", "takhin_commit",
                         "takhin_offset_for_time",
                         "takhin_partition_for_key", "takhin_version", "CREATE VIRTUAL TABLE"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char *h = sqlite3_mprintf("\n## %s", names[i]);
    char *h3 = sqlite3_mprintf("\n### %s", names[i]);
    cr_assert(strstr(md, h) || strstr(md, h3), "sql/README.md has a section for %s", names[i]);
    sqlite3_free(h);
    sqlite3_free(h3);
  }
  free(md);
}

/* ---- the build and the connection ------------------------------------------- */

/* The extension uses the host's SQLite: no libsqlite3 of its own. */
Test(sql, extension_links_no_sqlite) {
  char cmd[8192], line[4096];
  snprintf(cmd, sizeof cmd, "readelf -d '%s.so' 2>&1", EXT_PATH);
  FILE *f = popen(cmd, "r");
  cr_assert(f);
  int needed = 0, sqlite = 0;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "(NEEDED)")) needed++;
    if (strstr(line, "(NEEDED)") && strstr(line, "sqlite")) sqlite++;
  }
  int st = pclose(f);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) || !needed) cr_skip_test("readelf is not available");
  cr_assert_eq(sqlite, 0, "takhin.so must not need a libsqlite3");
  /* the only exported symbol a host needs is the entry point */
  snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s.so' 2>/dev/null | grep -c ' T '", EXT_PATH);
  f = popen(cmd, "r");
  cr_assert(f);
  int exported = 0;
  if (fgets(line, sizeof line, f)) exported = atoi(line);
  pclose(f);
  if (exported) {
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s.so' | grep -q ' T sqlite3_takhin_init$'", EXT_PATH);
    cr_assert_eq(system(cmd), 0, "sqlite3_takhin_init is exported");
  }
}

/* Two connections of one process: the first to use the store writes, the
** second reads beside it. */
Test(sql, two_connections_one_writer) {
  const char *path = tu_store_path("sql_two_conns");
  sqlite3 *a = db_open(path);
  exec_ok(a, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  exec_ok(a, "INSERT INTO t(key, value, timestamp) VALUES ('a', '1', 1)");
  sqlite3 *b = db_open(path);
  EXPECT_ROWS(b, "a\n", "SELECT key FROM t");
  exec_err(b, "locked by another writer", "INSERT INTO t(key, value) VALUES ('b', '2')");
  exec_ok(a, "INSERT INTO t(key, value, timestamp) VALUES ('c', '3', 3)");
  EXPECT_ROWS(b, "a\nc\n", "SELECT key FROM t");
  EXPECT_ROWS(b, "t|0|0|2\n", "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  sqlite3_close(b);
  sqlite3_close(a);
}

/* The extension means the database to be in WAL mode once it has opened
** the store (so readers in other processes do not wait for it). */
Test(sql, first_use_switches_to_wal) {
  const char *path = tu_store_path("sql_wal");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions=1)");
  EXPECT_ROWS(db, "wal\n", "PRAGMA journal_mode");
  sqlite3_close(db);
}

static int count_commit(void *arg) {
  ++*(int *)arg;
  return 0; /* let it commit */
}

/* takhin_compact and takhin_retention, called from a SELECT, group their
** catalog changes into a few transactions of their own (a savepoint), not
** one per row: the swap of every rewritten segment is one commit, as in the
** C API. Inside the user's transaction they are refused: a ROLLBACK would
** restore catalog rows for files already rewritten or deleted. */
Test(sql, compaction_commits_atomically_and_not_inside_a_transaction) {
  const char *path = tu_store_path("sql_compact_tx");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact,delete', segment_bytes=300, retention_ms=1)");
  for (int i = 0; i < 400; i++) /* one batch each: a transaction would make one batch of them */
    exec_ok(db, "INSERT INTO t(key, value, timestamp) VALUES ('k%d', 'value-%d', %d)", i % 7, i, 1000 + i);
  int64_t segs = q_int(db, "SELECT count(*) FROM takhin_segments WHERE topic = 't'");
  cr_assert_gt(segs, 20, "many segments, each with catalog rows to rewrite");

  exec_ok(db, "BEGIN");
  exec_err(db, "run it outside a transaction", "SELECT * FROM takhin_compact('t')");
  exec_err(db, "run it outside a transaction", "SELECT * FROM takhin_retention('t')");
  exec_ok(db, "ROLLBACK");

  int commits = 0;
  sqlite3_commit_hook(db, count_commit, &commits);
  int64_t compacted = q_int(db, "SELECT segments_compacted FROM takhin_compact('t')");
  cr_assert_gt(compacted, 10);
  /* the tombstone clock, the swap (every segment's rows), the swap rows'
  ** removal: a handful, whatever the number of segments and rows */
  cr_assert_leq(commits, 5, "%d commits for %lld rewritten segments", commits, (long long)compacted);
  EXPECT_ROWS(db, "k0|399\nk1|393\nk2|394\nk3|395\nk4|396\nk5|397\nk6|398\n",
              "SELECT key, offset FROM t ORDER BY key");
  commits = 0;
  int64_t deleted = q_int(db, "SELECT segments_deleted FROM takhin_retention('t')");
  cr_assert_gt(deleted, 0);
  cr_assert_leq(commits, 2, "%d commits for %lld deleted segments", commits, (long long)deleted);
  sqlite3_commit_hook(db, NULL, NULL);
  sqlite3_close(db);
  /* and the C API opens what SQL left, with the same records */
  takhin_store *s = c_open(path, 0);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 400);
  takhin_close(s);
}

/* Refused also inside a statement that writes: INSERT ... SELECT would roll
** the catalog back on a failed row while the files stay rewritten. */
Test(sql, compaction_refused_inside_a_writing_statement) {
  const char *path = tu_store_path("sql_compact_insert_select");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact,delete', segment_bytes=300)");
  for (int i = 0; i < 50; i++)
    exec_ok(db, "INSERT INTO t(key, value, timestamp) VALUES ('k%d', 'value-%d', %d)", i % 3, i, 1000 + i);
  exec_ok(db, "CREATE TABLE res(a, b, c, d, e)");
  exec_err(db, "run it outside a transaction", "INSERT INTO res SELECT * FROM takhin_compact('t')");
  exec_err(db, "run it outside a transaction", "INSERT INTO res(a, b) SELECT * FROM takhin_retention('t')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM res");
  cr_assert_gt(q_int(db, "SELECT segments_compacted FROM takhin_compact('t')"), 0, "alone, it runs");
  sqlite3_close(db);
}

/* The catalog writes a COMMIT makes (the index rows of what it appends)
** never open a savepoint of their own: if one failed, rolling back to it
** would take the user's whole transaction with it. Here the key rows are
** refused by a trigger; the user's rows in an ordinary table must stay. */
Test(sql, catalog_failure_at_commit_keeps_the_users_transaction) {
  const char *path = tu_store_path("sql_commit_catalog_failure");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact')");
  exec_ok(db, "CREATE TABLE o(x)");
  exec_ok(db, "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.takhin_cat_key "
              "BEGIN SELECT RAISE(ABORT, 'catalog write refused'); END");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO o VALUES (1)");
  exec_ok(db, "INSERT INTO t(key, value) VALUES ('a', '1'), ('b', '2')");
  sqlite3_sleep(1200); /* past the catalog's write interval: the COMMIT persists */
  exec_ok(db, "COMMIT");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM o");
  EXPECT_ROWS(db, "a|1\nb|2\n", "SELECT key, value FROM t ORDER BY offset");
  exec_ok(db, "DROP TRIGGER refuse");
  sqlite3_close(db);
}

/* takhin_flush() writes the catalog rows still pending for what INSERTs
** appended (here, the key rows of a compacted topic), as takhin_flush does
** in C; inside a transaction or a writing statement it is refused. */
Test(sql, flush_writes_pending_catalog_rows) {
  const char *path = tu_store_path("sql_flush");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy='compact')");
  for (int i = 0; i < 30; i++) exec_ok(db, "INSERT INTO t(key, value) VALUES ('k%d', 'v')", i % 10);
  cr_assert_lt(q_int(db, "SELECT count(*) FROM takhin_cat_key"), 10, "key rows are written in batches");
  exec_ok(db, "BEGIN");
  exec_err(db, "outside a transaction", "SELECT takhin_flush()");
  exec_ok(db, "ROLLBACK");
  exec_ok(db, "CREATE TABLE res(x)");
  exec_err(db, "outside a transaction", "INSERT INTO res SELECT takhin_flush()");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_flush()");
  EXPECT_ROWS(db, "10\n", "SELECT count(*) FROM takhin_cat_key");
  EXPECT_ROWS(db, "29\n", "SELECT max(offset) FROM takhin_cat_key");
  exec_err(db, "wrong number of arguments", "SELECT takhin_flush(1)");
  sqlite3_close(db);
}

/* A failed COMMIT on a compacted topic takes back its keys with its
** records: the offsets it had are given to the next records, and a key of
** the taken-back batch must not point at them. */
Test(sql, failed_commit_takes_back_its_keys) {
  const char *path = tu_store_path("sql_txn_fail_keys");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2, max_message_bytes=200, cleanup_policy='compact')");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'pre','x',1)");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'ghost','small',2)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'b',zeroblob(170),2)");
  exec_err(db, "larger than max_message_bytes 200", "COMMIT");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'post','y',3)");
  EXPECT_ROWS(db, "", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'ghost'");
  EXPECT_ROWS(db, "1|y\n", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'post'");
  EXPECT_ROWS(db, "0|x\n", "SELECT offset, value FROM ev WHERE partition = 0 AND key = 'pre'");
  sqlite3_close(db);
}

/* Issue 11: values that strtoll or a silent default would take are refused
** with a message, and nothing is written: spaces and signs in numbers, a
** rowid named by an INSERT, a blob as takhin_commit's metadata. */
Test(sql, lenient_values_refused) {
  const char *path = tu_store_path("sql_lenient");
  sqlite3 *db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  exec_err_exact(db, "option partitions: \" 3\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=' 3')");
  exec_err_exact(db, "option partitions: \"3 \" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions='3 ')");
  exec_err_exact(db, "option partitions: \"+3\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions='+3')");
  exec_err_exact(db, "option partitions: \"99999999999999999999\" is not an integer in [1, 100000]",
                 "CREATE VIRTUAL TABLE t USING takhin(partitions=99999999999999999999)");
  exec_err(db, "config segment_bytes: \" 100\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(segment_bytes=' 100')");
  exec_err(db, "config segment_bytes: \"+100\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(segment_bytes='+100')");
  exec_err(db, "config retention_ms: \"99999999999999999999\" is not an integer",
           "CREATE VIRTUAL TABLE t USING takhin(retention_ms=99999999999999999999)");
  exec_err(db, "config min_cleanable_dirty_ratio: \" 0.5\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio=' 0.5')");
  exec_err(db, "config min_cleanable_dirty_ratio: \"nan\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio='nan')");
  exec_err(db, "config min_cleanable_dirty_ratio: \"0x0.8\"",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio='0x0.8')");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  exec_ok(db, "CREATE VIRTUAL TABLE t USING takhin(partitions='2', min_cleanable_dirty_ratio='.25')");
  /* an INSERT that names rowid: refused, not silently ignored */
  exec_err(db, "INSERT cannot set rowid", "INSERT INTO t(rowid, key, value) VALUES (5, 'k', 'v')");
  exec_err(db, "INSERT cannot set rowid", "INSERT INTO t(rowid, partition, key, value) VALUES (1, 0, 'k', 'v')");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM t");
  exec_ok(db, "INSERT INTO t(partition, key, value) VALUES (0, 'k', 'v')");
  /* takhin_commit's metadata is text or NULL */
  exec_err_exact(db, "takhin_commit: metadata must be text or NULL",
                 "SELECT takhin_commit('g', 't', 0, 1, x'6869')");
  exec_err_exact(db, "takhin_commit: metadata must be text or NULL",
                 "SELECT takhin_commit('g', 't', 0, 1, 42)");
  exec_err_exact(db, "takhin_commit: group must be text", "SELECT takhin_commit(x'67', 't', 0, 1)");
  exec_err_exact(db, "takhin_commit: topic must be text", "SELECT takhin_commit('g', x'74', 0, 1)");
  EXPECT_ROWS(db, "", "SELECT * FROM takhin_group_offsets");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_commit('g', 't', 0, 1, NULL)");
  EXPECT_ROWS(db, "1\n", "SELECT takhin_commit('g', 't', 0, 1, 'meta')");
  sqlite3_close(db);
}
