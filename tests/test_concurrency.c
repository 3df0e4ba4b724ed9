/*
** test_concurrency.c -- one store handle from many threads (run under TSan
** by scripts/test.sh): producers to the same and to different partitions,
** readers tailing the log while it is written, DeleteRecords and retention
** racing with both, and topic creation while others produce.
*/
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { PER_THREAD = 400 };

typedef struct {
  takhin_store *s;
  const char *topic;
  int part;
  int id;
  int batch;
  atomic_int *done;
  long bad;
} worker;

static void *producer(void *arg) {
  worker *w = arg;
  takhin_record recs[8];
  char keys[8][32], vals[8][160];
  for (int i = 0; i < PER_THREAD; i += w->batch) {
    for (int j = 0; j < w->batch; j++)
      tu_make_record(&recs[j], keys[j], 32, vals[j], 150, (long)w->id * 1000000 + i + j);
    if (takhin_produce(w->s, w->topic, w->part, recs, (size_t)w->batch, NULL) != TAKHIN_OK)
      w->bad++;
  }
  atomic_fetch_add(w->done, 1);
  return NULL;
}

/* Tails a partition until every producer is done and all is read; checks
** offsets only grow and every value is intact. */
static void *tailer(void *arg) {
  worker *w = arg;
  takhin_cursor *c;
  if (takhin_cursor_open(w->s, w->topic, w->part, &c) != TAKHIN_OK) {
    w->bad++;
    return NULL;
  }
  takhin_message m;
  int64_t last = -1;
  for (;;) {
    int finished = atomic_load(w->done) >= w->id; /* id = number of producers to wait for */
    int rc;
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      long i = strtol((const char *)m.key + 1, NULL, 10);
      if (m.offset <= last || !tu_value_ok(m.value, m.value_len, 150, i)) w->bad++;
      last = m.offset;
    }
    if (rc != TAKHIN_END && rc != TAKHIN_ERANGE) w->bad++;
    if (finished) break;
  }
  takhin_cursor_close(c);
  return NULL;
}

Test(concurrency, producers_and_tailers) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("conc_prod"), NULL, &s), TAKHIN_OK);
  cr_assert_eq(
      takhin_topic_create(s, "t", 2, (const char *const[]){"segment_bytes", "16384", NULL}),
      TAKHIN_OK);
  atomic_int done = 0;
  enum { P = 4 };
  pthread_t th[P + 2];
  worker w[P + 2];
  for (int i = 0; i < P; i++) /* two on partition 0 (contended), one each on 1 */
    w[i] = (worker){s, "t", i < 2 ? 0 : 1, i, i % 2 ? 4 : 1, &done, 0};
  for (int i = 0; i < 2; i++) w[P + i] = (worker){s, "t", i, P, 0, &done, 0};
  for (int i = 0; i < P + 2; i++) pthread_create(&th[i], NULL, i < P ? producer : tailer, &w[i]);
  for (int i = 0; i < P + 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < P + 2; i++)
    cr_assert_eq(w[i].bad, 0, "worker %d saw %ld problems", i, w[i].bad);
  for (int p = 0; p < 2; p++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, "t", p, &pi), TAKHIN_OK);
    cr_assert_eq(pi.high_watermark, 2 * PER_THREAD, "partition %d", p);
  }
  takhin_close(s);
}

typedef struct {
  takhin_store *s;
  atomic_int *stop;
  long bad;
} janitor_arg;

static void *janitor(void *arg) {
  janitor_arg *j = arg;
  while (!atomic_load(j->stop)) {
    takhin_partition_info pi;
    if (takhin_partition_info_get(j->s, "t", 0, &pi) != TAKHIN_OK) j->bad++;
    int64_t cut = pi.log_start_offset + (pi.high_watermark - pi.log_start_offset) / 3;
    int rc = takhin_delete_records(j->s, "t", 0, cut);
    if (rc != TAKHIN_OK && rc != TAKHIN_ERANGE) j->bad++;
    if (takhin_retention_apply(j->s, "t", -1, NULL) != TAKHIN_OK) j->bad++;
  }
  return NULL;
}

static void *creator(void *arg) {
  janitor_arg *j = arg;
  for (int i = 0; i < 20; i++) {
    char name[32];
    snprintf(name, sizeof name, "new-%d", i);
    if (takhin_topic_create(j->s, name, 2, NULL) != TAKHIN_OK) j->bad++;
    takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
    if (takhin_produce(j->s, name, 1, &r, 1, NULL) != TAKHIN_OK) j->bad++;
  }
  return NULL;
}

Test(concurrency, deletes_and_creates_race_with_readers) {
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("conc_delete"), NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "t", 1,
                                   (const char *const[]){"segment_bytes", "8192", "retention_bytes",
                                                         "40000", NULL}),
               TAKHIN_OK);
  atomic_int done = 0, stop = 0;
  worker prod = {s, "t", 0, 0, 2, &done, 0};
  worker tail = {s, "t", 0, 1, 0, &done, 0};
  janitor_arg jan = {s, &stop, 0}, cre = {s, &stop, 0};
  pthread_t tp, tt, tj, tc;
  pthread_create(&tp, NULL, producer, &prod);
  pthread_create(&tt, NULL, tailer, &tail);
  pthread_create(&tj, NULL, janitor, &jan);
  pthread_create(&tc, NULL, creator, &cre);
  pthread_join(tp, NULL);
  pthread_join(tc, NULL);
  atomic_store(&stop, 1);
  pthread_join(tj, NULL);
  pthread_join(tt, NULL);
  cr_assert_eq(prod.bad, 0);
  cr_assert_eq(tail.bad, 0, "tailer saw %ld problems", tail.bad);
  cr_assert_eq(jan.bad, 0);
  cr_assert_eq(cre.bad, 0);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, PER_THREAD);
  takhin_close(s);
}
