/*
** test_sql_txn.c -- the SQLite extension (build/takhin.so) driven through SQL:
** transactions and savepoints: one batch per partition at COMMIT,
** read back from the segment files; failed commits, chunking, savepoints.
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

#include "sqltest.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

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
    uint32_t len = (uint32_t)tu_get_be(buf + off + 8, 4);
    if (len == 0 && buf[off + 16] == 0) { /* a zeroed, taken-back tail: the log ends here */
      for (long i = off; i < size; i++) cr_assert_eq(buf[i], 0, "byte %ld of the zeroed tail", i);
      size = off;
      break;
    }
    cr_assert_eq(buf[off + 16], 2, "magic of the batch at %ld of %s", off, path);
    if (n < cap) counts[n] = (int)(uint32_t)tu_get_be(buf + off + 57, 4);
    n++;
    off += 12 + (long)len;
  }
  cr_assert_eq(off, size, "batches of %s end at the file's end", path);
  free(buf);
  return n;
}

/* The directory "<db>" lives in, for scratch files beside it. */

/* ---- transactions ---------------------------------------------------------- */

Test(sql, transactions_one_batch_per_partition_at_commit) {
  const char *path = tu_store_path("sql_txn");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=3)");
  int counts[16];
  /* outside a transaction, one INSERT statement is one batch per partition */
  exec_ok(
      db,
      "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','1',1),(0,'b','2',2),(1,'c','3',3)");
  cr_assert_eq(segment_batches(path, "ev", 0, 0, counts, 16), 1);
  cr_assert_eq(counts[0], 2);
  cr_assert_eq(segment_batches(path, "ev", 1, 0, counts, 16), 1);
  cr_assert_eq(counts[0], 1);

  /* inside one: nothing lands before COMMIT, then one batch per partition */
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'d','4',4)");
  exec_ok(db,
          "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'e','5',5),(0,'f','6',6)");
  exec_ok(
      db,
      "INSERT INTO takhin_messages(topic, partition, key, value, timestamp) VALUES ('ev',0,'g','7',7)");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (2,'h','8',8)");
  EXPECT_ROWS(db, "0|2\n1|1\n2|0\n",
              "SELECT partition, high_watermark FROM takhin_partitions WHERE topic = 'ev'");
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
  exec_ok(db,
          "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'x','x',9),(2,'y','y',9)");
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
  exec_err(
      db, "partition 9 out of range",
      "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'bad1','',12),(9,'bad2','',12)");
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
  int64_t size0 =
      q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 'ev' AND partition = 0");
  exec_ok(db, "BEGIN");
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (0,'a','small',2)");
  /* 1 + 170 bytes pass the per-row check, but the batch around it does not */
  exec_ok(db, "INSERT INTO ev(partition, key, value, timestamp) VALUES (1,'b',zeroblob(170),2)");
  exec_err(db, "larger than max_message_bytes 200", "COMMIT");
  cr_assert(sqlite3_get_autocommit(db), "the transaction was rolled back");
  EXPECT_ROWS(
      db, "0|1|0\n1|0|0\n",
      "SELECT partition, high_watermark, log_start_offset FROM takhin_partitions WHERE topic = 'ev'");
  cr_assert_eq(
      q_int(db, "SELECT size_bytes FROM takhin_partitions WHERE topic = 'ev' AND partition = 0"),
      size0);
  /* the taken-back bytes are zeroed in place (readers may map the file),
  ** so they can never be read back as records */
  char seg[4200];
  tu_segment_path(seg, sizeof seg, path, "ev", 0, 0);
  int64_t fsz = tu_file_size(seg);
  cr_assert_geq(fsz, size0);
  FILE *f = fopen(seg, "rb");
  cr_assert_not_null(f);
  fseek(f, size0, SEEK_SET);
  for (int64_t i = size0; i < fsz; i++)
    cr_assert_eq(fgetc(f), 0, "byte %lld after the log is zero", (long long)i);
  fclose(f);
  int counts[4];
  cr_assert_eq(segment_batches(path, "ev", 0, 0, counts, 4), 1,
               "partition 0's append was taken back");
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
