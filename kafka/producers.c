/*
** producers.c -- idempotent producers for takhin-server.
**
** A batch with producerId >= 0 carries (epoch, baseSequence); the server
** keeps, per (topic, partition, producer id), the epoch and the sequence
** ranges and offsets of its last 5 batches (Kafka keeps 5, as a producer has
** at most 5 requests in flight). A batch equal to one of them is a retry:
** answered with the first copy's offset and not appended again. Otherwise
** its baseSequence must follow the last one (else
** OUT_OF_ORDER_SEQUENCE_NUMBER), and an older epoch is fenced
** (INVALID_PRODUCER_EPOCH). The check and the append happen under one of
** STRIPES locks chosen by partition, so two connections of one producer
** cannot both append a retried batch.
**
** The state is rebuilt from the log, as Kafka rebuilds it: the first time a
** partition sees an idempotent batch after a start, the batch headers of
** its newest segment (and the one before if that is small) are read back.
** Producer ids are unique across restarts: milliseconds since the epoch
** times 1024, plus a counter. Bounded: MAX_ENTRIES producer-partitions;
** beyond that the least recently used is forgotten (its next batch must
** then start a sequence at 0, as after Kafka's producer expiry).
*/
#include "producers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STRIPES 64
#define CACHED 5
#define MAX_ENTRIES 65536
#define MAX_LOADED 65536
#define REBUILD_MIN_BYTES (1 << 20)

enum { KE_OUT_OF_ORDER_SEQUENCE_NUMBER = 45, KE_INVALID_PRODUCER_EPOCH = 47 };

typedef struct pstate {
  char topic[250];
  int32_t partition;
  int64_t pid;
  int16_t epoch;
  int n; /* cached batches, newest last */
  int32_t first_seq[CACHED], last_seq[CACHED];
  int64_t offset[CACHED];
  uint64_t used;
  struct pstate *next;
} pstate;

typedef struct loaded { /* partitions whose state was rebuilt */
  char topic[250];
  int32_t partition;
  struct loaded *next;
} loaded;

static pthread_mutex_t stripe[STRIPES];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER; /* the tables below */
#define NBUCKETS 4096
static pstate *buckets[NBUCKETS];
static loaded *loaded_b[NBUCKETS];
static size_t nentries, nloaded;
static uint64_t use_clock;
static int64_t last_pid;

static void init_locks(void) {
  for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&stripe[i], NULL);
}

static uint32_t hash(const char *topic, int32_t partition, int64_t pid) {
  uint32_t h = 2166136261u;
  for (const char *p = topic; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  h = (h ^ (uint32_t)partition) * 16777619u;
  h = (h ^ (uint32_t)pid) * 16777619u;
  return (h ^ (uint32_t)((uint64_t)pid >> 32)) * 16777619u;
}

static int64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return (int64_t)v;
}
static int32_t be32(const uint8_t *p) {
  return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Forget the least recently used entry (table_mu held). */
static void evict_one(void) {
  pstate **victim = NULL;
  for (int b = 0; b < NBUCKETS; b++)
    for (pstate **pp = &buckets[b]; *pp; pp = &(*pp)->next)
      if (!victim || (*pp)->used < (*victim)->used) victim = pp;
  if (victim) {
    pstate *x = *victim;
    *victim = x->next;
    free(x);
    nentries--;
  }
}

static pstate *lookup(const char *topic, int32_t partition, int64_t pid, int create) {
  uint32_t b = hash(topic, partition, pid) % NBUCKETS;
  pthread_mutex_lock(&table_mu);
  pstate *s = buckets[b];
  while (s && !(s->pid == pid && s->partition == partition && !strcmp(s->topic, topic)))
    s = s->next;
  if (!s && create) {
    if (nentries >= MAX_ENTRIES) evict_one();
    if ((s = calloc(1, sizeof *s))) {
      strncpy(s->topic, topic, sizeof s->topic - 1);
      s->partition = partition;
      s->pid = pid;
      s->epoch = -1;
      s->next = buckets[b];
      buckets[b] = s;
      nentries++;
    }
  }
  if (s) s->used = ++use_clock;
  pthread_mutex_unlock(&table_mu);
  return s;
}

/* Remember a batch appended (or found in the log) at offset. */
static void note(pstate *s, int16_t epoch, int32_t first, int32_t last, int64_t offset) {
  if (epoch != s->epoch) {
    s->n = 0;
    s->epoch = epoch;
  }
  if (s->n == CACHED) {
    memmove(s->first_seq, s->first_seq + 1, (CACHED - 1) * sizeof s->first_seq[0]);
    memmove(s->last_seq, s->last_seq + 1, (CACHED - 1) * sizeof s->last_seq[0]);
    memmove(s->offset, s->offset + 1, (CACHED - 1) * sizeof s->offset[0]);
    s->n--;
  }
  s->first_seq[s->n] = first;
  s->last_seq[s->n] = last;
  s->offset[s->n] = offset;
  s->n++;
}

/* First idempotent batch of a partition since the start: rebuild its
** producers' state from the newest batches of the log. Stripe lock held. */
static void rebuild(kh_ctx *c, const char *topic, int32_t partition) {
  uint32_t b = hash(topic, partition, 0) % NBUCKETS;
  pthread_mutex_lock(&table_mu);
  loaded *l = loaded_b[b];
  while (l && !(l->partition == partition && !strcmp(l->topic, topic))) l = l->next;
  int done = l != NULL;
  if (!done && nloaded < MAX_LOADED && (l = calloc(1, sizeof *l))) {
    strncpy(l->topic, topic, sizeof l->topic - 1);
    l->partition = partition;
    l->next = loaded_b[b];
    loaded_b[b] = l;
    nloaded++;
  }
  pthread_mutex_unlock(&table_mu);
  if (done) return;
  takhin_segment_info *segs = NULL;
  size_t n = 0;
  if (takhin_segments_list(c->store, topic, partition, &segs, &n) != TAKHIN_OK || n == 0) return;
  int64_t from = segs[n - 1].base_offset;
  if (n > 1 && segs[n - 1].size_bytes < REBUILD_MIN_BYTES) from = segs[n - 2].base_offset;
  takhin_free(segs);
  takhin_partition_info info;
  if (takhin_partition_info_get(c->store, topic, partition, &info) != TAKHIN_OK) return;
  if (from < info.log_start_offset) from = info.log_start_offset;
  while (from < info.high_watermark) {
    void *buf = NULL;
    size_t len = 0;
    if (takhin_fetch_batches(c->store, topic, partition, from, 1 << 20, &buf, &len, NULL) !=
            TAKHIN_OK ||
        !len) {
      takhin_free(buf);
      break;
    }
    const uint8_t *p = buf;
    for (size_t at = 0; at + 61 <= len;) {
      const uint8_t *h = p + at;
      int64_t base = be64(h), pid = be64(h + 43);
      int32_t lod = be32(h + 23), seq = be32(h + 53);
      int16_t epoch = (int16_t)(h[51] << 8 | h[52]);
      if (pid >= 0 && seq >= 0) {
        pstate *s = lookup(topic, partition, pid, 1);
        if (s && epoch >= s->epoch) note(s, epoch, seq, seq + lod, base);
      }
      from = base + lod + 1;
      at += 12 + (size_t)be32(h + 8);
    }
    takhin_free(buf);
  }
}

int16_t kpid_produce(kh_ctx *c, const char *topic, int32_t partition, const uint8_t *batch,
                     size_t len, int64_t *base, int *rc) {
  int64_t pid = be64(batch + 43);
  int16_t epoch = (int16_t)(batch[51] << 8 | batch[52]);
  int32_t seq = be32(batch + 53), lod = be32(batch + 23);
  *rc = TAKHIN_OK;
  if (pid < 0) { /* not idempotent: append as is */
    *rc = takhin_produce_batch(c->store, topic, partition, batch, len, base);
    return KE_NONE;
  }
  /* a damaged batch must not move (or be matched against) sequence state */
  if ((*rc = takhin_batch_check(batch, len))) return KE_NONE;
  pthread_once(&once, init_locks);
  pthread_mutex_t *m = &stripe[hash(topic, partition, 0) % STRIPES];
  pthread_mutex_lock(m);
  int16_t err = KE_NONE;
  rebuild(c, topic, partition);
  pstate *s = lookup(topic, partition, pid, 1);
  if (!s) {
    err = KE_UNKNOWN_SERVER_ERROR;
  } else if (seq < 0 || lod < 0) {
    err = KE_INVALID_RECORD;
  } else if (s->epoch >= 0 && epoch < s->epoch) {
    err = KE_INVALID_PRODUCER_EPOCH;
  } else if (epoch == s->epoch) {
    for (int i = 0; i < s->n; i++)
      if (s->first_seq[i] == seq && s->last_seq[i] == seq + lod) { /* a retry */
        *base = s->offset[i];
        kh_log("produce %s-%d: duplicate of producer %lld seq %d, answered with offset %lld", topic,
               (int)partition, (long long)pid, (int)seq, (long long)*base);
        pthread_mutex_unlock(m);
        return KE_NONE;
      }
    int32_t expect =
        s->n ? (s->last_seq[s->n - 1] == INT32_MAX ? 0 : s->last_seq[s->n - 1] + 1) : 0;
    if (seq != expect) err = KE_OUT_OF_ORDER_SEQUENCE_NUMBER;
  } else if (seq != 0) { /* a new epoch (or producer) starts at 0 */
    err = KE_OUT_OF_ORDER_SEQUENCE_NUMBER;
  }
  if (!err) {
    *rc = takhin_produce_batch(c->store, topic, partition, batch, len, base);
    if (!*rc) note(s, epoch, seq, seq + lod, *base);
  } else {
    kh_log("produce %s-%d refused: producer %lld epoch %d seq %d: error %d", topic, (int)partition,
           (long long)pid, (int)epoch, (int)seq, (int)err);
  }
  pthread_mutex_unlock(m);
  return err;
}

int kpid_init_producer_id(kh_ctx *c, kp_reader *r, int16_t v, kp_writer *w) {
  (void)c, (void)v;
  kp_str txn = kp_string(r);
  kp_i32(r); /* transaction_timeout_ms */
  if (r->err) return -1;
  int16_t err = KE_NONE;
  int64_t pid = -1;
  if (txn.ptr) {
    err = KE_INVALID_REQUEST; /* transactions are not supported */
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) * 1024;
    pthread_mutex_lock(&table_mu);
    pid = last_pid = t > last_pid ? t : last_pid + 1;
    pthread_mutex_unlock(&table_mu);
  }
  kp_w_i32(w, 0);
  kp_w_i16(w, err);
  kp_w_i64(w, pid);
  kp_w_i16(w, err ? -1 : 0);
  return 0;
}
