/*
** test_rdkafka.c -- librdkafka (the C client) against takhin-server: create
** a topic through the Admin API, produce keyed records with headers to three
** partitions (acks=all), consume them all back from the beginning with an
** assigned consumer, commit offsets; then stop the server with SIGTERM and
** check, through the C API, that the very same records are in the store
** (takhin_cursor) and the commits in the group table (takhin_group_fetch).
** Also DescribeConfigs (Kafka's names and defaults) and DeleteRecords (the
** log start offset moves).
**
** usage: test_rdkafka SERVER_BINARY SCRATCH_DIR     (bounded by alarm())
*/
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdk_util.h"
#include "takhin.h"

#define N 300
#define PARTS 3

static int delivered_ok, delivered_err;
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk, (void)opaque;
  if (m->err) {
    delivered_err++;
    fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
  } else {
    delivered_ok++;
  }
}

static void make_kv(int i, char *k, size_t kc, char *v, size_t vc) {
  snprintf(k, kc, "key-%d", i);
  snprintf(v, vc, "value-%d-%0*d", i, 40 + i % 50, i); /* varied lengths */
}

/* which record i was seen (by the consumer) */
static int seen[N];

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: test_rdkafka SERVER SCRATCH");
  signal(SIGALRM, on_alarm);
  atexit(kill_server);
  alarm(120);
  char db[4096], bootstrap[64], err[512];
  scratch_mkdir(argv[2]);
  snprintf(db, sizeof db, "%s/rdkafka.db", argv[2]);
  unlink(db);
  char rm[4200];
  snprintf(rm, sizeof rm, "rm -rf '%s-takhin'", db);
  if (system(rm)) {}
  int port = start_server_with(argv[1], db, 0, NULL, NULL);
  snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", port);

  /* producer, which also creates the topic with the Admin API */
  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  conf_set(pc, "bootstrap.servers", bootstrap);
  conf_set(pc, "acks", "all");
  conf_set(pc, "linger.ms", "5");
  conf_set(pc, "enable.idempotence", "false");
  conf_set(pc, "partitioner", "murmur2_random"); /* Java's partitioner, as takhin's */
  rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  CHECK(p, "producer: %s", err);

  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new("orders", PARTS, 1, err, sizeof err);
  CHECK(nt, "NewTopic: %s", err);
  rd_kafka_queue_t *q = rd_kafka_queue_new(p);
  rd_kafka_CreateTopics(p, &nt, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
  CHECK(ev, "no CreateTopics result");
  const rd_kafka_CreateTopics_result_t *cres = rd_kafka_event_CreateTopics_result(ev);
  CHECK(cres, "not a CreateTopics result: %s", rd_kafka_event_error_string(ev));
  size_t ntr;
  const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(cres, &ntr);
  CHECK(ntr == 1 && rd_kafka_topic_result_error(tr[0]) == 0, "create: %s",
        ntr ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
  rd_kafka_event_destroy(ev);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);

  for (int i = 0; i < N; i++) {
    char k[32], v[128], hv[16];
    make_kv(i, k, sizeof k, v, sizeof v);
    snprintf(hv, sizeof hv, "h%d", i);
    rd_kafka_resp_err_t e;
    do {
      e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_KEY(k, strlen(k)),
                            RD_KAFKA_V_VALUE(v, strlen(v)),
                            RD_KAFKA_V_HEADER("idx", hv, (ssize_t)strlen(hv)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p, 10);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    CHECK(!e, "producev: %s", rd_kafka_err2str(e));
  }
  for (int i = 0; i < 10; i++) /* a second topic, auto-created, for DeleteRecords */
    CHECK(!rd_kafka_producev(p, RD_KAFKA_V_TOPIC("trim"), RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_END),
          "producev");
  CHECK(rd_kafka_flush(p, 30000) == 0, "flush timed out");
  delivered_ok -= 10;
  CHECK(delivered_ok == N && delivered_err == 0, "delivered %d ok, %d failed", delivered_ok,
        delivered_err);
  rd_kafka_destroy(p);

  /* consumer: assigned partitions from the beginning, commits at the end */
  rd_kafka_conf_t *cc = rd_kafka_conf_new();
  conf_set(cc, "bootstrap.servers", bootstrap);
  conf_set(cc, "group.id", "g1");
  conf_set(cc, "enable.auto.commit", "false");
  conf_set(cc, "auto.offset.reset", "earliest");
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  CHECK(c, "consumer: %s", err);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *as = rd_kafka_topic_partition_list_new(PARTS);
  for (int i = 0; i < PARTS; i++)
    rd_kafka_topic_partition_list_add(as, "orders", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  CHECK(rd_kafka_assign(c, as) == 0, "assign");
  int got = 0, eofs = 0;
  while (got < N) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      eofs++;
      rd_kafka_message_destroy(m);
      continue;
    }
    CHECK(!m->err, "consume: %s", rd_kafka_message_errstr(m));
    int i;
    CHECK(m->key_len < 31 && sscanf((const char *)m->key, "key-%d", &i) == 1 && i >= 0 && i < N,
          "bad key");
    char k[32], v[128];
    make_kv(i, k, sizeof k, v, sizeof v);
    CHECK(m->key_len == strlen(k) && !memcmp(m->key, k, m->key_len), "key %d differs", i);
    CHECK(m->len == strlen(v) && !memcmp(m->payload, v, m->len), "value %d differs", i);
    rd_kafka_headers_t *hs;
    const void *hv;
    size_t hl;
    char want[16];
    snprintf(want, sizeof want, "h%d", i);
    CHECK(rd_kafka_message_headers(m, &hs) == 0 &&
              rd_kafka_header_get_last(hs, "idx", &hv, &hl) == 0 && hl == strlen(want) &&
              !memcmp(hv, want, hl),
          "header of %d", i);
    CHECK(!seen[i], "record %d read twice", i);
    seen[i] = 1;
    got++;
    rd_kafka_message_destroy(m);
  }
  for (int i = 0; i < PARTS; i++) as->elems[i].offset = RD_KAFKA_OFFSET_END;
  rd_kafka_resp_err_t ce = rd_kafka_commit(c, NULL, 0); /* the consumed positions */
  CHECK(!ce, "commit: %s", rd_kafka_err2str(ce));
  rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(PARTS);
  for (int i = 0; i < PARTS; i++) rd_kafka_topic_partition_list_add(pos, "orders", i);
  CHECK(rd_kafka_committed(c, pos, 10000) == 0, "committed");
  int64_t committed_sum = 0;
  for (int i = 0; i < PARTS; i++) committed_sum += pos->elems[i].offset;
  CHECK(committed_sum == N, "committed offsets sum to %lld, want %d", (long long)committed_sum, N);
  rd_kafka_topic_partition_list_destroy(pos);
  rd_kafka_topic_partition_list_destroy(as);

  /* DescribeConfigs of the topic, DeleteRecords below offset 4 of "trim" */
  rd_kafka_queue_t *aq = rd_kafka_queue_new(c);
  rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "orders");
  rd_kafka_DescribeConfigs(c, &cr, 1, NULL, aq);
  ev = rd_kafka_queue_poll(aq, 20000);
  CHECK(ev && rd_kafka_event_DescribeConfigs_result(ev), "no DescribeConfigs result");
  size_t nres;
  const rd_kafka_ConfigResource_t **res =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
  CHECK(nres == 1 && rd_kafka_ConfigResource_error(res[0]) == 0, "describe configs failed");
  size_t ncfg;
  const rd_kafka_ConfigEntry_t **ce_list = rd_kafka_ConfigResource_configs(res[0], &ncfg);
  int found = 0;
  for (size_t i = 0; i < ncfg; i++)
    if (!strcmp(rd_kafka_ConfigEntry_name(ce_list[i]), "retention.ms"))
      found = !strcmp(rd_kafka_ConfigEntry_value(ce_list[i]), "604800000");
  CHECK(found, "retention.ms of orders is not Kafka's default 604800000 (%zu configs)", ncfg);
  rd_kafka_event_destroy(ev);
  rd_kafka_ConfigResource_destroy(cr);
  rd_kafka_topic_partition_list_t *del = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(del, "trim", 0)->offset = 4;
  rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(del);
  rd_kafka_DeleteRecords(c, &dr, 1, NULL, aq);
  ev = rd_kafka_queue_poll(aq, 20000);
  CHECK(ev && rd_kafka_event_DeleteRecords_result(ev), "no DeleteRecords result");
  const rd_kafka_topic_partition_list_t *low =
      rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
  CHECK(low && low->cnt == 1 && !low->elems[0].err && low->elems[0].offset == 4,
        "DeleteRecords: low watermark %lld",
        low && low->cnt ? (long long)low->elems[0].offset : -1LL);
  rd_kafka_event_destroy(ev);
  rd_kafka_DeleteRecords_destroy(dr);
  rd_kafka_topic_partition_list_destroy(del);
  rd_kafka_queue_destroy(aq);

  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  stop_server();

  /* the same records, through the C API */
  takhin_store *s;
  CHECK(takhin_open(db, NULL, &s) == TAKHIN_OK, "open: %s", takhin_errmsg());
  int total = 0;
  for (int part = 0; part < PARTS; part++) {
    takhin_cursor *cur;
    takhin_message m;
    CHECK(takhin_cursor_open(s, "orders", part, &cur) == TAKHIN_OK, "cursor");
    int64_t expect = 0;
    while (takhin_cursor_next(cur, &m) == TAKHIN_OK) {
      CHECK(m.offset == expect++, "dense offsets");
      int i;
      CHECK(m.key && sscanf((const char *)m.key, "key-%d", &i) == 1 && i >= 0 && i < N, "key");
      CHECK(takhin_partition_for_key(m.key, m.key_len, PARTS) == part,
            "key %d in partition %d: not where Kafka's partitioner puts it", i, part);
      char k[32], v[128];
      make_kv(i, k, sizeof k, v, sizeof v);
      CHECK(m.value_len == strlen(v) && !memcmp(m.value, v, m.value_len), "stored value %d", i);
      takhin_header h;
      CHECK(m.n_headers == 1 && takhin_message_header(&m, 0, &h) == TAKHIN_OK && h.key_len == 3 &&
                !memcmp(h.key, "idx", 3),
            "stored header %d", i);
      total++;
    }
    takhin_cursor_close(cur);
    int64_t off;
    CHECK(takhin_group_fetch(s, "g1", "orders", part, &off, NULL) == TAKHIN_OK, "group offset");
    CHECK(off == expect, "group g1 committed %lld on partition %d, log ends at %lld",
          (long long)off, part, (long long)expect);
  }
  CHECK(total == N, "the store holds %d records, want %d", total, N);
  takhin_partition_info ti;
  CHECK(takhin_partition_info_get(s, "trim", 0, &ti) == TAKHIN_OK && ti.log_start_offset == 4 &&
            ti.high_watermark == 10,
        "trim: log start %lld", (long long)ti.log_start_offset);
  takhin_close(s);
  printf("ok: %d records produced and consumed through librdkafka, readable with takhin_cursor\n",
         N);
  return 0;
}
