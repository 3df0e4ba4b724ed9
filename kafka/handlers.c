/*
** handlers.c -- Kafka API handlers over takhin.h.
**
** Versions: every API is served in its non-flexible versions only (plus
** ApiVersions v3, whose flexible request every modern client sends first),
** which is what librdkafka 2.0 and kafka-python 2.0 negotiate down to. A
** version outside the table closes the connection (Kafka cannot encode a
** response in a version it does not know either); ApiVersions itself answers
** an unknown version with UNSUPPORTED_VERSION in v0 form, as Kafka does, so
** the client retries with one we list.
** Produce is listed from v0, as Kafka brokers before 4.0 list it, though
** only RecordBatch v2 is stored (a v0/v1 MessageSet, which Produce v0-v2
** carry, gets UNSUPPORTED_FOR_MESSAGE_FORMAT): librdkafka 2.0 compresses
** with gzip, snappy or lz4 only for a broker that lists Produce v0, and
** would otherwise send those batches uncompressed.
**
** Durability (acks): the store's durability mode is chosen when the server
** opens it (--durability). acks=0 and acks=1 answer once takhin_produce_batch
** returned (OS mode: the batch is in the OS page cache and survives a crash
** of the server); acks=-1 (all) additionally fdatasyncs (takhin_flush with
** sync) before answering, so the batch survives power loss. In FSYNC mode
** every acks level is synced; in BUFFERED mode acks=1 may lose the unflushed
** tail on a crash, acks=-1 never.
**
** One broker: node 0 is the leader of every partition, the coordinator of
** every group, and the only replica.
*/
#include "handlers.h"

#include "groups.h"
#include "producers.h"

#include "topic_config.h" /* the topic configs and their Kafka names */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOPIC_MAX 250
/* Fetch responses are held whole in memory: this bounds one connection's. */
#define FETCH_MAX_BYTES (64 * 1024 * 1024)
#define FETCH_MAX_WAIT_MS 30000

void kh_log(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ takhin-server: %s\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, line);
}

/* One topic entry of a request: reads its name into topic (*bad when the
 * name does not fit) and its partition count (0 when malformed), and echoes
 * both to the response. Returns the partition count. */
static int32_t topic_entry(kp_reader *r, kp_writer *w, char topic[TOPIC_MAX + 1], size_t min_elem,
                           int *bad) {
  kp_str ts = kp_string(r);
  *bad = kp_str_copy(ts, topic, TOPIC_MAX + 1);
  kp_w_stringn(w, ts.ptr ? ts.ptr : "", ts.len);
  int32_t np = kp_array(r, min_elem);
  if (np < 0) np = 0;
  kp_w_i32(w, np);
  return np;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kafka error code for a takhin status. */
static int16_t kerr(int rc) {
  switch (rc) {
  case TAKHIN_OK: return KE_NONE;
  case TAKHIN_ENOTFOUND: return KE_UNKNOWN_TOPIC_OR_PARTITION;
  case TAKHIN_ERANGE: return KE_OFFSET_OUT_OF_RANGE;
  case TAKHIN_ETOOBIG: return KE_MESSAGE_TOO_LARGE;
  case TAKHIN_ECORRUPT: return KE_CORRUPT_MESSAGE;
  case TAKHIN_EINVAL: return KE_INVALID_REQUEST;
  case TAKHIN_EIO:
  case TAKHIN_ENOSPC:
  case TAKHIN_EREADONLY: return KE_KAFKA_STORAGE_ERROR;
  default: return KE_UNKNOWN_SERVER_ERROR;
  }
}

/* ---- supported versions ------------------------------------------------ */
static const struct {
  int16_t key, min, max;
} apis[] = {
    {KP_PRODUCE, 0, 8},          {KP_FETCH, 4, 11},           {KP_LIST_OFFSETS, 1, 5},
    {KP_METADATA, 0, 8},         {KP_OFFSET_COMMIT, 2, 7},    {KP_OFFSET_FETCH, 1, 5},
    {KP_FIND_COORDINATOR, 0, 2}, {KP_API_VERSIONS, 0, 3},     {KP_CREATE_TOPICS, 0, 4},
    {KP_DELETE_TOPICS, 0, 3},    {KP_JOIN_GROUP, 0, 5},       {KP_SYNC_GROUP, 0, 3},
    {KP_HEARTBEAT, 0, 3},        {KP_LEAVE_GROUP, 0, 2},      {KP_INIT_PRODUCER_ID, 0, 1},
    {KP_DELETE_RECORDS, 0, 1},   {KP_DESCRIBE_CONFIGS, 0, 2},
};
#define NAPIS (sizeof apis / sizeof apis[0])

static int supported(int16_t key, int16_t v) {
  for (size_t i = 0; i < NAPIS; i++)
    if (apis[i].key == key) return v >= apis[i].min && v <= apis[i].max;
  return 0;
}

static void api_versions(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  (void)c;
  int16_t err = KE_NONE;
  if (v > 3) { /* answer in v0, which every client reads */
    err = KE_UNSUPPORTED_VERSION;
    v = 0;
  } else if (v == 3) {
    kp_compact_string(r); /* client_software_name */
    kp_compact_string(r); /* client_software_version */
    kp_skip_tags(r);
  }
  kp_w_i16(w, err);
  if (v >= 3) kp_w_uvarint(w, (uint32_t)NAPIS + 1);
  else kp_w_i32(w, (int32_t)NAPIS);
  for (size_t i = 0; i < NAPIS; i++) {
    kp_w_i16(w, apis[i].key);
    kp_w_i16(w, apis[i].min);
    kp_w_i16(w, apis[i].max);
    if (v >= 3) kp_w_uvarint(w, 0);
  }
  if (v >= 1) kp_w_i32(w, 0); /* throttle_time_ms */
  if (v >= 3) kp_w_uvarint(w, 0);
}

/* ---- Metadata ----------------------------------------------------------- */
static void write_topic_meta(kh_ctx *c, kp_writer *w, int16_t v, const char *name, size_t nlen,
                             int16_t err, int32_t nparts) {
  kp_w_i16(w, err);
  kp_w_stringn(w, name, nlen);
  if (v >= 1) kp_w_i8(w, 0); /* is_internal */
  kp_w_i32(w, err ? 0 : nparts);
  for (int32_t p = 0; !err && p < nparts; p++) {
    kp_w_i16(w, KE_NONE);
    kp_w_i32(w, p);
    kp_w_i32(w, 0);                 /* leader */
    if (v >= 7) kp_w_i32(w, 0);     /* leader_epoch */
    kp_w_i32(w, 1), kp_w_i32(w, 0); /* replicas [0] */
    kp_w_i32(w, 1), kp_w_i32(w, 0); /* isr [0] */
    if (v >= 5) kp_w_i32(w, 0);     /* offline replicas [] */
  }
  if (v >= 8) kp_w_i32(w, INT32_MIN); /* topic_authorized_operations: not asked */
  (void)c;
}

static int metadata(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  int32_t n = kp_array(r, 2);
  kp_reader topics = *r;
  for (int32_t i = 0; i < n; i++) kp_string(r);
  int allow_create = 1;
  if (v >= 4) allow_create = kp_i8(r) != 0;
  if (r->err) return -1;
  if (v >= 3) kp_w_i32(w, 0);
  kp_w_i32(w, 1); /* brokers */
  kp_w_i32(w, 0);
  kp_w_string(w, c->host);
  kp_w_i32(w, c->port);
  if (v >= 1) kp_w_string(w, NULL); /* rack */
  if (v >= 2) kp_w_string(w, "takhin");
  if (v >= 1) kp_w_i32(w, 0);          /* controller */
  if (n == -1 || (n == 0 && v == 0)) { /* every topic */
    char **names = NULL;
    size_t nn = 0;
    if (takhin_topic_list(c->store, &names, &nn) != TAKHIN_OK) nn = 0;
    size_t at = kp_w_reserve32(w);
    int32_t count = 0;
    for (size_t i = 0; i < nn; i++) {
      int32_t np;
      if (takhin_topic_partitions(c->store, names[i], &np) != TAKHIN_OK) continue;
      write_topic_meta(c, w, v, names[i], strlen(names[i]), KE_NONE, np);
      count++;
    }
    kp_w_patch32(w, at, count);
    takhin_free(names);
  } else {
    kp_w_i32(w, n);
    for (int32_t i = 0; i < n; i++) {
      kp_str s = kp_string(&topics);
      char name[TOPIC_MAX + 1];
      int32_t np = 0;
      int16_t err = KE_NONE;
      if (kp_str_copy(s, name, sizeof name)) {
        err = KE_INVALID_TOPIC;
      } else {
        int rc = takhin_topic_partitions(c->store, name, &np);
        if (rc == TAKHIN_ENOTFOUND && allow_create && c->auto_create) {
          rc = takhin_topic_create(c->store, name, c->default_partitions, NULL);
          if (rc == TAKHIN_OK || rc == TAKHIN_EEXISTS) {
            kh_log("auto-created topic %s with %d partitions", name, (int)c->default_partitions);
            rc = takhin_topic_partitions(c->store, name, &np);
          } else if (rc == TAKHIN_EINVAL) {
            err = KE_INVALID_TOPIC;
          }
        }
        if (!err && rc) err = kerr(rc);
      }
      write_topic_meta(c, w, v, s.ptr ? s.ptr : "", s.len, err, np);
    }
  }
  if (v >= 8) kp_w_i32(w, INT32_MIN); /* cluster_authorized_operations */
  return 0;
}

/* ---- Produce ------------------------------------------------------------ */
static int produce(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w, int *no_response) {
  if (v >= 3) kp_string(r); /* transactional_id */
  int16_t acks = kp_i16(r);
  kp_i32(r); /* timeout_ms */
  int32_t nt = kp_array(r, 6);
  if (r->err || nt < 0) return -1;
  int any_ok = 0;
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt && !r->err; t++) {
    char topic[TOPIC_MAX + 1];
    int bad_name;
    int32_t np = topic_entry(r, w, topic, 8, &bad_name);
    for (int32_t i = 0; i < np && !r->err; i++) {
      int32_t part = kp_i32(r);
      kp_str rec = kp_bytes(r);
      if (r->err) break;
      int16_t err = KE_NONE;
      int64_t base = -1;
      takhin_partition_info info = {.log_start_offset = -1};
      const char *msg = NULL;
      if (acks != 0 && acks != 1 && acks != -1) {
        err = KE_INVALID_REQUIRED_ACKS;
      } else if (bad_name) {
        err = KE_UNKNOWN_TOPIC_OR_PARTITION;
      } else if (rec.ptr && rec.len > 16 && rec.ptr[16] != 2) {
        err = KE_UNSUPPORTED_FOR_MESSAGE_FORMAT; /* a v0/v1 MessageSet (Produce v0-v2) */
      } else if (!rec.ptr || rec.len < 61) {
        err = KE_CORRUPT_MESSAGE;
      } else {
        int codec = rec.ptr[22] & 0x07;
        if (codec > 4) {
          err = KE_UNSUPPORTED_COMPRESSION_TYPE;
        } else {
          int rc;
          err = kpid_produce(c, topic, part, (const uint8_t *)rec.ptr, rec.len, &base, &rc);
          if (err) {
            base = -1;
          } else if (rc) {
            err = rc == TAKHIN_EINVAL ? KE_INVALID_RECORD : kerr(rc);
            msg = takhin_errmsg();
            kh_log("produce %s-%d refused: %s", topic, (int)part, msg);
          } else {
            any_ok = 1;
            takhin_partition_info_get(c->store, topic, part, &info);
            if (c->verbose > 1)
              kh_log("produce %s-%d: %zu bytes at offset %lld", topic, (int)part, rec.len,
                     (long long)base);
          }
        }
      }
      kp_w_i32(w, part);
      kp_w_i16(w, err);
      kp_w_i64(w, base);
      if (v >= 2) kp_w_i64(w, -1); /* log_append_time_ms: CreateTime topics */
      if (v >= 5) kp_w_i64(w, info.log_start_offset);
      if (v >= 8) {
        kp_w_i32(w, 0); /* record_errors */
        kp_w_string(w, msg);
      }
    }
  }
  if (r->err) return -1;
  if (v >= 1) kp_w_i32(w, 0); /* throttle */
  /* acks=all: on disk before the answer (see the header comment) */
  if (acks == -1 && any_ok) {
    int rc = takhin_flush(c->store, 1);
    if (rc) kh_log("flush for acks=all failed: %s", takhin_errmsg());
  }
  if (acks == 0) *no_response = 1;
  return 0;
}

/* ---- Fetch -------------------------------------------------------------- */
/* Long polling: the partitions' batches are gathered as views into the
** segment files (takhin_fetch_span_get: no copy; the response goes out with
** writev). When there are fewer than min_bytes of them, nothing went wrong
** and max_wait_ms has not passed, the views are let go and the handler
** sleeps in takhin_cursor_wait_any on every partition asked for, each
** cursor placed at the high watermark just seen, so that any append wakes
** it; then it gathers again. Waits are cut into POLL_SLICE_MS slices so
** SIGTERM ends a long poll promptly. */
#define POLL_SLICE_MS 200

typedef struct fetch_part {
  const char *topic; /* into names; NULL when the name was malformed */
  int32_t partition;
  int64_t offset;
  int32_t max_bytes;
  /* gathered */
  takhin_fetch_span span;
  takhin_partition_info info;
  int16_t err;
  takhin_cursor *cur; /* opened for the first wait */
} fetch_part;

/* Gather every partition's batches within the request's budgets. Returns
** the bytes gathered; *any_err when a partition has an error to report
** (which ends a long poll, as in Kafka). */
static size_t fetch_gather(kh_ctx *c, fetch_part *fp, size_t n, int32_t max_bytes, int *any_err) {
  size_t budget = (size_t)max_bytes, total = 0;
  int first_data = 1;
  *any_err = 0;
  for (size_t k = 0; k < n; k++) {
    fetch_part *f = &fp[k];
    takhin_fetch_span_release(&f->span);
    f->info = (takhin_partition_info){.log_start_offset = -1, .high_watermark = -1};
    f->err = KE_UNKNOWN_TOPIC_OR_PARTITION;
    if (f->topic) {
      size_t want = f->max_bytes > 0 ? (size_t)f->max_bytes : 0;
      if (want > budget) want = budget;
      if (want == 0 && first_data) want = 1; /* the first batch always goes whole */
      int src = want ? takhin_fetch_span_get(c->store, f->topic, f->partition, f->offset, want,
                                             &f->span, &f->info)
                     : takhin_partition_info_get(c->store, f->topic, f->partition, &f->info);
      f->err = kerr(src);
      if (src == TAKHIN_ECORRUPT) f->err = KE_KAFKA_STORAGE_ERROR;
      if (src && src != TAKHIN_ERANGE && src != TAKHIN_ENOTFOUND)
        kh_log("fetch %s-%d at %lld: %s", f->topic, (int)f->partition, (long long)f->offset,
               takhin_errmsg());
    }
    if (f->err != KE_NONE) *any_err = 1;
    if (f->span.len) {
      first_data = 0;
      budget = f->span.len >= budget ? 0 : budget - f->span.len;
      total += f->span.len;
    }
  }
  return total;
}

/* Sleep until one of the partitions grows past what the last gather saw,
** or until deadline. 0 to gather again, -1 to answer now. */
static int fetch_wait(kh_ctx *c, fetch_part *fp, size_t n, int64_t deadline) {
  takhin_cursor *one[8], **cs = n <= 8 ? one : malloc(n * sizeof *cs);
  if (!cs) return -1;
  int rc = 0;
  for (size_t k = 0; k < n && !rc; k++) {
    fetch_part *f = &fp[k];
    if (!f->cur && takhin_cursor_open(c->store, f->topic, f->partition, &f->cur) != TAKHIN_OK)
      rc = -1;
    else if (takhin_cursor_seek(f->cur, f->info.high_watermark, 0, 0) != TAKHIN_OK) rc = -1;
    cs[k] = f->cur;
  }
  for (size_t k = 0; k < n; k++)
    takhin_fetch_span_release(&fp[k].span); /* pin nothing while asleep */
  while (!rc) {
    int64_t left = deadline - now_ms();
    if (left <= 0 || atomic_load(c->stopping)) {
      rc = -1;
      break;
    }
    int wr = takhin_cursor_wait_any(cs, n, left < POLL_SLICE_MS ? left : POLL_SLICE_MS, NULL);
    if (wr == TAKHIN_OK) break;
    if (wr != TAKHIN_END) rc = -1;
  }
  if (cs != one) free(cs);
  return rc;
}

static int fetch(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  kp_i32(r); /* replica_id */
  int32_t max_wait = kp_i32(r);
  int32_t min_bytes = kp_i32(r);
  int32_t max_bytes = kp_i32(r);
  kp_i8(r);                         /* isolation_level: every batch is committed here */
  if (v >= 7) kp_i32(r), kp_i32(r); /* session id, epoch: no sessions (always full fetches) */
  int32_t nt = kp_array(r, 6);
  if (r->err || nt < 0) return -1;
  /* Two passes over the topics: collect, then (after a long poll) answer. */
  size_t cap = 16, n = 0;
  fetch_part *fp = malloc(cap * sizeof *fp);
  char(*names)[TOPIC_MAX + 1] = malloc((size_t)(nt ? nt : 1) * sizeof *names);
  int32_t *tcount = calloc((size_t)(nt ? nt : 1), sizeof *tcount);
  int rc = -1;
  if (!fp || !names || !tcount) goto out;
  for (int32_t t = 0; t < nt && !r->err; t++) {
    kp_str ts = kp_string(r);
    int bad = kp_str_copy(ts, names[t], sizeof names[t]);
    if (bad)
      snprintf(names[t], sizeof names[t], "%.*s", (int)(ts.len < 200 ? ts.len : 200),
               ts.ptr ? ts.ptr : "");
    int32_t np = kp_array(r, 16);
    if (np < 0) np = 0;
    tcount[t] = np;
    for (int32_t i = 0; i < np && !r->err; i++) {
      if (n == cap) {
        fetch_part *nf = realloc(fp, 2 * cap * sizeof *fp);
        if (!nf) goto out;
        fp = nf;
        cap *= 2;
      }
      fetch_part *f = &fp[n++];
      memset(f, 0, sizeof *f);
      f->topic = bad ? NULL : names[t];
      f->partition = kp_i32(r);
      if (v >= 9) kp_i32(r); /* current_leader_epoch */
      f->offset = kp_i64(r);
      if (v >= 5) kp_i64(r); /* log_start_offset (followers only) */
      f->max_bytes = kp_i32(r);
    }
  }
  if (v >= 7) { /* forgotten_topics_data */
    int32_t nf = kp_array(r, 6);
    for (int32_t i = 0; i < nf && !r->err; i++) {
      kp_string(r);
      int32_t np = kp_array(r, 4);
      for (int32_t k = 0; k < np && !r->err; k++) kp_i32(r);
    }
  }
  if (v >= 11) kp_string(r); /* rack_id */
  if (r->err) goto out;
  if (max_bytes <= 0 || max_bytes > FETCH_MAX_BYTES) max_bytes = FETCH_MAX_BYTES;
  int32_t wait_cap = c->max_wait_cap_ms > 0 ? c->max_wait_cap_ms : FETCH_MAX_WAIT_MS;
  int64_t deadline = now_ms() + (max_wait < wait_cap ? max_wait : wait_cap);
  for (;;) {
    int any_err;
    size_t got = fetch_gather(c, fp, n, max_bytes, &any_err);
    /* min_bytes <= 0 or max_wait <= 0: answer at once, as Kafka does */
    if (max_wait <= 0 || min_bytes <= 0 || got >= (size_t)min_bytes || any_err || n == 0) break;
    if (fetch_wait(c, fp, n, deadline)) {
      fetch_gather(c, fp, n, max_bytes, &any_err); /* the answer: what is there now */
      break;
    }
  }
  kp_w_i32(w, 0);                                   /* throttle */
  if (v >= 7) kp_w_i16(w, KE_NONE), kp_w_i32(w, 0); /* error, session_id */
  kp_w_i32(w, nt);
  size_t k = 0;
  for (int32_t t = 0; t < nt; t++) {
    kp_w_string(w, names[t]);
    kp_w_i32(w, tcount[t]);
    for (int32_t i = 0; i < tcount[t]; i++, k++) {
      fetch_part *f = &fp[k];
      kp_w_i32(w, f->partition);
      kp_w_i16(w, f->err);
      kp_w_i64(w, f->info.high_watermark);
      kp_w_i64(w, f->info.high_watermark); /* last_stable_offset: no transactions in flight */
      if (v >= 5) kp_w_i64(w, f->info.log_start_offset);
      kp_w_i32(w, 0);                    /* aborted_transactions: [] */
      if (v >= 11) kp_w_i32(w, -1);      /* preferred_read_replica */
      kp_w_i32(w, (int32_t)f->span.len); /* records: the stored batches, sent from the mapping */
      kp_w_span(w, &f->span);
    }
  }
  rc = 0;
out:
  for (size_t i = 0; fp && i < n; i++) {
    takhin_fetch_span_release(&fp[i].span);
    takhin_cursor_close(fp[i].cur);
  }
  free(fp);
  free(names);
  free(tcount);
  return rc;
}

/* ---- ListOffsets -------------------------------------------------------- */
static int list_offsets(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  kp_i32(r);            /* replica_id */
  if (v >= 2) kp_i8(r); /* isolation_level */
  int32_t nt = kp_array(r, 6);
  if (r->err || nt < 0) return -1;
  if (v >= 2) kp_w_i32(w, 0);
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt && !r->err; t++) {
    char topic[TOPIC_MAX + 1];
    int bad;
    int32_t np = topic_entry(r, w, topic, 12, &bad);
    for (int32_t i = 0; i < np && !r->err; i++) {
      int32_t part = kp_i32(r);
      if (v >= 4) kp_i32(r); /* current_leader_epoch */
      int64_t ts_want = kp_i64(r);
      int64_t off = -1;
      int rc =
          bad ? TAKHIN_ENOTFOUND : takhin_offset_for_time(c->store, topic, part, ts_want, &off);
      kp_w_i32(w, part);
      kp_w_i16(w, kerr(rc));
      kp_w_i64(w, -1); /* timestamp: not looked up */
      kp_w_i64(w, rc ? -1 : off);
      if (v >= 4) kp_w_i32(w, 0);
    }
  }
  return r->err ? -1 : 0;
}

/* ---- FindCoordinator ---------------------------------------------------- */
static int find_coordinator(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  kp_string(r);
  if (v >= 1) kp_i8(r);
  if (r->err) return -1;
  if (v >= 1) kp_w_i32(w, 0);
  kp_w_i16(w, KE_NONE);
  if (v >= 1) kp_w_string(w, NULL);
  kp_w_i32(w, 0);
  kp_w_string(w, c->host);
  kp_w_i32(w, c->port);
  return 0;
}

/* ---- OffsetCommit / OffsetFetch ---------------------------------------- */
static int offset_commit(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  char group[256];
  int bad_group = kp_str_copy(kp_string(r), group, sizeof group);
  kp_str gid = {bad_group ? NULL : group, bad_group ? 0 : strlen(group)};
  int32_t generation = kp_i32(r);
  kp_str member = kp_string(r);
  if (v >= 2 && v <= 4) kp_i64(r); /* retention_time_ms */
  if (v >= 7) kp_string(r);        /* group_instance_id */
  int32_t nt = kp_array(r, 6);
  if (r->err || nt < 0) return -1;
  /* a member of a group with generations commits only in its generation;
  ** no rebalance completes until kg_commit_end (see groups.c) */
  int16_t gen_err = kg_commit_begin(gid, generation, member);
  if (v >= 3) kp_w_i32(w, 0);
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt && !r->err; t++) {
    char topic[TOPIC_MAX + 1];
    int bad;
    int32_t np = topic_entry(r, w, topic, 14, &bad);
    for (int32_t i = 0; i < np && !r->err; i++) {
      int32_t part = kp_i32(r);
      int64_t off = kp_i64(r);
      if (v >= 6) kp_i32(r); /* committed_leader_epoch */
      kp_str meta = kp_string(r);
      char mbuf[4096];
      int16_t err = KE_NONE;
      if (bad_group || group[0] == 0) err = KE_INVALID_REQUEST;
      else if (gen_err) err = gen_err;
      else if (bad) err = KE_UNKNOWN_TOPIC_OR_PARTITION;
      else if (meta.ptr && kp_str_copy(meta, mbuf, sizeof mbuf)) err = KE_OFFSET_METADATA_TOO_LARGE;
      else {
        takhin_offset_commit oc = {topic, part, off, meta.ptr ? mbuf : NULL};
        int rc = takhin_group_commit(c->store, group, &oc, 1);
        err = rc == TAKHIN_EINVAL ? KE_INVALID_REQUEST : kerr(rc);
        if (rc)
          kh_log("commit %s %s-%d@%lld refused: %s", group, topic, (int)part, (long long)off,
                 takhin_errmsg());
      }
      kp_w_i32(w, part);
      kp_w_i16(w, err);
    }
  }
  kg_commit_end(generation);
  return r->err ? -1 : 0;
}

static void write_fetched(kp_writer *w, int16_t v, int32_t part, int64_t off, const char *meta,
                          int16_t err) {
  kp_w_i32(w, part);
  kp_w_i64(w, off);
  if (v >= 5) kp_w_i32(w, -1); /* committed_leader_epoch */
  kp_w_string(w, meta ? meta : "");
  kp_w_i16(w, err);
}

static int offset_fetch(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  char group[256];
  int bad_group = kp_str_copy(kp_string(r), group, sizeof group);
  int32_t nt = kp_array(r, 6);
  if (r->err) return -1;
  if (v >= 3) kp_w_i32(w, 0);
  if (nt < 0) { /* every committed offset of the group (v2+) */
    takhin_group_offset *go = NULL;
    size_t n = 0;
    if (bad_group || takhin_group_list(c->store, group, &go, &n) != TAKHIN_OK) n = 0;
    size_t at = kp_w_reserve32(w);
    int32_t topics = 0;
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j < n && strcmp(go[j].topic, go[i].topic) == 0) j++;
      kp_w_string(w, go[i].topic);
      kp_w_i32(w, (int32_t)(j - i));
      for (size_t k = i; k < j; k++)
        write_fetched(w, v, go[k].partition, go[k].committed_offset, go[k].metadata, KE_NONE);
      topics++;
      i = j;
    }
    kp_w_patch32(w, at, topics);
    takhin_free(go);
  } else {
    kp_w_i32(w, nt);
    for (int32_t t = 0; t < nt && !r->err; t++) {
      char topic[TOPIC_MAX + 1];
      int bad;
      int32_t np = topic_entry(r, w, topic, 4, &bad);
      for (int32_t i = 0; i < np && !r->err; i++) {
        int32_t part = kp_i32(r);
        int64_t off = -1;
        char *meta = NULL;
        int rc = bad || bad_group ? TAKHIN_ENOTFOUND
                                  : takhin_group_fetch(c->store, group, topic, part, &off, &meta);
        /* no committed offset is not an error in Kafka: offset -1. A store
        ** failure is one: answered as "none", it would send the client back
        ** to auto.offset.reset and re-deliver what the group committed. */
        if (rc && rc != TAKHIN_ENOTFOUND)
          kh_log("offset fetch %s %s-%d: %s", group, topic, (int)part, takhin_errmsg());
        write_fetched(w, v, part, rc ? -1 : off, meta,
                      rc && rc != TAKHIN_ENOTFOUND ? KE_UNKNOWN_SERVER_ERROR : KE_NONE);
        takhin_free(meta);
      }
    }
  }
  if (v >= 2) kp_w_i16(w, KE_NONE);
  return r->err ? -1 : 0;
}

/* ---- CreateTopics / DeleteTopics --------------------------------------- */
/* Kafka's dotted config names onto takhin's underscored ones. */
static void config_name(kp_str k, char *out, size_t cap) {
  if (k.len == 16 && memcmp(k.ptr, "compression.type", 16) == 0) {
    snprintf(out, cap, "compression");
    return;
  }
  size_t n = k.len < cap - 1 ? k.len : cap - 1;
  for (size_t i = 0; i < n; i++) out[i] = k.ptr[i] == '.' ? '_' : k.ptr[i];
  out[n] = 0;
}

static int create_topics(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  int32_t nt = kp_array(r, 16);
  if (r->err || nt < 0) return -1;
  /* The answers wait until validate_only and timeout_ms (after the topics)
  ** are known, so remember where each topic starts. */
  kp_reader start = *r;
  for (int32_t t = 0; t < nt && !r->err; t++) {
    kp_string(r), kp_i32(r), kp_i16(r);
    int32_t na = kp_array(r, 8);
    for (int32_t i = 0; i < na && !r->err; i++) {
      kp_i32(r);
      int32_t nb = kp_array(r, 4);
      for (int32_t k = 0; k < nb && !r->err; k++) kp_i32(r);
    }
    int32_t nc = kp_array(r, 4);
    for (int32_t i = 0; i < nc && !r->err; i++) kp_string(r), kp_string(r);
  }
  kp_i32(r); /* timeout_ms */
  int validate_only = v >= 1 ? kp_i8(r) != 0 : 0;
  if (r->err) return -1;
  if (v >= 2) kp_w_i32(w, 0);
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt; t++) {
    kp_str ns = kp_string(&start);
    int32_t parts = kp_i32(&start);
    int16_t rf = kp_i16(&start);
    int32_t na = kp_array(&start, 8);
    for (int32_t i = 0; i < na; i++) {
      kp_i32(&start);
      int32_t nb = kp_array(&start, 4);
      for (int32_t k = 0; k < nb; k++) kp_i32(&start);
    }
    int32_t nc = kp_array(&start, 4);
    const char *cfg[2 * 16 + 1];
    char cbuf[16][2][256];
    int16_t err = KE_NONE;
    char msg[512] = "";
    char name[TOPIC_MAX + 1];
    int nk = 0;
    for (int32_t i = 0; i < nc; i++) {
      kp_str k = kp_string(&start), val = kp_string(&start);
      if (nk >= 16 || !k.ptr || !val.ptr || kp_str_copy(val, cbuf[nk][1], 256)) {
        err = KE_INVALID_CONFIG;
        continue;
      }
      config_name(k, cbuf[nk][0], 256);
      cfg[2 * nk] = cbuf[nk][0];
      cfg[2 * nk + 1] = cbuf[nk][1];
      nk++;
    }
    cfg[2 * nk] = NULL;
    if (parts == -1) parts = c->default_partitions;
    if (kp_str_copy(ns, name, sizeof name)) err = KE_INVALID_TOPIC;
    else if (rf != -1 && rf != 1) {
      err = KE_INVALID_REPLICATION_FACTOR;
      snprintf(msg, sizeof msg, "one broker: replication factor must be 1");
    } else if (na > 0) {
      err = KE_INVALID_REQUEST;
      snprintf(msg, sizeof msg, "manual replica assignment is not supported");
    } else if (parts < 1) err = KE_INVALID_PARTITIONS;
    if (!err && !validate_only) {
      int rc = takhin_topic_create(c->store, name, parts, cfg);
      if (rc == TAKHIN_EEXISTS) err = KE_TOPIC_ALREADY_EXISTS;
      else if (rc == TAKHIN_EINVAL)
        err = strstr(takhin_errmsg(), "name") ? KE_INVALID_TOPIC : KE_INVALID_CONFIG;
      else err = kerr(rc);
      if (rc) snprintf(msg, sizeof msg, "%s", takhin_errmsg());
      else kh_log("created topic %s with %d partitions", name, (int)parts);
    }
    kp_w_stringn(w, ns.ptr ? ns.ptr : "", ns.len);
    kp_w_i16(w, err);
    if (v >= 1) kp_w_string(w, msg[0] ? msg : NULL);
  }
  return 0;
}

static int delete_topics(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  int32_t nt = kp_array(r, 2);
  if (r->err || nt < 0) return -1;
  kp_reader names = *r;
  for (int32_t t = 0; t < nt; t++) kp_string(r);
  kp_i32(r);
  if (r->err) return -1;
  if (v >= 1) kp_w_i32(w, 0);
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt; t++) {
    kp_str ns = kp_string(&names);
    char name[TOPIC_MAX + 1];
    int rc =
        kp_str_copy(ns, name, sizeof name) ? TAKHIN_ENOTFOUND : takhin_topic_delete(c->store, name);
    if (!rc) kh_log("deleted topic %s", name);
    kp_w_stringn(w, ns.ptr ? ns.ptr : "", ns.len);
    kp_w_i16(w, kerr(rc));
  }
  return 0;
}

/* ---- DeleteRecords / DescribeConfigs ------------------------------------ */
static int delete_records(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  (void)v;
  int32_t nt = kp_array(r, 6);
  if (r->err || nt < 0) return -1;
  kp_w_i32(w, 0);
  kp_w_i32(w, nt);
  for (int32_t t = 0; t < nt && !r->err; t++) {
    char topic[TOPIC_MAX + 1];
    int bad;
    int32_t np = topic_entry(r, w, topic, 12, &bad);
    for (int32_t i = 0; i < np && !r->err; i++) {
      int32_t part = kp_i32(r);
      int64_t off = kp_i64(r);
      takhin_partition_info info = {.log_start_offset = -1};
      int rc = bad ? TAKHIN_ENOTFOUND : takhin_partition_info_get(c->store, topic, part, &info);
      if (!rc) {
        if (off == -1) off = info.high_watermark; /* -1: everything produced so far */
        rc = takhin_delete_records(c->store, topic, part, off);
        if (!rc) {
          kh_log("delete records %s-%d below %lld", topic, (int)part, (long long)off);
          takhin_partition_info_get(c->store, topic, part, &info);
        }
      }
      kp_w_i32(w, part);
      kp_w_i64(w, rc ? -1 : info.log_start_offset);
      kp_w_i16(w, rc == TAKHIN_EINVAL ? KE_OFFSET_OUT_OF_RANGE : kerr(rc));
    }
  }
  kp_i32(r); /* timeout_ms */
  return r->err ? -1 : 0;
}

/* One config entry, if keys (a nullable array reader) names it or is null. */
static void config_entry(kp_writer *w, int16_t v, const char *name, const char *value,
                         kp_reader keys, int32_t nkeys, int32_t *count) {
  if (nkeys >= 0) {
    int want = 0;
    for (int32_t i = 0; i < nkeys && !want; i++) {
      kp_str k = kp_string(&keys);
      want = k.ptr && k.len == strlen(name) && !memcmp(k.ptr, name, k.len);
    }
    if (!want) return;
  }
  kp_w_string(w, name);
  kp_w_string(w, value);
  kp_w_i8(w, 0);              /* read_only */
  if (v == 0) kp_w_i8(w, 0);  /* is_default */
  else kp_w_i8(w, 1);         /* config_source: DYNAMIC_TOPIC_CONFIG (the store's row) */
  kp_w_i8(w, 0);              /* is_sensitive */
  if (v >= 1) kp_w_i32(w, 0); /* synonyms */
  (*count)++;
}

static int describe_configs(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  int32_t nres = kp_array(r, 7);
  if (r->err || nres < 0) return -1;
  kp_reader start = *r;
  for (int32_t i = 0; i < nres && !r->err; i++) {
    kp_i8(r), kp_string(r);
    int32_t nk = kp_array(r, 2);
    for (int32_t k = 0; k < nk && !r->err; k++) kp_string(r);
  }
  if (v >= 1) kp_i8(r); /* include_synonyms */
  if (r->err) return -1;
  kp_w_i32(w, 0);
  kp_w_i32(w, nres);
  for (int32_t i = 0; i < nres; i++) {
    int8_t type = kp_i8(&start);
    kp_str name = kp_string(&start);
    int32_t nk = kp_array(&start, 2);
    kp_reader keys = start;
    for (int32_t k = 0; k < nk; k++) kp_string(&start);
    char topic[TOPIC_MAX + 1];
    takhin_topic_desc d;
    int16_t err = KE_NONE;
    const char *msg = NULL;
    if (type == 2) { /* TOPIC */
      int rc = kp_str_copy(name, topic, sizeof topic) ? TAKHIN_ENOTFOUND
                                                      : takhin_topic_describe(c->store, topic, &d);
      if (rc) {
        err = kerr(rc);
        msg = "unknown topic";
      }
    } else if (type != 4) { /* BROKER: no configs to show */
      err = KE_INVALID_REQUEST;
      msg = "only topic and broker resources";
    }
    kp_w_i16(w, err);
    kp_w_string(w, msg);
    kp_w_i8(w, type);
    kp_w_stringn(w, name.ptr ? name.ptr : "", name.len);
    size_t at = kp_w_reserve32(w);
    int32_t count = 0;
    if (type == 2 && !err) {
      for (int k = 0; k < TK_NCONFIGS; k++) { /* every config, under Kafka's name */
        const tk_config_def *def = &tk_config_defs[k];
        const char *f = (const char *)&d + def->desc_off;
        char b[32];
        if (def->type == TK_CFG_INT) snprintf(b, sizeof b, "%lld", (long long)*(const int64_t *)f);
        else if (def->type == TK_CFG_REAL) snprintf(b, sizeof b, "%g", *(const double *)f);
        else snprintf(b, sizeof b, "%s", f);
        config_entry(w, v, def->kafka_name, b, keys, nk, &count);
      }
    }
    kp_w_patch32(w, at, count);
  }
  return 0;
}

/* ---- dispatch ----------------------------------------------------------- */
int kh_dispatch(kh_ctx *c, const uint8_t *frame, size_t len, kp_writer *w) {
  kp_reader r = {frame, frame + len, 0};
  kp_header h;
  /* Peek at key and version: only ApiVersions v3+ has a flexible header
  ** among what is served, and its body is read leniently anyway. */
  if (len < 8) return -1;
  int16_t key = (int16_t)((frame[0] << 8) | frame[1]), ver = (int16_t)((frame[2] << 8) | frame[3]);
  int flexible = key == KP_API_VERSIONS && ver >= 3;
  if (key == KP_API_VERSIONS && ver > 3) { /* unknown layout: just the correlation id */
    h.api_key = key;
    h.api_version = ver;
    r.p = frame + 4;
    h.correlation_id = kp_i32(&r);
  } else if (kp_header_parse(&r, &h, flexible)) {
    return -1;
  }
  if (key != KP_API_VERSIONS && !supported(key, ver)) {
    kh_log("closing: unsupported API key %d version %d (correlation id %d)", key, ver,
           (int)h.correlation_id);
    return -1;
  }
  size_t frame_at = kp_w_reserve32(w);
  kp_w_i32(w, h.correlation_id); /* response header v0 for every version served */
  int rc = 0, no_response = 0;
  switch (key) {
  case KP_API_VERSIONS: api_versions(c, &r, ver, w); break;
  case KP_METADATA: rc = metadata(c, &r, ver, w); break;
  case KP_PRODUCE: rc = produce(c, &r, ver, w, &no_response); break;
  case KP_FETCH: rc = fetch(c, &r, ver, w); break;
  case KP_LIST_OFFSETS: rc = list_offsets(c, &r, ver, w); break;
  case KP_FIND_COORDINATOR: rc = find_coordinator(c, &r, ver, w); break;
  case KP_OFFSET_COMMIT: rc = offset_commit(c, &r, ver, w); break;
  case KP_OFFSET_FETCH: rc = offset_fetch(c, &r, ver, w); break;
  case KP_CREATE_TOPICS: rc = create_topics(c, &r, ver, w); break;
  case KP_DELETE_TOPICS: rc = delete_topics(c, &r, ver, w); break;
  case KP_JOIN_GROUP: rc = kg_join_group(c, &r, ver, h.client_id, w); break;
  case KP_SYNC_GROUP: rc = kg_sync_group(c, &r, ver, w); break;
  case KP_HEARTBEAT: rc = kg_heartbeat(c, &r, ver, w); break;
  case KP_LEAVE_GROUP: rc = kg_leave_group(c, &r, ver, w); break;
  case KP_INIT_PRODUCER_ID: rc = kpid_init_producer_id(c, &r, ver, w); break;
  case KP_DELETE_RECORDS: rc = delete_records(c, &r, ver, w); break;
  case KP_DESCRIBE_CONFIGS: rc = describe_configs(c, &r, ver, w); break;
  default: rc = -1;
  }
  if (c->verbose)
    kh_log("request api %d v%d corr %d: %s", key, ver, (int)h.correlation_id,
           rc ? "malformed, closing" : "ok");
  if (rc || w->err) {
    if (w->err) kh_log("closing: response too large or out of memory (api %d)", key);
    return -1;
  }
  if (no_response) w->len = frame_at;
  else kp_w_patch32(w, frame_at, (int32_t)(kp_w_total(w) - frame_at - 4));
  return 0;
}
