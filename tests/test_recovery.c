/*
** test_recovery.c -- what takhin_open does with damaged stores.
**
** The segment files are the truth and the catalog is an index over them, so
** every test here damages one or the other behind the store's back (the store
** is closed) and checks what the next open makes of it:
**
**   a. the segment cut at every byte of its last batch (and of a whole small
**      file, and coarsely across a file with several index entries): the
**      torn batch goes, everything before it stays, new appends continue at
**      the right offset;
**   b. a tail the catalog does not know yet (the crash-before-persist case):
**      complete valid batches are adopted, garbage and partial batches cut;
**   c. bit rot inside the indexed zone: the damaged batch reads as ECORRUPT
**      (also when the reader retries), nothing is truncated, the records
**      after it stay reachable (by seeking past a batch whose payload rotted,
**      from the next index entry on past a damaged header), and records
**      produced afterwards read back;
**   d. hand-edited catalog rows: either a clean error or an intact store
**      (including reads through every index row), never a touched segment
**      file, never a file outside the store folder;
**   e. a segment file deleted from the middle of the log;
**   f. a garbage file with a segment name in the partition folder.
**
** Every record's content is a function of its offset (key "k<offset>", value
** pattern, timestamp), so a read can always be checked for integrity.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "testing.h"
#include "testutil.h"

#define TOPIC "t"
#define TS0 1700000000000LL
#define MAXB 64 /* most records one helper produce call makes */

/* ---- records derived from their offset -------------------------------- */

/* Small values keep the byte sweeps short; the length varies with the offset
** so batches differ in size. */
static size_t vlen_of(int64_t o) { return (size_t)(6 + o % 11); }

static int rec_ok_as(const takhin_message *m, int64_t src, int64_t ts_shift) {
  char key[32];
  int kl = snprintf(key, sizeof key, "k%lld", (long long)src);
  return m->key && m->key_len == (size_t)kl && memcmp(m->key, key, (size_t)kl) == 0 &&
         tu_value_ok(m->value, m->value_len, vlen_of(src), (long)src) &&
         m->timestamp == TS0 + src + ts_shift;
}

/* The record at offset o carries the content made for offset o. */
static int rec_ok(const takhin_message *m, int64_t o) {
  return m->offset == o && rec_ok_as(m, o, 0);
}

/* Produce one batch of n records for offsets first.. and check it got them. */
static void produce_at(takhin_store *s, const char *topic, int64_t first, int n) {
  takhin_record r[MAXB];
  char k[MAXB][32], v[MAXB][32];
  cr_assert(n >= 1 && n <= MAXB);
  for (int j = 0; j < n; j++)
    tu_make_record(&r[j], k[j], sizeof k[j], v[j], vlen_of(first + j), (long)(first + j));
  int64_t got = -1;
  int rc = takhin_produce(s, topic, 0, r, (size_t)n, &got);
  cr_assert_eq(rc, TAKHIN_OK, "produce at %lld: %s", (long long)first, takhin_errmsg());
  cr_assert_eq(got, first, "produce went to offset %lld, want %lld", (long long)got,
               (long long)first);
}

static takhin_partition_info part_info(takhin_store *s, const char *topic) {
  takhin_partition_info pi;
  int rc = takhin_partition_info_get(s, topic, 0, &pi);
  cr_assert_eq(rc, TAKHIN_OK, "partition info: %s", takhin_errmsg());
  return pi;
}

static takhin_recovery_info recovery(takhin_store *s) {
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  return ri;
}

/* Read [from, hwm) sequentially: dense offsets, every record intact, END at
** the high watermark. ctx names the case in failure messages. */
static void check_seq(takhin_store *s, const char *topic, int64_t from, int64_t hwm,
                      const char *ctx) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_seek(c, from, 0, 0), TAKHIN_OK, "%s: seek %lld: %s", ctx,
               (long long)from, takhin_errmsg());
  takhin_message m;
  int64_t o = from;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert(rec_ok(&m, o), "%s: record at offset %lld (want %lld) is not intact", ctx,
              (long long)m.offset, (long long)o);
    o++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s: cursor stopped at %lld with %s: %s", ctx, (long long)o,
               takhin_errstr(rc), takhin_errmsg());
  cr_assert_eq(o, hwm, "%s: read up to %lld, want %lld", ctx, (long long)o, (long long)hwm);
  takhin_cursor_close(c);
}

/* Like check_seq, for a log that goes on after `to`. */
static void check_seq_upto(takhin_store *s, const char *topic, int64_t from, int64_t to,
                           const char *ctx) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, topic, 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_seek(c, from, to - from, 0), TAKHIN_OK, "%s: %s", ctx,
               takhin_errmsg());
  takhin_message m;
  int64_t o = from;
  int rc;
  while (o < to && (rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert(rec_ok(&m, o), "%s: record at offset %lld (want %lld) is not intact", ctx,
              (long long)m.offset, (long long)o);
    o++;
  }
  cr_assert_eq(o, to, "%s: read up to %lld, want %lld: %s", ctx, (long long)o, (long long)to,
               takhin_errmsg());
  takhin_cursor_close(c);
}

/* Offsets [lo, hi) read one by one through cursor_get, highest first: each
** read then goes through the index (a cursor reading forward keeps its
** window and never consults it). */
static void check_get(takhin_store *s, int64_t lo, int64_t hi, const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = hi - 1; o >= lo; o--) {
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, TAKHIN_OK, "%s: get %lld: %s: %s", ctx, (long long)o, takhin_errstr(rc),
                 takhin_errmsg());
    cr_assert(rec_ok(&m, o), "%s: record %lld not intact", ctx, (long long)o);
  }
  takhin_cursor_close(c);
}

/* Every offset of [lo, hi) reads as ECORRUPT: damaged data is never served. */
static void check_corrupt(takhin_store *s, int64_t lo, int64_t hi, const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = hi - 1; o >= lo; o--) {
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, TAKHIN_ECORRUPT, "%s: get %lld gave %s, want ECORRUPT", ctx, (long long)o,
                 takhin_errstr(rc));
  }
  takhin_cursor_close(c);
}

/* Offsets of [lo, hi) may be unreachable (ECORRUPT) but never wrong. */
static void check_intact_or_corrupt(takhin_store *s, int64_t lo, int64_t hi, const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = hi - 1; o >= lo; o--) {
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert(rc == TAKHIN_ECORRUPT || (rc == TAKHIN_OK && rec_ok(&m, o)),
              "%s: get %lld gave %s (offset %lld)", ctx, (long long)o, takhin_errstr(rc),
              (long long)m.offset);
  }
  takhin_cursor_close(c);
}

/* Create topic with cfg and produce nb batches of 1 + b % 3 records;
** returns the high watermark. */
static int64_t fill(takhin_store *s, const char *topic, const char *const *cfg, int nb) {
  int rc = takhin_topic_create(s, topic, 1, cfg);
  cr_assert_eq(rc, TAKHIN_OK, "create %s: %s", topic, takhin_errmsg());
  int64_t o = 0;
  for (int b = 0; b < nb; b++) {
    produce_at(s, topic, o, 1 + b % 3);
    o += 1 + b % 3;
  }
  return o;
}

/* ---- files --------------------------------------------------------------- */

static void spit(const char *path, const void *p, size_t len, const char *mode) {
  FILE *f = fopen(path, mode);
  cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(p, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

static void cut(const char *path, int64_t len) {
  cr_assert_eq(truncate(path, (off_t)len), 0, "truncate %s: %s", path, strerror(errno));
}

/* The batches of a segment file as the test itself reads them (independent
** of the library's parser): position, base offset, record span, size. */
typedef struct span {
  int64_t pos, base, count, total;
} span;

static size_t spans_of(const uint8_t *buf, size_t len, span *out, size_t cap) {
  size_t n = 0;
  for (size_t pos = 0; pos + 61 <= len && n < cap;) {
    int64_t total = (int64_t)(uint32_t)tu_get_be(buf + pos + 8, 4) + 12;
    if ((int64_t)(len - pos) < total) break;
    out[n].pos = (int64_t)pos;
    out[n].base = (int64_t)tu_get_be(buf + pos, 8);
    out[n].count = (int64_t)(uint32_t)tu_get_be(buf + pos + 23, 4) + 1;
    out[n].total = total;
    pos += (size_t)total;
    n++;
  }
  return n;
}

/* Rewrite a batch at b (total bytes) as if it were produced at new_base with
** timestamps ts_shift later, with a valid CRC (which covers bytes 21..end,
** so the timestamp change makes the recomputation necessary). */
static void repatch(uint8_t *b, int64_t total, int64_t new_base, int64_t ts_shift) {
  tu_put_be(b, 8, (uint64_t)new_base);
  tu_put_be(b + 27, 8, tu_get_be(b + 27, 8) + (uint64_t)ts_shift);
  tu_put_be(b + 35, 8, tu_get_be(b + 35, 8) + (uint64_t)ts_shift);
  tu_put_be(b + 17, 4, tk_crc32c(0, b + 21, (size_t)total - 21));
}

/* ---- snapshots of a whole store folder ---------------------------------- */

/* Snapshots of a closed store's folder (testutil.c), so each case of a
** sweep starts from identical bytes without forking cp. */
typedef tu_snap snap;

/* ---- a. truncation at every byte ---------------------------------------- */

/* Build a log of nb batches, then for cut lengths L in [from, size) (step
** bytes apart, plus batch boundaries) restore the pristine store, cut the
** segment to L, reopen, and check recovery kept exactly the complete
** batches below L. */
static void sweep(const char *name, const char *codec, int nb, int last_batch_only, int step) {
  const char *db = tu_store_path(name);
  char dbp[1024], dir[1024], seg[2048];
  snprintf(dbp, sizeof dbp, "%s", db);
  tu_dir_of(dbp, dir, sizeof dir);
  tu_segment_path(seg, sizeof seg, dbp, TOPIC, 0, 0);
  takhin_store *s = tu_open_ok(dbp);
  int64_t hwm = fill(s, TOPIC, (const char *const[]){"compression", codec, NULL}, nb);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);

  size_t size;
  uint8_t *bytes = tu_read_file_ok(seg, &size);
  span sp[4096];
  size_t n = spans_of(bytes, size, sp, 4096);
  cr_assert_eq(n, (size_t)nb, "the test's own parser sees %zu batches", n);
  cr_assert_eq(sp[n - 1].pos + sp[n - 1].total, (int64_t)size);
  cr_assert_eq(sp[n - 1].base + sp[n - 1].count, hwm);
  snap sn;
  tu_snap_take_ok(&sn, dir);

  /* The cut lengths: every step-th byte, plus batch boundaries and their
  ** neighbours (about ten batches' worth of them in a long log). */
  int64_t from = last_batch_only ? sp[n - 1].pos : 0;
  uint8_t *cut_at = calloc(size, 1);
  cr_assert_not_null(cut_at);
  for (int64_t L = from; L < (int64_t)size; L += step) cut_at[L] = 1;
  for (size_t i = 0; i<n; i += n> 10 ? n / 10 : 1)
    for (int64_t L = sp[i].pos - 1; L <= sp[i].pos + 1; L++)
      if (L >= from && L < (int64_t)size) cut_at[L] = 1;
  for (int64_t L = from; L < (int64_t)size; L++) {
    if (!cut_at[L]) continue;
    tu_snap_restore_ok(&sn);
    cut(seg, L);
    /* What must survive: the complete batches that end at or before L. */
    size_t k = 0;
    while (k < n && sp[k].pos + sp[k].total <= L) k++;
    int64_t good_end = k ? sp[k - 1].pos + sp[k - 1].total : 0;
    int64_t want_hwm = k ? sp[k - 1].base + sp[k - 1].count : 0;

    s = tu_open_ok(dbp);
    takhin_recovery_info ri = recovery(s);
    cr_assert_eq(ri.bytes_truncated, L - good_end, "L=%lld: truncated %lld bytes, want %lld",
                 (long long)L, (long long)ri.bytes_truncated, (long long)(L - good_end));
    cr_assert_eq(ri.segments_truncated, L > good_end, "L=%lld", (long long)L);
    cr_assert_eq(tu_file_size(seg), good_end,
                 "L=%lld: file is %lld bytes after recovery, want %lld", (long long)L,
                 (long long)tu_file_size(seg), (long long)good_end);
    takhin_partition_info pi = part_info(s, TOPIC);
    cr_assert_eq(pi.high_watermark, want_hwm, "L=%lld: hwm %lld, want %lld", (long long)L,
                 (long long)pi.high_watermark, (long long)want_hwm);
    cr_assert_eq(pi.size_bytes, good_end, "L=%lld", (long long)L);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "L=%lld", (long long)L);
    check_seq(s, TOPIC, 0, want_hwm, ctx);
    /* The log goes on from the cut: the next batch gets the next offset and
    ** lands right after the last good byte. */
    produce_at(s, TOPIC, want_hwm, 2);
    check_seq(s, TOPIC, 0, want_hwm + 2, ctx);
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
    cr_assert_gt(tu_file_size(seg), good_end);
  }
  tu_snap_free(&sn);
  free(cut_at);
  free(bytes);
}

Test(recovery, cut_last_batch_every_byte) { sweep("rec_cut_last", "none", 20, 1, 1); }

Test(recovery, cut_last_batch_every_byte_zstd) { sweep("rec_cut_last_z", "zstd", 20, 1, 1); }

Test(recovery, cut_small_file_every_byte) { sweep("rec_cut_all", "none", 5, 0, 1); }

/* Every cut inside a batch behaves alike (the last-batch sweeps cover each
** byte of one); across the whole file, every 5th byte and every boundary. */
Test(recovery, cut_small_file_coarse_zstd) { sweep("rec_cut_all_z", "zstd", 5, 0, 5); }

/* ~25 KB: several 4 KiB index stretches, so cuts also land before, on and
** after catalog index rows that must then be dropped. */
Test(recovery, cut_across_index_entries_coarse) { sweep("rec_cut_coarse", "none", 400, 0, 241); }

/* ---- b. a tail the catalog has not seen --------------------------------- */

typedef struct base_store {
  char db[1024], dir[1024], seg[2048];
  int64_t hwm;
  size_t size;
  uint8_t *bytes; /* the segment file after a clean close */
  span sp[4096];
  size_t n;
} base_store;

/* A cleanly closed store with topic TOPIC of nb batches. */
static void base_build(base_store *b, const char *name, const char *codec, int nb) {
  snprintf(b->db, sizeof b->db, "%s", tu_store_path(name));
  tu_dir_of(b->db, b->dir, sizeof b->dir);
  tu_segment_path(b->seg, sizeof b->seg, b->db, TOPIC, 0, 0);
  takhin_store *s = tu_open_ok(b->db);
  b->hwm = fill(s, TOPIC, (const char *const[]){"compression", codec, NULL}, nb);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  b->bytes = tu_read_file_ok(b->seg, &b->size);
  b->n = spans_of(b->bytes, b->size, b->sp, 4096);
  cr_assert_eq(b->n, (size_t)nb);
}

/* The last batch re-addressed to start at the high watermark, valid. */
static uint8_t *next_batch_bytes(const base_store *b, int64_t ts_shift, int64_t *total) {
  const span *l = &b->sp[b->n - 1];
  uint8_t *x = malloc((size_t)l->total);
  memcpy(x, b->bytes + l->pos, (size_t)l->total);
  repatch(x, l->total, b->hwm, ts_shift);
  *total = l->total;
  return x;
}

/* Open after the tail was damaged and check: the original log is intact,
** want_trunc bytes were cut, want_adopted (0 or 1) copies of the last batch
** holding adopted_records records were adopted, and the next produce
** continues right after. Returns the batches_recovered that open reported. */
static int64_t expect_tail(const base_store *b, int64_t want_trunc, int64_t want_adopted,
                           int64_t adopted_records, const char *ctx) {
  takhin_store *s = tu_open_ok(b->db);
  takhin_recovery_info ri = recovery(s), first_ri = ri;
  cr_assert_eq(ri.bytes_truncated, want_trunc, "%s: truncated %lld", ctx,
               (long long)ri.bytes_truncated);
  cr_assert_eq(ri.segments_truncated, want_trunc > 0, "%s", ctx);
  int64_t hwm = b->hwm + adopted_records;
  cr_assert_eq(part_info(s, TOPIC).high_watermark, hwm, "%s", ctx);
  check_seq_upto(s, TOPIC, 0, b->hwm, ctx);
  if (adopted_records) {
    /* The adopted copy of the last batch: its records' source content, at
    ** the new offsets, with the shifted timestamps. */
    takhin_cursor *c;
    takhin_message m;
    cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
    int64_t src = b->sp[b->n - 1].base;
    for (int64_t j = 0; j < adopted_records; j++) {
      int rc = takhin_cursor_get(c, b->hwm + j, &m);
      cr_assert_eq(rc, TAKHIN_OK, "%s: adopted offset %lld: %s", ctx, (long long)(b->hwm + j),
                   takhin_errmsg());
      cr_assert(m.offset == b->hwm + j && rec_ok_as(&m, src + j, 1000), "%s: adopted record %lld",
                ctx, (long long)j);
    }
    takhin_cursor_close(c);
  }
  cr_assert_eq(tu_file_size(b->seg), (int64_t)b->size + (want_adopted ? b->sp[b->n - 1].total : 0),
               "%s", ctx);
  produce_at(s, TOPIC, hwm, 3);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* And a second open finds nothing left to repair. */
  s = tu_open_ok(b->db);
  ri = recovery(s);
  cr_assert_eq(ri.bytes_truncated, 0, "%s: second open truncated again", ctx);
  cr_assert_eq(part_info(s, TOPIC).high_watermark, hwm + 3, "%s", ctx);
  check_seq(s, TOPIC, hwm, hwm + 3, ctx);
  takhin_close(s);
  return first_ri.batches_recovered;
}

/* batches_recovered is documented as the batches found past the indexed
** position: only the ones adopted from the tail. The adoption tests check
** it after everything else, so a wrong count does not hide other findings. */
typedef struct count_check {
  char ctx[64];
  int64_t got, want;
} count_check;

static void count_add(count_check *v, size_t *n, const char *ctx, int64_t got, int64_t want) {
  snprintf(v[*n].ctx, sizeof v[*n].ctx, "%s", ctx);
  v[*n].got = got;
  v[*n].want = want;
  (*n)++;
}

static void counts_ok(const count_check *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(v[i].got, v[i].want, "%s: batches_recovered %lld, want %lld", v[i].ctx,
                 (long long)v[i].got, (long long)v[i].want);
  for (size_t i = 0; i < n; i++) cr_assert_eq(v[i].got, v[i].want);
}

Test(recovery, tail_garbage_is_cut) {
  base_store b;
  base_build(&b, "rec_tail_garbage", "none", 10);
  snap sn;
  tu_snap_take_ok(&sn, b.dir);
  uint8_t junk[4096]; /* the zero fill below needs up to a page */
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 1103515245 + 12345) >> 16);
  size_t lens[] = {1, 11, 12, 37, 60, 61, 62, 300};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    tu_snap_restore_ok(&sn);
    spit(b.seg, junk, lens[i], "ab");
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%zu garbage bytes", lens[i]);
    expect_tail(&b, (int64_t)lens[i], 0, 0, ctx);
  }
  /* Zeros, as a file system leaves after a crash that extended the file
  ** but never wrote the data. */
  tu_snap_restore_ok(&sn);
  memset(junk, 0, sizeof junk);
  spit(b.seg, junk, 4096 - b.size % 4096, "ab");
  expect_tail(&b, (int64_t)(4096 - b.size % 4096), 0, 0, "zero fill");
  tu_snap_free(&sn);
  free(b.bytes);
}

Test(recovery, tail_partial_batch_is_cut) {
  base_store b;
  base_build(&b, "rec_tail_partial", "none", 10);
  snap sn;
  tu_snap_take_ok(&sn, b.dir);
  int64_t total;
  uint8_t *nb = next_batch_bytes(&b, 1000, &total);
  int64_t lens[] = {1, 12, 40, 60, 61, 62, total - 1};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    tu_snap_restore_ok(&sn);
    spit(b.seg, nb, (size_t)lens[i], "ab");
    char ctx[64];
    snprintf(ctx, sizeof ctx, "partial batch of %lld bytes", (long long)lens[i]);
    expect_tail(&b, lens[i], 0, 0, ctx);
  }
  free(nb);
  tu_snap_free(&sn);
  free(b.bytes);
}

Test(recovery, tail_valid_batch_is_adopted) {
  count_check cc[16];
  size_t ncc = 0;
  base_store b;
  base_build(&b, "rec_tail_valid", "none", 10);
  snap sn;
  tu_snap_take_ok(&sn, b.dir);
  int64_t total;
  uint8_t *nb = next_batch_bytes(&b, 1000, &total);
  int64_t cnt = b.sp[b.n - 1].count;
  spit(b.seg, nb, (size_t)total, "ab");
  count_add(cc, &ncc, "one valid batch", expect_tail(&b, 0, 1, cnt, "one valid batch"), 1);

  /* A valid batch followed by half of another: adopt one, cut the rest. */
  tu_snap_restore_ok(&sn);
  spit(b.seg, nb, (size_t)total, "ab");
  spit(b.seg, nb, 30, "ab");
  const char *ctx = "valid batch then a torn one";
  count_add(cc, &ncc, ctx, expect_tail(&b, 30, 1, cnt, ctx), 1);
  free(nb);
  tu_snap_free(&sn);
  free(b.bytes);
  counts_ok(cc, ncc);
}

Test(recovery, tail_valid_batch_is_adopted_zstd) {
  count_check cc[16];
  size_t ncc = 0;
  base_store b;
  base_build(&b, "rec_tail_valid_z", "zstd", 10);
  int64_t total;
  uint8_t *nb = next_batch_bytes(&b, 1000, &total);
  spit(b.seg, nb, (size_t)total, "ab");
  const char *ctx = "one valid zstd batch";
  count_add(cc, &ncc, ctx, expect_tail(&b, 0, 1, b.sp[b.n - 1].count, ctx), 1);
  free(nb);
  free(b.bytes);
  counts_ok(cc, ncc);
}

/* Batches that are well formed but must not be adopted. */
Test(recovery, tail_bad_batches_are_cut) {
  base_store b;
  base_build(&b, "rec_tail_bad", "none", 10);
  snap sn;
  tu_snap_take_ok(&sn, b.dir);
  const span *l = &b.sp[b.n - 1];

  /* A byte-for-byte copy of the last batch: its offsets are already taken. */
  spit(b.seg, b.bytes + l->pos, (size_t)l->total, "ab");
  expect_tail(&b, l->total, 0, 0, "duplicate offsets");

  /* The next batch with a payload byte changed after its CRC was computed. */
  tu_snap_restore_ok(&sn);
  int64_t total;
  uint8_t *nb = next_batch_bytes(&b, 1000, &total);
  nb[total - 1] ^= 0x40;
  spit(b.seg, nb, (size_t)total, "ab");
  expect_tail(&b, total, 0, 0, "CRC mismatch");

  /* The next batch whose records do not decode although the CRC matches:
  ** recordsCount says one record fewer than the batch holds. */
  tu_snap_restore_ok(&sn);
  free(nb);
  nb = next_batch_bytes(&b, 1000, &total);
  tu_put_be(nb + 57, 4, tu_get_be(nb + 57, 4) - 1);
  tu_put_be(nb + 17, 4, tk_crc32c(0, nb + 21, (size_t)total - 21));
  spit(b.seg, nb, (size_t)total, "ab");
  expect_tail(&b, total, 0, 0, "records do not match recordsCount");
  free(nb);
  tu_snap_free(&sn);
  free(b.bytes);
}

/* The realistic crash: batches reached the file but the catalog rows that
** describe them never did (index rows are written in groups, not per
** produce). Restore an old catalog over newer segment bytes. */
Test(recovery, catalog_behind_file) {
  const char *db0 = tu_store_path("rec_cat_behind");
  char db[1024], dir[1024], seg[2048], path[2048];
  snprintf(db, sizeof db, "%s", db0);
  tu_dir_of(db, dir, sizeof dir);
  tu_segment_path(seg, sizeof seg, db, TOPIC, 0, 0);
  takhin_store *s = tu_open_ok(db);
  int64_t hwm0 = fill(s, TOPIC, NULL, 10);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  size_t catlen;
  uint8_t *cat = tu_read_file_ok(db, &catlen);
  s = tu_open_ok(db);
  int64_t o = hwm0;
  for (int b = 0; b < 300; b++) { /* > 4 KiB: new index rows too */
    produce_at(s, TOPIC, o, 1 + b % 5);
    o += 1 + b % 5;
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  int64_t size = tu_file_size(seg);
  spit(db, cat, catlen, "wb");
  snprintf(path, sizeof path, "%s-wal", db);
  unlink(path);
  snprintf(path, sizeof path, "%s-shm", db);
  unlink(path);

  s = tu_open_ok(db);
  takhin_recovery_info ri = recovery(s);
  cr_assert_eq(ri.bytes_truncated, 0);
  cr_assert_eq(part_info(s, TOPIC).high_watermark, o);
  cr_assert_eq(tu_file_size(seg), size);
  check_seq(s, TOPIC, 0, o, "catalog behind");
  check_get(s, 0, o, "catalog behind");
  produce_at(s, TOPIC, o, 2);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  takhin_recovery_info ri2 = recovery(s);
  check_seq(s, TOPIC, 0, o + 2, "catalog behind, reopened");
  check_get(s, 0, o + 2, "catalog behind, reopened");
  takhin_close(s);
  free(cat);
  /* Counts last, after the data checks. */
  cr_assert_eq(ri.batches_recovered, 300, "recovered %lld batches, want the 300 the catalog missed",
               (long long)ri.batches_recovered);
  cr_assert_eq(ri2.batches_recovered, 0,
               "the rebuilt index rows were persisted, yet %lld batches recovered",
               (long long)ri2.batches_recovered);
}

/* The baseline for every count above: a cleanly closed store needs no
** recovery at all. */
Test(recovery, clean_reopen_recovers_nothing) {
  const char *db0 = tu_store_path("rec_clean");
  char db[1024];
  snprintf(db, sizeof db, "%s", db0);
  takhin_store *s = tu_open_ok(db);
  int64_t hwm = fill(s, TOPIC, NULL, 10);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  takhin_recovery_info ri = recovery(s);
  check_seq(s, TOPIC, 0, hwm, "clean reopen");
  takhin_close(s);
  cr_assert_eq(ri.partitions_checked, 1);
  cr_assert_eq(ri.bytes_truncated, 0);
  cr_assert_eq(ri.segments_truncated, 0);
  cr_assert_eq(ri.files_removed, 0);
  cr_assert_eq(ri.batches_recovered, 0,
               "a clean close leaves no batch past the indexed position, "
               "yet %lld were reported recovered",
               (long long)ri.batches_recovered);
}

/* ---- c. bit rot inside the indexed zone --------------------------------- */

/* A sequential reader stops at the damaged batch with ECORRUPT and can
** seek past it to read on to the end. */
static void check_seq_stops_at(takhin_store *s, int64_t bad_lo, int64_t bad_hi, int64_t hwm,
                               const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  int64_t o = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert(rec_ok(&m, o), "%s: record %lld", ctx, (long long)o);
    o++;
  }
  cr_assert_eq(rc, TAKHIN_ECORRUPT, "%s: sequential read ended with %s at %lld", ctx,
               takhin_errstr(rc), (long long)o);
  cr_assert_eq(o, bad_lo, "%s: read %lld records before the damage", ctx, (long long)o);
  if (bad_hi < hwm) {
    cr_assert_eq(takhin_cursor_seek(c, bad_hi, 0, 0), TAKHIN_OK);
    for (o = bad_hi; (rc = takhin_cursor_next(c, &m)) == TAKHIN_OK; o++)
      cr_assert(rec_ok(&m, o), "%s: record %lld after the damage", ctx, (long long)o);
    cr_assert_eq(rc, TAKHIN_END, "%s: after the damage: %s", ctx, takhin_errmsg());
    cr_assert_eq(o, hwm, "%s", ctx);
  }
  takhin_cursor_close(c);
}

/* A consumer that calls cursor_next again after ECORRUPT must get ECORRUPT
** again (cursor.c: "stay on it: a retry fails the same way"), not the
** records after the damage as if the damaged ones had never existed. Only
** an explicit seek moves past them. */
static void check_retry_fails(takhin_store *s, int64_t bad_lo, const char *ctx) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {}
  cr_assert_eq(rc, TAKHIN_ECORRUPT, "%s", ctx);
  for (int retry = 1; retry <= 3; retry++) {
    m.offset = -1;
    rc = takhin_cursor_next(c, &m);
    cr_assert_eq(rc, TAKHIN_ECORRUPT,
                 "%s: retry %d after ECORRUPT at offset %lld gave %s (offset %lld): "
                 "the damaged records were skipped silently",
                 ctx, retry, (long long)bad_lo, takhin_errstr(rc), (long long)m.offset);
  }
  /* The same through cursor_get's seek-then-next. */
  cr_assert_eq(takhin_cursor_get(c, bad_lo, &m), TAKHIN_ECORRUPT, "%s", ctx);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_ECORRUPT, "%s: next after a failed get", ctx);
  takhin_cursor_close(c);
}

/* Flip a payload byte of batch k (the CRC no longer matches). */
static void payload_rot(const char *name, const char *codec, int nb, size_t k) {
  base_store b;
  base_build(&b, name, codec, nb);
  const span *d = &b.sp[k];
  tu_flip_ok(b.seg, d->pos + d->total - 3, 0x10);
  int64_t lo = d->base, hi = d->base + d->count;
  for (int round = 0; round < 2; round++) { /* and a second open changes nothing */
    takhin_store *s = tu_open_ok(b.db);
    takhin_recovery_info ri = recovery(s);
    cr_assert_eq(ri.bytes_truncated, 0, "bit rot in the indexed zone is not a torn tail");
    cr_assert_eq(ri.segments_truncated, 0);
    if (round) cr_assert_gt(tu_file_size(b.seg), (int64_t)b.size, "the new batch is still there");
    int64_t hwm = part_info(s, TOPIC).high_watermark;
    cr_assert_eq(hwm, b.hwm + (round ? 2 : 0));
    check_get(s, 0, lo, "before the rot");
    check_corrupt(s, lo, hi, "the rotten batch");
    check_get(s, hi, hwm, "after the rot");
    check_seq_stops_at(s, lo, hi, hwm, "payload rot");
    if (!round) {
      cr_assert_eq(tu_file_size(b.seg), (int64_t)b.size, "nothing was cut");
      produce_at(s, TOPIC, hwm, 2);
      check_get(s, hwm, hwm + 2, "new records after the rot");
    }
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
  }
  takhin_store *s = tu_open_ok(b.db);
  check_retry_fails(s, lo, "payload rot");
  takhin_close(s);
  free(b.bytes);
}

Test(recovery, payload_rot_middle) { payload_rot("rec_rot_mid", "none", 20, 9); }
Test(recovery, payload_rot_middle_zstd) { payload_rot("rec_rot_mid_z", "zstd", 20, 9); }
Test(recovery, payload_rot_last_batch) { payload_rot("rec_rot_last", "none", 20, 19); }
Test(recovery, payload_rot_first_batch) { payload_rot("rec_rot_first", "none", 20, 0); }

/* Index entries (offset, position) of the topic's first segment, from the
** catalog itself (its runs, as the store loads them). */
static size_t index_rows(const char *db, int64_t *off, int64_t *pos, size_t cap) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  tu_index_row *r;
  size_t nr;
  cr_assert_eq(tu_cat_index_rows(h, -1, -1, 0, &r, &nr), 0, "%s", tu_error());
  sqlite3_close(h);
  size_t n = 0;
  for (; n < nr && n < cap; n++) {
    off[n] = r[n].offset;
    pos[n] = r[n].position;
  }
  free(r);
  return n;
}

enum { HDR_MAGIC, HDR_LEN_HUGE, HDR_LEN_PLUS1, HDR_LEN_MINUS1 };

/* Damage the header of batch k and reopen: no crash, no truncation, the
** damaged batch reads as ECORRUPT, the data before it is intact, the data
** after it is intact or unreachable (never wrong) up to the next index
** entry and intact from there, and the log goes on at the same offset. */
static void header_rot(const char *name, int nb, int which, int k_stretch) {
  base_store b;
  base_build(&b, name, "none", nb);
  int64_t ioff[256], ipos[256];
  size_t ni = index_rows(b.db, ioff, ipos, 256);
  cr_assert_geq(ni, 1);
  /* Pick the batch: in the middle of stretch k_stretch (-1: the last). */
  size_t st = k_stretch < 0 ? ni - 1 : (size_t)k_stretch;
  cr_assert_lt(st, ni);
  int64_t st_lo = ipos[st], st_hi = st + 1 < ni ? ipos[st + 1] : (int64_t)b.size;
  size_t k = 0;
  while (b.sp[k].pos < st_lo) k++;
  size_t k_end = k;
  while (k_end < b.n && b.sp[k_end].pos < st_hi) k_end++;
  k = (k + k_end) / 2;
  cr_assert(k > 0 && k + 1 < b.n, "a middle batch");
  const span *d = &b.sp[k];
  int fd = open(b.seg, O_RDWR);
  cr_assert_geq(fd, 0);
  uint8_t h[12];
  cr_assert_eq(pread(fd, h, 12, d->pos), 12);
  uint32_t blen = (uint32_t)tu_get_be(h + 8, 4);
  if (which == HDR_MAGIC) {
    uint8_t m = 0x7b; /* magic is byte 16 */
    cr_assert_eq(pwrite(fd, &m, 1, d->pos + 16), 1);
  } else {
    uint32_t nl = which == HDR_LEN_HUGE    ? blen | 0x7f000000u
                  : which == HDR_LEN_PLUS1 ? blen + 1
                                           : blen - 1;
    tu_put_be(h + 8, 4, nl);
    cr_assert_eq(pwrite(fd, h + 8, 4, d->pos + 8), 4);
  }
  close(fd);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "header damage %d in batch %zu (stretch %zu of %zu)", which, k, st, ni);
  /* The first offset the index can reach again after the damage. */
  int64_t reach = st + 1 < ni ? ioff[st + 1] : b.hwm;

  int64_t hwm = b.hwm;
  for (int round = 0; round < 2; round++) {
    takhin_store *s = tu_open_ok(b.db);
    takhin_recovery_info ri = recovery(s);
    cr_assert_eq(ri.bytes_truncated, 0, "%s: acknowledged data after the damage was cut", ctx);
    cr_assert_eq(part_info(s, TOPIC).high_watermark, hwm, "%s: round %d", ctx, round);
    check_get(s, 0, d->base, ctx);
    check_corrupt(s, d->base, d->base + d->count, ctx);
    check_intact_or_corrupt(s, d->base + d->count, reach, ctx);
    check_get(s, reach, b.hwm, ctx);
    if (!round) {
      cr_assert_eq(tu_file_size(b.seg), (int64_t)b.size, "%s: nothing was cut", ctx);
      /* produce acknowledges these: they must read back, damage or not. */
      produce_at(s, TOPIC, hwm, 2);
      hwm += 2;
    }
    check_get(s, b.hwm, hwm, "records produced after the damage");
    cr_assert_eq(takhin_close(s), TAKHIN_OK);
  }
  takhin_store *s = tu_open_ok(b.db);
  check_retry_fails(s, d->base, ctx);
  takhin_close(s);
  free(b.bytes);
}

/* 20 batches: one index stretch, so recovery walks right into the damage. */
Test(recovery, header_rot_magic) { header_rot("rec_hdr_magic", 20, HDR_MAGIC, 0); }
Test(recovery, header_rot_length_huge) { header_rot("rec_hdr_huge", 20, HDR_LEN_HUGE, 0); }
Test(recovery, header_rot_length_plus1) { header_rot("rec_hdr_plus1", 20, HDR_LEN_PLUS1, 0); }
Test(recovery, header_rot_length_minus1) { header_rot("rec_hdr_minus1", 20, HDR_LEN_MINUS1, 0); }
/* 400 batches (several stretches): damage in an early stretch, which
** recovery does not walk, and in the last one, which it does. */
Test(recovery, header_rot_early_stretch) { header_rot("rec_hdr_early", 400, HDR_MAGIC, 1); }
Test(recovery, header_rot_early_stretch_length) {
  header_rot("rec_hdr_early_len", 400, HDR_LEN_MINUS1, 1);
}
Test(recovery, header_rot_last_stretch) { header_rot("rec_hdr_last", 400, HDR_MAGIC, -1); }

/* ---- d. hand-edited catalog rows ---------------------------------------- */

/* A closed store with two topics: TOPIC (multi-stretch index) and "victim"
** (a few batches), and the sizes of their segment files. */
typedef struct cat_fx {
  char db[1024], dir[1024], seg_t[2048], seg_v[2048];
  int64_t hwm_t, hwm_v, size_t_, size_v;
} cat_fx;

static void fx_build(cat_fx *f, const char *name) {
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  tu_dir_of(f->db, f->dir, sizeof f->dir);
  tu_segment_path(f->seg_t, sizeof f->seg_t, f->db, TOPIC, 0, 0);
  tu_segment_path(f->seg_v, sizeof f->seg_v, f->db, "victim", 0, 0);
  takhin_store *s = tu_open_ok(f->db);
  f->hwm_t = fill(s, TOPIC, NULL, 300);
  f->hwm_v = fill(s, "victim", NULL, 5);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  f->size_t_ = tu_file_size(f->seg_t);
  f->size_v = tu_file_size(f->seg_v);
}

static void fx_sql(const cat_fx *f, const char *sql) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
  cr_assert_eq(rc, SQLITE_OK, "tamper \"%s\": %s", sql, msg ? msg : "");
  cr_assert_gt(sqlite3_changes(h), 0, "tamper \"%s\" changed no row", sql);
  sqlite3_close(h);
}

/* Segment files are untouched by whatever the open did. */
static void fx_files_same(const cat_fx *f, const char *ctx) {
  cr_assert_eq(tu_file_size(f->seg_t), f->size_t_, "%s: %s changed size from %lld to %lld bytes",
               ctx, f->seg_t, (long long)f->size_t_, (long long)tu_file_size(f->seg_t));
  cr_assert_eq(tu_file_size(f->seg_v), f->size_v, "%s: %s changed size from %lld to %lld bytes",
               ctx, f->seg_v, (long long)f->size_v, (long long)tu_file_size(f->seg_v));
}

/* Open must succeed and serve every record of both topics, randomly
** accessed and sequentially, and accept new records. */
static void fx_expect_intact(const cat_fx *f, const char *ctx) {
  takhin_store *s = NULL;
  int rc = takhin_open(f->db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_OK, "%s: open: %s: %s", ctx, takhin_errstr(rc), takhin_errmsg());
  fx_files_same(f, ctx);
  cr_assert_eq(recovery(s).bytes_truncated, 0, "%s", ctx);
  cr_assert_eq(part_info(s, TOPIC).high_watermark, f->hwm_t, "%s", ctx);
  cr_assert_eq(part_info(s, "victim").high_watermark, f->hwm_v, "%s", ctx);
  check_seq(s, TOPIC, 0, f->hwm_t, ctx);
  check_seq(s, "victim", 0, f->hwm_v, ctx);
  check_get(s, 0, f->hwm_t, ctx);
  produce_at(s, TOPIC, f->hwm_t, 2);
  check_get(s, f->hwm_t, f->hwm_t + 2, ctx);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* The repaired catalog holds up on the next open as well. */
  s = tu_open_ok(f->db);
  check_get(s, 0, f->hwm_t + 2, ctx);
  takhin_close(s);
}

/* Open must fail with rc and leave every file alone. */
static void fx_expect_error(const cat_fx *f, int want, const char *ctx) {
  takhin_store *s = NULL;
  int rc = takhin_open(f->db, NULL, &s);
  cr_assert_eq(rc, want, "%s: open gave %s (%s), want %s", ctx, takhin_errstr(rc), takhin_errmsg(),
               takhin_errstr(want));
  cr_assert_null(s);
  fx_files_same(f, ctx);
}

#define SEG_T "UPDATE takhin_cat_segment SET "
#define WHERE_T " WHERE topic_id = (SELECT topic_id FROM takhin_cat_topic WHERE name = 't')"

Test(recovery_catalog, segment_size_beyond_file) {
  cat_fx f;
  fx_build(&f, "cat_size_big");
  fx_sql(&f, SEG_T "size_bytes = size_bytes + 1000" WHERE_T);
  fx_expect_intact(&f, "size_bytes beyond the file");
}

Test(recovery_catalog, segment_size_negative) {
  cat_fx f;
  fx_build(&f, "cat_size_neg");
  fx_sql(&f, SEG_T "size_bytes = -5" WHERE_T);
  fx_expect_intact(&f, "negative size_bytes");
}

Test(recovery_catalog, segment_size_zero) {
  cat_fx f;
  fx_build(&f, "cat_size_zero");
  fx_sql(&f, SEG_T "size_bytes = 0, next_offset = 0" WHERE_T);
  fx_expect_intact(&f, "size_bytes 0");
}

/* A size that is not a batch boundary: the catalog is wrong, the file is
** fine, and the file wins. */
Test(recovery_catalog, segment_size_mid_batch) {
  cat_fx f;
  fx_build(&f, "cat_size_mid");
  fx_sql(&f, SEG_T "size_bytes = size_bytes - 1" WHERE_T);
  fx_expect_intact(&f, "size_bytes one byte short of the end");
}

Test(recovery_catalog, segment_size_mid_batch_early) {
  cat_fx f;
  fx_build(&f, "cat_size_mid_early");
  fx_sql(&f, SEG_T "size_bytes = 1000" WHERE_T);
  fx_expect_intact(&f, "size_bytes 1000 (inside a batch)");
}

Test(recovery_catalog, segment_next_offset_nonsense) {
  cat_fx f;
  fx_build(&f, "cat_next");
  const char *cases[] = {SEG_T "next_offset = 999999999" WHERE_T, SEG_T "next_offset = -7" WHERE_T,
                         SEG_T "next_offset = 3" WHERE_T,
                         SEG_T "max_timestamp = 9000000000000000000, sealed = 1" WHERE_T};
  snap sn;
  tu_snap_take_ok(&sn, f.dir);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tu_snap_restore_ok(&sn);
    fx_sql(&f, cases[i]);
    fx_expect_intact(&f, cases[i]);
  }
  tu_snap_free(&sn);
}

/* A row for a segment whose file does not exist, beyond the end. */
Test(recovery_catalog, segment_row_without_file) {
  cat_fx f;
  fx_build(&f, "cat_ghost_row");
  fx_sql(
      &f,
      "INSERT INTO takhin_cat_segment(topic_id, partition, base_offset, next_offset, size_bytes, "
      "max_timestamp, sealed, created_ms) SELECT topic_id, partition, 5000000, 5000100, 4000, -1, 0, 0 "
      "FROM takhin_cat_segment" WHERE_T);
  fx_expect_intact(&f, "row without a file");
}

/* ---- hand-edited index entries ----
** The index is packed: a row per run of entries, 24 bytes each in its blob
** (offset, position, max_timestamp, little-endian int64: store/index_run.h).
** An entry is damaged where the store reads it: its 8 bytes in the blob of
** the run it is loaded from, written back. */

enum { IDX_OFFSET = 0, IDX_POSITION = 8 }; /* a field's byte within an entry */

static int64_t get_le64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
  return (int64_t)u;
}

static void put_le64(uint8_t *p, int64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

/* Every index entry of both topics, as the store loads them. */
static tu_index_row *fx_idx(const cat_fx *f, size_t *n) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  tu_index_row *r;
  cr_assert_eq(tu_cat_index_rows(h, -1, -1, -1, &r, n), 0, "%s", tu_error());
  sqlite3_close(h);
  return r;
}

/* Set the field (IDX_OFFSET, IDX_POSITION) of index entry e to v: in the
** run it is loaded from, the last of its segment starting at or before
** it (a later run cuts an earlier one at its first offset). The run's
** row columns follow when e is its first entry, as if a store had
** written the entry so. The store then loads the entry with v. */
static void fx_idx_set(const cat_fx *f, const tu_index_row *e, int field, int64_t v) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h,
                                  "SELECT rowid, first_offset, entries FROM takhin_cat_index_run "
                                  "WHERE topic_id = ?1 AND partition = ?2 AND segment_base = ?3 "
                                  "AND first_offset <= ?4 ORDER BY first_offset DESC LIMIT 1",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_bind_int64(st, 1, e->topic_id);
  sqlite3_bind_int(st, 2, e->partition);
  sqlite3_bind_int64(st, 3, e->segment_base);
  sqlite3_bind_int64(st, 4, e->offset);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "no run holds offset %lld", (long long)e->offset);
  int64_t rowid = sqlite3_column_int64(st, 0);
  size_t len = (size_t)sqlite3_column_bytes(st, 2);
  uint8_t *blob = malloc(len);
  cr_assert_not_null(blob);
  memcpy(blob, sqlite3_column_blob(st, 2), len);
  sqlite3_finalize(st);
  size_t k = 0;
  while (k * 24 + 24 <= len && get_le64(blob + k * 24) != e->offset) k++;
  cr_assert_leq(k * 24 + 24, len, "offset %lld is not in its run", (long long)e->offset);
  put_le64(blob + k * 24 + field, v);
  const char *q = k > 0 ? "UPDATE takhin_cat_index_run SET entries = ?1 WHERE rowid = ?2"
                  : field == IDX_OFFSET
                      ? "UPDATE takhin_cat_index_run SET entries = ?1, first_offset = ?3 "
                        "WHERE rowid = ?2"
                      : "UPDATE takhin_cat_index_run SET entries = ?1, first_position = ?3 "
                        "WHERE rowid = ?2";
  cr_assert_eq(sqlite3_prepare_v2(h, q, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
  sqlite3_bind_blob(st, 1, blob, (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, rowid);
  if (k == 0) sqlite3_bind_int64(st, 3, v);
  cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(h));
  cr_assert_eq(sqlite3_changes(h), 1);
  sqlite3_finalize(st);
  sqlite3_close(h);
  free(blob);
  /* The damage is in the catalog. Whether the load takes it (an offset
  ** or position that still rises) or refuses the run (index_run.c: one
  ** that does not) is the store's; the outcome is the test's. */
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, "SELECT entries FROM takhin_cat_index_run WHERE rowid = ?1",
                                  -1, &st, NULL),
               SQLITE_OK);
  sqlite3_bind_int64(st, 1, rowid);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(get_le64((const uint8_t *)sqlite3_column_blob(st, 0) + k * 24 + field), v,
               "the damage did not land");
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* The smallest offset of an entry at a position > 0, over both topics. */
static int64_t fx_first_inner(const tu_index_row *r, size_t n) {
  int64_t lo = INT64_MAX;
  for (size_t i = 0; i < n; i++)
    if (r[i].position > 0 && r[i].offset < lo) lo = r[i].offset;
  cr_assert_neq(lo, INT64_MAX, "no index entry past a segment's start");
  return lo;
}

/* Add delta to the position (or offset) of every entry at a position > 0
** whose offset is the smallest such: an entry inside the log, not the
** segment's first. */
static void fx_idx_shift_first_inner(const cat_fx *f, int field, int64_t delta) {
  size_t n;
  tu_index_row *r = fx_idx(f, &n);
  int64_t lo = fx_first_inner(r, n);
  int done = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i].position > 0 && r[i].offset == lo) {
      fx_idx_set(f, &r[i], field, (field == IDX_OFFSET ? r[i].offset : r[i].position) + delta);
      done++;
    }
  cr_assert_gt(done, 0);
  free(r);
}

Test(recovery_catalog, index_position_past_end) {
  cat_fx f;
  fx_build(&f, "cat_idx_past");
  fx_idx_shift_first_inner(&f, IDX_POSITION, 1000000);
  fx_expect_intact(&f, "index position past the end");
}

Test(recovery_catalog, index_position_negative) {
  cat_fx f;
  fx_build(&f, "cat_idx_neg");
  size_t n;
  tu_index_row *r = fx_idx(&f, &n);
  int done = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i].position > 0) fx_idx_set(&f, &r[i], IDX_POSITION, -100), done++;
  cr_assert_gt(done, 1, "several entries past a segment's start");
  free(r);
  fx_expect_intact(&f, "negative index positions");
}

/* An index entry that points into the middle of a batch, in an early
** stretch (recovery does not re-walk it) ... */
Test(recovery_catalog, index_position_mid_batch) {
  cat_fx f;
  fx_build(&f, "cat_idx_mid");
  fx_idx_shift_first_inner(&f, IDX_POSITION, 7);
  fx_expect_intact(&f, "index position inside a batch (early stretch)");
}

/* ... and in the last stretch, where recovery starts walking. */
Test(recovery_catalog, index_position_mid_batch_last) {
  cat_fx f;
  fx_build(&f, "cat_idx_mid_last");
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f.db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(h, "SELECT topic_id FROM takhin_cat_topic WHERE name = 't'", -1,
                                  &st, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t t = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  tu_index_row *r;
  size_t n;
  cr_assert_eq(tu_cat_index_rows(h, t, 0, 0, &r, &n), 0, "%s", tu_error());
  sqlite3_close(h);
  cr_assert_gt(n, 1, "several stretches");
  fx_idx_set(&f, &r[n - 1], IDX_POSITION, r[n - 1].position + 7);
  free(r);
  fx_expect_intact(&f, "index position inside a batch (last stretch)");
}

/* An index entry naming the wrong offset for its position. */
Test(recovery_catalog, index_offset_wrong) {
  cat_fx f;
  fx_build(&f, "cat_idx_off");
  fx_idx_shift_first_inner(&f, IDX_OFFSET, -3);
  fx_expect_intact(&f, "index offset does not match its position");
}

Test(recovery_catalog, index_rows_deleted) {
  cat_fx f;
  fx_build(&f, "cat_idx_gone");
  fx_sql(&f, "DELETE FROM takhin_cat_index_run");
  fx_expect_intact(&f, "no index rows");
}

/* fx_build's store with TOPIC's index in several runs: a flush after each
** of `rounds` rounds of 300 batches writes the entries since the last one
** (and the newest before them again) as a run of their own. */
static void fx_build_runs(cat_fx *f, const char *name, int rounds) {
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  tu_dir_of(f->db, f->dir, sizeof f->dir);
  tu_segment_path(f->seg_t, sizeof f->seg_t, f->db, TOPIC, 0, 0);
  tu_segment_path(f->seg_v, sizeof f->seg_v, f->db, "victim", 0, 0);
  takhin_store *s = tu_open_ok(f->db);
  cr_assert_eq(takhin_topic_create(s, TOPIC, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t o = 0;
  for (int r = 0; r < rounds; r++) {
    for (int b = 0; b < 300; b++) {
      produce_at(s, TOPIC, o, 1 + b % 3);
      o += 1 + b % 3;
    }
    cr_assert_eq(takhin_flush(s, 0), TAKHIN_OK, "%s", takhin_errmsg());
  }
  f->hwm_t = o;
  f->hwm_v = fill(s, "victim", NULL, 5);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  f->size_t_ = tu_file_size(f->seg_t);
  f->size_v = tu_file_size(f->seg_v);
}

/* Index runs of the catalog, and how many of them the store would take for
** damaged (tk_index_run_merge: empty, a length not a multiple of 24, a
** first entry of another offset than the row's first_offset). */
static int64_t fx_runs(const cat_fx *f, int64_t *damaged) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(h, "SELECT first_offset, entries FROM takhin_cat_index_run", -1,
                                  &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(h));
  int64_t n = 0;
  *damaged = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    n++;
    int len = sqlite3_column_bytes(st, 1);
    const uint8_t *b = sqlite3_column_blob(st, 1);
    *damaged += len <= 0 || len % 24 || get_le64(b) != sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* A damaged index run (hand-edited, or rotted in the catalog file): the
** store keeps the entries before it, walks the file for the rest, serves
** every record, and writes the index again so that no damaged run is left
** and the entries are the ones the store had written. */
Test(recovery_catalog, index_run_damaged) {
  cat_fx f;
  fx_build_runs(&f, "cat_idx_run", 6);
  int64_t damaged, runs = fx_runs(&f, &damaged);
  cr_assert_geq(runs, 6, "the flushes wrote a run each");
  cr_assert_eq(damaged, 0);
  snap sn;
  tu_snap_take_ok(&sn, f.dir);
  /* the entries to come back: those of the same steps on the undamaged
  ** store (fx_expect_intact appends, which moves the newest entry's
  ** max_timestamp) */
  fx_expect_intact(&f, "undamaged runs");
  size_t n0;
  tu_index_row *r0 = fx_idx(&f, &n0);
#define RUN_T "UPDATE takhin_cat_index_run SET "
#define NTH_RUN(k)                                                                                 \
  " WHERE rowid = (SELECT rowid FROM takhin_cat_index_run WHERE topic_id = (SELECT topic_id FROM " \
  "takhin_cat_topic WHERE name = 't') ORDER BY first_offset LIMIT 1 OFFSET " #k ")"
#define LAST_RUN                                                                                   \
  " WHERE rowid = (SELECT rowid FROM takhin_cat_index_run WHERE topic_id = (SELECT topic_id FROM " \
  "takhin_cat_topic WHERE name = 't') ORDER BY first_offset DESC LIMIT 1)"
  const char *cases[] = {
      RUN_T "entries = substr(entries, 1, length(entries) - 5)" NTH_RUN(2),
      RUN_T "first_offset = first_offset + 1" NTH_RUN(2),
      RUN_T "entries = x''" NTH_RUN(2),
      RUN_T "entries = substr(entries, 1, 7)" LAST_RUN,
      RUN_T "first_offset = first_offset + 1" NTH_RUN(0),
      RUN_T "entries = substr(entries, 1, length(entries) - 5)",
  };
#undef RUN_T
#undef NTH_RUN
#undef LAST_RUN
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tu_snap_restore_ok(&sn);
    fx_sql(&f, cases[i]);
    fx_runs(&f, &damaged);
    cr_assert_gt(damaged, 0, "%s", cases[i]);
    fx_expect_intact(&f, cases[i]);
    fx_runs(&f, &damaged);
    cr_assert_eq(damaged, 0, "%s: %lld damaged runs left", cases[i], (long long)damaged);
    size_t n1;
    tu_index_row *r1 = fx_idx(&f, &n1);
    cr_assert_eq(n1, n0, "%s: %zu entries, %zu before", cases[i], n1, n0);
    for (size_t k = 0; k < n0; k++)
      cr_assert(r1[k].topic_id == r0[k].topic_id && r1[k].segment_base == r0[k].segment_base &&
                    r1[k].offset == r0[k].offset && r1[k].position == r0[k].position &&
                    r1[k].max_ts == r0[k].max_ts,
                "%s: entry %zu is offset %lld @%lld ts %lld, was %lld @%lld ts %lld", cases[i], k,
                (long long)r1[k].offset, (long long)r1[k].position, (long long)r1[k].max_ts,
                (long long)r0[k].offset, (long long)r0[k].position, (long long)r0[k].max_ts);
    free(r1);
  }
  tu_snap_free(&sn);
  free(r0);
}

Test(recovery_catalog, format_version_unknown) {
  cat_fx f;
  fx_build(&f, "cat_fmt99");
  fx_sql(&f, "UPDATE takhin_cat_meta SET value = 99 WHERE key = 'format_version'");
  fx_expect_error(&f, TAKHIN_EFORMAT, "format_version 99");
  const char *msg = takhin_errmsg();
  cr_assert(strstr(msg, "99"), "the message names the version found: %s", msg);
  cr_assert(strstr(msg, "release that wrote it"), "the message says what to do: %s", msg);
  /* Read-only handles refuse it too. */
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_EFORMAT);
  cr_assert_null(s);
  fx_files_same(&f, "format_version 99, read-only");
}

Test(recovery_catalog, format_version_not_integer) {
  cat_fx f;
  fx_build(&f, "cat_fmt_text");
  fx_sql(&f, "UPDATE takhin_cat_meta SET value = 'one' WHERE key = 'format_version'");
  fx_expect_error(&f, TAKHIN_EFORMAT, "format_version 'one'");
}

/* The format_version row deleted: a read-only handle cannot tell which
** format it looks at and refuses with advice; a writer runs the schema
** script, which stamps the version as on a new catalog, and the store's
** data (all in format 1) stays intact. */
Test(recovery_catalog, meta_row_deleted) {
  cat_fx f;
  fx_build(&f, "cat_meta_gone");
  fx_sql(&f, "DELETE FROM takhin_cat_meta WHERE key = 'format_version'");
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_EFORMAT, "%s", takhin_errmsg());
  cr_assert(strstr(takhin_errmsg(), "restore it from a backup"), "%s", takhin_errmsg());
  fx_files_same(&f, "meta row deleted, read-only");
  fx_expect_intact(&f, "meta row deleted, writer");
}

/* A topic renamed so that its folder would lie outside the store. */
static void path_escape(const char *name, const char *evil, const char *outside_rel) {
  cat_fx f;
  fx_build(&f, name);
  char outside[2048], sql[512];
  snprintf(outside, sizeof outside, "%s/%s", f.dir, outside_rel);
  cr_assert(!tu_path_exists(outside), "%s exists before the test", outside);
  snprintf(sql, sizeof sql, "UPDATE takhin_cat_topic SET name = '%s' WHERE name = 'victim'", evil);
  fx_sql(&f, sql);
  fx_expect_error(&f, TAKHIN_ECORRUPT, evil);
  cr_assert(!tu_path_exists(outside), "the store created %s outside its folder", outside);
  /* Read-only handles refuse it the same way. */
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_ECORRUPT);
  cr_assert(!tu_path_exists(outside), "the store created %s outside its folder", outside);
  fx_files_same(&f, evil);
}

/* "<dir>/store.db-takhin/../x-0" is "<dir>/x-0". */
Test(recovery_catalog, topic_name_dotdot) { path_escape("cat_name_dotdot", "../x", "x-0"); }
/* "<dir>/store.db-takhin/../../etc-0" is the parent of the test folder. */
Test(recovery_catalog, topic_name_etc) { path_escape("cat_name_etc", "../../etc", "../etc-0"); }
Test(recovery_catalog, topic_name_slash) {
  path_escape("cat_name_slash", "a/b", "store.db-takhin/a");
}
Test(recovery_catalog, topic_name_dot) {
  path_escape("cat_name_dot", "..", "store.db-takhin/..-0");
}

Test(recovery_catalog, topic_partitions_zero) {
  cat_fx f;
  fx_build(&f, "cat_parts0");
  /* The schema's CHECK refuses this edit; a hand editor can switch it off. */
  fx_sql(&f, "PRAGMA ignore_check_constraints = ON; UPDATE takhin_cat_topic SET partitions = 0 "
             "WHERE name = 'victim'");
  /* the partition folder's topic.meta says 1: the files win (reconcile.c) */
  fx_expect_intact(&f, "partitions = 0");
}

Test(recovery_catalog, topic_partitions_huge) {
  cat_fx f;
  fx_build(&f, "cat_parts_huge");
  fx_sql(&f, "UPDATE takhin_cat_topic SET partitions = 2000000000 WHERE name = 'victim'");
  fx_expect_intact(&f, "partitions = 2e9"); /* repaired from topic.meta */
}

Test(recovery_catalog, topic_config_bad) {
  cat_fx f;
  fx_build(&f, "cat_cfg");
  snap sn;
  tu_snap_take_ok(&sn, f.dir);
  const char *cases[] = {"UPDATE takhin_cat_topic SET compression = 'lz4' WHERE name = 'victim'",
                         "UPDATE takhin_cat_topic SET segment_bytes = 0 WHERE name = 'victim'",
                         "UPDATE takhin_cat_topic SET cleanup_policy = '' WHERE name = 'victim'"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tu_snap_restore_ok(&sn);
    fx_sql(&f, cases[i]);
    fx_expect_intact(&f, cases[i]); /* the config is repaired from topic.meta */
  }
  tu_snap_free(&sn);
}

/* ---- e. a segment file deleted behind the store's back ----------------- */

static void deleted_segment(const char *name, int which_first) {
  const char *db0 = tu_store_path(name);
  char db[1024];
  snprintf(db, sizeof db, "%s", db0);
  takhin_store *s = tu_open_ok(db);
  int64_t hwm = fill(s, TOPIC, (const char *const[]){"segment_bytes", "2000", NULL}, 120);
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, TOPIC, 0, &segs, &n), TAKHIN_OK);
  cr_assert_geq(n, 5, "%zu segments", n);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  size_t gone = which_first ? 0 : n / 2;
  int64_t glo = segs[gone].base_offset, ghi = segs[gone].next_offset;
  char path[2048];
  tu_segment_path(path, sizeof path, db, TOPIC, 0, glo);
  cr_assert_eq(unlink(path), 0);

  s = tu_open_ok(db);
  takhin_partition_info pi = part_info(s, TOPIC);
  cr_assert_eq(pi.high_watermark, hwm, "the high watermark does not move back");
  cr_assert_eq(pi.segments, (int64_t)n - 1);
  cr_assert_eq(pi.log_start_offset, which_first ? ghi : 0);
  /* Every record of every remaining segment reads back intact. */
  for (size_t i = 0; i < n; i++)
    if (i != gone) check_get(s, segs[i].base_offset, segs[i].next_offset, "remaining segment");
  /* The lost offsets are out of range (below the log start) or read as
  ** removed: never another record in their place. */
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = glo; o < ghi; o++) {
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, which_first ? TAKHIN_ERANGE : TAKHIN_ENOTFOUND,
                 "get %lld of the lost segment: %s", (long long)o, takhin_errstr(rc));
  }
  /* A sequential reader steps over the hole. */
  cr_assert_eq(takhin_cursor_seek(c, pi.log_start_offset, 0, 0), TAKHIN_OK);
  int64_t o = pi.log_start_offset;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    if (o == glo && !which_first) o = ghi;
    cr_assert(rec_ok(&m, o), "sequential record %lld (want %lld)", (long long)m.offset,
              (long long)o);
    o++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(o, hwm);
  takhin_cursor_close(c);
  produce_at(s, TOPIC, hwm, 2);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  check_get(s, hwm, hwm + 2, "after reopening");
  takhin_close(s);
  takhin_free(segs);
}

Test(recovery, segment_file_deleted_middle) { deleted_segment("rec_seg_gone_mid", 0); }
Test(recovery, segment_file_deleted_first) { deleted_segment("rec_seg_gone_first", 1); }

/* Issue 11: the active segment deleted by hand. Recovery says so
** (segments_missing, offsets_lost, message), the high watermark does not
** move back, and the lost offsets are never given to new records: the log
** continues after the catalog's last known offset, also after a reopen. */
Test(recovery, segment_file_deleted_active) {
  const char *db0 = tu_store_path("rec_seg_gone_active");
  char db[1024];
  snprintf(db, sizeof db, "%s", db0);
  takhin_store *s = tu_open_ok(db);
  int64_t hwm = fill(s, TOPIC, (const char *const[]){"segment_bytes", "2000", NULL}, 120);
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, TOPIC, 0, &segs, &n), TAKHIN_OK);
  cr_assert_geq(n, 3, "%zu segments", n);
  int64_t glo = segs[n - 1].base_offset, ghi = segs[n - 1].next_offset;
  cr_assert_eq(ghi, hwm);
  cr_assert_gt(ghi, glo, "the active segment holds records");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  char path[2048];
  tu_segment_path(path, sizeof path, db, TOPIC, 0, glo);
  cr_assert_eq(unlink(path), 0);

  /* a read-only open reports it too, and changes nothing */
  takhin_options ro;
  takhin_options_init(&ro);
  ro.read_only = 1;
  cr_assert_eq(takhin_open(db, &ro, &s), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_recovery_info ri = recovery(s);
  cr_assert_eq(ri.segments_missing, 1);
  cr_assert_eq(ri.offsets_lost, ghi - glo);
  takhin_close(s);

  s = tu_open_ok(db);
  ri = recovery(s);
  cr_assert_eq(ri.segments_missing, 1, "recovery reports the missing segment");
  cr_assert_eq(ri.offsets_lost, ghi - glo, "and the offsets it held");
  char want[128];
  snprintf(want, sizeof want, "%s-0: segment %020lld.log is missing", TOPIC, (long long)glo);
  cr_assert(strstr(ri.message, want), "message \"%s\" lacks \"%s\"", ri.message, want);
  takhin_partition_info pi = part_info(s, TOPIC);
  cr_assert_eq(pi.high_watermark, hwm, "the high watermark does not move back");
  for (size_t i = 0; i + 1 < n; i++)
    check_get(s, segs[i].base_offset, segs[i].next_offset, "sealed segment");
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  for (int64_t o = glo; o < ghi; o++)
    cr_assert_eq(takhin_cursor_get(c, o, &m), TAKHIN_ENOTFOUND, "lost offset %lld", (long long)o);
  takhin_cursor_close(c);
  check_seq_upto(s, TOPIC, 0, glo, "before the lost segment");
  produce_at(s, TOPIC, hwm, 2); /* at the old high watermark, not at glo */
  cr_assert_eq(takhin_close(s), TAKHIN_OK);

  s = tu_open_ok(db);
  ri = recovery(s);
  cr_assert_eq(ri.segments_missing, 0, "reported once: the catalog now knows");
  cr_assert_eq(part_info(s, TOPIC).high_watermark, hwm + 2);
  check_get(s, hwm, hwm + 2, "after reopening");
  /* a sequential reader steps over the hole */
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  int64_t o = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    if (o == glo) o = ghi;
    cr_assert(rec_ok(&m, o), "sequential record %lld (want %lld)", (long long)m.offset,
              (long long)o);
    o++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(o, hwm + 2);
  takhin_cursor_close(c);
  takhin_close(s);
  takhin_free(segs);
}

/* ---- f. strange files in the partition folder --------------------------- */

static void garbage_file(const char *name, const char *fname, size_t len, int check_hwm) {
  base_store b;
  base_build(&b, name, "none", 10);
  char part_dir[2048], path[2600];
  snprintf(part_dir, sizeof part_dir, "%s-takhin/%s-0", b.db, TOPIC);
  snprintf(path, sizeof path, "%s/%s", part_dir, fname);
  uint8_t *junk = malloc(len + 1);
  uint32_t x = 99;
  for (size_t i = 0; i < len; i++) junk[i] = (uint8_t)((x = x * 1103515245 + 12345) >> 16);
  spit(path, junk, len, "wb");
  /* A file that is not a segment at all is simply not ours. */
  char other[2700];
  snprintf(other, sizeof other, "%s/notes.txt", part_dir);
  spit(other, junk, len, "wb");

  takhin_store *s = NULL;
  int rc = takhin_open(b.db, NULL, &s);
  cr_assert_eq(rc, TAKHIN_OK, "open: %s", takhin_errmsg());
  cr_assert_eq(tu_file_size(b.seg), (int64_t)b.size, "the real segment is untouched");
  cr_assert_eq(tu_file_size(other), (int64_t)len, "a file that is not a segment is left alone");
  takhin_partition_info pi = part_info(s, TOPIC);
  /* Whatever the store makes of the file, no record comes out of it: every
  ** offset below the high watermark is one of ours, intact. */
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK)
    cr_assert(m.offset < b.hwm && rec_ok(&m, m.offset), "record %lld did not come from the log",
              (long long)m.offset);
  cr_assert(rc == TAKHIN_END || rc == TAKHIN_ECORRUPT, "cursor: %s", takhin_errstr(rc));
  takhin_cursor_close(c);
  check_get(s, 0, b.hwm, "the real records");
  if (check_hwm) {
    /* A file with no valid batch adds no offsets: the log goes on where it
    ** ended and every offset below the high watermark is readable. */
    int got = TAKHIN_OK;
    if (pi.high_watermark != b.hwm) { /* what a consumer of the next offset meets */
      cr_assert_eq(takhin_cursor_open(s, TOPIC, 0, &c), TAKHIN_OK);
      got = takhin_cursor_get(c, b.hwm, &m);
      takhin_cursor_close(c);
    }
    cr_assert_eq(
        pi.high_watermark, b.hwm, "high watermark %lld, want %lld; reading offset %lld gives %s",
        (long long)pi.high_watermark, (long long)b.hwm, (long long)b.hwm, takhin_errstr(got));
    produce_at(s, TOPIC, b.hwm, 2);
    check_seq(s, TOPIC, 0, b.hwm + 2, "after a garbage segment file");
  }
  takhin_close(s);
  free(junk);
  free(b.bytes);
}

/* Beyond the end of the log. */
Test(recovery, garbage_segment_file_beyond_end) {
  garbage_file("rec_garbage_beyond", "00000000000000099999.log", 5000, 0);
}
Test(recovery, garbage_segment_file_beyond_end_hwm) {
  garbage_file("rec_garbage_beyond_hwm", "00000000000000099999.log", 5000, 1);
}
/* Named like a segment that starts inside the existing one. */
Test(recovery, garbage_segment_file_overlapping) {
  garbage_file("rec_garbage_overlap", "00000000000000000005.log", 5000, 1);
}
/* Named exactly where the next segment would start (a roll whose catalog
** row never landed, with garbage instead of batches). */
Test(recovery, garbage_segment_file_at_end) {
  int64_t hwm = 0; /* what fill() makes of 10 batches, as garbage_file builds */
  for (int b = 0; b < 10; b++) hwm += 1 + b % 3;
  char fname[64];
  snprintf(fname, sizeof fname, "%020lld.log", (long long)hwm);
  garbage_file("rec_garbage_at_end", fname, 5000, 1);
}

/* A read-only open beside a live writer: the writer's retention removes the
** log's oldest segment file after the open read the catalog and listed the
** files, just before it loads that segment. The open succeeds, starting at
** the first segment left, and serves every record from there. */
static char gone_path[2048];
static void remove_first(const char *dir, int64_t base) {
  (void)dir, (void)base;
  if (gone_path[0]) cr_assert_eq(unlink(gone_path), 0, "unlink %s", gone_path);
  gone_path[0] = 0; /* once */
}

/* Both tests below: a store of several segments, closed; with only_row,
** the catalog keeps the first segment's row alone. A read-only open then
** loses that segment's file as it loads it, and must serve the rest. */
static void ro_open_race(const char *name, int only_row) {
  const char *db = tu_store_path(name);
  takhin_store *s = tu_open_ok(db);
  int64_t hwm = fill(s, TOPIC, (const char *const[]){"segment_bytes", "2000", NULL}, 120);
  takhin_segment_info *segs;
  size_t n;
  cr_assert_eq(takhin_segments_list(s, TOPIC, 0, &segs, &n), TAKHIN_OK);
  cr_assert_geq(n, 3, "%zu segments", n);
  int64_t second = segs[1].base_offset;
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  if (only_row) { /* the catalog as the open read it: the first segment's row only */
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM takhin_cat_index_run WHERE segment_base > %lld; "
             "DELETE FROM takhin_cat_segment WHERE base_offset > %lld",
             (long long)segs[0].base_offset, (long long)segs[0].base_offset);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
  }
  tu_segment_path(gone_path, sizeof gone_path, db, TOPIC, 0, segs[0].base_offset);
  takhin_options ro;
  takhin_options_init(&ro);
  ro.read_only = 1;
  tk_load_segment_hook = remove_first;
  int rc = takhin_open(db, &ro, &s);
  tk_load_segment_hook = NULL;
  cr_assert_eq(rc, TAKHIN_OK, "read-only open: %s", takhin_errmsg());
  cr_assert_eq(gone_path[0], 0, "the hook removed the file");
  takhin_partition_info pi = part_info(s, TOPIC);
  cr_assert_eq(pi.log_start_offset, second, "log start %lld", (long long)pi.log_start_offset);
  cr_assert_eq(pi.high_watermark, hwm);
  check_get(s, second, hwm, "after the removed segment");
  takhin_close(s);
  takhin_free(segs);
}

Test(recovery, read_only_open_while_retention_removes_the_first_segment) {
  ro_open_race("rec_ro_race", 0);
}

/* The same race when the catalog knew no segment after the removed one (a
** writer rolls, and its retention removes the segment the open read the
** only row of): nothing is loaded when the files the catalog does not know
** are taken up, the removed one first among them. The open succeeds with
** the files left. (Seen in test_stress's read-only process under ASan.) */
Test(recovery, read_only_open_while_retention_removes_the_only_known_segment) {
  ro_open_race("rec_ro_race_only", 1);
}
