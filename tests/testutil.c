/*
** testutil.c -- see testutil.h.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tu_rmtree(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) { /* best effort */ }
}

const char *tu_store_path(const char *test_name) {
  static char path[4096];
  const char *root = getenv("TAKHIN_TEST_TMP");
  if (!root || !*root) root = "/tmp/takhin-test";
  char dir[4000];
  snprintf(dir, sizeof dir, "%s/%s-%d", root, test_name, (int)getpid());
  tu_rmtree(dir);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd) != 0) return NULL;
  snprintf(path, sizeof path, "%s/store.db", dir);
  return path;
}

void tu_segment_path(char *out, size_t cap, const char *db, const char *topic,
                     int partition, int64_t base) {
  snprintf(out, cap, "%s-takhin/%s-%d/%020lld.log", db, topic, partition, (long long)base);
}

int64_t tu_file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (int64_t)st.st_size;
}

static char pattern_byte(long i, size_t j) { return (char)('a' + (char)((i * 7 + (long)j) % 26)); }

void tu_make_record(takhin_record *r, char *kbuf, size_t kcap, char *vbuf, size_t vlen,
                    long i) {
  memset(r, 0, sizeof *r);
  int kl = snprintf(kbuf, kcap, "k%ld", i);
  for (size_t j = 0; j < vlen; j++) vbuf[j] = pattern_byte(i, j);
  r->key = kbuf;
  r->key_len = (size_t)kl;
  r->value = vbuf;
  r->value_len = vlen;
  r->timestamp = 1700000000000LL + i;
}

int tu_value_ok(const void *v, size_t len, size_t vlen, long i) {
  if (len != vlen || (vlen && !v)) return 0;
  const char *c = v;
  for (size_t j = 0; j < vlen; j++)
    if (c[j] != pattern_byte(i, j)) return 0;
  return 1;
}
