/*
** codecs.h -- the compression codecs Kafka producers use besides zstd:
** gzip (1), snappy (2) and lz4 (3), decompression only. takhin writes
** none or zstd itself; these make batches that Kafka clients compressed
** (and the Kafka server stored as sent) readable everywhere takhin reads.
*/
#ifndef TAKHIN_CODECS_H
#define TAKHIN_CODECS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TK_CODEC_GZIP 1
#define TK_CODEC_SNAPPY 2
#define TK_CODEC_LZ4 3

/* Decompress the n bytes at src (codec 1-3) into out (replacing its
** contents), never producing more than max_out bytes: TAKHIN_OK,
** TAKHIN_ECORRUPT (bad data, or more than max_out) or TAKHIN_ENOMEM. */
int tk_codec_inflate(int codec, const uint8_t *src, size_t n, tk_buf *out, size_t max_out);

#endif
