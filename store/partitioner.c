/*
** partitioner.c -- Kafka's default partitioner and producing to a topic.
**
** murmur2 is a bit-for-bit port of Kafka's org.apache.kafka.common.utils.
** Utils.murmur2 (seed 0x9747b28c, Java's signed arithmetic and its tail
** switch), so a key lands in the partition Kafka's Java client would pick.
** takhin_produce_topic splits one call's records by partition with a
** counting sort into per-thread scratch arrays that are reused, so steady
** state allocates nothing.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "partition.h"
#include "store.h"
#include "testing.h"

int32_t takhin_murmur2(const void *data, size_t len) {
  /* No bytes to read: hash as the empty key rather than fault (the
  ** function has no error channel; takhin.h documents this). */
  if (!data) len = 0;
  const uint8_t *d = data;
  const uint32_t seed = 0x9747b28cU, m = 0x5bd1e995U;
  const int r = 24;
  uint32_t h = seed ^ (uint32_t)len;
  size_t len4 = len / 4;
  for (size_t i = 0; i < len4; i++) {
    size_t i4 = i * 4;
    uint32_t k = (uint32_t)d[i4] | (uint32_t)d[i4 + 1] << 8 | (uint32_t)d[i4 + 2] << 16 |
                 (uint32_t)d[i4 + 3] << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (len % 4) { /* Java's bytes are signed, but & 0xff makes them unsigned again */
  case 3: h ^= (uint32_t)d[(len & ~(size_t)3) + 2] << 16; /* fall through */
  case 2: h ^= (uint32_t)d[(len & ~(size_t)3) + 1] << 8;  /* fall through */
  case 1: h ^= (uint32_t)d[len & ~(size_t)3]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

int32_t takhin_partition_for_key(const void *key, size_t len, int32_t partitions) {
  if (partitions < 1) return 0;
  return (int32_t)(((uint32_t)takhin_murmur2(key, len) & 0x7fffffffU) % (uint32_t)partitions);
}

/* Per-thread scratch for splitting a call's records by partition. */
typedef struct split_scratch {
  size_t cap;          /* records */
  int32_t *part;       /* partition of each record */
  size_t *order;       /* record indices grouped by partition */
  takhin_record *recs; /* the grouped records */
  size_t pcap;         /* partitions */
  size_t *count;       /* records per partition, then group starts */
} split_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
  split_scratch *sc = p;
  if (!sc) return;
  free(sc->part);
  free(sc->order);
  free(sc->recs);
  free(sc->count);
  free(sc);
}

static int scratch_key_made;

static void scratch_init(void) {
  scratch_key_made = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* If this code is unloaded (the SQLite extension), no thread may later call
** a destructor that is gone: retire the key with the library. */
__attribute__((destructor)) static void scratch_fini(void) {
  if (scratch_key_made) pthread_key_delete(scratch_key);
}

static split_scratch *scratch_get(size_t n, size_t nparts) {
  pthread_once(&scratch_once, scratch_init);
  split_scratch *sc = pthread_getspecific(scratch_key);
  if (!sc) {
    if (!(sc = calloc(1, sizeof *sc))) return NULL;
    pthread_setspecific(scratch_key, sc);
  }
  if (sc->cap < n) {
    int32_t *p = realloc(sc->part, n * sizeof *p);
    if (p) sc->part = p;
    size_t *o = realloc(sc->order, n * sizeof *o);
    if (o) sc->order = o;
    takhin_record *r = realloc(sc->recs, n * sizeof *r);
    if (r) sc->recs = r;
    if (!p || !o || !r) return NULL;
    sc->cap = n;
  }
  if (sc->pcap < nparts + 1) {
    size_t *c = realloc(sc->count, (nparts + 1) * sizeof *c);
    if (!c) return NULL;
    sc->count = c;
    sc->pcap = nparts + 1;
  }
  return sc;
}

int takhin_produce_topic(takhin_store *s, const char *topic, const takhin_record *records, size_t n,
                         int32_t *partitions_out, int64_t *offsets_out) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_produce_topic: store is NULL or closed");
  if (!records || n == 0) return tk_err(TAKHIN_EINVAL, "takhin_produce_topic: no records");
  /* The scratch arrays hold n entries of each kind: n * sizeof must not
  ** wrap. A Kafka batch holds at most 2^31 records, so that is the bound. */
  if (n > (size_t)INT32_MAX + 1)
    return tk_err(TAKHIN_EINVAL,
                  "takhin_produce_topic: %zu records are more than one call may "
                  "produce (at most %lld)",
                  n, (long long)INT32_MAX + 1);
  if (s->opt.read_only) return tk_err(TAKHIN_EREADONLY, "store %s is open read-only", s->db_path);
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  pthread_rwlock_rdlock(&s->topics_lock);
  int32_t nparts = t->nparts;
  pthread_rwlock_unlock(&s->topics_lock);
  split_scratch *sc = scratch_get(n, (size_t)nparts);
  if (!sc) {
    tk_topic_unref(t);
    return tk_err(TAKHIN_ENOMEM, "out of memory splitting records by partition");
  }
  /* Sticky partition for this call's null-key records, round-robin. */
  int32_t sticky = (int32_t)(atomic_fetch_add_explicit(&t->sticky_next, 1, memory_order_relaxed) %
                             (unsigned)nparts);
  memset(sc->count, 0, ((size_t)nparts + 1) * sizeof *sc->count);
  for (size_t i = 0; i < n; i++) {
    const takhin_record *r = &records[i];
    int32_t p = r->key ? takhin_partition_for_key(r->key, r->key_len, nparts) : sticky;
    sc->part[i] = p;
    sc->count[p + 1]++;
    if (offsets_out) offsets_out[i] = -1;
    if (partitions_out) partitions_out[i] = p;
  }
  for (int32_t p = 0; p < nparts; p++) sc->count[p + 1] += sc->count[p]; /* group starts */
  for (size_t i = 0; i < n; i++) { /* stable: each partition keeps the call's order */
    size_t at = sc->count[sc->part[i]]++;
    sc->order[at] = i;
    sc->recs[at] = records[i];
  }
  /* count[p] is now the end of group p; group p starts at count[p-1] (0 for p = 0) */
  size_t start = 0;
  int first_rc = TAKHIN_OK;
  for (int32_t p = 0; p < nparts; p++) {
    size_t end = sc->count[p], m = end - start;
    if (m) {
      tk_partition *part;
      pthread_rwlock_rdlock(&s->topics_lock);
      part = t->parts[p];
      pthread_rwlock_unlock(&s->topics_lock);
      int64_t first = -1;
      rc = tk_part_append(part, sc->recs + start, m, &first);
      if (rc && !first_rc) first_rc = rc;
      if (!rc && offsets_out)
        for (size_t k = 0; k < m; k++) offsets_out[sc->order[start + k]] = first + (int64_t)k;
    }
    start = end;
  }
  tk_topic_unref(t);
  return first_rc;
}

int takhin_topic_balance(takhin_store *s, const char *topic, int64_t *counts, int32_t nparts,
                         double *imbalance) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_topic_balance: store is NULL or closed");
  if (!imbalance) return tk_err(TAKHIN_EMISUSE, "takhin_topic_balance: NULL argument");
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  pthread_rwlock_rdlock(&s->topics_lock);
  int32_t np = t->nparts;
  if (counts && nparts < np) {
    pthread_rwlock_unlock(&s->topics_lock);
    tk_topic_unref(t);
    return tk_err(TAKHIN_EINVAL, "counts holds %d entries but topic \"%s\" has %d partitions",
                  (int)nparts, topic, (int)np);
  }
  int64_t total = 0, max = 0;
  for (int32_t i = 0; i < np; i++) {
    int64_t start, hwm;
    tk_part_offsets(t->parts[i], &start, &hwm, NULL);
    int64_t c = hwm - start;
    if (counts) counts[i] = c;
    total += c;
    if (c > max) max = c;
  }
  pthread_rwlock_unlock(&s->topics_lock);
  tk_topic_unref(t);
  double mean = (double)total / np;
  *imbalance = total ? ((double)max - mean) / mean : 0.0;
  return TAKHIN_OK;
}
