/*
** path_mmap.c -- the mmap path: the read limit for takhin's own bytes.
**
** Writes go through takhin (the api path's produce, flush and segments), so
** the files are the very segments the api path reads. A reader maps each
** segment file whole (MAP_SHARED, read-only) and walks it with the store's
** own batch code: header parse, the CRC-32C check (tk_batch_crc_ok), the
** record walk (tk_record_decode), each record handed to the sink as the api
** path's cursor hands it over. The CRC rule is the cursor's: a batch is
** checked unless it lies inside the byte range this reader has already
** checked in that segment (one contiguous range per reader, extended as
** reads go on). What is left out is everything else a cursor does: the
** catalog and its sparse index (a reader here indexes every batch in memory
** when it opens, untimed), locks, reference counts, retention and
** compaction races, damage handling. So api/mmap is takhin's read overhead
** over the mapped bytes themselves.
**
** Uncompressed batches only (the benchmarks write no codec); a batch
** written with one is reported as an error. Only the read benchmarks run
** here (bench_fetch.c): it stores nothing of its own.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "bench.h"

struct bp_store {
  void *api; /* the api path's store: takhin itself */
  char dir[4096];
  int32_t partitions; /* per topic */
};

typedef struct mseg {
  int64_t base;
  const uint8_t *map;
  size_t len;    /* bytes mapped */
  int64_t *boff; /* base offset of each batch ... */
  int64_t *bpos; /* ... and its byte position */
  size_t nb, cap;
} mseg;

/* Where the last read stopped: the record after it. */
typedef struct mpos {
  int valid;
  size_t si, b; /* segment, batch */
  tk_batch_hdr h;
  int32_t i; /* records of the batch decoded */
  const uint8_t *q, *end;
  int64_t next; /* the offset a read must start at to go on from here */
} mpos;

struct bp_reader {
  bp_store *st;
  mpos at;
  int32_t part;
  char dir[4200];
  mseg *segs;
  size_t nsegs;
  int64_t end; /* one past the last offset indexed */
  size_t verified_seg;
  int64_t verified_lo, verified_hi; /* checked bytes [lo, hi) of segs[verified_seg] */
};

#define API(st) ((bp_store *)(st)->api)

static const char *mmap_unavailable(void) {
  return bench_path_api.unavailable ? bench_path_api.unavailable() : NULL;
}

static int mmap_open(const bp_config *cfg, bp_store **out) {
  bp_store *st = calloc(1, sizeof *st);
  if (!st) {
    bench_errorf("mmap path: out of memory");
    return -1;
  }
  snprintf(st->dir, sizeof st->dir, "%s/bench.db-takhin", cfg->dir); /* takhin's data folder */
  st->partitions = cfg->partitions;
  bp_store *api;
  if (bench_path_api.open(cfg, &api) != 0) {
    free(st);
    return -1;
  }
  st->api = api;
  *out = st;
  return 0;
}

static int mmap_close(bp_store *st) {
  int rc = bench_path_api.close(API(st));
  free(st);
  return rc;
}

static int mmap_produce(bp_store *st, int32_t part, const takhin_record *recs, size_t n,
                        int64_t *first_offset) {
  return bench_path_api.produce(API(st), part, recs, n, first_offset);
}

static int mmap_flush(bp_store *st) { return bench_path_api.flush(API(st)); }

static int mmap_segments(bp_store *st, int32_t part, int64_t *out) {
  return bench_path_api.segments(API(st), part, out);
}

static void unmap_all(bp_reader *r) {
  for (size_t i = 0; i < r->nsegs; i++) {
    if (r->segs[i].map) munmap((void *)r->segs[i].map, r->segs[i].len);
    free(r->segs[i].boff);
    free(r->segs[i].bpos);
  }
  free(r->segs);
  r->segs = NULL;
  r->nsegs = 0;
  r->end = 0;
  r->at.valid = 0;
  r->verified_lo = r->verified_hi = 0;
}

static int cmp_seg(const void *a, const void *b) {
  int64_t x = ((const mseg *)a)->base, y = ((const mseg *)b)->base;
  return (x > y) - (x < y);
}

/* Map one segment file and index its batches; the walk stops at the first
** bytes that are not a whole batch (the unwritten tail of the active one). */
static int map_segment(bp_reader *r, mseg *g) {
  char path[4300];
  snprintf(path, sizeof path, "%s/%020lld.log", r->dir, (long long)g->base);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    bench_errorf("mmap path: open %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  g->len = (size_t)sb.st_size;
  if (g->len) {
    void *m = mmap(NULL, g->len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      bench_errorf("mmap path: mmap %s: %s", path, strerror(errno));
      close(fd);
      return -1;
    }
    g->map = m;
  }
  close(fd);
  for (int64_t pos = 0; pos < (int64_t)g->len;) {
    tk_batch_hdr h;
    if (tk_batch_parse_header(g->map + pos, g->len - (size_t)pos, &h) != TAKHIN_OK ||
        tk_batch_total(&h) > (int64_t)g->len - pos)
      break;
    if (g->nb == g->cap) {
      size_t cap = g->cap ? 2 * g->cap : 256;
      int64_t *o = realloc(g->boff, cap * sizeof *o),
              *p = o ? realloc(g->bpos, cap * sizeof *p) : NULL;
      if (o) g->boff = o;
      if (!o || !p) {
        bench_errorf("mmap path: out of memory");
        return -1;
      }
      g->bpos = p;
      g->cap = cap;
    }
    g->boff[g->nb] = h.base_offset;
    g->bpos[g->nb++] = pos;
    if (h.base_offset + h.last_offset_delta + 1 > r->end)
      r->end = h.base_offset + h.last_offset_delta + 1;
    pos += tk_batch_total(&h);
  }
  return 0;
}

/* (Re)map the partition's segment files: at open, and when a read asks for
** offsets written since. */
static int reader_scan(bp_reader *r) {
  unmap_all(r);
  DIR *d = opendir(r->dir);
  if (!d) {
    bench_errorf("mmap path: opendir %s: %s", r->dir, strerror(errno));
    return -1;
  }
  size_t cap = 0;
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n != 24 || strcmp(e->d_name + 20, ".log") != 0) continue;
    if (r->nsegs == cap) {
      cap = cap ? 2 * cap : 16;
      mseg *s = realloc(r->segs, cap * sizeof *s);
      if (!s) {
        bench_errorf("mmap path: out of memory");
        rc = -1;
        break;
      }
      r->segs = s;
    }
    r->segs[r->nsegs++] = (mseg){.base = strtoll(e->d_name, NULL, 10)};
  }
  closedir(d);
  if (rc == 0) qsort(r->segs, r->nsegs, sizeof *r->segs, cmp_seg);
  for (size_t i = 0; rc == 0 && i < r->nsegs; i++) rc = map_segment(r, &r->segs[i]);
  return rc;
}

static int mmap_reader_open(bp_store *st, int32_t part, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) {
    bench_errorf("mmap path: out of memory");
    return -1;
  }
  r->st = st;
  r->part = part;
  int32_t topic = part / st->partitions;
  char name[32];
  if (topic == 0) snprintf(name, sizeof name, "bench");
  else snprintf(name, sizeof name, "bench%d", (int)topic);
  snprintf(r->dir, sizeof r->dir, "%s/%s-%d", st->dir, name, (int)(part % st->partitions));
  if (mmap_flush(st) != 0 || reader_scan(r) != 0) {
    unmap_all(r);
    free(r);
    return -1;
  }
  *out = r;
  return 0;
}

static void mmap_reader_close(bp_reader *r) {
  if (!r) return;
  unmap_all(r);
  free(r);
}

/* The last index i of v[0..n) with v[i] <= x (0 when none is). */
static size_t last_le(const int64_t *v, size_t n, int64_t x, size_t stride) {
  size_t lo = 0, hi = n;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (*(const int64_t *)((const char *)v + mid * stride) <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

/* The cursor's rule (cursor.c note_verified): one checked range per reader. */
static int batch_checked(bp_reader *r, size_t seg, int64_t at, const uint8_t *p,
                         const tk_batch_hdr *h) {
  int64_t total = tk_batch_total(h);
  if (seg == r->verified_seg && at >= r->verified_lo && at + total <= r->verified_hi) return 1;
  if (!tk_batch_crc_ok(p, h)) return 0;
  if (seg != r->verified_seg || r->verified_lo == r->verified_hi) {
    r->verified_seg = seg;
    r->verified_lo = at, r->verified_hi = at + total;
  } else if (at == r->verified_hi) {
    r->verified_hi = at + total;
  } else if (at + total == r->verified_lo) {
    r->verified_lo = at;
  } else if (at < r->verified_lo || at >= r->verified_hi) {
    r->verified_lo = at, r->verified_hi = at + total;
  }
  return 1;
}

/* Make batch b of segment si the current one: header, CRC check, codec. */
static int load_batch(bp_reader *r, size_t si, size_t b) {
  const mseg *g = &r->segs[si];
  const uint8_t *p = g->map + g->bpos[b];
  mpos *c = &r->at;
  c->valid = 0;
  if (tk_batch_parse_header(p, g->len - (size_t)g->bpos[b], &c->h) != TAKHIN_OK) {
    bench_errorf("mmap path: bad batch header in %s at byte %lld", r->dir, (long long)g->bpos[b]);
    return -1;
  }
  if (!batch_checked(r, si, g->bpos[b], p, &c->h)) {
    bench_errorf("mmap path: CRC mismatch in %s at byte %lld", r->dir, (long long)g->bpos[b]);
    return -1;
  }
  if (c->h.attributes & TK_ATTR_CODEC_MASK) {
    bench_errorf("mmap path: compressed batches are not modelled");
    return -1;
  }
  c->si = si, c->b = b, c->i = 0;
  c->q = p + TK_BATCH_HEADER_SIZE;
  c->end = p + tk_batch_total(&c->h);
  c->valid = 1;
  return 0;
}

/* As a cursor does, a read that starts where the last one stopped goes on
** from there; any other starts at the batch holding its first offset. */
static int mmap_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  if (offset + n > r->end && reader_scan(r) != 0) return -1;
  if (offset < 0 || n < 0 || offset + n > r->end || (n > 0 && r->nsegs == 0)) {
    bench_errorf("mmap path: range [%lld, %lld) outside the log [0, %lld)", (long long)offset,
                 (long long)(offset + n), (long long)r->end);
    return -1;
  }
  if (n == 0) return 0;
  mpos *c = &r->at;
  int64_t want = offset, stop = offset + n;
  if (!c->valid || c->next != offset) {
    size_t si = last_le(&r->segs[0].base, r->nsegs, want, sizeof(mseg));
    const mseg *g = &r->segs[si];
    if (g->nb == 0 || load_batch(r, si, last_le(g->boff, g->nb, want, sizeof(int64_t))) != 0) {
      if (g->nb == 0) bench_errorf("mmap path: offset %lld not found", (long long)want);
      return -1;
    }
  }
  while (want < stop) {
    if (c->i == c->h.records_count) { /* the next batch, or the next segment's first */
      size_t si = c->si, b = c->b + 1;
      while (si < r->nsegs && b >= r->segs[si].nb) si++, b = 0;
      if (si == r->nsegs) {
        bench_errorf("mmap path: offsets [%lld, %lld) not found", (long long)want, (long long)stop);
        return -1;
      }
      if (load_batch(r, si, b) != 0) return -1;
      continue;
    }
    takhin_message m;
    if (tk_record_decode(&c->q, c->end, &c->h, &m) != TAKHIN_OK) {
      c->valid = 0;
      bench_errorf("mmap path: bad record in %s", r->dir);
      return -1;
    }
    c->i++;
    if (m.offset < want) continue;
    bp_sink_take(sink, m.key, m.key_len, m.value, m.value_len);
    want = m.offset + 1;
  }
  c->next = want;
  return 0;
}

static int mmap_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  return mmap_read_range(r, offset, 1, sink);
}

const bench_path bench_path_mmap = {
    .name = "mmap",
    .reopens = 1,
    .unavailable = mmap_unavailable,
    .open = mmap_open,
    .close = mmap_close,
    .produce = mmap_produce,
    .flush = mmap_flush,
    .segments = mmap_segments,
    .reader_open = mmap_reader_open,
    .reader_close = mmap_reader_close,
    .read_range = mmap_read_range,
    .read_one = mmap_read_one,
};
