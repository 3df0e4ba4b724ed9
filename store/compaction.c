/*
** compaction.c -- log compaction for topics whose cleanup_policy contains
** compact.
**
** The key index (keyindex.c) holds each key's latest offset. What a
** compaction keeps is decided by the statements of sql/compaction.sql over
** that table; this file only rewrites segment files to keep those offsets:
**
**   1. pick the cleanable segments: sealed, older than min_compaction_lag_ms,
**      fully key-indexed; their survivors are queried a few segments ahead
**      on a helper thread (compact_plan.c); skip (without reading) those
**      whose record count equals their survivor count;
**   2. rewrite each into <base>.log.cleaned: batches whose records all
**      survive are copied as they are; others keep their header (base offset,
**      last offset delta, timestamps) with only the surviving records' bytes,
**      recompressed and re-checksummed; empty batches go;
**   3. fdatasync the new files (each as soon as it is written, on up to
**      four threads at once, so the disk's cache flushes merge) and
**      the folder, then in one catalog
**      transaction: the new segment rows (the old index rows go), the
**      checkpoint, the forgotten tombstones, and a swap row per segment;
**      the new index rows are owed, written after the run like a roll's;
**   4. rename each .cleaned over its .log and fsync the folder; the swap
**      rows, now naming done renames, go with the partition's next run's
**      first write (before it makes .cleaned files) or the next open; the
**      replaced segments are released on the store's reaper thread.
**
** A crash before 3 leaves the old log (open deletes stray .cleaned files); a
** crash after 3 leaves swap rows, and open finishes the renames
** (tk_compact_recover; a rename already done has no .cleaned file left and
** is skipped): old or new, never both, never neither. A swap row holds its
** new file's size and fingerprint, and open renames only that file: after
** a power loss a finished run's rows (their drop is not synced) may come
** back beside a later run's uncommitted .cleaned files. Readers
** holding an old segment keep its open descriptor and so its old bytes;
** the old segment is marked unlinked so it is never reopened by path.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "catalog.h"
#include "compaction.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "sqlite_compat.h"
#include "testing.h"

#ifdef TAKHIN_TESTING
/* Test hooks (testing.h): abort the process at step n of a run (1-based), to
** prove the swap is crash-safe (0 = off); call a test's function at each
** step (step 0: after the run's first flush), to hold a run there. */
int tk_compact_crash_step;
void (*tk_compact_step_hook)(const char *topic, int32_t partition, int step);

static void crash_point_at(const tk_partition *p, int step) {
  if (tk_compact_step_hook) tk_compact_step_hook(p->topic->name, p->id, step);
  if (step > 0 && tk_compact_crash_step == step) abort();
}
#define crash_point(step) crash_point_at(p, step)
#else
#define crash_point(step) ((void)0)
#endif

/* ---- statements -------------------------------------------------------- */

/* A named statement with (topic, partition) and up to three more integers
** bound: nargs counts all of them (2..5). */
static sqlite3_stmt *bound(takhin_store *s, int id, int64_t topic_id, int32_t part, int nargs,
                           int64_t a, int64_t b, int64_t c) {
  sqlite3_stmt *st = tk_cat_stmt(s, id);
  if (!st) return NULL;
  const int64_t more[3] = {a, b, c};
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  for (int i = 3; i <= nargs; i++) sqlite3_bind_int64(st, i, more[i - 3]);
  return st;
}

/* Run a statement that returns no rows. */
static int exec5(takhin_store *s, int id, int64_t topic_id, int32_t part, int nargs, int64_t a,
                 int64_t b, int64_t c) {
  sqlite3_stmt *st = bound(s, id, topic_id, part, nargs, a, b, c);
  return st ? tk_cat_step_done(s, st, tk_sql_name(id)) : TAKHIN_ECATALOG;
}

/* A single integer from a query. */
static int query_i64(takhin_store *s, int id, int64_t topic_id, int32_t part, int nargs, int64_t a,
                     int64_t b, int64_t c, int64_t *out) {
  sqlite3_stmt *st = bound(s, id, topic_id, part, nargs, a, b, c);
  if (!st) return TAKHIN_ECATALOG;
  int step = sqlite3_step(st), rc = TAKHIN_OK;
  if (step == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  else if (step != SQLITE_DONE) rc = tk_cat_error(s, tk_sql_name(id));
  tk_cat_done(s, st);
  return rc;
}

/* ---- a new file's fingerprint -------------------------------------------- */

/* A swap row names the one file its run committed by the file's size and a
** CRC-32C folded over the first FP_BYTES of each batch: base offset, length,
** partition leader epoch, magic and the batch's CRC, which covers the rest.
** The rewrite folds it as it writes (21 bytes a batch); an open recomputes
** it from the batch headers alone. */
#define FP_BYTES 21

static uint32_t fp_fold(uint32_t fp, const uint8_t *batch) {
  return tk_crc32c(fp, batch, FP_BYTES);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether the file at path has size `size` and fingerprint `fp`: its batch
** headers are walked by their lengths, a window of the file at a time. A
** missing file does not match (*gone set); a read error is returned. */
static int file_matches(const char *path, int64_t size, uint32_t fp, int *match, int *gone) {
  *match = *gone = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *gone = 1;
      return TAKHIN_OK;
    }
    return tk_err_sys(errno, "open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return tk_err_sys(e, "stat", path);
  }
  if ((int64_t)st.st_size != size) {
    close(fd);
    return TAKHIN_OK;
  }
  enum { WINDOW = 64 << 10 };
  uint8_t *buf = malloc(WINDOW);
  if (!buf) {
    close(fd);
    return tk_err(TAKHIN_ENOMEM, "out of memory checking %s", path);
  }
  int64_t pos = 0, at = 0, len = 0; /* buf holds [at, at + len) */
  uint32_t got = 0;
  int rc = TAKHIN_OK;
  while (pos < size) {
    if (size - pos < TK_BATCH_HEADER_SIZE) break; /* a torn last batch */
    if (pos < at || pos + FP_BYTES > at + len) {
      ssize_t r;
      do r = pread(fd, buf, WINDOW, (off_t)pos);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        rc = tk_err_sys(errno, "read", path);
        break;
      }
      at = pos;
      len = r;
      if (len < FP_BYTES) break; /* shrank under us */
    }
    const uint8_t *b = buf + (pos - at);
    int64_t total = TK_LOG_OVERHEAD + (int64_t)get32(b + 8);
    if (total < TK_BATCH_HEADER_SIZE || total > size - pos) break;
    got = fp_fold(got, b);
    pos += total;
  }
  free(buf);
  close(fd);
  if (!rc) *match = pos == size && got == fp;
  return rc;
}

/* ---- open: finish swaps, load the partition's key state ---------------- */

/* Finish one swap row's rename, if the .cleaned file beside the segment is
** the one the row committed. A row's drop is not synced, so after a power
** loss a finished run's row can name a segment whose .cleaned file is a
** later run's, uncommitted and perhaps half-written (the renames the row
** named were done): that file is deleted, the .log stays. If the .log is
** not the row's file either, the committed file was damaged after its
** sync: the old .log stays too, and the segment's catalog rows, which
** describe the committed file, are dropped to be rebuilt from the .log.
** Rows without a fingerprint (older catalogs): renamed as they are. */
static int finish_swap(tk_partition *p, int64_t base, int has_fp, int64_t size, uint32_t fp,
                       takhin_recovery_info *rec) {
  takhin_store *s = p->topic->store;
  char to[TK_PATH_MAX], from[TK_PATH_MAX + 16];
  snprintf(to, sizeof to, "%s/%020lld.log", p->dir, (long long)base);
  snprintf(from, sizeof from, "%s.cleaned", to);
  int match = 1, gone = 0, rc = TAKHIN_OK;
  if (has_fp && (rc = file_matches(from, size, fp, &match, &gone))) return rc;
  if (gone) return TAKHIN_OK; /* renamed already */
  if (match) {
    if (rename(from, to) == 0) rec->files_removed++;
    else if (errno != ENOENT) rc = tk_err_sys(errno, "rename", from);
    return rc;
  }
  int log_match = 0, log_gone = 0;
  if ((rc = file_matches(to, size, fp, &log_match, &log_gone))) return rc;
  if (!log_match && !log_gone) { /* the rows first: the file decides a later open */
    rc = tk_cat_delete_index_from(s, p->topic->topic_id, p->id, base, 0);
    if (!rc) rc = exec5(s, TK_SQL_UNSWAP_SEGMENT, p->topic->topic_id, p->id, 3, base, 0, 0);
    if (rc) return rc;
  }
  if (unlink(from) == 0) rec->files_removed++;
  else if (errno != ENOENT) return tk_err_sys(errno, "unlink", from);
  return TAKHIN_OK;
}

int tk_compact_recover(tk_partition *p, takhin_recovery_info *rec) {
  takhin_store *s = p->topic->store;
  int64_t id = p->topic->topic_id;
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&s->cat_lock);
  /* A reader renames nothing (and an older catalog, which a writer has not
  ** opened since, lacks the fingerprint columns). */
  sqlite3_stmt *st = s->opt.read_only ? NULL : tk_cat_stmt(s, TK_SQL_SWAPS);
  if (!s->opt.read_only && !st) rc = TAKHIN_ECATALOG;
  /* The rows first, then the files: settling one may change the catalog. */
  struct swap {
    int64_t base, size;
    uint32_t fp;
    int has_fp;
  } *rows = NULL;
  size_t n = 0, cap = 0;
  if (st) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, p->id);
  }
  while (!rc && st) {
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
      if (step != SQLITE_DONE) rc = tk_cat_error(s, "reading swaps");
      break;
    }
    if (TK_ARRAY_GROW(rows, n, cap, 8)) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory reading swaps");
      break;
    }
    rows[n].base = sqlite3_column_int64(st, 0);
    rows[n].has_fp = sqlite3_column_type(st, 1) == SQLITE_INTEGER &&
                     sqlite3_column_type(st, 2) == SQLITE_INTEGER;
    rows[n].size = sqlite3_column_int64(st, 1);
    rows[n].fp = (uint32_t)sqlite3_column_int64(st, 2);
    n++;
  }
  if (st) tk_cat_done(s, st);
  /* Each file is settled before the rows go: an open that stops in between
  ** finds the rows again, and their .cleaned files renamed or deleted. */
  for (size_t i = 0; !rc && i < n; i++)
    rc = finish_swap(p, rows[i].base, rows[i].has_fp, rows[i].size, rows[i].fp, rec);
  if (!rc && n) rc = exec5(s, TK_SQL_CLEAR_SWAPS, id, p->id, 2, 0, 0, 0);
  free(rows);
  if (!rc) rc = tk_key_load(p);
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

/* ---- rewriting one segment ------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

typedef struct rewriter {
  tk_buf in;      /* a window of the old file's bytes ... */
  int64_t in_at;  /* ... starting at this position of the file */
  tk_buf out;     /* the new file's bytes */
  tk_buf area;    /* kept records of one batch */
  tk_buf scratch; /* decompressed records */
  tk_buf zout;    /* recompressed records */
  ZSTD_DCtx *dctx;
  ZSTD_CCtx *cctx;
} rewriter;

static void rewriter_free(void *arg) {
  rewriter *w = arg;
  tk_buf_free(&w->in);
  tk_buf_free(&w->out);
  tk_buf_free(&w->area);
  tk_buf_free(&w->scratch);
  tk_buf_free(&w->zout);
  ZSTD_freeDCtx(w->dctx);
  ZSTD_freeCCtx(w->cctx);
  free(w);
}

/* The store keeps a run's rewriter for the next run (compact_workers.c):
** its buffers' pages stay mapped and touched. One grown past its usual
** size by a large batch is given back rather than kept. */
#define KEEP_AT_MOST (1 << 20)
static void rewriter_keep(takhin_store *s, rewriter *w) {
  if (!w) return;
  tk_buf *b[] = {&w->in, &w->out, &w->area, &w->scratch, &w->zout};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
    if (b[i]->cap > KEEP_AT_MOST) tk_buf_free(b[i]);
  tk_cw_keep_buffers(s, w, rewriter_free);
}

/* Append to w->out the batch at b keeping only the records whose offsets are
** next in keep[ki..nkeep); kept and removed count records. */
static int filter_batch(rewriter *w, const uint8_t *b, const tk_batch_hdr *h, const int64_t *keep,
                        size_t nkeep, size_t *ki, int64_t *kept, int64_t *removed) {
  int64_t total = tk_batch_total(h);
  if (h->attributes & TK_ATTR_CONTROL) { /* transaction markers: keep as they are */
    if (tk_buf_reserve(&w->out, (size_t)total))
      return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    memcpy(w->out.p + w->out.len, b, (size_t)total);
    w->out.len += (size_t)total;
    return TAKHIN_OK;
  }
  int codec = h->attributes & TK_ATTR_CODEC_MASK;
  if (codec != TK_CODEC_NONE && !w->dctx && !(w->dctx = ZSTD_createDCtx()))
    return tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
  const uint8_t *recs;
  size_t len;
  int rc = tk_batch_records(b, h, w->dctx, &w->scratch, TK_MAX_BATCH_BYTES, &recs, &len);
  if (rc) return rc;
  /* Uncompressed, the kept records go straight after the batch header in
  ** w->out; compressed, they gather in w->area to be recompressed. */
  tk_buf *dst = codec == TK_CODEC_NONE ? &w->out : &w->area;
  size_t skip = codec == TK_CODEC_NONE ? TK_BATCH_HEADER_SIZE : 0;
  w->area.len = 0;
  if (tk_buf_reserve(dst, skip + len)) return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
  uint8_t *kept_at = dst->p + dst->len + skip; /* nothing below reallocates dst */
  size_t kept_len = 0;
  const uint8_t *p = recs, *end = recs + len;
  /* Kept records are moved whole, so only their offsets are read; a run of
  ** neighbours that all stay moves in one copy. */
  const uint8_t *run = NULL;
  int32_t nkept = 0;
  size_t k = *ki; /* a local: the loop's stores stay in a register */
  for (int32_t i = 0; i < h->records_count; i++) {
    const uint8_t *start = p;
    int64_t offset;
    if ((rc = tk_record_skip(&p, end, h, &offset))) return rc;
    while (k < nkeep && keep[k] < offset) k++;
    if (k < nkeep && keep[k] == offset) {
      if (!run) run = start;
      nkept++;
    } else if (run) {
      memcpy(kept_at + kept_len, run, (size_t)(start - run));
      kept_len += (size_t)(start - run);
      run = NULL;
    }
  }
  *ki = k;
  if (run) {
    memcpy(kept_at + kept_len, run, (size_t)(p - run));
    kept_len += (size_t)(p - run);
  }
  *kept += nkept;
  *removed += h->records_count - nkept;
  if (nkept == 0) return TAKHIN_OK; /* the whole batch goes */
  if (nkept == h->records_count) {  /* untouched: copy byte for byte */
    if (tk_buf_reserve(&w->out, (size_t)total))
      return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    memcpy(w->out.p + w->out.len, b, (size_t)total);
    w->out.len += (size_t)total;
    return TAKHIN_OK;
  }
  const uint8_t *body = kept_at;
  size_t body_len = kept_len;
  if (codec == TK_CODEC_ZSTD) {
    if (!w->cctx && !(w->cctx = ZSTD_createCCtx()))
      return tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
    w->zout.len = 0;
    size_t bound = ZSTD_compressBound(body_len);
    if (tk_buf_reserve(&w->zout, bound)) return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    size_t z = ZSTD_compress2(w->cctx, w->zout.p, bound, body, body_len);
    if (ZSTD_isError(z)) return tk_err(TAKHIN_EIO, "zstd: %s", ZSTD_getErrorName(z));
    body = w->zout.p;
    body_len = z;
  }
  /* Same header (base offset, last offset delta, timestamps, producer
  ** fields), new length, count and CRC, as Kafka's cleaner does. */
  size_t nb = TK_BATCH_HEADER_SIZE + body_len;
  if (tk_buf_reserve(&w->out, nb)) return tk_err(TAKHIN_ENOMEM, "out of memory compacting");
  uint8_t *o = w->out.p + w->out.len;
  memcpy(o, b, TK_BATCH_HEADER_SIZE);
  /* gzip/snappy/lz4 survivors are kept uncompressed: takhin compresses with zstd only */
  if (codec != TK_CODEC_NONE && codec != TK_CODEC_ZSTD) o[22] &= (uint8_t)~TK_ATTR_CODEC_MASK;
  if (body != o + TK_BATCH_HEADER_SIZE) memcpy(o + TK_BATCH_HEADER_SIZE, body, body_len);
  put32(o + 8, (uint32_t)(nb - TK_LOG_OVERHEAD));
  put32(o + 57, (uint32_t)nkept);
  put32(o + 17, tk_crc32c(0, o + 21, nb - 21));
  w->out.len += nb;
  return TAKHIN_OK;
}

/* New files waiting for their fdatasync. On the disks we run on each
** fdatasync of a new file is a device cache flush plus a synchronous inode
** write, a few ms, and one after another they were most of a run
** (BENCHMARKS.md, "Where compaction's time goes"). Flushes that reach the
** block layer together are merged into one, so the files are synced by up
** to SYNC_THREADS threads at once, each file as soon as it is written (its
** writeback started first), while the next segment is rewritten. sync_all
** waits for every one: the durability point does not move (each new file
** is synced before the folder is, and before the catalog names it). The
** syncing runs as jobs on the store's compaction workers, handed out on
** demand; where none can take one, the caller syncs inline. At most
** SYNC_AHEAD files are open here, well inside the descriptor budget. */
#define SYNC_AHEAD 32
#define SYNC_THREADS TK_COMPACT_SYNC_THREADS

#ifdef TAKHIN_TESTING
/* Test hook (testing.h): the fdatasync of the n-th new file of a run
** (1-based) fails with EIO, to prove an error on a syncing thread undoes
** the run. 0 = off. */
int tk_compact_sync_fail_at;
#else
#define tk_compact_sync_fail_at 0
#endif

typedef struct sync_queue {
  takhin_store *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fd[SYNC_AHEAD]; /* files [done.., tail) are open here; slot x % SYNC_AHEAD */
  /* ... each the new file of a segment, which names it in an error (its
  ** path is not kept: 32 of them were 131 KB of stack the run cleared and
  ** faulted in) */
  const tk_segment *seg[SYNC_AHEAD];
  size_t head, tail; /* [head, tail) wait for a thread */
  size_t done;       /* files synced (or failed) and closed */
  size_t pushed;     /* files of the run, for the test hook */
  int idle;          /* jobs waiting for a file */
  int nth;
  tk_cw_job job[SYNC_THREADS];
  int stop;
  int err; /* the first failure's errno, on the file at err_path */
  char err_path[TK_PATH_MAX + 16];
} sync_queue;

static void sync_init(sync_queue *q, takhin_store *s) {
  q->s = s;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
}

/* fdatasync and close one file (n-th of the run); mu not held. */
static int sync_file(int fd, size_t n) {
  int r = fdatasync(fd), e = errno;
  if (tk_compact_sync_fail_at > 0 && n + 1 == (size_t)tk_compact_sync_fail_at) r = -1, e = EIO;
  close(fd);
  return r ? e : 0;
}

/* mu held */
static void sync_failed(sync_queue *q, int e, const tk_segment *n) {
  if (e && !q->err) {
    char path[TK_PATH_MAX];
    tk_seg_path(n, path, sizeof path);
    q->err = e;
    snprintf(q->err_path, sizeof q->err_path, "%s.cleaned", path);
  }
}

static void sync_main(void *arg) {
  sync_queue *q = arg;
  pthread_setname_np(pthread_self(), "takhin-sync"); /* as top and perf show it */
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (q->head == q->tail && !q->stop) {
      q->idle++;
      pthread_cond_wait(&q->cv, &q->mu);
      q->idle--;
    }
    if (q->head == q->tail) break; /* stopping, and nothing left */
    size_t x = q->head++;
    int fd = q->fd[x % SYNC_AHEAD];
    const tk_segment *n = q->seg[x % SYNC_AHEAD];
    pthread_mutex_unlock(&q->mu);
    int e = sync_file(fd, x);
    pthread_mutex_lock(&q->mu);
    sync_failed(q, e, n);
    q->done++;
    /* Wake only who waits for this: sync_all for the last file, sync_later
    ** for room. A wake per file cost the rewriting thread a switch each at
    ** the end of a run, to find files still being synced. */
    if (q->done == q->tail || q->tail - q->done == SYNC_AHEAD - 1) pthread_cond_broadcast(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
}

/* Wait for every queued file; the first error of the run is returned
** (once), all are closed. */
static int sync_all(sync_queue *q) {
  pthread_mutex_lock(&q->mu);
  while (q->done != q->tail) pthread_cond_wait(&q->cv, &q->mu);
  int e = q->err;
  char path[TK_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s", q->err_path);
  q->err = 0;
  pthread_mutex_unlock(&q->mu);
  return e ? tk_err_sys(e, "fdatasync", path) : TAKHIN_OK;
}

/* Hand the new file at fd (written whole), segment n's, over to be synced
** and closed; n outlives the run's sync_all. */
static int sync_later(sync_queue *q, int fd, const tk_segment *n) {
#ifdef SYNC_FILE_RANGE_WRITE
  sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
  pthread_mutex_lock(&q->mu);
  size_t nth = q->pushed++;
  if (q->idle == 0 && q->nth < SYNC_THREADS && tk_cw_start(q->s, &q->job[q->nth], sync_main, q))
    q->nth++;
  if (q->nth == 0) { /* no thread: sync it now */
    q->tail++;
    pthread_mutex_unlock(&q->mu);
    int e = sync_file(fd, nth);
    pthread_mutex_lock(&q->mu);
    sync_failed(q, e, n);
    q->head++;
    q->done++;
    pthread_mutex_unlock(&q->mu);
    return TAKHIN_OK; /* an error arrives through sync_all */
  }
  while (q->tail - q->done >= SYNC_AHEAD) pthread_cond_wait(&q->cv, &q->mu);
  q->fd[q->tail % SYNC_AHEAD] = fd;
  q->seg[q->tail % SYNC_AHEAD] = n;
  q->tail++;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return TAKHIN_OK;
}

/* End of the run: every queued file is synced and closed, the jobs have
** ended. */
static void sync_stop(sync_queue *q) {
  pthread_mutex_lock(&q->mu);
  q->stop = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < q->nth; i++) tk_cw_wait(q->s, &q->job[i]);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
}

/* Bytes read from the old file, and written to the new one, at a time:
** large enough that a syscall's cost vanishes (256 KiB reads and writes
** cost what 1 MiB ones do here; 128 KiB ones made 100-segment runs of
** 100 B records 10-15% slower), small enough to stay in
** the CPU's cache while its batches are checked and copied -- and small
** enough to be cheap to touch the first time. On the paravirtualized guest
** we measure on, the first access to a page of fresh memory traps to the
** host, about 8 us a page for the kernel (pread, write) and again for user
** code: whole-segment buffers cost 8 ms of a 10-segment run before its
** first segment was written (BENCHMARKS.md, "Where compaction's time
** goes"). A batch larger than the window gets a window of its own size. */
#define READ_WINDOW (256 << 10)
#define WRITE_CHUNK (256 << 10)

/* Point *out at bytes [pos, pos + need) of the old file (size bytes, open
** at fd), reading a new window into w->in when they are not all in it. */
static int read_window(rewriter *w, int fd, int64_t pos, size_t need, int64_t size,
                       const char *path, const uint8_t **out) {
  if (pos >= w->in_at && pos + (int64_t)need <= w->in_at + (int64_t)w->in.len) {
    *out = w->in.p + (pos - w->in_at);
    return TAKHIN_OK;
  }
  size_t want = need > READ_WINDOW ? need : READ_WINDOW;
  if ((int64_t)want > size - pos) want = (size_t)(size - pos);
  w->in.len = 0;
  w->in_at = pos;
  if (tk_buf_reserve(&w->in, want))
    return tk_err(TAKHIN_ENOMEM, "out of memory compacting %s", path);
  while (w->in.len < want) {
    ssize_t r = pread(fd, w->in.p + w->in.len, want - w->in.len, (off_t)(pos + (int64_t)w->in.len));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return tk_err_sys(errno, "read", path);
    if (r == 0)
      return tk_err(TAKHIN_ECORRUPT, "%s: file shorter than its %lld indexed bytes", path,
                    (long long)size);
    w->in.len += (size_t)r;
  }
  *out = w->in.p;
  return TAKHIN_OK;
}

/* Write w->out to the new file at out (path tmp) and empty it; *written
** counts the file's bytes. */
static int write_out(rewriter *w, int out, const char *tmp, int64_t *written) {
  for (size_t done = 0; done < w->out.len;) {
    ssize_t wr = write(out, w->out.p + done, w->out.len - done);
    if (wr < 0 && errno == EINTR) continue;
    if (wr < 0) return tk_err_sys(errno, "write", tmp);
    done += (size_t)wr;
  }
  *written += (int64_t)w->out.len;
  w->out.len = 0;
  return TAKHIN_OK;
}

/* Rewrite segment g keeping keep[] into out, the new file at tmp (made by
** the plan; closed or queued here, and unlinked on failure); *ng receives
** the new segment (sealed, not yet visible) and *fp its file's fingerprint
** (its swap row's). The new file is written WRITE_CHUNK at a time, as its
** batches are made. */
static int rewrite_segment(tk_partition *p, tk_segment *g, const int64_t *keep, size_t nkeep,
                           int out, const char *tmp, rewriter *w, sync_queue *q, tk_segment **ng,
                           uint32_t *fp, int64_t *removed) {
  char path[TK_PATH_MAX];
  tk_seg_path(g, path, sizeof path);
  int rc = TAKHIN_OK;
  pthread_rwlock_rdlock(&p->meta_lock);
  int64_t size = g->size;
  pthread_rwlock_unlock(&p->meta_lock);
  w->out.len = 0;
  int64_t written = 0; /* bytes of the new file written out of w->out */
  /* A sealed segment does not change under us (the partition's maint_lock
  ** keeps retention and other runs away). It is read with pread, a window
  ** at a time, into a buffer reused from one segment to the next, not
  ** through the segment's mapping: on a paravirtualized guest every page
  ** table change traps to the host, and faulting 100 MiB of mapping in (and
  ** unmapping it on the reaper thread) cost 5x the copy (BENCHMARKS.md,
  ** "Where compaction's time goes"). */
  int fd = -1;
  if (!rc && size > 0 && (rc = tk_seg_fd_acquire(g, &fd))) goto fail;
  w->in.len = 0;
  w->in_at = 0;
  tk_segment *n = rc ? NULL : tk_seg_new(p, g->base_offset, g->created_ms);
  if (!n) {
    if (!rc) rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    if (fd >= 0) tk_seg_fd_release(g);
    goto fail;
  }
  n->sealed = 1;
  /* n describes the file open at out, whatever its path names later. */
  tk_seg_bind(n, out);
  size_t ki = 0;
  int64_t kept = 0, chain = g->base_offset;
  uint32_t print = 0;
  for (int64_t pos = 0; pos < size && !rc;) {
    tk_batch_hdr h;
    const uint8_t *b;
    size_t avail = (size_t)(size - pos);
    if ((rc = read_window(w, fd, pos, avail < TK_BATCH_HEADER_SIZE ? avail : TK_BATCH_HEADER_SIZE,
                          size, path, &b)))
      break;
    int parsed =
        tk_batch_parse_header(b, avail, &h) == TAKHIN_OK && tk_batch_total(&h) <= size - pos;
    if (parsed && (rc = read_window(w, fd, pos, (size_t)tk_batch_total(&h), size, path, &b))) break;
    /* The CRC does not cover baseOffset: one that does not follow the batch
    ** before it is damage, which a rewrite under a new CRC would make look
    ** sound (or drop the batch's records as superseded). */
    if (parsed && ((tk_seg_dense(g) ? h.base_offset != chain : h.base_offset < chain) ||
                   h.base_offset + h.last_offset_delta >= g->next_offset))
      parsed = 0;
    if (parsed) chain = h.base_offset + h.last_offset_delta + 1;
    /* A batch whose every offset survives is copied as it is, unread: its
    ** bytes and CRC travel unchanged, so damage stays detectable. Any other
    ** batch is checked before its records are re-sealed under a new CRC. */
    int64_t last = parsed ? h.base_offset + h.last_offset_delta : 0;
    size_t lo = ki, hi;
    while (lo < nkeep && keep[lo] < h.base_offset) lo++;
    for (hi = lo; hi < nkeep && keep[hi] <= last; hi++) {}
    int untouched = parsed && !(h.attributes & TK_ATTR_CONTROL) &&
                    (int64_t)(hi - lo) == (int64_t)h.records_count;
    if (!parsed || (!untouched && !tk_batch_crc_ok(b, &h))) {
      rc = tk_err(TAKHIN_ECORRUPT,
                  "%s: damaged batch at byte %lld: compaction leaves the segment as it is", path,
                  (long long)pos);
      break;
    }
    /* Room for this batch in the chunk, or the chunk goes out first. */
    if (w->out.len > 0 && w->out.len + (size_t)tk_batch_total(&h) > WRITE_CHUNK &&
        (rc = write_out(w, out, tmp, &written)))
      break;
    size_t before = w->out.len;
    if (untouched) {
      int64_t total = tk_batch_total(&h);
      if (tk_buf_reserve(&w->out, (size_t)total)) {
        rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
        break;
      }
      memcpy(w->out.p + w->out.len, b, (size_t)total);
      w->out.len += (size_t)total;
      kept += h.records_count;
      ki = hi;
    } else {
      rc = filter_batch(w, b, &h, keep, nkeep, &ki, &kept, removed);
    }
    if (!rc && w->out.len > before) {
      tk_batch_hdr nh;
      tk_batch_parse_header(w->out.p + before, w->out.len - before, &nh);
      rc = tk_seg_note_batch(n, written + (int64_t)before, &nh);
      print = fp_fold(print, w->out.p + before);
    }
    pos += tk_batch_total(&h);
  }
  if (fd >= 0) tk_seg_fd_release(g);
  /* The offsets the segment covers do not change, even if its last
  ** records went: the next segment still starts where it did. */
  n->next_offset = g->next_offset;
  n->max_ts = g->max_ts;
  n->records = kept;
  n->cat_dirty = 1;
  if (!rc) rc = write_out(w, out, tmp, &written);
  if (!rc) {
    *ng = n;
    *fp = print;
    return sync_later(q, out, n); /* the queue closes it; undo unlinks it */
  }
  tk_seg_unref(n);
fail:
  close(out);
  unlink(tmp);
  return rc;
}

/* ---- step 2: the rewriting side of the plan ------------------------------ */

typedef struct rewrite_run {
  tk_partition *p;
  tk_segment **cand, **fresh; /* fresh[i]: cand[i]'s new segment, if rewritten */
  uint32_t *fps;              /* fps[i]: fresh[i]'s file's fingerprint */
  size_t ncand;
  tk_plan *plan;
  rewriter *w; /* kept by the store between runs */
  sync_queue q;
  int64_t removed, before, after, rewritten, survived;
  int rc;        /* as rewrite_thread ended */
  char err[512]; /* ... and its message (messages are per thread) */
} rewrite_run;

/* Rewrite, in order, the segments the plan says hold records to drop. */
static int rewrite_planned(rewrite_run *r) {
  int rc = TAKHIN_OK;
  for (size_t i = 0; !rc && i < r->ncand; i++) {
    /* Every candidate is taken, a NULL one (not key-indexed) too: the plan
    ** runs at most PLAN_AHEAD ahead of what is taken and done. */
    tk_segment *g = r->cand[i];
    const int64_t *keep;
    const char *tmp;
    size_t nkeep;
    int out;
    if ((rc = tk_plan_get(r->plan, i, &keep, &nkeep, &out, &tmp))) break;
    r->survived += (int64_t)nkeep;
    if (g && out >= 0) { /* else nothing to reclaim: not read again */
      rc = rewrite_segment(r->p, g, keep, nkeep, out, tmp, r->w, &r->q, &r->fresh[i], &r->fps[i],
                           &r->removed);
      if (!rc) {
        r->before += g->size;
        r->after += r->fresh[i]->size;
        r->rewritten++;
      }
    }
    tk_plan_done(r->plan, i);
  }
  if (rc) tk_plan_abort(r->plan); /* the planning side may be waiting for room */
  return rc;
}

/* The extension's case: the caller plans (the catalog is its connection),
** this thread rewrites. */
static void rewrite_thread(void *arg) {
  rewrite_run *r = arg;
  pthread_setname_np(pthread_self(), "takhin-rewrite"); /* as top and perf show it */
  r->rc = rewrite_planned(r);
  if (r->rc) snprintf(r->err, sizeof r->err, "%s", takhin_errmsg());
}

#ifdef TAKHIN_TESTING
/* Test hook (testing.h): arrange a run as on the extension's store (the
** caller plans, a thread rewrites) through the C API too, so the threaded
** tests cover it. */
int tk_compact_caller_plans;
#else
#define tk_compact_caller_plans 0
#endif

/* Step 2 whole: plan and rewrite on two threads where possible. */
static int rewrite_all(rewrite_run *r, int64_t expired_before) {
  takhin_store *s = r->p->topic->store;
  int by_caller = s->borrowed || tk_compact_caller_plans;
  int rc = tk_plan_start(&r->plan, r->p, r->cand, r->ncand, expired_before, by_caller);
  if (rc) return rc;
  tk_cw_job job;
  if (by_caller && tk_cw_start(s, &job, rewrite_thread, r)) {
    rc = tk_plan_run(r->plan);
    tk_cw_wait(s, &job);
    if (!rc && r->rc) rc = tk_err(r->rc, "%s", r->err);
  } else {
    if (by_caller) tk_plan_inline(r->plan); /* no thread: plan as we go */
    rc = rewrite_planned(r);
  }
  tk_plan_stop(r->plan);
  r->plan = NULL;
  return rc;
}

/* ---- one partition --------------------------------------------------------- */

int tk_part_compact(tk_partition *p, int force, takhin_compaction_result *out) {
  takhin_store *s = p->topic->store;
  const tk_topic_config *cfg = &p->topic->cfg;
  int64_t t0 = tk_now_ms(), id = p->topic->topic_id;
  if (!cfg->compact)
    return tk_err(TAKHIN_EINVAL, "topic \"%s\" is not compacted (cleanup_policy=%s)",
                  p->topic->name, tk_config_policy_name(cfg));
  pthread_mutex_lock(&p->maint_lock);
  /* A topic being deleted gets no rows: its delete waits for this lock
  ** and then removes every row of its topic_id, which the next topic may
  ** reuse (topic_admin.c). */
  int rc = tk_topic_gone(p->topic);
  /* The key index must be current: pending batches into the files with
  ** their key rows written, then any catch-up the index still owes. */
  if (!rc) rc = tk_part_flush(p, 1, 0);
  if (!rc) rc = tk_key_cover_log(p);
  crash_point(0);
  tk_segment **cand = NULL, **fresh = NULL;
  size_t ncand = 0;
  /* keys_kept = keys outside [first, end) + the survivors counted inside */
  int64_t first = 0, end = 0;
  rewrite_run run;
  memset(&run, 0, sizeof run);
  sync_init(&run.q, s);
  if (rc) goto out;
  if (!(run.w = tk_cw_take_buffers(s)) && !(run.w = calloc(1, sizeof *run.w))) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    goto out;
  }
  /* 1. the cleanable segments: never past what the key index covers (after
  ** the flush above, the whole log, unless key rows were lost in a failure
  ** this run could not repair: then only the next open's rebuild helps) */
  int64_t covered = tk_key_covered(p);
  int64_t now = tk_now_ms(), total = 0, dirty = 0;
  /* append_lock: a segment's unwritten catalog rows are appenders' state */
  pthread_mutex_lock(&p->append_lock);
  pthread_rwlock_rdlock(&p->meta_lock);
  cand = calloc(p->nsegs ? p->nsegs : 1, sizeof *cand);
  fresh = calloc(p->nsegs ? p->nsegs : 1, sizeof *fresh);
  run.fps = calloc(p->nsegs ? p->nsegs : 1, sizeof *run.fps);
  for (size_t i = 0; cand && fresh && run.fps && i < p->nsegs; i++) {
    tk_segment *g = p->segs[i];
    total += g->size;
    if (i + 1 == p->nsegs) break; /* the active segment is never touched */
    if (cfg->min_compaction_lag_ms > 0 && g->max_ts > now - cfg->min_compaction_lag_ms) break;
    /* Sealed since the flush above, its index rows still going to the
    ** catalog a chunk at a time (the checkpoint thread, or an append:
    ** partition.c): one of those chunks could land after this run's rows
    ** for the segment, describing the old file. tk_part_write_owed counts
    ** on this: a segment owing rows is no run's candidate. */
    if (g->cat_dirty || g->idx_persisted < g->idx_n) break;
    ncand = i + 1;
    /* not fully key-indexed (the topic became compacted later, or key rows
    ** were lost), or deleted */
    if (g->base_offset < p->key_from || g->next_offset > covered || g->next_offset <= p->log_start)
      continue;
    if (g->next_offset > p->clean_upto) dirty += g->size;
    tk_seg_ref(g);
    cand[i] = g;
  }
  total = 0;
  for (size_t i = 0; i < p->nsegs; i++) total += p->segs[i]->size;
  pthread_rwlock_unlock(&p->meta_lock);
  pthread_mutex_unlock(&p->append_lock);
  if (!cand || !fresh || !run.fps) {
    rc = tk_err(TAKHIN_ENOMEM, "out of memory compacting");
    goto out;
  }
  if (!force && (total == 0 || (double)dirty / (double)total < cfg->min_cleanable_dirty_ratio))
    goto out;
  int have = 0;
  for (size_t i = 0; i < ncand; i++)
    if (cand[i]) {
      if (!have) {
        first = cand[i]->base_offset;
        have = 1;
      }
      end = cand[i]->next_offset;
    }
  if (!have) goto out;
  int64_t expired_before = now - cfg->delete_retention_ms;
  /* The run's first write, before the plan makes any .cleaned file: start
  ** the delete_retention_ms clock of the tombstones in range, and drop the
  ** swap rows the last run left (step 4). A read first: most runs have
  ** neither to do and write nothing here. */
  int64_t unseen = 1;
  pthread_mutex_lock(&s->cat_lock);
  rc = query_i64(s, TK_SQL_UNSEEN_TOMBSTONES, id, p->id, 4, first, end, 0, &unseen);
  if (!rc && (unseen || p->swaps_done)) {
    rc = tk_cat_begin(s);
    if (!rc && unseen) rc = exec5(s, TK_SQL_MARK_TOMBSTONES_SEEN, id, p->id, 5, first, end, now);
    if (!rc && p->swaps_done) rc = exec5(s, TK_SQL_CLEAR_SWAPS, id, p->id, 2, 0, 0, 0);
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    if (!rc) p->swaps_done = 0;
  }
  pthread_mutex_unlock(&s->cat_lock);
  /* 2. rewrite the segments holding records that did not survive, by the
  ** plan (compact_plan.c: survivors queried ahead on a second thread; the
  ** catalog lock is held for the queries only, not for the file work).
  ** Done before cand[] changes below. */
  run.p = p;
  run.cand = cand;
  run.fresh = fresh;
  run.ncand = ncand;
  if (!rc) rc = rewrite_all(&run, expired_before);
  if (!rc) rc = sync_all(&run.q);
  if (rc) goto undo;
  crash_point(1);
  if ((rc = tk_sync_dir(p->dir))) goto undo;
  crash_point(2);
  /* A delete that began during the run waits for it: give up before the
  ** rows rather than write what it would remove at once. */
  if ((rc = tk_topic_gone(p->topic))) goto undo;
  /* 3. one transaction: segment rows, checkpoint, forgotten tombstones, swaps */
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  for (size_t i = 0; !rc && i < ncand; i++) {
    if (!fresh[i]) continue;
    tk_segment *n = fresh[i];
    /* The old file's index rows go (the plan deleted them already, unless
    ** that failed); the new file's are written after the run, as a roll's
    ** are (tk_part_swap_segments): until then an open finds the row
    ** without entries and walks the file's batch headers. On the SQL
    ** extension's store, here: its rows are not written by a thread. */
    rc = tk_cat_delete_index_from(s, id, p->id, n->base_offset, 0);
    if (!rc) rc = tk_cat_upsert_segment(s, id, p->id, n);
    if (!rc && s->borrowed) /* no thread writes them later: the host's commit, now */
      rc = tk_cat_upsert_index(s, id, p->id, n->base_offset, n->idx, n->idx_n);
    if (!rc) rc = exec5(s, TK_SQL_ADD_SWAP, id, p->id, 5, n->base_offset, n->size, run.fps[i]);
  }
  if (!rc) rc = tk_key_forget_expired(s, id, p->id, first, end, expired_before);
  if (!rc && end > p->clean_upto) rc = exec5(s, TK_SQL_SET_CLEAN_UPTO, id, p->id, 3, end, 0, 0);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) goto undo;
  if (end > p->clean_upto) p->clean_upto = end;
  crash_point(3);
  /* 4. the renames, then the new segments become what readers find. From
  ** its rename until the swap below, an old segment's path names its
  ** replacement: a reader that must reopen it then finds another inode,
  ** takes the segment as retired and looks again until the swap is done
  ** (cursor.c), so the folder is synced after the swap, not before. */
  for (size_t i = 0; i < ncand; i++) {
    if (!fresh[i]) continue;
    char path[TK_PATH_MAX], tmp[TK_PATH_MAX + 16];
    tk_seg_path(fresh[i], path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.cleaned", path);
    if (rename(tmp, path) != 0) {
      /* The catalog and its swap row describe the new file; the next open
      ** finishes the rename. Until then the old segment stays, as its path
      ** still names its file. */
      if (!rc) rc = tk_err_sys(errno, "rename", tmp);
      tk_seg_unref(fresh[i]);
      fresh[i] = NULL;
    }
    crash_point(4);
  }
  tk_part_swap_segments(p, cand, fresh, ncand);
  /* One not swapped (its rename failed) stays in memory, but the catalog
  ** committed above describes its new file, which the next open renames
  ** into place: the old file's rows are not owed (written, they would
  ** describe the old file to that open). The plan thread has stopped. */
  for (size_t i = 0; i < ncand; i++)
    if (cand[i]) cand[i]->rows_dropped = 0;
  if (!rc) rc = tk_sync_dir(p->dir);
  crash_point(5);
  /* The swap rows now name renames that are done: an open finding them
  ** finds no .cleaned file and does nothing. They go with the next run's
  ** first write, which comes before that run makes a .cleaned file of its
  ** own (a row left then would have an open rename a half-written file
  ** over its segment), or with the next open: not in a transaction of
  ** their own here. Not after a failed rename: that row's file still waits. */
  if (!rc) p->swaps_done = 1;
  crash_point(6);
  if (out) {
    out->segments_compacted += run.rewritten;
    out->bytes_reclaimed += run.before - run.after;
    out->records_removed += run.removed;
  }
  goto out;
undo: /* nothing committed: the .cleaned files go, the old rows come back */
  sync_all(&run.q);
  tk_part_owe_rows(p, cand, ncand);
  for (size_t i = 0; i < ncand; i++)
    if (fresh[i]) {
      char path[TK_PATH_MAX], tmp[TK_PATH_MAX + 16];
      tk_seg_path(fresh[i], path, sizeof path);
      snprintf(tmp, sizeof tmp, "%s.cleaned", path);
      unlink(tmp);
    }
out:
  for (size_t i = 0; cand && i < ncand; i++) {
    if (cand[i]) tk_seg_unref(cand[i]);
    if (fresh && fresh[i]) tk_seg_unref(fresh[i]);
  }
  free(cand);
  free(fresh);
  free(run.fps);
  sync_stop(&run.q);
  rewriter_keep(s, run.w);
  if (!rc && out) { /* live keys, whether or not this run rewrote anything */
    int64_t keys = 0;
    int64_t survived = run.survived;
    if (end <= first) { /* no run: count them all */
      survived = 0;
      first = end = 0;
    }
    pthread_mutex_lock(&s->cat_lock);
    query_i64(s, TK_SQL_KEYS_KEPT, id, p->id, 4, first, end, 0,
              &keys); /* a count, not the run: ignored */
    pthread_mutex_unlock(&s->cat_lock);
    out->keys_kept += keys + survived;
  }
  tk_part_owed_after_run(p);
  pthread_mutex_unlock(&p->maint_lock);
  if (out) out->duration_ms += tk_now_ms() - t0;
  return rc;
}

/* ---- the public entry point ---------------------------------------------- */

int takhin_compact(takhin_store *s, const char *topic, int32_t partition, int force,
                   takhin_compaction_result *out) {
  if (!tk_store_live(s)) return tk_err(TAKHIN_EMISUSE, "takhin_compact: store is NULL or closed");
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  takhin_compaction_result local;
  memset(&local, 0, sizeof local);
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  pthread_rwlock_rdlock(&s->topics_lock);
  int32_t n = t->nparts;
  pthread_rwlock_unlock(&s->topics_lock);
  if (partition < -1 || partition >= n) {
    rc = tk_err(TAKHIN_ENOTFOUND, "partition %d out of range [0, %d) for topic \"%s\"",
                (int)partition, (int)n, topic);
  } else {
    for (int32_t i = 0; i < n && !rc; i++) {
      if (partition >= 0 && partition != i) continue;
      pthread_rwlock_rdlock(&s->topics_lock);
      tk_partition *p = t->parts[i];
      pthread_rwlock_unlock(&s->topics_lock);
      rc = tk_part_compact(p, force, &local);
    }
  }
  tk_topic_unref(t);
  if (out) *out = local;
  return rc;
}
