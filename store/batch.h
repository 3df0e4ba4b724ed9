/*
** batch.h -- Kafka RecordBatch v2, the byte format of every segment file.
**
** A segment file is a plain concatenation of batches. One batch, big-endian:
**
**   off size field
**     0    8 baseOffset            offset of the first record
**     8    4 batchLength           bytes that follow this field (total - 12)
**    12    4 partitionLeaderEpoch  takhin writes 0
**    16    1 magic                 always 2
**    17    4 crc                   CRC-32C (Castagnoli) of bytes 21..end
**    21    2 attributes            bits 0-2 compression (0 none, 4 zstd),
**                                  bit 3 timestamp type, bit 4 transactional,
**                                  bit 5 control batch
**    23    4 lastOffsetDelta       offset of the last record - baseOffset
**    27    8 baseTimestamp         timestamp of the first record
**    35    8 maxTimestamp          largest record timestamp
**    43    8 producerId            -1
**    51    2 producerEpoch         -1
**    53    4 baseSequence          -1
**    57    4 recordsCount
**    61    . records               compressed as one zstd frame when codec 4
**
** One record (varint = zigzag base-128, as protobuf's sint32/sint64):
**   length varint (bytes after itself), attributes int8 (0),
**   timestampDelta varlong, offsetDelta varint,
**   keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
**   headersCount varint, then per header: keyLength varint, key (UTF-8),
**   valueLength varint (-1 = null), value.
**
** The encoder never allocates once its buffers have grown to the working size;
** the decoder hands out views into the bytes it was given (or into the
** decompression scratch buffer).
*/
#ifndef TAKHIN_BATCH_H
#define TAKHIN_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "buf.h"
#include "takhin.h"

#define TK_BATCH_HEADER_SIZE 61
#define TK_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define TK_MAGIC 2
#define TK_CODEC_NONE 0
#define TK_CODEC_ZSTD 4
#define TK_ATTR_CODEC_MASK 0x07
#define TK_ATTR_CONTROL 0x20

typedef struct tk_batch_hdr {
  int64_t base_offset;
  int32_t batch_length;
  int32_t leader_epoch;
  int8_t magic;
  uint32_t crc;
  int16_t attributes;
  int32_t last_offset_delta;
  int64_t base_timestamp;
  int64_t max_timestamp;
  int64_t producer_id;
  int16_t producer_epoch;
  int32_t base_sequence;
  int32_t records_count;
} tk_batch_hdr;

/* Total bytes of the batch on disk. */
static inline int64_t tk_batch_total(const tk_batch_hdr *h) {
  return (int64_t)h->batch_length + TK_LOG_OVERHEAD;
}

/* Encode n >= 1 records as one batch with baseOffset base_offset, appending
** the bytes to out (which grows as needed). Records with timestamp
** TAKHIN_TIMESTAMP_NOW get now_ms. codec is TK_CODEC_NONE or TK_CODEC_ZSTD
** (cctx must then be non-NULL; scratch holds the uncompressed records).
** *max_ts (may be NULL) receives the batch's maxTimestamp.
** Returns TAKHIN_OK, TAKHIN_EINVAL (negative timestamp other than NOW, too
** many records) or TAKHIN_ENOMEM. On error out->len is unchanged. */
int tk_batch_encode(tk_buf *out, int64_t base_offset, const takhin_record *recs, size_t n,
                    int64_t now_ms, int codec, ZSTD_CCtx *cctx, tk_buf *scratch, int64_t *max_ts);

/* Parse and sanity-check the 61-byte header at p (avail bytes readable, which
** may be fewer than the whole batch). Returns TAKHIN_OK, TAKHIN_END when
** avail < 61 (an incomplete header), or TAKHIN_ECORRUPT (magic != 2,
** batchLength < 49, records_count < 0, lastOffsetDelta < 0 ...). Does not
** check the CRC. */
int tk_batch_parse_header(const uint8_t *p, size_t avail, tk_batch_hdr *h);

/* Nonzero when the CRC stored in the complete batch at p matches its bytes. */
int tk_batch_crc_ok(const uint8_t *p, const tk_batch_hdr *h);

/* The records area of the complete, CRC-checked batch at p: for an
** uncompressed batch a view into p; for zstd, decompressed into scratch (which
** grows; bounded by max_out bytes, ECORRUPT above it). Any other codec is
** TAKHIN_ECORRUPT ("unsupported compression codec N"). */
int tk_batch_records(const uint8_t *p, const tk_batch_hdr *h, ZSTD_DCtx *dctx, tk_buf *scratch,
                     size_t max_out, const uint8_t **recs, size_t *recs_len);

/* Decode the record at *pp (end = end of the records area) of a batch with
** header h into m (views into the records area) and advance *pp past it.
** Returns TAKHIN_OK or TAKHIN_ECORRUPT (truncated varint, length past end,
** negative length other than -1 ...). m->headers_raw/n_headers describe the
** encoded headers; use tk_header_next to walk them. */
int tk_record_decode(const uint8_t **pp, const uint8_t *end, const tk_batch_hdr *h,
                     takhin_message *m);

/* Only the offset of the record at *pp, and advance *pp past it: the
** length, timestamp delta and offset delta are read and checked, key, value
** and headers are stepped over unread. For work that moves records whole
** (compaction); ECORRUPT as tk_record_decode for what it reads. */
int tk_record_skip_general(const uint8_t **pp, const uint8_t *end, const tk_batch_hdr *h,
                           int64_t *offset);

/* tk_record_skip_general, with short records decoded inline: compaction
** walks every record of a batch it filters, and the call (six registers
** saved and restored) and a bounds check per field were most of the walk.
** Here: a length of one or two bytes, of at least 6 (the smallest record:
** attributes, timestamp delta, offset delta, key and value lengths, header
** count), so the next five bytes -- attributes, then a timestamp delta and
** an offset delta of one or two bytes each -- lie inside the record and
** need no check of their own. Anything else takes the general path; both
** accept and refuse the same records (tests/test_batch.c). */
static inline int tk_record_skip(const uint8_t **pp, const uint8_t *end, const tk_batch_hdr *h,
                                 int64_t *offset) {
  const uint8_t *q = *pp;
  if (end - q >= 3) {
    uint64_t l;
    if (q[0] < 0x80) l = q[0], q += 1;
    else if (q[1] < 0x80) l = (uint64_t)(q[0] & 0x7f) | (uint64_t)q[1] << 7, q += 2;
    else goto general;
    /* zigzag: even values are the non-negative lengths */
    if ((l & 1) || l < 12 || (int64_t)(l >> 1) > end - q) goto general;
    const uint8_t *r = q + 1; /* past the attributes */
    if (r[0] < 0x80) r += 1;  /* timestampDelta: stepped over */
    else if (r[1] < 0x80) r += 2;
    else goto general;
    uint64_t z;
    if (r[0] < 0x80) z = r[0];
    else if (r[1] < 0x80) z = (uint64_t)(r[0] & 0x7f) | (uint64_t)r[1] << 7;
    else goto general;
    if ((z & 1) || (int64_t)(z >> 1) > h->last_offset_delta) goto general;
    *offset = h->base_offset + (int64_t)(z >> 1);
    *pp = q + (l >> 1);
    return TAKHIN_OK;
  }
general:
  return tk_record_skip_general(pp, end, h, offset);
}

/* Decode the header at *pp (end = end of the encoded headers) and advance. */
int tk_header_next(const uint8_t **pp, const uint8_t *end, takhin_header *out);

/* Full validation of a batch already known to be complete (header parsed,
** CRC checked): decodes every record and checks counts and offset deltas.
** Used by recovery and by the fuzzer. Returns TAKHIN_OK or TAKHIN_ECORRUPT. */
int tk_batch_validate(const uint8_t *p, const tk_batch_hdr *h, ZSTD_DCtx *dctx, tk_buf *scratch,
                      size_t max_out);

/* Size of the encoded record payload that takhin_cursor_seek's max_bytes
** counts: key + value + encoded headers. */
static inline size_t tk_message_payload(const takhin_message *m) {
  return m->key_len + m->value_len + m->headers_raw_len;
}

#endif /* TAKHIN_BATCH_H */
