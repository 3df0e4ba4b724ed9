/*
** test_alloc_free.c -- a producer's steady state allocates nothing.
**
** The brief asks for allocation-free hot paths, and takhin-bench reports
** allocs/op; this test keeps the claim from rotting between benchmark runs.
** It links bench/alloc_count.c, which defines malloc and its family in the
** executable (exported, so libsqlite3's and libzstd's calls bind to it too),
** and counts the calling thread's calls: the producer's own, not those of
** the store's background threads, which run on their own schedule.
**
** Steady state means after a warm-up (the first calls start the checkpoint
** thread, prepare statements and reserve the active segment's index). A
** roll allocates: the next segment, and the sealed one's index run written
** to SQLite on the checkpoint thread; process_wide_per_roll bounds that,
** whatever the number of messages per segment.
** Sanitizer builds interpose malloc themselves: the test is skipped there.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "stats.h" /* bench/: alloc_count_enabled, alloc_count_thread */
#include "testutil.h"

#define BATCH 100
#define VLEN 200

/* Records k<i>/v<i> for calls first.. of BATCH each, built once: the test's
** own buffers must not be what is counted. */
typedef struct batch_buf {
  takhin_record recs[BATCH];
  char keys[BATCH][32];
  char vals[BATCH][VLEN + 1];
} batch_buf;

static void fill(batch_buf *b, long first) {
  for (int j = 0; j < BATCH; j++)
    tu_make_record(&b->recs[j], b->keys[j], sizeof b->keys[j], b->vals[j], VLEN, first + j);
}

static takhin_store *open_with_topic(const char *name, int32_t partitions,
                                     const char *const *config) {
  if (!alloc_count_enabled()) cr_skip_test("malloc is the sanitizer's in this build");
  takhin_store *s = tu_open_ok(tu_store_path(name));
  int rc = takhin_topic_create(s, "t", partitions, config);
  cr_assert_eq(rc, TAKHIN_OK, "topic: %s", takhin_errmsg());
  return s;
}

/* The counter sees SQLite's allocations: without this the tests below
** would pass with an interposer nobody calls. */
Test(alloc_free, counter_sees_sqlite_allocations) {
  if (!alloc_count_enabled()) cr_skip_test("malloc is the sanitizer's in this build");
  uint64_t before = alloc_count_thread();
  char *p = sqlite3_mprintf("%s-%d", "takhin", 42);
  cr_assert_not_null(p);
  sqlite3_free(p);
  cr_assert_gt(alloc_count_thread(), before, "sqlite3_mprintf was not counted");
}

/* calls of BATCH records into partition 0 of "t": the allocations of the
** last `counted` calls on this thread, after `warm` calls */
static uint64_t produce_counted(takhin_store *s, long warm, long counted) {
  batch_buf *b = malloc(sizeof *b);
  cr_assert_not_null(b);
  fill(b, 0);
  int64_t first = -1;
  uint64_t before = 0;
  for (long calls = 0; calls < warm + counted; calls++) {
    if (calls == warm) before = alloc_count_thread();
    if (takhin_produce(s, "t", 0, b->recs, BATCH, &first) != TAKHIN_OK)
      cr_assert_fail("produce: %s", takhin_errmsg());
  }
  uint64_t n = alloc_count_thread() - before;
  cr_expect_eq(first, (warm + counted - 1) * BATCH, "last batch at %lld", (long long)first);
  free(b);
  return n;
}

Test(alloc_free, produce_to_one_partition) {
  takhin_store *s = open_with_topic("alloc_free_produce", 1, NULL);
  uint64_t n = produce_counted(s, 300, 1000);
  cr_expect_eq(n, 0, "%llu allocations in 1000 calls of %d records", (unsigned long long)n, BATCH);
  takhin_close(s);
}

/* Segments roll every ~45 calls here. A call that rolls seals the file and
** starts the next (a segment and its index, SQLite's segment row): it may
** allocate. Every other call must not, the calls right after a roll too,
** while the checkpoint thread writes the sealed segment's index rows
** (partition.c), SQLite's B-tree splits and all, on its own thread. */
Test(alloc_free, produce_across_rolls) {
  const char *cfg[] = {"segment_bytes", "1048576", NULL};
  takhin_store *s = open_with_topic("alloc_free_rolls", 1, cfg);
  batch_buf *b = malloc(sizeof *b);
  cr_assert_not_null(b);
  fill(b, 0);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  produce_counted(s, 100, 0); /* warm-up */
  int64_t segs = 0, rolls = 0;
  uint64_t at_rolls = 0, between = 0;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  segs = pi.segments;
  for (int i = 0; i < 1000; i++) {
    uint64_t before = alloc_count_thread();
    if (takhin_produce(s, "t", 0, b->recs, BATCH, NULL) != TAKHIN_OK)
      cr_assert_fail("produce: %s", takhin_errmsg());
    uint64_t n = alloc_count_thread() - before;
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK); /* not counted */
    if (pi.segments != segs) rolls++, at_rolls += n;
    else between += n;
    segs = pi.segments;
  }
  cr_assert_gt(rolls, 10, "only %lld rolls", (long long)rolls);
  cr_expect_eq(between, 0, "%llu allocations in the %lld calls that did not roll",
               (unsigned long long)between, (long long)(1000 - rolls));
  cr_log_info("%llu allocations in %lld rolls", (unsigned long long)at_rolls, (long long)rolls);
  takhin_close(s);
  free(b);
}

/* Kafka's partitioner over four partitions: keyed records split by key, one
** batch per partition per call; null keys stick to one partition a call. */
Test(alloc_free, produce_topic_keyed_and_unkeyed) {
  takhin_store *s = open_with_topic("alloc_free_topic", 4, NULL);
  batch_buf *b = malloc(sizeof *b);
  batch_buf *nokey = malloc(sizeof *nokey);
  cr_assert(b && nokey);
  fill(b, 0);
  fill(nokey, 0);
  for (int j = 0; j < BATCH; j++) nokey->recs[j].key = NULL, nokey->recs[j].key_len = 0;
  int32_t parts[BATCH];
  int64_t offs[BATCH];
  for (int i = 0; i < 300; i++) {
    cr_assert_eq(takhin_produce_topic(s, "t", b->recs, BATCH, parts, offs), TAKHIN_OK);
    cr_assert_eq(takhin_produce_topic(s, "t", nokey->recs, BATCH, parts, offs), TAKHIN_OK);
  }
  uint64_t before = alloc_count_thread();
  for (int i = 0; i < 500; i++) {
    if (takhin_produce_topic(s, "t", b->recs, BATCH, parts, offs) != TAKHIN_OK ||
        takhin_produce_topic(s, "t", nokey->recs, BATCH, parts, offs) != TAKHIN_OK)
      cr_assert_fail("produce_topic: %s", takhin_errmsg());
  }
  uint64_t n = alloc_count_thread() - before;
  cr_expect_eq(n, 0, "%llu allocations in 1000 calls of %d records", (unsigned long long)n, BATCH);
  for (int j = 0; j < BATCH; j++) /* the last call's records all stored, in one partition */
    cr_expect(offs[j] >= 0 && parts[j] == parts[0], "record %d: partition %d offset %lld", j,
              parts[j], (long long)offs[j]);
  takhin_close(s);
  free(b);
  free(nokey);
}

/* The whole process, the store's threads and SQLite included, across rolls:
** what a roll costs must not grow with the messages a segment holds. Each
** call here is one record of 4,200 bytes, so every batch gets an index
** entry, and a 64 MiB segment holds ~16,000: with a catalog row per entry
** (format 2) a roll cost ~500 allocations (B-tree page splits, a statement
** execution per 256 rows); with runs (index_run.c) it is one insert. The
** first rolls are warm-up: SQLite's page cache grows to its cache_size as
** the runs' overflow pages pass through it, once per store. */
Test(alloc_free, process_wide_per_roll, .timeout = 120) {
  const char *cfg[] = {"segment_bytes", "67108864", NULL};
  takhin_store *s = open_with_topic("alloc_free_process", 1, cfg);
  enum { VBIG = 4200, WARM_ROLLS = 6, ROLLS = 4 };
  char *val = malloc(VBIG + 1), key[32];
  cr_assert_not_null(val);
  takhin_record r;
  tu_make_record(&r, key, sizeof key, val, VBIG, 7);
  takhin_partition_info pi;
  uint64_t before = 0, bytes, after;
  long calls = 0, counted_calls = 0;
  for (int phase = 0; phase < 2; phase++) {
    cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
    int64_t target = pi.segments + (phase ? ROLLS : WARM_ROLLS);
    if (phase) alloc_count_get(&before, &bytes);
    while (pi.segments < target) {
      for (int i = 0; i < 256; i++, calls++)
        if (takhin_produce(s, "t", 0, &r, 1, NULL) != TAKHIN_OK)
          cr_assert_fail("produce: %s", takhin_errmsg());
      if (phase) counted_calls += 256;
      cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
    }
    /* every owed entry written, by the thread or by this flush */
    cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s", takhin_errmsg());
  }
  alloc_count_get(&after, &bytes);
  double per_roll = (double)(after - before) / ROLLS;
  cr_log_info("%llu allocations in %d rolls (%.1f a roll, %ld calls, %.6f a call)",
              (unsigned long long)(after - before), (int)ROLLS, per_roll, counted_calls,
              (double)(after - before) / (double)counted_calls);
  cr_expect_lt(per_roll, 40, "%.1f allocations a roll of ~16,000 index entries", per_roll);
  takhin_close(s);
  free(val);
}
