/*
** test_sql_process.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the processes around the extension: a C API writer beside a
** SQL reader and the reverse, and writes beside a writer.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqltest.h"
#include "testutil.h"

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
    takhin_record r = {.key = k,
                       .key_len = (size_t)kl,
                       .value = v,
                       .value_len = (size_t)vl,
                       .timestamp = 1000 + i};
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
  EXPECT_ROWS(
      db, "10|0|9\n5|100|104\n",
      "SELECT count(*), min(CAST(substr(key, 2) AS INTEGER)), max(CAST(substr(key, 2) AS INTEGER)) "
      "FROM live GROUP BY partition ORDER BY partition");
  EXPECT_ROWS(
      db, "0|3|k3|v3|1003\n",
      "SELECT partition, offset, key, value, timestamp FROM live WHERE partition = 0 AND offset = 3");
  EXPECT_ROWS(db, "live|0|0|10\nlive|1|0|5\n",
              "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  const char *locked =
      "takhin: the store is locked by another writer; this connection can only read";
  exec_err_exact(db, locked, "INSERT INTO live(key, value) VALUES ('k', 'v')");
  exec_err_exact(db, locked,
                 "INSERT INTO takhin_messages(topic, key, value) VALUES ('live', 'k', 'v')");
  exec_err(db, "locked by another writer", "CREATE VIRTUAL TABLE other USING takhin(partitions=1)");
  exec_err(db, "locked by another writer", "DELETE FROM live WHERE partition = 0 AND offset < 2");
  exec_err(db, "", "DROP TABLE live"); /* its message: writes_beside_writer_say_locked */
  exec_err(db, "locked by another writer", "SELECT * FROM takhin_retention('live')");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'live'");
  EXPECT_ROWS(db, "live|0|0|10\nlive|1|0|5\n",
              "SELECT topic, partition, log_start_offset, high_watermark FROM takhin_partitions");
  /* records the writer hands to the OS later show up */
  send_cmd(to_child[1], 'm');
  cr_assert_eq(recv_long(to_parent[0]), 0);
  EXPECT_ROWS(db, "12\n", "SELECT count(*) FROM live WHERE partition = 1");
  EXPECT_ROWS(db, "k111|1111\n",
              "SELECT key, timestamp FROM live WHERE partition = 1 AND offset = 11");
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
  cr_expect(err && strstr(err, "locked by another writer"), "takhin_commit: %s",
            err ? err : "(no error)");
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
  /* inside a transaction too: refused at once, not left for a COMMIT that
  ** could not delete the topic */
  exec_ok(db, "BEGIN");
  exec_err_exact(db, "attempt to write a readonly database", "DROP TABLE t");
  EXPECT_ROWS(db, "", "SELECT topic FROM takhin_pending_drops");
  exec_ok(db, "COMMIT");
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
        put_long(to_parent[1],
                 takhin_open(path, &o, &r) == TAKHIN_OK && lrc == TAKHIN_ELOCKED ? 1 : -lrc);
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
        long ok = takhin_cursor_open(r, "w", 1, &c) == TAKHIN_OK &&
                  takhin_cursor_next(c, &m) == TAKHIN_OK && m.key == NULL && m.value_len == 2 &&
                  !memcmp(m.value, "\x00\xff", 2) && m.n_headers == 1 &&
                  takhin_message_header(&m, 0, &h) == TAKHIN_OK && h.key_len == 5 &&
                  !memcmp(h.key, "trace", 5) && m.timestamp == 1700000000000LL;
        takhin_cursor_close(c);
        put_long(to_parent[1], ok);
      } else if (cmd == 's') { /* the log start of w-0 */
        takhin_partition_info pi;
        put_long(to_parent[1],
                 takhin_partition_info_get(r, "w", 0, &pi) ? -1 : (long)pi.log_start_offset);
      }
    }
    takhin_close(r);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE w USING takhin(partitions=2)");
  exec_ok(
      db,
      "INSERT INTO w(partition, key, value, timestamp) VALUES (0,'a','1',1),(0,'b','2',2),(0,'c','3',3)");
  exec_ok(
      db,
      "INSERT INTO w(partition, key, value, timestamp, headers) VALUES (1, NULL, x'00ff', 1700000000000, '[[\"trace\",\"abc\"]]')");
  send_cmd(to_child[1], 'o');
  cr_assert_eq(recv_long(to_parent[0]), 1,
               "the reader opens read-only, and the writer lock is held");
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
