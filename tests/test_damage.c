/*
** test_damage.c -- one flipped bit anywhere in an indexed batch (issue 11,
** defect 2): recovery and readers must neither lose nor misplace a record.
**
** Each case builds a store, closes it cleanly (the catalog then indexes every
** batch), snapshots its folder, and then, one attack at a time: restores the
** snapshot, flips one bit of one batch (every header field at several bit
** positions, low and high, and bytes of the records), and opens the store
** twice. After each open:
**
**   - nothing was cut (bit rot in indexed data is not a torn tail), and the
**     high watermark is what it was;
**   - every record outside the damaged batch reads back at its offset with
**     its key, value and timestamp (random reads through the index, highest
**     offset first, and one sequential read), also in later segments;
**   - the damaged batch's offsets read as ECORRUPT naming the segment file and
**     the batch's byte position, except for partitionLeaderEpoch (outside the
**     CRC, unused by readers), which must read fine; a sequential reader
**     stops there with ECORRUPT, again on retry, and a seek past it goes on;
**   - if open reported damage, it names the right file and byte;
**   - the first open's next produce gets the old high watermark, and the
**     second open reads those records too.
**
** Layouts: the active segment (last batch, a batch in the last index
** stretch, which recovery walks, and a batch in an early stretch, which it
** does not), a sealed segment followed by others (last and middle batch),
** each uncompressed and zstd; and a compacted topic's sealed segments,
** whose batches have gaps between them.
**
** Each case prints one line: attacks tried, how the damaged batch read
** (ECORRUPT / intact / undetectable), and how many open reported.
**
** Then what else reads segment files: a compacted topic's files adopted
** without catalog rows (gaps between batches are not damage), the key
** index catch-up on open over a damaged batch (the store must open), and
** compaction over a damaged baseOffset (it must not rewrite the batch).
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define TOPIC "t"
#define TS0 1700000000000LL
#define MAXREC 4096

/* ---- what was produced -------------------------------------------------- */

typedef struct model {
  int64_t hwm;
  int compacted;
  char alive[MAXREC]; /* offset still holds a record (compaction removes some) */
} model;

static size_t vlen_of(int64_t o) { return (size_t)(20 + (o * 37) % 100); }

/* Compacted topics: two records in three have a key of their own (they
** survive), the third one of five shared keys (most of those go). */
static int key_of(int compacted, int64_t o, char *out, size_t cap) {
  if (compacted && o % 3 == 0) return snprintf(out, cap, "dup%d", (int)(o % 5));
  return snprintf(out, cap, "k%lld", (long long)o);
}

static int rec_ok(const model *md, const takhin_message *m, int64_t o) {
  char key[32];
  int kl = key_of(md->compacted, o, key, sizeof key);
  return m->offset == o && m->key && m->key_len == (size_t)kl &&
         memcmp(m->key, key, (size_t)kl) == 0 &&
         tu_value_ok(m->value, m->value_len, vlen_of(o), (long)o) && m->timestamp == TS0 + o;
}

static void produce_at(takhin_store *s, model *md, int n) {
  takhin_record r[8];
  char k[8][32], v[8][160], dummy[32];
  int64_t first = md->hwm;
  cr_assert(n >= 1 && n <= 8 && first + n <= MAXREC);
  for (int j = 0; j < n; j++) {
    tu_make_record(&r[j], dummy, sizeof dummy, v[j], vlen_of(first + j), (long)(first + j));
    r[j].key = k[j];
    r[j].key_len = (size_t)key_of(md->compacted, first + j, k[j], sizeof k[j]);
    r[j].timestamp = TS0 + first + j;
  }
  int64_t got = -1;
  int rc = takhin_produce(s, TOPIC, 0, r, (size_t)n, &got);
  cr_assert_eq(rc, TAKHIN_OK, "produce at %lld: %s", (long long)first, takhin_errmsg());
  cr_assert_eq(got, first, "produce went to offset %lld, want %lld", (long long)got,
               (long long)first);
  for (int j = 0; j < n; j++) md->alive[first + j] = 1;
  md->hwm += n;
}

/* ---- files --------------------------------------------------------------- */

/* Snapshots of a closed store's folder (testutil.c), restored before every
** attack. */
typedef tu_snap snap;

/* ---- the batches of a segment file ---------------------------------------- */

typedef struct span {
  int64_t pos, total, base, last;
  int32_t count;
} span;

static size_t spans_of(const char *path, span *out, size_t cap) {
  size_t len, n = 0;
  uint8_t *b = tu_read_file_ok(path, &len);
  for (size_t pos = 0; pos + 61 <= len && n < cap; n++) {
    span *x = &out[n];
    x->pos = (int64_t)pos;
    x->base = (int64_t)tu_get_be(b + pos, 8);
    x->total = (int64_t)tu_get_be(b + pos + 8, 4) + 12;
    x->last = x->base + (int64_t)tu_get_be(b + pos + 23, 4);
    x->count = (int32_t)tu_get_be(b + pos + 57, 4);
    pos += (size_t)x->total;
  }
  free(b);
  return n;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Index positions of segment seg_base from the catalog (its runs' entries,
** as the store loads them), in order, to tell the stretches apart:
** recovery re-walks only the last one. */
#include <sqlite3.h>
static size_t index_positions(const char *db, int64_t seg_base, int64_t *pos, size_t cap) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  tu_index_row *r;
  size_t nr;
  cr_assert_eq(tu_cat_index_rows(h, -1, -1, seg_base, &r, &nr), 0, "%s", tu_error());
  sqlite3_close(h);
  int64_t *all = malloc((nr ? nr : 1) * sizeof *all);
  cr_assert_not_null(all);
  for (size_t i = 0; i < nr; i++) all[i] = r[i].position;
  free(r);
  qsort(all, nr, sizeof *all, cmp_i64);
  size_t n = nr < cap ? nr : cap;
  memcpy(pos, all, n * sizeof *pos);
  free(all);
  return n;
}

/* ---- a store to damage -------------------------------------------------- */

typedef struct fixture {
  char db[1024], dir[1024];
  model md;
  snap sn;
  int64_t seg_bases[64];
  size_t nsegs;
} fixture;

static takhin_store *open_ok(const char *db, const char *ctx) {
  takhin_store *s = NULL;
  int rc = takhin_open(db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_OK, "%s: open: %s (%s)", ctx, takhin_errstr(rc), takhin_errmsg());
  return s;
}

/* The segment files' base offsets, sorted. */
static void list_segments(fixture *f) {
  char pdir[2048];
  snprintf(pdir, sizeof pdir, "%s-takhin/%s-0", f->db, TOPIC);
  DIR *d = opendir(pdir);
  cr_assert_not_null(d);
  struct dirent *e;
  f->nsegs = 0;
  while ((e = readdir(d)))
    if (strlen(e->d_name) == 24 && !strcmp(e->d_name + 20, ".log") && f->nsegs < 64)
      f->seg_bases[f->nsegs++] = strtoll(e->d_name, NULL, 10);
  closedir(d);
  for (size_t i = 1; i < f->nsegs; i++)
    for (size_t j = i; j > 0 && f->seg_bases[j - 1] > f->seg_bases[j]; j--) {
      int64_t x = f->seg_bases[j];
      f->seg_bases[j] = f->seg_bases[j - 1];
      f->seg_bases[j - 1] = x;
    }
}

static void build(fixture *f, const char *name, const char *codec, int64_t segment_bytes,
                  int compacted, int nbatches) {
  memset(f, 0, sizeof *f);
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  snprintf(f->dir, sizeof f->dir, "%s", f->db);
  *strrchr(f->dir, '/') = 0;
  f->md.compacted = compacted != 0; /* 2: a compacted topic not compacted yet */
  char segb[32];
  snprintf(segb, sizeof segb, "%lld", (long long)segment_bytes);
  const char *cfg[] = {"compression",
                       codec,
                       "segment_bytes",
                       segb,
                       "cleanup_policy",
                       compacted ? "compact" : "delete",
                       "min_cleanable_dirty_ratio",
                       "0.01",
                       "min_compaction_lag_ms",
                       "0",
                       NULL};
  takhin_store *s = open_ok(f->db, name);
  cr_assert_eq(takhin_topic_create(s, TOPIC, 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  for (int b = 0; b < nbatches; b++) produce_at(s, &f->md, 1 + b % 3);
  if (compacted == 1) {
    takhin_compaction_result cr;
    cr_assert_eq(takhin_compact(s, TOPIC, 0, 1, &cr), TAKHIN_OK, "compact: %s", takhin_errmsg());
    cr_assert_gt(cr.records_removed, 0, "compaction removed nothing");
    /* What survived: read it all back, checking every record. */
    memset(f->md.alive, 0, sizeof f->md.alive);
    takhin_cursor *c;
    takhin_message m;
    cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
    int rc;
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      cr_assert(rec_ok(&f->md, &m, m.offset), "compacted record %lld", (long long)m.offset);
      f->md.alive[m.offset] = 1;
    }
    cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
    takhin_cursor_close(c);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  list_segments(f);
  tu_snap_take_ok(&f->sn, f->dir);
}

static void seg_path(const fixture *f, int64_t base, char *out, size_t cap) {
  tu_segment_path(out, cap, f->db, TOPIC, 0, base);
}

/* ---- checks after an attack ----------------------------------------------- */

typedef struct attack {
  const char *field;
  int off, width, bit; /* bit counted from the field's least significant end */
  int harmless;        /* the field does not matter to readers: must read fine */
} attack;

typedef struct tally {
  int tries, corrupt_reads, intact_reads, reported, undetectable;
} tally;

/* What an attack may do to reads. The damaged batch holds [lo, hi]; reads
** in [zlo, zhi] may give ECORRUPT, naming the segment and one of the byte
** positions pos[]. Normally the zone is the batch itself. In a compacted
** segment (gaps between batches) a baseOffset that now overlaps a
** neighbour's offsets cannot be told from that neighbour's being wrong, so
** both are refused: the zone spans the neighbours; and one moved within
** its gap is undetectable, so the batch's own records may read misplaced
** (may_misread), never anyone else's. */
typedef struct expect {
  int64_t lo, hi, zlo, zhi;
  int64_t pos[3];
  int npos;
  int must_corrupt, must_read, may_misread;
} expect;

/* The record m came from one of [lo, hi] (content check), wherever it was read. */
static int from_batch(const model *md, const takhin_message *m, const expect *e) {
  for (int64_t o = e->lo; o <= e->hi; o++) {
    takhin_message x = *m;
    x.offset = o;
    if (rec_ok(md, &x, o)) return 1;
  }
  return 0;
}

static int names_pos(const expect *e, const char *msg) {
  for (int i = 0; i < e->npos; i++) {
    char want[64];
    snprintf(want, sizeof want, "at byte %lld ", (long long)e->pos[i]);
    if (strstr(msg, want)) return 1;
  }
  return 0;
}

/* Read everything sequentially from the log start: offsets only grow, each
** record is intact at its offset; ECORRUPT only in the zone, naming file
** and byte, again on retry; a seek past the zone goes on to the end, and
** nothing outside the zone is missing. Returns the misplaced records read. */
static int check_seq(takhin_store *s, const model *md, const char *segname, const expect *e,
                     const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  static char seen[MAXREC];
  memset(seen, 0, sizeof seen);
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  int64_t prev = -1;
  int corrupt_seen = 0, misread = 0;
  for (;;) {
    int rc = takhin_cursor_next(c, &m);
    if (rc == TAKHIN_END) break;
    if (rc == TAKHIN_ECORRUPT) {
      int64_t want = prev + 1;
      while (want < md->hwm && !md->alive[want]) want++;
      cr_assert(want >= e->zlo && want <= e->zhi,
                "%s: sequential read: ECORRUPT after offset %lld, outside "
                "%lld-%lld: %s",
                ctx, (long long)prev, (long long)e->zlo, (long long)e->zhi, takhin_errmsg());
      cr_assert(strstr(takhin_errmsg(), segname) && names_pos(e, takhin_errmsg()),
                "%s: ECORRUPT does not name %s and the batch's byte: %s", ctx, segname,
                takhin_errmsg());
      cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_ECORRUPT, "%s: a retry skipped the damage",
                   ctx);
      cr_assert_eq(corrupt_seen, 0, "%s: ECORRUPT twice", ctx);
      corrupt_seen = 1;
      /* The message names the offsets that cannot be read; a reader seeks
      ** past them. They may include a compacted gap, never a live record
      ** outside the zone. */
      const char *r = strstr(takhin_errmsg(), "(offsets ");
      long long rlo, rhi;
      cr_assert(r && sscanf(r, "(offsets %lld-%lld)", &rlo, &rhi) == 2, "%s: %s", ctx,
                takhin_errmsg());
      for (int64_t o = rlo; o <= rhi && o < md->hwm; o++)
        cr_assert(!md->alive[o] || (o >= e->zlo && o <= e->zhi),
                  "%s: ECORRUPT range covers live %lld: %s", ctx, (long long)o, takhin_errmsg());
      int64_t to = rhi + 1 > e->zhi + 1 ? rhi + 1 : e->zhi + 1;
      if (to > md->hwm) to = md->hwm;
      cr_assert_eq(takhin_cursor_seek(c, to, 0, 0), TAKHIN_OK, "%s: seek past: %s", ctx,
                   takhin_errmsg());
      prev = to - 1;
      continue;
    }
    cr_assert_eq(rc, TAKHIN_OK, "%s: sequential read after %lld: %s (%s)", ctx, (long long)prev,
                 takhin_errstr(rc), takhin_errmsg());
    cr_assert_gt(m.offset, prev, "%s: offset %lld after %lld", ctx, (long long)m.offset,
                 (long long)prev);
    prev = m.offset;
    if (m.offset < md->hwm && md->alive[m.offset] && rec_ok(md, &m, m.offset)) {
      seen[m.offset] = 1;
      if (m.offset >= e->lo && m.offset <= e->hi)
        cr_assert(!e->must_corrupt, "%s: damaged batch read at %lld", ctx, (long long)m.offset);
      continue;
    }
    cr_assert(e->may_misread && from_batch(md, &m, e),
              "%s: sequential read: wrong record at offset %lld", ctx, (long long)m.offset);
    misread++;
  }
  int any_alive = 0;
  for (int64_t o = 0; o < md->hwm; o++) {
    if (!md->alive[o]) continue;
    int in_zone = o >= e->zlo && o <= e->zhi;
    if (!in_zone) cr_assert(seen[o], "%s: sequential read missed offset %lld", ctx, (long long)o);
    if (e->must_read && o >= e->lo && o <= e->hi)
      cr_assert(seen[o], "%s: missed %lld", ctx, (long long)o);
    any_alive |= o >= e->lo && o <= e->hi;
  }
  if (e->must_corrupt && any_alive)
    cr_assert(corrupt_seen, "%s: the damaged batch was never reported", ctx);
  takhin_cursor_close(c);
  return misread;
}

/* Every alive offset, one get each, highest first (each goes through the
** index). Returns how the damaged batch's offsets read: 1 ECORRUPT, 0
** intact, 2 misplaced, -1 none alive. */
static int check_gets(takhin_store *s, const model *md, const expect *e, const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  int seen = -1;
  for (int64_t o = md->hwm - 1; o >= 0; o--) {
    if (!md->alive[o]) continue;
    int rc = takhin_cursor_get(c, o, &m);
    int in_batch = o >= e->lo && o <= e->hi, in_zone = o >= e->zlo && o <= e->zhi;
    if (rc == TAKHIN_ECORRUPT && in_zone) {
      cr_assert(!e->must_read || !in_batch, "%s: get %lld: %s", ctx, (long long)o, takhin_errmsg());
      if (in_batch) seen = 1;
      continue;
    }
    if (in_batch && e->may_misread && (rc != TAKHIN_OK || !rec_ok(md, &m, o))) {
      cr_assert(rc == TAKHIN_OK || rc == TAKHIN_ENOTFOUND, "%s: get %lld: %s", ctx, (long long)o,
                takhin_errmsg());
      if (seen < 1) seen = 2;
      continue;
    }
    cr_assert_eq(rc, TAKHIN_OK, "%s: get %lld (zone %lld-%lld): %s (%s)", ctx, (long long)o,
                 (long long)e->zlo, (long long)e->zhi, takhin_errstr(rc), takhin_errmsg());
    cr_assert(rec_ok(md, &m, o), "%s: get %lld: wrong record (offset %lld)", ctx, (long long)o,
              (long long)m.offset);
    if (in_batch) {
      cr_assert(!e->must_corrupt, "%s: get %lld: the damaged batch was served", ctx, (long long)o);
      if (seen < 0) seen = 0;
    }
  }
  takhin_cursor_close(c);
  return seen;
}

/* Restore, flip, open twice, check. */
static void run_attack(fixture *f, int64_t seg_base, const span *d, const span *prev,
                       const span *next, const attack *a, int64_t byte, uint8_t mask, tally *t) {
  char seg[2048], ctx[256];
  seg_path(f, seg_base, seg, sizeof seg);
  const char *segname = strrchr(seg, '/') + 1;
  snprintf(ctx, sizeof ctx,
           "%s bit %d (byte %lld mask 0x%02x) of the batch at %lld (offsets %lld-%lld) in %s",
           a->field, a->bit, (long long)byte, mask, (long long)d->pos, (long long)d->base,
           (long long)d->last, segname);
  tu_snap_restore_ok(&f->sn);
  int64_t size0 = tu_file_size(seg);
  tu_flip_ok(seg, byte, mask);
  model md = f->md;
  t->tries++;
  expect e = {.lo = d->base,
              .hi = d->last,
              .zlo = d->base,
              .zhi = d->last,
              .pos = {d->pos},
              .npos = 1,
              .must_corrupt = !a->harmless,
              .must_read = a->harmless};
  if (f->md.compacted && !strcmp(a->field, "baseOffset")) {
    e.must_corrupt = 0;
    e.may_misread = 1;
    if (prev) e.zlo = prev->base, e.pos[e.npos++] = prev->pos;
    if (next) e.zhi = next->last, e.pos[e.npos++] = next->pos;
  }
  int outcome = -1;
  for (int round = 0; round < 2; round++) {
    takhin_store *s = open_ok(f->db, ctx);
    takhin_recovery_info ri;
    cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
    cr_assert_eq(ri.bytes_truncated, 0, "%s: round %d: %lld bytes of indexed data cut", ctx, round,
                 (long long)ri.bytes_truncated);
    cr_assert_eq(ri.segments_truncated, 0, "%s", ctx);
    if (ri.batches_damaged) {
      cr_assert(strstr(ri.first_damage, segname) && names_pos(&e, ri.first_damage),
                "%s: open reported \"%s\"", ctx, ri.first_damage);
      if (!round) t->reported++;
    } else {
      cr_assert_eq(ri.first_damage[0], 0, "%s", ctx);
    }
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
    cr_assert_eq(pi.high_watermark, md.hwm, "%s: round %d: high watermark %lld, want %lld", ctx,
                 round, (long long)pi.high_watermark, (long long)md.hwm);
    int seen = check_gets(s, &md, &e, ctx);
    int misread = check_seq(s, &md, segname, &e, ctx);
    if (!round) {
      outcome = misread ? 2 : seen;
      cr_assert_eq(tu_file_size(seg), size0, "%s: the damaged segment changed size", ctx);
      produce_at(s, &md, 2); /* asserts the offsets it got */
    }
    cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s: %s", ctx, takhin_errmsg());
  }
  if (!strcmp(a->field, "baseOffset") || !strcmp(a->field, "batchLength") ||
      !strcmp(a->field, "lastOffsetDelta")) {
    /* A read-only handle recovers the same way, without writing. */
    takhin_options o;
    takhin_options_init(&o);
    o.read_only = 1;
    takhin_store *s = NULL;
    int rc = takhin_open(f->db, &o, &s);
    cr_assert_eq(rc, TAKHIN_OK, "%s: read-only open: %s", ctx, takhin_errmsg());
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
    cr_assert_eq(pi.high_watermark, md.hwm, "%s: read-only high watermark %lld", ctx,
                 (long long)pi.high_watermark);
    check_gets(s, &md, &e, ctx);
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
  }
  if (outcome == 1) t->corrupt_reads++;
  else if (outcome == 0) t->intact_reads++;
  else if (outcome == 2)
    t->undetectable++, fprintf(stderr, "damage: undetectable by the format: %s\n", ctx);
}

static const attack fields[] = {
    {"baseOffset", 0, 8, 0, 0},
    {"batchLength", 8, 4, 0, 0},
    {"partitionLeaderEpoch", 12, 4, 0, 1},
    {"magic", 16, 1, 0, 0},
    {"crc", 17, 4, 0, 0},
    {"attributes", 21, 2, 0, 0},
    {"lastOffsetDelta", 23, 4, 0, 0},
    {"firstTimestamp", 27, 8, 0, 0},
    {"maxTimestamp", 35, 8, 0, 0},
    {"producerId", 43, 8, 0, 0},
    {"producerEpoch", 51, 2, 0, 0},
    {"baseSequence", 53, 4, 0, 0},
    {"recordsCount", 57, 4, 0, 0},
};

/* Every field at bits 0, 1, 4, the middle, the top byte's lowest, the top
** two (each once, in increasing order); then record bytes
** (first, middle, last) at bits 0 and 7. */
static void attack_batch(fixture *f, int64_t seg_base, const span *d, const span *prev,
                         const span *next, tally *t) {
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const attack *a = &fields[i];
    int nbits = a->width * 8;
    int bits[] = {0,         1,         4,        nbits / 2,
                  nbits - 8, nbits - 2, nbits - 1}; /* 24 of 32: the case */
    for (size_t k = 0; k < sizeof bits / sizeof *bits; k++) {
      if (k && bits[k] <= bits[k - 1]) continue;
      attack x = *a;
      x.bit = bits[k];
      int64_t byte = d->pos + a->off + (a->width - 1 - x.bit / 8);
      run_attack(f, seg_base, d, prev, next, &x, byte, (uint8_t)(1u << (x.bit % 8)), t);
    }
  }
  int64_t rb[] = {d->pos + 61, d->pos + 61 + (d->total - 61) / 2, d->pos + d->total - 1};
  for (size_t k = 0; k < 3; k++)
    for (int bit = 0; bit < 8; bit += 7) {
      attack x = {"records", (int)(rb[k] - d->pos), 1, bit, 0};
      run_attack(f, seg_base, d, prev, next, &x, rb[k], (uint8_t)(1u << bit), t);
    }
}

enum { LAST, MIDDLE, LAST_STRETCH, EARLY_STRETCH };

/* Pick a batch of segment si: the last, the middle one, the middle one of
** the last index stretch or of the first. */
static int pick(fixture *f, size_t si, int which, span *out, span *prev, span *next, int *has_prev,
                int *has_next) {
  static span sp[4096];
  char seg[2048];
  seg_path(f, f->seg_bases[si], seg, sizeof seg);
  size_t n = spans_of(seg, sp, 4096);
  cr_assert_geq(n, 3, "segment %zu has %zu batches", si, n);
  int64_t ip[512];
  size_t ni = index_positions(f->db, f->seg_bases[si], ip, 512);
  cr_assert_geq(ni, 1);
  size_t k;
  if (which == LAST) {
    k = n - 1;
  } else if (which == MIDDLE) {
    k = n / 2;
  } else {
    if (ni < 2) return 0;
    int64_t lo = which == LAST_STRETCH ? ip[ni - 1] : ip[0],
            hi = which == LAST_STRETCH ? INT64_MAX : ip[1];
    size_t a = 0, b;
    while (a < n && sp[a].pos < lo) a++;
    for (b = a; b < n && sp[b].pos < hi; b++) {}
    if (b - a < 3) return 0;
    k = (a + b) / 2;
  }
  *out = sp[k];
  if ((*has_prev = k > 0)) *prev = sp[k - 1];
  if ((*has_next = k + 1 < n)) *next = sp[k + 1];
  return 1;
}

static void report(const char *name, const tally *t) {
  fprintf(
      stderr,
      "damage %-28s attacks %4d  damaged batch read: ECORRUPT %4d, intact %3d, undetectable %3d;"
      "  reported at open %4d\n",
      name, t->tries, t->corrupt_reads, t->intact_reads, t->undetectable, t->reported);
}

static void campaign(const char *name, const char *codec, int64_t segment_bytes, int compacted,
                     int nbatches, int sealed, const int *which, size_t nwhich) {
  fixture f;
  build(&f, name, codec, segment_bytes, compacted, nbatches);
  size_t si = sealed ? 0 : f.nsegs - 1;
  if (sealed)
    cr_assert_geq(f.nsegs, 3, "%s: want segments after the damaged one, got %zu", name, f.nsegs);
  tally t = {0};
  for (size_t w = 0; w < nwhich; w++) {
    span d, pv, nx;
    int hp, hn;
    if (!pick(&f, si, which[w], &d, &pv, &nx, &hp, &hn)) continue;
    attack_batch(&f, f.seg_bases[si], &d, hp ? &pv : NULL, hn ? &nx : NULL, &t);
  }
  report(name, &t);
  cr_assert_gt(t.tries, 0);
  tu_snap_free(&f.sn);
}

static const int active_targets[] = {LAST, LAST_STRETCH, EARLY_STRETCH};
static const int sealed_targets[] = {LAST, MIDDLE};

/* One segment (segment_bytes at its default), 120 batches: 4-5 stretches. */
Test(damage, active_segment, .timeout = 600) {
  campaign("dmg_active", "none", 1073741824LL, 0, 120, 0, active_targets, 3);
}

Test(damage, active_segment_zstd, .timeout = 600) {
  campaign("dmg_active_z", "zstd", 1073741824LL, 0, 120, 0, active_targets, 3);
}

/* Segments of ~6 KB: the first one is sealed with several after it. */
Test(damage, sealed_segment, .timeout = 600) {
  campaign("dmg_sealed", "none", 6000, 0, 120, 1, sealed_targets, 2);
}

Test(damage, sealed_segment_zstd, .timeout = 600) {
  campaign("dmg_sealed_z", "zstd", 3000, 0, 120, 1, sealed_targets, 2);
}

/* Compacted sealed segments: batches with gaps between and inside them. */
Test(damage, compacted_segment, .timeout = 600) {
  campaign("dmg_compacted", "none", 6000, 1, 120, 1, sealed_targets, 2);
}

Test(damage, compacted_segment_zstd, .timeout = 600) {
  campaign("dmg_compacted_z", "zstd", 3000, 1, 120, 1, sealed_targets, 2);
}

/* A compacted topic's files opened without their catalog rows (all segment
** and index rows deleted): each file is adopted whole, its batches with
** gaps between them, and must read back exactly as before: the gaps mark
** the files as not dense, so readers do not take them for damage. */
Test(damage, compacted_files_without_rows) {
  fixture f;
  build(&f, "dmg_rowless", "none", 6000, 1, 120);
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f.db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(h, "DELETE FROM takhin_cat_index_run; DELETE FROM takhin_cat_segment;",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_close(h);
  for (int round = 0; round < 2; round++) {
    takhin_store *s = open_ok(f.db, "rowless");
    takhin_recovery_info ri;
    cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
    cr_assert_eq(ri.bytes_truncated, 0);
    cr_assert_eq(ri.batches_damaged, 0, "round %d: %s", round, ri.first_damage);
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
    cr_assert_eq(pi.high_watermark, f.md.hwm);
    expect e = {.lo = -1, .hi = -1, .zlo = -1, .zhi = -1};
    check_gets(s, &f.md, &e, "rowless");
    check_seq(s, &f.md, "none", &e, "rowless");
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
  }
  tu_snap_free(&f.sn);
}

/* After a crash the key index of a compacted topic lags the log, and open
** reads the records it missed to index their keys. A damaged batch among
** them must not keep the store from opening: its keys cannot be read (it
** is reported), the other records' keys are indexed. */
Test(damage, compacted_key_catch_up_over_damage) {
  fixture f;
  build(&f, "dmg_keys", "none", 6000, 1, 120);
  span sp[4096];
  char seg[2048];
  seg_path(&f, f.seg_bases[0], seg, sizeof seg);
  size_t n = spans_of(seg, sp, 4096);
  cr_assert_geq(n, 3);
  const span *d = &sp[n / 2];
  tu_flip_ok(seg, d->pos + 30, 0x04); /* firstTimestamp: the CRC fails */
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f.db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  cr_assert_eq(
      sqlite3_exec(h, "UPDATE takhin_cat_partition SET key_upto = key_from", NULL, NULL, NULL),
      SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_close(h);
  takhin_store *s = open_ok(f.db, "key catch-up over a damaged batch");
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, TOPIC, 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, f.md.hwm);
  expect e = {.lo = d->base,
              .hi = d->last,
              .zlo = d->base,
              .zhi = d->last,
              .pos = {d->pos},
              .npos = 1,
              .must_corrupt = 1};
  check_gets(s, &f.md, &e, "key catch-up");
  check_seq(s, &f.md, strrchr(seg, '/') + 1, &e, "key catch-up");
  /* The keys after the damage were indexed: a key lookup finds them. */
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = d->last + 1; o < f.md.hwm; o++) {
    if (!f.md.alive[o] || o % 3 == 0) continue; /* keys of their own only */
    char key[32];
    int kl = key_of(1, o, key, sizeof key);
    int rc = takhin_cursor_get_key(c, key, (size_t)kl, &m);
    cr_assert_eq(rc, TAKHIN_OK, "key %s: %s", key, takhin_errmsg());
    cr_assert(rec_ok(&f.md, &m, o), "key %s", key);
  }
  takhin_cursor_close(c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  tu_snap_free(&f.sn);
}

/* Compaction must not launder a damaged baseOffset (which the CRC does not
** cover): rewriting that batch under a new CRC would make its records look
** sound at wrong offsets, or drop them as superseded. It refuses the
** segment instead: the batch still reads as ECORRUPT, every record with a
** key of its own reads as before (shared keys' older records may go). */
Test(damage, compaction_refuses_damaged_base) {
  for (int bit = 0; bit < 64; bit += 9) {
    fixture f;
    char name[32];
    snprintf(name, sizeof name, "dmg_compact_base%d", bit);
    build(&f, name, "none", 6000, 2, 120);
    span sp[4096];
    char seg[2048];
    seg_path(&f, f.seg_bases[0], seg, sizeof seg);
    size_t n = spans_of(seg, sp, 4096);
    const span *d = &sp[n / 2];
    tu_flip_ok(seg, d->pos + 7 - bit / 8, (uint8_t)(1u << (bit % 8)));
    takhin_store *s = open_ok(f.db, name);
    int rc = takhin_compact(s, TOPIC, 0, 1, NULL);
    cr_assert(rc == TAKHIN_OK || rc == TAKHIN_ECORRUPT, "bit %d: compact: %s", bit,
              takhin_errmsg());
    takhin_cursor *c;
    takhin_message m;
    cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
    for (int64_t o = f.md.hwm - 1; o >= 0; o--) {
      rc = takhin_cursor_get(c, o, &m);
      if (o >= d->base && o <= d->last) {
        cr_assert_eq(rc, TAKHIN_ECORRUPT, "bit %d: get %lld in the damaged batch: %s", bit,
                     (long long)o, takhin_errmsg());
        continue;
      }
      if (o % 3 == 0 && rc == TAKHIN_ENOTFOUND) continue; /* a shared key: superseded */
      cr_assert_eq(rc, TAKHIN_OK, "bit %d: get %lld: %s", bit, (long long)o, takhin_errmsg());
      cr_assert(rec_ok(&f.md, &m, o), "bit %d: get %lld: wrong record", bit, (long long)o);
    }
    takhin_cursor_close(c);
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
    tu_snap_free(&f.sn);
  }
}
