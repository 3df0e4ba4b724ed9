/*
** keyindex.c -- the key index of a compacted topic: each key's latest
** offset (the catalog table takhin_cat_key), from which compaction decides
** what survives.
**
** The index is the partition's, and this file is the only code that changes
** its state (the pending keys, key_from, key_upto, keys_tracked). It has two
** faces:
**
**   - below the partition (partition.c calls them, append_lock held): an
**     append notes the keys of its records (tk_key_note); the partition's
**     catalog persist gathers the newest record of each pending key into a
**     map, and when the map is due (a second old, or full) hands it to the
**     store's key-writer thread, which writes its rows and moves key_upto in
**     a transaction of its own (below), so that no producer pays for a
**     second's worth of keys; a write that failed or was taken back forgets
**     keys (tk_key_forget_from, tk_key_undo). Rows are only written for
**     records already in the file: a row for a record a crash could still
**     take back would make compaction drop the key's real latest record.
**   - above it (store.c, cursor.c, compaction.c): load the state on open,
**     catch the index up with the log (tk_key_catch_up, which reads the
**     log through a cursor), bring it up to date before compaction or a
**     lookup (tk_key_cover_log), and look a key up (tk_key_lookup).
**
** Each put that supersedes a record (in a map, or in the upsert of key
** rows: takhin_supersede) notes the older offset; the rows' write ORs them
** into the bitmaps of takhin_cat_dead in the same transaction (dead.c), from
** which compaction reads a segment's survivors.
**
** Neither face calls up into the partition: compaction and a key lookup
** flush the partition themselves first (its persist writes the key rows),
** then ask the index. So the produce path runs partition -> keyindex ->
** catalog, and the compaction path compaction -> partition (flush) ->
** keyindex rows, then compaction -> keyindex (catch-up, coverage).
*/
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "buf.h"
#include "catalog.h"
#include "cursor.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "sqlite_compat.h"
#include "topic.h"

/* ---- pending keys (append_lock held) ------------------------------------ */

/* Key rows are written in a batch at most once a second, or when this many
** keys (or key bytes) wait, or when the log runs this many records ahead of
** key_upto (what a catch-up after a crash re-reads); and always at a flush
** (takhin_flush, close, a lookup, a compaction). */
#ifdef TAKHIN_TESTING
int tk_key_map_keys = 8192; /* testing.h */
#define KEYMAP_KEYS ((size_t)tk_key_map_keys)
#else
#define KEYMAP_KEYS 8192
#endif
#define KEYMAP_BYTES (4u << 20)
#define KEYMAP_LAG (1 << 20)

/* ---- the map of latest keys ----------------------------------------------
**
** Every keyed record a producer appends goes through map_put, so it is
** built for that: a key of up to TK_KEY_INLINE bytes (the common case) is
** read with overlapping word loads, hashed with one 128-bit multiply, and found by
** comparing two words in its slot, with no byte loop, no memcmp and no
** pointer into the key bytes; a run of records hashes first and prefetches
** its slots, then probes (note). Longer keys take a loop and a memcmp. */

/* A slot's hash has 31 bits; the last says whether the record is a tombstone. */
#define TOMB (1u << 31)
#ifdef TAKHIN_TESTING
uint32_t tk_key_hash_mask = UINT32_MAX; /* testing.h */
#define HASH_MASK (tk_key_hash_mask & ~TOMB)
#else
#define HASH_MASK (~TOMB)
#endif
/* batch.c refuses keys of 1 GiB or more. */
#define KEY_MAX ((size_t)UINT32_MAX >> 1)

static inline uint64_t load64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

static inline uint64_t load32(const uint8_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

/* A key of up to TK_KEY_INLINE bytes as the two zero-padded words of its
** slot, from overlapping loads (little-endian: the padding is the high
** bytes, so shifting an overlapping load right drops the repeated bytes). */
static inline void key_words(const uint8_t *k, size_t n, uint64_t w[2]) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (n >= 8) {
    w[0] = load64(k);
    w[1] = n > 8 ? load64(k + n - 8) >> (8 * (16 - n)) : 0;
  } else if (n >= 4) {
    w[0] = load32(k) | (load32(k + n - 4) >> (8 * (8 - n))) << 32;
    w[1] = 0;
  } else {
    w[0] = n ? k[0] | (uint64_t)k[n / 2] << (8 * (n / 2)) | (uint64_t)k[n - 1] << (8 * (n - 1)) : 0;
    w[1] = 0;
  }
#else
  w[0] = w[1] = 0;
  memcpy(w, k, n);
#endif
}

/* Random per process, set before any key is hashed (the hash is never
** stored): with fixed constants a client could send keys whose product is 0,
** or whose long-key rounds meet, and turn every insert into a scan. */
static uint64_t seed_a = 0x9e3779b97f4a7c15ULL, seed_b = 0xc2b2ae3d27d4eb4fULL;

__attribute__((constructor)) static void seed_init(void) {
  uint64_t r[2];
  if (getrandom(r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) {
    seed_a ^= r[0];
    seed_b ^= r[1];
  }
}

/* Two words and a length to 31 bits. With 128-bit products, one multiply
** of the two words (each xored with its seed) folded high into low, as
** wyhash mixes: every input bit reaches the low bits, which index the table.
** Otherwise two products, a fold and a third multiply, whose high half takes
** every input bit (keys often differ in their last byte only, which a single
** 64-bit multiply leaves in its top 8 bits). */
static inline uint32_t hash_words(uint64_t a, uint64_t b, uint64_t n) {
#ifdef __SIZEOF_INT128__
  __uint128_t r = (__uint128_t)(a ^ seed_a) * (b ^ n ^ seed_b);
  return (uint32_t)((uint64_t)r ^ (uint64_t)(r >> 64)) & HASH_MASK;
#else
  uint64_t h = (a ^ n ^ seed_a) * 0x9e3779b97f4a7c15ULL ^ (b ^ seed_b) * 0xc2b2ae3d27d4eb4fULL;
  h ^= h >> 32;
  h *= 0xff51afd7ed558ccdULL;
  return (uint32_t)(h >> 32) & HASH_MASK;
#endif
}

/* A key longer than TK_KEY_INLINE: 16 bytes a round, the last 16 overlapping. */
static uint32_t hash_long(const uint8_t *k, size_t n) {
  uint64_t h = n * 0x9e3779b97f4a7c15ULL ^ seed_b;
  for (size_t i = 0; i + 16 < n; i += 16) {
    h = (h ^ load64(k + i)) * 0x9e3779b97f4a7c15ULL ^ load64(k + i + 8) * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 29;
  }
  return hash_words(h ^ load64(k + n - 16), load64(k + n - 8), n);
}

/* The key's hash, and its slot words when it is short enough to sit in one. */
static inline __attribute__((always_inline)) uint32_t key_hash(const uint8_t *k, size_t n,
                                                               uint64_t w[2]) {
  if (n <= TK_KEY_INLINE) {
    key_words(k, n, w);
    return hash_words(w[0], w[1], n);
  }
  w[0] = w[1] = 0;
  return hash_long(k, n);
}

/* The bytes of the key in slot e. */
static inline const uint8_t *slot_key(const tk_keymap *m, const tk_key_slot *e) {
  return e->len <= TK_KEY_INLINE ? (const uint8_t *)e->key : m->bytes.p + e->key[0];
}

static void map_clear(tk_keymap *m) {
  if (m->n)
    for (size_t i = 0; i < m->cap; i++) m->slot[i].offset = -1;
  m->n = 0;
  m->bytes.len = 0;
  m->max_offset = -1;
  tk_dead_clear(&m->dead);
}

static void map_free(tk_keymap *m) {
  free(m->slot);
  tk_buf_free(&m->bytes);
  tk_dead_free(&m->dead);
  memset(m, 0, sizeof *m);
  m->max_offset = -1;
}

/* The slot of a key of len <= TK_KEY_INLINE bytes (hash h, words w0 w1), or
** the empty slot where it goes: the table always has one (n < grow_at <
** cap). Two words compared, no memcmp: the producer's probe, kept apart
** from the long keys' so that it stays in registers. */
static inline __attribute__((always_inline)) tk_key_slot *probe_short(tk_key_slot *slot,
                                                                      size_t mask, uint32_t h,
                                                                      size_t len, uint64_t w0,
                                                                      uint64_t w1) {
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    tk_key_slot *e = &slot[i];
    if (e->offset < 0) return e;
    /* the second word first: keys that share a prefix differ there */
    if (e->key[1] == w1 && e->key[0] == w0 && e->len == (uint32_t)len) return e;
  }
}

/* The same for a longer key, whose bytes are in m->bytes. */
static tk_key_slot *probe_long(const tk_keymap *m, uint32_t h, const uint8_t *key, size_t len) {
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    tk_key_slot *e = &m->slot[i];
    if (e->offset < 0) return e;
    if ((e->hash & ~TOMB) == h && e->len == len && !memcmp(m->bytes.p + e->key[0], key, len))
      return e;
  }
}

/* Twice the slots, until more keys fit under 3/4 of them. Keys are distinct:
** each moves to the first empty slot from its hash, with no compare. */
static int map_reserve(tk_keymap *m, size_t more) {
  size_t cap = m->cap ? m->cap : 128;
  while (m->n + more > cap / 4 * 3) {
    if (cap > SIZE_MAX / 2 / sizeof *m->slot)
      return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
    cap *= 2;
  }
  if (cap == m->cap) return TAKHIN_OK;
  tk_key_slot *ns = malloc(cap * sizeof *ns);
  if (!ns) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  for (size_t i = 0; i < cap; i++) ns[i].offset = -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slot[i].offset >= 0) {
      size_t j = m->slot[i].hash & ~TOMB & (cap - 1);
      while (ns[j].offset >= 0) j = (j + 1) & (cap - 1);
      ns[j] = m->slot[i];
    }
  free(m->slot);
  m->slot = ns;
  m->cap = cap;
  m->grow_at = cap / 4 * 3;
  return TAKHIN_OK;
}

/* A new long key's bytes into the map (slot e, empty): 0, or ENOMEM. */
static int keep_long(tk_keymap *m, tk_key_slot *e, const uint8_t *key, size_t len) {
  if (tk_buf_reserve(&m->bytes, len)) return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  memcpy(m->bytes.p + m->bytes.len, key, len);
  e->key[0] = m->bytes.len;
  e->key[1] = 0;
  m->bytes.len += len;
  return TAKHIN_OK;
}

/* The record at offset is key's newest unless the map holds a newer one
** (records may come in out of order: BUFFERED batches join later); the
** older of the two is dead (dead.c), unless both are the same record. The
** caller made room (n < grow_at) and moves max_offset. */
static int map_put_hashed(tk_keymap *m, uint32_t h, const uint64_t w[2], const uint8_t *key,
                          size_t len, int64_t offset, int tombstone, int64_t now) {
  tk_key_slot *e = len <= TK_KEY_INLINE ? probe_short(m->slot, m->cap - 1, h, len, w[0], w[1])
                                        : probe_long(m, h, key, len);
  if (e->offset < 0) {
    if (len <= TK_KEY_INLINE) {
      e->key[0] = w[0];
      e->key[1] = w[1];
    } else if (keep_long(m, e, key, len)) {
      return TAKHIN_ENOMEM;
    }
    e->len = (uint32_t)len;
    if (!m->n) m->since_ms = now;
    m->n++;
  } else if (offset <= e->offset) {
    return offset < e->offset && tk_dead_push(&m->dead, offset) ? TAKHIN_ENOMEM : TAKHIN_OK;
  } else if (tk_dead_push(&m->dead, e->offset)) {
    return TAKHIN_ENOMEM;
  }
  e->offset = offset;
  e->hash = h | (tombstone ? TOMB : 0);
  return TAKHIN_OK;
}

/* One key at a time (a catch-up, a failed write's rows coming back). */
static int map_put(tk_keymap *m, const void *key, size_t len, int64_t offset, int tombstone,
                   int64_t now) {
  if (len > KEY_MAX) return tk_err(TAKHIN_EINVAL, "a key of %zu bytes is too long to index", len);
  if (m->n >= m->grow_at && map_reserve(m, 1)) return TAKHIN_ENOMEM;
  if (offset > m->max_offset) m->max_offset = offset; /* before: a failed put may leave it in */
  uint64_t w[2];
  uint32_t h = key_hash(key, len, w);
  return map_put_hashed(m, h, w, key, len, offset, tombstone, now);
}

/* A hot key fills no slot but supersedes a record per put: the dead
** offsets a map holds are bounded too (a bit each in its window, 8 bytes
** each in its list: dead.h), as is the catch-up a crash leaves
** (KEYMAP_LAG). */
#define KEYMAP_DEAD (1u << 20)

static int map_full(const tk_keymap *m) {
  return m->n >= KEYMAP_KEYS || m->bytes.len >= KEYMAP_BYTES || m->dead.n >= KEYMAP_DEAD;
}

static int map_row(void *ctx, size_t pos, tk_row *out) {
  const tk_keymap *m = ctx;
  const tk_key_slot *e = &m->slot[pos];
  if (e->offset < 0) return 0;
  out->v[0] = e->offset;
  out->v[1] = e->hash >> 31;
  out->blob = slot_key(m, e);
  out->blob_len = e->len;
  return 1;
}

/* One row per key of the map, in one statement execution, then the
** offsets they superseded, in the map and in the rows they replaced (cat_lock
** held, inside a transaction: a rollback drops both). */
static int map_write(takhin_store *s, int64_t topic_id, int32_t part, tk_keymap *m) {
  int rc = TAKHIN_OK;
  if (m->n) {
    sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_KEY_UPSERT);
    if (!st) return TAKHIN_ECATALOG;
    tk_rows rows = {.n = m->cap, .ctx = (void *)m, .get = map_row};
    sqlite3_bind_int64(st, 1, topic_id);
    sqlite3_bind_int(st, 2, part);
    tk_cat_bind_rows(st, 3, &rows);
    tk_dead_bind(st, 4, &m->dead);
    rc = tk_cat_step_done(s, st, "write key rows");
  }
  /* The offsets stay with the map until its rows are committed (map_clear):
  ** a rollback writes them again with the rows (the upsert's share is then
  ** noted twice, harmless). */
  if (!rc) rc = tk_dead_write(s, topic_id, part, &m->dead);
  return rc;
}

void tk_key_free(tk_partition *p) {
  tk_buf_free(&p->keybuf);
  free(p->keys);
  p->keys = NULL;
  p->nkeys = p->keys_cap = 0;
  map_free(&p->latest);
  map_free(&p->writing); /* never queued here: a queued write holds a topic reference */
}

/* ---- the key-writer thread ------------------------------------------------
**
** A persist that finds the map of latest keys due hands it over (the
** partition's spare map takes its place, so steady state allocates nothing)
** and goes on; one thread per store, started on first use, writes its rows
** and moves key_upto to what the map covers, in one transaction under
** cat_lock alone. The partition's state says where its map is (kw_state):
**
**   KW_IDLE    no map handed over;
**   KW_QUEUED  the thread owns p->writing and kw_*: at most one per
**              partition, so key_upto moves in order;
**   KW_DONE    written (or failed, kw_rc); the next append_lock holder takes
**              it back (kw_take_back): key_upto moves in memory, or the rows
**              of a failed write join the map again for the next write.
**
** While a map is queued, a persist moves no key_upto (rows it must write, at
** a flush or with a full map, may land before the queued ones: the upsert
** keeps each key's newest offset whatever the order). A crash before the
** thread commits leaves key_upto where it was: the next open's catch-up
** re-reads those keys from the log. Callers that need every row written
** (tk_part_flush, so compaction, key lookups, close; deleting a topic) wait
** with tk_key_wait_written, never holding cat_lock: the thread takes kw_mu
** and cat_lock, never both at once, and never append_lock. kw_mu is a leaf
** (a persist queues with append_lock and cat_lock held; nobody takes
** another lock inside it). */
enum { KW_IDLE, KW_QUEUED, KW_DONE };

#ifdef TAKHIN_TESTING
atomic_int tk_key_writer_delay_ms;   /* testing.h */
atomic_int tk_key_writer_fail_every; /* testing.h */
static atomic_ulong kw_writes;
#endif

static int kw_write(tk_partition *p) {
  takhin_store *s = p->topic->store;
  int64_t id = p->topic->topic_id;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_begin(s);
  if (!rc) rc = map_write(s, id, p->id, &p->writing);
  if (!rc && p->kw_move) rc = tk_key_set_upto(s, id, p->id, p->kw_upto);
#ifdef TAKHIN_TESTING
  int fail_every = atomic_load(&tk_key_writer_fail_every);
  if (!rc && fail_every && (atomic_fetch_add(&kw_writes, 1) + 1) % (unsigned)fail_every == 0)
    rc = tk_err(TAKHIN_ECATALOG, "injected failure of a key-row write");
#endif
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

static void *kw_main(void *arg) {
  takhin_store *s = arg;
  tk_thread_init("takhin-keys", 0);
  pthread_mutex_lock(&s->kw_mu);
  for (;;) {
    while (!s->kw_head && !s->kw_stop) pthread_cond_wait(&s->kw_cv, &s->kw_mu);
    tk_partition *p = s->kw_head;
    if (!p) break; /* stopping, and nothing left */
    s->kw_head = p->kw_next;
    if (!s->kw_head) s->kw_tail = NULL;
    pthread_mutex_unlock(&s->kw_mu);
    tk_topic *t = p->topic;
#ifdef TAKHIN_TESTING
    int delay_ms = atomic_load(&tk_key_writer_delay_ms);
    if (delay_ms) usleep((useconds_t)delay_ms * 1000);
#endif
    int rc = kw_write(p);
    pthread_mutex_lock(&s->kw_mu);
    p->kw_rc = rc;
    atomic_store_explicit(&p->kw_state, KW_DONE, memory_order_release);
    pthread_cond_broadcast(&s->kw_cv);
    pthread_mutex_unlock(&s->kw_mu);
    tk_topic_unref(t); /* the queue's reference: p may be freed here */
    pthread_mutex_lock(&s->kw_mu);
  }
  pthread_mutex_unlock(&s->kw_mu);
  return NULL;
}

/* append_lock held, state KW_IDLE, m->n > 0: queue the map (1), or 0 when
** no thread may run (the caller writes it itself). */
static int kw_hand_over(tk_partition *p, int64_t upto, int move) {
  takhin_store *s = p->topic->store;
  tk_assert(atomic_load_explicit(&p->kw_state, memory_order_relaxed) == KW_IDLE);
  pthread_mutex_lock(&s->kw_mu);
  if (!s->kw_running && !s->kw_stop && pthread_create(&s->kw_thread, NULL, kw_main, s) == 0)
    s->kw_running = 1;
  int queued = s->kw_running && !s->kw_stop;
  if (queued) {
    tk_keymap spare = p->writing; /* emptied when it came back */
    p->writing = p->latest;
    p->latest = spare;
    p->latest.max_offset = -1;
    p->kw_upto = upto;
    p->kw_move = move;
    p->kw_rc = TAKHIN_OK;
    atomic_store_explicit(&p->kw_state, KW_QUEUED, memory_order_relaxed);
    tk_topic_ref(p->topic);
    p->kw_next = NULL;
    if (s->kw_tail) s->kw_tail->kw_next = p;
    else s->kw_head = p;
    s->kw_tail = p;
    pthread_cond_broadcast(&s->kw_cv);
  }
  pthread_mutex_unlock(&s->kw_mu);
  return queued;
}

/* append_lock held: a finished write comes back (see above). */
static void kw_take_back(tk_partition *p) {
  if (atomic_load_explicit(&p->kw_state, memory_order_acquire) != KW_DONE) return;
  tk_keymap *w = &p->writing;
  if (p->kw_rc == TAKHIN_OK) {
    if (p->kw_move && p->kw_upto > p->key_upto) p->key_upto = p->kw_upto;
  } else { /* rolled back: the rows go with the next write (newer offsets win) */
    int64_t now = tk_now_ms();
    for (size_t i = 0; i < w->cap; i++) {
      const tk_key_slot *e = &w->slot[i];
      if (e->offset >= 0 &&
          map_put(&p->latest, slot_key(w, e), e->len, e->offset, e->hash >> 31, now)) {
        p->keys_tracked = 0; /* until a catch-up re-reads them from key_upto */
        break;
      }
    }
    /* and the offsets those rows superseded, to be written with them */
    if (p->keys_tracked && tk_dead_merge(&p->latest.dead, &w->dead)) p->keys_tracked = 0;
  }
  map_clear(w);
  atomic_store_explicit(&p->kw_state, KW_IDLE, memory_order_relaxed);
}

int tk_key_writer_busy(tk_partition *p) {
  TK_ASSERT_HELD(&p->append_lock);
  /* A full map is written by the persist itself while the thread is busy
  ** (tk_key_persist_rows): that one must not wait. */
  return atomic_load_explicit(&p->kw_state, memory_order_acquire) == KW_QUEUED &&
         !map_full(&p->latest);
}

int tk_key_writing(tk_partition *p) {
  TK_ASSERT_HELD(&p->append_lock);
  kw_take_back(p);
  return atomic_load_explicit(&p->kw_state, memory_order_relaxed) == KW_QUEUED;
}

void tk_key_wait_written(tk_partition *p) {
  takhin_store *s = p->topic->store;
  pthread_mutex_lock(&s->kw_mu);
  while (atomic_load_explicit(&p->kw_state, memory_order_relaxed) == KW_QUEUED)
    pthread_cond_wait(&s->kw_cv, &s->kw_mu);
  pthread_mutex_unlock(&s->kw_mu);
}

void tk_key_writer_stop(takhin_store *s) {
  pthread_mutex_lock(&s->kw_mu);
  s->kw_stop = 1;
  pthread_cond_broadcast(&s->kw_cv);
  int running = s->kw_running;
  pthread_mutex_unlock(&s->kw_mu);
  if (running) pthread_join(s->kw_thread, NULL); /* it empties the queue first */
  pthread_mutex_lock(&s->kw_mu);
  s->kw_running = 0;
  pthread_mutex_unlock(&s->kw_mu);
}

void tk_key_start_at(tk_partition *p, int64_t from) {
  TK_ASSERT_HELD(&p->append_lock);
  p->key_from = p->key_upto = p->dead_from = from;
  p->keys_tracked = 1;
}

/* The map holds a record at from or later: it cannot give back the older
** offset of that key. The index stops covering the log (key_upto stays, as
** no map row was written past it) until a catch-up re-reads it from there.
** A map handed to the writer thread holds records below next_offset only,
** and from is never below it (records never written, or a borrowed
** store's, which hands no map over). */
static void map_forget_from(tk_partition *p, int64_t from) {
  if (!p->latest.n || p->latest.max_offset < from) return;
  map_clear(&p->latest);
  p->keys_tracked = 0;
}

void tk_key_forget_from(tk_partition *p, int64_t from) {
  TK_ASSERT_HELD(&p->append_lock);
  size_t n = p->nkeys;
  while (n && p->keys[n - 1].offset >= from) n--;
  p->nkeys = n;
  p->keybuf.len = n ? p->keys[n - 1].key_at + p->keys[n - 1].key_len : 0;
  map_forget_from(p, from);
}

size_t tk_key_pending_weight(const tk_partition *p) {
  return p->nkeys / 64 + (map_full(&p->latest) ? TK_PERSIST_ENTRIES : 0);
}

size_t tk_key_unwritten(const tk_partition *p) {
  /* a map done but not taken back counts too: its write may have failed */
  return p->nkeys + p->latest.n +
         (atomic_load_explicit(&p->kw_state, memory_order_relaxed) != KW_IDLE);
}

/* Remember the keys of records [base, base + n) for the key index. */
static int note_keys(tk_partition *p, const takhin_record *recs, size_t n, int64_t base) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += recs[i].key_len;
  /* the same doubling as every array (buf.h): no allocation once warm */
  if (tk_array_reserve(&p->keys, &p->keys_cap, p->nkeys + n, sizeof *p->keys, 256))
    return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  if (tk_buf_reserve(&p->keybuf, bytes))
    return tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
  for (size_t i = 0; i < n; i++) {
    tk_key_pending *k = &p->keys[p->nkeys++];
    k->offset = base + (int64_t)i;
    k->key_at = p->keybuf.len;
    k->key_len = recs[i].key_len;
    k->tombstone = recs[i].value == NULL;
    memcpy(p->keybuf.p + p->keybuf.len, recs[i].key, recs[i].key_len);
    p->keybuf.len += recs[i].key_len;
  }
  return TAKHIN_OK;
}

/* Records hashed, their slots prefetched, before the first probe. */
#define NOTE_RUN 128

/* Records already in the file go straight into the map; others (BUFFERED
** batches not written yet) wait in keys[] until a persist finds them written.
** The extension's store keeps every key in keys[]: its appends may be taken
** back (tk_key_undo), which the map could not undo. */
static int note(tk_partition *p, const takhin_record *recs, size_t n, int64_t base) {
  if (base + (int64_t)n > p->next_offset || p->topic->store->borrowed)
    return note_keys(p, recs, n, base);
  tk_keymap *m = &p->latest;
  int64_t now = m->n ? 0 : tk_now_ms();
  /* Before the puts: a put that fails may leave the records before it in. */
  if (base + (int64_t)n - 1 > m->max_offset) m->max_offset = base + (int64_t)n - 1;
  /* A run at a time: hash every key and prefetch its slot, then probe, so
  ** the slots' cache misses overlap instead of following one another. */
  struct {
    uint64_t w[2];
    uint32_t h;
  } run[NOTE_RUN];
  for (size_t at = 0; at < n; at += NOTE_RUN) {
    size_t k = n - at < NOTE_RUN ? n - at : NOTE_RUN;
    const takhin_record *r = recs + at;
    if (m->n + k > m->grow_at && map_reserve(m, k)) return TAKHIN_ENOMEM;
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < k; i++) {
      tk_assert(r[i].key_len <= KEY_MAX); /* the batch was encoded: under 1 GiB */
      run[i].h = key_hash(r[i].key, r[i].key_len, run[i].w);
      __builtin_prefetch(&m->slot[run[i].h & mask], 1);
    }
    /* map_put_hashed, with a short key's probe inlined over local copies
    ** of the table (its stores cannot move m->slot or m->cap) */
    tk_key_slot *slot = m->slot;
    for (size_t i = 0; i < k; i++) {
      size_t len = r[i].key_len;
      int64_t offset = base + (int64_t)(at + i);
      int tombstone = r[i].value == NULL;
      if (len > TK_KEY_INLINE) {
        if (map_put_hashed(m, run[i].h, run[i].w, r[i].key, len, offset, tombstone, now))
          return TAKHIN_ENOMEM;
        continue;
      }
      tk_key_slot *e = probe_short(slot, mask, run[i].h, len, run[i].w[0], run[i].w[1]);
      if (e->offset < 0) {
        e->key[0] = run[i].w[0];
        e->key[1] = run[i].w[1];
        e->len = (uint32_t)len;
        if (!m->n) m->since_ms = now;
        m->n++;
      } else if (offset <= e->offset) {
        /* an older record joining late is dead (dead.c) */
        if (offset < e->offset && tk_dead_push(&m->dead, offset)) return TAKHIN_ENOMEM;
        continue;
      } else if (tk_dead_push(&m->dead, e->offset)) { /* superseded: dead */
        return TAKHIN_ENOMEM;
      }
      e->offset = offset;
      e->hash = run[i].h | (tombstone ? TOMB : 0);
    }
  }
  return TAKHIN_OK;
}

void tk_key_note(tk_partition *p, const takhin_record *keys, size_t nkeys, int64_t base) {
  TK_ASSERT_HELD(&p->append_lock);
  /* On failure the key index no longer covers the log: key_upto stops (and
  ** compaction with it) until the next open rebuilds the index from the log. */
  if (p->topic->cfg.compact && nkeys && note(p, keys, nkeys, base)) p->keys_tracked = 0;
}

int tk_key_persist_rows(tk_partition *p, int flush, tk_key_persist *kp) {
  TK_ASSERT_HELD(&p->append_lock);
  TK_ASSERT_HELD(&p->topic->store->cat_lock);
  takhin_store *s = p->topic->store;
  tk_topic *t = p->topic;
  tk_keymap *m = &p->latest;
  int64_t now = tk_now_ms();
  kw_take_back(p);
  /* Keys of records now in the file join the map (see the top). */
  size_t nk = 0;
  int rc = TAKHIN_OK;
  for (; nk < p->nkeys && p->keys[nk].offset < p->next_offset && !rc; nk++) {
    const tk_key_pending *k = &p->keys[nk];
    rc = map_put(m, p->keybuf.p + k->key_at, k->key_len, k->offset, k->tombstone, now);
  }
  if (rc) { /* what could not join is lost to the index until a catch-up */
    p->keys_tracked = 0;
    rc = TAKHIN_OK;
  }
  if (nk) {
    memmove(p->keys, p->keys + nk, (p->nkeys - nk) * sizeof *p->keys);
    p->nkeys -= nk;
    if (p->nkeys == 0) p->keybuf.len = 0;
  }
  kp->upto = p->nkeys ? p->keys[0].offset : p->next_offset;
  kp->wrote = 0;
  kp->move_upto = 0;
  int full = map_full(m);
  int due = flush || s->borrowed || full || now - m->since_ms >= TK_PERSIST_MS ||
            kp->upto - p->key_upto >= KEYMAP_LAG;
  if (m->n && !due) return TAKHIN_OK;
  /* One look at the state, acted on: the thread may finish (QUEUED ->
  ** DONE) at any moment, also since kw_take_back above. A map handed over
  ** while the last is DONE and not taken back would swap that one (failed
  ** rows and all) into latest, and the new write would move key_upto past
  ** rows that are not written. */
  int kw = atomic_load_explicit(&p->kw_state, memory_order_acquire);
  if (kw == KW_DONE) {
    kw_take_back(p);
    kw = KW_IDLE;
  }
  if (kw == KW_QUEUED) {
    /* The thread has the previous map: key_upto waits for its commit. Rows
    ** are written here only when they must be: a flush, or a full map (the
    ** producers outrun the thread). */
    if (m->n && (flush || full)) {
      rc = map_write(s, t->topic_id, p->id, m);
      kp->wrote = 1;
    }
    return rc;
  }
  if (m->n && !flush && !s->borrowed &&
      kw_hand_over(p, kp->upto, t->cfg.compact && p->keys_tracked && kp->upto > p->key_upto))
    return TAKHIN_OK;
  if (m->n) {
    rc = map_write(s, t->topic_id, p->id, m);
    kp->wrote = 1;
  }
  kp->move_upto = t->cfg.compact && p->keys_tracked && kp->upto > p->key_upto;
  if (!rc && kp->move_upto) rc = tk_key_set_upto(s, t->topic_id, p->id, kp->upto);
  return rc;
}

void tk_key_persist_done(tk_partition *p, const tk_key_persist *kp) {
  TK_ASSERT_HELD(&p->append_lock);
  if (kp->wrote) map_clear(&p->latest);
  if (kp->move_upto) p->key_upto = kp->upto;
}

void tk_key_undo(tk_partition *p, int64_t next, int64_t key_upto, int persisted) {
  TK_ASSERT_HELD(&p->append_lock);
  tk_key_forget_from(p, next);
  /* A persist ran inside the transaction being rolled back: the key rows it
  ** wrote are gone from memory too, so stop key_upto (and compaction) until
  ** the next open rebuilds the key index from the log. */
  if (persisted && p->key_upto != key_upto) {
    p->key_upto = key_upto;
    p->keys_tracked = 0;
  }
}

/* ---- catalog rows (cat_lock held) ----------------------------------------- */

/* Run the named statement over (topic, partition, v). */
static int set_bound(takhin_store *s, int id, int64_t topic_id, int32_t part, int64_t v) {
  sqlite3_stmt *st = tk_cat_stmt(s, id);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, v);
  return tk_cat_step_done(s, st, tk_sql_name(id));
}

int tk_key_set_upto(takhin_store *s, int64_t topic_id, int32_t part, int64_t upto) {
  TK_ASSERT_HELD(&s->cat_lock);
  return set_bound(s, TK_SQL_SET_KEY_UPTO, topic_id, part, upto);
}

int tk_key_set_from(takhin_store *s, int64_t topic_id, int32_t part, int64_t from) {
  TK_ASSERT_HELD(&s->cat_lock);
  int rc = set_bound(s, TK_SQL_SET_KEY_FROM, topic_id, part, from);
  /* every record from key_from on is noted from now: dead_from = key_from */
  return rc ? rc : set_bound(s, TK_SQL_CLEAR_DEAD_FROM, topic_id, part, 0);
}

int tk_key_forget_expired(takhin_store *s, int64_t topic_id, int32_t part, int64_t from, int64_t to,
                          int64_t expired_before) {
  TK_ASSERT_HELD(&s->cat_lock);
  int rc = TAKHIN_OK;
  static const int ids[] = {TK_SQL_MARK_EXPIRED_DEAD, TK_SQL_FORGET_EXPIRED_TOMBSTONES};
  for (size_t i = 0; i < sizeof ids / sizeof *ids && !rc; i++) {
    sqlite3_stmt *st = tk_cat_stmt(s, ids[i]);
    if (!st) return TAKHIN_ECATALOG;
    sqlite3_bind_int64(st, 1, topic_id);
    sqlite3_bind_int(st, 2, part);
    sqlite3_bind_int64(st, 3, from);
    sqlite3_bind_int64(st, 4, to);
    sqlite3_bind_int64(st, 5, expired_before);
    rc = tk_cat_step_done(s, st, tk_sql_name(ids[i]));
  }
  return rc ? rc : set_bound(s, TK_SQL_TRIM_DEAD, topic_id, part, from);
}

int tk_key_load(tk_partition *p) {
  TK_ASSERT_HELD(&p->topic->store->cat_lock);
  takhin_store *s = p->topic->store;
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_KEY_STATE);
  if (!st) return TAKHIN_OK; /* as before: the error is set, the open goes on */
  sqlite3_bind_int64(st, 1, p->topic->topic_id);
  sqlite3_bind_int(st, 2, p->id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    p->key_from = sqlite3_column_int64(st, 0);
    p->key_upto = sqlite3_column_int64(st, 1);
    p->clean_upto = sqlite3_column_int64(st, 2);
  }
  tk_cat_done(s, st);
  /* No row: key_from. No table (a read-only open of an older catalog, which
  ** never compacts): nothing is covered. */
  p->dead_from = INT64_MAX;
  if ((st = tk_cat_stmt(s, TK_SQL_DEAD_FROM))) {
    sqlite3_bind_int64(st, 1, p->topic->topic_id);
    sqlite3_bind_int(st, 2, p->id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) p->dead_from = sqlite3_column_int64(st, 0);
    else if (step == SQLITE_DONE) p->dead_from = p->key_from;
    tk_cat_done(s, st);
  }
  return TAKHIN_OK;
}

/* ---- catching up with the log, and lookups --------------------------------- */

/* Once the key index covers the whole log, appends note every new key:
** persists may then move key_upto (see keys_tracked). */
static void keys_tracked(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  p->keys_tracked = 1;
  pthread_mutex_unlock(&p->append_lock);
}

int tk_key_catch_up(tk_partition *p) {
  takhin_store *s = p->topic->store;
  if (!p->topic->cfg.compact || s->opt.read_only) {
    keys_tracked(p); /* nothing to catch up; a later switch to compact starts at its end */
    return TAKHIN_OK;
  }
  int64_t id = p->topic->topic_id, hwm, start;
  tk_part_offsets(p, &start, NULL, &hwm); /* the written log: its keys can be read */
  /* A key row past the end of the log (the file lost a tail the catalog
  ** kept: power loss in OS mode) could make compaction drop its key's real
  ** latest record: rebuild the partition's key index from the log. */
  int64_t dangling = 0, new_dead_from = -1;
  pthread_mutex_lock(&s->cat_lock);
  sqlite3_stmt *st = tk_cat_stmt(s, TK_SQL_KEYS_PAST);
  int rc = st ? TAKHIN_OK : TAKHIN_ECATALOG;
  if (st) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, p->id);
    sqlite3_bind_int64(st, 3, hwm);
    if (sqlite3_step(st) == SQLITE_ROW) dangling = sqlite3_column_int64(st, 0);
    tk_cat_done(s, st);
  }
  if (!rc && dangling) {
    /* The wipe and the lowered key_upto land together: committed apart, a
    ** crash between them would leave an empty key index that claims to
    ** cover the log. */
    rc = tk_cat_begin(s);
    if (!rc && !(st = tk_cat_stmt(s, TK_SQL_WIPE_KEYS))) rc = TAKHIN_ECATALOG;
    if (!rc) {
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int(st, 2, p->id);
      rc = tk_cat_step_done(s, st, "rebuild key index");
    }
    if (!rc) rc = tk_key_set_upto(s, id, p->id, p->key_from);
    /* The dead offsets go with the keys (some may have been superseded by
    ** the lost tail); the catch-up below notes them again from its start. */
    int64_t dead_from = p->key_from > start ? p->key_from : start;
    if (!rc) rc = set_bound(s, TK_SQL_WIPE_DEAD, id, p->id, 0);
    if (!rc) rc = set_bound(s, TK_SQL_SET_DEAD_FROM, id, p->id, dead_from);
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    if (!rc) {
      p->key_upto = p->key_from;
      new_dead_from = dead_from;
    }
  } else if (!rc && p->key_upto > hwm) {
    /* Past the end of the log (its tail was lost): appends from hwm on must
    ** move it, and a crash before they do must not skip their keys. */
    rc = tk_key_set_upto(s, id, p->id, hwm);
    if (!rc) p->key_upto = hwm;
  }
  pthread_mutex_unlock(&s->cat_lock);
  if (new_dead_from >= 0) { /* append_lock, after cat_lock: the lock order */
    pthread_mutex_lock(&p->append_lock);
    p->dead_from = new_dead_from;
    pthread_mutex_unlock(&p->append_lock);
  }
  if (!rc && p->key_upto >= hwm) keys_tracked(p);
  if (rc || p->key_upto >= hwm) return rc;
  int64_t from = p->key_upto > start ? p->key_upto : start;
  if (from < p->key_from) from = p->key_from;
  takhin_cursor *c;
  if ((rc = tk_cursor_open_part(s, p->topic, p, &c))) return rc;
  /* cat_lock is held while it reads: a flush of BUFFERED batches appended
  ** meanwhile would take append_lock inside it, against the lock order
  ** (a persist holds append_lock and waits for cat_lock). Those batches are
  ** past hwm anyway, and appends note their keys. */
  tk_cursor_written_only(c);
  takhin_message m;
  /* The catch-up's own map (the partition's belongs to its appenders): a
  ** key repeated in the log costs one row per full map, not one per record. */
  tk_keymap map;
  memset(&map, 0, sizeof map);
  map.max_offset = -1;
  rc = takhin_cursor_seek(c, from, 0, 0);
  /* Offsets between two records read hold none: holes an earlier compaction
  ** left (a catalog rebuilt from the log knew no bit for them). They are
  ** dead: counted as survivors, a segment of mostly holes would look like
  ** nothing to reclaim and keep its superseded records for good. Not across
  ** damage (-1): what it hides is not known to be gone. */
  int64_t gap_from = from;
  pthread_mutex_lock(&s->cat_lock);
  if (!rc) rc = tk_cat_begin(s);
  while (!rc && (rc = takhin_cursor_next(c, &m)) != TAKHIN_END) {
    int64_t past = rc == TAKHIN_ECORRUPT ? tk_cursor_past_damage(c) : -1;
    if (past > 0) {
      /* A damaged batch's keys cannot be read (recovery and reads report
      ** it): index the others rather than refuse to open the store. */
      rc = takhin_cursor_seek(c, past < hwm ? past : hwm, 0, 0);
      gap_from = -1;
      continue;
    }
    for (int64_t o = gap_from; !rc && gap_from >= 0 && o < m.offset; o++) {
      if (tk_dead_push(&map.dead, o)) rc = tk_err(TAKHIN_ENOMEM, "out of memory indexing keys");
      else if (map_full(&map) && !(rc = map_write(s, id, p->id, &map))) map_clear(&map);
    }
    if (rc) break;
    gap_from = m.offset + 1;
    if (m.key) rc = map_put(&map, m.key, m.key_len, m.offset, m.value == NULL, 0);
    if (!rc && map_full(&map) && !(rc = map_write(s, id, p->id, &map))) map_clear(&map);
  }
  if (rc == TAKHIN_END) rc = TAKHIN_OK;
  if (!rc) rc = map_write(s, id, p->id, &map);
  if (!rc) rc = tk_key_set_upto(s, id, p->id, hwm);
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  takhin_cursor_close(c);
  map_free(&map);
  if (!rc) {
    p->key_upto = hwm;
    keys_tracked(p);
  }
  return rc;
}

/* The key index is behind the log: a catch-up the open could not finish
** (it writes the catalog, which a full disk refuses; see
** takhin_recovery_info.key_index_deferred), or key rows lost since. */
static int keys_behind(tk_partition *p) {
  takhin_store *s = p->topic->store;
  /* The extension's store (borrowed catalog) keeps its old rule: the next
  ** open rebuilds; a lookup may run inside any statement of the host's. */
  if (!p->topic->cfg.compact || s->opt.read_only || s->borrowed) return 0;
  pthread_mutex_lock(&p->append_lock);
  int tracked = p->keys_tracked;
  pthread_mutex_unlock(&p->append_lock);
  return !tracked;
}

/* Retry it before anything relies on the key index. maint_lock held: one
** catch-up at a time, never beside a compaction. */
static int catch_up_if_behind(tk_partition *p) {
  TK_ASSERT_HELD(&p->maint_lock);
  if (!keys_behind(p)) return TAKHIN_OK;
  /* no key rows for a topic being deleted (topic_admin.c) */
  int rc = tk_topic_gone(p->topic);
  return rc ? rc : tk_key_catch_up(p);
}

int tk_key_lookup(tk_partition *p, const void *key, size_t len, int64_t *offset, int *tombstone) {
  takhin_store *s = p->topic->store;
  if (!p->topic->cfg.compact)
    return tk_err(TAKHIN_EINVAL,
                  "key lookups need a compacted topic: \"%s\" has cleanup_policy=%s "
                  "and no key index",
                  p->topic->name, tk_config_policy_name(&p->topic->cfg));
  int rc = TAKHIN_OK;
  if (!s->opt.read_only) {
    /* The caller flushed the keys just produced (tk_key_unwritten): the
    ** key index never calls up into the partition. An index behind the log
    ** would answer with an older record, or none. */
    if (keys_behind(p)) {
      pthread_mutex_lock(&p->maint_lock);
      rc = catch_up_if_behind(p);
      pthread_mutex_unlock(&p->maint_lock);
    }
    if (rc) {
      char why[512];
      snprintf(why, sizeof why, "%s", takhin_errmsg());
      return tk_err(rc,
                    "the key index of %s-%d is behind its log and cannot be brought up to date: %s",
                    p->topic->name, (int)p->id, why);
    }
  }
  pthread_mutex_lock(&s->cat_lock);
  /* A deleted topic's topic_id may be the next topic's: its rows are not
  ** ours (the flag is set before any topic can be created again). */
  sqlite3_stmt *st = NULL;
  if (atomic_load(&p->topic->deleted))
    rc = tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" was deleted", p->topic->name);
  else if (!(st = tk_cat_stmt(s, TK_SQL_KEY_LOOKUP))) rc = TAKHIN_ECATALOG;
  if (st) {
    sqlite3_bind_int64(st, 1, p->topic->topic_id);
    sqlite3_bind_int(st, 2, p->id);
    sqlite3_bind_blob64(st, 3, len ? key : "", len, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
      *offset = sqlite3_column_int64(st, 0);
      *tombstone = sqlite3_column_int(st, 1);
    } else if (step == SQLITE_DONE) {
      rc = tk_err(TAKHIN_ENOTFOUND, "key has no record in %s-%d", p->topic->name, (int)p->id);
    } else {
      rc = tk_cat_error(s, "key lookup");
    }
    tk_cat_done(s, st);
  }
  pthread_mutex_unlock(&s->cat_lock);
  return rc;
}

int tk_key_cover_log(tk_partition *p) {
  TK_ASSERT_HELD(&p->maint_lock);
  /* Not fatal: compaction never goes past what the index covers. */
  if (catch_up_if_behind(p)) { /* left for the next run */
  }
  return TAKHIN_OK;
}

int64_t tk_key_dead_from(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  int64_t from = p->dead_from;
  pthread_mutex_unlock(&p->append_lock);
  return from;
}

int64_t tk_key_covered(tk_partition *p) {
  pthread_mutex_lock(&p->append_lock);
  kw_take_back(p);
  int64_t covered = p->key_upto; /* key rows below it are all written, tracked or not */
  pthread_mutex_unlock(&p->append_lock);
  return covered;
}
