/*
** path.h -- the path table: one set of storage operations per way of storing
** the same messages, so every benchmark body runs unchanged on each of them.
**
**   api     takhin through its C API (takhin_produce, takhin_cursor_*)
**   sql     takhin through SQL on the loaded extension (INSERT / SELECT)
**   file    the physical limit: a plain file, buffered write(), pread()
**   sqlite  what a user would build instead: a plain SQLite table in WAL mode
**   kafka   takhin through the Kafka protocol: librdkafka and takhin-server on
**           loopback (path_kafka.c); only the benchmarks that list it run it
**   mmap    the read limit: takhin's own segment files, mapped and walked
**           with its batch code, none of its cursor (read benchmarks only)
**
** Adding a path means filling these function pointers in its path_*.c file;
** every benchmark then covers it. The optional ones (marked so) may be NULL:
** a benchmark that needs one lists the path as n/a with the reason it gives.
**
** Topics and partitions: a store holds cfg->topics topics ("bench", "bench1",
** ...) of cfg->partitions partitions each. Every `part` argument below is a
** global partition number, topic * partitions + partition, so a benchmark on
** one topic passes the partition itself.
**
** Threads: produce may be called from many threads at once, to the same or to
** different partitions; each path serializes what it must (the file and
** sqlite paths with a pthread mutex per partition, whose wait time the lock
** accounting sees). A reader belongs to one thread.
*/
#ifndef TAKHIN_BENCH_PATH_H
#define TAKHIN_BENCH_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "takhin.h"

enum { PATH_API, PATH_SQL, PATH_FILE, PATH_SQLITE, PATH_KAFKA, PATH_MMAP, PATH_COUNT };
/* The storage paths. A benchmark adds PATH_KAFKA itself where a Kafka
** client's figure means something (produce and sequential fetch); mmap only
** reads takhin's files, so the read benchmarks add it by name (PATHS_READ). */
#define PATHS_ALL ((1u << PATH_KAFKA) - 1)
#define PATH_BIT_KAFKA (1u << PATH_KAFKA)
#define PATHS_READ (PATHS_ALL | (1u << PATH_MMAP))
#define PATHS_NO_SQLITE (PATHS_ALL & ~(1u << PATH_SQLITE))

typedef struct bp_store bp_store;   /* defined by each path_*.c */
typedef struct bp_reader bp_reader; /* defined by each path_*.c */

typedef struct bp_config {
  const char *dir;       /* an empty directory this store owns */
  int durability;        /* TAKHIN_DURABILITY_* */
  int32_t partitions;    /* per topic, >= 1 */
  int64_t segment_bytes; /* roll size; 0 = takhin's default (1 GiB) */
  int32_t topics;        /* 0 or 1: one topic */
  int compacted;         /* cleanup_policy=compact (api, sql); an index on key (sqlite) */
  int existing;          /* reopen what an open of this config made before: create
                            nothing (-cold; only paths with `reopens` set) */
} bp_config;

static inline int32_t bp_topics(const bp_config *c) { return c->topics > 0 ? c->topics : 1; }

/* What one compaction did (bp_path.compact). */
typedef struct bp_compaction {
  int64_t bytes_reclaimed; /* bytes of data before minus after (sqlite: pages freed) */
  int64_t records_removed;
  int64_t keys_kept;       /* -1 when the path cannot tell */
  int64_t lib_duration_ms; /* the duration the library itself reports; -1 none */
} bp_compaction;

/* What a reader does with each message: count it and touch its bytes, so no
** path can skip the copy the others pay for. */
typedef struct bp_sink {
  uint64_t msgs, bytes, check;
} bp_sink;

static inline void bp_sink_take(bp_sink *s, const void *key, size_t klen, const void *val,
                                size_t vlen) {
  s->msgs++;
  s->bytes += klen + vlen;
  if (vlen) s->check += ((const unsigned char *)val)[vlen - 1];
  if (klen) s->check += ((const unsigned char *)key)[0];
}

typedef struct bench_path {
  const char *name;
  /* 1 when open() with cfg->existing reopens a closed store. A path without
  ** it keeps no mapping and no user-space copy of what it has written, so
  ** -cold drops its page cache with the store left open. */
  int reopens;
  /* NULL when the path can run here, else why not (printed instead of numbers). */
  const char *(*unavailable)(void);
  int (*open)(const bp_config *cfg, bp_store **out);
  int (*close)(bp_store *st);
  /* Append n records as one unit (one write / one transaction / one batch).
  ** first_offset may be NULL. */
  int (*produce)(bp_store *st, int32_t part, const takhin_record *recs, size_t n,
                 int64_t *first_offset);
  /* Make everything produced readable and handed to the OS. */
  int (*flush)(bp_store *st);
  /* Optional: wait until every record produce() accepted is stored and
  ** acknowledged. NULL when produce() returns only then (every storage
  ** path); the produce benchmarks call it at the end of the timed loop. */
  int (*drain)(bp_store *st);
  /* Segment files of a partition so far; NULL when the path has none. */
  int (*segments)(bp_store *st, int32_t part, int64_t *out);
  int (*reader_open)(bp_store *st, int32_t part, bp_reader **out);
  void (*reader_close)(bp_reader *r);
  /* Read exactly n messages starting at offset into sink (fewer is an error). */
  int (*read_range)(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink);
  /* Read the one message at offset. */
  int (*read_one)(bp_reader *r, int64_t offset, bp_sink *sink);

  /* ---- optional ---- */
  /* NULL when the path can run in this durability mode, else why not. */
  const char *(*mode_unavailable)(int durability);
  /* Append n keyed records to topic t, each to the partition Kafka's
  ** partitioner picks for its key (takhin_partition_for_key). NULL: the
  ** benchmark splits the records itself and calls produce per partition. */
  int (*produce_topic)(bp_store *st, int32_t topic, const takhin_record *recs, size_t n);
  /* Records per partition of topic t (counts: partitions entries) and the
  ** imbalance (max - mean) / mean, as the store reports them. NULL: the
  ** benchmark uses its own counts. */
  int (*balance)(bp_store *st, int32_t topic, int64_t *counts, double *imbalance);
  /* Bytes a compaction of part would work through (takhin: its sealed
  ** segments; sqlite: the database pages). */
  int (*compactable_bytes)(bp_store *st, int32_t part, int64_t *bytes);
  /* Compact part now, whatever its dirty ratio (a compacted store). */
  int (*compact)(bp_store *st, int32_t part, bp_compaction *out);
  /* The latest record of key in the reader's partition (a compacted store);
  ** *offset receives its offset. */
  int (*read_key)(bp_reader *r, const void *key, size_t len, bp_sink *sink, int64_t *offset);
  /* The last n messages of the reader's partition (fewer is an error), as a
  ** "latest N" query would read them. */
  int (*read_tail)(bp_reader *r, int64_t n, bp_sink *sink);
} bench_path;

extern const bench_path bench_path_api, bench_path_sql, bench_path_file, bench_path_sqlite,
    bench_path_kafka, bench_path_mmap;
extern const bench_path *const bench_paths[PATH_COUNT];

#endif /* TAKHIN_BENCH_PATH_H */
