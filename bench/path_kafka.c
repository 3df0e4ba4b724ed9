/*
** path_kafka.c -- the kafka path: the same messages through the Kafka
** protocol, a real client (librdkafka) talking to takhin-server on loopback.
**
** open() creates the topics with the C API (the api path's configuration),
** closes the store and starts takhin-server on it (127.0.0.1, an ephemeral
** port read from its stdout, --durability of the case). produce() hands
** every record to a batching producer (linger.ms, batch.size, acks=1: the
** store's durability mode decides what an acknowledgement means, as on the
** api path) and returns; drain() waits for every delivery report, and the
** produce benchmarks call it inside the timed loop, so the figure is records
** stored and acknowledged. A reader is a consumer assigned to the partition;
** read_range() consumes from the offset asked (seeking only when the
** consumer is not already there), so a sequential read streams as a Kafka
** consumer does, fetches overlapping the reading, and takes the fetched
** messages in runs (rd_kafka_consume_batch_queue), each one still checked
** for its offset and handed to the sink.
**
** Why fetch.wait.max.ms is 1: librdkafka keeps one Fetch in flight per
** broker. Once a consumer has the whole log, its next Fetch asks at the high
** watermark and the server holds it for max_wait (Kafka's long poll: there is
** nothing to answer with). SequentialFetch rewinds to offset 0 every op, and
** the seek's Fetch cannot go out before that long poll ends, so with 10 ms
** every op waited about 10 ms. 1 ms bounds that wait the way a latency-
** minded consumer does, without the busy loop of 0 (an idle consumer at 0
** fetches back to back and takes a core from the reading).
**
** Built without librdkafka-dev, or with no takhin-server beside
** takhin-bench (or $TAKHIN_SERVER), the path is unavailable and says why.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_HAVE_RDKAFKA

static const char *kafka_unavailable(void) {
  return "kafka path: n/a: takhin-bench was built without librdkafka-dev (scripts/deps.sh bench installs it)";
}
static int kafka_open(const bp_config *cfg, bp_store **out) {
  (void)cfg, (void)out;
  return -1;
}
static int kafka_close(bp_store *st) {
  (void)st;
  return -1;
}
static int kafka_produce(bp_store *st, int32_t g, const takhin_record *recs, size_t n,
                         int64_t *first) {
  (void)st, (void)g, (void)recs, (void)n, (void)first;
  return -1;
}
static int kafka_flush(bp_store *st) {
  (void)st;
  return -1;
}
static int kafka_reader_open(bp_store *st, int32_t g, bp_reader **out) {
  (void)st, (void)g, (void)out;
  return -1;
}
static void kafka_reader_close(bp_reader *r) { (void)r; }
static int kafka_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  (void)r, (void)offset, (void)n, (void)sink;
  return -1;
}
static int kafka_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  (void)r, (void)offset, (void)sink;
  return -1;
}
#define kafka_drain kafka_flush

#else
#include <librdkafka/rdkafka.h>

#define MAX_TOPICS 64
#define SERVER_WAIT_MS 30000

struct bp_store {
  pid_t server;
  int port;
  int32_t ntopics, nparts;
  char names[MAX_TOPICS][16];
  rd_kafka_t *prod;
  rd_kafka_topic_t *ptopics[MAX_TOPICS];
  long inflight_errors;
  char first_error[256];
};

struct bp_reader {
  bp_store *st;
  rd_kafka_t *rk;
  rd_kafka_topic_partition_list_t *asg;
  const char *topic;
  int32_t part;
  int64_t next; /* offset the consumer delivers next; -1 = not assigned */
  int assigned;
  rd_kafka_topic_t *rkt;
  rd_kafka_queue_t *q; /* the consumer queue (rd_kafka_poll_set_consumer) */
};

#define BATCH_MAX 1024 /* messages taken from librdkafka per call */

static char server_bin[PATH_MAX];

/* takhin-server: $TAKHIN_SERVER, else beside this executable. */
static const char *kafka_unavailable(void) {
#if defined(__SANITIZE_THREAD__)
  /* Debian's librdkafka is not built with TSan: its threads crash an
  ** instrumented process (and would only report races of their own). */
  return "kafka path: n/a: not run under ThreadSanitizer (librdkafka is not instrumented)";
#endif
  const char *env = getenv("TAKHIN_SERVER");
  if (env && *env) {
    snprintf(server_bin, sizeof server_bin, "%s", env);
  } else {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
      return "kafka path: n/a: cannot find takhin-server (no /proc/self/exe; set TAKHIN_SERVER)";
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(server_bin, sizeof server_bin, "%.*s/takhin-server", (int)(sizeof server_bin - 16),
             self);
  }
  if (access(server_bin, X_OK) != 0)
    return "kafka path: n/a: no takhin-server beside takhin-bench (build the takhin-server target, or set TAKHIN_SERVER)";
  return NULL;
}

static int fail(const char *what, const char *why) {
  bench_errorf("kafka path: %s: %s", what, why);
  return -1;
}

static const char *dur_name(int d) {
  return d == TAKHIN_DURABILITY_FSYNC      ? "fsync"
         : d == TAKHIN_DURABILITY_BUFFERED ? "buffered"
                                           : "os";
}

static void stop_server(bp_store *st) {
  if (st->server <= 0) return;
  kill(st->server, SIGTERM);
  int status;
  while (waitpid(st->server, &status, 0) < 0 && errno == EINTR) {}
  st->server = 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  bp_store *st = opaque;
  if (m->err) {
    if (!st->inflight_errors++)
      snprintf(st->first_error, sizeof st->first_error, "%s", rd_kafka_err2str(m->err));
  }
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) return fail(k, err);
  return 0;
}

static rd_kafka_conf_t *base_conf(bp_store *st) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char bs[64];
  snprintf(bs, sizeof bs, "127.0.0.1:%d", st->port);
  if (set(c, "bootstrap.servers", bs) || set(c, "log_level", "3") ||
      set(c, "broker.address.family", "v4")) {
    rd_kafka_conf_destroy(c);
    return NULL;
  }
  return c;
}

static int kafka_close(bp_store *st);

static int kafka_open(const bp_config *cfg, bp_store **out) {
  if (kafka_unavailable()) return fail("open", kafka_unavailable());
  if (bp_topics(cfg) > MAX_TOPICS) return fail("open", "too many topics");
  bp_store *st = calloc(1, sizeof *st);
  if (!st) return fail("open", "out of memory");
  st->ntopics = bp_topics(cfg);
  st->nparts = cfg->partitions;
  char db[4096];
  snprintf(db, sizeof db, "%s/bench.db", cfg->dir);
  /* the topics, as the api path makes them */
  if (!cfg->existing) {
    takhin_store *s;
    int rc = takhin_open(db, NULL, &s);
    char seg[32];
    snprintf(seg, sizeof seg, "%lld",
             (long long)(cfg->segment_bytes ? cfg->segment_bytes : 1073741824));
    const char *const config[] = {"segment_bytes",
                                  seg,
                                  "max_message_bytes",
                                  "16777216",
                                  "cleanup_policy",
                                  cfg->compacted ? "compact" : "delete",
                                  NULL};
    for (int32_t t = 0; t < st->ntopics && rc == TAKHIN_OK; t++) {
      char name[16];
      snprintf(name, sizeof name, t ? "bench%d" : "bench", (int)t);
      rc = takhin_topic_create(s, name, cfg->partitions, config);
    }
    if (rc != TAKHIN_OK) {
      free(st);
      return fail("creating the topics", takhin_errmsg());
    }
    takhin_close(s);
  }
  for (int32_t t = 0; t < st->ntopics; t++)
    snprintf(st->names[t], sizeof st->names[t], t ? "bench%d" : "bench", (int)t);
  int pfd[2];
  if (pipe(pfd) != 0) {
    free(st);
    return fail("pipe", strerror(errno));
  }
  char logp[4200];
  snprintf(logp, sizeof logp, "%s/takhin-server.log", cfg->dir);
  pid_t pid = fork();
  if (pid == 0) {
    int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                   0644); /* its log, out of the report */
    if (lfd >= 0) dup2(lfd, 2);
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    execl(server_bin, server_bin, db, "--listen", "127.0.0.1:0", "--no-auto-create", "--durability",
          dur_name(cfg->durability), (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  if (pid < 0) {
    close(pfd[0]);
    free(st);
    return fail("fork", strerror(errno));
  }
  st->server = pid;
  /* its first stdout line is the port */
  char line[32] = "";
  size_t got = 0;
  while (got < sizeof line - 1) {
    ssize_t r = read(pfd[0], line + got, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || line[got] == '\n') break;
    got++;
  }
  line[got] = 0;
  close(pfd[0]);
  st->port = atoi(line);
  if (st->port <= 0) {
    kafka_close(st);
    return fail("takhin-server", "did not start (no port on its stdout)");
  }
  rd_kafka_conf_t *c = base_conf(st);
  if (!c || set(c, "linger.ms", "5") || set(c, "batch.size", "1000000") || set(c, "acks", "1") ||
      set(c, "queue.buffering.max.kbytes", "262144") ||
      set(c, "queue.buffering.max.messages", "1000000") ||
      set(c, "message.max.bytes", "16000000")) {
    if (c) rd_kafka_conf_destroy(c);
    kafka_close(st);
    return -1;
  }
  rd_kafka_conf_set_opaque(c, st);
  rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
  char err[256];
  st->prod = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!st->prod) {
    rd_kafka_conf_destroy(c);
    kafka_close(st);
    return fail("rd_kafka_new", err);
  }
  for (int32_t t = 0; t < st->ntopics; t++)
    st->ptopics[t] = rd_kafka_topic_new(st->prod, st->names[t], NULL);
  *out = st;
  return 0;
}

static int kafka_drain(bp_store *st) {
  if (rd_kafka_flush(st->prod, SERVER_WAIT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fail("flush", "deliveries still outstanding after 30 s");
  if (st->inflight_errors) {
    char why[320];
    snprintf(why, sizeof why, "%ld deliveries failed, the first: %s", st->inflight_errors,
             st->first_error);
    st->inflight_errors = 0;
    return fail("produce", why);
  }
  return 0;
}

static int kafka_flush(bp_store *st) { return kafka_drain(st); }

static int kafka_close(bp_store *st) {
  int rc = 0;
  if (st->prod) {
    rc = kafka_drain(st);
    for (int32_t t = 0; t < st->ntopics; t++)
      if (st->ptopics[t]) rd_kafka_topic_destroy(st->ptopics[t]);
    rd_kafka_destroy(st->prod);
  }
  stop_server(st);
  free(st);
  return rc;
}

/* Each record is handed to the producer by reference (the payload pool
** never changes while a benchmark runs): librdkafka batches them. */
static int kafka_produce(bp_store *st, int32_t g, const takhin_record *recs, size_t n,
                         int64_t *first) {
  if (first) *first = -1; /* known only once delivered */
  rd_kafka_topic_t *t = st->ptopics[g / st->nparts];
  int32_t part = g % st->nparts;
  for (size_t i = 0; i < n; i++) {
    for (;;) {
      if (rd_kafka_produce(t, part, 0, (void *)recs[i].value, recs[i].value_len, recs[i].key,
                           recs[i].key_len, NULL) == 0)
        break;
      rd_kafka_resp_err_t e = rd_kafka_last_error();
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return fail("rd_kafka_produce", rd_kafka_err2str(e));
      rd_kafka_poll(st->prod, 1); /* the queue is full: let deliveries drain it */
    }
  }
  rd_kafka_poll(st->prod, 0);
  return 0;
}

static int kafka_reader_open(bp_store *st, int32_t g, bp_reader **out) {
  bp_reader *r = calloc(1, sizeof *r);
  if (!r) return fail("reader", "out of memory");
  r->st = st;
  r->topic = st->names[g / st->nparts];
  r->part = g % st->nparts;
  r->next = -1;
  rd_kafka_conf_t *c = base_conf(st);
  if (!c || set(c, "group.id", "takhin-bench") || set(c, "enable.auto.commit", "false") ||
      set(c, "enable.partition.eof", "false") || set(c, "fetch.wait.max.ms", "1") ||
      set(c, "fetch.message.max.bytes", "4194304") || set(c, "queued.min.messages", "100000")) {
    if (c) rd_kafka_conf_destroy(c);
    free(r);
    return -1;
  }
  char err[256];
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  if (!r->rk) {
    rd_kafka_conf_destroy(c);
    free(r);
    return fail("rd_kafka_new (consumer)", err);
  }
  rd_kafka_poll_set_consumer(r->rk);
  r->q = rd_kafka_queue_get_consumer(r->rk);
  r->rkt = rd_kafka_topic_new(r->rk, r->topic, NULL);
  r->asg = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(r->asg, r->topic, r->part);
  *out = r;
  return 0;
}

static void kafka_reader_close(bp_reader *r) {
  if (!r) return;
  rd_kafka_assign(r->rk, NULL);
  if (r->q) rd_kafka_queue_destroy(r->q);
  rd_kafka_topic_destroy(r->rkt);
  rd_kafka_consumer_close(r->rk);
  rd_kafka_destroy(r->rk);
  rd_kafka_topic_partition_list_destroy(r->asg);
  free(r);
}

static int kafka_read_range(bp_reader *r, int64_t offset, int64_t n, bp_sink *sink) {
  if (r->next != offset) { /* assign once; later, seek (no new fetcher) */
    rd_kafka_resp_err_t e;
    if (!r->assigned) {
      r->asg->elems[0].offset = offset;
      e = rd_kafka_assign(r->rk, r->asg);
      if (e) return fail("rd_kafka_assign", rd_kafka_err2str(e));
      r->assigned = 1;
    } else if ((e = rd_kafka_seek(r->rkt, r->part, offset, SERVER_WAIT_MS))) {
      return fail("rd_kafka_seek", rd_kafka_err2str(e));
    }
    r->next = offset;
  }
  /* Whole runs of fetched messages at a time: one queue lock and clock
  ** read per run, not per message. Never more than asked, so the next
  ** read_range starts where this one ended. */
  rd_kafka_message_t *ms[BATCH_MAX];
  for (int64_t i = 0; i < n;) {
    size_t want = n - i < BATCH_MAX ? (size_t)(n - i) : BATCH_MAX;
    ssize_t got = rd_kafka_consume_batch_queue(r->q, SERVER_WAIT_MS, ms, want);
    if (got <= 0) {
      bench_errorf("kafka path: no record at offset %lld within 30 s", (long long)r->next);
      r->next = -1;
      return -1;
    }
    int bad = 0;
    for (ssize_t k = 0; k < got; k++) {
      rd_kafka_message_t *m = ms[k];
      if (!bad && m->err) {
        bench_errorf("kafka path: consume: %s", rd_kafka_message_errstr(m));
        bad = 1;
      } else if (!bad && m->offset != r->next) {
        bench_errorf("kafka path: offset %lld, expected %lld", (long long)m->offset,
                     (long long)r->next);
        bad = 1;
      } else if (!bad) {
        bp_sink_take(sink, m->key, m->key_len, m->payload, m->len);
        r->next++;
        i++;
      }
      rd_kafka_message_destroy(m);
    }
    if (bad) {
      r->next = -1;
      return -1;
    }
  }
  return 0;
}

static int kafka_read_one(bp_reader *r, int64_t offset, bp_sink *sink) {
  return kafka_read_range(r, offset, 1, sink);
}
#endif /* BENCH_HAVE_RDKAFKA */

const bench_path bench_path_kafka = {
    .name = "kafka",
    .reopens = 0,
    .unavailable = kafka_unavailable,
    .open = kafka_open,
    .close = kafka_close,
    .produce = kafka_produce,
    .drain = kafka_drain,
    .flush = kafka_flush,
    .segments = NULL,
    .reader_open = kafka_reader_open,
    .reader_close = kafka_reader_close,
    .read_range = kafka_read_range,
    .read_one = kafka_read_one,
};
