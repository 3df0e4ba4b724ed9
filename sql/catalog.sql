-- catalog.sql -- every statement the store runs on its catalog (the tables of
-- schema.sql), except those that decide compaction and keep the key index
-- (compaction.sql).
--
-- Each statement is introduced by a "-- name: <name>" line; the library
-- embeds this file, and call sites name a statement by TK_SQL_<NAME> (an id
-- CMake generates from these lines). Each is prepared once per connection and
-- reused (store/catalog.c). Parameters are numbered and always bound, never
-- pasted in: names come from users.
--
-- Generated parts: {config_columns} stands for ", <key>" and {config_params}
-- for ", ?" once per topic config of TK_TOPIC_CONFIGS (store/topic_config.h),
-- in that table's order, so adding a config changes no statement here. An
-- unnumbered "?" after {config_params} takes the next number.

-- ---- transactions -----------------------------------------------------------

-- name: begin
BEGIN IMMEDIATE;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- name: format_version
-- Checked on every open (catalog.c): a catalog of another format is refused.
SELECT value FROM takhin_cat_meta WHERE key = 'format_version';

-- name: upgrade_format
-- A catalog of format 1, once this release's schema and columns are in
-- (takhin_cat_dead, takhin_cat_dead_from, the swap fingerprint): format ?1,
-- this release's. Releases of format 1 then refuse it rather than keep
-- neither the dead-offset bitmaps nor the fingerprints and leave rows a
-- later compaction here would misread (a live record planned as dead).
-- Writers only (catalog.c), in the schema's transaction. Format 2 becomes
-- format 3 the same way, after drop_entry_index.
UPDATE takhin_cat_meta SET value = ?1 WHERE key = 'format_version' AND value < ?1;

-- name: drop_entry_index
-- Formats 1 and 2 kept a row per index entry (takhin_cat_index); format 3
-- keeps runs (takhin_cat_index_run). The old rows are dropped, not
-- converted: the index is derived from the segment files, and the open
-- that upgrades rebuilds it by walking them (recovery.c), then writes it
-- as runs.
DROP TABLE IF EXISTS takhin_cat_index;

-- name: swap_has_fingerprint
-- Catalogs made before takhin_cat_swap had its fingerprint columns get them
-- on their first writing open (catalog.c; schema.sql's CREATE TABLE IF NOT
-- EXISTS cannot add columns). Nullable: rows from before them stay valid.
SELECT count(*) FROM pragma_table_info('takhin_cat_swap') WHERE name = 'fingerprint';

-- name: add_swap_fingerprint
ALTER TABLE takhin_cat_swap ADD COLUMN size_bytes INTEGER;
ALTER TABLE takhin_cat_swap ADD COLUMN fingerprint INTEGER;

-- name: data_version
-- Changes whenever another connection (the writer process) commits.
PRAGMA data_version;

-- ---- topics ---------------------------------------------------------------
-- ?1 the name, ?2 the partition count, ?3.. the configs, then created_ms.

-- name: insert_topic
INSERT INTO takhin_cat_topic(name, partitions{config_columns}, created_ms)
VALUES (?1, ?2{config_params}, ?);

-- name: topics
SELECT topic_id, name, partitions{config_columns}
  FROM takhin_cat_topic ORDER BY topic_id;

-- name: update_topic
UPDATE takhin_cat_topic SET (partitions{config_columns}) = (?2{config_params})
 WHERE topic_id = ?1;

-- name: topic_id
SELECT topic_id FROM takhin_cat_topic WHERE name = ?1;

-- name: topic_created
SELECT created_ms FROM takhin_cat_topic WHERE topic_id = ?1;

-- Deleting a topic: children first and explicitly, one statement each, since
-- the host connection of the extension may not have foreign_keys on, so ON
-- DELETE CASCADE cannot be relied upon. ?1 topic_id.

-- name: delete_topic_index
DELETE FROM takhin_cat_index_run WHERE topic_id = ?1;

-- name: delete_topic_keys
DELETE FROM takhin_cat_key WHERE topic_id = ?1;

-- name: delete_topic_dead
DELETE FROM takhin_cat_dead WHERE topic_id = ?1;

-- name: delete_topic_dead_from
DELETE FROM takhin_cat_dead_from WHERE topic_id = ?1;

-- name: delete_topic_swaps
DELETE FROM takhin_cat_swap WHERE topic_id = ?1;

-- name: delete_topic_segments
DELETE FROM takhin_cat_segment WHERE topic_id = ?1;

-- name: delete_topic_offsets
DELETE FROM takhin_cat_group_offset WHERE topic_id = ?1;

-- name: delete_topic_partitions
DELETE FROM takhin_cat_partition WHERE topic_id = ?1;

-- name: delete_topic
DELETE FROM takhin_cat_topic WHERE topic_id = ?1;

-- ---- partitions, segments, sparse index -------------------------------------
-- ?1 topic_id, ?2 partition.

-- name: insert_partition
INSERT INTO takhin_cat_partition(topic_id, partition) VALUES (?1, ?2);

-- name: log_start
SELECT log_start_offset FROM takhin_cat_partition WHERE topic_id = ?1 AND partition = ?2;

-- name: set_log_start
INSERT INTO takhin_cat_partition(topic_id, partition, log_start_offset) VALUES (?1, ?2, ?3)
ON CONFLICT DO UPDATE SET log_start_offset = excluded.log_start_offset;

-- name: segments
-- The segments at or after base offset ?3, in order.
SELECT base_offset, next_offset, size_bytes, max_timestamp, sealed, created_ms, records
  FROM takhin_cat_segment WHERE topic_id = ?1 AND partition = ?2 AND base_offset >= ?3
 ORDER BY base_offset;

-- name: index
-- The index runs of the segment at ?3, in order (store/index_run.c).
SELECT first_offset, entries, first_position FROM takhin_cat_index_run
 WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3 ORDER BY first_offset;

-- name: upsert_segment
INSERT INTO takhin_cat_segment(topic_id, partition, base_offset, next_offset, size_bytes,
                               max_timestamp, sealed, created_ms, records)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset,
   size_bytes = excluded.size_bytes, max_timestamp = excluded.max_timestamp,
   sealed = excluded.sealed, records = excluded.records;

-- name: delete_index_runs_from
-- Before entries from offset ?4 on are written: the runs they replace whole.
-- Also, at open, a damaged run and the runs after it (recovery.c).
DELETE FROM takhin_cat_index_run
 WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3 AND first_offset >= ?4;

-- name: insert_index_run
-- ?4 first_offset, ?5 first_position, ?6 entries.
INSERT INTO takhin_cat_index_run(topic_id, partition, segment_base, first_offset,
                                 first_position, entries)
VALUES (?1, ?2, ?3, ?4, ?5, ?6);

-- name: delete_segment
DELETE FROM takhin_cat_segment WHERE topic_id = ?1 AND partition = ?2 AND base_offset = ?3;

-- name: delete_segment_index
DELETE FROM takhin_cat_index_run WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3;

-- name: delete_index_from
-- Index entries of the segment at ?3 at or past file position ?4: the runs
-- that start there go; the one before them is cut (cut_index_run).
DELETE FROM takhin_cat_index_run
 WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3 AND first_position >= ?4;

-- name: last_index_run
SELECT first_offset, entries FROM takhin_cat_index_run
 WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3
 ORDER BY first_offset DESC LIMIT 1;

-- name: cut_index_run
-- The run at ?4 keeps its first ?5 bytes (substr counts a blob's bytes).
UPDATE takhin_cat_index_run SET entries = substr(entries, 1, ?5)
 WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3 AND first_offset = ?4;

-- ---- consumer group offsets -------------------------------------------------

-- name: commit_offset
-- ?1 group, ?2 topic_id, ?3 partition, ?4 offset, ?5 metadata, ?6 commit_ms.
INSERT INTO takhin_cat_group_offset(group_id, topic_id, partition, committed_offset,
                                    metadata, commit_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO UPDATE SET committed_offset = excluded.committed_offset,
   metadata = excluded.metadata, commit_ms = excluded.commit_ms;

-- name: fetch_offset
SELECT committed_offset, metadata FROM takhin_cat_group_offset
 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3;

-- name: list_offsets
-- One group's offsets, or every group's when ?1 is NULL.
SELECT g.group_id, t.name, g.partition, g.committed_offset, g.metadata
  FROM takhin_cat_group_offset g JOIN takhin_cat_topic t USING (topic_id)
 WHERE ?1 IS NULL OR g.group_id = ?1 ORDER BY g.group_id, t.name, g.partition;

-- name: delete_group
DELETE FROM takhin_cat_group_offset WHERE group_id = ?1;

-- ---- reconciling the catalog with the data folder (reconcile.c) ------------

-- name: reconcile_topics
SELECT topic_id, name, partitions, created_ms{config_columns} FROM takhin_cat_topic;

-- name: reconcile_insert_topic
-- ?1 the topic_id to keep (NULL: a new one), ?2 name, ?3 partitions,
-- ?4.. the configs, then created_ms.
INSERT INTO takhin_cat_topic(topic_id, name, partitions{config_columns}, created_ms)
VALUES (?1, ?2, ?3{config_params}, ?);

-- name: topic_exists
SELECT 1 FROM takhin_cat_topic WHERE topic_id = ?1;

-- name: reconcile_partition
SELECT log_start_offset, key_from FROM takhin_cat_partition
 WHERE topic_id = ?1 AND partition = ?2;

-- name: reconcile_insert_partition
INSERT INTO takhin_cat_partition(topic_id, partition, log_start_offset, key_from, key_upto)
VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING;

-- name: reconcile_segments
SELECT base_offset, next_offset FROM takhin_cat_segment
 WHERE topic_id = ?1 AND partition = ?2 ORDER BY base_offset;

-- name: reconcile_insert_segment
-- A segment file the catalog lost, at base ?3 created at ?4: size 0 and
-- next = base, so the load validates the whole file (no trust).
INSERT INTO takhin_cat_segment(topic_id, partition, base_offset, next_offset,
                               size_bytes, max_timestamp, sealed, created_ms, records)
VALUES (?1, ?2, ?3, ?3, 0, -1, 1, ?4, -1);
