/*
** codecs.c -- gzip, snappy and lz4 decompression of Kafka record batches,
** with Debian's zlib, libsnappy and liblz4, each bounded by max_out so a
** small batch cannot inflate without limit.
**
** Framing, as Kafka's clients write it: gzip is a gzip stream (zlib's
** automatic header detection also takes a zlib stream); lz4 is the LZ4 frame
** format (magic v2 batches); snappy is either raw snappy (librdkafka) or the
** xerial framing of Java's snappy-java (an 8-byte magic, two version ints,
** then [int32 length][raw snappy block] chunks), told apart by the magic.
*/
#include "codecs.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>

#include "error.h"

static int grow(tk_buf *out, size_t need, size_t max_out) {
  if (need > max_out)
    return tk_err(TAKHIN_ECORRUPT, "compressed batch inflates beyond %zu bytes", max_out);
  if (out->cap >= need) return TAKHIN_OK;
  size_t len = out->len;
  out->len = 0;
  int rc = tk_buf_reserve(out, need) ? tk_err(TAKHIN_ENOMEM, "out of memory decompressing a batch")
                                     : TAKHIN_OK;
  out->len = len;
  return rc;
}

static size_t next_size(size_t cur, size_t max_out) {
  size_t want = cur < 4096 ? 4096 : cur * 2;
  return want > max_out + 1 ? max_out + 1 : want; /* +1: tell "exactly max_out" from "more" */
}

static int gzip_inflate(const uint8_t *src, size_t n, tk_buf *out, size_t max_out) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 15 + 32) != Z_OK)
    return tk_err(TAKHIN_ENOMEM, "zlib: cannot start inflating");
  int rc = TAKHIN_OK;
  zs.next_in = (Bytef *)(uintptr_t)src;
  zs.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
  for (;;) {
    if (out->len == out->cap) {
      if (out->cap > max_out) {
        rc = tk_err(TAKHIN_ECORRUPT, "gzip batch inflates beyond %zu bytes", max_out);
        break;
      }
      if ((rc = grow(out, next_size(out->cap, max_out), max_out + 1))) break;
    }
    zs.next_out = out->p + out->len;
    zs.avail_out = (uInt)(out->cap - out->len);
    int z = inflate(&zs, Z_NO_FLUSH);
    out->len = (size_t)(zs.next_out - out->p);
    if (z == Z_STREAM_END) break;
    if (z != Z_OK && !(z == Z_BUF_ERROR && zs.avail_out == 0)) {
      rc = tk_err(TAKHIN_ECORRUPT, "gzip: %s", zs.msg ? zs.msg : "bad data");
      break;
    }
    if (z == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      rc = tk_err(TAKHIN_ECORRUPT, "gzip: truncated stream");
      break;
    }
  }
  inflateEnd(&zs);
  if (!rc && out->len > max_out)
    rc = tk_err(TAKHIN_ECORRUPT, "gzip batch inflates beyond %zu bytes", max_out);
  return rc;
}

/* Append one raw snappy block. */
static int snappy_block(const uint8_t *src, size_t n, tk_buf *out, size_t max_out) {
  size_t ulen;
  if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK)
    return tk_err(TAKHIN_ECORRUPT, "snappy: bad block header");
  if (ulen > max_out || out->len + ulen > max_out)
    return tk_err(TAKHIN_ECORRUPT, "snappy batch inflates beyond %zu bytes", max_out);
  int rc = grow(out, out->len + ulen + 1, max_out + 1);
  if (rc) return rc;
  size_t got = ulen;
  if (snappy_uncompress((const char *)src, n, (char *)out->p + out->len, &got) != SNAPPY_OK ||
      got != ulen)
    return tk_err(TAKHIN_ECORRUPT, "snappy: bad data");
  out->len += ulen;
  return TAKHIN_OK;
}

static int snappy_inflate(const uint8_t *src, size_t n, tk_buf *out, size_t max_out) {
  static const uint8_t xerial[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
  if (n < 16 || memcmp(src, xerial, 8) != 0) return snappy_block(src, n, out, max_out);
  size_t at = 16; /* magic, version, compatible version */
  while (at < n) {
    if (n - at < 4) return tk_err(TAKHIN_ECORRUPT, "snappy: truncated xerial chunk length");
    uint32_t len = (uint32_t)src[at] << 24 | (uint32_t)src[at + 1] << 16 |
                   (uint32_t)src[at + 2] << 8 | src[at + 3];
    at += 4;
    if (len > n - at) return tk_err(TAKHIN_ECORRUPT, "snappy: xerial chunk past the end");
    int rc = snappy_block(src + at, len, out, max_out);
    if (rc) return rc;
    at += len;
  }
  return TAKHIN_OK;
}

static int lz4_inflate(const uint8_t *src, size_t n, tk_buf *out, size_t max_out) {
  LZ4F_dctx *d;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
    return tk_err(TAKHIN_ENOMEM, "lz4: cannot start decompressing");
  int rc = TAKHIN_OK;
  size_t at = 0;
  for (;;) {
    if (out->len == out->cap) {
      if (out->cap > max_out) {
        rc = tk_err(TAKHIN_ECORRUPT, "lz4 batch inflates beyond %zu bytes", max_out);
        break;
      }
      if ((rc = grow(out, next_size(out->cap, max_out), max_out + 1))) break;
    }
    size_t dst = out->cap - out->len, in = n - at;
    size_t hint = LZ4F_decompress(d, out->p + out->len, &dst, src + at, &in, NULL);
    if (LZ4F_isError(hint)) {
      rc = tk_err(TAKHIN_ECORRUPT, "lz4: %s", LZ4F_getErrorName(hint));
      break;
    }
    out->len += dst;
    at += in;
    if (hint == 0) break; /* frame complete */
    if (at == n && dst == 0) {
      rc = tk_err(TAKHIN_ECORRUPT, "lz4: truncated frame");
      break;
    }
  }
  LZ4F_freeDecompressionContext(d);
  if (!rc && out->len > max_out)
    rc = tk_err(TAKHIN_ECORRUPT, "lz4 batch inflates beyond %zu bytes", max_out);
  return rc;
}

int tk_codec_inflate(int codec, const uint8_t *src, size_t n, tk_buf *out, size_t max_out) {
  out->len = 0;
  switch (codec) {
  case TK_CODEC_GZIP: return gzip_inflate(src, n, out, max_out);
  case TK_CODEC_SNAPPY: return snappy_inflate(src, n, out, max_out);
  case TK_CODEC_LZ4: return lz4_inflate(src, n, out, max_out);
  default: return tk_err(TAKHIN_ECORRUPT, "unsupported compression codec %d", codec);
  }
}
