/*
** compaction.h -- interface to compaction.c (rewriting the segments of a
** compacted topic), compact_plan.c (deciding their survivors ahead) and
** compact_workers.c (the threads both run helpers on).
*/
#ifndef TAKHIN_COMPACTION_H
#define TAKHIN_COMPACTION_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* On open: finish or discard compaction swaps, then load the key index's
** state (before the partition's segments are loaded). */
int tk_compact_recover(tk_partition *p, takhin_recovery_info *rec);
int tk_part_compact(tk_partition *p, int force, takhin_compaction_result *out);

/* A compaction run's plan (compact_plan.c): the surviving offsets of each
** candidate segment cand[i] (NULL entries skipped) and, if some records do
** not survive, its new file, made ahead of the caller on a helper thread
** where threads may run. tk_plan_get waits for segment i and returns a
** view of its sorted offsets, valid until tk_plan_done(i), and the new
** file's descriptor and path (*fd = -1: leave the segment as it is); the
** descriptor is the caller's to write, close, or unlink. Segments are
** taken in order. tk_plan_stop (NULL-safe) joins the helper, removes files
** made but not taken, and frees the plan.
** by_caller (the extension's store, whose catalog connection must stay on
** the calling thread): no helper; the caller runs tk_plan_run while another
** thread takes the segments, or calls tk_plan_inline first when it cannot
** start one. The taking side calls tk_plan_abort when it gives up. */
typedef struct tk_plan tk_plan;
int tk_plan_start(tk_plan **out, tk_partition *p, tk_segment *const *cand, size_t ncand,
                  int64_t expired_before, int by_caller);
int tk_plan_run(tk_plan *pl);
void tk_plan_inline(tk_plan *pl);
void tk_plan_abort(tk_plan *pl);
int tk_plan_get(tk_plan *pl, size_t i, const int64_t **keep, size_t *n, int *fd, const char **tmp);
void tk_plan_done(tk_plan *pl, size_t i);
void tk_plan_stop(tk_plan *pl);

/* A helper job on one of the store's compaction threads (compact_workers.c).
** tk_cw_start hands fn(arg) to a thread that starts it at once and returns
** 1, or returns 0 when none can (the caller then does without: inline, or
** sequentially); j must stay valid until tk_cw_wait returns, which waits
** for a handed-over job to end (and returns at once for one that was not).
** takhin_close joins the threads (tk_compact_workers_stop). */
#define TK_CW_MAX 12 /* threads a store keeps for compaction at most */
typedef struct tk_cw_job {
  void (*fn)(void *);
  void *arg;
  struct tk_cw_job *next;
  int taken;    /* the caller's: tk_cw_start handed it over */
  int finished; /* the workers' lock guards it */
} tk_cw_job;
int tk_cw_start(takhin_store *s, tk_cw_job *j, void (*fn)(void *), void *arg);
/* Start one idle thread (returns 1) if fewer than want wait idle; 0: enough
** wait, -1: none can start (stopping, TK_CW_MAX reached, or the start
** failed). The plan makes the syncing threads a run will need, so their
** start is not paid on the rewriting thread. */
int tk_cw_add_spare(takhin_store *s, int want);
#define TK_COMPACT_SYNC_THREADS 4 /* files a run syncs at once (compaction.c) */
void tk_cw_wait(takhin_store *s, tk_cw_job *j);
/* One run's buffers kept between runs (NULL-safe): tk_cw_take_buffers
** returns the kept ones, or NULL; tk_cw_keep_buffers keeps b for the next
** run, or frees it with free_fn when some are kept already (free_fn frees
** the kept ones at close too). */
void *tk_cw_take_buffers(takhin_store *s);
void *tk_cw_kept_buffers(takhin_store *s); /* the kept ones, left kept (tests) */
void tk_cw_keep_buffers(takhin_store *s, void *b, void (*free_fn)(void *));
void tk_compact_workers_stop(takhin_store *s);

#endif /* TAKHIN_COMPACTION_H */
