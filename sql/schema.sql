-- takhin catalog schema. Its format version is the format_version row below,
-- the one place it is written: CMake reads it into TAKHIN_FORMAT_VERSION.
--
-- The catalog is an ordinary SQLite database; the application may keep its own
-- tables in it. Every takhin table is prefixed "takhin_cat_" so the names the
-- SQL extension exposes (takhin_topics, takhin_partitions, ...) stay free.
--
-- The segment files are the truth: these rows are an index over them. The
-- library writes them in batches (never once per message) and rebuilds any it
-- missed when the store is opened. Paths are never stored here: a segment's
-- file is always derived from its validated topic name, partition and base
-- offset, so a tampered row cannot point the store at another file.
--
-- The store runs this whole script, inside one transaction, on every open; it
-- must stay idempotent.

CREATE TABLE IF NOT EXISTS takhin_cat_meta(
  key   TEXT PRIMARY KEY,
  value ANY
) STRICT;
-- The first writer stamps the version; a later open compares (see catalog.c).
-- Format 2 added takhin_cat_dead, takhin_cat_dead_from and the swap rows'
-- fingerprint; format 3 packed the index into runs (takhin_cat_index_run, in
-- place of takhin_cat_index's row per entry). A writer upgrades an older
-- catalog in place (catalog.sql upgrade_format), a reader reads it as it is.
INSERT OR IGNORE INTO takhin_cat_meta(key, value) VALUES ('format_version', 3);

-- One row per topic, with its configuration under Kafka's names: one column per
-- key of TK_TOPIC_CONFIGS (store/topic_config.h), which always writes every
-- one. Its defaults are that table's, not repeated here.
CREATE TABLE IF NOT EXISTS takhin_cat_topic(
  topic_id                  INTEGER PRIMARY KEY,
  name                      TEXT NOT NULL UNIQUE,
  partitions                INTEGER NOT NULL CHECK (partitions >= 1),
  cleanup_policy            TEXT NOT NULL,
  compression               TEXT NOT NULL,
  segment_bytes             INTEGER NOT NULL,
  segment_ms                INTEGER NOT NULL,
  retention_bytes           INTEGER NOT NULL,
  retention_ms              INTEGER NOT NULL,
  max_message_bytes         INTEGER NOT NULL,
  delete_retention_ms       INTEGER NOT NULL,
  min_compaction_lag_ms     INTEGER NOT NULL,
  min_cleanable_dirty_ratio REAL    NOT NULL,
  created_ms                INTEGER NOT NULL
) STRICT;

-- One row per partition: the log start offset (advanced by DeleteRecords and
-- retention) is the only state that is not derivable from the files.
-- Compacted topics also keep: key_from, the first offset from which every
-- keyed record is in the key index (0 for topics created compacted; the high
-- watermark when a topic is switched to compact); key_upto, the offset up to
-- which the key index has been written (recovery indexes the rest); and
-- clean_upto, the cleaner checkpoint (segments below were compacted).
CREATE TABLE IF NOT EXISTS takhin_cat_partition(
  topic_id         INTEGER NOT NULL REFERENCES takhin_cat_topic(topic_id) ON DELETE CASCADE,
  partition        INTEGER NOT NULL,
  log_start_offset INTEGER NOT NULL DEFAULT 0,
  key_from         INTEGER NOT NULL DEFAULT 0,
  key_upto         INTEGER NOT NULL DEFAULT 0,
  clean_upto       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (topic_id, partition)
) STRICT, WITHOUT ROWID;

-- One row per segment file "<topic>-<partition>/<base_offset %020d>.log".
-- size_bytes/next_offset/max_timestamp describe the part of the file that has
-- been indexed; recovery validates whatever lies beyond size_bytes.
CREATE TABLE IF NOT EXISTS takhin_cat_segment(
  topic_id      INTEGER NOT NULL,
  partition     INTEGER NOT NULL,
  base_offset   INTEGER NOT NULL,
  next_offset   INTEGER NOT NULL,
  size_bytes    INTEGER NOT NULL,
  max_timestamp INTEGER NOT NULL DEFAULT -1,
  sealed        INTEGER NOT NULL DEFAULT 0,
  created_ms    INTEGER NOT NULL,
  records       INTEGER NOT NULL DEFAULT -1,  -- after compaction: records left; -1 = dense
  PRIMARY KEY (topic_id, partition, base_offset),
  FOREIGN KEY (topic_id, partition) REFERENCES takhin_cat_partition ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The sparse offset and time index: one entry per ~4 KiB of log (Kafka's
-- index.interval.bytes), each naming the first batch of a stretch of the
-- segment: its base offset, its byte position in the file, and the largest
-- record timestamp within the stretch (for ListOffsets by time). Entries are
-- kept in runs, one row per run of consecutive entries (store/index_run.c:
-- 24 bytes each, the three as little-endian int64), not one row per entry:
-- a 1 GiB segment has 262,144 entries. A run written later replaces the
-- entries from its first offset on. A rowid table: new runs append at the
-- B-tree's end, and the blobs stay out of the key's index.
CREATE TABLE IF NOT EXISTS takhin_cat_index_run(
  topic_id       INTEGER NOT NULL,
  partition      INTEGER NOT NULL,
  segment_base   INTEGER NOT NULL,
  first_offset   INTEGER NOT NULL,  -- the offset of the run's first entry
  first_position INTEGER NOT NULL,  -- and its byte position in the file
  entries        BLOB NOT NULL,
  UNIQUE (topic_id, partition, segment_base, first_offset),
  FOREIGN KEY (topic_id, partition, segment_base) REFERENCES takhin_cat_segment ON DELETE CASCADE
) STRICT;

-- Consumer group offsets (Kafka's __consumer_offsets).
CREATE TABLE IF NOT EXISTS takhin_cat_group_offset(
  group_id         TEXT NOT NULL,
  topic_id         INTEGER NOT NULL,
  partition        INTEGER NOT NULL,
  committed_offset INTEGER NOT NULL,
  metadata         TEXT,
  commit_ms        INTEGER NOT NULL,
  PRIMARY KEY (group_id, topic_id, partition),
  FOREIGN KEY (topic_id, partition) REFERENCES takhin_cat_partition ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The key index of compacted topics: the latest offset of every key, kept
-- current as records are produced (rows are written in batches with the
-- offset index). A keyed record is live exactly when its offset is its key's
-- offset here; sql/compaction.sql decides what survives from this table.
-- tombstone = 1 when that latest record has a null value; seen_ms is when
-- compaction first saw the tombstone (delete_retention_ms counts from it).
CREATE TABLE IF NOT EXISTS takhin_cat_key(
  topic_id  INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  key       BLOB NOT NULL,
  offset    INTEGER NOT NULL,
  tombstone INTEGER NOT NULL DEFAULT 0,
  seen_ms   INTEGER,
  PRIMARY KEY (topic_id, partition, key)
) STRICT, WITHOUT ROWID;
-- Covering for compaction's queries (survivors by offset range, tombstone
-- state): they never have to look up the table row itself.
CREATE INDEX IF NOT EXISTS takhin_cat_key_by_offset
    ON takhin_cat_key(topic_id, partition, offset, tombstone, seen_ms);
-- Only the tombstones, for the statements that start and end their
-- delete_retention_ms clock: without it each compaction would walk every
-- key of the cleaned range twice to find the few null values.
CREATE INDEX IF NOT EXISTS takhin_cat_key_tombstones
    ON takhin_cat_key(topic_id, partition, offset) WHERE tombstone = 1;

-- Superseded ("dead") offsets of a compacted partition, kept by the key
-- index as it writes key rows (store/dead.c): chunk = offset >> 12, bits a
-- 512-byte bitmap (bit i of byte i / 8, lowest first, is offset
-- chunk * 4096 + i; set = a later record of the same key is in the key
-- index) followed by its CRC-32C. Written in the transaction of the key rows
-- that supersede, so a rollback drops both. Compaction reads a segment's
-- survivors from these rows (the clear bits) instead of stepping one key row
-- per survivor; an offset whose key index holds no row (a forgotten
-- tombstone, a hole an earlier run left) is a set bit too. Rows go with the
-- topic (catalog.sql) and below a compaction's first segment.
CREATE TABLE IF NOT EXISTS takhin_cat_dead(
  topic_id  INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  chunk     INTEGER NOT NULL,
  bits      BLOB NOT NULL,
  PRIMARY KEY (topic_id, partition, chunk)
) STRICT, WITHOUT ROWID;
-- From which offset takhin_cat_dead is exact for a partition: every upsert of
-- a key row of a record past it noted what it superseded. No row: key_from
-- (a partition whose key index was written with takhin_cat_dead from its
-- start, or is rebuilt from the log). A catalog made before takhin_cat_dead
-- gets key_upto here once, below (the 'dead_offsets' meta row marks it
-- done); segments below use the key index's survivors query.
CREATE TABLE IF NOT EXISTS takhin_cat_dead_from(
  topic_id  INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  dead_from INTEGER NOT NULL,
  PRIMARY KEY (topic_id, partition)
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO takhin_cat_dead_from(topic_id, partition, dead_from)
SELECT topic_id, partition, key_upto FROM takhin_cat_partition
 WHERE NOT EXISTS (SELECT 1 FROM takhin_cat_meta WHERE key = 'dead_offsets');
INSERT OR IGNORE INTO takhin_cat_meta(key, value) VALUES ('dead_offsets', 1);

-- Segments whose compacted file (<base>.log.cleaned) is committed but may not
-- have been renamed over <base>.log yet: recovery finishes the rename (a
-- finished run's rows stay until the partition's next compaction, which drops
-- them before it makes files, or the next open: their .cleaned files are gone
-- and there is nothing to rename). A .cleaned file without a row here is an
-- unfinished run and is deleted.
-- size_bytes and fingerprint name the one file the row vouches for: its
-- size, and a CRC-32C folded over the first 21 bytes (base offset, length,
-- leader epoch, magic, CRC) of each of its batches. The row's drop is not
-- fsynced (synchronous=NORMAL): after a power loss a finished run's row may
-- come back while a later run's uncommitted (even half-written) .cleaned
-- file lies there; recovery renames a .cleaned only if it matches. NULL in
-- rows of catalogs older than these columns (catalog.c adds them): the file
-- is taken as it is.
CREATE TABLE IF NOT EXISTS takhin_cat_swap(
  topic_id    INTEGER NOT NULL,
  partition   INTEGER NOT NULL,
  base_offset INTEGER NOT NULL,
  size_bytes  INTEGER,
  fingerprint INTEGER,
  PRIMARY KEY (topic_id, partition, base_offset)
) STRICT, WITHOUT ROWID;
