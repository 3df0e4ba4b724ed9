-- shell_session.sql -- a tour of the takhin SQLite extension in the sqlite3 shell.
--
-- From the repository root, on a fresh database file:
--
--   sqlite3 -cmd '.load ./build/takhin' demo.db < examples/shell_session.sql
--
-- The store lives beside the database: demo.db holds the catalog (and any
-- tables of your own), demo.db-takhin/ the segment files. tests/test_sql.c
-- runs this script and compares what it prints with shell_session.expected,
-- so every timestamp is explicit and nothing printed depends on the clock.
-- See sql/README.md for each table and function.

.headers on
.mode column
.nullvalue NULL

.print "== A topic is a virtual table: CREATE makes the topic, with its configs"
CREATE VIRTUAL TABLE orders USING takhin(partitions=4, compression='zstd', retention_ms=-1);
SELECT name, partitions, cleanup_policy, compression, retention_ms FROM takhin_topics;

.print
.print "== INSERT: the key picks the partition, as Kafka's producer does (murmur2)"
INSERT INTO orders(key, value, timestamp) VALUES
  ('user-1', '{"total":10}', 1700000000000),
  ('user-3', '{"total":25}', 1700000001000),
  ('user-1', '{"total":7}',  1700000002000),
  ('user-6', '{"total":3}',  1700000002500);
SELECT takhin_partition_for_key('user-1', 4) AS "user-1", takhin_partition_for_key('user-3', 4) AS "user-3",
       takhin_partition_for_key('user-6', 4) AS "user-6";

.print
.print "== ... or name the partition; a blob value and headers (JSON, order and duplicates kept)"
INSERT INTO orders(partition, key, value, timestamp, headers)
  VALUES (2, NULL, x'00ff', 1700000003000, '[["trace","abc"],["trace","def"],["flag",null]]');
SELECT partition, offset, timestamp, key, quote(value) AS value, headers FROM orders;

.print
.print "== Text reads back as text, binary as a blob, byte for byte"
SELECT partition, key, typeof(value), hex(value) FROM orders WHERE partition IN (1, 2);

.print
.print "== WHERE partition / offset / timestamp and LIMIT are pushed down to the log"
SELECT partition, offset, key FROM orders WHERE partition = 0 AND offset >= 1 LIMIT 10;
SELECT partition, offset, timestamp FROM orders WHERE timestamp >= 1700000002000;
EXPLAIN QUERY PLAN SELECT * FROM orders WHERE partition = 1 AND offset >= 100 LIMIT 10;
EXPLAIN QUERY PLAN SELECT * FROM orders ORDER BY partition, offset;

.print
.print "== A transaction lands at COMMIT, as one batch per partition"
BEGIN;
INSERT INTO orders(partition, key, value, timestamp) VALUES (3, 'user-9', 'a', 1700000010000);
INSERT INTO orders(partition, key, value, timestamp) VALUES (3, 'user-9', 'b', 1700000011000);
SELECT count(*) AS before_commit FROM orders WHERE key = 'user-9';
COMMIT;
SELECT count(*) AS after_commit FROM orders WHERE key = 'user-9';

.print
.print "== ROLLBACK discards, and so does ROLLBACK TO a savepoint"
BEGIN;
INSERT INTO orders(partition, key, value, timestamp) VALUES (3, 'user-9', 'dropped', 1700000012000);
ROLLBACK;
BEGIN;
INSERT INTO orders(partition, key, value, timestamp) VALUES (3, 'user-9', 'c', 1700000013000);
SAVEPOINT maybe;
INSERT INTO orders(partition, key, value, timestamp) VALUES (3, 'user-9', 'dropped too', 1700000014000);
ROLLBACK TO maybe;
COMMIT;
SELECT partition, offset, value FROM orders WHERE partition = 3;

.print
.print "== takhin_messages: every topic, the topic as a column"
INSERT INTO takhin_messages(topic, partition, key, value, timestamp) VALUES ('orders', 0, 'k', 'v', 1700000020000);
SELECT topic, partition, offset, key, value FROM takhin_messages WHERE topic = 'orders' AND partition = 0;

.print
.print "== The store's metadata"
SELECT topic, partition, log_start_offset, high_watermark, segments FROM takhin_partitions;
SELECT topic, partition, base_offset, next_offset, max_timestamp, sealed FROM takhin_segments WHERE partition = 3;

.print
.print "== Consumer group offsets: commit, then read the lag"
SELECT takhin_commit('billing', 'orders', 3, 1) AS committed;
SELECT takhin_commit('billing', 'orders', 0, 2, 'host-7') AS committed;
SELECT * FROM takhin_group_offsets;

.print
.print "== ListOffsets by time: the first offset with timestamp >= T"
SELECT takhin_offset_for_time('orders', 3, 1700000011000) AS offset,
       takhin_offset_for_time('orders', 3, -2) AS earliest,
       takhin_offset_for_time('orders', 3, -1) AS latest;

.print
.print "== DELETE removes a prefix of a partition (Kafka's DeleteRecords)"
-- (a DELETE that is not a prefix, like WHERE offset = 3, is refused with an
-- error saying so; UPDATE is refused too: records are immutable)
DELETE FROM orders WHERE partition = 3 AND offset < 2;
SELECT partition, offset, value FROM orders WHERE partition = 3;
SELECT partition, log_start_offset, high_watermark FROM takhin_partitions WHERE partition = 3;

.print
.print "== Retention: whole sealed segments over retention_bytes go, oldest first"
CREATE VIRTUAL TABLE logs USING takhin(segment_bytes=200, retention_bytes=200, retention_ms=-1);
INSERT INTO logs(key, value, timestamp) VALUES ('a', 'one', 1700000000000);
INSERT INTO logs(key, value, timestamp) VALUES ('b', 'two', 1700000000001);
INSERT INTO logs(key, value, timestamp) VALUES ('c', 'three', 1700000000002);
INSERT INTO logs(key, value, timestamp) VALUES ('d', 'four', 1700000000003);
INSERT INTO logs(key, value, timestamp) VALUES ('e', 'five', 1700000000004);
SELECT base_offset, next_offset, size_bytes, sealed FROM takhin_segments WHERE topic = 'logs';
SELECT * FROM takhin_retention('logs');
SELECT partition, log_start_offset, high_watermark, size_bytes, segments FROM takhin_partitions WHERE topic = 'logs';

.print
.print "== DROP TABLE deletes the topic and its files"
DROP TABLE logs;
SELECT name FROM takhin_topics;
SELECT takhin_version() AS version;
