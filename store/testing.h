/*
** testing.h -- what the tests and the benchmark suite use beyond takhin.h.
** None of it is part of the ABI: libtakhin.so does not export it, and the
** installed header does not declare it.
**
** Test hooks (after SQLite's SQLITE_TEST) exist only in a library compiled
** with TAKHIN_TESTING defined: the CMake option TAKHIN_TESTING (ON by
** default) builds such a copy, takhin_testing, for the tests that need the
** hooks; libtakhin.a, libtakhin.so and the Debian package never have them.
*/
#ifndef TAKHIN_TESTING_H
#define TAKHIN_TESTING_H

#include <stdatomic.h>

#include "takhin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- for the benchmark suite (partitioner.c; in every build) ------------ */
/* Partition balance: records per partition (high watermark - log start;
** counts may be NULL or hold nparts entries) and imbalance = (max - mean) /
** mean (0 when the topic is empty). */
int takhin_topic_balance(takhin_store *s, const char *topic, int64_t *counts, int32_t nparts,
                         double *imbalance);

/* ---- test hooks (TAKHIN_TESTING builds only) ---------------------------- */
#ifdef TAKHIN_TESTING
/* recovery.c: called, when set, as an open is about to load the segment
** of each catalog row (dir: the partition's folder), so that a test can
** remove its file in between, as a live writer's retention may. NULL = off. */
extern void (*tk_load_segment_hook)(const char *dir, int64_t base);
/* compaction.c: abort the process at step n of a compaction run (1-based),
** to prove the swap is crash-safe. 0 = off. */
extern int tk_compact_crash_step;
/* compaction.c: called, when set, at each of those steps of a run and at
** step 0 (after the run's flush and key-index catch-up, before any row
** of its own),
** with the run's maint_lock held, so that a test can hold a run there
** while other threads act. NULL = off. */
extern void (*tk_compact_step_hook)(const char *topic, int32_t partition, int step);
/* compaction.c: nonzero arranges a run as on the extension's store (the
** caller plans, a thread rewrites) through the C API too, so the threaded
** tests cover it. */
extern int tk_compact_caller_plans;
/* compaction.c: the fdatasync of the n-th new file of a run (1-based)
** fails with EIO, to prove an error on a syncing thread undoes the run.
** 0 = off. */
extern int tk_compact_sync_fail_at;
/* compact_plan.c: the survivors query of candidate n (1-based) fails, to
** prove an error on the helper thread reaches the caller and undoes the run.
** 0 = off. */
extern int tk_compact_plan_fail_at;
/* compact_plan.c: how a run plans segments its dead offsets cover
** (takhin_cat_dead): 0 from them, 1 by the survivors query (the reference),
** 2 from them and by the query too, counting in mismatches the segments
** where the two differ. planned counts segments planned from dead offsets,
** fallbacks those whose chunks were damaged (the query answered). */
extern int tk_compact_dead_mode;
extern atomic_long tk_compact_dead_planned, tk_compact_dead_fallbacks, tk_compact_dead_mismatches;
/* keyindex.c: the key-writer thread sleeps this long before each write, so
** that the tests see maps queued while producers, flushes and lookups go
** on. 0 = off. */
extern atomic_int tk_key_writer_delay_ms; /* atomic: read by the thread while a test sets it */
/* keyindex.c: a map of latest keys is due when it holds this many (8192
** otherwise), so that the tests hand maps over often. */
extern int tk_key_map_keys;
/* keyindex.c: every nth write of the key-writer thread fails after its
** rows (rolled back, as on a full disk), to prove they are written later.
** 0 = off. */
extern atomic_int tk_key_writer_fail_every;
/* keyindex.c: the map of latest keys ANDs every key's hash with this
** (all bits otherwise): 0 makes every key collide with every other, so the
** tests reach the probe's compares of equal hashes. */
extern uint32_t tk_key_hash_mask;
/* partition.c: persists by an append (or a roll) that wrote sealed
** segments' owed index rows, which the checkpoint thread writes when it
** runs: a test proves producers do not pay for them. */
extern atomic_long tk_owed_rows_by_append;
/* partition.c: chunks of owed index rows tk_part_write_owed failed to
** write (the catalog refused them): a test proves a failure does not make
** the checkpoint thread try again at once, and again. */
extern atomic_long tk_owed_chunks_failed;
struct tk_partition;
/* partition.c: called, when set, by tk_part_write_owed after its chunk is
** committed and before it takes append_lock again to settle it (no lock
** held), so that a test can act in between. NULL = off. */
extern void (*tk_write_owed_hook)(struct tk_partition *p);
/* maintenance.c: nonzero, the checkpoint thread is never started (as if
** pthread_create failed), so that a test sees producers write the owed
** rows. Set before the store opens. */
extern int tk_ckpt_refuse;
#endif

#ifdef __cplusplus
}
#endif
#endif /* TAKHIN_TESTING_H */
