/*
** keyindex_map_cpu.c -- what the map of latest keys (store/keyindex.c's
** note(), which every produce call to a compacted topic runs) costs the
** producing thread, alone: batches of 100 records with 16-byte decimal keys
** (as CompactedProduce's pool has them) cycling over `keys` distinct keys,
** timed with CLOCK_THREAD_CPUTIME_ID (the machine's load and other threads
** do not count); best of 7 rounds. It compiles keyindex.c into itself (note
** is static), so it measures whichever copy it is given, e.g. an old one
** from `git show REV:store/keyindex.c` against REV's own headers. Not part
** of the build:
**
**   gcc -O2 -DNDEBUG -D_GNU_SOURCE -I . -I store -I build/generated/include \
**       -DKEYINDEX='"store/keyindex.c"' -o /tmp/kmc scripts/keyindex_map_cpu.c \
**       build/libtakhin.a -lsqlite3 -lzstd -lsnappy -lz -llz4 -lpthread -lm
**   /tmp/kmc 1100 20000     (keys, batches per round)
*/
#include KEYINDEX
#include <time.h>

static long long tns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  int nkeys = argc > 1 ? atoi(argv[1]) : 1100, calls = argc > 2 ? atoi(argv[2]) : 20000;
  if (nkeys < 100 || calls < 1) return 2;
  takhin_store *s = calloc(1, sizeof *s);
  tk_topic *t = calloc(1, sizeof *t);
  tk_partition *p = calloc(1, sizeof *p);
  int n = (nkeys + 99) / 100 * 100;
  takhin_record *r = calloc((size_t)n, sizeof *r);
  char *keys = malloc((size_t)n * 17);
  if (!s || !t || !p || !r || !keys) return 1;
  t->store = s; /* not borrowed: keys go straight into the map */
  t->cfg.compact = 1;
  p->topic = t;
  p->latest.max_offset = p->writing.max_offset = -1;
  p->next_offset = INT64_MAX / 2; /* every record is in the file */
  static char v[100];
  for (int i = 0; i < n; i++) {
    snprintf(keys + (size_t)i * 17, 17, "%016d", i);
    r[i] =
        (takhin_record){.key = keys + (size_t)i * 17, .key_len = 16, .value = v, .value_len = 100};
  }
  long long best = -1;
  int64_t off = 0;
  for (int round = 0; round < 7; round++) {
    long long t0 = tns();
    for (int c = 0; c < calls; c++, off += 100)
      if (note(p, r + (c % (n / 100)) * 100, 100, off)) return 1;
    long long d = tns() - t0;
    if (best < 0 || d < best) best = d;
  }
  printf("keys %d: %.1f ns of thread CPU per batch of 100\n", nkeys, (double)best / calls);
  return 0;
}
