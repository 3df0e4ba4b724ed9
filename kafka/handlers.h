/*
** handlers.h -- the Kafka API handlers: one request frame in, one response
** frame out, every store access through takhin.h.
*/
#ifndef TAKHIN_KAFKA_HANDLERS_H
#define TAKHIN_KAFKA_HANDLERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "proto.h"
#include "takhin.h"

typedef struct kh_ctx {
  takhin_store *store;
  char host[256]; /* advertised in Metadata and FindCoordinator */
  int32_t port;
  int verbose;
  int auto_create;            /* Metadata creates unknown topics (auto.create.topics.enable) */
  int32_t default_partitions; /* num.partitions */
  atomic_int *stopping;       /* set on SIGTERM: long polls return at once */
  int32_t max_wait_cap_ms;    /* longest Fetch long poll and group round wait; 0 = 30 s and the
                              group's rebalance timeout (the fuzzer sets 1) */
} kh_ctx;

/* Handle one request frame (the bytes after its size field) and append the
** complete response frame, size included, to w; nothing is appended when no
** response is due (Produce with acks=0). Returns 0, or -1 when the
** connection must be closed (malformed frame, unknown API or version). */
int kh_dispatch(kh_ctx *c, const uint8_t *frame, size_t len, kp_writer *w);

/* Log one line to stderr (with -v for per-request lines). */
void kh_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
