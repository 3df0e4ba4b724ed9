/*
** fuzz_index_run.c -- libFuzzer target for the catalog's packed index runs
** (store/index_run.c): tk_index_run_merge applied run after run onto one
** array, as tk_cat_index reads a segment's rows.
**
** The input is a sequence of runs, each: a control byte, a length byte
** (entries, or raw bytes when the control byte says so), then the run's
** key or not, then its bytes. The control byte picks the key (the blob's
** own first offset, one off it either way, or 8 bytes of input) and
** whether the entries are taken raw from the input or built rising from it
** (so that most runs are sound and the trims and growth get exercised).
** Properties checked with abort(), against a model written here:
**   - merge refuses (ECORRUPT) exactly the malformed runs: no blob, empty,
**     a length not a multiple of 24, a first entry not at the key, offsets
**     or positions that do not rise; and then the array, its count and its
**     capacity are as they were, byte for byte;
**   - otherwise the array is the model's: the entries before the key, then
**     the run's, decoded as tk_index_run_entry decodes, and encoding them
**     again gives the blob's bytes;
**   - tk_index_run_bound is at or below the key and the first entry.
** Build and run: see fuzz/CMakeLists.txt. Seeds in fuzz/corpus_index_run, made
** by hand in this format: runs that overlap, replace everything, are keyed one
** off or explicitly, torn, empty or NULL, not rising, and built ones.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "index_run.h"
#include "takhin.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) abort();                                                                          \
  } while (0)

#define MAX_ENTRIES 4096 /* the model's array; inputs are far smaller */

static int64_t rd64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
  return (int64_t)u;
}

static void wr64(uint8_t *p, int64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

/* What merge must accept. */
static int sound(int64_t key, const uint8_t *b, size_t len) {
  if (!b || !len || len % TK_INDEX_RUN_ENTRY || rd64(b) != key) return 0;
  for (size_t k = TK_INDEX_RUN_ENTRY; k < len; k += TK_INDEX_RUN_ENTRY)
    if (rd64(b + k) <= rd64(b + k - TK_INDEX_RUN_ENTRY) ||
        rd64(b + k + 8) <= rd64(b + k + 8 - TK_INDEX_RUN_ENTRY))
      return 0;
  return 1;
}

static tk_index_entry model[MAX_ENTRIES];
static uint8_t blob[256 * TK_INDEX_RUN_ENTRY], again[256 * TK_INDEX_RUN_ENTRY];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tk_index_entry *v = NULL, *before = NULL;
  size_t n = 0, cap = 0, mn = 0;
  size_t at = 0;
  while (at + 2 <= size) {
    uint8_t ctl = data[at], cnt = data[at + 1];
    at += 2;
    size_t len;
    if (ctl & 0x80) {
      /* built: cnt entries rising from an offset and position taken from
      ** the input, steps from the input's next bytes */
      if (at + 8 > size) break;
      int64_t off = (int64_t)(rd64(data + at) % 100000), pos = off * 7;
      at += 8;
      len = (size_t)(cnt % 64) * TK_INDEX_RUN_ENTRY;
      for (size_t k = 0; k < len; k += TK_INDEX_RUN_ENTRY) {
        uint8_t step = at < size ? data[at++] : 1;
        off += 1 + step % 17;
        pos += 1 + step;
        wr64(blob + k, off);
        wr64(blob + k + 8, pos);
        wr64(blob + k + 16, (int64_t)step << 33);
      }
      /* and sometimes one entry spoiled */
      if (len && (ctl & 0x40)) blob[(ctl & 0x3f) % len] ^= 0x5a;
    } else {
      len = (ctl & 0x40) ? cnt : (size_t)cnt * TK_INDEX_RUN_ENTRY;
      if (len > size - at) len = size - at;
      memcpy(blob, data + at, len);
      at += len;
    }
    int64_t own = len >= 8 ? rd64(blob) : 0, key;
    switch (ctl & 3) {
    case 0: key = own; break;
    case 1: key = (int64_t)((uint64_t)own + 1); break;
    case 2: key = (int64_t)((uint64_t)own - 1); break;
    default:
      if (at + 8 > size) {
        key = own;
      } else {
        key = rd64(data + at);
        at += 8;
      }
    }
    const void *b = (ctl & 0x20) && !len ? NULL : blob;
    int ok = sound(key, b, len);
    size_t keep = mn, add = ok ? len / TK_INDEX_RUN_ENTRY : 0;
    while (ok && keep && model[keep - 1].offset >= key) keep--;
    if (keep + add > MAX_ENTRIES) break; /* a long input: the model is full */
    int64_t bound = tk_index_run_bound(key, b, len);
    CHECK(bound <= key);
    CHECK(!b || len < TK_INDEX_RUN_ENTRY || bound <= rd64(blob));
    free(before);
    before = n ? malloc(n * sizeof *v) : NULL;
    CHECK(!n || before);
    if (n) memcpy(before, v, n * sizeof *v);
    tk_index_entry *v0 = v;
    size_t n0 = n, cap0 = cap;
    int rc = tk_index_run_merge(&v, &n, &cap, key, b, len);
    if (!ok) {
      CHECK(rc == TAKHIN_ECORRUPT);
      CHECK(v == v0 && n == n0 && cap == cap0);
      CHECK(!n || !memcmp(before, v, n * sizeof *v));
      continue;
    }
    CHECK(rc == TAKHIN_OK);
    /* the model: entries before the key, then the run's */
    mn = keep;
    for (size_t k = 0; k < add; k++) {
      tk_index_entry *e = &model[mn + k];
      e->offset = rd64(blob + k * TK_INDEX_RUN_ENTRY);
      e->position = rd64(blob + k * TK_INDEX_RUN_ENTRY + 8);
      e->max_ts = e->run_max = rd64(blob + k * TK_INDEX_RUN_ENTRY + 16);
    }
    mn += add;
    CHECK(n == mn && cap >= n && v);
    for (size_t k = 0; k < n; k++)
      CHECK(v[k].offset == model[k].offset && v[k].position == model[k].position &&
            v[k].max_ts == model[k].max_ts && v[k].run_max == model[k].max_ts);
    /* the run's entries encode back to its bytes */
    tk_index_run_encode(v + n - add, add, again);
    CHECK(!memcmp(again, blob, len));
  }
  free(before);
  free(v);
  return 0;
}
