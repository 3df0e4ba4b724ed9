/*
** segment.c -- one segment file: its in-memory sparse index, its visible end,
** validation of batches read from disk (recovery and read-only refresh), and
** the store-wide cache of open file handles.
**
** File handles: a store may hold thousands of segments, so files are opened
** on demand and closed again when more than opt.max_open_files are open and
** idle (least recently used first). A handle in use (a writer's write, a
** reader's pread) is never closed under it.
**
** Lifetime: a segment is refcounted. The partition's segment array holds one
** ref; a reader takes another while it reads, so retention can drop the
** segment from the array and unlink its file while the reader still finishes
** with its open handle.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "partition.h"
#include "store.h"

tk_segment *tk_seg_new(tk_partition *p, int64_t base, int64_t created_ms) {
  tk_segment *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->part = p;
  g->base_offset = base;
  g->next_offset = base;
  g->max_ts = -1;
  g->created_ms = created_ms;
  g->last_idx_pos = -1;
  g->records = -1;
  g->fd = -1;
  atomic_init(&g->refs, 1);
  atomic_init(&g->map, NULL);
  atomic_init(&g->gaps, 0);
  return g;
}

void tk_seg_path(const tk_segment *g, char *out, size_t cap) {
  snprintf(out, cap, "%s/%020lld.log", g->part->dir, (long long)g->base_offset);
}

static takhin_store *seg_store(const tk_segment *g) { return g->part->topic->store; }

static void lru_unlink(takhin_store *s, tk_segment *g) {
  if (g->lru_prev) g->lru_prev->lru_next = g->lru_next;
  else if (s->lru_head == g) s->lru_head = g->lru_next;
  if (g->lru_next) g->lru_next->lru_prev = g->lru_prev;
  else if (s->lru_tail == g) s->lru_tail = g->lru_prev;
  g->lru_prev = g->lru_next = NULL;
}

static int lru_member(const takhin_store *s, const tk_segment *g) {
  return g->lru_prev || g->lru_next || s->lru_head == g;
}

void tk_seg_ref(tk_segment *g) { atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed); }

void tk_seg_unref(tk_segment *g) {
  if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
  takhin_store *s = seg_store(g);
  pthread_mutex_lock(&s->fd_lock);
  if (lru_member(s, g)) lru_unlink(s, g);
  int fd = g->fd;
  if (fd >= 0) s->open_fds--;
  const uint8_t *map = atomic_load_explicit(&g->map, memory_order_relaxed);
  if (map) s->nmaps--;
  pthread_mutex_unlock(&s->fd_lock);
  /* Outside the store-wide lock: the last close of an unlinked file frees
  ** its cached pages (~0.4 ms per MiB), and every append takes that lock. */
  if (fd >= 0) close(fd);
  if (map) munmap((void *)map, g->map_len);
  free(g->idx);
  free(g);
}

/* Close idle handles, oldest first, until the budget has room for one more.
** fd_lock held. Handles in use are not in the LRU list and stay open; the
** budget may then be exceeded briefly rather than fail an operation. */
static void fd_evict(takhin_store *s) {
  TK_ASSERT_HELD(&s->fd_lock);
  while (s->open_fds >= s->opt.max_open_files && s->lru_tail) {
    tk_segment *v = s->lru_tail;
    lru_unlink(s, v);
    close(v->fd);
    v->fd = -1;
    s->open_fds--;
  }
}

/* Whether st is the file g is bound to. fd_lock held. */
static int same_file(const tk_segment *g, const struct stat *st) {
  return (uint64_t)st->st_dev == g->dev && (uint64_t)st->st_ino == g->ino;
}

/* Mark g retired (fd_lock held) and say why. */
static int retire(tk_segment *g, const char *why) {
  TK_ASSERT_HELD(&g->part->topic->store->fd_lock);
  g->unlinked = 1;
  return tk_err(TAKHIN_ERANGE, "segment %lld of %s %s", (long long)g->base_offset, g->part->dir,
                why);
}

int tk_seg_fd_acquire(tk_segment *g, int *fd) {
  takhin_store *s = seg_store(g);
  pthread_mutex_lock(&s->fd_lock);
  if (g->fd < 0) {
    if (g->unlinked) {
      pthread_mutex_unlock(&s->fd_lock);
      return tk_err(TAKHIN_ERANGE, "segment %lld of %s was deleted or replaced",
                    (long long)g->base_offset, g->part->dir);
    }
    fd_evict(s);
    char path[TK_PATH_MAX];
    tk_seg_path(g, path, sizeof path);
    /* Only a segment that has never had its file may create it (a new
    ** active segment): a bound segment whose file is gone must not get an
    ** empty one in its place. */
    int flags = (s->opt.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (!g->bound && !s->opt.read_only) flags |= O_CREAT;
    int f = open(path, flags, 0644);
    if (f < 0 && (errno == EMFILE || errno == ENFILE) && s->lru_tail) {
      /* The process is out of descriptors: give back every idle one. */
      int budget = s->opt.max_open_files;
      s->opt.max_open_files = 0;
      fd_evict(s);
      s->opt.max_open_files = budget;
      f = open(path, flags, 0644);
    }
    if (f < 0) {
      int e = errno;
      int rc = e != ENOENT ? tk_err_sys(e, "open", path)
               : g->bound  ? retire(g, "was deleted")
                           : tk_err(TAKHIN_ENOTFOUND, "segment file %s does not exist", path);
      pthread_mutex_unlock(&s->fd_lock);
      return rc;
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
      int e = errno;
      close(f);
      pthread_mutex_unlock(&s->fd_lock);
      return tk_err_sys(e, "stat", path);
    }
    if (!g->bound) {
      g->dev = (uint64_t)st.st_dev;
      g->ino = (uint64_t)st.st_ino;
      g->bound = 1;
    } else if (!same_file(g, &st)) {
      /* Compaction renamed a new file over ours: its bytes are not the ones
      ** our index describes. */
      close(f);
      int rc = retire(g, "was replaced");
      pthread_mutex_unlock(&s->fd_lock);
      return rc;
    }
    g->fd = f;
    s->open_fds++;
  } else if (g->fd_users == 0 && lru_member(s, g)) {
    lru_unlink(s, g);
  }
  g->fd_users++;
  *fd = g->fd;
  pthread_mutex_unlock(&s->fd_lock);
  return TAKHIN_OK;
}

void tk_seg_bind(tk_segment *g, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return; /* unbound: bound at its first open, after the rename */
  takhin_store *s = seg_store(g);
  pthread_mutex_lock(&s->fd_lock);
  g->dev = (uint64_t)st.st_dev;
  g->ino = (uint64_t)st.st_ino;
  g->bound = 1;
  pthread_mutex_unlock(&s->fd_lock);
}

int tk_seg_retired(tk_segment *g) {
  takhin_store *s = seg_store(g);
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  struct stat st;
  int found = stat(path, &st) == 0;
  pthread_mutex_lock(&s->fd_lock);
  if (!g->unlinked && g->bound && (!found || !same_file(g, &st))) g->unlinked = 1;
  int retired = g->unlinked || !g->bound;
  pthread_mutex_unlock(&s->fd_lock);
  return retired;
}

void tk_seg_fd_release(tk_segment *g) {
  takhin_store *s = seg_store(g);
  pthread_mutex_lock(&s->fd_lock);
  if (--g->fd_users == 0 && g->fd >= 0) {
    /* idle: most recently used goes to the head */
    g->lru_prev = NULL;
    g->lru_next = s->lru_head;
    if (s->lru_head) s->lru_head->lru_prev = g;
    s->lru_head = g;
    if (!s->lru_tail) s->lru_tail = g;
    fd_evict(s);
  }
  pthread_mutex_unlock(&s->fd_lock);
}

#define TK_MAX_MAPS 4096 /* well below Linux's default vm.max_map_count (65530) */

const uint8_t *tk_seg_map(tk_segment *g, int64_t need, int sealed) {
  /* The fast path every located read takes: no lock. map is set once, after
  ** map_len, with release order, and only unmapped when the last ref goes. */
  const uint8_t *m = atomic_load_explicit(&g->map, memory_order_acquire);
  if (m) return (size_t)need <= g->map_len ? m : NULL;
  takhin_store *s = seg_store(g);
  /* A read-only handle reads an active segment with pread: the writer is
  ** another process, which may cut that file below what we validated in it
  ** (write_out after a write that failed partway; its recovery on reopen),
  ** and a mapped page past the end would fault. pread just comes up short. */
  if (!sealed && s->opt.read_only) return NULL;
  pthread_mutex_lock(&s->fd_lock);
  int tried = g->map_failed || g->unlinked || s->nmaps >= TK_MAX_MAPS;
  pthread_mutex_unlock(&s->fd_lock);
  if (tried) return NULL;
  /* A sealed segment is mapped as it is; the active one as large as it can
  ** ever grow (segment_bytes and a batch are each at most 1 GiB), so its
  ** mapping never has to move while readers use it: address space only. */
  int64_t len = sealed ? need : 2 * (int64_t)TK_MAX_BATCH_BYTES;
  if (len < need) len = need;
  long page = sysconf(_SC_PAGESIZE);
  len = (len + page - 1) / page * page;
  int fd;
  if (len <= 0 || tk_seg_fd_acquire(g, &fd) != TAKHIN_OK) return NULL;
  /* The descriptor is the segment's own file (tk_seg_fd_acquire checks
  ** the inode), and a sealed segment's mapping stops at that file's end:
  ** a page wholly past it would raise SIGBUS when touched. A file shorter
  ** than the index says is read with pread, which reports it. */
  struct stat st;
  void *p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size >= need) {
    if (sealed && len > st.st_size) len = (st.st_size + page - 1) / page * page;
    p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
  }
  tk_seg_fd_release(g);
  pthread_mutex_lock(&s->fd_lock);
  if (p == MAP_FAILED) {
    g->map_failed = 1;
  } else if (atomic_load_explicit(&g->map, memory_order_relaxed)) { /* another reader won */
    munmap(p, (size_t)len);
  } else {
    madvise(p, (size_t)len, MADV_SEQUENTIAL);
    g->map_len = (size_t)len;
    atomic_store_explicit(&g->map, (const uint8_t *)p, memory_order_release);
    s->nmaps++;
  }
  pthread_mutex_unlock(&s->fd_lock);
  m = atomic_load_explicit(&g->map, memory_order_acquire);
  return m && (size_t)need <= g->map_len ? m : NULL;
}

/* Appends an offset index entry for the batch at pos starting at offset,
** with max_ts ts and the run maximum carried over from the entry before it
** (ts for the first). NULL, with the error set, when out of memory. */
static tk_index_entry *idx_add(tk_segment *g, int64_t pos, int64_t offset, int64_t ts) {
  if (TK_ARRAY_GROW(g->idx, g->idx_n, g->idx_cap, 16)) {
    tk_err(TAKHIN_ENOMEM, "out of memory growing the offset index");
    return NULL;
  }
  tk_index_entry *e = &g->idx[g->idx_n];
  e->offset = offset;
  e->position = pos;
  e->max_ts = ts;
  e->run_max = g->idx_n ? g->idx[g->idx_n - 1].run_max : ts;
  g->idx_n++;
  g->last_idx_pos = pos;
  return e;
}

int tk_seg_note_batch(tk_segment *g, int64_t pos, const tk_batch_hdr *h) {
  int64_t ts = h->max_timestamp;
  if (g->idx_n == 0 || pos - g->last_idx_pos >= TK_INDEX_INTERVAL) {
    tk_index_entry *e = idx_add(g, pos, h->base_offset, ts);
    if (!e) return TAKHIN_ENOMEM;
    if (ts > e->run_max) e->run_max = ts;
  } else {
    tk_index_entry *e = &g->idx[g->idx_n - 1];
    if (ts > e->max_ts) e->max_ts = ts;
    if (ts > e->run_max) e->run_max = ts;
    /* The newest entry changed: it must be written to the catalog again. */
    if (g->idx_persisted == g->idx_n) g->idx_persisted--;
  }
  g->next_offset = h->base_offset + h->last_offset_delta + 1;
  g->size = pos + tk_batch_total(h);
  if (ts > g->max_ts) g->max_ts = ts;
  g->cat_dirty = 1;
  return TAKHIN_OK;
}

void tk_seg_reserve_index(tk_segment *g, int64_t bytes) {
  /* an entry per TK_INDEX_INTERVAL bytes at most, and the first at 0 */
  size_t want = (size_t)(bytes / TK_INDEX_INTERVAL) + 2;
  if (bytes <= 0 || want <= g->idx_cap) return;
  tk_index_entry *v = realloc(g->idx, want * sizeof *v);
  if (!v) return;
  g->idx = v;
  g->idx_cap = want;
}

void tk_seg_trim_index(tk_segment *g) {
  if (g->idx_cap <= g->idx_n + 16) return;
  size_t keep = g->idx_n ? g->idx_n : 1;
  tk_index_entry *v = realloc(g->idx, keep * sizeof *v);
  if (!v) return; /* the larger array stays: nothing is lost */
  g->idx = v;
  g->idx_cap = keep;
}

int64_t tk_seg_index_lookup(const tk_segment *g, int64_t target, int64_t *entry_offset) {
  size_t lo = 0, hi = g->idx_n;
  while (lo < hi) { /* first entry with offset > target */
    size_t mid = lo + (hi - lo) / 2;
    if (g->idx[mid].offset <= target) lo = mid + 1;
    else hi = mid;
  }
  *entry_offset = lo == 0 ? -1 : g->idx[lo - 1].offset;
  return lo == 0 ? 0 : g->idx[lo - 1].position;
}

/* Note one batch under the partition's meta lock (readers may be searching). */
static int note_locked(tk_segment *g, int64_t pos, const tk_batch_hdr *h) {
  pthread_rwlock_wrlock(&g->part->meta_lock);
  int rc = tk_seg_note_batch(g, pos, h);
  pthread_rwlock_unlock(&g->part->meta_lock);
  return rc;
}

/* A stretch of the file read ahead in one pread: the scans walk batches
** that may be a few hundred bytes each, and a syscall or two per batch cost
** them ~4 us a batch (4 s for 1 GiB of single 1 KiB records, the tail a
** crash may leave unindexed: partition.c holds the active segment's rows
** back). b.len bytes of the file from at. */
#define SCAN_WINDOW (1 << 20)
typedef struct scan_win {
  tk_buf b;
  int64_t at;
} scan_win;

/* Bytes [pos, pos + n) of the file: 1 with *out pointing at them (valid
** until the next call), 0 when the file ends first, or an error. A miss
** reads max(n, ahead) bytes from pos. */
static int win_get(scan_win *w, int fd, const char *path, int64_t pos, size_t n, size_t ahead,
                   const uint8_t **out) {
  if (w->b.p && pos >= w->at && (uint64_t)(pos - w->at) + n <= w->b.len) {
    *out = w->b.p + (pos - w->at);
    return 1;
  }
  size_t want = n > ahead ? n : ahead, got = 0;
  w->b.len = 0;
  w->at = pos;
  if (tk_buf_reserve(&w->b, want)) return tk_err(TAKHIN_ENOMEM, "out of memory reading %s", path);
  while (got < want) {
    ssize_t r = pread(fd, w->b.p + got, want - got, pos + (int64_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return tk_err_sys(errno, "read", path);
    if (r == 0) break;
    got += (size_t)r;
  }
  w->b.len = got;
  if (got < n) return 0;
  *out = w->b.p;
  return 1;
}

/* Read the batch at pos, which must end by limit, through window w
** (reading ahead bytes at a miss), and check it: a header that parses, the
** CRC and, when full, every record decoding. 1 when good (h filled), 0 when
** not, or an error status. */
static int batch_ok_win(scan_win *w, int fd, const char *path, int64_t pos, int64_t limit, int full,
                        size_t ahead, tk_batch_hdr *h, ZSTD_DCtx *dctx, tk_buf *scratch) {
  const uint8_t *b;
  if (pos < 0 || limit - pos < TK_BATCH_HEADER_SIZE) return 0;
  int r = win_get(w, fd, path, pos, TK_BATCH_HEADER_SIZE, ahead, &b);
  if (r <= 0) return r;
  if (tk_batch_parse_header(b, TK_BATCH_HEADER_SIZE, h) != TAKHIN_OK) return 0;
  int64_t total = tk_batch_total(h);
  if (total > limit - pos || total > TK_MAX_BATCH_BYTES) return 0;
  if ((r = win_get(w, fd, path, pos, (size_t)total, ahead, &b)) <= 0) return r;
  if (!tk_batch_crc_ok(b, h)) return 0;
  if (full && tk_batch_validate(b, h, dctx, scratch, TK_MAX_BATCH_BYTES) != TAKHIN_OK) return 0;
  return 1;
}

/* The same with no read-ahead, buf holding the reads: the header, then
** the whole batch. */
static int batch_ok_at(int fd, const char *path, int64_t pos, int64_t limit, int full,
                       tk_batch_hdr *h, tk_buf *buf, ZSTD_DCtx *dctx, tk_buf *scratch) {
  scan_win w = {*buf, 0};
  w.b.len = 0; /* nothing read yet: every read misses */
  int r = batch_ok_win(&w, fd, path, pos, limit, full, 0, h, dctx, scratch);
  *buf = w.b;
  return r;
}

#define RESYNC_CHUNK (1 << 20)

/* The scan behind tk_seg_resync, on an open descriptor. */
static int resync_fd(int fd, const char *path, int64_t from, int64_t limit, int64_t min_base,
                     int64_t max_next, int64_t *at, tk_batch_hdr *h) {
  tk_buf chunk = {0}, one = {0};
  int rc = 0;
  for (int64_t q = from < 0 ? 0 : from; rc == 0 && limit - q >= TK_BATCH_HEADER_SIZE;) {
    int64_t len = limit - q < RESYNC_CHUNK ? limit - q : RESYNC_CHUNK;
    chunk.len = 0;
    if (tk_buf_reserve(&chunk, (size_t)len)) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory reading %s", path);
      break;
    }
    ssize_t r = pread(fd, chunk.p, (size_t)len, q);
    if (r < 0) {
      rc = tk_err_sys(errno, "read", path);
      break;
    }
    if (r < TK_BATCH_HEADER_SIZE) break; /* the file is shorter than limit */
    int64_t i = 0;
    for (; rc == 0 && i + TK_BATCH_HEADER_SIZE <= r; i++) {
      /* The magic byte rules out almost every position before any parsing. */
      if (chunk.p[i + 16] != TK_MAGIC) continue;
      tk_batch_hdr c;
      if (tk_batch_parse_header(chunk.p + i, TK_BATCH_HEADER_SIZE, &c) != TAKHIN_OK) continue;
      if (c.base_offset < min_base ||
          (max_next >= 0 && c.base_offset + c.last_offset_delta >= max_next))
        continue;
      int ok = batch_ok_at(fd, path, q + i, limit, 0, h, &one, NULL, NULL);
      if (ok < 0) rc = ok;
      else if (ok) {
        *at = q + i;
        rc = 1;
      }
    }
    if (rc) break;
    q += i; /* the next chunk starts at the first position not tried */
  }
  tk_buf_free(&chunk);
  tk_buf_free(&one);
  return rc;
}

int tk_seg_resync(tk_segment *g, int64_t from, int64_t limit, int64_t min_base, int64_t max_next,
                  int64_t *at, tk_batch_hdr *h) {
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  rc = resync_fd(fd, path, from, limit, min_base, max_next, at, h);
  tk_seg_fd_release(g);
  return rc;
}

int tk_seg_index_matches(tk_segment *g, const tk_index_entry *e, size_t n, int64_t limit) {
  if (!n) return 1;
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  scan_win win = {{0}, 0};
  /* Entries lie TK_INDEX_INTERVAL apart or more: one read-ahead window
  ** serves many of them, as in the scans. */
  for (size_t k = 0; k < n; k++) {
    tk_batch_hdr h;
    int ok = batch_ok_win(&win, fd, path, e[k].position, limit, 0, SCAN_WINDOW, &h, NULL, NULL);
    if (ok <= 0 || h.base_offset != e[k].offset) {
      rc = ok < 0 ? ok : 0;
      goto out;
    }
  }
  rc = 1;
out:
  tk_buf_free(&win.b);
  tk_seg_fd_release(g);
  return rc;
}

/* A damaged batch at pos whose offsets are [base, next): keep its place in
** the segment without trusting its header. It gets the index entry it
** would have had, naming the offset the batches around it prove it holds,
** so a reader looking for the offsets after it does not start inside it
** blindly and a reopen walks the same stretch again. meta_lock held. */
static int note_damaged(tk_segment *g, int64_t pos, int64_t end, int64_t base, int64_t next) {
  if (g->idx_n == 0 || pos - g->last_idx_pos >= TK_INDEX_INTERVAL) {
    /* its timestamps are unknown; the batches after it raise max_ts */
    if (!idx_add(g, pos, base, -1)) return TAKHIN_ENOMEM;
  }
  g->next_offset = next;
  g->size = end;
  g->cat_dirty = 1;
  return TAKHIN_OK;
}

static int note_damaged_locked(tk_segment *g, int64_t pos, int64_t end, int64_t base,
                               int64_t next) {
  pthread_rwlock_wrlock(&g->part->meta_lock);
  int rc = note_damaged(g, pos, end, base, next);
  pthread_rwlock_unlock(&g->part->meta_lock);
  return rc;
}

/* Walk [pos, end) batch by batch checking every CRC and that the offsets
** follow on (dense segments: each batch starts right after the previous;
** compacted: later than it). A batch that fails is damage: its offsets run
** from where the previous batch ended to where the next good batch starts
** (found by its CRC, from the damaged batch's second byte on, or right after
** it when only the baseOffset, which the CRC does not cover, is wrong), or
** to end_next, the catalog's end, when none follows. */
static int walk_checked(tk_segment *g, int fd, const char *path, int64_t pos, int64_t end,
                        int64_t end_next, tk_scan_result *res, tk_buf *buf) {
  const int64_t start = pos;
  int dense = tk_seg_dense(g);
  int64_t expect = g->next_offset;
  int rc = TAKHIN_OK;
  while (pos < end) {
    tk_batch_hdr h;
    int ok = batch_ok_at(fd, path, pos, end, 0, &h, buf, NULL, NULL);
    if (ok < 0) return ok;
    const char *why = !ok ? "bad header, length or CRC" : NULL;
    if (!why && pos == start && dense && h.base_offset != expect) {
      /* The first batch is where an index row says expect starts. If the
      ** batch is sound and the next one follows it, the row is what is
      ** wrong (edited or stale): a damaged baseOffset would break the chain. */
      int64_t nxt = pos + tk_batch_total(&h), last = h.base_offset + h.last_offset_delta;
      tk_batch_hdr nh;
      int follows = nxt >= end ? last + 1 == end_next
                               : batch_ok_at(fd, path, nxt, end, 0, &nh, buf, NULL, NULL) == 1 &&
                                     nh.base_offset == last + 1;
      if (follows) expect = h.base_offset;
    }
    if (!why && (dense ? h.base_offset != expect : h.base_offset < expect))
      why = "baseOffset does not follow the previous batch";
    /* A dense segment's chain pins every batch; a compacted one's only
    ** bounds it from below, and the catalog's end bounds it from above. */
    if (!why && !dense && h.base_offset + h.last_offset_delta >= end_next)
      why = "offsets run past the segment's end";
    if (!why) {
      if ((rc = note_locked(g, pos, &h))) return rc;
      expect = g->next_offset;
      pos += tk_batch_total(&h);
      continue;
    }
    int64_t at = -1;
    tk_batch_hdr nh;
    int found = 0;
    if (ok) { /* the CRC vouches for its length: the next batch follows it */
      found = batch_ok_at(fd, path, pos + tk_batch_total(&h), end, 0, &nh, buf, NULL, NULL);
      if (found < 0) return found;
      if (found && nh.base_offset > expect && nh.base_offset + nh.last_offset_delta < end_next)
        at = pos + tk_batch_total(&h);
      else found = 0;
    }
    if (!found) {
      found = resync_fd(fd, path, ok ? pos + tk_batch_total(&h) : pos + 1, end, expect + 1,
                        end_next, &at, &nh);
      if (found < 0) return found;
    }
    int64_t next = found ? nh.base_offset : end_next > expect ? end_next : expect + 1;
    if (res->damaged++ == 0) {
      res->damaged_pos = pos;
      res->damaged_lo = expect;
      res->damaged_hi = next - 1;
      res->damaged_why = why;
    }
    if ((rc = note_damaged_locked(g, pos, found ? at : end, expect, next))) return rc;
    expect = next;
    pos = found ? at : end;
  }
  return rc;
}

int tk_seg_scan(tk_segment *g, int64_t pos, int64_t lenient_end, tk_scan_result *res) {
  return tk_seg_scan_indexed(g, pos, lenient_end, -1, res);
}

int tk_seg_scan_indexed(tk_segment *g, int64_t pos, int64_t lenient_end, int64_t lenient_next,
                        tk_scan_result *res) {
  memset(res, 0, sizeof *res);
  int fd, rc = tk_seg_fd_acquire(g, &fd);
  if (rc) return rc;
  struct stat st;
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  tk_buf buf = {0}, scratch = {0};
  scan_win win = {{0}, 0};
  ZSTD_DCtx *dctx = NULL;
  if (fstat(fd, &st) != 0) {
    rc = tk_err_sys(errno, "stat", path);
    goto done;
  }
  res->file_size = st.st_size;
  if (lenient_end > st.st_size) lenient_end = st.st_size;
  int dense = tk_seg_dense(g);
  /* Where zone 1 starts, to walk it again batch by batch if it disagrees. */
  int64_t pos0 = pos, next0 = g->next_offset, size0 = g->size, max_ts0 = g->max_ts,
          lip0 = g->last_idx_pos;
  size_t idx_n0 = g->idx_n, persisted0 = g->idx_persisted;
  int64_t expect = g->next_offset, last_pos = -1;
  int must_pass = 0; /* the first zone-2 batch straddles the catalog's end */
  int suspect = 0;
  dctx = ZSTD_createDCtx();
  if (!dctx) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
    goto out;
  }
  /* Zone 1: bytes the catalog says were written and indexed. Only headers are
  ** walked (open stays fast), each checked against the one before it: the
  ** CRC does not cover baseOffset, and lastOffsetDelta decides where the next
  ** batch must start. Where the walk ends must be where the catalog says the
  ** segment ends; anything else is damage (or a catalog edited by hand), and
  ** the zone is walked again checking every CRC to find out which. */
  int64_t last_total = 0;
  while (pos < lenient_end) {
    const uint8_t *hb = NULL;
    tk_batch_hdr h;
    /* small batches: read ahead; large ones: their headers alone */
    size_t ahead = last_total > 0 && last_total < 65536 ? SCAN_WINDOW : TK_BATCH_HEADER_SIZE;
    int got = st.st_size - pos < TK_BATCH_HEADER_SIZE
                  ? 0
                  : win_get(&win, fd, path, pos, TK_BATCH_HEADER_SIZE, ahead, &hb);
    if (got < 0) {
      rc = got;
      goto out;
    }
    if (!got || tk_batch_parse_header(hb, TK_BATCH_HEADER_SIZE, &h) != TAKHIN_OK ||
        (dense ? h.base_offset != expect : h.base_offset < expect)) {
      suspect = 1;
      break;
    }
    if (tk_batch_total(&h) > lenient_end - pos) {
      /* The batch runs past the catalog's end: the catalog's size is not a
      ** batch boundary (a stale or edited row), or this header is damaged.
      ** It must pass in full to count as the former. */
      int ok = batch_ok_at(fd, path, pos, st.st_size, 1, &h, &buf, dctx, &scratch);
      if (ok < 0) {
        rc = ok;
        goto out;
      }
      if (ok) must_pass = 1;
      else suspect = 1;
      break;
    }
    if ((rc = note_locked(g, pos, &h))) goto out;
    expect = g->next_offset;
    last_pos = pos;
    last_total = tk_batch_total(&h);
    pos += last_total;
  }
  if (!suspect && !must_pass && pos > pos0 && lenient_next >= 0) {
    /* The last batch decides the segment's end: it must agree with the
    ** catalog (compaction may have dropped a sealed segment's last
    ** batches, never added any), and in a compacted segment, whose end the
    ** catalog does not pin, it must pass its CRC. */
    if (dense ? g->next_offset != lenient_next : g->next_offset > lenient_next) {
      suspect = 1;
    } else if (!dense) {
      tk_batch_hdr h;
      int ok = batch_ok_at(fd, path, last_pos, lenient_end, 0, &h, &buf, NULL, NULL);
      if (ok < 0) {
        rc = ok;
        goto out;
      }
      suspect = !ok;
    }
  }
  if (suspect && lenient_next >= 0) {
    pthread_rwlock_wrlock(&g->part->meta_lock);
    g->idx_n = idx_n0;
    g->idx_persisted = persisted0;
    g->next_offset = next0;
    g->size = size0;
    g->max_ts = max_ts0;
    g->last_idx_pos = lip0;
    pthread_rwlock_unlock(&g->part->meta_lock);
    if ((rc = walk_checked(g, fd, path, pos0, lenient_end, lenient_next, res, &buf))) goto out;
    pos = lenient_end;
    expect = g->next_offset;
  } else if (suspect) {
    res->lenient_broke = 1; /* no catalog end to hold on to: the caller decides */
    goto out;
  }
  /* Zone 2: the unindexed tail. Every batch must be complete, pass its CRC
  ** and decode; the first that does not marks the end of good data. */
  int whole_file = pos == 0;
  int64_t file_records = 0;
  while (pos < st.st_size) {
    tk_batch_hdr h;
    int ok = batch_ok_win(&win, fd, path, pos, st.st_size, 1, SCAN_WINDOW, &h, dctx, &scratch);
    if (ok < 0) rc = ok;
    if (ok <= 0) break;
    if (h.base_offset < expect) break; /* offsets only grow */
    if (h.base_offset > expect && tk_seg_dense(g)) {
      /* Our writer never skips an offset: after batches of a dense segment
      ** this one does not belong here. A whole file read without its
      ** catalog row may be compacted: it just is not dense. */
      if (!whole_file) break;
      atomic_store_explicit(&g->gaps, 1, memory_order_relaxed);
    }
    file_records += h.records_count;
    if ((rc = note_locked(g, pos, &h))) break;
    expect = g->next_offset;
    pos += tk_batch_total(&h);
    if (!must_pass) res->recovered++;
    must_pass = 0;
  }
  if (whole_file && atomic_load_explicit(&g->gaps, memory_order_relaxed) && g->records < 0) {
    /* Recorded as compacted (records = what the file holds), so the next
    ** open treats it so from its catalog row alone. */
    pthread_rwlock_wrlock(&g->part->meta_lock);
    g->records = file_records;
    g->cat_dirty = 1;
    pthread_rwlock_unlock(&g->part->meta_lock);
  }
out:
  res->good_end = pos;
done:
  ZSTD_freeDCtx(dctx);
  tk_buf_free(&buf);
  tk_buf_free(&win.b);
  tk_buf_free(&scratch);
  tk_seg_fd_release(g);
  return rc;
}
