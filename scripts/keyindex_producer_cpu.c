/*
** keyindex_producer_cpu.c -- what maintaining the key index costs the
** producing thread itself, on a compacted topic with many distinct keys
** (CompactedProduce's pool has 1,024 keys, so its map is written once a
** second and never shows in p999): batches of 100 records, 16-byte keys
** never repeated, 100 B values. Prints the mean, the worst call and how many
** calls took over 1 ms of the producing thread's own CPU
** (CLOCK_THREAD_CPUTIME_ID: other threads and the machine's load do not
** count). Not part of the build:
**
**   gcc -O2 -I store -I build/generated/include -o /tmp/kpc \
**       scripts/keyindex_producer_cpu.c build/libtakhin.a \
**       -lsqlite3 -lzstd -lsnappy -lz -llz4 -lpthread -lm
**   rm -rf /tmp/kpc.db*; /tmp/kpc /tmp/kpc.db 3000
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "takhin.h"
static long long tns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
  const char *db = argc > 1 ? argv[1] : "/tmp/kt-spike.db";
  int calls = argc > 2 ? atoi(argv[2]) : 3000;
  takhin_store *s;
  if (takhin_open(db, NULL, &s)) {
    fprintf(stderr, "open: %s\n", takhin_errmsg());
    return 1;
  }
  static const char *const cfg[] = {"cleanup_policy", "compact", NULL};
  if (takhin_topic_create(s, "t", 1, cfg)) {
    fprintf(stderr, "create: %s\n", takhin_errmsg());
    return 1;
  }
  takhin_record r[100];
  char k[100][17], v[100];
  memset(v, 'x', sizeof v);
  long long sum = 0, worst = 0;
  int over1 = 0;
  long id = 0;
  for (int c = 0; c < calls; c++) {
    for (int j = 0; j < 100; j++) {
      snprintf(k[j], 17, "%016ld", id++);
      r[j] = (takhin_record){.key = k[j], .key_len = 16, .value = v, .value_len = 100};
    }
    long long t0 = tns();
    if (takhin_produce(s, "t", 0, r, 100, NULL)) {
      fprintf(stderr, "produce: %s\n", takhin_errmsg());
      return 1;
    }
    long long d = tns() - t0;
    sum += d;
    if (d > worst) worst = d;
    if (d > 1000000) over1++;
  }
  printf("calls %d  mean %.1f us  worst %.2f ms  calls>1ms %d\n", calls, sum / 1e3 / calls,
         worst / 1e6, over1);
  takhin_close(s);
  return 0;
}
