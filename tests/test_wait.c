/*
** test_wait.c -- takhin_cursor_wait and takhin_cursor_wait_any: a consumer
** at the high watermark sleeps until a produce wakes it (every durability
** mode, a read-only handle by polling), a timeout ends the wait with END,
** takhin_close and a topic delete end it with their errors, and many
** waiters on a few partitions each see every record. Threaded: runs under
** TSan (TAKHIN_THREADED_TESTS). No timing is asserted; the waits that must
** end have generous limits, so a lost wakeup fails as END, not as a hang.
*/
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define LONG_WAIT_MS 60000

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static char last_path[1024]; /* of the last open_store */

static takhin_store *open_store(const char *name, int durability, int32_t parts) {
  takhin_options o;
  takhin_options_init(&o);
  o.durability = durability;
  o.flush_ms = 3600 * 1000; /* BUFFERED: nothing is written unless a reader asks */
  o.flush_bytes = 1 << 30;
  takhin_store *s;
  snprintf(last_path, sizeof last_path, "%s", tu_store_path(name));
  cr_assert_eq(takhin_open(last_path, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "t", parts, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  return s;
}

static void produce_one(takhin_store *s, int32_t part, long i) {
  takhin_record r;
  char k[32], v[64];
  tu_make_record(&r, k, sizeof k, v, 40, i);
  cr_assert_eq(takhin_produce(s, "t", part, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
}

Test(wait, timeout_and_immediate_answers) {
  takhin_store *s = open_store("wait_timeout", TAKHIN_DURABILITY_OS, 1);
  takhin_cursor *c;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_wait(c, 0), TAKHIN_END, "an empty partition has nothing to read");
  cr_assert_eq(takhin_cursor_wait(c, 30), TAKHIN_END, "no produce: the timeout ends the wait");
  produce_one(s, 0, 0);
  produce_one(s, 0, 1);
  cr_assert_eq(takhin_cursor_wait(c, 0), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_wait(c, LONG_WAIT_MS), TAKHIN_OK, "data already there: no waiting");
  takhin_message m;
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK, "the wait did not move the cursor");
  cr_assert_eq(m.offset, 0);
  cr_assert_eq(takhin_cursor_wait(c, 0), TAKHIN_OK, "offset 1 is still to read");
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END);
  cr_assert_eq(takhin_cursor_wait(c, 20), TAKHIN_END, "at the high watermark again");
  /* the position is the seek's, whatever was read before */
  cr_assert_eq(takhin_cursor_seek(c, 1, 0, 0), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_wait(c, 0), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_wait(NULL, 0), TAKHIN_EMISUSE);
  cr_assert_eq(takhin_cursor_wait_any(NULL, 1, 0, NULL), TAKHIN_EMISUSE);
  takhin_cursor_close(c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

typedef struct waiter {
  takhin_cursor *c;
  int64_t timeout;
  atomic_int started;
  int rc;
  int next_rc;
  int64_t offset;
} waiter;

static void *wait_main(void *arg) {
  waiter *w = arg;
  atomic_store(&w->started, 1);
  w->rc = takhin_cursor_wait(w->c, w->timeout);
  if (w->rc == TAKHIN_OK) {
    takhin_message m;
    w->next_rc = takhin_cursor_next(w->c, &m);
    w->offset = w->next_rc == TAKHIN_OK ? m.offset : -1;
  }
  return NULL;
}

/* A waiter blocked at the high watermark wakes for the next produce and
** reads it, in each durability mode (BUFFERED: the batch is still in
** memory, flush_ms being an hour; the read flushes it). */
static void wakeup_case(const char *name, int durability) {
  takhin_store *s = open_store(name, durability, 1);
  produce_one(s, 0, 0);
  waiter w = {.timeout = LONG_WAIT_MS};
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &w.c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_seek(w.c, 1, 0, 0), TAKHIN_OK);
  pthread_t th;
  pthread_create(&th, NULL, wait_main, &w);
  while (!atomic_load(&w.started)) sleep_ms(1);
  sleep_ms(20); /* most likely asleep in the wait by now; either way it must see offset 1 */
  produce_one(s, 0, 1);
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, TAKHIN_OK, "woken by the produce, not by the timeout: %d", w.rc);
  cr_assert_eq(w.next_rc, TAKHIN_OK);
  cr_assert_eq(w.offset, 1);
  takhin_cursor_close(w.c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

Test(wait, wakeup_on_produce_os) { wakeup_case("wait_wake_os", TAKHIN_DURABILITY_OS); }
Test(wait, wakeup_on_produce_fsync) { wakeup_case("wait_wake_fsync", TAKHIN_DURABILITY_FSYNC); }
Test(wait, wakeup_on_produce_buffered) { wakeup_case("wait_wake_buf", TAKHIN_DURABILITY_BUFFERED); }

Test(wait, close_while_waiting) {
  takhin_store *s = open_store("wait_close", TAKHIN_DURABILITY_OS, 1);
  waiter w = {.timeout = -1}; /* no limit: only the close can end it */
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &w.c), TAKHIN_OK);
  pthread_t th;
  pthread_create(&th, NULL, wait_main, &w);
  while (!atomic_load(&w.started)) sleep_ms(1);
  sleep_ms(20);
  cr_assert_eq(takhin_close(s), TAKHIN_OK, "%s", takhin_errmsg());
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, TAKHIN_EMISUSE, "the close ends the wait: %d", w.rc);
  cr_assert_eq(takhin_cursor_wait(w.c, 0), TAKHIN_EMISUSE, "a closed store waits no more");
  takhin_cursor_close(w.c); /* still safe after the close that woke it */
}

Test(wait, topic_delete_while_waiting) {
  takhin_store *s = open_store("wait_delete", TAKHIN_DURABILITY_OS, 1);
  waiter w = {.timeout = LONG_WAIT_MS};
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &w.c), TAKHIN_OK);
  pthread_t th;
  pthread_create(&th, NULL, wait_main, &w);
  while (!atomic_load(&w.started)) sleep_ms(1);
  sleep_ms(20);
  cr_assert_eq(takhin_topic_delete(s, "t"), TAKHIN_OK, "%s", takhin_errmsg());
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, TAKHIN_ENOTFOUND, "the delete ends the wait: %d", w.rc);
  takhin_cursor_close(w.c);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* A read-only handle (as another process would hold) is never signalled:
** its wait polls, and still sees the writer's record. */
Test(wait, read_only_handle_polls) {
  takhin_store *s = open_store("wait_ro", TAKHIN_DURABILITY_OS, 1);
  produce_one(s, 0, 0);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *ro;
  cr_assert_eq(takhin_open(last_path, &o, &ro), TAKHIN_OK, "%s", takhin_errmsg());
  waiter w = {.timeout = LONG_WAIT_MS};
  cr_assert_eq(takhin_cursor_open(ro, "t", 0, &w.c), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_seek(w.c, 1, 0, 0), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_cursor_wait(w.c, 30), TAKHIN_END);
  pthread_t th;
  pthread_create(&th, NULL, wait_main, &w);
  while (!atomic_load(&w.started)) sleep_ms(1);
  sleep_ms(30);
  produce_one(s, 0, 1);
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, TAKHIN_OK, "%d %s", w.rc, takhin_errmsg());
  cr_assert_eq(w.next_rc, TAKHIN_OK);
  cr_assert_eq(w.offset, 1);
  takhin_cursor_close(w.c);
  cr_assert_eq(takhin_close(ro), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

Test(wait, wait_any_names_the_ready_cursor) {
  takhin_store *s = open_store("wait_any", TAKHIN_DURABILITY_OS, 3);
  takhin_cursor *cs[3];
  for (int i = 0; i < 3; i++) cr_assert_eq(takhin_cursor_open(s, "t", i, &cs[i]), TAKHIN_OK);
  size_t ready = 99;
  cr_assert_eq(takhin_cursor_wait_any(cs, 3, 10, &ready), TAKHIN_END);
  cr_assert_eq(ready, 99, "untouched on a timeout");
  produce_one(s, 2, 0);
  cr_assert_eq(takhin_cursor_wait_any(cs, 3, LONG_WAIT_MS, &ready), TAKHIN_OK);
  cr_assert_eq(ready, 2);
  takhin_store *other = open_store("wait_any2", TAKHIN_DURABILITY_OS, 1);
  takhin_cursor *mixed[2] = {cs[0], NULL};
  cr_assert_eq(takhin_cursor_open(other, "t", 0, &mixed[1]), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_wait_any(mixed, 2, 0, NULL), TAKHIN_EMISUSE, "cursors of two stores");
  takhin_cursor_close(mixed[1]);
  for (int i = 0; i < 3; i++) takhin_cursor_close(cs[i]);
  cr_assert_eq(takhin_close(other), TAKHIN_OK);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* Many consumers, each tailing one of a few partitions with nothing but
** takhin_cursor_wait between reads, while producers write: every consumer
** reads every record of its partition, in order, none twice. */
enum { MW_PARTS = 3, MW_WAITERS = 12, MW_RECORDS = 300 };

typedef struct tailer {
  takhin_store *s;
  int part;
  long got, bad;
} tailer;

static void *tail_main(void *arg) {
  tailer *t = arg;
  takhin_cursor *c;
  if (takhin_cursor_open(t->s, "t", t->part, &c) != TAKHIN_OK) {
    t->bad++;
    return NULL;
  }
  takhin_message m;
  while (t->got < MW_RECORDS) {
    int rc = takhin_cursor_wait(c, LONG_WAIT_MS);
    if (rc != TAKHIN_OK) {
      t->bad++;
      break;
    }
    while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      if (m.offset != t->got) t->bad++;
      t->got++;
    }
    if (rc != TAKHIN_END) t->bad++;
  }
  takhin_cursor_close(c);
  return NULL;
}

static void *produce_part(void *arg) {
  tailer *t = arg;
  for (long i = 0; i < MW_RECORDS; i++) {
    takhin_record r;
    char k[32], v[64];
    tu_make_record(&r, k, sizeof k, v, 40, i);
    if (takhin_produce(t->s, "t", t->part, &r, 1, NULL) != TAKHIN_OK) t->bad++;
  }
  return NULL;
}

Test(wait, many_waiters) {
  takhin_store *s = open_store("wait_many", TAKHIN_DURABILITY_OS, MW_PARTS);
  tailer tl[MW_WAITERS], pr[MW_PARTS];
  pthread_t th[MW_WAITERS], pth[MW_PARTS];
  for (int i = 0; i < MW_WAITERS; i++) {
    tl[i] = (tailer){.s = s, .part = i % MW_PARTS};
    pthread_create(&th[i], NULL, tail_main, &tl[i]);
  }
  for (int i = 0; i < MW_PARTS; i++) {
    pr[i] = (tailer){.s = s, .part = i};
    pthread_create(&pth[i], NULL, produce_part, &pr[i]);
  }
  for (int i = 0; i < MW_PARTS; i++) {
    pthread_join(pth[i], NULL);
    cr_assert_eq(pr[i].bad, 0);
  }
  for (int i = 0; i < MW_WAITERS; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(tl[i].bad, 0, "waiter %d", i);
    cr_assert_eq(tl[i].got, MW_RECORDS, "waiter %d read %ld", i, tl[i].got);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}
