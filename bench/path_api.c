/*
** path_api.c -- the api path: takhin through its public C API.
**
** One store per case ("<dir>/bench.db" plus its "-takhin/" folder) with the
** case's topics ("bench", "bench1", ...) of the case's partitions each.
** max_message_bytes is raised to 16 MiB so the largest batch of the matrix
** (1000 x 10 KiB) is one produce call, as on the other paths; a compacted
** store sets cleanup_policy=compact; everything else is takhin's default. A
** reader is a takhin_cursor: read_range is seek + next, read_one is
** takhin_cursor_get, read_key is takhin_cursor_get_key. produce_topic is
** takhin_produce_topic, balance takhin_topic_balance, compact
** takhin_compact(force).
*/
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "testing.h" /* takhin_topic_balance */

#define MAX_TOPICS 64

struct bp_store {
  takhin_store *s;
  int32_t ntopics, nparts;
  char names[MAX_TOPICS][16];
};

struct bp_reader {
  takhin_cursor *c;
  takhin_store *s;
  const char *topic;
  int32_t part;
};

static int fail(const char *what, int rc) {
  bench_errorf("%s: %s (%s)", what, takhin_errstr(rc), takhin_errmsg());
  return -1;
}

/* Global partition number -> topic name and partition. */
static const char *topic_of(const bp_store *st, int32_t g, int32_t *part) {
  *part = g % st->nparts;
  return st->names[g / st->nparts];
}

static int api_open(const bp_config *cfg, bp_store **out) {
  char path[4096];
  snprintf(path, sizeof path, "%s/bench.db", cfg->dir);
  takhin_options opt;
  takhin_options_init(&opt);
  opt.durability = cfg->durability;
  if (bp_topics(cfg) > MAX_TOPICS) {
    bench_errorf("api path: at most %d topics", MAX_TOPICS);
    return -1;
  }
  bp_store *st = calloc(1, sizeof *st);
  if (!st) return fail("calloc", TAKHIN_ENOMEM);
  st->ntopics = bp_topics(cfg);
  st->nparts = cfg->partitions;
  int rc = takhin_open(path, &opt, &st->s);
  if (rc != TAKHIN_OK) {
    free(st);
    return fail("takhin_open", rc);
  }
  char seg[32];
  snprintf(seg, sizeof seg, "%lld",
           (long long)(cfg->segment_bytes ? cfg->segment_bytes : 1073741824));
  const char *const config[] = {"segment_bytes",
                                seg,
                                "max_message_bytes",
                                "16777216",
                                "cleanup_policy",
                                cfg->compacted ? "compact" : "delete",
                                NULL};
  for (int32_t t = 0; t < st->ntopics; t++) {
    if (t == 0) snprintf(st->names[t], sizeof st->names[t], "bench");
    else snprintf(st->names[t], sizeof st->names[t], "bench%d", (int)t);
    rc = cfg->existing ? TAKHIN_OK
                       : takhin_topic_create(st->s, st->names[t], cfg->partitions, config);
    if (rc != TAKHIN_OK) {
      fail("takhin_topic_create", rc);
      takhin_close(st->s);
      free(st);
      return -1;
    }
  }
  *out = st;
  return 0;
}

static int api_close(bp_store *st) {
  int rc = takhin_close(st->s);
  free(st);
  return rc == TAKHIN_OK ? 0 : fail("takhin_close", rc);
}

static int api_produce(bp_store *st, int32_t g, const takhin_record *recs, size_t n,
                       int64_t *first_offset) {
  int32_t part;
  const char *topic = topic_of(st, g, &part);
  int rc = takhin_produce(st->s, topic, part, recs, n, first_offset);
  return rc == TAKHIN_OK ? 0 : fail("takhin_produce", rc);
}

static int api_produce_topic(bp_store *st, int32_t topic, const takhin_record *recs, size_t n) {
  int rc = takhin_produce_topic(st->s, st->names[topic], recs, n, NULL, NULL);
  return rc == TAKHIN_OK ? 0 : fail("takhin_produce_topic", rc);
}

static int api_balance(bp_store *st, int32_t topic, int64_t *counts, double *imbalance) {
  int rc = takhin_topic_balance(st->s, st->names[topic], counts, st->nparts, imbalance);
  return rc == TAKHIN_OK ? 0 : fail("takhin_topic_balance", rc);
}

static int api_flush(bp_store *st) {
  int rc = takhin_flush(st->s, 0);
  return rc == TAKHIN_OK ? 0 : fail("takhin_flush", rc);
}

static int api_segments(bp_store *st, int32_t g, int64_t *out) {
  takhin_partition_info info;
  int32_t part;
  const char *topic = topic_of(st, g, &part);
  int rc = takhin_partition_info_get(st->s, topic, part, &info);
  if (rc != TAKHIN_OK) return fail("takhin_partition_info_get", rc);
  *out = info.segments;
  return 0;
}

static int api_compactable_bytes(bp_store *st, int32_t g, int64_t *bytes) {
  int32_t part;
  const char *topic = topic_of(st, g, &part);
  takhin_segment_info *segs;
  size_t n;
  int rc = takhin_segments_list(st->s, topic, part, &segs, &n);
  if (rc != TAKHIN_OK) return fail("takhin_segments_list", rc);
  *bytes = 0;
  for (size_t i = 0; i < n; i++)
    if (segs[i].sealed) *bytes += segs[i].size_bytes;
  takhin_free(segs);
  return 0;
}

static int api_compact(bp_store *st, int32_t g, bp_compaction *out) {
  int32_t part;
  const char *topic = topic_of(st, g, &part);
  takhin_compaction_result r;
  int rc = takhin_compact(st->s, topic, part, 1, &r);
  if (rc != TAKHIN_OK) return fail("takhin_compact", rc);
  out->bytes_reclaimed = r.bytes_reclaimed;
  out->records_removed = r.records_removed;
  out->keys_kept = r.keys_kept;
  out->lib_duration_ms = r.duration_ms;
  return 0;
}

static int api_reader_open(bp_store *st, int32_t g, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) return fail("calloc", TAKHIN_ENOMEM);
  int32_t part;
  const char *topic = topic_of(st, g, &part);
  r->s = st->s;
  r->topic = topic;
  r->part = part;
  int rc = takhin_cursor_open(st->s, topic, part, &r->c);
  if (rc != TAKHIN_OK) {
    free(r);
    return fail("takhin_cursor_open", rc);
  }
  *out = r;
  return 0;
}

static void api_reader_close(bp_reader *r) {
  if (!r) return;
  takhin_cursor_close(r->c);
  free(r);
}

static int api_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  int rc = takhin_cursor_seek(r->c, offset, n, 0);
  if (rc != TAKHIN_OK) return fail("takhin_cursor_seek", rc);
  takhin_message m;
  for (int64_t i = 0; i < n; i++) {
    rc = takhin_cursor_next(r->c, &m);
    if (rc != TAKHIN_OK) {
      if (rc == TAKHIN_END) {
        bench_errorf("takhin_cursor_next: END after %lld of %lld records from offset %lld",
                     (long long)i, (long long)n, (long long)offset);
        return -1;
      }
      return fail("takhin_cursor_next", rc);
    }
    if (m.offset != offset + i) {
      bench_errorf("takhin_cursor_next: offset %lld, expected %lld", (long long)m.offset,
                   (long long)(offset + i));
      return -1;
    }
    bp_sink_take(sink, m.key, m.key_len, m.value, m.value_len);
  }
  return 0;
}

/* The C API's "latest n": the high watermark, then n records up to it. */
static int api_read_tail(bp_reader *r, int64_t n, bp_sink *sink) {
  takhin_partition_info pi;
  int rc = takhin_partition_info_get(r->s, r->topic, r->part, &pi);
  if (rc != TAKHIN_OK) return fail("takhin_partition_info_get", rc);
  return api_read_range(r, pi.high_watermark - n, n, sink);
}

static int api_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  takhin_message m;
  int rc = takhin_cursor_get(r->c, offset, &m);
  if (rc != TAKHIN_OK) return fail("takhin_cursor_get", rc);
  bp_sink_take(sink, m.key, m.key_len, m.value, m.value_len);
  return 0;
}

static int api_read_key(bp_reader *r, const void *key, size_t len, bp_sink *sink, int64_t *offset) {
  takhin_message m;
  int rc = takhin_cursor_get_key(r->c, key, len, &m);
  if (rc != TAKHIN_OK) return fail("takhin_cursor_get_key", rc);
  bp_sink_take(sink, m.key, m.key_len, m.value, m.value_len);
  *offset = m.offset;
  return 0;
}

const bench_path bench_path_api = {
    .name = "api",
    .reopens = 1,
    .unavailable = NULL,
    .open = api_open,
    .close = api_close,
    .produce = api_produce,
    .flush = api_flush,
    .segments = api_segments,
    .reader_open = api_reader_open,
    .reader_close = api_reader_close,
    .read_range = api_read_range,
    .read_tail = api_read_tail,
    .read_one = api_read_one,
    .produce_topic = api_produce_topic,
    .balance = api_balance,
    .compactable_bytes = api_compactable_bytes,
    .compact = api_compact,
    .read_key = api_read_key,
};
