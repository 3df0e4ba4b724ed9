-- compaction.sql -- the SQL that decides what log compaction keeps.
--
-- The key index (takhin_cat_key, see schema.sql) holds the latest offset of
-- every key of a compacted partition. A keyed record survives compaction
-- exactly when its offset is its key's latest offset, unless it is a
-- tombstone whose delete_retention_ms has run out since compaction first saw
-- it. Beside it, takhin_cat_dead marks the offsets a later record of their
-- key superseded, as the key rows are written: a segment's survivors are its
-- clear bits, read from a few rows rather than one row per survivor. The C code (store/compaction.c) only rewrites segment files to keep the
-- offsets these statements return.
--
-- Each statement is introduced by a "-- name: <name>" line; the library
-- embeds this file and prepares the statements by name.
-- Parameters: ?1 topic_id, ?2 partition, ?3/?4 an offset range [from, to),
-- ?5 a time in ms.

-- name: key_upsert
-- Produced keyed records become their keys' latest (the WHERE keeps an
-- older record, replayed after a newer one, harmless). One execution writes
-- a batch held in memory: takhin_rows(?3) yields each key (blob), its
-- offset (v0) and whether it is a tombstone (v1). "WHERE true" tells the
-- parser the ON CONFLICT is the upsert's, not a join's. takhin_supersede
-- compares the offsets and notes the older one, when they differ, in the
-- C buffer bound to ?4 (store/dead.c): the offsets superseded, learned with
-- no row stepped out; dead_or writes them in the same transaction.
INSERT INTO takhin_cat_key(topic_id, partition, key, offset, tombstone, seen_ms)
SELECT ?1, ?2, blob, v0, v1, NULL FROM takhin_rows(?3) WHERE true
ON CONFLICT (topic_id, partition, key) DO UPDATE
   SET offset = excluded.offset, tombstone = excluded.tombstone, seen_ms = NULL
 WHERE takhin_supersede(takhin_cat_key.offset, excluded.offset, ?4);

-- name: dead_or
-- Superseded offsets into their chunks (schema.sql, takhin_cat_dead):
-- takhin_rows(?3) yields each chunk (v0) and its bitmap (blob), ORed into
-- the row already there.
INSERT INTO takhin_cat_dead(topic_id, partition, chunk, bits)
SELECT ?1, ?2, v0, blob FROM takhin_rows(?3) WHERE true
ON CONFLICT (topic_id, partition, chunk) DO UPDATE
   SET bits = takhin_bits_or(takhin_cat_dead.bits, excluded.bits);

-- name: dead_chunks
-- The chunks of offsets [?3, ?4), in order (a segment's: 1-3 rows).
SELECT chunk, bits FROM takhin_cat_dead
 WHERE topic_id = ?1 AND partition = ?2 AND chunk >= (?3 >> 12) AND chunk <= ((?4 - 1) >> 12)
 ORDER BY chunk;

-- name: dead_from
SELECT dead_from FROM takhin_cat_dead_from WHERE topic_id = ?1 AND partition = ?2;

-- name: set_dead_from
INSERT INTO takhin_cat_dead_from(topic_id, partition, dead_from) VALUES (?1, ?2, ?3)
ON CONFLICT DO UPDATE SET dead_from = excluded.dead_from;

-- name: clear_dead_from
-- No row: the dead offsets are exact from key_from on.
DELETE FROM takhin_cat_dead_from WHERE topic_id = ?1 AND partition = ?2;

-- name: wipe_dead
DELETE FROM takhin_cat_dead WHERE topic_id = ?1 AND partition = ?2;

-- name: trim_dead
-- Chunks wholly below offset ?3 (a compaction's first segment: no run reads
-- below it again).
DELETE FROM takhin_cat_dead WHERE topic_id = ?1 AND partition = ?2 AND chunk < (?3 >> 12);

-- name: mark_expired_dead
-- The tombstones forget_expired_tombstones is about to forget leave the log:
-- their offsets become dead bits (the same rows as expired_tombstones).
INSERT INTO takhin_cat_dead(topic_id, partition, chunk, bits)
SELECT ?1, ?2, offset >> 12, takhin_bit(offset)
  FROM takhin_cat_key INDEXED BY takhin_cat_key_tombstones
 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
   AND tombstone = 1 AND seen_ms IS NOT NULL AND seen_ms <= ?5
ON CONFLICT (topic_id, partition, chunk) DO UPDATE
   SET bits = takhin_bits_or(takhin_cat_dead.bits, excluded.bits);

-- name: mark_tombstones_seen
-- Start the delete_retention_ms clock of tombstones in the cleanable range.
-- (takhin_cat_key_tombstones holds just the tombstones.)
UPDATE takhin_cat_key INDEXED BY takhin_cat_key_tombstones SET seen_ms = ?5
 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
   AND tombstone = 1 AND seen_ms IS NULL;

-- name: unseen_tombstones
-- Whether mark_tombstones_seen has anything to do: a read, so a run whose
-- range holds no tombstone compaction has not seen writes nothing for it.
SELECT EXISTS (SELECT 1 FROM takhin_cat_key INDEXED BY takhin_cat_key_tombstones
                WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
                  AND tombstone = 1 AND seen_ms IS NULL);

-- name: survivors
-- The offsets compaction keeps from ?3 on, in order: each key's latest.
-- Segments from the partition's dead_from on are planned from takhin_cat_dead
-- instead (dead_chunks, store/compact_plan.c), with the same answer; this is
-- the fallback (older catalogs, damaged chunks) and the tests' reference. The
-- caller stops stepping at the end of its range (the first offset past it),
-- so no upper bound is compared on every row here, and takes out the
-- tombstones past their retention (expired_tombstones, below: few rows, not
-- tested on every row here). One row stepped out of SQLite is most of a
-- run's cost at 100 B records. A segment holding no more records than its
-- survivors has nothing to reclaim and is not read again. (An index-only
-- scan: see schema.sql.)
SELECT offset FROM takhin_cat_key
 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3
 ORDER BY offset;

-- name: expired_tombstones
-- The offsets of [?3, ?4) that survivors returns but compaction drops:
-- tombstones first seen at or before ?5 (now minus delete_retention_ms).
SELECT offset FROM takhin_cat_key INDEXED BY takhin_cat_key_tombstones
 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
   AND tombstone = 1 AND seen_ms IS NOT NULL AND seen_ms <= ?5
 ORDER BY offset;

-- name: forget_expired_tombstones
-- A tombstone past its retention is gone from the log: forget its key too.
DELETE FROM takhin_cat_key INDEXED BY takhin_cat_key_tombstones
 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
   AND tombstone = 1 AND seen_ms IS NOT NULL AND seen_ms <= ?5;

-- name: keys_kept
-- Keys of the partition with their latest record outside [?3, ?4); a run
-- adds the survivors it counted inside the range it cleaned (those rows are
-- not walked again). ?3 = ?4 counts every key.
SELECT (SELECT count(*) FROM takhin_cat_key
         WHERE topic_id = ?1 AND partition = ?2 AND offset < ?3)
     + (SELECT count(*) FROM takhin_cat_key
         WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?4);

-- name: key_lookup
-- The latest record of one key: a point lookup on the primary key.
SELECT offset, tombstone FROM takhin_cat_key
 WHERE topic_id = ?1 AND partition = ?2 AND key = ?3;

-- name: key_state
SELECT key_from, key_upto, clean_upto FROM takhin_cat_partition
 WHERE topic_id = ?1 AND partition = ?2;

-- name: set_key_upto
UPDATE takhin_cat_partition SET key_upto = ?3 WHERE topic_id = ?1 AND partition = ?2;

-- name: set_clean_upto
UPDATE takhin_cat_partition SET clean_upto = ?3 WHERE topic_id = ?1 AND partition = ?2;

-- name: set_key_from
UPDATE takhin_cat_partition SET key_from = ?3, key_upto = max(key_upto, ?3)
 WHERE topic_id = ?1 AND partition = ?2;

-- name: set_records
UPDATE takhin_cat_segment SET records = ?4
 WHERE topic_id = ?1 AND partition = ?2 AND base_offset = ?3;

-- name: add_swap
INSERT OR REPLACE INTO takhin_cat_swap(topic_id, partition, base_offset, size_bytes, fingerprint)
VALUES (?1, ?2, ?3, ?4, ?5);

-- name: swaps
SELECT base_offset, size_bytes, fingerprint FROM takhin_cat_swap
 WHERE topic_id = ?1 AND partition = ?2;

-- name: unswap_segment
-- A committed .cleaned file that is not what its swap row names (damaged):
-- the old .log stays, and its row, which describes the new file, is rebuilt
-- from the file at the open (size 0: every batch is validated). Its record
-- count is unknown: at most one per offset, and not dense (the old file may
-- be an earlier run's), so the next run reads it again.
UPDATE takhin_cat_segment SET size_bytes = 0, records = next_offset - base_offset
 WHERE topic_id = ?1 AND partition = ?2 AND base_offset = ?3;

-- name: clear_swaps
DELETE FROM takhin_cat_swap WHERE topic_id = ?1 AND partition = ?2;

-- name: keys_past
-- Key rows at or past ?3 (the end of the log): any means the file lost a
-- tail the catalog kept.
SELECT count(*) FROM takhin_cat_key WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3;

-- name: wipe_keys
DELETE FROM takhin_cat_key WHERE topic_id = ?1 AND partition = ?2;

-- name: reset_key_state
-- key_from, key_upto = ?3 and nothing cleaned: the key index is rebuilt
-- from the log at ?3.
UPDATE takhin_cat_partition SET key_from = ?3, key_upto = ?3, clean_upto = 0
 WHERE topic_id = ?1 AND partition = ?2;
