/*
** store.c -- the store handle: opening (writer lock, catalog, recovery of
** every partition), the table of topics, the BUFFERED-mode flusher thread,
** the scheduling every thread of the store's own starts with
** (tk_thread_init), and the public entry points that check their arguments
** and hand off to partition.c.
**
** Topic lookups take topics_lock for reading just long enough to find the
** topic and take a reference; the operation then runs on the partition's own
** locks, so producers to different partitions never contend here.
*/
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "compaction.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "wait.h"
#include "topic.h"

/* The size of takhin_options in release 0.1, its first layout: what a size
** of 0 stands for (a caller that zeroed the struct without the init macro).
** Fixed forever, whatever fields later releases add. */
#define OPTIONS_SIZE_0_1 (offsetof(takhin_options, maintenance_ms) + sizeof(int64_t))

static void options_defaults(takhin_options *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->durability = TAKHIN_DURABILITY_OS;
  o->flush_bytes = 1 << 20;
  o->flush_ms = 100;
  o->max_open_files = 256;
}

/* Fill the caller's struct of size bytes: the defaults of the fields that
** fit, zeroes past the fields this library knows. */
void takhin_options_init_size(takhin_options *opt, size_t size) {
  if (!opt || size < sizeof opt->size) return;
  takhin_options d;
  options_defaults(&d);
  d.size = size;
  size_t n = size < sizeof d ? size : sizeof d;
  memcpy(opt, &d, n);
  if (size > n) memset((char *)opt + n, 0, size - n);
}

/* *opt (of any release's size) onto the defaults in *out. EINVAL for a size
** that cannot be a takhin_options, or a newer caller's field this library
** does not know set to nonzero. */
static int options_take(const takhin_options *opt, takhin_options *out) {
  options_defaults(out);
  if (!opt) return TAKHIN_OK;
  size_t size = opt->size ? opt->size : OPTIONS_SIZE_0_1;
  if (size < offsetof(takhin_options, durability) + sizeof opt->durability)
    return tk_err(TAKHIN_EINVAL, "takhin_options: size %zu is too small (use takhin_options_init)",
                  size);
  for (size_t i = sizeof *out; i < size; i++)
    if (((const unsigned char *)opt)[i])
      return tk_err(TAKHIN_EINVAL,
                    "takhin_options: size %zu sets options this library (%zu bytes, takhin %s) "
                    "does not know",
                    size, sizeof *out, TAKHIN_VERSION);
  memcpy(out, opt, size < sizeof *out ? size : sizeof *out);
  out->size = sizeof *out;
  return TAKHIN_OK;
}

void takhin_free(void *p) { free(p); }

/* ---- topics table ----------------------------------------------------- */

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

tk_topic *tk_store_find(const takhin_store *s, const char *name) {
  if (!s->nbuckets) return NULL;
  for (tk_topic *t = s->topics[name_hash(name) % s->nbuckets]; t; t = t->hnext)
    if (!strcmp(t->name, name)) return t;
  return NULL;
}

/* Insert t (topics_lock held for writing), growing the table at load 1. */
int tk_store_insert(takhin_store *s, tk_topic *t) {
  TK_ASSERT_WRHELD(&s->topics_lock);
  if (s->ntopics + 1 > s->nbuckets) {
    size_t nb = s->nbuckets ? s->nbuckets * 2 : 64;
    tk_topic **nt = calloc(nb, sizeof *nt);
    if (!nt) return tk_err(TAKHIN_ENOMEM, "out of memory growing the topic table");
    for (size_t i = 0; i < s->nbuckets; i++)
      for (tk_topic *x = s->topics[i], *nx; x; x = nx) {
        nx = x->hnext;
        size_t b = name_hash(x->name) % nb;
        x->hnext = nt[b];
        nt[b] = x;
      }
    free(s->topics);
    s->topics = nt;
    s->nbuckets = nb;
  }
  size_t b = name_hash(t->name) % s->nbuckets;
  t->hnext = s->topics[b];
  s->topics[b] = t;
  s->ntopics++;
  return TAKHIN_OK;
}

void tk_store_remove(takhin_store *s, tk_topic *t) {
  TK_ASSERT_WRHELD(&s->topics_lock);
  tk_topic **pp = &s->topics[name_hash(t->name) % s->nbuckets];
  while (*pp && *pp != t) pp = &(*pp)->hnext;
  if (*pp) {
    *pp = t->hnext;
    t->hnext = NULL;
    s->ntopics--;
  }
}

tk_topic *tk_topic_new(takhin_store *s, int64_t id, const char *name, int32_t nparts,
                       const tk_topic_config *cfg) {
  tk_topic *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->store = s;
  t->topic_id = id;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->cfg = *cfg;
  t->nparts = nparts;
  atomic_init(&t->refs, 1);
  atomic_init(&t->deleted, 0);
  atomic_init(&t->deleting, 0);
  atomic_init(&t->sticky_next, 0);
  t->parts = calloc((size_t)nparts, sizeof *t->parts);
  for (int32_t i = 0; t->parts && i < nparts; i++)
    if (!(t->parts[i] = tk_part_new(t, i))) {
      while (i--) tk_part_free(t->parts[i]);
      free(t->parts);
      t->parts = NULL;
    }
  if (!t->parts) {
    free(t);
    return NULL;
  }
  return t;
}

void tk_topic_ref(tk_topic *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

void tk_topic_unref(tk_topic *t) {
  if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
  for (int32_t i = 0; i < t->nparts; i++) tk_part_free(t->parts[i]);
  free(t->parts);
  free(t);
}

/* Topic rows as read from the catalog, loaded after the statement is done
** so that loading (which queries the catalog itself) never nests in it. */
typedef struct topic_row {
  int64_t id;
  char name[TK_MAX_TOPIC_NAME + 1];
  int32_t nparts;
  tk_topic_config cfg;
} topic_row;

typedef struct topic_rows {
  topic_row *v;
  size_t n, cap;
} topic_rows;

static int collect_topic(takhin_store *s, int64_t id, const char *name, int32_t nparts,
                         const tk_topic_config *cfg, void *arg) {
  (void)s;
  topic_rows *r = arg;
  if (TK_ARRAY_GROW(r->v, r->n, r->cap, 16))
    return tk_err(TAKHIN_ENOMEM, "out of memory reading topics");
  topic_row *t = &r->v[r->n++];
  t->id = id;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->nparts = nparts;
  t->cfg = *cfg;
  return TAKHIN_OK;
}

/* Load every catalog topic not yet in the table (topics_lock held for
** writing). At open this is all of them; for a read-only handle, later
** calls pick up topics the writer process created since. */
static int load_topics(takhin_store *s) {
  topic_rows rows = {0};
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_each_topic(s, collect_topic, &rows);
  pthread_mutex_unlock(&s->cat_lock);
  for (size_t k = 0; k < rows.n && !rc; k++) {
    topic_row *r = &rows.v[k];
    if (tk_store_find(s, r->name)) continue;
    tk_topic *t = tk_topic_new(s, r->id, r->name, r->nparts, &r->cfg);
    if (!t) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory loading topic \"%s\"", r->name);
      break;
    }
    pthread_mutex_lock(&s->cat_lock);
    t->created_ms = tk_cat_topic_created(s, r->id);
    pthread_mutex_unlock(&s->cat_lock);
    for (int32_t i = 0; i < r->nparts && !rc; i++) rc = tk_part_load(t->parts[i], &s->recovery);
    if (!rc) rc = tk_store_insert(s, t);
    if (rc) tk_topic_unref(t);
  }
  free(rows.v);
  return rc;
}

void tk_store_refresh(takhin_store *s) {
  pthread_rwlock_wrlock(&s->topics_lock);
  /* drop topics the writer deleted or re-created, then load the new ones */
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b], *nx; t; t = nx) {
      nx = t->hnext;
      int64_t id;
      pthread_mutex_lock(&s->cat_lock);
      int rc = tk_cat_topic_id(s, t->name, &id);
      pthread_mutex_unlock(&s->cat_lock);
      if (rc == TAKHIN_ENOTFOUND || (rc == TAKHIN_OK && id != t->topic_id)) {
        tk_store_remove(s, t);
        atomic_store(&t->deleted, 1);
        tk_topic_unref(t);
      }
    }
  load_topics(s);
  pthread_rwlock_unlock(&s->topics_lock);
}

/* Read-only handles: the writer process may have deleted or re-created the
** topic since we loaded it; the catalog's topic_id tells. */
static void reconcile_topic(takhin_store *s, const char *name) {
  int64_t id = 0;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_topic_id(s, name, &id);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc != TAKHIN_OK && rc != TAKHIN_ENOTFOUND) return; /* keep what we have */
  pthread_rwlock_rdlock(&s->topics_lock);
  tk_topic *t = tk_store_find(s, name);
  int stale = t && (rc == TAKHIN_ENOTFOUND || t->topic_id != id);
  int missing = !t && rc == TAKHIN_OK;
  pthread_rwlock_unlock(&s->topics_lock);
  if (!stale && !missing) return;
  pthread_rwlock_wrlock(&s->topics_lock);
  if (stale && (t = tk_store_find(s, name)) && (rc == TAKHIN_ENOTFOUND || t->topic_id != id)) {
    tk_store_remove(s, t);
    atomic_store(&t->deleted, 1); /* open cursors get "was deleted" */
    tk_topic_unref(t);
  }
  if (rc == TAKHIN_OK) load_topics(s);
  pthread_rwlock_unlock(&s->topics_lock);
}

void tk_topic_limits_get(takhin_store *s, tk_topic *t, tk_topic_limits *out) {
  out->topic_id = t->topic_id;
  pthread_rwlock_rdlock(&s->topics_lock);
  out->partitions = t->nparts;
  out->max_message_bytes = t->cfg.max_message_bytes;
  out->compacted = t->cfg.compact;
  pthread_rwlock_unlock(&s->topics_lock);
}

int tk_store_topic(takhin_store *s, const char *name, tk_topic **out) {
  if (!name) return tk_err(TAKHIN_EINVAL, "topic name is NULL");
  if (s->opt.read_only) reconcile_topic(s, name);
  pthread_rwlock_rdlock(&s->topics_lock);
  tk_topic *t = tk_store_find(s, name);
  if (t) tk_topic_ref(t);
  pthread_rwlock_unlock(&s->topics_lock);
  if (!t) return tk_err(TAKHIN_ENOTFOUND, "unknown topic \"%.249s\"", name);
  *out = t;
  return TAKHIN_OK;
}

int tk_store_partition(takhin_store *s, const char *topic, int32_t part, tk_topic **t,
                       tk_partition **p) {
  int rc = tk_store_topic(s, topic, t);
  if (rc) return rc;
  /* parts is swapped whole when partitions are added: read it under the lock */
  pthread_rwlock_rdlock(&s->topics_lock);
  int32_t n = (*t)->nparts;
  if (part >= 0 && part < n) *p = (*t)->parts[part];
  pthread_rwlock_unlock(&s->topics_lock);
  if (part < 0 || part >= n) {
    rc = tk_err(TAKHIN_ENOTFOUND, "partition %d out of range [0, %d) for topic \"%s\"", (int)part,
                (int)n, topic);
    tk_topic_unref(*t);
    *t = NULL;
    return rc;
  }
  return TAKHIN_OK;
}

/* ---- the BUFFERED flusher ---------------------------------------------- */

void tk_store_each_partition(takhin_store *s, void (*fn)(tk_partition *, void *), void *arg) {
  pthread_rwlock_rdlock(&s->topics_lock);
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b]; t; t = t->hnext)
      for (int32_t i = 0; i < t->nparts; i++) fn(t->parts[i], arg);
  pthread_rwlock_unlock(&s->topics_lock);
}

static void flush_if_due(tk_partition *p, void *arg) {
  int64_t now = *(int64_t *)arg;
  /* pending_since_ms is read racily on purpose: a stale value only delays
  ** the flush by one tick; the flush itself runs under append_lock. */
  pthread_mutex_lock(&p->append_lock);
  int due = p->pending_since_ms && now - p->pending_since_ms >= p->topic->store->opt.flush_ms;
  pthread_mutex_unlock(&p->append_lock);
  if (due) tk_part_flush(p, 0, 0);
}

/* SCHED_BATCH: the thread keeps its fair share of the cores, but waking it
** no longer preempts the thread on its core. A producer that released a
** lock the checkpoint thread waited for, or handed the reaper a segment,
** lost its core to it at once, and on a 2-core guest whose other core was
** busy it waited there for a scheduler tick: calls of 3.5-4.2 ms right
** after a compaction (BENCHMARKS.md, fix 13). Set before the name, so that
** a thread seen with its name has its policy. Where the policy cannot be
** set, nothing changes but that. Threads started from a batched one
** (compaction's workers, the key writer, whose work callers wait for) set
** the default back. */
void tk_thread_init(const char *name, int background) {
#if defined(SCHED_BATCH)
  struct sched_param sp = {0};
  (void)pthread_setschedparam(pthread_self(), background ? SCHED_BATCH : SCHED_OTHER, &sp);
#else
  (void)background;
#endif
  if (name) pthread_setname_np(pthread_self(), name);
}

static void *flusher_main(void *arg) {
  takhin_store *s = arg;
  tk_thread_init("takhin-flush", 1);
  pthread_mutex_lock(&s->flusher_mu);
  while (!s->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t tick = s->opt.flush_ms / 2 > 0 ? s->opt.flush_ms / 2 : 1;
    ts.tv_sec += tick / 1000;
    ts.tv_nsec += (tick % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->flusher_cv, &s->flusher_mu, &ts);
    if (s->stopping) break;
    pthread_mutex_unlock(&s->flusher_mu);
    int64_t now = tk_now_ms();
    tk_store_each_partition(s, flush_if_due, &now);
    pthread_mutex_lock(&s->flusher_mu);
  }
  pthread_mutex_unlock(&s->flusher_mu);
  return NULL;
}

/* ---- open and close --------------------------------------------------- */

static int check_options(const takhin_options *o) {
  if (o->durability < TAKHIN_DURABILITY_OS || o->durability > TAKHIN_DURABILITY_BUFFERED)
    return tk_err(TAKHIN_EINVAL, "unknown durability mode %d", o->durability);
  if (o->flush_bytes <= 0) return tk_err(TAKHIN_EINVAL, "flush_bytes must be positive");
  if (o->flush_ms <= 0) return tk_err(TAKHIN_EINVAL, "flush_ms must be positive");
  if (o->max_open_files < 1) return tk_err(TAKHIN_EINVAL, "max_open_files must be at least 1");
  if (o->maintenance_ms < 0)
    return tk_err(TAKHIN_EINVAL, "maintenance_ms must be 0 (off) or positive, got %lld",
                  (long long)o->maintenance_ms);
  return TAKHIN_OK;
}

/* Take the one-writer lock: flock on "<dir>/LOCK", released by the kernel if
** the process dies, so a crash never leaves a stale lock behind. */
static int take_writer_lock(takhin_store *s) {
  char path[TK_PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", s->data_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return tk_err_sys(errno, "open", path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return tk_err(TAKHIN_ELOCKED,
                    "store %s is locked by another writer; open it read-only "
                    "to read while that writer runs",
                    s->db_path);
    return tk_err_sys(e, "lock", path);
  }
  s->lock_fd = fd;
  return TAKHIN_OK;
}

static int teardown(takhin_store *s);

static int open_store(const char *path, const takhin_options *opt, struct sqlite3 *borrow,
                      takhin_store **out) {
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_open: out is NULL");
  *out = NULL;
  if (!path || !*path) return tk_err(TAKHIN_EINVAL, "takhin_open: path is NULL or empty");
  if (strlen(path) > 3800) return tk_err(TAKHIN_EINVAL, "takhin_open: path is too long");
  takhin_store *s = calloc(1, sizeof *s);
  if (!s) return tk_err(TAKHIN_ENOMEM, "out of memory opening %s", path);
  if (options_take(opt, &s->opt)) {
    free(s);
    return TAKHIN_EINVAL;
  }
  s->magic = TK_STORE_OPEN;
  s->lock_fd = -1;
  pthread_rwlock_init(&s->topics_lock, NULL);
  pthread_mutex_init(&s->cat_lock, NULL);
  pthread_mutex_init(&s->fd_lock, NULL);
  pthread_mutex_init(&s->flusher_mu, NULL);
  pthread_cond_init(&s->flusher_cv, NULL);
  pthread_mutex_init(&s->reap_mu, NULL);
  pthread_cond_init(&s->reap_cv, NULL);
  pthread_mutex_init(&s->kw_mu, NULL);
  pthread_cond_init(&s->kw_cv, NULL);
  pthread_mutex_init(&s->ckpt_mu, NULL);
  pthread_cond_init(&s->ckpt_cv, NULL);
  tk_wait_init(s);
  snprintf(s->db_path, sizeof s->db_path, "%s", path);
  snprintf(s->data_dir, sizeof s->data_dir, "%s-takhin", path);
  s->borrowed = borrow != NULL;
  int rc = check_options(&s->opt);
  if (rc) goto fail;
  if (borrow && (s->opt.durability == TAKHIN_DURABILITY_BUFFERED || s->opt.maintenance_ms > 0)) {
    rc = tk_err(TAKHIN_EINVAL,
                "the SQLite extension runs no flusher or maintenance thread: BUFFERED "
                "durability and maintenance_ms are not available there");
    goto fail;
  }
  /* Leave half the process's descriptors to the application and SQLite. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (rlim_t)s->opt.max_open_files > rl.rlim_cur / 2)
    s->opt.max_open_files = rl.rlim_cur / 2 > 4 ? (int)(rl.rlim_cur / 2) : 4;
  if (s->opt.read_only) {
    struct stat st;
    if (stat(s->data_dir, &st) != 0 || stat(s->db_path, &st) != 0) {
      rc = tk_err(TAKHIN_ENOTFOUND, "no takhin store at %s (read-only open does not create one)",
                  path);
      goto fail;
    }
  } else {
    if (mkdir(s->data_dir, 0755) != 0 && errno != EEXIST) {
      rc = tk_err_sys(errno, "mkdir", s->data_dir);
      goto fail;
    }
    if ((rc = take_writer_lock(s))) goto fail;
  }
  if ((rc = tk_cat_open(s, s->opt.read_only, borrow))) goto fail;
  pthread_rwlock_wrlock(&s->topics_lock);
  /* The writer first makes the catalog agree with the data folder (a lost,
  ** damaged or older catalog is rebuilt from the files; nothing is deleted
  ** for being unknown to it), then writes the metadata files it settled. */
  rc = tk_reconcile(s);
  if (!rc) rc = load_topics(s);
  if (!rc) rc = tk_reconcile_finish(s);
  pthread_rwlock_unlock(&s->topics_lock);
  if (rc) goto fail;
  if (!s->opt.read_only) { /* key rows the last run did not get to write */
    /* They are written to the catalog, which a full disk refuses: that must
    ** not keep the log from being opened and read. The partition's key
    ** index then stays behind (keys_tracked = 0) and the next key lookup or
    ** compaction retries (compaction.c); recovery says so. The extension's
    ** store never retries there (its catalog is the host's connection):
    ** its open still fails. */
    for (size_t b = 0; b < s->nbuckets && !rc; b++)
      for (tk_topic *t = s->topics[b]; t && !rc; t = t->hnext)
        for (int32_t i = 0; i < t->nparts && !rc; i++)
          if ((rc = tk_key_catch_up(t->parts[i])) && !s->borrowed) {
            rc = TAKHIN_OK;
            takhin_recovery_info *ri = &s->recovery;
            size_t used = strlen(ri->message);
            ri->key_index_deferred++;
            if (used + 1 < sizeof ri->message)
              snprintf(ri->message + used, sizeof ri->message - used,
                       "%s%s-%d: key index not brought "
                       "up to date (%s); the next key lookup or compaction retries",
                       used ? "; " : "", t->name, (int)i, takhin_errmsg());
          }
    if (rc) goto fail;
  }
  if ((rc = tk_maint_start(s))) goto fail;
  if (s->opt.durability == TAKHIN_DURABILITY_BUFFERED && !s->opt.read_only) {
    if (pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
      rc = tk_err(TAKHIN_ENOMEM, "cannot start the flusher thread");
      goto fail;
    }
    s->flusher_running = 1;
  }
  *out = s;
  return TAKHIN_OK;
fail: /* never handed out: freed outright */
  teardown(s);
  free(s);
  return rc;
}

int takhin_open(const char *path, const takhin_options *opt, takhin_store **out) {
  return open_store(path, opt, NULL, out);
}

int tk_open_borrowed(struct sqlite3 *db, const char *path, const takhin_options *opt,
                     takhin_store **out) {
  if (!db) return tk_err(TAKHIN_EMISUSE, "tk_open_borrowed: db is NULL");
  return open_store(path, opt, db, out);
}

static void flush_one(tk_partition *p, void *arg) {
  int *first_rc = arg;
  /* A borrowed connection may be closing: leave the index rows to recovery. */
  int rc = tk_part_flush(p, !p->topic->store->borrowed, 0);
  if (rc && !*first_rc) *first_rc = rc;
}

/* After flushing every partition: the first partition whose acknowledged
** records a failed BUFFERED write lost says so (ELOST; its message is the
** thread's last, so it names those records); the others keep theirs for
** the next call. */
static void take_first_lost(tk_partition *p, void *arg) {
  int *rc = arg;
  if (*rc != TAKHIN_ELOST) {
    int l = tk_part_take_lost(p);
    if (l) *rc = l;
  }
}

/* A call on a closed handle is undefined (takhin.h), as in LMDB and SQLite.
** As a debugging aid the last CLOSED_KEPT closed structs (about 8 KB each:
** everything they owned is released at close) stay allocated, marked, so
** that a call on a handle closed just before gets EMISUSE instead of
** touching freed memory; older ones are freed, so a program that opens and
** closes stores all day holds a bounded amount. */
#define CLOSED_KEPT 16
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static takhin_store *closed[CLOSED_KEPT];
static size_t closed_next; /* ring position of the oldest kept handle */

__attribute__((destructor)) static void free_closed(void) {
  pthread_mutex_lock(&closed_lock);
  for (size_t i = 0; i < CLOSED_KEPT; i++) {
    free(closed[i]);
    closed[i] = NULL;
  }
  pthread_mutex_unlock(&closed_lock);
}

static void retire_handle(takhin_store *s) {
  s->magic = TK_STORE_CLOSED;
  pthread_mutex_lock(&closed_lock);
  takhin_store *oldest = closed[closed_next];
  closed[closed_next] = s;
  closed_next = (closed_next + 1) % CLOSED_KEPT;
  pthread_mutex_unlock(&closed_lock);
  free(oldest);
}

/* Stop threads, flush, close and free everything the store owns, but not
** the struct itself. Returns the first flush error. */
static int teardown(takhin_store *s) {
  int rc = TAKHIN_OK;
  tk_wait_close(s); /* no cursor_wait may run on what is freed below */
  pthread_mutex_lock(&s->flusher_mu);
  s->stopping = 1;
  pthread_cond_broadcast(&s->flusher_cv);
  pthread_mutex_unlock(&s->flusher_mu);
  if (s->flusher_running) pthread_join(s->flusher, NULL);
  if (s->maint_running) pthread_join(s->maint, NULL);
  tk_ckpt_stop(s);            /* the flushes below write what it would have */
  tk_compact_workers_stop(s); /* no compaction runs now */
  tk_reaper_drain(s);         /* its queue holds topic references */
  if (s->cat && !s->opt.read_only) {
    tk_store_each_partition(s, flush_one, &rc);
    tk_store_each_partition(s, take_first_lost, &rc);
  }
  tk_key_writer_stop(s); /* after the flushes waited out its writes; it holds topic references */
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b], *nx; t; t = nx) {
      nx = t->hnext;
      tk_topic_unref(t);
    }
  free(s->topics);
  tk_cat_close(s);
  if (s->lock_fd >= 0) close(s->lock_fd);
  pthread_rwlock_destroy(&s->topics_lock);
  pthread_mutex_destroy(&s->cat_lock);
  /* fd_lock and the wait state stay: a cursor that takhin_close woke from
  ** takhin_cursor_wait is closed after it, and the handle is never freed */
  pthread_mutex_destroy(&s->flusher_mu);
  pthread_cond_destroy(&s->flusher_cv);
  pthread_mutex_destroy(&s->reap_mu);
  pthread_cond_destroy(&s->reap_cv);
  pthread_mutex_destroy(&s->kw_mu);
  pthread_cond_destroy(&s->kw_cv);
  pthread_mutex_destroy(&s->ckpt_mu);
  pthread_cond_destroy(&s->ckpt_cv);
  return rc;
}

int takhin_close(takhin_store *s) {
  if (!s) return TAKHIN_OK;
  if (s->magic != TK_STORE_OPEN)
    return tk_err(TAKHIN_EMISUSE, "takhin_close: the store is already closed");
  int rc = teardown(s);
  retire_handle(s);
  return rc;
}

int takhin_flush(takhin_store *s, int sync) {
  if (!tk_store_live(s)) return tk_err(TAKHIN_EMISUSE, "takhin_flush: store is NULL or closed");
  if (s->opt.read_only) return TAKHIN_OK;
  int rc = TAKHIN_OK;
  pthread_rwlock_rdlock(&s->topics_lock);
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b]; t; t = t->hnext)
      for (int32_t i = 0; i < t->nparts; i++) {
        int r = tk_part_flush(t->parts[i], 1, sync);
        if (r && !rc) rc = r;
      }
  pthread_rwlock_unlock(&s->topics_lock);
  tk_store_each_partition(s, take_first_lost, &rc);
  return rc;
}

int takhin_recovery(takhin_store *s, takhin_recovery_info *out) {
  if (!tk_store_live(s)) return tk_err(TAKHIN_EMISUSE, "takhin_recovery: store is NULL or closed");
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_recovery: NULL argument");
  *out = s->recovery;
  return TAKHIN_OK;
}

/* ---- partition operations ---------------------------------------------- */

int takhin_produce(takhin_store *s, const char *topic, int32_t partition,
                   const takhin_record *records, size_t n, int64_t *first_offset) {
  if (!tk_store_live(s)) return tk_err(TAKHIN_EMISUSE, "takhin_produce: store is NULL or closed");
  if (!records || n == 0) return tk_err(TAKHIN_EINVAL, "takhin_produce: no records");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  rc = tk_part_append(p, records, n, first_offset);
  tk_topic_unref(t);
  return rc;
}

int takhin_partition_info_get(takhin_store *s, const char *topic, int32_t partition,
                              takhin_partition_info *out) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_partition_info_get: store is NULL or closed");
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_partition_info_get: NULL argument");
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  if (s->opt.read_only) tk_part_refresh(p);
  tk_part_info(p, out);
  tk_topic_unref(t);
  return TAKHIN_OK;
}

int takhin_segments_list(takhin_store *s, const char *topic, int32_t partition,
                         takhin_segment_info **out, size_t *n) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_segments_list: store is NULL or closed");
  if (!out || !n) return tk_err(TAKHIN_EMISUSE, "takhin_segments_list: NULL argument");
  *out = NULL;
  *n = 0;
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  if (s->opt.read_only) tk_part_refresh(p);
  rc = tk_part_segments(p, out, n);
  tk_topic_unref(t);
  return rc;
}

int takhin_delete_records(takhin_store *s, const char *topic, int32_t partition, int64_t offset) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_delete_records: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  rc = tk_part_delete_records(p, offset);
  tk_topic_unref(t);
  return rc;
}

int takhin_retention_apply(takhin_store *s, const char *topic, int32_t partition,
                           takhin_retention_result *out) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_retention_apply: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  takhin_retention_result local = {0, 0};
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  pthread_rwlock_rdlock(&s->topics_lock);
  if (partition < -1 || partition >= t->nparts) {
    rc = tk_err(TAKHIN_ENOTFOUND, "partition %d out of range [0, %d) for topic \"%s\"",
                (int)partition, (int)t->nparts, topic);
  } else {
    for (int32_t i = 0; i < t->nparts && !rc; i++)
      if (partition < 0 || partition == i) rc = tk_part_retention(t->parts[i], &local);
  }
  pthread_rwlock_unlock(&s->topics_lock);
  tk_topic_unref(t);
  if (out) *out = local;
  return rc;
}
