/*
** proto.c -- the Kafka wire codec of proto.h: big-endian integers, varints,
** strings and arrays, read with bounds checks that latch an error instead
** of trusting any length a peer sends.
*/
#include "proto.h"

#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

static const uint8_t *take(kp_reader *r, size_t n) {
  if (r->err || (size_t)(r->end - r->p) < n) {
    r->err = 1;
    return NULL;
  }
  const uint8_t *q = r->p;
  r->p += n;
  return q;
}

int8_t kp_i8(kp_reader *r) {
  const uint8_t *q = take(r, 1);
  return q ? (int8_t)q[0] : 0;
}
int16_t kp_i16(kp_reader *r) {
  const uint8_t *q = take(r, 2);
  return q ? (int16_t)(uint16_t)((q[0] << 8) | q[1]) : 0;
}
int32_t kp_i32(kp_reader *r) {
  const uint8_t *q = take(r, 4);
  return q ? (int32_t)(((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) |
                       q[3])
           : 0;
}
int64_t kp_i64(kp_reader *r) {
  uint64_t hi = (uint32_t)kp_i32(r), lo = (uint32_t)kp_i32(r);
  return r->err ? 0 : (int64_t)((hi << 32) | lo);
}

uint32_t kp_uvarint(kp_reader *r) {
  uint32_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    const uint8_t *q = take(r, 1);
    if (!q) return 0;
    if (shift == 28 && (q[0] & 0xf0)) break; /* more than 32 bits */
    v |= (uint32_t)(q[0] & 0x7f) << shift;
    if (!(q[0] & 0x80)) return v;
  }
  r->err = 1;
  return 0;
}

static kp_str view(kp_reader *r, int64_t n) {
  kp_str s = {NULL, 0};
  if (n < 0) return s;
  const uint8_t *q = take(r, (size_t)n);
  if (q) {
    s.ptr = (const char *)q;
    s.len = (size_t)n;
  }
  return s;
}

kp_str kp_string(kp_reader *r) {
  int16_t n = kp_i16(r);
  if (n < -1) r->err = 1;
  return view(r, n);
}
kp_str kp_compact_string(kp_reader *r) {
  uint32_t n = kp_uvarint(r);
  return view(r, (int64_t)n - 1);
}
kp_str kp_bytes(kp_reader *r) {
  int32_t n = kp_i32(r);
  if (n < -1) r->err = 1;
  return view(r, n);
}

int32_t kp_array(kp_reader *r, size_t min_elem) {
  int32_t n = kp_i32(r);
  if (r->err) return 0;
  if (n == -1) return -1;
  if (n < -1 || (uint64_t)n * (min_elem ? min_elem : 1) > (uint64_t)(r->end - r->p)) {
    r->err = 1;
    return 0;
  }
  return n;
}

void kp_skip_tags(kp_reader *r) {
  uint32_t n = kp_uvarint(r);
  for (uint32_t i = 0; i < n && !r->err; i++) {
    kp_uvarint(r); /* tag */
    uint32_t size = kp_uvarint(r);
    take(r, size);
  }
}

int kp_str_copy(kp_str s, char *dst, size_t cap) {
  if (!s.ptr || s.len >= cap || memchr(s.ptr, 0, s.len)) return -1;
  memcpy(dst, s.ptr, s.len);
  dst[s.len] = 0;
  return 0;
}

int kp_header_parse(kp_reader *r, kp_header *h, int flexible) {
  h->api_key = kp_i16(r);
  h->api_version = kp_i16(r);
  h->correlation_id = kp_i32(r);
  h->client_id = kp_string(r); /* a plain nullable string even in header v2 */
  if (flexible) kp_skip_tags(r);
  return r->err ? -1 : 0;
}

/* ---- writer ------------------------------------------------------------ */

static uint8_t *room(kp_writer *w, size_t n) {
  if (w->err) return NULL;
  if (w->cap - w->len < n) {
    size_t want = w->len + n, cap = w->cap ? w->cap : 1024;
    if (want < w->len || (w->limit && want > w->limit)) {
      w->err = 1;
      return NULL;
    }
    while (cap < want) cap *= 2;
    uint8_t *np = realloc(w->p, cap);
    if (!np) {
      w->err = 1;
      return NULL;
    }
    w->p = np;
    w->cap = cap;
  }
  uint8_t *q = w->p + w->len;
  w->len += n;
  return q;
}

void kp_w_raw(kp_writer *w, const void *p, size_t n) {
  uint8_t *q = room(w, n);
  if (q && n) memcpy(q, p, n);
}
void kp_w_i8(kp_writer *w, int8_t v) {
  uint8_t *q = room(w, 1);
  if (q) q[0] = (uint8_t)v;
}
void kp_w_i16(kp_writer *w, int16_t v) {
  uint8_t *q = room(w, 2);
  if (q) {
    q[0] = (uint8_t)((uint16_t)v >> 8);
    q[1] = (uint8_t)v;
  }
}
void kp_w_i32(kp_writer *w, int32_t v) {
  uint8_t *q = room(w, 4);
  if (q)
    for (int i = 0; i < 4; i++) q[i] = (uint8_t)((uint32_t)v >> (24 - 8 * i));
}
void kp_w_i64(kp_writer *w, int64_t v) {
  uint8_t *q = room(w, 8);
  if (q)
    for (int i = 0; i < 8; i++) q[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}
void kp_w_uvarint(kp_writer *w, uint32_t v) {
  while (v >= 0x80) {
    kp_w_i8(w, (int8_t)(uint8_t)(v | 0x80));
    v >>= 7;
  }
  kp_w_i8(w, (int8_t)v);
}
void kp_w_stringn(kp_writer *w, const char *s, size_t n) {
  if (!s) {
    kp_w_i16(w, -1);
    return;
  }
  if (n > INT16_MAX) n = INT16_MAX;
  kp_w_i16(w, (int16_t)n);
  kp_w_raw(w, s, n);
}
void kp_w_string(kp_writer *w, const char *s) { kp_w_stringn(w, s, s ? strlen(s) : 0); }
void kp_w_bytes(kp_writer *w, const void *p, size_t n) {
  if (!p || n > INT32_MAX) {
    kp_w_i32(w, -1);
    return;
  }
  kp_w_i32(w, (int32_t)n);
  kp_w_raw(w, p, n);
}
size_t kp_w_reserve32(kp_writer *w) {
  size_t at = w->len;
  kp_w_i32(w, 0);
  return at;
}
void kp_w_patch32(kp_writer *w, size_t at, int32_t v) {
  if (w->err || at + 4 > w->len) return;
  for (int i = 0; i < 4; i++) w->p[at + i] = (uint8_t)((uint32_t)v >> (24 - 8 * i));
}
void kp_w_span(kp_writer *w, takhin_fetch_span *sp) {
  if (!sp->len) {
    takhin_fetch_span_release(sp);
    return;
  }
  if (!w->err && w->next == w->ext_cap) {
    size_t cap = w->ext_cap ? 2 * w->ext_cap : 16;
    kp_ext *ne = realloc(w->ext, cap * sizeof *ne);
    if (!ne) w->err = 1;
    else w->ext = ne, w->ext_cap = cap;
  }
  if (w->err) {
    takhin_fetch_span_release(sp);
    return;
  }
  w->ext[w->next].at = w->len;
  w->ext[w->next].span = *sp;
  w->next++;
  w->ext_bytes += sp->len;
  memset(sp, 0, sizeof *sp);
}

void kp_w_reset(kp_writer *w) {
  for (size_t i = 0; i < w->next; i++) takhin_fetch_span_release(&w->ext[i].span);
  w->next = 0;
  w->ext_bytes = 0;
  w->len = 0;
  w->err = 0;
}

void kp_w_free(kp_writer *w) {
  kp_w_reset(w);
  free(w->ext);
  w->ext = NULL;
  w->ext_cap = 0;
  free(w->p);
  w->p = NULL;
  w->len = w->cap = 0;
}

/* The response as pieces: buffer runs between the spans, and the spans. */
int kp_w_send(const kp_writer *w, int fd) {
  enum { BATCH = 64 };
  struct iovec iov[BATCH];
  size_t piece = 0, npieces = 2 * w->next + 1, skip = 0; /* bytes of `piece` already sent */
  while (piece < npieces) {
    int n = 0;
    for (size_t k = piece; k < npieces && n < BATCH; k++) {
      const uint8_t *base;
      size_t len;
      if (k % 2 == 0) { /* buffer run k/2: from the previous span's at to this one's */
        size_t from = k ? w->ext[k / 2 - 1].at : 0,
               to = k / 2 < w->next ? w->ext[k / 2].at : w->len;
        base = w->p + from, len = to - from;
      } else {
        base = w->ext[k / 2].span.data, len = w->ext[k / 2].span.len;
      }
      if (k == piece) base += skip, len -= skip;
      iov[n].iov_base = (void *)base;
      iov[n].iov_len = len;
      n++;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t sent = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) {
      int all_empty = 1;
      for (int i = 0; i < n; i++) all_empty &= iov[i].iov_len == 0;
      if (sent == 0 && all_empty) sent = 0; /* only empty pieces: step over them */
      else return -1;                       /* SO_SNDTIMEO bounds a peer that never reads */
    }
    /* advance over what went out */
    size_t left = (size_t)sent;
    for (int i = 0; i < n; i++) {
      if (left < iov[i].iov_len) {
        skip += left;
        break;
      }
      left -= iov[i].iov_len;
      piece++;
      skip = 0;
    }
  }
  return 0;
}
