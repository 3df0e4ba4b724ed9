/*
** batch.c -- encoder and strict decoder of Kafka RecordBatch v2 (byte layout at
** the top of batch.h).
**
** Encoding is two passes over the records: the first resolves timestamps and
** sizes every record, so the output (and, for zstd, the scratch buffer that
** holds the uncompressed records area) is reserved once; the second writes.
** Nothing is allocated once the buffers have reached their working size.
**
** Decoding trusts nothing: its input may be a torn tail, a flipped bit or a
** fuzzer's invention. Every read is bounded by an explicit end pointer, every
** varint has a length limit (5 bytes for varint, 10 for varlong) and must fit
** its type, every length is either -1 (null, where Kafka allows it) or fits in
** what is left, and all arithmetic on decoded values is overflow-checked.
** Anything else is TAKHIN_ECORRUPT. zstd data is decoded with the streaming
** API because Kafka's Java producer writes frames without a content size.
** Failures leave a message for takhin_errmsg() through tk_err (error.c).
*/
#include "batch.h"

#include <limits.h>
#include <string.h>
#include <zstd_errors.h>

#include "crc32c.h"
#include "codecs.h"
#include "error.h"

/* A batchLength above this is corrupt rather than merely large: Kafka's own
** ceiling on a batch is far below it, and it keeps every size in an int32. */
#define TK_MAX_BATCH_LENGTH (1 << 30)
/* The most bytes a records area (compressed or not) may then take. */
#define TK_MAX_AREA (TK_MAX_BATCH_LENGTH - (TK_BATCH_HEADER_SIZE - TK_LOG_OVERHEAD))

#define TK_ATTR_LOG_APPEND_TIME 0x08
#define TK_CRC_OFFSET 17
#define TK_ATTR_OFFSET 21

/* ---- fixed-width big-endian fields ------------------------------------ */

static void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static void put_be64(uint8_t *p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
}
static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

/* Two's complement reinterpretation without implementation-defined casts. */
static int16_t as_i16(uint16_t v) {
  return v <= INT16_MAX ? (int16_t)v : (int16_t)(-(int32_t)(UINT16_MAX - v) - 1);
}
static int32_t as_i32(uint32_t v) {
  return v <= INT32_MAX ? (int32_t)v : -(int32_t)(UINT32_MAX - v) - 1;
}
static int64_t as_i64(uint64_t v) {
  return v <= INT64_MAX ? (int64_t)v : -(int64_t)(UINT64_MAX - v) - 1;
}

/* ---- zigzag varints ---------------------------------------------------- */

static uint64_t zigzag(int64_t v) {
  return v < 0 ? ((uint64_t)(-(v + 1)) << 1) | 1 : (uint64_t)v << 1;
}

/* Encoded size of v. A non-negative int32 encodes the same as varint and
** varlong, so one writer serves both. */
static size_t varlong_size(int64_t v) {
  uint64_t z = zigzag(v);
  size_t n = 1;
  while (z >= 0x80) {
    z >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varlong(uint8_t *d, int64_t v) {
  uint64_t z = zigzag(v);
  while (z >= 0x80) {
    *d++ = (uint8_t)(z | 0x80);
    z >>= 7;
  }
  *d++ = (uint8_t)z;
  return d;
}

/* Read a zigzag varint of at most max_bytes bytes and bits significant bits
** from *pp (bounded by end) into *out, advancing *pp. 0 on success, -1 when
** truncated, too long, or carrying bits past the type's width. */
static int get_zigzag(const uint8_t **pp, const uint8_t *end, int max_bytes, int bits,
                      uint64_t *out) {
  const uint8_t *p = *pp;
  if (p < end && *p < 0x80) { /* one byte: most lengths and deltas */
    *pp = p + 1;
    *out = *p;
    return 0;
  }
  uint64_t z = 0;
  for (int i = 0; i < max_bytes; i++) {
    if (p >= end) return -1;
    uint8_t b = *p++;
    int shift = 7 * i;
    if (shift + 7 > bits && (b & 0x7f) >> (bits - shift)) return -1;
    z |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *pp = p;
      *out = z;
      return 0;
    }
  }
  return -1;
}

static int get_varint(const uint8_t **pp, const uint8_t *end, int32_t *out) {
  uint64_t z;
  if (get_zigzag(pp, end, 5, 32, &z)) return -1;
  uint32_t h = (uint32_t)(z >> 1);
  *out = (z & 1) ? -(int32_t)h - 1 : (int32_t)h;
  return 0;
}

static int get_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out) {
  uint64_t z;
  if (get_zigzag(pp, end, 10, 64, &z)) return -1;
  uint64_t h = z >> 1;
  *out = (z & 1) ? -(int64_t)h - 1 : (int64_t)h;
  return 0;
}

/* Read a Kafka length (varint) that must be -1 (only when nullable) or fit in
** the bytes left before end. *len is -1 for null. */
static int get_length(const uint8_t **pp, const uint8_t *end, int nullable, int32_t *len) {
  int32_t n;
  if (get_varint(pp, end, &n)) return -1;
  if (n < -1 || (n == -1 && !nullable)) return -1;
  if (n > end - *pp) return -1;
  *len = n;
  return 0;
}

/* ---- encoder ----------------------------------------------------------- */

/* Encoded size of a nullable byte string (-1 length when p is NULL). */
static size_t bytes_size(const void *p, size_t len) {
  return p ? varlong_size((int64_t)len) + len : 1;
}

static uint8_t *put_bytes(uint8_t *d, const void *p, size_t len) {
  if (!p) return put_varlong(d, -1);
  d = put_varlong(d, (int64_t)len);
  if (len) memcpy(d, p, len);
  return d + len;
}

static int64_t resolve_ts(int64_t ts, int64_t now_ms) {
  return ts == TAKHIN_TIMESTAMP_NOW ? now_ms : ts;
}

/* Bytes of record r after its length varint, or 0 when a field is invalid or
** the record alone would exceed the batch ceiling. */
static size_t record_body_size(const takhin_record *r, int64_t ts_delta, int32_t off_delta) {
  const size_t cap = TK_MAX_BATCH_LENGTH;
  if ((r->key && r->key_len > cap) || (r->value && r->value_len > cap)) return 0;
  if (r->n_headers > cap || (r->n_headers && !r->headers)) return 0;
  size_t n = 1 + varlong_size(ts_delta) + varlong_size(off_delta) + bytes_size(r->key, r->key_len) +
             bytes_size(r->value, r->value_len) + varlong_size((int64_t)r->n_headers);
  for (size_t i = 0; i < r->n_headers && n <= cap; i++) {
    const takhin_header *hd = &r->headers[i];
    if (hd->key_len > cap || (!hd->key && hd->key_len) || (hd->value && hd->value_len > cap))
      return 0;
    n += varlong_size((int64_t)hd->key_len) + hd->key_len + bytes_size(hd->value, hd->value_len);
  }
  return n <= cap ? n : 0;
}

static uint8_t *write_record(uint8_t *d, const takhin_record *r, size_t body, int64_t ts_delta,
                             int32_t off_delta) {
  d = put_varlong(d, (int64_t)body);
  *d++ = 0; /* record attributes: unused by Kafka */
  d = put_varlong(d, ts_delta);
  d = put_varlong(d, off_delta);
  d = put_bytes(d, r->key, r->key_len);
  d = put_bytes(d, r->value, r->value_len);
  d = put_varlong(d, (int64_t)r->n_headers);
  for (size_t i = 0; i < r->n_headers; i++) {
    const takhin_header *hd = &r->headers[i];
    d = put_varlong(d, (int64_t)hd->key_len);
    if (hd->key_len) memcpy(d, hd->key, hd->key_len);
    d += hd->key_len;
    d = put_bytes(d, hd->value, hd->value_len);
  }
  return d;
}

int tk_batch_encode(tk_buf *out, int64_t base_offset, const takhin_record *recs, size_t n,
                    int64_t now_ms, int codec, ZSTD_CCtx *cctx, tk_buf *scratch, int64_t *max_ts) {
  if (!out || !recs || n == 0) return tk_err(TAKHIN_EINVAL, "a batch needs at least one record");
  if (n - 1 > (size_t)INT32_MAX)
    return tk_err(TAKHIN_EINVAL, "%zu records do not fit in one batch", n);
  if (base_offset < 0 || base_offset > INT64_MAX - (int64_t)(n - 1))
    return tk_err(TAKHIN_EINVAL, "base offset %lld out of range for %zu records",
                  (long long)base_offset, n);
  if (codec != TK_CODEC_NONE && codec != TK_CODEC_ZSTD)
    return tk_err(TAKHIN_EINVAL, "unsupported compression codec %d", codec);
  if (codec == TK_CODEC_ZSTD && (!cctx || !scratch))
    return tk_err(TAKHIN_EINVAL, "zstd needs a compression context and a scratch buffer");

  /* Pass 1: timestamps and the exact size of the records area. */
  const int64_t base_ts = resolve_ts(recs[0].timestamp, now_ms);
  int64_t top_ts = base_ts;
  size_t area = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t ts = resolve_ts(recs[i].timestamp, now_ms);
    if (ts < 0)
      return tk_err(TAKHIN_EINVAL, "record %zu: timestamp %lld is negative", i, (long long)ts);
    if (ts > top_ts) top_ts = ts;
    size_t body = record_body_size(&recs[i], ts - base_ts, (int32_t)i);
    if (!body)
      return tk_err(TAKHIN_EINVAL,
                    "record %zu: a field is over 1 GiB, or a header key is NULL "
                    "with a nonzero length",
                    i);
    area += varlong_size((int64_t)body) + body;
    if (area > TK_MAX_AREA) return tk_err(TAKHIN_EINVAL, "%zu records make a batch over 1 GiB", n);
  }

  /* Pass 2: write the records where they go, compressing them if asked. */
  size_t room = codec == TK_CODEC_ZSTD ? ZSTD_compressBound(area) : area;
  if (tk_buf_reserve(out, TK_BATCH_HEADER_SIZE + room))
    return tk_err(TAKHIN_ENOMEM, "out of memory for a batch of %zu bytes", room);
  uint8_t *b = out->p + out->len;
  uint8_t *d = codec == TK_CODEC_ZSTD ? NULL : b + TK_BATCH_HEADER_SIZE;
  if (codec == TK_CODEC_ZSTD) {
    scratch->len = 0;
    if (tk_buf_reserve(scratch, area))
      return tk_err(TAKHIN_ENOMEM, "out of memory for a batch of %zu bytes", area);
    d = scratch->p;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t ts_delta = resolve_ts(recs[i].timestamp, now_ms) - base_ts;
    size_t body = record_body_size(&recs[i], ts_delta, (int32_t)i);
    d = write_record(d, &recs[i], body, ts_delta, (int32_t)i);
  }
  size_t payload = area;
  if (codec == TK_CODEC_ZSTD) {
    scratch->len = area;
    size_t z = ZSTD_compress2(cctx, b + TK_BATCH_HEADER_SIZE, room, scratch->p, area);
    if (ZSTD_isError(z))
      return tk_err(ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation ? TAKHIN_ENOMEM
                                                                         : TAKHIN_EINVAL,
                    "zstd compression failed: %s", ZSTD_getErrorName(z));
    payload = z;
    if (payload > TK_MAX_AREA)
      return tk_err(TAKHIN_EINVAL, "%zu records make a batch over 1 GiB", n);
  }

  size_t total = TK_BATCH_HEADER_SIZE + payload;
  put_be64(b + 0, (uint64_t)base_offset);
  put_be32(b + 8, (uint32_t)(total - TK_LOG_OVERHEAD));
  put_be32(b + 12, 0); /* partitionLeaderEpoch */
  b[16] = TK_MAGIC;
  put_be16(b + 21, (uint16_t)codec); /* CreateTime, not transactional */
  put_be32(b + 23, (uint32_t)(n - 1));
  put_be64(b + 27, (uint64_t)base_ts);
  put_be64(b + 35, (uint64_t)top_ts);
  put_be64(b + 43, UINT64_MAX); /* producerId -1 */
  put_be16(b + 51, UINT16_MAX); /* producerEpoch -1 */
  put_be32(b + 53, UINT32_MAX); /* baseSequence -1 */
  put_be32(b + 57, (uint32_t)n);
  put_be32(b + TK_CRC_OFFSET, tk_crc32c(0, b + TK_ATTR_OFFSET, total - TK_ATTR_OFFSET));
  out->len += total;
  if (max_ts) *max_ts = top_ts;
  return TAKHIN_OK;
}

/* ---- decoder ----------------------------------------------------------- */

int tk_batch_parse_header(const uint8_t *p, size_t avail, tk_batch_hdr *h) {
  if (avail < TK_BATCH_HEADER_SIZE) return TAKHIN_END;
  h->base_offset = as_i64(get_be64(p + 0));
  h->batch_length = as_i32(get_be32(p + 8));
  h->leader_epoch = as_i32(get_be32(p + 12));
  h->magic = (int8_t)(p[16] <= INT8_MAX ? p[16] : -(int)(UINT8_MAX - p[16]) - 1);
  h->crc = get_be32(p + TK_CRC_OFFSET);
  h->attributes = as_i16(get_be16(p + 21));
  h->last_offset_delta = as_i32(get_be32(p + 23));
  h->base_timestamp = as_i64(get_be64(p + 27));
  h->max_timestamp = as_i64(get_be64(p + 35));
  h->producer_id = as_i64(get_be64(p + 43));
  h->producer_epoch = as_i16(get_be16(p + 51));
  h->base_sequence = as_i32(get_be32(p + 53));
  h->records_count = as_i32(get_be32(p + 57));

  if (h->magic != TK_MAGIC) return tk_err(TAKHIN_ECORRUPT, "batch magic %d, expected 2", h->magic);
  if (h->batch_length < TK_BATCH_HEADER_SIZE - TK_LOG_OVERHEAD ||
      h->batch_length > TK_MAX_BATCH_LENGTH)
    return tk_err(TAKHIN_ECORRUPT, "batchLength %d out of range [%d, %d]", h->batch_length,
                  TK_BATCH_HEADER_SIZE - TK_LOG_OVERHEAD, TK_MAX_BATCH_LENGTH);
  if (h->base_offset < 0 || h->last_offset_delta < 0 ||
      h->base_offset > INT64_MAX - h->last_offset_delta)
    return tk_err(TAKHIN_ECORRUPT, "baseOffset %lld with lastOffsetDelta %d is out of range",
                  (long long)h->base_offset, h->last_offset_delta);
  /* Each record owns a distinct offset delta in [0, lastOffsetDelta];
  ** compaction may leave fewer records, never more. */
  if (h->records_count < 0 || (int64_t)h->records_count > (int64_t)h->last_offset_delta + 1)
    return tk_err(TAKHIN_ECORRUPT, "recordsCount %d does not fit lastOffsetDelta %d",
                  h->records_count, h->last_offset_delta);
  return TAKHIN_OK;
}

int tk_batch_crc_ok(const uint8_t *p, const tk_batch_hdr *h) {
  int64_t total = tk_batch_total(h);
  if (total < TK_BATCH_HEADER_SIZE) return 0;
  return tk_crc32c(0, p + TK_ATTR_OFFSET, (size_t)total - TK_ATTR_OFFSET) == h->crc;
}

/* Decompress the zstd data src[0..n) into scratch, at most max_out bytes.
** Concatenated frames are accepted (a stream decoder would read them too);
** a truncated frame or trailing garbage is not. */
static int zstd_inflate(const uint8_t *src, size_t n, ZSTD_DCtx *dctx, tk_buf *scratch,
                        size_t max_out) {
  /* One byte of headroom past max_out tells "exactly max_out" from "more". */
  const size_t limit = max_out < SIZE_MAX ? max_out + 1 : max_out;
  if (!dctx || !scratch)
    return tk_err(TAKHIN_EMISUSE, "zstd batch without a decompression context");
  size_t ret = ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
  if (ZSTD_isError(ret)) return tk_err(TAKHIN_EMISUSE, "zstd: %s", ZSTD_getErrorName(ret));

  size_t want = n < SIZE_MAX / 4 ? 4 * n : n;
  unsigned long long declared = ZSTD_getFrameContentSize(src, n);
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR) {
    if (declared > max_out)
      return tk_err(TAKHIN_ECORRUPT, "zstd frame declares %llu bytes, more than the %zu allowed",
                    declared, max_out);
    want = (size_t)declared + 1;
  }
  if (want < 256) want = 256;
  if (want > limit) want = limit;
  scratch->len = 0;
  if (scratch->cap < want && tk_buf_reserve(scratch, want))
    return tk_err(TAKHIN_ENOMEM, "out of memory decompressing a batch");

  ZSTD_inBuffer in = {src, n, 0};
  ZSTD_outBuffer o = {scratch->p, scratch->cap < limit ? scratch->cap : limit, 0};
  for (;;) {
    if (o.pos == o.size) {
      if (o.size >= limit)
        return tk_err(TAKHIN_ECORRUPT, "zstd data decompresses to more than the %zu bytes allowed",
                      max_out);
      size_t grow = o.size < limit / 2 ? 2 * o.size : limit;
      scratch->len = o.pos;
      if (tk_buf_reserve(scratch, grow - o.pos))
        return tk_err(TAKHIN_ENOMEM, "out of memory decompressing a batch");
      o.dst = scratch->p;
      o.size = scratch->cap < limit ? scratch->cap : limit;
    }
    ret = ZSTD_decompressStream(dctx, &o, &in);
    if (ZSTD_isError(ret)) return tk_err(TAKHIN_ECORRUPT, "zstd: %s", ZSTD_getErrorName(ret));
    if (ret == 0 && in.pos == in.size) break;
    if (in.pos == in.size && o.pos < o.size)
      return tk_err(TAKHIN_ECORRUPT, "zstd data ends inside a frame");
  }
  if (o.pos > max_out)
    return tk_err(TAKHIN_ECORRUPT, "zstd data decompresses to more than the %zu bytes allowed",
                  max_out);
  scratch->len = o.pos;
  return TAKHIN_OK;
}

int tk_batch_records(const uint8_t *p, const tk_batch_hdr *h, ZSTD_DCtx *dctx, tk_buf *scratch,
                     size_t max_out, const uint8_t **recs, size_t *recs_len) {
  if (tk_batch_total(h) < TK_BATCH_HEADER_SIZE)
    return tk_err(TAKHIN_ECORRUPT, "batchLength %d is shorter than a header", h->batch_length);
  const uint8_t *area = p + TK_BATCH_HEADER_SIZE;
  size_t area_len = (size_t)(tk_batch_total(h) - TK_BATCH_HEADER_SIZE);
  switch (h->attributes & TK_ATTR_CODEC_MASK) {
  case TK_CODEC_NONE:
    *recs = area;
    *recs_len = area_len;
    return TAKHIN_OK;
  case TK_CODEC_ZSTD: {
    int rc = zstd_inflate(area, area_len, dctx, scratch, max_out);
    if (rc) return rc;
    *recs = scratch->p;
    *recs_len = scratch->len;
    return TAKHIN_OK;
  }
  case TK_CODEC_GZIP:
  case TK_CODEC_SNAPPY:
  case TK_CODEC_LZ4: { /* as Kafka clients send them (codecs.c) */
    if (!scratch) return tk_err(TAKHIN_EMISUSE, "compressed batch without a scratch buffer");
    int rc = tk_codec_inflate(h->attributes & TK_ATTR_CODEC_MASK, area, area_len, scratch, max_out);
    if (rc) return rc;
    *recs = scratch->p;
    *recs_len = scratch->len;
    return TAKHIN_OK;
  }
  default: /* an undefined codec */
    return tk_err(TAKHIN_ECORRUPT, "unsupported compression codec %d",
                  h->attributes & TK_ATTR_CODEC_MASK);
  }
}

int tk_header_next(const uint8_t **pp, const uint8_t *end, takhin_header *out) {
  const uint8_t *p = *pp;
  int32_t klen, vlen;
  if (get_length(&p, end, 0, &klen))
    return tk_err(TAKHIN_ECORRUPT, "record header: bad or truncated key length");
  const uint8_t *key = p;
  p += klen;
  if (get_length(&p, end, 1, &vlen))
    return tk_err(TAKHIN_ECORRUPT, "record header: bad or truncated value length");
  out->key = (const char *)key;
  out->key_len = (size_t)klen;
  out->value = vlen < 0 ? NULL : p;
  out->value_len = vlen < 0 ? 0 : (size_t)vlen;
  *pp = p + (vlen < 0 ? 0 : vlen);
  return TAKHIN_OK;
}

int tk_record_skip_general(const uint8_t **pp, const uint8_t *end, const tk_batch_hdr *h,
                           int64_t *offset) {
  const uint8_t *p = *pp;
  int32_t len, off_delta;
  int64_t ts_delta;
  /* The short-field path is tk_record_skip's, inline (batch.h); this one
  ** takes any record. */
  if (get_length(&p, end, 0, &len) || len == 0)
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated length");
  const uint8_t *rend = p + len;
  p++; /* attributes */
  if (get_varlong(&p, rend, &ts_delta))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated timestampDelta");
  if (get_varint(&p, rend, &off_delta))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated offsetDelta");
  if (off_delta < 0 || off_delta > h->last_offset_delta)
    return tk_err(TAKHIN_ECORRUPT, "record: offsetDelta %d outside [0, %d]", off_delta,
                  h->last_offset_delta);
  *offset = h->base_offset + off_delta; /* the header's check keeps this in range */
  *pp = rend;
  return TAKHIN_OK;
}

int tk_record_decode(const uint8_t **pp, const uint8_t *end, const tk_batch_hdr *h,
                     takhin_message *m) {
  const uint8_t *p = *pp;
  int32_t len, off_delta, klen, vlen, n_headers;
  int64_t ts_delta;
  takhin_message r;

  if (get_length(&p, end, 0, &len) || len == 0)
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated length");
  const uint8_t *rend = p + len;
  p++; /* record attributes: unused by Kafka */
  if (get_varlong(&p, rend, &ts_delta))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated timestampDelta");
  if (get_varint(&p, rend, &off_delta))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated offsetDelta");
  if (off_delta < 0 || off_delta > h->last_offset_delta ||
      __builtin_add_overflow(h->base_offset, (int64_t)off_delta, &r.offset))
    return tk_err(TAKHIN_ECORRUPT, "record: offsetDelta %d outside [0, %d]", off_delta,
                  h->last_offset_delta);
  if (h->attributes & TK_ATTR_LOG_APPEND_TIME)
    r.timestamp = h->max_timestamp; /* the broker's clock replaces every record's */
  else if (__builtin_add_overflow(h->base_timestamp, ts_delta, &r.timestamp))
    return tk_err(TAKHIN_ECORRUPT, "record: timestampDelta %lld overflows", (long long)ts_delta);

  if (get_length(&p, rend, 1, &klen))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated key length");
  r.key = klen < 0 ? NULL : p;
  r.key_len = klen < 0 ? 0 : (size_t)klen;
  p += r.key_len;
  if (get_length(&p, rend, 1, &vlen))
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated value length");
  r.value = vlen < 0 ? NULL : p;
  r.value_len = vlen < 0 ? 0 : (size_t)vlen;
  p += r.value_len;

  /* Each header takes at least two bytes: absurd counts fail up front. */
  if (get_varint(&p, rend, &n_headers) || n_headers < 0 || n_headers > (rend - p) / 2)
    return tk_err(TAKHIN_ECORRUPT, "record: bad or truncated header count");
  r.headers_raw = p;
  for (int32_t i = 0; i < n_headers; i++) {
    takhin_header hd;
    int rc = tk_header_next(&p, rend, &hd);
    if (rc) return rc;
  }
  if (p != rend) return tk_err(TAKHIN_ECORRUPT, "record: length %d disagrees with its fields", len);
  r.headers_raw_len = (size_t)(p - (const uint8_t *)r.headers_raw);
  r.n_headers = (size_t)n_headers;
  *m = r;
  *pp = rend;
  return TAKHIN_OK;
}

int tk_batch_validate(const uint8_t *p, const tk_batch_hdr *h, ZSTD_DCtx *dctx, tk_buf *scratch,
                      size_t max_out) {
  const uint8_t *q;
  size_t len;
  int rc = tk_batch_records(p, h, dctx, scratch, max_out, &q, &len);
  if (rc) return rc;
  const uint8_t *end = q + len;
  int64_t prev = -1;
  for (int32_t i = 0; i < h->records_count; i++) {
    takhin_message m;
    if ((rc = tk_record_decode(&q, end, h, &m))) return rc;
    int64_t delta = m.offset - h->base_offset;
    if (delta <= prev)
      return tk_err(TAKHIN_ECORRUPT, "record %d: offsetDelta %lld does not increase", i,
                    (long long)delta);
    prev = delta;
  }
  if (q != end)
    return tk_err(TAKHIN_ECORRUPT, "%zu bytes follow the last of %d records", (size_t)(end - q),
                  h->records_count);
  return TAKHIN_OK;
}
