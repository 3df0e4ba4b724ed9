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
** thread, prepare statements and reserve the active segment's index) and
** before the segment rolls: a roll writes the sealed segment's index rows
** to SQLite, whose B-tree page splits allocate (BENCHMARKS.md).
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
