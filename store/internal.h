/*
** internal.h -- every private header of the store at once. The library's
** own files include only the module headers they use; this umbrella is
** for white-box tests that reach into several modules.
**
** The modules, and the one file (or files) that owns each concept:
**
**   error.h       error.c                  last-error message, clock
**   batch.h       batch.c                  the record batch (encode, decode)
**   segment.h     segment.c                one segment file and its index
**   partition.h   partition.c              append, flush, group commit
**                 recovery.c, retention.c  load on open; deleting old data
**   keyindex.h    keyindex.c               the key index of a compacted topic,
**                                          and its key-writer thread
**   dead.h        dead.c                   its superseded offsets (bitmaps)
**   cursor.h      cursor.c                 reading a partition
**   compaction.h  compaction.c, compact_plan.c, compact_workers.c
**   topic.h       topic.c, topic_admin.c, topic_meta.c, reconcile.c
**   catalog.h     catalog.c, sqlfile.c     the SQLite catalog
**   store.h       store.c, reaper.c, maintenance.c
**   wait.h        wait.c                   waiting for new data
**   host.h        what the SQLite extension may use of all this
**
** Locks, outermost first; take them in this order only:
**
**   takhin_store.topics_lock (rwlock)  read: any operation on a topic;
**                                     write: the set of topics changes.
**   tk_partition.maint_lock (mutex)    one of compaction, retention,
**                                     DeleteRecords, key-index catch-up at
**                                     a time; each checks tk_topic_gone
**                                     under it before writing rows. A topic
**                                     delete sets t->deleting, then takes
**                                     and drops each partition's maint_lock
**                                     holding no lock (waiting out a running
**                                     step), and only then topics_lock for
**                                     writing: a long compaction never
**                                     holds up the other topics.
**   tk_partition.append_lock (mutex)   appends, rolls, flushes, retention;
**                                     held across the write() of a batch.
**   takhin_store.cat_lock (mutex)      the one SQLite connection to the
**                                     catalog (taken inside append_lock by
**                                     every persist).
**   tk_partition.meta_lock (rwlock)    the segment array, each segment's
**                                     visible end and index, log start.
**                                     Only ever held for in-memory work,
**                                     never across I/O.
**   takhin_store.fd_lock (mutex)       the segment file-handle cache (LRU,
**                                     budget), each segment's unlinked
**                                     flag (taken inside meta_lock).
**   tk_partition.sync_lock (mutex)     FSYNC mode group commit (never held
**                                     with another of these).
**   takhin_store.kw_mu (mutex)         the key-writer thread's queue and
**                                     each partition's kw_state (a leaf:
**                                     a persist queues a map inside
**                                     append_lock and cat_lock; no lock is
**                                     taken inside it). The
**                                     thread itself takes cat_lock alone,
**                                     never append_lock: whoever waits for
**                                     it (tk_key_wait_written) may hold
**                                     append_lock, never cat_lock.
*/
#ifndef TAKHIN_INTERNAL_H
#define TAKHIN_INTERNAL_H

#include "batch.h"
#include "catalog.h"
#include "compaction.h"
#include "cursor.h"
#include "error.h"
#include "host.h"
#include "keyindex.h"
#include "partition.h"
#include "segment.h"
#include "store.h"
#include "topic.h"
#include "wait.h"

#endif /* TAKHIN_INTERNAL_H */
