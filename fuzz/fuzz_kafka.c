/*
** fuzz_kafka.c -- libFuzzer target: arbitrary bytes as one Kafka request
** frame (what follows the size field) handed to takhin-server's dispatcher.
** The store behind it is read-only (a topic "t" with records, made once), so
** every decoder and handler path runs, reads included, while nothing can be
** written: whatever the bytes, no crash, no sanitizer report, no hang (the
** long poll is capped at 1 ms here), and a response only as big as allowed.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "handlers.h"

static kh_ctx ctx;
static atomic_int stopping;
static kp_writer w = {.limit = 8 * 1024 * 1024};
static volatile unsigned sink; /* keeps the read of every view byte */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  char dir[] = "/tmp/fuzz_kafka.XXXXXX";
  if (!mkdtemp(dir)) abort();
  char path[64];
  snprintf(path, sizeof path, "%s/k.db", dir);
  takhin_store *s;
  if (takhin_open(path, NULL, &s) || takhin_topic_create(s, "t", 2, NULL)) abort();
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1000};
  for (int i = 0; i < 5; i++) takhin_produce(s, "t", i % 2, &r, 1, NULL);
  takhin_group_commit(s, "g", &(takhin_offset_commit){"t", 0, 1, "m"}, 1);
  takhin_close(s);
  takhin_options opt;
  takhin_options_init(&opt);
  opt.read_only = 1;
  if (takhin_open(path, &opt, &ctx.store)) abort();
  snprintf(ctx.host, sizeof ctx.host, "127.0.0.1");
  ctx.port = 9092;
  ctx.auto_create = 1;
  ctx.default_partitions = 1;
  ctx.stopping = &stopping;
  ctx.max_wait_cap_ms = 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy, so reading one byte past the input is caught */
  uint8_t *frame = malloc(size ? size : 1);
  memcpy(frame, data, size);
  kp_w_reset(&w);
  if (kh_dispatch(&ctx, frame, size, &w) == 0 && w.len) {
    /* a response frame's size field covers exactly what follows it,
    ** the stored batches it sends by reference included */
    uint32_t n =
        ((uint32_t)w.p[0] << 24) | ((uint32_t)w.p[1] << 16) | ((uint32_t)w.p[2] << 8) | w.p[3];
    if (n + 4 != kp_w_total(&w)) abort();
    /* every byte of a view is readable (ASan: no use after release) */
    for (size_t i = 0; i < w.next; i++)
      for (size_t k = 0; k < w.ext[i].span.len; k++)
        sink += ((const uint8_t *)w.ext[i].span.data)[k];
  }
  kp_w_reset(&w);
  free(frame);
  return 0;
}
