/*
** test_keyindex.c -- the key index against a model (a differential test):
** keys of every length from 0 to 40 bytes (those that sit in a slot of the
** map of latest keys, up to 16 bytes, and those that do not), keys that
** differ only in their length (trailing zero bytes), in one byte at a word's
** edge, or not at all in their hash (the test hook tk_key_hash_mask), are
** produced at random, tombstones among them, in batches of 1 to 200 records.
** Every key lookup must return the model's latest offset (or ENOTFOUND for
** a key never produced), before and after a compaction and a reopen, and
** the compacted segments must hold exactly the latest record of every key.
** Run with the map written at every persist-worth of keys or rarely, with
** the key-writer thread handed maps often, in OS and BUFFERED durability.
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { MAXKEYS = 1024, MAXLEN = 40, NRECS = 12000 };

typedef struct keyset {
  uint8_t key[MAXKEYS][MAXLEN];
  size_t len[MAXKEYS];
  int n;
} keyset;

static void add_key(keyset *ks, const uint8_t *k, size_t len) {
  for (int i = 0; i < ks->n; i++) /* distinct keys only: the model counts by number */
    if (ks->len[i] == len && !memcmp(ks->key[i], k, len)) return;
  cr_assert_lt(ks->n, MAXKEYS);
  memcpy(ks->key[ks->n], k, len);
  ks->len[ks->n++] = len;
}

/* For each length: all zero bytes (keys equal but for their length), all
** 0xff, zeros with one byte set at the ends and at the edges of the slot's
** words (7, 8, 15, 16, 17), and a few random keys. */
static void make_keys(keyset *ks, unsigned *seed) {
  ks->n = 0;
  for (size_t len = 0; len <= MAXLEN; len++) {
    uint8_t k[MAXLEN];
    memset(k, 0, sizeof k);
    add_key(ks, k, len);
    memset(k, 0xff, len);
    add_key(ks, k, len);
    const size_t at[] = {0, len / 2, len - 1, 7, 8, 15, 16, 17};
    for (size_t j = 0; j < sizeof at / sizeof *at; j++) {
      if (!len || at[j] >= len) continue;
      memset(k, 0, sizeof k);
      k[at[j]] = 1;
      add_key(ks, k, len);
    }
    for (int r = 0; r < 3; r++) {
      for (size_t j = 0; j < len; j++) k[j] = (uint8_t)rand_r(seed);
      add_key(ks, k, len);
    }
  }
}

static int key_number(const keyset *ks, const void *k, size_t len) {
  for (int i = 0; i < ks->n; i++)
    if (ks->len[i] == len && !memcmp(ks->key[i], k, len)) return i;
  return -1;
}

typedef struct model {
  int64_t latest[MAXKEYS]; /* -1: never produced */
  int tomb[MAXKEYS];
  int64_t n;
} model;

/* Every key's lookup against the model, and keys never produced. */
static void check_lookups(takhin_store *s, const keyset *ks, const model *m, const char *when) {
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_message msg;
  for (int i = 0; i < ks->n; i++) {
    int rc = takhin_cursor_get_key(c, ks->key[i], ks->len[i], &msg);
    if (m->latest[i] < 0) {
      cr_assert_eq(rc, TAKHIN_ENOTFOUND, "%s: key %d (%zu bytes) was never produced", when, i,
                   ks->len[i]);
      continue;
    }
    cr_assert_eq(rc, TAKHIN_OK, "%s: key %d (%zu bytes): %s", when, i, ks->len[i], takhin_errmsg());
    cr_assert_eq(msg.offset, m->latest[i], "%s: key %d (%zu bytes): offset %lld, model %lld", when,
                 i, ks->len[i], (long long)msg.offset, (long long)m->latest[i]);
    cr_assert_eq(msg.value == NULL, m->tomb[i], "%s: key %d: tombstone", when, i);
    cr_assert_eq(msg.key_len, ks->len[i]);
    cr_assert(!ks->len[i] || !memcmp(msg.key, ks->key[i], ks->len[i]), "%s: key %d bytes", when, i);
  }
  /* a key one byte longer than a produced one, and an unknown long one */
  uint8_t k[MAXLEN + 1];
  memset(k, 0x5a, sizeof k);
  cr_assert_eq(takhin_cursor_get_key(c, k, sizeof k, &msg), TAKHIN_ENOTFOUND, "%s", when);
  cr_assert_eq(takhin_cursor_get_key(c, k, 3, &msg), TAKHIN_ENOTFOUND, "%s", when);
  takhin_cursor_close(c);
}

/* The log: below the active segment, exactly each key's latest record;
** from it on, every record. */
static void check_log(takhin_store *s, const keyset *ks, const model *m) {
  takhin_segment_info *g;
  size_t ng;
  cr_assert_eq(takhin_segments_list(s, "t", 0, &g, &ng), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t active = g[ng - 1].base_offset;
  takhin_free(g);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  takhin_message msg;
  int seen[MAXKEYS] = {0};
  int64_t tail = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &msg)) == TAKHIN_OK) {
    int k = key_number(ks, msg.key, msg.key_len);
    cr_assert_geq(k, 0, "offset %lld holds a key never produced", (long long)msg.offset);
    if (msg.offset < active) {
      cr_assert_eq(msg.offset, m->latest[k],
                   "offset %lld (key %d) survived compaction, latest %lld", (long long)msg.offset,
                   k, (long long)m->latest[k]);
      seen[k] = 1;
    } else {
      tail++;
    }
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  takhin_cursor_close(c);
  cr_assert_eq(tail, m->n - active, "the active segment is whole");
  for (int k = 0; k < ks->n; k++)
    if (m->latest[k] >= 0 && m->latest[k] < active)
      cr_assert(seen[k], "key %d (%zu bytes): its latest record %lld was compacted away", k,
                ks->len[k], (long long)m->latest[k]);
}

static void run(const char *name, uint32_t hash_mask, int map_keys, int durability, unsigned seed) {
  tk_key_hash_mask = hash_mask;
  tk_key_map_keys = map_keys;
  static keyset ks;
  make_keys(&ks, &seed);
  model m;
  for (int i = 0; i < MAXKEYS; i++) m.latest[i] = -1, m.tomb[i] = 0;
  m.n = 0;
  char db[4096];
  snprintf(db, sizeof db, "%s", tu_store_path(name));
  takhin_options opt;
  takhin_options_init(&opt);
  opt.durability = durability;
  takhin_store *s;
  cr_assert_eq(takhin_open(db, &opt, &s), TAKHIN_OK, "%s", takhin_errmsg());
  static const char *const cfg[] = {
      "cleanup_policy", "compact", "segment_bytes", "65536", "delete_retention_ms",
      "3600000",        NULL};
  cr_assert_eq(takhin_topic_create(s, "t", 1, cfg), TAKHIN_OK, "%s", takhin_errmsg());
  static takhin_record recs[200];
  static int picked[200];
  /* each record's key in a buffer of its own whose bytes past the key are
  ** not zero: a read past the key must not pass for the slot's padding */
  static uint8_t kbuf[200][MAXLEN + 16];
  memset(kbuf, 0xa5, sizeof kbuf);
  int batches = 0;
  while (m.n < NRECS) {
    size_t n = 1 + (size_t)(rand_r(&seed) % 200); /* across a run of 128 (keyindex.c) */
    for (size_t j = 0; j < n; j++) {
      int k = (int)(rand_r(&seed) % (unsigned)ks.n);
      int tomb = rand_r(&seed) % 10 == 0;
      picked[j] = k;
      memcpy(kbuf[j], ks.key[k], ks.len[k]);
      memset(kbuf[j] + ks.len[k], 0xa5, sizeof kbuf[j] - ks.len[k]);
      recs[j] = (takhin_record){.key = kbuf[j],
                                .key_len = ks.len[k],
                                .value = tomb ? NULL : "v",
                                .value_len = tomb ? 0 : 1,
                                .timestamp = TAKHIN_TIMESTAMP_NOW};
    }
    int64_t first;
    cr_assert_eq(takhin_produce(s, "t", 0, recs, n, &first), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(first, m.n);
    for (size_t j = 0; j < n; j++) {
      m.latest[picked[j]] = m.n + (int64_t)j;
      m.tomb[picked[j]] = recs[j].value == NULL;
    }
    m.n += (int64_t)n;
    if (++batches % 40 == 0) check_lookups(s, &ks, &m, "while producing");
  }
  check_lookups(s, &ks, &m, "produced");
  takhin_compaction_result r;
  cr_assert_eq(takhin_compact(s, "t", 0, 1, &r), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(r.records_removed, 0);
  check_log(s, &ks, &m);
  check_lookups(s, &ks, &m, "compacted");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  cr_assert_eq(takhin_open(db, &opt, &s), TAKHIN_OK, "%s", takhin_errmsg());
  check_lookups(s, &ks, &m, "reopened");
  check_log(s, &ks, &m);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  tk_key_hash_mask = UINT32_MAX;
  tk_key_map_keys = 8192;
}

Test(keyindex, every_key_length_against_a_model, .timeout = 300) {
  run("keyindex_plain", UINT32_MAX, 8192, TAKHIN_DURABILITY_OS, 1);
}

Test(keyindex, colliding_hashes_against_a_model, .timeout = 300) {
  run("keyindex_collide_all", 0, 8192, TAKHIN_DURABILITY_OS, 2);
  run("keyindex_collide_few", 7, 8192, TAKHIN_DURABILITY_OS, 3);
}

/* Maps handed to the key-writer thread every few batches, and (BUFFERED)
** keys waiting for their records to be written before they join a map. */
Test(keyindex, maps_handed_over_against_a_model, .timeout = 300) {
  run("keyindex_handover", UINT32_MAX, 61, TAKHIN_DURABILITY_OS, 4);
  run("keyindex_handover_collide", 3, 61, TAKHIN_DURABILITY_OS, 5);
  run("keyindex_buffered", 1, 500, TAKHIN_DURABILITY_BUFFERED, 6);
}
