/*
** test_sql_create.c -- the SQLite extension (build/takhin.so) driven through SQL:
** CREATE VIRTUAL TABLE options parsed strictly, topic names as
** table names, and binding a table to topics made by SQL or by the C API.
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
  exec_err(db, "config compression: \"lz4\"",
           "CREATE VIRTUAL TABLE t USING takhin(compression='lz4')");
  exec_err(db, "config cleanup_policy: \"bogus\"",
           "CREATE VIRTUAL TABLE t USING takhin(cleanup_policy=bogus)");
  exec_err(db, "config segment_bytes: \"abc\"",
           "CREATE VIRTUAL TABLE t USING takhin(segment_bytes='abc')");
  exec_err(db, "config segment_bytes", "CREATE VIRTUAL TABLE t USING takhin(segment_bytes=10)");
  exec_err(db, "config retention_ms", "CREATE VIRTUAL TABLE t USING takhin(retention_ms=-2)");
  exec_err(db, "config min_cleanable_dirty_ratio",
           "CREATE VIRTUAL TABLE t USING takhin(min_cleanable_dirty_ratio=2)");
  exec_err_exact(db,
                 "takhin tables live in the main database (the store beside it), not in \"temp\"",
                 "CREATE VIRTUAL TABLE temp.t USING takhin(partitions=1)");
  /* nothing of the failed statements was created */
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 't'");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s-takhin/t-0", path);
  cr_assert(!tu_path_exists(dir), "no partition folder for a refused topic");

  /* every config is accepted, quoted either way, with spaces around '=' */
  exec_ok(
      db,
      "CREATE VIRTUAL TABLE orders USING takhin(partitions = 4, cleanup_policy='compact', "
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
  exec_err_exact(db,
                 "takhin: topic \"fromc\" already exists; bind to it with no arguments: CREATE "
                 "VIRTUAL TABLE \"fromc\" USING takhin",
                 "CREATE VIRTUAL TABLE fromc USING takhin(partitions=2)");
  exec_err_exact(db,
                 "takhin: topic \"nosuch\" does not exist; create it with arguments, e.g. USING "
                 "takhin(partitions=1)",
                 "CREATE VIRTUAL TABLE nosuch USING takhin");
  sqlite3_close(db);
}

Test(sql, bad_topic_names_as_table_names) {
  const char *path = tu_store_path("sql_names");
  sqlite3 *db = db_open(path);
  exec_err(db, "the table name is the topic name: invalid character in topic name \"bad name\"",
           "CREATE VIRTUAL TABLE \"bad name\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name",
           "CREATE VIRTUAL TABLE \"o'rders\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name",
           "CREATE VIRTUAL TABLE \"..\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name",
           "CREATE VIRTUAL TABLE \".\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name",
           "CREATE VIRTUAL TABLE \"a/b\" USING takhin(partitions=1)");
  exec_err(db, "the table name is the topic name", "CREATE VIRTUAL TABLE \"a/b\" USING takhin");
  char longname[260];
  memset(longname, 'x', 250);
  longname[250] = 0;
  exec_err(db, "the table name is the topic name",
           "CREATE VIRTUAL TABLE \"%w\" USING takhin(partitions=1)", longname);
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
  cr_assert_eq(
      takhin_topic_create(s, "events", 3, (const char *const[]){"retention_ms", "-1", NULL}),
      TAKHIN_OK);
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
  EXPECT_ROWS(db, "events|3|-1\n",
              "SELECT name, partitions, retention_ms FROM takhin_topics WHERE name = 'events'");
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
