/*
** path_file.c -- the file path: the physical limit of this machine.
**
** The same payload bytes as the api path, framed minimally (u32 key length,
** u32 value length, key, value) into a user-space buffer and handed to the
** kernel with one write() per produce call, as takhin does per batch; read
** back with pread() into a reader's buffer. Durability maps as for takhin:
**   os        one write() per produce call
**   fsync     write() then fdatasync() per produce call
**   buffered  write() only when 1 MiB is pending (takhin's flush_bytes), or
**             when a reader or flush needs the bytes
** Segments roll like takhin's: a new file "p<part>/<base %020>.log" when the
** next batch would push the active one past segment_bytes.
**
** An in-memory array maps offset -> byte position (what takhin's index does).
** Produce takes the partition's pthread mutex, the lock whose wait the lock
** accounting reports for the shared-partition case. Readers do not lock: no
** benchmark reads a partition while another thread is writing it.
**
** A plain file has no keys: topic-level produce goes through the benchmark's
** own split by takhin_partition_for_key, and key lookups are n/a here.
**
** Compaction (a compacted config) is the physical floor of takhin's: which
** records survive is known for free (produce keeps a live flag per offset,
** cleared when a later record has the same key; a 64-bit hash stands for
** the key, and among the bench's <= 10^6 keys a collision has odds below
** 10^-7), so what is timed is the file work alone. Each sealed segment
** holding a superseded record is streamed through 256 KiB windows with
** pread(), runs of its live frames copied into an output window written to
** "<segment>.cleaned" as it fills, and writeback started
** (sync_file_range), as takhin does; then the
** same durability point as takhin's compaction: fdatasync of every new file
** (as a careful program does it, and takhin: each file as soon as it is
** written, up to four at once, on threads, so that the disk's cache flushes
** merge and overlap the rewriting), fsync of the folder, a rename of each over its segment, fsync of the
** folder. No catalog, no key index. The replaced files' last close (the
** kernel freeing their pages and blocks) waits for the next compaction or
** close, as takhin's reaper takes it off the compacting thread. Reads below
** a compacted point are refused: the offset map no longer describes them.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define FRAME_HDR 8
#define BUFFERED_FLUSH (1 << 20)

typedef struct fseg {
  int64_t base_offset, start_pos; /* start_pos: logical position of byte 0 */
  int fd;
} fseg;

/* Latest offset of each key (by its 64-bit hash): open addressing, linear
** probing, at most half full. Only a compacted config fills it. */
typedef struct keymap {
  uint64_t *hash; /* 0 = empty slot (a hash of 0 is stored as 1) */
  int64_t *off;
  size_t cap, n;
} keymap;

typedef struct fpart {
  pthread_mutex_t mu;
  char dir[4096];
  fseg *segs;
  size_t nsegs, segs_cap;
  unsigned char *buf; /* frames not yet handed to write() */
  size_t len, cap;
  int64_t next_offset;
  int64_t end_pos;     /* logical bytes framed, buffered ones included */
  int64_t written_pos; /* logical bytes handed to write() */
  int64_t *pos;        /* pos[o] = logical start of offset o; pos[next] = end */
  size_t pos_cap;
  /* compacted configs only */
  keymap keys;
  unsigned char *live; /* live[o]: no later record has o's key */
  size_t live_cap;
  int64_t compacted_upto; /* reads below it are refused */
  int *retired;           /* replaced files, closed later (see the header) */
  size_t nretired, retired_cap;
} fpart;

struct bp_store {
  int durability;
  int compacted;
  int64_t seg_limit;
  int32_t nparts;
  fpart *parts;
};

struct bp_reader {
  bp_store *st;
  fpart *p;
  unsigned char *buf;
  size_t cap;
};

static int sys_fail(const char *what, const char *path) {
  bench_errorf("file path: %s %s: %s", what, path, strerror(errno));
  return -1;
}

static int open_segment(fpart *p, int64_t base) {
  if (p->nsegs == p->segs_cap) {
    size_t cap = p->segs_cap ? p->segs_cap * 2 : 8;
    fseg *s = realloc(p->segs, cap * sizeof *s);
    if (!s) return sys_fail("realloc", "segments");
    p->segs = s;
    p->segs_cap = cap;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)base);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sys_fail("open", path);
  p->segs[p->nsegs++] = (fseg){.base_offset = base, .start_pos = p->end_pos, .fd = fd};
  return 0;
}

/* Hand the buffer to the kernel. Caller holds p->mu (or is the only thread). */
static int write_out(bp_store *st, fpart *p) {
  size_t off = 0;
  int fd = p->segs[p->nsegs - 1].fd;
  while (off < p->len) {
    ssize_t w = write(fd, p->buf + off, p->len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return sys_fail("write", p->dir);
    }
    off += (size_t)w;
  }
  p->written_pos += (int64_t)p->len;
  p->len = 0;
  if (st->durability == TAKHIN_DURABILITY_FSYNC && fdatasync(fd) != 0)
    return sys_fail("fdatasync", p->dir);
  return 0;
}

static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  void *n = realloc(*ptr, c * elem);
  if (!n) return sys_fail("realloc", "buffer");
  *ptr = n;
  *cap = c;
  return 0;
}

static int file_close(bp_store *st);

static int file_open(const bp_config *cfg, bp_store **out) {
  bp_store *st = calloc(1, sizeof *st);
  if (!st) return sys_fail("calloc", cfg->dir);
  st->durability = cfg->durability;
  st->compacted = cfg->compacted;
  st->seg_limit = cfg->segment_bytes ? cfg->segment_bytes : 1073741824;
  /* Every partition of every topic is its own folder: p<global number>. */
  st->nparts = cfg->partitions * bp_topics(cfg);
  st->parts = calloc((size_t)st->nparts, sizeof *st->parts);
  if (!st->parts) {
    free(st);
    return sys_fail("calloc", cfg->dir);
  }
  for (int32_t i = 0; i < st->nparts; i++) {
    fpart *p = &st->parts[i];
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->dir, sizeof p->dir, "%s/p%d", cfg->dir, (int)i);
    if (mkdir(p->dir, 0755) != 0 || open_segment(p, 0) != 0 ||
        grow((void **)&p->pos, &p->pos_cap, 1 << 16, sizeof *p->pos) != 0) {
      if (!bench_error()[0]) sys_fail("mkdir", p->dir);
      file_close(st);
      return -1;
    }
    p->pos[0] = 0;
  }
  *out = st;
  return 0;
}

static int file_flush(bp_store *st) {
  for (int32_t i = 0; i < st->nparts; i++) {
    fpart *p = &st->parts[i];
    pthread_mutex_lock(&p->mu);
    int rc = p->len ? write_out(st, p) : 0;
    pthread_mutex_unlock(&p->mu);
    if (rc) return rc;
  }
  return 0;
}

static int file_close(bp_store *st) {
  int rc = file_flush(st);
  for (int32_t i = 0; i < st->nparts; i++) {
    fpart *p = &st->parts[i];
    for (size_t s = 0; s < p->nsegs; s++) close(p->segs[s].fd);
    for (size_t r = 0; r < p->nretired; r++) close(p->retired[r]);
    free(p->retired);
    free(p->keys.hash);
    free(p->keys.off);
    free(p->live);
    free(p->segs);
    free(p->buf);
    free(p->pos);
    pthread_mutex_destroy(&p->mu);
  }
  free(st->parts);
  free(st);
  return rc;
}

/* FNV-1a, then a final mix: the key's identity in the keymap. */
static uint64_t key_hash(const void *key, size_t len) {
  const unsigned char *k = key;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) h = (h ^ k[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h ? h : 1;
}

/* The slot of hash h: its own, or the empty one where it goes. */
static size_t keymap_slot(const keymap *m, uint64_t h) {
  size_t i = (size_t)h & (m->cap - 1);
  while (m->hash[i] && m->hash[i] != h) i = (i + 1) & (m->cap - 1);
  return i;
}

static int keymap_grow(keymap *m) {
  keymap b = {.cap = m->cap ? m->cap * 2 : 1 << 12};
  b.hash = calloc(b.cap, sizeof *b.hash);
  b.off = malloc(b.cap * sizeof *b.off);
  if (!b.hash || !b.off) {
    free(b.hash);
    free(b.off);
    return sys_fail("calloc", "key map");
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->hash[i]) {
      size_t j = keymap_slot(&b, m->hash[i]);
      b.hash[j] = m->hash[i];
      b.off[j] = m->off[i];
      b.n++;
    }
  free(m->hash);
  free(m->off);
  *m = b;
  return 0;
}

/* The n records about to take offsets next_offset.. are live; each one's
** earlier record with the same key is not. */
static int track_keys(fpart *p, const takhin_record *recs, size_t n) {
  if (grow((void **)&p->live, &p->live_cap, (size_t)p->next_offset + n, 1) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    int64_t o = p->next_offset + (int64_t)i;
    p->live[o] = 1;
    if (!recs[i].key) continue; /* no key: never superseded */
    if (2 * (p->keys.n + 1) > p->keys.cap && keymap_grow(&p->keys) != 0) return -1;
    uint64_t h = key_hash(recs[i].key, recs[i].key_len);
    size_t j = keymap_slot(&p->keys, h);
    if (p->keys.hash[j]) p->live[p->keys.off[j]] = 0;
    else p->keys.hash[j] = h, p->keys.n++;
    p->keys.off[j] = o;
  }
  return 0;
}

static int produce_locked(bp_store *st, fpart *p, const takhin_record *recs, size_t n,
                          int64_t *first_offset) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += FRAME_HDR + recs[i].key_len + recs[i].value_len;
  int64_t seg_used = p->end_pos - p->segs[p->nsegs - 1].start_pos;
  if (seg_used > 0 && seg_used + (int64_t)bytes > st->seg_limit) {
    if (p->len && write_out(st, p) != 0) return -1;
    if (open_segment(p, p->next_offset) != 0) return -1;
  }
  if (grow((void **)&p->buf, &p->cap, p->len + bytes, 1) != 0 ||
      grow((void **)&p->pos, &p->pos_cap, (size_t)p->next_offset + n + 1, sizeof *p->pos) != 0)
    return -1;
  if (st->compacted && track_keys(p, recs, n) != 0) return -1;
  unsigned char *const start = p->buf + p->len;
  unsigned char *w = start;
  for (size_t i = 0; i < n; i++) {
    uint32_t hdr[2] = {(uint32_t)recs[i].key_len, (uint32_t)recs[i].value_len};
    p->pos[p->next_offset + (int64_t)i] = p->end_pos + (w - start);
    memcpy(w, hdr, FRAME_HDR);
    w += FRAME_HDR;
    memcpy(w, recs[i].key, recs[i].key_len);
    w += recs[i].key_len;
    memcpy(w, recs[i].value, recs[i].value_len);
    w += recs[i].value_len;
  }
  if (first_offset) *first_offset = p->next_offset;
  p->len += bytes;
  p->end_pos += (int64_t)bytes;
  p->next_offset += (int64_t)n;
  p->pos[p->next_offset] = p->end_pos;
  if (st->durability != TAKHIN_DURABILITY_BUFFERED || p->len >= BUFFERED_FLUSH)
    return write_out(st, p);
  return 0;
}

static int file_produce(bp_store *st, int32_t part, const takhin_record *recs, size_t n,
                        int64_t *first_offset) {
  fpart *p = &st->parts[part];
  pthread_mutex_lock(&p->mu);
  int rc = produce_locked(st, p, recs, n, first_offset);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

static int file_segments(bp_store *st, int32_t part, int64_t *out) {
  *out = (int64_t)st->parts[part].nsegs;
  return 0;
}

static int file_reader_open(bp_store *st, int32_t part, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) return sys_fail("calloc", "reader");
  r->st = st;
  r->p = &st->parts[part];
  *out = r;
  return 0;
}

static void file_reader_close(bp_reader *r) {
  if (!r) return;
  free(r->buf);
  free(r);
}

/* Segment holding offset o: the last one whose base is <= o. */
static const fseg *seg_of(const fpart *p, int64_t o) {
  size_t lo = 0, hi = p->nsegs;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (p->segs[mid].base_offset <= o) lo = mid;
    else hi = mid;
  }
  return &p->segs[lo];
}

static int read_span(bp_reader *r, const fseg *seg, int64_t from, int64_t to, bp_sink *sink) {
  fpart *p = r->p;
  size_t span = (size_t)(p->pos[to] - p->pos[from]);
  if (grow((void **)&r->buf, &r->cap, span, 1) != 0) return -1;
  off_t at = (off_t)(p->pos[from] - seg->start_pos);
  size_t got = 0;
  while (got < span) {
    ssize_t n = pread(seg->fd, r->buf + got, span - got, at + (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_fail("pread", p->dir);
    got += (size_t)n;
  }
  const unsigned char *q = r->buf;
  for (int64_t o = from; o < to; o++) {
    uint32_t hdr[2];
    memcpy(hdr, q, FRAME_HDR);
    q += FRAME_HDR;
    bp_sink_take(sink, q, hdr[0], q + hdr[0], hdr[1]);
    q += hdr[0] + hdr[1];
  }
  return 0;
}

static int file_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  fpart *p = r->p;
  if (offset < p->compacted_upto && n > 0) {
    bench_errorf(
        "file path: offsets below %lld were compacted: the offset map no longer holds them",
        (long long)p->compacted_upto);
    return -1;
  }
  if (offset < 0 || n < 0 || offset + n > p->next_offset) {
    bench_errorf("file path: range [%lld, %lld) outside the log [0, %lld)", (long long)offset,
                 (long long)(offset + n), (long long)p->next_offset);
    return -1;
  }
  /* Like takhin's buffered mode: a read past the written point flushes first. */
  if (p->pos[offset + n] > p->written_pos) {
    pthread_mutex_lock(&p->mu);
    int rc = p->len ? write_out(r->st, p) : 0;
    pthread_mutex_unlock(&p->mu);
    if (rc) return rc;
  }
  int64_t o = offset, end = offset + n;
  while (o < end) {
    const fseg *seg = seg_of(p, o);
    int64_t seg_end = (seg + 1 < p->segs + p->nsegs) ? seg[1].base_offset : p->next_offset;
    int64_t to = end < seg_end ? end : seg_end;
    if (read_span(r, seg, o, to, sink) != 0) return -1;
    o = to;
  }
  return 0;
}

static int file_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  return file_read_range(r, offset, 1, sink);
}

/* ---- compaction (see the header) ------------------------------------------ */

static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_fail("open", dir);
  int rc = fsync(fd) != 0 ? sys_fail("fsync", dir) : 0;
  close(fd);
  return rc;
}

static int file_compactable_bytes(bp_store *st, int32_t part, int64_t *bytes) {
  fpart *p = &st->parts[part];
  *bytes = p->nsegs > 1 ? p->segs[p->nsegs - 1].start_pos : 0; /* every sealed segment */
  return 0;
}

static int write_all(int fd, const unsigned char *b, size_t len, const char *path) {
  for (size_t done = 0; done < len;) {
    ssize_t w = write(fd, b + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return sys_fail("write", path);
    done += (size_t)w;
  }
  return 0;
}

/* Frames of sealed segment i that a compaction drops (p->live says). */
static int64_t dead_frames(const fpart *p, size_t i) {
  int64_t removed = 0;
  for (int64_t o = p->segs[i].base_offset; o < p->segs[i + 1].base_offset; o++)
    removed += !p->live[o];
  return removed;
}

/* Windows of reading and writing, as takhin's compaction uses: a careful
** program streams a segment rather than holding it whole, and on this
** kind of guest each page touched for the first time costs microseconds. */
#define COMPACT_WIN (256 * 1024)

/* Append a run of live frames to the output window out (olen used of
** cap), writing the window first when the run does not fit, and a run
** larger than the window straight from the input. *total counts written. */
static int emit(int fd, const char *path, unsigned char *out, size_t cap, size_t *olen,
                size_t *total, const unsigned char *run, size_t len) {
  if (*olen + len > cap) {
    if (write_all(fd, out, *olen, path)) return -1;
    *total += *olen, *olen = 0;
  }
  if (len > cap) {
    if (write_all(fd, run, len, path)) return -1;
    *total += len;
  } else {
    memcpy(out + *olen, run, len), *olen += len;
  }
  return 0;
}

/* Stream sealed segment i through *in (COMPACT_WIN, larger for a frame
** that needs it) and write its live frames to fd through *out. Runs of live
** neighbours move in one copy, as takhin moves them. OUT: *out_len. */
static int filter_segment(fpart *p, size_t i, int fd, const char *path, unsigned char **in,
                          size_t *in_cap, unsigned char **out, size_t *out_cap, size_t *out_len) {
  const fseg *g = &p->segs[i];
  int64_t o = g->base_offset, to = p->segs[i + 1].base_offset;
  size_t size = (size_t)(p->segs[i + 1].start_pos - g->start_pos);
  size_t pos = 0, have = 0, olen = 0, total = 0; /* pos: file offset of (*in)[0] */
  if (grow((void **)in, in_cap, COMPACT_WIN, 1) || grow((void **)out, out_cap, COMPACT_WIN, 1))
    return -1;
  while (o < to) {
    size_t want = *in_cap - have;
    if (want > size - pos - have) want = size - pos - have;
    for (size_t got = 0; got < want;) {
      ssize_t n = pread(g->fd, *in + have, want - got, (off_t)(pos + have));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return sys_fail("read", p->dir);
      got += (size_t)n, have += (size_t)n;
    }
    size_t at = 0, run = SIZE_MAX;
    for (; o < to; o++) {
      uint32_t hdr[2];
      if (at + FRAME_HDR > have) break;
      memcpy(hdr, *in + at, FRAME_HDR);
      size_t flen = FRAME_HDR + (size_t)hdr[0] + hdr[1];
      if (at + flen > have) {
        if (at == 0 && grow((void **)in, in_cap, flen, 1)) return -1; /* a frame past the window */
        break;
      }
      if (p->live[o] && run == SIZE_MAX) run = at;
      if (!p->live[o] && run != SIZE_MAX) {
        if (emit(fd, path, *out, *out_cap, &olen, &total, *in + run, at - run)) return -1;
        run = SIZE_MAX;
      }
      at += flen;
    }
    if (run != SIZE_MAX && emit(fd, path, *out, *out_cap, &olen, &total, *in + run, at - run))
      return -1; /* the window ends inside a run */
    memmove(*in, *in + at, have - at);
    have -= at, pos += at;
  }
  if (olen && write_all(fd, *out, olen, path)) return -1;
  *out_len = total + olen;
  return 0;
}

/* The new files' fdatasyncs, up to FSYNCERS at once, each as soon as its
** file is written (see the header). */
#define FSYNCERS 4
typedef struct fsyncer {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  const int *fds;
  size_t n, next, done; /* files written, taken, synced */
  int stop, err, idle, nth;
  pthread_t th[FSYNCERS];
} fsyncer;

static void *fsyncer_main(void *arg) {
  fsyncer *y = arg;
  pthread_mutex_lock(&y->mu);
  for (;;) {
    while (y->next == y->n && !y->stop) {
      y->idle++;
      pthread_cond_wait(&y->cv, &y->mu);
      y->idle--;
    }
    if (y->next == y->n) break;
    int fd = y->fds[y->next++];
    pthread_mutex_unlock(&y->mu);
    int r = fdatasync(fd);
    pthread_mutex_lock(&y->mu);
    if (r != 0 && !y->err) y->err = errno;
    y->done++;
    pthread_cond_broadcast(&y->cv);
  }
  pthread_mutex_unlock(&y->mu);
  return NULL;
}

/* fds[0..n) are written: sync the new one. */
static void fsyncer_push(fsyncer *y, size_t n) {
  pthread_mutex_lock(&y->mu);
  y->n = n;
  if (y->idle == 0 && y->nth < FSYNCERS &&
      pthread_create(&y->th[y->nth], NULL, fsyncer_main, y) == 0)
    y->nth++;
  if (y->nth == 0) { /* no thread: now */
    if (fdatasync(y->fds[n - 1]) != 0 && !y->err) y->err = errno;
    y->next = y->done = n;
  }
  pthread_cond_broadcast(&y->cv);
  pthread_mutex_unlock(&y->mu);
}

/* Wait for all, join the threads; 0 or the first error (errno). */
static int fsyncer_end(fsyncer *y) {
  pthread_mutex_lock(&y->mu);
  y->stop = 1;
  pthread_cond_broadcast(&y->cv);
  pthread_mutex_unlock(&y->mu);
  for (int i = 0; i < y->nth; i++) pthread_join(y->th[i], NULL);
  pthread_mutex_destroy(&y->mu);
  pthread_cond_destroy(&y->cv);
  return y->err;
}

static int file_compact(bp_store *st, int32_t part, bp_compaction *res) {
  fpart *p = &st->parts[part];
  if (!st->compacted) {
    bench_errorf("file path: compaction needs a compacted config (it tracks keys)");
    return -1;
  }
  pthread_mutex_lock(&p->mu);
  int rc = p->len ? write_out(st, p) : 0;
  for (size_t r = 0; r < p->nretired; r++) close(p->retired[r]);
  p->nretired = 0;
  size_t nsealed = p->nsegs - 1, nnew = 0;
  int *fds = calloc(nsealed + 1, sizeof *fds);
  size_t *which = calloc(nsealed + 1, sizeof *which);
  if (!rc &&
      (!fds || !which ||
       grow((void **)&p->retired, &p->retired_cap, p->nretired + nsealed + 1, sizeof *p->retired)))
    rc = sys_fail("calloc", "compaction");
  unsigned char *in = NULL, *out = NULL;
  size_t in_cap = 0, out_cap = 0;
  char path[4200], tmp[4300];
  fsyncer y = {.fds = fds};
  pthread_mutex_init(&y.mu, NULL);
  pthread_cond_init(&y.cv, NULL);
  res->bytes_reclaimed = res->records_removed = 0;
  /* 1. the new files: read, filter, write, writeback started */
  for (size_t i = 0; !rc && i < nsealed; i++) {
    if (p->segs[i].base_offset < p->compacted_upto) continue; /* a segment is compacted once */
    size_t len;
    int64_t removed = dead_frames(p, i);
    if (removed == 0) continue; /* nothing to reclaim: left as it is */
    snprintf(tmp, sizeof tmp, "%s/%020lld.log.cleaned", p->dir, (long long)p->segs[i].base_offset);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      rc = sys_fail("open", tmp);
      break;
    }
    fds[nnew] = fd;
    which[nnew++] = i;
    if ((rc = filter_segment(p, i, fd, tmp, &in, &in_cap, &out, &out_cap, &len)) != 0) break;
#ifdef SYNC_FILE_RANGE_WRITE
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
    fsyncer_push(&y, nnew);
    res->bytes_reclaimed += (p->segs[i + 1].start_pos - p->segs[i].start_pos) - (int64_t)len;
    res->records_removed += removed;
  }
  free(in);
  free(out);
  /* 2. takhin's durability point: the new files, then the folder */
  int serr = fsyncer_end(&y);
  if (!rc && serr) {
    errno = serr;
    rc = sys_fail("fdatasync", p->dir);
  }
  if (!rc) rc = sync_dir(p->dir);
  /* 3. each new file over its segment, then the folder again */
  for (size_t k = 0; !rc && k < nnew; k++) {
    fseg *g = &p->segs[which[k]];
    snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)g->base_offset);
    snprintf(tmp, sizeof tmp, "%s.cleaned", path);
    if (rename(tmp, path) != 0) {
      rc = sys_fail("rename", tmp);
      break;
    }
    p->retired[p->nretired++] = g->fd;
    g->fd = fds[k];
    fds[k] = -1;
  }
  if (!rc) rc = sync_dir(p->dir);
  if (!rc) p->compacted_upto = p->segs[nsealed].base_offset;
  for (size_t k = 0; k < nnew; k++)
    if (fds[k] >= 0) {
      close(fds[k]);
      snprintf(tmp, sizeof tmp, "%s/%020lld.log.cleaned", p->dir,
               (long long)p->segs[which[k]].base_offset);
      unlink(tmp);
    }
  free(fds);
  free(which);
  res->keys_kept = (int64_t)p->keys.n;
  res->lib_duration_ms = -1;
  pthread_mutex_unlock(&p->mu);
  return rc;
}

const bench_path bench_path_file = {
    .name = "file",
    .unavailable = NULL,
    .open = file_open,
    .close = file_close,
    .produce = file_produce,
    .flush = file_flush,
    .segments = file_segments,
    .reader_open = file_reader_open,
    .reader_close = file_reader_close,
    .read_range = file_read_range,
    .read_one = file_read_one,
    .compactable_bytes = file_compactable_bytes,
    .compact = file_compact,
};
