/*
** takhin.h -- the whole public API of takhin, an embedded Kafka-style log store.
**
** A store is a SQLite database file X (the catalog and index) plus a folder
** "X-takhin/" beside it that holds one folder per topic partition
** ("<topic>-<partition>/") of append-only segment files named by their base
** offset ("%020lld.log"). Segment files hold Kafka RecordBatch v2 batches byte
** for byte, so Kafka tooling can read them.
**
** Conventions (after LMDB):
**   - every function returns an int status: TAKHIN_OK (0) or a TAKHIN_E* code;
**     takhin_errstr(rc) names the code, takhin_errmsg() returns the detailed
**     message of the calling thread's last failed call ("offset 120 out of
**     range [0, 100)").
**   - handles are opaque; constructors take an out-parameter.
**   - every pointer the library hands out states who owns it and how long it
**     stays valid.
**
** Threads: one takhin_store may be used from many threads at once. Appends to
** one partition are serialized; appends to different partitions run in
** parallel; readers never wait for a writer's I/O. A takhin_cursor belongs to
** one thread at a time.
**
** Processes: one writer process per store (a second writer gets
** TAKHIN_ELOCKED); any number of processes may open the store read-only and see
** every record the writer has handed to the OS.
*/
#ifndef TAKHIN_H
#define TAKHIN_H

#include <stddef.h>
#include <stdint.h>

#include "takhin_version.h" /* TAKHIN_VERSION, _NUMBER, TAKHIN_FORMAT_VERSION */

/* TAKHIN_API marks every function of the API. libtakhin is built with hidden
** visibility (-fvisibility=hidden), so these are the only symbols it exports:
** `nm -D --defined-only libtakhin.so` lists takhin_* and nothing else, and the
** library's internals (tk_*) can change between releases without an ABI
** break. The SQLite extension compiles the library in and exports only its
** entry point, so there TAKHIN_API marks nothing. */
#ifndef TAKHIN_API
#if defined(TAKHIN_SQLITE_EXTENSION)
#define TAKHIN_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#define TAKHIN_API __attribute__((visibility("default")))
#else
#define TAKHIN_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version at run time, which may differ from the header's
** TAKHIN_VERSION and TAKHIN_VERSION_NUMBER a program was compiled with (as
** sqlite3_libversion and sqlite3_libversion_number). */
TAKHIN_API const char *takhin_libversion(void);
TAKHIN_API int takhin_libversion_number(void);

/* ---- status codes ---------------------------------------------------- */
#define TAKHIN_OK 0
#define TAKHIN_END 1         /* not an error: a cursor has no more records */
#define TAKHIN_EMISUSE -1    /* NULL or closed handle, API used wrongly */
#define TAKHIN_EINVAL -2     /* bad argument: name, config, timestamp, ... */
#define TAKHIN_ENOTFOUND -3  /* unknown topic, partition or group */
#define TAKHIN_EEXISTS -4    /* topic already exists */
#define TAKHIN_ERANGE -5     /* offset out of range */
#define TAKHIN_ETOOBIG -6    /* record or batch larger than max_message_bytes */
#define TAKHIN_ECORRUPT -7   /* damaged segment file or catalog row */
#define TAKHIN_EIO -8        /* an operating system call failed */
#define TAKHIN_ENOSPC -9     /* the disk is full */
#define TAKHIN_ELOCKED -10   /* another process holds the store for writing */
#define TAKHIN_EREADONLY -11 /* the store was opened read-only */
#define TAKHIN_EFORMAT -12   /* catalog written by an unknown format version */
#define TAKHIN_ENOMEM -13    /* out of memory */
#define TAKHIN_ECATALOG -14  /* SQLite reported an error on the catalog */
#define TAKHIN_ELOST                                                                               \
  -15 /* BUFFERED: acknowledged records were lost (a write of
                                them failed); the message names the offsets */

/* Static name and one-line meaning of a status code. Never NULL. */
TAKHIN_API const char *takhin_errstr(int rc);

/* Detailed message of the calling thread's most recent failed call into
** takhin (any store). Owned by the library, valid until the thread's next
** takhin call. "" when none failed yet. */
TAKHIN_API const char *takhin_errmsg(void);

/* ---- store ----------------------------------------------------------- */
typedef struct takhin_store takhin_store;

/* Durability of a produce call, chosen per store.
**   OS (default): the batch is handed to the OS (one write()) before the call
**     returns, so an application crash loses nothing acknowledged; an OS crash
**     or power loss may lose the unsynced tail.
**   FSYNC: the call returns once the data is on disk (fdatasync); concurrent
**     producers to a partition share one fdatasync (group commit).
**   BUFFERED: batches collect in memory and are written every flush_bytes or
**     flush_ms (a background thread enforces flush_ms), or by takhin_flush().
**     Fastest; a process crash LOSES the unflushed tail even though the
**     produce call returned. Readers in this process still see every record
**     (a fetch past the flushed point flushes first).
**     A write that fails (a full disk, an I/O error) drops the pending
**     batches of its partition: those acknowledged records are LOST. The
**     application is told once, by TAKHIN_ELOST from the first of these calls
**     to come: the produce call whose write failed (its own records are not
**     stored either), or, when the failure was met elsewhere (the flusher
**     thread, a reader, retention), the next takhin_produce or
**     takhin_produce_topic on that partition (which then stores nothing),
**     takhin_flush or takhin_close. takhin_errmsg() names the partition, how
**     many records were lost, their first and last offsets and the cause.
**     Their offsets are never handed out again: the next record continues
**     after them, in a new segment (a gap readers skip, as after compaction).
**     Across a reopen the gap is kept when the store could record that new
**     segment in the catalog; if the disk stayed full until the process
**     ended, the next open may give those offsets out again. A produce call
**     whose write fails while nothing acknowledged was pending returns the
**     write's error (ENOSPC, EIO) and stores nothing, as in the other modes. */
#define TAKHIN_DURABILITY_OS 0
#define TAKHIN_DURABILITY_FSYNC 1
#define TAKHIN_DURABILITY_BUFFERED 2

/* Structs that grow. A later release may add fields at the end of
** takhin_options and takhin_topic_desc; a program compiled against an older
** takhin.h keeps working with the newer library, and the other way round:
**   - takhin_options starts with its size, which takhin_options_init sets to
**     sizeof(takhin_options) as the caller was compiled (it is a macro). The
**     library reads that many bytes and gives every field past them its
**     default; bytes it does not know must be 0 (EINVAL otherwise). A size of
**     0 (a struct zeroed without takhin_options_init) means the layout of
**     release 0.1, the first.
**   - takhin_topic_describe passes sizeof(takhin_topic_desc) as the caller
**     was compiled (it too is a macro): the library fills that many bytes,
**     and zeroes fields it does not know.
** Fields are only ever added at the end, never removed or reordered. */
typedef struct takhin_options {
  size_t size;            /* sizeof(takhin_options): set by takhin_options_init */
  int durability;         /* TAKHIN_DURABILITY_*; default OS */
  int64_t flush_bytes;    /* BUFFERED: write when this much is pending; default 1 MiB */
  int64_t flush_ms;       /* BUFFERED: write at least this often; default 100 ms */
  int read_only;          /* open without the writer lock; no writes allowed. Also
                              opens a store on read-only media (a read-only mount or
                              folder) or a full disk: where SQLite cannot create the
                              catalog's WAL index (-shm; a running writer has made
                              it), the catalog is opened immutable, as it was when
                              the writer closed it (a -wal left behind is not read;
                              recovery finds its batches in the files) */
  int max_open_files;     /* budget of cached segment file handles; default 256,
                              capped at half the process's RLIMIT_NOFILE */
  int64_t maintenance_ms; /* > 0: a background thread runs takhin_maintenance_run
                              (retention and compaction) this often; 0 (default) = off;
                              negative: takhin_open fails with EINVAL */
} takhin_options;

/* Fill *opt with the defaults above and its size. NULL is a no-op. */
#define takhin_options_init(opt) takhin_options_init_size((opt), sizeof(takhin_options))
/* What takhin_options_init calls: the defaults for an opt of size bytes
** (the caller's sizeof(takhin_options)). */
TAKHIN_API void takhin_options_init_size(takhin_options *opt, size_t size);

/* Open (creating if missing, unless read_only) the store whose catalog is the
** SQLite file at path. opt may be NULL for defaults. On success *out is a
** handle to close with takhin_close. Recovery runs here: every segment is
** checked from its last indexed position, missing index rows are rebuilt and
** a torn or corrupt tail is truncated; takhin_recovery() reports what was
** done. A writer also rebuilds a missing, empty, damaged (kept aside) or
** older catalog from the data folder, deleting nothing it does not know; a
** read_only open never modifies anything and fails (ENOTFOUND, ECATALOG) on
** a missing or damaged catalog. Errors: ELOCKED (another writer), EFORMAT
** (unknown catalog version), EIO, ECATALOG, EINVAL, ENOSPC (a writer on a
** disk without a free block for the catalog's WAL index; a read_only open
** works there). A full disk does not otherwise keep a writer from opening:
** see key_index_deferred. */
TAKHIN_API int takhin_open(const char *path, const takhin_options *opt, takhin_store **out);

/* Flush buffered data and index rows, stop background work, close files and
** release everything the handle owns. NULL is a no-op. Returns the first
** error met while flushing, or ELOST when acknowledged records were lost and
** not reported yet (BUFFERED). Using a handle after its close (a second close
** included) is undefined, as in LMDB and SQLite. As a debugging aid only, the
** last few closed handles stay allocated and marked, so that a call on one
** just closed usually returns TAKHIN_EMISUSE; do not rely on it. */
TAKHIN_API int takhin_close(takhin_store *s);

/* Write buffered batches (BUFFERED mode) and pending index rows to the OS and
** the catalog. With sync != 0 also fdatasync every segment written since the
** last sync. ELOST when a failed write lost acknowledged records of a
** partition since the last report (see TAKHIN_DURABILITY_BUFFERED): the
** message names the first such partition; others are reported by the next
** call. */
TAKHIN_API int takhin_flush(takhin_store *s, int sync);

/* What recovery did when the store was opened. */
typedef struct takhin_recovery_info {
  int64_t partitions_checked; /* partitions whose tail was validated */
  int64_t batches_recovered;  /* batches found past the indexed position */
  int64_t bytes_truncated;    /* torn/corrupt tail bytes removed */
  int64_t segments_truncated; /* segments that lost a tail */
  int64_t files_removed;      /* stray files tidied away */
  /* The catalog against the data folder. Nothing on disk is deleted because
  ** the catalog does not know it: a lost, empty, damaged or older catalog is
  ** rebuilt from the segment files and each partition folder's topic.meta
  ** (README "Backup and restore"). Where the two disagree the files win,
  ** except for a metadata file that is missing or unreadable. */
  int64_t catalog_moved_aside;  /* 1: the catalog was damaged (not a database) and was kept
                                  as catalog_aside, with its -wal; a new one was built */
  int64_t topics_rebuilt;       /* topics put back in the catalog from their metadata files */
  int64_t partitions_rebuilt;   /* partition rows put back (rebuilt topics, raised counts) */
  int64_t segments_rebuilt;     /* segment rows put back for segment files the catalog missed */
  int64_t meta_trusted_file;    /* topics whose catalog rows disagreed with their metadata
                                  files (config, partition count, log start, incarnation):
                                  the files were trusted and the catalog corrected */
  int64_t meta_trusted_catalog; /* topics with a metadata file missing or unreadable: the
                                  catalog was trusted and the file written again */
  int64_t folders_deleted;      /* folders marked "-delete" (a topic delete that a crash cut
                                  short), or "-drop" by a DROP TABLE whose COMMIT happened,
                                  removed: the only folders recovery ever removes */
  int64_t folders_kept;         /* folders in the data folder no topic could be given:
                                  kept as they are (a conflicting one is renamed
                                  "<name>.<ms>-stray"), never removed */
  char catalog_aside[4096];     /* where the damaged catalog was kept ("" if none) */
  /* Batches in indexed data that fail their CRC or whose offsets do not
  ** follow their neighbours' (bit rot): kept in place, never truncated; a
  ** read of their offsets gives TAKHIN_ECORRUPT naming file and byte, the
  ** records around them read as before. first_damage says where the first
  ** one is ("topic-0/00000000000000000000.log: damaged batch at byte N
  ** (offsets A-B): why"), "" when none. Recovery walks only each segment's
  ** last index stretch, so damage elsewhere is found by the reads. In a
  ** compacted segment (gaps between batches) a baseOffset that overlaps a
  ** neighbour's offsets makes both read as ECORRUPT, and one that stays
  ** inside its gap cannot be detected at all. */
  int64_t batches_damaged;
  char first_damage[512];
  int64_t segments_missing;   /* segment files the catalog lists that are gone
                                  (deleted by hand): their records are lost */
  int64_t offsets_lost;       /* offsets those files held. They read as removed,
                                  and are never given to new records: a writer
                                  open continues the log after the catalog's
                                  last known offset, in a new segment */
  int64_t key_index_deferred; /* partitions of compacted topics whose key index
                                  could not be brought up to date (e.g. a full
                                  disk: that writes the catalog). The open still
                                  succeeds; the next key lookup or compaction
                                  retries (a lookup fails with the error rather
                                  than answer from a stale index; compaction
                                  leaves the unindexed segments alone) */
  int64_t segments_reindexed; /* segments whose catalog rows describe another file
                                  than the one there (an older catalog restored, or
                                  a compaction's commit lost after its renames): an
                                  index entry did not name a batch of the file. The
                                  file was walked from its start and its rows
                                  rebuilt; nothing was lost or damaged */
  char message[512];          /* what an operator should know, "" when nothing:
                                  "t-0: segment 000...20.log is missing: offsets
                                  20-29 are lost; ..." (cut at 511 bytes) */
} takhin_recovery_info;
TAKHIN_API int takhin_recovery(takhin_store *s, takhin_recovery_info *out);

/* ---- topics ---------------------------------------------------------- */
/* Topic names follow Kafka: [a-zA-Z0-9._-], 1-249 characters, not "." or "..".
**
** Config is a NULL-terminated array of key, value string pairs with Kafka's
** names (underscored) and defaults:
**   cleanup_policy            delete | compact | compact,delete   (delete)
**   compression               none | zstd                         (none)
**   segment_bytes             roll size of a segment              (1073741824)
**   segment_ms                roll age of a segment               (604800000)
**   retention_bytes           per partition, -1 = unlimited       (-1)
**   retention_ms              -1 = unlimited                      (604800000)
**   max_message_bytes         largest record batch                (1048588)
**   delete_retention_ms       tombstone lifetime                  (86400000)
**   min_compaction_lag_ms                                         (0)
**   min_cleanable_dirty_ratio                                     (0.5)
** Unknown keys or malformed values fail with EINVAL naming the key. */
TAKHIN_API int takhin_topic_create(takhin_store *s, const char *topic, int32_t partitions,
                                   const char *const *config);

/* Number of partitions of a topic. */
TAKHIN_API int takhin_topic_partitions(takhin_store *s, const char *topic, int32_t *out);

/* Delete a topic: its catalog rows (group offsets included) and its files.
** Produce calls in flight finish first, and so does maintenance running on
** its partitions (compaction, retention, DeleteRecords), which the delete
** waits for without holding up other topics; meanwhile maintenance of the
** topic gets ENOTFOUND and creating its name again EEXISTS. Later calls on
** the topic, and open cursors, get ENOTFOUND. */
TAKHIN_API int takhin_topic_delete(takhin_store *s, const char *topic);

/* Names of all topics, sorted. *names is one takhin_free()-able block holding
** the array and the strings. */
TAKHIN_API int takhin_topic_list(takhin_store *s, char ***names, size_t *n);

/* A topic's partition count and configuration. */
typedef struct takhin_topic_desc {
  char name[250];
  int32_t partitions;
  char cleanup_policy[16];
  char compression[8];
  int64_t segment_bytes;
  int64_t segment_ms;
  int64_t retention_bytes;
  int64_t retention_ms;
  int64_t max_message_bytes;
  int64_t delete_retention_ms;
  int64_t min_compaction_lag_ms;
  double min_cleanable_dirty_ratio;
} takhin_topic_desc;
#define takhin_topic_describe(s, topic, out)                                                       \
  takhin_topic_describe_size((s), (topic), (out), sizeof(takhin_topic_desc))
/* What takhin_topic_describe calls: fills size bytes of *out (the caller's
** sizeof(takhin_topic_desc)); EINVAL when size cannot hold partitions. */
TAKHIN_API int takhin_topic_describe_size(takhin_store *s, const char *topic,
                                          takhin_topic_desc *out, size_t size);

/* Grow a topic to total partitions (never shrink, as in Kafka: EINVAL).
** Keys map to partitions by count, so existing keys may move, as in Kafka. */
TAKHIN_API int takhin_topic_add_partitions(takhin_store *s, const char *topic, int32_t total);

/* Change configuration keys (same names and rules as takhin_topic_create);
** takes effect for the next produce, roll and retention run. */
TAKHIN_API int takhin_topic_alter_config(takhin_store *s, const char *topic,
                                         const char *const *config);

/* ---- records --------------------------------------------------------- */
#define TAKHIN_TIMESTAMP_NOW (-1) /* as a record timestamp: the current time */

typedef struct takhin_header {
  const char *key; /* UTF-8, not NUL-terminated */
  size_t key_len;
  const void *value; /* NULL = null value */
  size_t value_len;
} takhin_header;

/* One record to produce. key NULL = null key; value NULL = null value
** (a tombstone); a zero-length non-NULL pointer is an empty key/value. */
typedef struct takhin_record {
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  const takhin_header *headers;
  size_t n_headers;
  int64_t timestamp; /* ms since the epoch, or TAKHIN_TIMESTAMP_NOW */
} takhin_record;

/* Append n >= 1 records to one partition as one Kafka batch. *first_offset
** (may be NULL) receives the offset of the first record; the others follow
** densely. All or nothing: on error no record is stored. Errors: ENOTFOUND,
** ETOOBIG (batch above max_message_bytes), EINVAL, ENOSPC, EIO, EREADONLY,
** ELOST (BUFFERED: records acknowledged earlier were lost, see
** TAKHIN_DURABILITY_BUFFERED; this call stored nothing). */
TAKHIN_API int takhin_produce(takhin_store *s, const char *topic, int32_t partition,
                              const takhin_record *records, size_t n, int64_t *first_offset);

/* ---- reading --------------------------------------------------------- */
typedef struct takhin_cursor takhin_cursor;

/* A record as read. key/value/headers point into the cursor's buffer: valid
** until the next takhin_cursor_* call on the same cursor; the caller must
** not free or modify them. */
typedef struct takhin_message {
  int64_t offset;
  int64_t timestamp;
  const void *key; /* NULL when the key is null */
  size_t key_len;
  const void *value; /* NULL when the value is null */
  size_t value_len;
  size_t n_headers;
  const void *headers_raw; /* Kafka-encoded headers; use takhin_message_header */
  size_t headers_raw_len;
} takhin_message;

/* Header i (0-based) of m, as views into the same buffer as m. EINVAL when
** i >= m->n_headers, ECORRUPT if the bytes are malformed. */
TAKHIN_API int takhin_message_header(const takhin_message *m, size_t i, takhin_header *out);

/* Open a cursor on one partition; it starts at the log start offset. */
TAKHIN_API int takhin_cursor_open(takhin_store *s, const char *topic, int32_t partition,
                                  takhin_cursor **out);

/* Position the cursor at offset and bound the read: at most max_records
** records and max_bytes bytes of record payload (key + value + headers);
** 0 means unbounded; the first record is always returned even if it is
** larger than max_bytes, as Kafka's fetch does. offset may equal the high
** watermark (nothing to read yet); below the log start or above the high
** watermark is ERANGE. Offsets removed by compaction are skipped. */
TAKHIN_API int takhin_cursor_seek(takhin_cursor *c, int64_t offset, int64_t max_records,
                                  int64_t max_bytes);

/* Next record into *m. TAKHIN_OK, TAKHIN_END at the high watermark (as seen
** when the record would be read) or at the seek limits, or an error
** (ECORRUPT for a batch that fails its CRC: it is never returned). */
TAKHIN_API int takhin_cursor_next(takhin_cursor *c, takhin_message *m);

/* Block until the cursor's partition holds a record at or after the
** cursor's position (the offset the next takhin_cursor_next reads from:
** where the last seek put it, or past the last record returned), so that
** a consumer at the high watermark sleeps instead of polling.
** timeout_ms: 0 checks and returns at once; < 0 waits without a limit.
** Returns TAKHIN_OK when there is something to read (BUFFERED batches not
** yet written count: the read flushes them), TAKHIN_END when the timeout
** passed first, ENOTFOUND when the topic was deleted, EMISUSE when the
** store was closed meanwhile (takhin_close wakes every waiter and waits
** for it to return; the caller then only closes the cursor).
** An append wakes the threads waiting on its partition at once. A
** read_only handle cannot be woken by the writer process: it re-reads the
** partition every 20 ms while it waits, so it sees records at most that
** much later. A wait does not move the cursor or change its limits. */
int takhin_cursor_wait(takhin_cursor *c, int64_t timeout_ms);

/* takhin_cursor_wait over n cursors of one store (a Kafka Fetch waits on
** every partition it asks for): returns TAKHIN_OK as soon as one of them
** has something to read, its index in *ready (may be NULL; the first
** ready one when several are). Errors of one cursor (ENOTFOUND) end the
** wait with that status. */
int takhin_cursor_wait_any(takhin_cursor *const *cursors, size_t n, int64_t timeout_ms,
                           size_t *ready);

/* Free the cursor. NULL is a no-op. Must be closed before its store. */
TAKHIN_API void takhin_cursor_close(takhin_cursor *c);

/* Read the one record at offset (ERANGE if outside the log, ENOTFOUND if
** compaction removed it). m's pointers live in c, as with cursor_next. */
TAKHIN_API int takhin_cursor_get(takhin_cursor *c, int64_t offset, takhin_message *m);

/* ---- partition metadata and maintenance ------------------------------ */
typedef struct takhin_partition_info {
  int64_t log_start_offset; /* first offset still readable */
  int64_t high_watermark;   /* offset the next record will get */
  int64_t size_bytes;       /* bytes in segment files */
  int64_t segments;
} takhin_partition_info;
TAKHIN_API int takhin_partition_info_get(takhin_store *s, const char *topic, int32_t partition,
                                         takhin_partition_info *out);

typedef struct takhin_segment_info {
  int64_t base_offset;
  int64_t next_offset; /* one past the last offset in the segment */
  int64_t size_bytes;
  int64_t max_timestamp; /* -1 when empty */
  int sealed;            /* 0 for the active (last) segment */
} takhin_segment_info;
/* *out receives a takhin_free()-able array of *n entries, oldest first. */
TAKHIN_API int takhin_segments_list(takhin_store *s, const char *topic, int32_t partition,
                                    takhin_segment_info **out, size_t *n);

/* Free memory the library returned (segment lists, ...). NULL is a no-op. */
TAKHIN_API void takhin_free(void *p);

#define TAKHIN_OFFSET_EARLIEST (-2) /* as a timestamp: the log start offset */
#define TAKHIN_OFFSET_LATEST (-1)   /* as a timestamp: the high watermark */
/* Kafka's ListOffsets: the first offset whose timestamp >= ts, or the high
** watermark when there is none; ts may be TAKHIN_OFFSET_EARLIEST/LATEST. */
TAKHIN_API int takhin_offset_for_time(takhin_store *s, const char *topic, int32_t partition,
                                      int64_t ts, int64_t *offset);

/* Kafka's DeleteRecords: advance the log start offset to offset (which must be
** in [log start, high watermark]); whole segments below it are deleted. */
TAKHIN_API int takhin_delete_records(takhin_store *s, const char *topic, int32_t partition,
                                     int64_t offset);

typedef struct takhin_retention_result {
  int64_t segments_deleted;
  int64_t bytes_deleted;
} takhin_retention_result;
/* Apply the topic's retention_bytes and retention_ms to one partition
** (partition >= 0) or all of them (-1): whole sealed segments go, oldest
** first; time uses each segment's largest record timestamp, not file times.
** The deleted files' descriptors are closed, and their space freed, by the
** store's reaper thread just after the call (at the latest by takhin_close).
** out may be NULL. */
TAKHIN_API int takhin_retention_apply(takhin_store *s, const char *topic, int32_t partition,
                                      takhin_retention_result *out);

/* ---- Kafka's default partitioner -------------------------------------- */
/* Kafka's Utils.murmur2 (seed 0x9747b28c), as a signed 32-bit value. data
** NULL is read as no bytes (len ignored): the hash of the empty key. */
TAKHIN_API int32_t takhin_murmur2(const void *data, size_t len);
/* The partition Kafka's Java client picks for a key:
** (murmur2(key) & 0x7fffffff) % partitions. partitions must be >= 1. */
TAKHIN_API int32_t takhin_partition_for_key(const void *key, size_t len, int32_t partitions);

/* Produce to a topic, choosing partitions like Kafka's producer: a keyed
** record goes to takhin_partition_for_key; the null-key records of one call
** stick together to one partition, and successive calls move round-robin
** across partitions (Kafka's sticky partitioning, one batch at a time).
** Records are split by partition and appended as one batch per partition,
** each all or nothing. partitions_out and offsets_out (each may be NULL)
** receive, per record, its partition and offset (-1 when not stored: on an
** error, some partitions' batches may have been stored and others not).
** EINVAL for n above 2^31 (a Kafka batch's record count). */
TAKHIN_API int takhin_produce_topic(takhin_store *s, const char *topic,
                                    const takhin_record *records, size_t n, int32_t *partitions_out,
                                    int64_t *offsets_out);

/* ---- consumer group offsets (Kafka's __consumer_offsets) -------------- */
typedef struct takhin_offset_commit {
  const char *topic;
  int32_t partition;
  int64_t offset;       /* the next offset the group will read: [0, high watermark] */
  const char *metadata; /* may be NULL */
} takhin_offset_commit;

/* Commit n offsets for group, atomically: all land or none. Refused with
** ENOTFOUND for an unknown topic or partition, ERANGE for an offset above
** the high watermark or negative, EINVAL for an empty group id. */
TAKHIN_API int takhin_group_commit(takhin_store *s, const char *group,
                                   const takhin_offset_commit *offsets, size_t n);

/* The committed offset of group on a partition (ENOTFOUND if none).
** metadata (may be NULL) receives a takhin_free()-able copy or NULL. */
TAKHIN_API int takhin_group_fetch(takhin_store *s, const char *group, const char *topic,
                                  int32_t partition, int64_t *offset, char **metadata);

typedef struct takhin_group_offset {
  const char *group;
  const char *topic;
  int32_t partition;
  int64_t committed_offset;
  int64_t high_watermark;
  int64_t lag;          /* high_watermark - committed_offset */
  const char *metadata; /* NULL when none */
} takhin_group_offset;
/* Every committed offset of group (or of all groups when group is NULL),
** with lag. *out is one takhin_free()-able block (strings included). */
TAKHIN_API int takhin_group_list(takhin_store *s, const char *group, takhin_group_offset **out,
                                 size_t *n);

/* Forget every offset of a group. ENOTFOUND if it has none. */
TAKHIN_API int takhin_group_delete(takhin_store *s, const char *group);

/* ---- compaction (cleanup_policy contains compact) ---------------------- */
/* Kafka's log compaction: in sealed segments, a keyed record survives when no
** later record of the partition has its key; a tombstone (null value) also
** goes once delete_retention_ms has passed since compaction first saw it.
** Segments whose newest record is younger than min_compaction_lag_ms and the
** active segment are never touched. Offsets never change: survivors keep
** theirs and readers skip the gaps. The decision is SQL over the key index
** (sql/compaction.sql); files are swapped in atomically with the catalog. */
typedef struct takhin_compaction_result {
  int64_t segments_compacted; /* segment files rewritten */
  int64_t bytes_reclaimed;    /* file bytes before minus after */
  int64_t records_removed;
  int64_t keys_kept; /* live keys in the key index afterwards (a key
                                 re-produced during the run may count twice) */
  int64_t duration_ms;
} takhin_compaction_result;

/* Compact one partition (partition >= 0) or all (-1) of a compacted topic.
** Without force, only partitions whose dirty ratio (bytes not yet compacted /
** all bytes) reaches min_cleanable_dirty_ratio are compacted. out may be
** NULL. EINVAL for a topic that is not compacted. A run uses a helper
** thread (takhin-plan) for its SQL while it rewrites files; the replaced
** files are closed, and their space freed, by the store's reaper thread
** just after the call (at the latest by takhin_close). */
TAKHIN_API int takhin_compact(takhin_store *s, const char *topic, int32_t partition, int force,
                              takhin_compaction_result *out);

/* The latest record of key in the cursor's partition (a point lookup in the
** key index of a compacted topic). ENOTFOUND when the key has no record, or
** its latest record is a tombstone whose retention ran out; a live tombstone
** is returned (value NULL). EINVAL on a topic that is not compacted. m's
** pointers live in c, as with takhin_cursor_next. */
TAKHIN_API int takhin_cursor_get_key(takhin_cursor *c, const void *key, size_t len,
                                     takhin_message *m);

/* ---- maintenance ------------------------------------------------------- */
/* Apply retention to every partition of every topic, and compact the
** compacted topics whose dirty ratio is reached. out may be NULL. */
TAKHIN_API int takhin_maintenance_run(takhin_store *s, takhin_retention_result *out);

/* ---- whole batches, as Kafka's wire protocol carries them --------------- */
/* Append one complete RecordBatch v2 (len bytes at batch) to a partition as
** it was encoded by its producer: it is checked as recovery checks a batch
** (sizes, magic, CRC-32C, every record decodes, offset deltas 0..n-1 with n
** = recordsCount = lastOffsetDelta + 1, a codec the store reads: none,
** gzip, snappy, lz4 or zstd), then written byte for byte except baseOffset, which gets the
** partition's next offset, and partitionLeaderEpoch (0), both outside the CRC.
** Producer id, epoch and sequence are kept as sent. *base_offset (may be
** NULL) receives the first offset. Durability as takhin_produce. Errors:
** ECORRUPT (bad batch), EINVAL (unsupported codec, null key on a compacted
** topic), ETOOBIG, ENOTFOUND, EREADONLY, EIO, ENOSPC. */
TAKHIN_API int takhin_produce_batch(takhin_store *s, const char *topic, int32_t partition,
                                    const void *batch, size_t len, int64_t *base_offset);

/* The checks of takhin_produce_batch that need neither a store nor decoding:
** header, sizes, codec, CRC-32C, recordsCount. TAKHIN_OK, ECORRUPT or EINVAL. */
TAKHIN_API int takhin_batch_check(const void *batch, size_t len);

/* Copy the stored batches of a partition from the one holding offset on, as
** they are on disk (for a Kafka Fetch response): whole batches only, at most
** max_bytes of them, except that the first batch is returned whole even when
** larger (as Kafka does). Reads stop at the end of one segment; a batch whose
** CRC fails ends the copy (ECORRUPT if it is the first). *out receives a
** takhin_free()-able block of *len bytes (NULL, 0 when there is nothing at
** offset yet); info (may be NULL) the partition's offsets at the time of the
** read, filled even on ERANGE (offset below the log start or above the high
** watermark). */
TAKHIN_API int takhin_fetch_batches(takhin_store *s, const char *topic, int32_t partition,
                                    int64_t offset, size_t max_bytes, void **out, size_t *len,
                                    takhin_partition_info *info);

/* The batches takhin_fetch_batches would copy, without the copy: data
** points into the segment file's read-only mapping (or, where the file
** cannot be mapped, into a copy), for a server to send with writev. The
** span holds the segment, so the bytes stay valid and unchanged until
** takhin_fetch_span_release even when compaction or retention retires the
** file meanwhile (the mapping keeps it). Each batch's CRC was checked.
** Release every span before closing the store. Same arguments, errors and
** info as takhin_fetch_batches; len 0 (data NULL) when there is nothing
** at offset yet. A span costs no allocation when the segment is mapped. */
typedef struct takhin_fetch_span {
  const void *data;
  size_t len;
  void *hold_[2]; /* private: what keeps data valid */
} takhin_fetch_span;
int takhin_fetch_span_get(takhin_store *s, const char *topic, int32_t partition, int64_t offset,
                          size_t max_bytes, takhin_fetch_span *out, takhin_partition_info *info);
/* Give the span's bytes back (NULL or an empty span: no-op); *sp is zeroed. */
void takhin_fetch_span_release(takhin_fetch_span *sp);

#ifdef __cplusplus
}
#endif
#endif /* TAKHIN_H */
