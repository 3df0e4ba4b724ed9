/*
** test_conformance.c -- takhin's batches against kafka-python, an independent
** implementation of Kafka's RecordBatch v2, through
** tests/conformance/kafka_check.py run by Debian's /usr/bin/python3:
**   - batches written by tk_batch_encode (codec none, zstd and both mixed in
**     one segment) must be read back by kafka-python, CRCs and all, exactly
**     as described in a JSON file written next to them;
**   - batches written by kafka-python's MemoryRecordsBuilder (including zstd
**     frames without a content size, as Kafka's Java producer writes them,
**     and a batch with offset gaps) must decode here as its JSON says, and
**     its uncompressed batches must equal tk_batch_encode's bytes exactly.
** A missing python3-kafka or python3-zstandard fails the tests with a message
** saying what to install: this check must not disappear silently.
*/
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zstd.h>

#include "batch.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define SCRIPT TAKHIN_SOURCE_DIR "/tests/conformance/kafka_check.py"
#define T0 1700000000000LL
#define MAX_OUT (64u << 20)

/* ---- running the script ---------------------------------------------- */

static char run_log[16384];

/* Run a shell command (stderr folded into stdout, kept in run_log) and
** return its exit status, -1 if it did not exit normally. */
static int run(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f, "popen(%s) failed", cmd);
  size_t n = fread(run_log, 1, sizeof run_log - 1, f);
  run_log[n] = 0;
  while (fgetc(f) != EOF) { /* drain what did not fit */
  }
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void require_kafka_python(void) {
  int rc = run("'" PYTHON "' -c 'import kafka, zstandard'");
  cr_assert_eq(rc, 0,
               "Kafka conformance needs Debian's " PYTHON " with kafka-python and zstandard: "
               "install them with `apt-get install python3-kafka python3-zstandard`.\n%s",
               run_log);
}

/* A fresh directory for one test (no trailing slash), static storage. */
static const char *test_dir(const char *name) {
  static char dir[4096];
  const char *db = tu_store_path(name);
  cr_assert_not_null(db);
  snprintf(dir, sizeof dir, "%s", db);
  *strrchr(dir, '/') = 0;
  return dir;
}

/* ---- takhin -> kafka-python -------------------------------------------- */

static const char compressible[] = "takhin stores kafka batches; ";

/* The record sets the batches are made of; buffers live in static storage. */
typedef struct set {
  takhin_record *r;
  size_t n;
} set;

static set set_diverse(void) {
  static takhin_record r[10];
  static takhin_header h5[5], h8[1];
  static uint8_t bin[256], rbin[256], big[100000], mid[1200];
  for (int i = 0; i < 256; i++) bin[i] = (uint8_t)i, rbin[i] = (uint8_t)(255 - i);
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)compressible[i % 29];
  for (size_t i = 0; i < sizeof mid; i++) mid[i] = (uint8_t)compressible[i % 29];
  memset(r, 0, sizeof r);
  h5[0] = (takhin_header){"h", 1, "1", 1};
  h5[1] = (takhin_header){"h", 1, "2", 1};
  h5[2] = (takhin_header){"nul", 3, NULL, 0};
  h5[3] = (takhin_header){"", 0, "", 0};
  h5[4] = (takhin_header){"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 8, "\x00\xff", 2}; /* "ключ" */
  h8[0] = (takhin_header){"b", 1, rbin, 256};
  r[0] = (takhin_record){.key = "k0", .key_len = 2, .value = "v0", .value_len = 2, .timestamp = T0};
  r[1] = (takhin_record){.value = "null key", .value_len = 8, .timestamp = T0 + 1};
  r[2] = (takhin_record){.key = "null value", .key_len = 10, .timestamp = T0 + 2};
  r[3] = (takhin_record){.timestamp = T0 + 3};
  r[4] = (takhin_record){.key = "", .value = "", .timestamp = T0 + 4};
  r[5] = (takhin_record){.key = "headers",
                         .key_len = 7,
                         .value = mid,
                         .value_len = sizeof mid,
                         .headers = h5,
                         .n_headers = 5,
                         .timestamp = T0 + 5};
  r[6] = (takhin_record){.key = "earlier",
                         .key_len = 7,
                         .value = "negative delta",
                         .value_len = 14,
                         .timestamp = T0 - 5000};
  r[7] = (takhin_record){.key = "later",
                         .key_len = 5,
                         .value = "six-byte delta",
                         .value_len = 14,
                         .timestamp = T0 + (1LL << 40)};
  r[8] = (takhin_record){.key = "binary",
                         .key_len = 6,
                         .value = bin,
                         .value_len = 256,
                         .headers = h8,
                         .n_headers = 1,
                         .timestamp = T0 + 8};
  r[9] = (takhin_record){
      .key = "big", .key_len = 3, .value = big, .value_len = sizeof big, .timestamp = T0 + 9};
  return (set){r, 10};
}

static set set_many(void) {
  static takhin_record r[1000];
  static char k[1000][16], v[1000][64];
  for (long i = 0; i < 1000; i++) {
    tu_make_record(&r[i], k[i], sizeof k[i], v[i], (size_t)(i % 64), i);
    r[i].timestamp = T0 + (i * 7919) % 3000;
  }
  r[0].timestamp = TAKHIN_TIMESTAMP_NOW; /* resolved to now_ms below */
  return (set){r, 1000};
}

static set set_single(void) {
  static takhin_record r[1];
  static uint8_t v[1u << 20];
  for (size_t i = 0; i < sizeof v; i++) v[i] = (uint8_t)(i * 31 / 7);
  r[0] = (takhin_record){
      .key = "one MiB", .key_len = 7, .value = v, .value_len = sizeof v, .timestamp = 0};
  return (set){r, 1};
}

static void json_hex(FILE *f, const void *p, size_t n) {
  if (!p) {
    fputs("null", f);
    return;
  }
  fputc('"', f);
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", ((const uint8_t *)p)[i]);
  fputc('"', f);
}

/* Append one batch of s at base with codec to seg, and its description (the
** JSON of kafka_check.py) to js. */
static void emit_batch(FILE *seg, FILE *js, int first, const set *s, int64_t base, int codec,
                       int64_t now_ms, ZSTD_CCtx *cctx, tk_buf *out, tk_buf *scratch) {
  int64_t max_ts;
  out->len = 0;
  int rc = tk_batch_encode(out, base, s->r, s->n, now_ms, codec, cctx, scratch, &max_ts);
  cr_assert_eq(rc, TAKHIN_OK, "tk_batch_encode: %s", takhin_errmsg());
  cr_assert_eq(fwrite(out->p, 1, out->len, seg), out->len);

#define TS(r) ((r).timestamp == TAKHIN_TIMESTAMP_NOW ? now_ms : (r).timestamp)
  fprintf(js,
          "%s{\"base_offset\": %lld, \"codec\": %d, \"last_offset_delta\": %zu, "
          "\"base_timestamp\": %lld, \"max_timestamp\": %lld, \"records\": [\n",
          first ? "" : ",\n", (long long)base, codec, s->n - 1, (long long)TS(s->r[0]),
          (long long)max_ts);
  for (size_t i = 0; i < s->n; i++) {
    const takhin_record *r = &s->r[i];
    fprintf(js, "%s  {\"offset\": %lld, \"timestamp\": %lld, \"key\": ", i ? ",\n" : "",
            (long long)(base + (int64_t)i), (long long)TS(*r));
    json_hex(js, r->key, r->key_len);
    fputs(", \"value\": ", js);
    json_hex(js, r->value, r->value_len);
    fputs(", \"headers\": [", js);
    for (size_t j = 0; j < r->n_headers; j++) {
      fputs(j ? ", {\"key\": " : "{\"key\": ", js);
      json_hex(js, r->headers[j].key ? r->headers[j].key : "", r->headers[j].key_len);
      fputs(", \"value\": ", js);
      json_hex(js, r->headers[j].value, r->headers[j].value_len);
      fputc('}', js);
    }
    fputs("]}", js);
  }
  fputs("]}", js);
#undef TS
}

/* Write a segment of three batches (diverse, 1000 records, one 1 MiB record)
** with the given codecs, describe it, and have kafka-python check it. */
static void takhin_to_kafka(const char *name, const int codecs[3]) {
  require_kafka_python();
  const char *dir = test_dir(name);
  char seg_path[4200], js_path[4200];
  snprintf(seg_path, sizeof seg_path, "%s/00000000000000000100.log", dir);
  snprintf(js_path, sizeof js_path, "%s/expect.json", dir);
  FILE *seg = fopen(seg_path, "wb"), *js = fopen(js_path, "w");
  cr_assert(seg && js);
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  tk_buf out = {0}, scratch = {0};
  set sets[3] = {set_diverse(), set_many(), set_single()};
  int64_t base = 100;
  fputs("{\"batches\": [\n", js);
  for (int i = 0; i < 3; i++) {
    emit_batch(seg, js, i == 0, &sets[i], base, codecs[i], T0 + 7, cctx, &out, &scratch);
    base += (int64_t)sets[i].n;
  }
  fputs("]}\n", js);
  fclose(seg);
  fclose(js);
  ZSTD_freeCCtx(cctx);
  tk_buf_free(&out);
  tk_buf_free(&scratch);

  int rc = run("'" PYTHON "' '" SCRIPT "' decode '%s' '%s'", seg_path, js_path);
  cr_assert_eq(rc, 0, "kafka_check.py decode %s failed (exit %d):\n%s", seg_path, rc, run_log);
  cr_assert_not_null(strstr(run_log, "3 batches, 1011 records match"), "%s", run_log);
}

Test(conformance, takhin_none_read_by_kafka_python) {
  takhin_to_kafka("conf_none", (const int[3]){TK_CODEC_NONE, TK_CODEC_NONE, TK_CODEC_NONE});
}

Test(conformance, takhin_zstd_read_by_kafka_python) {
  takhin_to_kafka("conf_zstd", (const int[3]){TK_CODEC_ZSTD, TK_CODEC_ZSTD, TK_CODEC_ZSTD});
}

Test(conformance, takhin_mixed_codecs_read_by_kafka_python) {
  takhin_to_kafka("conf_mixed", (const int[3]){TK_CODEC_ZSTD, TK_CODEC_NONE, TK_CODEC_ZSTD});
}

/* The checker itself must notice a wrong description and a damaged batch,
** or the tests above prove nothing. */
Test(conformance, kafka_check_detects_mismatch) {
  require_kafka_python();
  const char *dir = test_dir("conf_selfcheck");
  char seg_path[4200], js_path[4200];
  snprintf(seg_path, sizeof seg_path, "%s/seg.log", dir);
  snprintf(js_path, sizeof js_path, "%s/expect.json", dir);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 5};
  tk_buf out = {0};
  cr_assert_eq(tk_batch_encode(&out, 0, &r, 1, 0, TK_CODEC_NONE, NULL, NULL, NULL), 0);
  static const char *good = "{\"batches\": [{\"base_offset\": 0, \"codec\": 0, "
                            "\"last_offset_delta\": 0, \"base_timestamp\": 5, "
                            "\"max_timestamp\": 5, \"records\": [{\"offset\": 0, "
                            "\"timestamp\": 5, \"key\": \"6b\", \"value\": \"76\", "
                            "\"headers\": []}]}]}";
  for (int variant = 0; variant < 3; variant++) {
    FILE *seg = fopen(seg_path, "wb"), *js = fopen(js_path, "w");
    cr_assert(seg && js);
    if (variant == 2) out.p[out.len - 2] ^= 1; /* the value byte: CRC must fail */
    fwrite(out.p, 1, out.len, seg);
    fputs(variant == 1 ? "{\"batches\": []}" : good, js);
    fclose(seg);
    fclose(js);
    int rc = run("'" PYTHON "' '" SCRIPT "' decode '%s' '%s'", seg_path, js_path);
    cr_assert_eq(rc, variant == 0 ? 0 : 1, "variant %d: exit %d\n%s", variant, rc, run_log);
    if (variant == 2) cr_assert_not_null(strstr(run_log, "CRC mismatch"), "%s", run_log);
  }
  tk_buf_free(&out);
}

/* ---- kafka-python -> takhin ---------------------------------------------- */

/* The expected content, parsed from kafka_check.py's JSON. */
typedef struct xrec {
  int64_t offset, timestamp;
  takhin_record r; /* key/value NULL for null; empty ones point at a byte */
  takhin_header *h;
} xrec;
typedef struct xbatch {
  int64_t base_offset, last_offset_delta, base_ts, max_ts;
  int codec;
  xrec *recs;
  size_t n;
} xbatch;

/* A strict reader for exactly that format: keys in order, numbers, hex
** strings and null. Any surprise fails the test. */
typedef struct jp {
  const char *s;
} jp;

static void j_ws(jp *j) {
  while (isspace((unsigned char)*j->s)) j->s++;
}
static int j_accept(jp *j, char c) {
  j_ws(j);
  if (*j->s != c) return 0;
  j->s++;
  return 1;
}
static void j_expect(jp *j, char c) {
  cr_assert(j_accept(j, c), "JSON: expected '%c' at \"%.30s\"", c, j->s);
}
static void j_key(jp *j, const char *name) {
  size_t n = strlen(name);
  j_expect(j, '"');
  cr_assert(strncmp(j->s, name, n) == 0 && j->s[n] == '"', "JSON: expected key \"%s\" at \"%.30s\"",
            name, j->s);
  j->s += n + 1;
  j_expect(j, ':');
}
static int64_t j_int(jp *j) {
  j_ws(j);
  char *e;
  errno = 0;
  long long v = strtoll(j->s, &e, 10);
  cr_assert(e != j->s && errno == 0, "JSON: expected a number at \"%.30s\"", j->s);
  j->s = e;
  return v;
}
/* A hex string (malloc'd, never NULL even when empty) or null (NULL). */
static uint8_t *j_hex(jp *j, size_t *len) {
  j_ws(j);
  *len = 0;
  if (strncmp(j->s, "null", 4) == 0) {
    j->s += 4;
    return NULL;
  }
  j_expect(j, '"');
  const char *q = strchr(j->s, '"');
  cr_assert(q && (q - j->s) % 2 == 0, "JSON: bad hex string at \"%.30s\"", j->s);
  size_t n = (size_t)(q - j->s) / 2;
  uint8_t *b = malloc(n + 1);
  cr_assert_not_null(b);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    cr_assert_eq(sscanf(j->s + 2 * i, "%2x", &v), 1);
    b[i] = (uint8_t)v;
  }
  j->s = q + 1;
  *len = n;
  return b;
}

static void parse_record(jp *j, xrec *x) {
  memset(x, 0, sizeof *x);
  j_expect(j, '{');
  j_key(j, "offset");
  x->offset = j_int(j);
  j_expect(j, ',');
  j_key(j, "timestamp");
  x->timestamp = x->r.timestamp = j_int(j);
  j_expect(j, ',');
  j_key(j, "key");
  x->r.key = j_hex(j, &x->r.key_len);
  j_expect(j, ',');
  j_key(j, "value");
  x->r.value = j_hex(j, &x->r.value_len);
  j_expect(j, ',');
  j_key(j, "headers");
  j_expect(j, '[');
  size_t cap = 0;
  if (!j_accept(j, ']')) {
    do {
      if (x->r.n_headers == cap) {
        cap = cap ? 2 * cap : 8;
        x->h = realloc(x->h, cap * sizeof *x->h);
        cr_assert_not_null(x->h);
      }
      takhin_header *hd = &x->h[x->r.n_headers++];
      j_expect(j, '{');
      j_key(j, "key");
      hd->key = (const char *)j_hex(j, &hd->key_len);
      cr_assert_not_null(hd->key, "JSON: a header key is null");
      j_expect(j, ',');
      j_key(j, "value");
      hd->value = j_hex(j, &hd->value_len);
      j_expect(j, '}');
    } while (j_accept(j, ','));
    j_expect(j, ']');
  }
  x->r.headers = x->h;
  j_expect(j, '}');
}

static xbatch *parse_expect(const char *text, size_t *nb) {
  jp j = {text};
  xbatch *b = NULL;
  size_t n = 0, cap = 0;
  j_expect(&j, '{');
  j_key(&j, "batches");
  j_expect(&j, '[');
  if (!j_accept(&j, ']')) {
    do {
      if (n == cap) {
        cap = cap ? 2 * cap : 8;
        b = realloc(b, cap * sizeof *b);
        cr_assert_not_null(b);
      }
      xbatch *x = &b[n++];
      memset(x, 0, sizeof *x);
      j_expect(&j, '{');
      j_key(&j, "base_offset");
      x->base_offset = j_int(&j);
      j_expect(&j, ',');
      j_key(&j, "codec");
      x->codec = (int)j_int(&j);
      j_expect(&j, ',');
      j_key(&j, "last_offset_delta");
      x->last_offset_delta = j_int(&j);
      j_expect(&j, ',');
      j_key(&j, "base_timestamp");
      x->base_ts = j_int(&j);
      j_expect(&j, ',');
      j_key(&j, "max_timestamp");
      x->max_ts = j_int(&j);
      j_expect(&j, ',');
      j_key(&j, "records");
      j_expect(&j, '[');
      size_t rcap = 0;
      if (!j_accept(&j, ']')) {
        do {
          if (x->n == rcap) {
            rcap = rcap ? 2 * rcap : 16;
            x->recs = realloc(x->recs, rcap * sizeof *x->recs);
            cr_assert_not_null(x->recs);
          }
          parse_record(&j, &x->recs[x->n++]);
        } while (j_accept(&j, ','));
        j_expect(&j, ']');
      }
      j_expect(&j, '}');
    } while (j_accept(&j, ','));
    j_expect(&j, ']');
  }
  j_expect(&j, '}');
  j_ws(&j);
  cr_assert_eq(*j.s, 0, "JSON: trailing text \"%.30s\"", j.s);
  *nb = n;
  return b;
}

static void free_expect(xbatch *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < b[i].n; k++) {
      xrec *x = &b[i].recs[k];
      free((void *)x->r.key);
      free((void *)x->r.value);
      for (size_t h = 0; h < x->r.n_headers; h++) {
        free((void *)x->h[h].key);
        free((void *)x->h[h].value);
      }
      free(x->h);
    }
    free(b[i].recs);
  }
  free(b);
}

static void same_bytes(const void *got, size_t got_len, const void *want, size_t want_len,
                       const char *what, size_t bi, size_t ri) {
  if (!want) {
    cr_assert_null(got, "batch %zu record %zu: %s should be null", bi, ri, what);
    return;
  }
  cr_assert_not_null(got, "batch %zu record %zu: %s should not be null", bi, ri, what);
  cr_assert_eq(got_len, want_len, "batch %zu record %zu: %s length %zu, expected %zu", bi, ri, what,
               got_len, want_len);
  cr_assert(want_len == 0 || memcmp(got, want, want_len) == 0, "batch %zu record %zu: %s bytes", bi,
            ri, what);
}

/* Have kafka-python write a segment with codec, then read it here. */
static void kafka_to_takhin(const char *name, const char *codec_name, int codec) {
  require_kafka_python();
  const char *dir = test_dir(name);
  char seg_path[4200], js_path[4300];
  snprintf(seg_path, sizeof seg_path, "%s/00000000000000000000.log", dir);
  snprintf(js_path, sizeof js_path, "%s.json", seg_path);
  int rc = run("'" PYTHON "' '" SCRIPT "' encode '%s' %s", seg_path, codec_name);
  cr_assert_eq(rc, 0, "kafka_check.py encode failed (exit %d):\n%s", rc, run_log);

  size_t seg_len, js_len, nb;
  uint8_t *seg = tu_read_file_ok(seg_path, &seg_len);
  char *js = (char *)tu_read_file_ok(js_path, &js_len);
  xbatch *want = parse_expect(js, &nb);
  cr_assert_geq(nb, 4);

  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  tk_buf scratch = {0}, again = {0};
  size_t pos = 0, unknown_size_frames = 0, identical = 0;
  for (size_t bi = 0; bi < nb; bi++) {
    const xbatch *x = &want[bi];
    const uint8_t *p = seg + pos;
    tk_batch_hdr h;
    cr_assert_eq(tk_batch_parse_header(p, seg_len - pos, &h), TAKHIN_OK, "batch %zu: %s", bi,
                 takhin_errmsg());
    cr_assert_leq(tk_batch_total(&h), (int64_t)(seg_len - pos));
    cr_assert(tk_batch_crc_ok(p, &h), "batch %zu: CRC", bi);
    cr_assert_eq(tk_batch_validate(p, &h, dctx, &scratch, MAX_OUT), TAKHIN_OK, "batch %zu: %s", bi,
                 takhin_errmsg());
    cr_assert_eq(h.base_offset, x->base_offset);
    cr_assert_eq(h.attributes & TK_ATTR_CODEC_MASK, codec, "batch %zu codec", bi);
    cr_assert_eq(x->codec, codec);
    cr_assert_eq(h.last_offset_delta, x->last_offset_delta);
    cr_assert_eq(h.base_timestamp, x->base_ts);
    cr_assert_eq(h.max_timestamp, x->max_ts);
    cr_assert_eq((size_t)h.records_count, x->n);
    if (codec == TK_CODEC_ZSTD &&
        ZSTD_getFrameContentSize(p + TK_BATCH_HEADER_SIZE,
                                 (size_t)tk_batch_total(&h) - TK_BATCH_HEADER_SIZE) ==
            ZSTD_CONTENTSIZE_UNKNOWN)
      unknown_size_frames++;

    const uint8_t *q;
    size_t qlen;
    cr_assert_eq(tk_batch_records(p, &h, dctx, &scratch, MAX_OUT, &q, &qlen), TAKHIN_OK);
    const uint8_t *end = q + qlen;
    int dense = 1;
    for (size_t ri = 0; ri < x->n; ri++) {
      const xrec *w = &x->recs[ri];
      takhin_message m;
      cr_assert_eq(tk_record_decode(&q, end, &h, &m), TAKHIN_OK, "batch %zu record %zu: %s", bi, ri,
                   takhin_errmsg());
      cr_assert_eq(m.offset, w->offset, "batch %zu record %zu offset", bi, ri);
      cr_assert_eq(m.timestamp, w->timestamp, "batch %zu record %zu timestamp", bi, ri);
      dense &= w->offset == x->base_offset + (int64_t)ri;
      same_bytes(m.key, m.key_len, w->r.key, w->r.key_len, "key", bi, ri);
      same_bytes(m.value, m.value_len, w->r.value, w->r.value_len, "value", bi, ri);
      cr_assert_eq(m.n_headers, w->r.n_headers, "batch %zu record %zu header count", bi, ri);
      const uint8_t *hp = m.headers_raw, *he = hp + m.headers_raw_len;
      for (size_t k = 0; k < m.n_headers; k++) {
        takhin_header hd;
        cr_assert_eq(tk_header_next(&hp, he, &hd), TAKHIN_OK);
        same_bytes(hd.key, hd.key_len, w->h[k].key, w->h[k].key_len, "header key", bi, ri);
        same_bytes(hd.value, hd.value_len, w->h[k].value, w->h[k].value_len, "header value", bi,
                   ri);
      }
      cr_assert_eq(hp, he);
    }
    cr_assert_eq(q, end);

    /* Same records, same base: an uncompressed batch must come out of
    ** tk_batch_encode byte for byte as kafka-python wrote it. */
    if (codec == TK_CODEC_NONE && dense) {
      takhin_record *rs = malloc(x->n * sizeof *rs);
      cr_assert_not_null(rs);
      for (size_t ri = 0; ri < x->n; ri++) rs[ri] = x->recs[ri].r;
      again.len = 0;
      cr_assert_eq(
          tk_batch_encode(&again, x->base_offset, rs, x->n, 0, TK_CODEC_NONE, NULL, NULL, NULL),
          TAKHIN_OK);
      free(rs);
      cr_assert_eq(again.len, (size_t)tk_batch_total(&h), "batch %zu: re-encoded size", bi);
      for (size_t i = 0; i < again.len; i++)
        cr_assert_eq(again.p[i], p[i], "batch %zu byte %zu: takhin %02x, kafka-python %02x", bi, i,
                     again.p[i], p[i]);
      identical++;
    }
    pos += (size_t)tk_batch_total(&h);
  }
  cr_assert_eq(pos, seg_len, "bytes after the last described batch");
  if (codec == TK_CODEC_ZSTD) cr_assert_geq(unknown_size_frames, 1);
  if (codec == TK_CODEC_NONE) cr_assert_eq(identical, nb - 1); /* all but the gapped one */

  tk_buf_free(&scratch);
  tk_buf_free(&again);
  ZSTD_freeDCtx(dctx);
  free_expect(want, nb);
  free(js);
  free(seg);
}

Test(conformance, kafka_python_none_read_by_takhin) {
  kafka_to_takhin("conf_kp_none", "none", TK_CODEC_NONE);
}

Test(conformance, kafka_python_zstd_read_by_takhin) {
  kafka_to_takhin("conf_kp_zstd", "zstd", TK_CODEC_ZSTD);
}
