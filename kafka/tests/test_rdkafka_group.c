/*
** test_rdkafka_group.c -- consumer groups through librdkafka's subscribe():
** one consumer takes all four partitions, a second joining splits them, a
** third joining triggers another rebalance. Each record is committed
** (synchronously) right after it is read, the consumers take part in each
** rebalance (a rebalance callback) and every partition starts with a
** committed offset (see main); no record is lost, and none whose
** commit succeeded is ever delivered again (Kafka's at-least-once, with no
** duplicates past a commit). Then the group's committed offsets in the store
** equal the log ends.
**
** usage: test_rdkafka_group SERVER_BINARY SCRATCH_DIR     (bounded by alarm())
*/
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rdk_util.h"
#include "takhin.h"

#define N 400
#define PARTS 4
#define NC 3

/* The application takes part in each rebalance (as Kafka's at-least-once
** recipe has it): without a callback librdkafka revokes in its own thread, so
** a record polled just before could be committed after the consumer rejoined,
** in the next generation, for a partition by then another's -- a commit Kafka
** accepts, and a re-delivery of a committed record that is no broker's fault.
** Here the revoke waits for the next poll, after the commit of what it read. */
static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque) {
  (void)opaque;
  CHECK(rd_kafka_assign(rk, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? parts : NULL) == 0,
        "assign");
}

static rd_kafka_t *consumer_new(const char *bootstrap) {
  char err[256];
  rd_kafka_conf_t *cc = rd_kafka_conf_new();
  conf_set(cc, "bootstrap.servers", bootstrap);
  conf_set(cc, "group.id", "grp");
  conf_set(cc, "enable.auto.commit", "false");
  conf_set(cc, "auto.offset.reset", "earliest");
  conf_set(cc, "heartbeat.interval.ms", "300");
  conf_set(cc, "session.timeout.ms", "6000");
  rd_kafka_conf_set_rebalance_cb(cc, rebalance);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  CHECK(c, "consumer: %s", err);
  rd_kafka_poll_set_consumer(c);
  return c;
}

static rd_kafka_t *consumer(const char *bootstrap) {
  rd_kafka_t *c = consumer_new(bootstrap);
  rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(t, "grp-topic", RD_KAFKA_PARTITION_UA);
  CHECK(rd_kafka_subscribe(c, t) == 0, "subscribe");
  rd_kafka_topic_partition_list_destroy(t);
  return c;
}

static int delivered, committed_ok[N], committed_by[N], seen[N], total_seen, dup_after_commit;
static int per_consumer[NC];

/* Poll consumer k once; read, commit. */
static void poll_one(rd_kafka_t *c, int k) {
  rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 20);
  if (!m) return;
  if (m->err) {
    rd_kafka_message_destroy(m);
    return;
  }
  int i;
  CHECK(m->len < 31 && sscanf((const char *)m->payload, "v%d", &i) == 1 && i >= 0 && i < N,
        "bad value");
  if (committed_ok[i])
    dup_after_commit++,
        fprintf(
            stderr,
            "record %d (%d@%lld) delivered again to consumer %d after consumer %d committed it\n",
            i, (int)m->partition, (long long)m->offset, k, committed_by[i]);
  if (!seen[i]) total_seen++;
  seen[i]++;
  per_consumer[k]++;
  rd_kafka_topic_partition_list_t *o = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(o, rd_kafka_topic_name(m->rkt), m->partition)->offset =
      m->offset + 1;
  if (rd_kafka_commit(c, o, 0) == 0) committed_ok[i] = 1, committed_by[i] = k;
  rd_kafka_topic_partition_list_destroy(o);
  rd_kafka_message_destroy(m);
}

static int assigned(rd_kafka_t *c) {
  rd_kafka_topic_partition_list_t *a;
  CHECK(rd_kafka_assignment(c, &a) == 0, "assignment");
  int n = a->cnt;
  rd_kafka_topic_partition_list_destroy(a);
  return n;
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o) {
  (void)rk, (void)o;
  if (!m->err) delivered++;
}

int main(int argc, char **argv) {
  CHECK(argc == 3 && strlen(argv[2]) < 900, "usage: test_rdkafka_group SERVER SCRATCH");
  signal(SIGALRM, on_alarm);
  atexit(kill_server);
  alarm(150);
  char db[1024], bootstrap[64], err[256], cmd[4400];
  scratch_mkdir(argv[2]);
  snprintf(db, sizeof db, "%s/group.db", argv[2]);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s-takhin' '%s-wal' '%s-shm'", db, db, db, db);
  if (system(cmd)) {}
  snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d",
           start_server_with(argv[1], db, 0, "4", NULL));

  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  conf_set(pc, "bootstrap.servers", bootstrap);
  rd_kafka_conf_set_dr_msg_cb(pc, dr);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  CHECK(p, "producer: %s", err);
  for (int i = 0; i < N; i++) {
    char v[32];
    snprintf(v, sizeof v, "v%d", i);
    CHECK(!rd_kafka_producev(p, RD_KAFKA_V_TOPIC("grp-topic"), RD_KAFKA_V_PARTITION(i % PARTS),
                             RD_KAFKA_V_VALUE(v, strlen(v)),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
          "producev");
  }
  CHECK(rd_kafka_flush(p, 30000) == 0 && delivered == N, "delivered %d", delivered);
  rd_kafka_destroy(p);

  /* Every partition starts with a committed offset (0, a simple consumer's
  ** commit), so no consumer falls back to auto.offset.reset: librdkafka 2.0
  ** can then act on a stale reset. Seen under ASan at load 15: a ListOffsets
  ** query of one generation, answered late (behind a long-polling Fetch on
  ** the same connection, as Kafka too serves a connection's requests in
  ** order), re-armed its retry timer after the next generation's own query
  ** had succeeded; the timer fired in the generation after that and moved a
  ** partition whose committed offset (17) had been fetched back to its
  ** beginning, re-reading committed records. */
  rd_kafka_t *init = consumer_new(bootstrap);
  rd_kafka_topic_partition_list_t *zero = rd_kafka_topic_partition_list_new(PARTS);
  for (int part = 0; part < PARTS; part++)
    rd_kafka_topic_partition_list_add(zero, "grp-topic", part)->offset = 0;
  CHECK(rd_kafka_commit(init, zero, 0) == 0, "committing the starting offsets");
  rd_kafka_topic_partition_list_destroy(zero);
  rd_kafka_destroy(init);

  rd_kafka_t *c[NC] = {consumer(bootstrap), NULL, NULL};
  int phase = 1;
  time_t until = time(NULL) + 120;
  while (total_seen < N && time(NULL) < until) {
    for (int k = 0; k < phase; k++) poll_one(c[k], k);
    if (phase == 1 && total_seen >= 60) {
      CHECK(assigned(c[0]) == PARTS, "the only consumer has %d partitions", assigned(c[0]));
      c[phase++] = consumer(bootstrap);
      fprintf(stderr, "second consumer joins after %d records\n", total_seen);
    } else if (phase == 2 && per_consumer[1] > 20) {
      c[phase++] = consumer(bootstrap);
      fprintf(stderr, "third consumer joins after %d records\n", total_seen);
    }
  }
  CHECK(total_seen == N, "read %d of %d records (phase %d)", total_seen, N, phase);
  CHECK(phase == 3, "only %d consumers joined", phase);
  /* the third consumer's join has completed once every partition is owned once */
  int owned = 0;
  for (int t = 0; t < 200; t++) {
    owned = 0;
    for (int k = 0; k < NC; k++) poll_one(c[k], k), owned += assigned(c[k]);
    if (owned == PARTS && assigned(c[2]) > 0) break;
  }
  CHECK(owned == PARTS && assigned(c[2]) > 0,
        "after the third join: %d partitions owned, third has %d", owned, assigned(c[2]));
  CHECK(dup_after_commit == 0, "%d records delivered again after a successful commit",
        dup_after_commit);
  fprintf(stderr, "records per consumer: %d %d %d\n", per_consumer[0], per_consumer[1],
          per_consumer[2]);
  CHECK(per_consumer[1] > 0, "the second consumer read nothing");
  for (int k = 0; k < NC; k++) {
    rd_kafka_consumer_close(c[k]);
    rd_kafka_destroy(c[k]);
  }
  stop_server();
  takhin_store *s;
  CHECK(takhin_open(db, NULL, &s) == TAKHIN_OK, "open");
  for (int part = 0; part < PARTS; part++) {
    int64_t off;
    CHECK(takhin_group_fetch(s, "grp", "grp-topic", part, &off, NULL) == TAKHIN_OK,
          "no commit on %d", part);
    CHECK(off == N / PARTS, "partition %d committed %lld, want %d", part, (long long)off,
          N / PARTS);
  }
  takhin_close(s);
  printf(
      "ok: %d records over 3 consumers joining one by one; none lost, none re-read after its commit\n",
      N);
  return 0;
}
