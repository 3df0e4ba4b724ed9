/*
** test_rdkafka_idempotent.c -- librdkafka with enable.idempotence=true
** against a server that drops the connection instead of answering every 5th
** Produce (TAKHIN_KAFKA_TEST_DROP_PRODUCE), after appending it: the client
** retries those batches, and the server must recognise them by producer id
** and sequence. Once per codec (none, gzip, snappy, lz4, zstd): the batches
** are stored as librdkafka compressed them and read back through a cursor. Afterwards the
** store holds every record exactly once, in the order produced per
** partition, with the producer id kept in the batches as sent. Halfway the
** server restarts on the same port while the producer keeps sending: its
** sequence state comes back from the log.
**
** usage: test_rdkafka_idempotent SERVER_BINARY SCRATCH_DIR   (bounded by alarm())
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

#define N 3000
#define PARTS 2

/* The server drops every 5th Produce after appending it. */
static int start_server(const char *bin, const char *db, int at_port) {
  return start_server_with(bin, db, at_port, "2", "5");
}

static int ok, failed;
static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o) {
  (void)rk, (void)o;
  if (m->err) failed++, fprintf(stderr, "delivery: %s\n", rd_kafka_err2str(m->err));
  else ok++;
}

static void run(const char *server, const char *scratch, const char *codec) {
  char db[1024], bootstrap[64], err[256], cmd[4400];
  snprintf(db, sizeof db, "%s/idem-%s.db", scratch, codec);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s-takhin' '%s-wal' '%s-shm'", db, db, db, db);
  if (system(cmd)) {}
  int port = start_server(server, db, 0);
  snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", port);
  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  conf_set(pc, "bootstrap.servers", bootstrap);
  conf_set(pc, "enable.idempotence", "true");
  conf_set(pc, "compression.codec", codec);
  conf_set(pc, "linger.ms", "2");
  conf_set(pc, "batch.num.messages", "100");
  conf_set(pc, "retry.backoff.ms", "10");
  conf_set(pc, "reconnect.backoff.ms", "10");
  conf_set(pc, "reconnect.backoff.max.ms", "200");
  rd_kafka_conf_set_dr_msg_cb(pc, dr);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  CHECK(p, "producer: %s", err);
  ok = failed = 0;
  for (int i = 0; i < N; i++) {
    char v[32];
    snprintf(v, sizeof v, "%d", i);
    rd_kafka_resp_err_t e;
    do {
      e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("idem"), RD_KAFKA_V_PARTITION(i % PARTS),
                            RD_KAFKA_V_VALUE(v, strlen(v)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p, 10);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    CHECK(!e, "producev: %s", rd_kafka_err2str(e));
    if (i % 200 == 199)
      rd_kafka_flush(p, 30000); /* several rounds of requests, so drops hit mid-stream */
    if (i == N / 2) { /* a server restart mid-stream: the producer state is rebuilt from the log */
      stop_server();
      start_server(server, db, port);
    }
  }
  CHECK(rd_kafka_flush(p, 60000) == 0, "flush timed out");
  CHECK(ok == N && failed == 0, "%s: %d delivered, %d failed", codec, ok, failed);
  rd_kafka_destroy(p);
  stop_server();

  takhin_store *s;
  CHECK(takhin_open(db, NULL, &s) == TAKHIN_OK, "open");
  int total = 0;
  for (int part = 0; part < PARTS; part++) {
    takhin_cursor *c;
    takhin_message m;
    CHECK(takhin_cursor_open(s, "idem", part, &c) == TAKHIN_OK, "cursor");
    int next = part;
    while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
      char v[32];
      CHECK(m.value_len < sizeof v, "value");
      memcpy(v, m.value, m.value_len);
      v[m.value_len] = 0;
      CHECK(atoi(v) == next,
            "%s: partition %d offset %lld holds %s, want %d (a duplicate or a gap)", codec, part,
            (long long)m.offset, v, next);
      next += PARTS;
      total++;
    }
    takhin_cursor_close(c);
  }
  CHECK(total == N, "%s: the store holds %d records, want %d", codec, total, N);
  /* the producer id went to disk as sent */
  void *buf;
  size_t len;
  CHECK(takhin_fetch_batches(s, "idem", 0, 0, 100, &buf, &len, NULL) == TAKHIN_OK && len > 61,
        "fetch");
  int64_t pid = 0;
  for (int i = 0; i < 8; i++) pid = pid << 8 | ((uint8_t *)buf)[43 + i];
  CHECK(pid > 0, "producer id %lld in the stored batch", (long long)pid);
  takhin_free(buf);
  takhin_close(s);
  printf("ok: %s: %d records through dropped connections and retries, each stored once, in order\n",
         codec, N);
}

int main(int argc, char **argv) {
  CHECK(argc == 3 && strlen(argv[2]) < 900, "usage: test_rdkafka_idempotent SERVER SCRATCH");
  signal(SIGALRM, on_alarm);
  atexit(kill_server);
  alarm(170);
  scratch_mkdir(argv[2]);
  static const char *codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
  for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) run(argv[1], argv[2], codecs[i]);
  return 0;
}
