/*
** embed.c -- a complete program that embeds takhin: opens (or creates) a
** store, creates a topic, produces a batch of records, reads them back, and
** asks which offset a timestamp falls on.
**
**   cmake --build build --target example_embed && ./build/examples/example_embed /tmp/demo.db
*/
#include <stdio.h>
#include <string.h>

#include "takhin.h"

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s: %s\n", what, takhin_errstr(rc), takhin_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "demo.db";
  takhin_store *s;
  int rc = takhin_open(path, NULL, &s);
  if (rc) return fail("open", rc);

  rc = takhin_topic_create(s, "orders", 2, (const char *const[]){"compression", "zstd", NULL});
  if (rc && rc != TAKHIN_EEXISTS) return fail("create topic", rc);

  char keys[10][16], values[10][64];
  takhin_record batch[10];
  for (int i = 0; i < 10; i++) {
    snprintf(keys[i], sizeof keys[i], "user-%d", i % 3);
    snprintf(values[i], sizeof values[i], "{\"order\":%d,\"total\":%d}", i, 10 * i);
    batch[i] = (takhin_record){.key = keys[i],
                               .key_len = strlen(keys[i]),
                               .value = values[i],
                               .value_len = strlen(values[i]),
                               .timestamp = 1700000000000LL + i * 1000};
  }
  int64_t first;
  if ((rc = takhin_produce(s, "orders", 0, batch, 10, &first))) return fail("produce", rc);
  printf("produced 10 records at offsets %lld..%lld\n", (long long)first, (long long)first + 9);

  takhin_cursor *c;
  takhin_message m;
  if ((rc = takhin_cursor_open(s, "orders", 0, &c))) return fail("cursor", rc);
  if ((rc = takhin_cursor_seek(c, first, 5, 0))) return fail("seek", rc);
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK)
    printf("  offset %lld  key %.*s  value %.*s\n", (long long)m.offset, (int)m.key_len,
           (const char *)m.key, (int)m.value_len, (const char *)m.value);
  takhin_cursor_close(c);
  if (rc != TAKHIN_END) return fail("read", rc);

  int64_t at;
  if ((rc = takhin_offset_for_time(s, "orders", 0, 1700000004500LL, &at)))
    return fail("offset for time", rc);
  printf("first record at or after t+4.5s: offset %lld\n", (long long)at);

  takhin_partition_info pi;
  takhin_partition_info_get(s, "orders", 0, &pi);
  printf("orders-0: log start %lld, high watermark %lld, %lld bytes in %lld segment(s)\n",
         (long long)pi.log_start_offset, (long long)pi.high_watermark, (long long)pi.size_bytes,
         (long long)pi.segments);
  return takhin_close(s) ? fail("close", rc) : 0;
}
