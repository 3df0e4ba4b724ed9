/*
** store.h -- interface to the store handle: store.c (open, close, the
** topic table), reaper.c (releasing retired segments off the callers'
** threads), maintenance.c (the background thread).
*/
#ifndef TAKHIN_STORE_H
#define TAKHIN_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"

typedef struct tk_catalog tk_catalog;

#define TK_STORE_OPEN 0x74616b68u   /* "takh" */
#define TK_STORE_CLOSED 0x64656164u /* "dead" */

struct takhin_store {
  uint32_t magic; /* TK_STORE_OPEN while usable; see takhin_close */
  char db_path[3900];
  char data_dir[3900]; /* "<db>-takhin" */
  takhin_options opt;
  int lock_fd;
  pthread_rwlock_t topics_lock;
  tk_topic **topics; /* hash table of nbuckets chains */
  size_t nbuckets, ntopics;
  pthread_mutex_t cat_lock;
  tk_catalog *cat;
  pthread_mutex_t fd_lock;
  tk_segment *lru_head, *lru_tail; /* idle open files, most recent first */
  int open_fds;
  int nmaps; /* segment mappings (fd_lock); bounded below vm.max_map_count */
  takhin_recovery_info recovery;
  /* BUFFERED mode flusher */
  pthread_t flusher;
  int flusher_running;
  pthread_mutex_t flusher_mu; /* also the maintenance thread's */
  pthread_cond_t flusher_cv;  /* broadcast on close */
  int stopping;
  pthread_t maint;
  int maint_running;
  int borrowed; /* the catalog is the SQLite extension's host connection */
  /* segments whose files are gone, released by the reaper thread (reaper.c) */
  pthread_mutex_t reap_mu;
  pthread_cond_t reap_cv;
  struct tk_reap_item *reap_q;
  size_t reap_n, reap_cap;
  pthread_t reaper;
  int reaper_running, reap_stop;
  /* compacted partitions whose key rows the key-index writer thread is to
  ** write, oldest first (keyindex.c; kw_mu guards these and each queued
  ** partition's kw_next) */
  pthread_mutex_t kw_mu;
  pthread_cond_t kw_cv; /* work queued; a write done; stop */
  tk_partition *kw_head, *kw_tail;
  pthread_t kw_thread;
  int kw_running, kw_stop;
  /* takhin_cursor_wait (wait.c): wait_cv signals appends to partitions
  ** with waiters; wait_seq counts appends; wait_mu guards the rest */
  pthread_mutex_t wait_mu;
  pthread_cond_t wait_cv;
  atomic_uint_fast64_t wait_seq;
  int wait_active;  /* threads inside tk_wait_for */
  int wait_closing; /* takhin_close has begun: waits end with EMISUSE */
  /* the checkpoint thread (maintenance.c), made on first use: writes the
  ** catalog rows partitions hold back once they are idle (ckpt_mu guards
  ** these; a leaf, taken inside append_lock by tk_ckpt_kick) */
  pthread_mutex_t ckpt_mu;
  pthread_cond_t ckpt_cv;
  pthread_t ckpt;
  int ckpt_running, ckpt_kicked, ckpt_stop;
  /* sealed segments' index rows are owed (a roll, a compaction): the
  ** thread writes them now, not once the partition is idle */
  int ckpt_owed;
  /* compaction's helper threads, made on first use (compact_workers.c) */
  _Atomic(struct tk_cworkers *) cworkers;
};

/* The handle is an open store (NULL and closed handles are not). */
static inline int tk_store_live(const takhin_store *s) { return s && s->magic == TK_STORE_OPEN; }

/* Build a tk_topic from a catalog row (store.c owns the table). */
struct tk_topic_config;
tk_topic *tk_topic_new(takhin_store *s, int64_t id, const char *name, int32_t nparts,
                       const struct tk_topic_config *cfg);
/* The topic table (topics_lock held for writing). */
tk_topic *tk_store_find(const takhin_store *s, const char *name);
int tk_store_insert(takhin_store *s, tk_topic *t);
void tk_store_remove(takhin_store *s, tk_topic *t);
/* Call fn on every partition of every topic (topics_lock read-held inside). */
void tk_store_each_partition(takhin_store *s, void (*fn)(tk_partition *, void *), void *arg);
/* Read-only handles: load topics the writer created since. */
void tk_store_refresh(takhin_store *s);

/* Hand over one reference to g, a segment whose file is gone, and one to
** its topic t: both are released on the store's reaper thread (reaper.c),
** or at once where no thread may run. Never fails. */
void tk_reap(takhin_store *s, tk_topic *t, tk_segment *g);
/* Release everything queued and stop the reaper thread (a later tk_reap
** starts a new one). takhin_close calls it before freeing anything. */
void tk_reaper_drain(takhin_store *s);

/* Every thread of the store's own calls it first: its scheduling policy,
** then its name (NULL: unnamed), as top and perf show it. background:
** SCHED_BATCH (store.c), for the housekeeping threads whose wake-ups no
** caller should wait on; else the default policy, whatever the thread that
** started it had (a thread inherits its creator's). */
void tk_thread_init(const char *name, int background);

/* Start the background maintenance thread if opt.maintenance_ms > 0. */
int tk_maint_start(takhin_store *s);
/* A partition holds catalog rows back: make sure the checkpoint thread
** looks (starting it if need be). Nonzero when no thread can run. */
int tk_ckpt_kick(takhin_store *s);
/* A partition owes sealed segments' index rows: the checkpoint thread
** writes them at once, a small chunk at a time (tk_part_write_owed), so
** that producers do not. Nonzero when no thread can run. */
int tk_ckpt_owe(takhin_store *s);
/* Stop the checkpoint thread (takhin_close, before the last flushes). */
void tk_ckpt_stop(takhin_store *s);

#endif /* TAKHIN_STORE_H */
