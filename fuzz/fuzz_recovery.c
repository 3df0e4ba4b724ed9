/*
** fuzz_recovery.c -- libFuzzer target: arbitrary bytes as a segment file.
** Each input becomes the only segment of a fresh store's partition; the
** store is then opened (recovery validates and truncates), read to the end,
** asked for an offset by time, appended to, and closed. Whatever the bytes,
** nothing may crash or trip a sanitizer, and every record recovery kept must
** be readable.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "takhin.h"

static char root[256];

static void fresh_store(char *db, size_t cap) {
  char cmd[600];
  if (!root[0]) {
    snprintf(root, sizeof root, "/tmp/takhin-fuzz-recovery-%d", (int)getpid());
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", root, root);
  if (system(cmd) != 0) abort();
  snprintf(db, cap, "%s/store.db", root);
  takhin_store *s;
  if (takhin_open(db, NULL, &s) || takhin_topic_create(s, "t", 1, NULL)) abort();
  takhin_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char db[300], seg[400];
  fresh_store(db, sizeof db);
  snprintf(seg, sizeof seg, "%s-takhin/t-0/00000000000000000000.log", db);
  FILE *f = fopen(seg, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  takhin_store *s;
  if (takhin_open(db, NULL, &s) != TAKHIN_OK) return 0; /* a clean error is fine */
  takhin_partition_info pi;
  if (takhin_partition_info_get(s, "t", 0, &pi) != TAKHIN_OK) abort();
  takhin_cursor *c;
  if (takhin_cursor_open(s, "t", 0, &c) == TAKHIN_OK) {
    takhin_message m;
    int64_t n = 0;
    int rc;
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      for (size_t i = 0; i < m.n_headers; i++) {
        takhin_header h;
        if (takhin_message_header(&m, i, &h) != TAKHIN_OK) abort();
      }
      n++;
    }
    /* recovery validated every batch it kept: all of them read back */
    if (rc != TAKHIN_END) {
      fprintf(stderr, "read after recovery failed: %d %s\n", rc, takhin_errmsg());
      abort();
    }
    takhin_cursor_close(c);
    (void)n;
  }
  int64_t off;
  takhin_offset_for_time(s, "t", 0, 1700000000000LL, &off);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  int64_t first;
  if (takhin_produce(s, "t", 0, &r, 1, &first) == TAKHIN_OK && first != pi.high_watermark) abort();
  takhin_close(s);
  return 0;
}
