/*
** rawio.c -- whole RecordBatches in and out, for faces that speak Kafka's
** wire protocol: takhin_produce_batch appends a producer's batch as sent
** (no re-encoding), takhin_fetch_batches copies stored batches out as they
** lie in the segment file (no decoding), and takhin_fetch_span_get hands
** out the same bytes as a view into the segment's mapping (no copy), so a
** Kafka client gets the bytes its producer wrote.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "partition.h"
#include "store.h"

/* Decompressed records of one produced batch may not exceed this: a zstd
** bomb must not cost more than a bounded amount of memory. */
#define RAW_MAX_RECORDS_BYTES (256u * 1024 * 1024)

/* The checks that need no decoding: header, size, codec, CRC, counts. */
static int check_frame(const uint8_t *b, size_t len, tk_batch_hdr *hp) {
  tk_batch_hdr h;
  int rc = tk_batch_parse_header(b, len, &h);
  if (rc == TAKHIN_END)
    return tk_err(TAKHIN_ECORRUPT, "batch of %zu bytes is shorter than its header", len);
  if (rc) return rc;
  if ((uint64_t)tk_batch_total(&h) != len)
    return tk_err(TAKHIN_ECORRUPT, "batchLength says %lld bytes, %zu were sent",
                  (long long)tk_batch_total(&h), len);
  int codec = h.attributes & TK_ATTR_CODEC_MASK;
  if (codec > TK_CODEC_ZSTD)
    return tk_err(TAKHIN_EINVAL, "unsupported compression codec %d", codec);
  if (!tk_batch_crc_ok(b, &h))
    return tk_err(TAKHIN_ECORRUPT, "batch CRC-32C does not match its bytes");
  if (h.records_count < 1 || (int64_t)h.records_count != (int64_t)h.last_offset_delta + 1)
    return tk_err(TAKHIN_ECORRUPT, "recordsCount %d does not match lastOffsetDelta %d",
                  (int)h.records_count, (int)h.last_offset_delta);
  *hp = h;
  return TAKHIN_OK;
}

int takhin_batch_check(const void *batch, size_t len) {
  if (!batch) return tk_err(TAKHIN_EMISUSE, "takhin_batch_check: batch is NULL");
  tk_batch_hdr h;
  return check_frame(batch, len, &h);
}

int takhin_produce_batch(takhin_store *s, const char *topic, int32_t partition, const void *batch,
                         size_t len, int64_t *base_offset) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_produce_batch: store is NULL or closed");
  if (!batch) return tk_err(TAKHIN_EMISUSE, "takhin_produce_batch: batch is NULL");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  const uint8_t *b = batch;
  tk_batch_hdr h;
  int rc = check_frame(b, len, &h);
  if (rc) return rc;
  int codec = h.attributes & TK_ATTR_CODEC_MASK;
  tk_topic *t;
  tk_partition *p;
  if ((rc = tk_store_partition(s, topic, partition, &t, &p))) return rc;
  /* Decode every record: the batch must be as sound as one recovery
  ** accepts, and a compacted topic needs the keys. */
  ZSTD_DCtx *dctx = NULL;
  tk_buf scratch = {0};
  takhin_record *keys = NULL;
  int compact = t->cfg.compact;
  if (codec == TK_CODEC_ZSTD && !(dctx = ZSTD_createDCtx())) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
    goto out;
  }
  const uint8_t *q;
  size_t qlen;
  if ((rc = tk_batch_records(b, &h, dctx, &scratch, RAW_MAX_RECORDS_BYTES, &q, &qlen))) goto out;
  if (compact && !(keys = calloc((size_t)h.records_count, sizeof *keys))) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory reading keys");
    goto out;
  }
  const uint8_t *end = q + qlen;
  for (int32_t i = 0; i < h.records_count; i++) {
    takhin_message m;
    if ((rc = tk_record_decode(&q, end, &h, &m))) goto out;
    if (m.offset - h.base_offset != i) {
      rc = tk_err(TAKHIN_ECORRUPT,
                  "record %d has offsetDelta %lld; a produced batch numbers "
                  "its records 0, 1, 2, ...",
                  (int)i, (long long)(m.offset - h.base_offset));
      goto out;
    }
    if (compact) {
      if (!m.key) {
        rc = tk_err(TAKHIN_EINVAL, "topic \"%s\" is compacted: record %d has a null key", t->name,
                    (int)i);
        goto out;
      }
      keys[i].key = m.key;
      keys[i].key_len = m.key_len;
      keys[i].value = m.value;
    }
  }
  if (q != end) {
    rc = tk_err(TAKHIN_ECORRUPT, "%zu bytes follow the last record", (size_t)(end - q));
    goto out;
  }
  rc = tk_part_append_raw(p, b, len, h.records_count, keys, compact ? (size_t)h.records_count : 0,
                          base_offset);
out:
  free(keys);
  tk_buf_free(&scratch);
  ZSTD_freeDCtx(dctx);
  tk_topic_unref(t);
  return rc;
}

static int pread_all(int fd, uint8_t *dst, size_t n, int64_t at) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, dst + done, n - done, at + (int64_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return tk_err_sys(errno, "read", "segment");
    if (r == 0) return tk_err(TAKHIN_ECORRUPT, "segment shorter than its index says");
    done += (size_t)r;
  }
  return TAKHIN_OK;
}

/* Copy whole batches from segment g, starting with the one holding offset,
** between pos and end. TK-style return; ERANGE when g was retired meanwhile. */
static int copy_batches(tk_segment *g, int64_t pos, int64_t end, int64_t offset, size_t max_bytes,
                        void **out, size_t *len) {
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  uint8_t hb[TK_BATCH_HEADER_SIZE];
  tk_batch_hdr h;
  int64_t from = -1, to = -1;
  while (pos + TK_BATCH_HEADER_SIZE <= end) {
    if ((rc = pread_all(fd, hb, sizeof hb, pos))) break;
    if ((rc = tk_batch_parse_header(hb, sizeof hb, &h))) break;
    int64_t total = tk_batch_total(&h);
    if (pos + total > end) break;
    if (from < 0 && h.base_offset + h.last_offset_delta < offset) { /* before offset: skip */
      pos += total;
      continue;
    }
    if (from < 0) from = pos;
    else if ((size_t)(pos + total - from) > max_bytes) break;
    to = pos + total;
    pos = to;
    if ((size_t)(to - from) >= max_bytes) break;
  }
  if (rc || from < 0) {
    tk_seg_fd_release(g);
    return rc;
  }
  size_t n = (size_t)(to - from);
  uint8_t *buf = malloc(n);
  if (!buf) rc = tk_err(TAKHIN_ENOMEM, "out of memory reading %zu bytes", n);
  else rc = pread_all(fd, buf, n, from);
  tk_seg_fd_release(g);
  /* Never hand out a batch that fails its CRC; keep the good ones before it. */
  size_t good = 0;
  while (!rc && good < n) {
    tk_batch_parse_header(buf + good, n - good, &h);
    if (!tk_batch_crc_ok(buf + good, &h)) break;
    good += (size_t)tk_batch_total(&h);
  }
  if (!rc && good == 0)
    rc = tk_err(TAKHIN_ECORRUPT, "the batch at offset %lld fails its CRC", (long long)offset);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = good;
  return TAKHIN_OK;
}

/* The batches of segment g from the one holding offset, between pos and
** end, as a view into g's read-only mapping: the same selection and CRC
** checks as copy_batches, without the copy. On success sp->data points
** into the mapping and sp holds a ref on g, which keeps the mapping (and so
** the bytes, even once compaction or retention has retired the file: the
** mapping keeps its inode) until takhin_fetch_span_release. 1 when g
** cannot be mapped (the caller copies instead). */
static int map_batches(tk_segment *g, int64_t pos, int64_t end, int sealed, int64_t offset,
                       size_t max_bytes, takhin_fetch_span *sp) {
  const uint8_t *map = tk_seg_map(g, end, sealed);
  if (!map) return 1;
  tk_batch_hdr h;
  int64_t from = -1, to = -1;
  int damaged = 0;
  while (pos + TK_BATCH_HEADER_SIZE <= end) {
    if (tk_batch_parse_header(map + pos, (size_t)(end - pos), &h)) {
      damaged = 1;
      break;
    }
    int64_t total = tk_batch_total(&h);
    if (pos + total > end) break;
    if (from < 0 && h.base_offset + h.last_offset_delta < offset) { /* before offset: skip */
      pos += total;
      continue;
    }
    /* Never hand out a batch that fails its CRC; keep the good ones before it. */
    if (!tk_batch_crc_ok(map + pos, &h)) {
      damaged = 1;
      break;
    }
    if (from < 0) from = pos;
    else if ((size_t)(pos + total - from) > max_bytes) break;
    to = pos + total;
    pos = to;
    if ((size_t)(to - from) >= max_bytes) break;
  }
  if (from < 0 && damaged)
    return tk_err(TAKHIN_ECORRUPT, "the batch at offset %lld is damaged (CRC or header)",
                  (long long)offset);
  if (from < 0) return TAKHIN_OK;
  tk_seg_ref(g);
  sp->data = map + from;
  sp->len = (size_t)(to - from);
  sp->hold_[0] = g;
  return TAKHIN_OK;
}

/* Shared by takhin_fetch_batches (copy) and takhin_fetch_span_get (map
** where it can, else copy). */
static int fetch_batches(takhin_store *s, const char *topic, int32_t partition, int64_t offset,
                         size_t max_bytes, int use_map, takhin_fetch_span *sp,
                         takhin_partition_info *info) {
  memset(sp, 0, sizeof *sp);
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  if (s->opt.read_only) tk_part_refresh(p);
  for (int attempt = 0; attempt < 64; attempt++) {
    pthread_rwlock_rdlock(&p->meta_lock);
    int64_t start = p->log_start, hwm = p->next_offset, pending = p->pending_next;
    pthread_rwlock_unlock(&p->meta_lock);
    if (!s->opt.read_only && offset >= hwm && pending > hwm) { /* BUFFERED: make them readable */
      tk_part_flush(p, 0, 0);
      continue;
    }
    if (info) {
      memset(info, 0, sizeof *info);
      info->log_start_offset = start;
      info->high_watermark = hwm;
    }
    if (offset < start || offset > hwm) {
      rc = tk_err(TAKHIN_ERANGE, "offset %lld out of range [%lld, %lld] for %s-%d",
                  (long long)offset, (long long)start, (long long)hwm, t->name, (int)partition);
      break;
    }
    int64_t pos, end, seg_next, entry, h2;
    int sealed;
    tk_segment *g = tk_part_locate(p, offset, &pos, &end, &h2, &seg_next, &sealed, &entry);
    if (!g) {
      rc = TAKHIN_OK;
      break;
    } /* offset == high watermark: nothing yet */
    size_t mb = max_bytes ? max_bytes : 1;
    rc = use_map ? map_batches(g, pos, end, sealed, offset, mb, sp) : 1;
    if (rc == 1) {
      void *buf = NULL;
      size_t len = 0;
      rc = copy_batches(g, pos, end, offset, mb, &buf, &len);
      if (!rc) sp->data = sp->hold_[1] = buf, sp->len = len;
    }
    tk_seg_unref(g);
    if (!rc && sp->len == 0 && seg_next > offset && seg_next < hwm) {
      offset = seg_next; /* compaction emptied the rest of this segment: go on to the next */
      continue;
    }
    if (rc != TAKHIN_ERANGE) break; /* ERANGE: retention or compaction retired it; look again */
  }
  tk_topic_unref(t);
  return rc;
}

int takhin_fetch_batches(takhin_store *s, const char *topic, int32_t partition, int64_t offset,
                         size_t max_bytes, void **out, size_t *len, takhin_partition_info *info) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_fetch_batches: store is NULL or closed");
  if (!out || !len) return tk_err(TAKHIN_EMISUSE, "takhin_fetch_batches: NULL argument");
  takhin_fetch_span sp;
  int rc = fetch_batches(s, topic, partition, offset, max_bytes, 0, &sp, info);
  *out = rc ? NULL : sp.hold_[1];
  *len = rc ? 0 : sp.len;
  return rc;
}

int takhin_fetch_span_get(takhin_store *s, const char *topic, int32_t partition, int64_t offset,
                          size_t max_bytes, takhin_fetch_span *out, takhin_partition_info *info) {
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_fetch_span_get: out is NULL");
  memset(out, 0, sizeof *out);
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_fetch_span_get: store is NULL or closed");
  return fetch_batches(s, topic, partition, offset, max_bytes, 1, out, info);
}

void takhin_fetch_span_release(takhin_fetch_span *sp) {
  if (!sp) return;
  if (sp->hold_[0]) tk_seg_unref(sp->hold_[0]);
  free(sp->hold_[1]);
  memset(sp, 0, sizeof *sp);
}
