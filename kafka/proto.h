/*
** proto.h -- Kafka wire protocol codec: a bounded reader over one request
** frame and a growable writer for one response.
**
** The reader never reads past its end and never allocates: strings and bytes
** come back as views into the frame. The first short read, bad length or
** overlong array sets r->err and every later read returns zeros, so a handler
** decodes a whole request and checks err once. Array counts are checked
** against the bytes left (each element takes at least one byte), so a count
** from a peer can never size an allocation beyond the frame it came in.
*/
#ifndef TAKHIN_KAFKA_PROTO_H
#define TAKHIN_KAFKA_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "takhin.h"

/* socket.request.max.bytes: Kafka's default largest request frame. */
#define KP_MAX_FRAME (100 * 1024 * 1024)

/* API keys (Kafka's numbering). */
enum {
  KP_PRODUCE = 0,
  KP_FETCH = 1,
  KP_LIST_OFFSETS = 2,
  KP_METADATA = 3,
  KP_OFFSET_COMMIT = 8,
  KP_OFFSET_FETCH = 9,
  KP_FIND_COORDINATOR = 10,
  KP_JOIN_GROUP = 11,
  KP_HEARTBEAT = 12,
  KP_LEAVE_GROUP = 13,
  KP_SYNC_GROUP = 14,
  KP_API_VERSIONS = 18,
  KP_CREATE_TOPICS = 19,
  KP_DELETE_TOPICS = 20,
  KP_DELETE_RECORDS = 21,
  KP_INIT_PRODUCER_ID = 22,
  KP_DESCRIBE_CONFIGS = 32,
};

/* Error codes (Kafka's Errors.java). */
enum {
  KE_NONE = 0,
  KE_UNKNOWN_SERVER_ERROR = -1,
  KE_OFFSET_OUT_OF_RANGE = 1,
  KE_CORRUPT_MESSAGE = 2,
  KE_UNKNOWN_TOPIC_OR_PARTITION = 3,
  KE_INVALID_FETCH_SIZE = 4,
  KE_NOT_LEADER = 6,
  KE_REQUEST_TIMED_OUT = 7,
  KE_MESSAGE_TOO_LARGE = 10,
  KE_OFFSET_METADATA_TOO_LARGE = 12,
  KE_COORDINATOR_NOT_AVAILABLE = 15,
  KE_NOT_COORDINATOR = 16,
  KE_INVALID_TOPIC = 17,
  KE_RECORD_LIST_TOO_LARGE = 18,
  KE_INVALID_REQUIRED_ACKS = 21,
  KE_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
  KE_ILLEGAL_GENERATION = 22,
  KE_UNKNOWN_MEMBER_ID = 25,
  KE_INVALID_COMMIT_OFFSET_SIZE = 28,
  KE_UNSUPPORTED_VERSION = 35,
  KE_TOPIC_ALREADY_EXISTS = 36,
  KE_INVALID_PARTITIONS = 37,
  KE_INVALID_REPLICATION_FACTOR = 38,
  KE_INVALID_REQUEST = 42,
  KE_INVALID_CONFIG = 40,
  KE_POLICY_VIOLATION = 44,
  KE_KAFKA_STORAGE_ERROR = 56,
  KE_UNSUPPORTED_COMPRESSION_TYPE = 76,
  KE_INVALID_RECORD = 87,
};

typedef struct kp_reader {
  const uint8_t *p, *end;
  int err;
} kp_reader;

/* A string or bytes view; ptr NULL = null (len 0). */
typedef struct kp_str {
  const char *ptr;
  size_t len;
} kp_str;

int8_t kp_i8(kp_reader *r);
int16_t kp_i16(kp_reader *r);
int32_t kp_i32(kp_reader *r);
int64_t kp_i64(kp_reader *r);
uint32_t kp_uvarint(kp_reader *r);
kp_str kp_string(kp_reader *r);         /* int16 length, -1 = null */
kp_str kp_compact_string(kp_reader *r); /* uvarint length + 1, 0 = null */
kp_str kp_bytes(kp_reader *r);          /* int32 length, -1 = null */
/* int32 element count; -1 (null) gives -1. min_elem is the smallest encoded
** size of one element: a count the remaining bytes cannot hold is an error. */
int32_t kp_array(kp_reader *r, size_t min_elem);
void kp_skip_tags(kp_reader *r); /* a tagged-field section: skipped */
/* Copy a string view into dst (NUL-terminated, at most cap - 1 bytes);
** -1 when it is null, longer or holds a NUL byte. */
int kp_str_copy(kp_str s, char *dst, size_t cap);

/* Request header (v1; v2 adds tagged fields, for flexible versions). */
typedef struct kp_header {
  int16_t api_key, api_version;
  int32_t correlation_id;
  kp_str client_id;
} kp_header;
/* Parse the header of a request frame (the bytes after the size). flexible
** says whether this API version uses header v2. 0, or -1 when malformed. */
int kp_header_parse(kp_reader *r, kp_header *h, int flexible);

/* Bytes a response carries by reference (stored batches, sent with
** writev from the segment's mapping): they follow the first `at` bytes of
** the writer's buffer. */
typedef struct kp_ext {
  size_t at;
  takhin_fetch_span span;
} kp_ext;

typedef struct kp_writer {
  uint8_t *p;
  size_t len, cap;
  size_t limit; /* a response never grows past this (err set instead) */
  int err;
  kp_ext *ext; /* in order of their at */
  size_t next, ext_cap;
  size_t ext_bytes; /* sum of their lengths */
} kp_writer;

void kp_w_i8(kp_writer *w, int8_t v);
void kp_w_i16(kp_writer *w, int16_t v);
void kp_w_i32(kp_writer *w, int32_t v);
void kp_w_i64(kp_writer *w, int64_t v);
void kp_w_uvarint(kp_writer *w, uint32_t v);
void kp_w_raw(kp_writer *w, const void *p, size_t n);
void kp_w_string(kp_writer *w, const char *s);            /* NULL = null */
void kp_w_stringn(kp_writer *w, const char *s, size_t n); /* s NULL = null */
void kp_w_bytes(kp_writer *w, const void *p, size_t n);   /* p NULL = null */
/* Reserve an int32 to fill later (array counts, the frame size). */
size_t kp_w_reserve32(kp_writer *w);
void kp_w_patch32(kp_writer *w, size_t at, int32_t v);
void kp_w_free(kp_writer *w);
/* Append sp's bytes by reference: the writer takes the span over (*sp is
** zeroed) and releases it in kp_w_reset or kp_w_free. On error (out of
** memory) the span is released and w->err set. */
void kp_w_span(kp_writer *w, takhin_fetch_span *sp);
/* Length of the response: the buffer plus the bytes held by reference. */
static inline size_t kp_w_total(const kp_writer *w) { return w->len + w->ext_bytes; }
/* Empty the writer for the next response (keeps the buffer, releases spans). */
void kp_w_reset(kp_writer *w);
/* Send the whole response (buffer and spans, in order) on a socket with
** sendmsg/writev: 0, or -1 when the peer is gone or the send timed out. */
int kp_w_send(const kp_writer *w, int fd);

#endif
