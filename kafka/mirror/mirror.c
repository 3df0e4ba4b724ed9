/*
** mirror.c -- takhin-mirror: ship takhin topics to a Kafka cluster (--to), or
** bring a cluster's topics into a takhin store (--from), exactly once across
** kill -9. Uses only store/takhin.h and librdkafka.
**
** Resume points live on the receiving side, never in a separate file, so a
** crash between "write the records" and "write the position" cannot exist:
**
**   --to:   every record produced to the cluster carries a header
**           "takhin.offset" = its takhin offset (decimal), and is produced in
**           a transaction. The transactional.id is one per (store, cluster),
**           so at start init_transactions fences the instance this one
**           replaces and aborts its open transaction; then the tail of each
**           target partition is read read_committed, and the next takhin
**           offset to ship is the last committed record's header + 1 (or the
**           takhin log start when there is none). Records the killed mirror
**           had in flight, appended above the high watermark or still on the
**           wire, belong to the aborted transaction: shipped again, seen once
**           by read_committed consumers. (Idempotence alone cannot do this: a
**           restarted process gets a new producer id.)
**   --from: every record written to takhin carries a header "kafka.offset" =
**           its cluster offset. takhin_produce stores one batch all or
**           nothing, so the header lands atomically with the record; at start
**           the next cluster offset is the last takhin record's header + 1.
**           If retention emptied the takhin partition, the metadata of the
**           progress group (below) gives the same position.
**
** Offsets differ between the sides: the cluster numbers records itself (and
** gives transaction markers offsets too), takhin skips what compaction removed
** and starts at its log start after retention.
** The header is the mapping: cluster record at offset K with takhin.offset=T
** is takhin record T (and vice versa for kafka.offset).
**
** Progress in SQL: the mirror commits, as consumer group "mirror:<cluster>"
** (cluster = --name, else the cluster id), one past the last takhin offset
** in a committed transaction (--to; lag = records not yet shipped), or the
** takhin high watermark with metadata "kafka_offset=N" (--from, per batch).
** That group is informational (and the --from fallback), not the resume point.
**
** Configuration errors (unreachable cluster, missing source topic, partition
** count mismatch, refused topic creation, bad -X) are found before the store
** is opened for writing, and end with a message and exit status 1 (2 for bad
** usage); the store is then left untouched.
*/
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "takhin.h"

#define HDR_TO "takhin.offset"  /* on cluster records: their takhin offset */
#define HDR_FROM "kafka.offset" /* on takhin records: their cluster offset */
#define CHUNK 5000              /* records per partition read in one cursor pass */
#define TXN_RECORDS 100000      /* --to: records per transaction, at most */
#define TXN_MS 500              /* --to: age of a transaction when it is committed */

typedef struct {
  const char *store_path, *bootstrap, *name;
  char **topics;
  int ntopics;
  int to, follow;
  int timeout_ms;
  const char **xkeys, **xvals;
  int nx;
} args_t;

typedef struct {
  char *name;
  int32_t partitions;
  int zstd;
  int64_t *next;         /* per partition: next source offset to ship/consume */
  int64_t *stop;         /* --from without --follow: cluster high watermark at start */
  rd_kafka_topic_t *rkt; /* --to: producer topic handle (per-topic compression) */
  int64_t *committed;    /* --to: next[] as of the last committed transaction */
} topic_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("takhin-mirror: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void usage(const char *msg) {
  fprintf(stderr,
          "takhin-mirror: %s\n"
          "usage: takhin-mirror STORE --to BOOTSTRAP [--topics a,b] [--follow] [options]\n"
          "       takhin-mirror STORE --from BOOTSTRAP --topics a,b [--follow] [options]\n"
          "options: --name CLUSTER     progress group is mirror:CLUSTER (default: cluster id)\n"
          "         --timeout-ms N     cluster metadata/creation timeout (default 10000)\n"
          "         -X key=value       librdkafka property (repeatable)\n",
          msg);
  exit(2);
}

static void split_topics(args_t *a, const char *list) {
  char *copy = strdup(list), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    a->topics = realloc(a->topics, sizeof(char *) * (size_t)(a->ntopics + 1));
    a->topics[a->ntopics++] = strdup(t);
  }
  free(copy);
}

static void parse_args(args_t *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->timeout_ms = 10000;
  a->xkeys = calloc((size_t)argc, sizeof(char *));
  a->xvals = calloc((size_t)argc, sizeof(char *));
  int dir = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--to") || !strcmp(o, "--from")) {
      if (!val) usage("--to/--from needs a bootstrap address");
      if (dir) usage("give exactly one of --to and --from");
      dir = 1;
      a->to = !strcmp(o, "--to");
      a->bootstrap = argv[++i];
    } else if (!strcmp(o, "--topics")) {
      if (!val) usage("--topics needs a list");
      split_topics(a, argv[++i]);
    } else if (!strcmp(o, "--follow")) {
      a->follow = 1;
    } else if (!strcmp(o, "--name")) {
      if (!val || !*val) usage("--name needs a cluster name");
      a->name = argv[++i];
    } else if (!strcmp(o, "--timeout-ms")) {
      if (!val || atoi(val) <= 0) usage("--timeout-ms needs a positive number");
      a->timeout_ms = atoi(argv[++i]);
    } else if (!strcmp(o, "-X")) {
      if (!val || !strchr(val, '=')) usage("-X needs key=value");
      char *kv = strdup(argv[++i]), *eq = strchr(kv, '=');
      *eq = 0;
      a->xkeys[a->nx] = kv;
      a->xvals[a->nx++] = eq + 1;
    } else if (o[0] == '-') {
      char m[300];
      snprintf(m, sizeof m, "unknown option %s", o);
      usage(m);
    } else if (!a->store_path) {
      a->store_path = o;
    } else {
      usage("more than one STORE given");
    }
  }
  if (!a->store_path) usage("no STORE given");
  if (!dir) usage("give --to BOOTSTRAP or --from BOOTSTRAP");
  if (!a->to && a->ntopics == 0) usage("--from needs --topics");
}

/* A librdkafka configuration: bootstrap, our defaults, then -X overrides. */
static rd_kafka_conf_t *make_conf(const args_t *a, const char *const *defaults) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[512];
  if (rd_kafka_conf_set(conf, "bootstrap.servers", a->bootstrap, err, sizeof err))
    die("bootstrap %s: %s", a->bootstrap, err);
  for (int i = 0; defaults && defaults[i]; i += 2)
    if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], err, sizeof err))
      die("%s=%s: %s", defaults[i], defaults[i + 1], err);
  for (int i = 0; i < a->nx; i++)
    if (rd_kafka_conf_set(conf, a->xkeys[i], a->xvals[i], err, sizeof err))
      die("-X %s=%s: %s", a->xkeys[i], a->xvals[i], err);
  return conf;
}

static int x_given(const args_t *a, const char *key) {
  for (int i = 0; i < a->nx; i++)
    if (!strcmp(a->xkeys[i], key)) return 1;
  return 0;
}

static const rd_kafka_metadata_topic_t *md_topic(const rd_kafka_metadata_t *md, const char *t) {
  for (int i = 0; i < md->topic_cnt; i++)
    if (!strcmp(md->topics[i].topic, t)) return &md->topics[i];
  return NULL;
}

/* Metadata of every topic; an unreachable cluster ends here, clearly. */
static const rd_kafka_metadata_t *cluster_metadata(rd_kafka_t *rk, const args_t *a) {
  const rd_kafka_metadata_t *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, a->timeout_ms);
  if (err)
    die("cannot reach the cluster at %s within %d ms: %s", a->bootstrap, a->timeout_ms,
        rd_kafka_err2str(err));
  return md;
}

static void cluster_name(rd_kafka_t *rk, const args_t *a, char *out, size_t cap) {
  if (a->name) {
    snprintf(out, cap, "mirror:%s", a->name);
    return;
  }
  char *id = rd_kafka_clusterid(rk, a->timeout_ms);
  snprintf(out, cap, "mirror:%s", id ? id : a->bootstrap);
  if (id) rd_kafka_mem_free(rk, id);
}

static int64_t parse_offset_header(const void *v, size_t len, int *ok) {
  char buf[32];
  *ok = 0;
  if (!v || len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, v, len);
  buf[len] = 0;
  char *end;
  errno = 0;
  long long x = strtoll(buf, &end, 10);
  if (errno || *end || x < 0) return -1;
  *ok = 1;
  return x;
}

static void free_topics(topic_t *ts, int n, int own_names) {
  for (int i = 0; i < n; i++) {
    if (own_names) free(ts[i].name);
    free(ts[i].next);
    free(ts[i].stop);
    free(ts[i].committed);
  }
  free(ts);
}

/* ---- --to: takhin -> cluster ------------------------------------------- */

static void create_missing_topics(rd_kafka_t *rk, const args_t *a, topic_t *ts, int n,
                                  const rd_kafka_metadata_t *md) {
  rd_kafka_NewTopic_t **nt = calloc((size_t)n, sizeof *nt);
  int cnt = 0, rf = md->broker_cnt < 3 ? md->broker_cnt : 3;
  char err[512];
  for (int i = 0; i < n; i++) {
    const rd_kafka_metadata_topic_t *mt = md_topic(md, ts[i].name);
    if (mt && mt->err == 0) {
      if (mt->partition_cnt != ts[i].partitions)
        die("target topic %s has %d partitions, the takhin topic %d: keys would land in "
            "other partitions; refusing",
            ts[i].name, mt->partition_cnt, ts[i].partitions);
      continue;
    }
    nt[cnt] = rd_kafka_NewTopic_new(ts[i].name, ts[i].partitions, rf, err, sizeof err);
    if (!nt[cnt]) die("topic %s: %s", ts[i].name, err);
    cnt++;
  }
  if (cnt == 0) {
    free(nt);
    return;
  }
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opt, a->timeout_ms, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(opt, a->timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk, nt, (size_t)cnt, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, a->timeout_ms + 2000);
  if (!ev) die("creating the target topics timed out");
  if (rd_kafka_event_error(ev))
    die("cannot create the target topics: %s", rd_kafka_event_error_string(ev));
  const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
  size_t nres;
  const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &nres);
  for (size_t i = 0; i < nres; i++)
    if (rd_kafka_topic_result_error(tr[i]) &&
        rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      die("cannot create target topic %s: %s", rd_kafka_topic_result_name(tr[i]),
          rd_kafka_topic_result_error_string(tr[i])
              ? rd_kafka_topic_result_error_string(tr[i])
              : rd_kafka_err2str(rd_kafka_topic_result_error(tr[i])));
  rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy_array(nt, (size_t)cnt);
  free(nt);
}

/* One target partition while resume_from_target reads its tail. */
typedef struct {
  int ti;
  int32_t p;
  int64_t lo, hi;  /* log start and last stable offset (read_committed) */
  int64_t start;   /* where this pass reads from */
  int64_t last_at; /* cluster offset of the last committed record seen, -1: none */
  int64_t last;    /* its takhin.offset, -1 when it has none (a foreign record) */
  int pending, eof;
} tail_t;


/* A partition's watermarks, asked again while the cluster moves under us (a
** leader change, a broker down, a timeout): those answers are transient,
** and a mirror that died on one would make every fault fatal. Anything else,
** or the same trouble for 30 s, ends the mirror. */
static void watermarks(rd_kafka_t *c, const char *topic, int32_t p, int64_t *lo, int64_t *hi,
                       int timeout_ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c, topic, p, lo, hi, timeout_ms);
    if (!e) return;
    int transient =
        e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
        e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE || e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
        e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
        e == RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS || e == RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE ||
        e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || e == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH ||
        e == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH || e == RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double waited = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
    if (!transient || waited > 30) die("watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(e));
    fprintf(stderr, "takhin-mirror: watermarks of %s [%d]: %s; asking again\n", topic, p,
            rd_kafka_err2str(e));
    /* The query goes to the leader librdkafka has cached, and a stale one
    ** answers NOT_LEADER for ever: learn the leaders again first. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rkt && rd_kafka_metadata(c, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
      rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    usleep(100 * 1000);
  }
}

/* Set next[p] of every target partition to one past the takhin.offset of
** its last committed record (the takhin log start when it has none).
**
** Called after init_transactions, which fenced the mirror this one replaces
** and aborted its open transaction. The tail is read read_committed, below
** the last stable offset, so records of that aborted transaction are not
** seen and are shipped again. The offsets just below the LSO are transaction
** markers, not records, and the newest transactions may have been aborted
** whole, so each partition is read from a window below its LSO that grows
** 16-fold until it holds a record or reaches the log start. */
static void resume_from_target(const args_t *a, takhin_store *s, topic_t *ts, int n) {
  const char *defs[] = {"group.id", "takhin-mirror-probe", "enable.auto.commit", "false",
                        "enable.partition.eof", "true", "isolation.level", "read_committed",
                        /* the end of the partition is reached at once, not after 500 ms */
                        "fetch.wait.max.ms", "10", NULL};
  char err[512];
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, make_conf(a, defs), err, sizeof err);
  if (!c) die("consumer: %s", err);
  int total = 0, pending = 0;
  for (int i = 0; i < n; i++) total += ts[i].partitions;
  tail_t *tl = calloc((size_t)total, sizeof *tl);
  int k = 0;
  for (int i = 0; i < n; i++)
    for (int32_t p = 0; p < ts[i].partitions; p++, k++) {
      takhin_partition_info pi;
      if (takhin_partition_info_get(s, ts[i].name, p, &pi))
        die("%s [%d]: %s", ts[i].name, p, takhin_errmsg());
      ts[i].next[p] = pi.log_start_offset;
      tail_t *t = &tl[k];
      *t = (tail_t){i, p, 0, 0, 0, -1, -1, 0, 0};
      watermarks(c, ts[i].name, p, &t->lo, &t->hi, a->timeout_ms);
      t->pending = t->hi > t->lo;
      t->start = t->hi - 64 > t->lo ? t->hi - 64 : t->lo;
      pending += t->pending;
    }
  for (int64_t window = 64 * 16; pending > 0; window *= 16) {
    rd_kafka_topic_partition_list_t *as = rd_kafka_topic_partition_list_new(pending);
    int waiting = 0;
    for (k = 0; k < total; k++)
      if (tl[k].pending) {
        rd_kafka_topic_partition_list_add(as, ts[tl[k].ti].name, tl[k].p)->offset = tl[k].start;
        tl[k].eof = 0;
        waiting++;
      }
    rd_kafka_assign(c, as);
    rd_kafka_topic_partition_list_destroy(as);
    int64_t deadline = (int64_t)time(NULL) + a->timeout_ms / 1000 + 5;
    while (waiting > 0) {
      if ((int64_t)time(NULL) > deadline)
        die("reading the tail of the target partitions timed out");
      rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
      if (!m) continue;
      tail_t *t = NULL; /* the partition m belongs to, while it is being read */
      for (k = 0; m->rkt && k < total && !t; k++)
        if (tl[k].pending && !tl[k].eof && tl[k].p == m->partition &&
            !strcmp(ts[tl[k].ti].name, rd_kafka_topic_name(m->rkt)))
          t = &tl[k];
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (t) t->eof = 1, waiting--;
      } else if (m->err) { /* librdkafka retries; the deadline bounds it */
        fprintf(stderr, "takhin-mirror: reading the target tail: %s\n", rd_kafka_message_errstr(m));
      } else if (t && m->offset >= t->start) {
        rd_kafka_headers_t *h = NULL;
        const void *v = NULL;
        size_t vl = 0;
        int ok = 0;
        int64_t off = -1;
        if (rd_kafka_message_headers(m, &h) == 0 &&
            rd_kafka_header_get_last(h, HDR_TO, &v, &vl) == 0)
          off = parse_offset_header(v, vl, &ok);
        t->last_at = m->offset;
        t->last = ok ? off : -1;
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(c, NULL);
    for (k = 0; k < total; k++) {
      tail_t *t = &tl[k];
      if (!t->pending) continue;
      if (t->last_at >= 0 || t->start == t->lo) {
        t->pending = 0; /* found, or the partition holds no committed record */
        pending--;
      } else {
        t->start = t->hi - window > t->lo ? t->hi - window : t->lo;
      }
    }
  }
  for (k = 0; k < total; k++) {
    tail_t *t = &tl[k];
    const char *tn = ts[t->ti].name;
    if (t->last_at < 0) continue;
    if (t->last < 0)
      die("target %s [%d] offset %" PRId64 " has no %s header: the partition holds records "
          "not written by takhin-mirror; refusing to guess where to resume",
          tn, t->p, t->last_at, HDR_TO);
    takhin_partition_info pi;
    if (takhin_partition_info_get(s, tn, t->p, &pi)) die("%s [%d]: %s", tn, t->p, takhin_errmsg());
    if (t->last + 1 > pi.high_watermark)
      die("target %s [%d] already holds takhin offset %" PRId64 " but the store ends at %" PRId64
          ": is this the right store?",
          tn, t->p, t->last, pi.high_watermark);
    /* below the log start: retention removed records never shipped */
    ts[t->ti].next[t->p] = t->last + 1 > pi.log_start_offset ? t->last + 1 : pi.log_start_offset;
  }
  free(tl);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
}

/* ---- transactions ----------------------------------------------------------
** Every record shipped belongs to a transaction of at most TXN_RECORDS
** records or TXN_MS milliseconds; committed[p] is one past the last takhin
** offset of partition p whose transaction committed. */

static int txn_open;        /* a transaction has begun and holds records */
static int64_t txn_records; /* records in it */
static struct timespec txn_t0;

static int64_t ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (int64_t)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void txn_die(rd_kafka_error_t *e, const char *what) {
  die("%s: %s%s", what, rd_kafka_error_string(e),
      rd_kafka_error_is_fatal(e)
          ? " (fatal: was another takhin-mirror for this store and cluster started? it fences this one)"
          : "");
}

/* The transactional.id: one per (store, cluster), so a restarted mirror
** fences the instance it replaces and aborts that one's open transaction. */
static void txn_id(const args_t *a, const char *group, char *out, size_t cap) {
  char *rp = realpath(a->store_path, NULL);
  snprintf(out, cap, "takhin-%s@%s", group, rp ? rp : a->store_path);
  free(rp);
}

static void txn_init(rd_kafka_t *rk, const args_t *a) {
  for (int attempt = 0;; attempt++) {
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, a->timeout_ms);
    if (!e) return;
    if (!rd_kafka_error_is_retriable(e) || attempt >= 2)
      txn_die(e, "cannot start a transactional producer on the cluster (does it allow "
                 "transactions, and this user the transactional id?)");
    rd_kafka_error_destroy(e);
  }
}

static void txn_begin(rd_kafka_t *rk) {
  rd_kafka_error_t *e = rd_kafka_begin_transaction(rk);
  if (e) txn_die(e, "begin transaction");
  txn_open = 1;
  txn_records = 0;
  clock_gettime(CLOCK_MONOTONIC, &txn_t0);
}

/* Commit the open transaction; on an error that requires abort, abort it and
** rewind every partition to its committed offset so its records go again.
** Returns 1 when committed, 0 when aborted. */
static int txn_commit(rd_kafka_t *rk, topic_t *ts, int n) {
  txn_open = 0;
  for (int attempt = 0;; attempt++) {
    rd_kafka_error_t *e = rd_kafka_commit_transaction(rk, 10000);
    if (!e) {
      for (int i = 0; i < n; i++)
        memcpy(ts[i].committed, ts[i].next, sizeof(int64_t) * (size_t)ts[i].partitions);
      return 1;
    }
    if (rd_kafka_error_txn_requires_abort(e)) {
      fprintf(stderr, "takhin-mirror: aborting a transaction, its records go again: %s\n",
              rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      for (int k = 0; (e = rd_kafka_abort_transaction(rk, 10000)) != NULL; k++) {
        if (!rd_kafka_error_is_retriable(e) || k >= 30) txn_die(e, "abort transaction");
        rd_kafka_error_destroy(e);
      }
      for (int i = 0; i < n; i++)
        memcpy(ts[i].next, ts[i].committed, sizeof(int64_t) * (size_t)ts[i].partitions);
      return 0;
    }
    /* retriable: the cluster is still acknowledging (a broker down, a new leader) */
    if (!rd_kafka_error_is_retriable(e) || (stop_requested && attempt >= 3))
      txn_die(e, "commit transaction (the next run aborts it and ships its records again)");
    fprintf(stderr, "takhin-mirror: commit transaction: %s; retrying\n", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
}

static void commit_progress(takhin_store *w, const char *group, topic_t *ts, int n) {
  if (!w) return;
  int total = 0;
  for (int i = 0; i < n; i++) total += ts[i].partitions;
  takhin_offset_commit *oc = calloc((size_t)total, sizeof *oc);
  int k = 0;
  for (int i = 0; i < n; i++)
    for (int32_t p = 0; p < ts[i].partitions; p++)
      oc[k++] = (takhin_offset_commit){ts[i].name, p, ts[i].committed[p], NULL};
  if (takhin_group_commit(w, group, oc, (size_t)k))
    fprintf(stderr, "takhin-mirror: progress commit to %s failed: %s\n", group, takhin_errmsg());
  free(oc);
}

/* Ship up to CHUNK records of one partition in the open transaction (begun
** here when none is); returns how many. */
static int64_t ship_partition(takhin_store *s, rd_kafka_t *rk, topic_t *t, int32_t p) {
  takhin_partition_info pi;
  if (takhin_partition_info_get(s, t->name, p, &pi))
    die("%s [%d]: %s", t->name, p, takhin_errmsg());
  if (t->next[p] < pi.log_start_offset) t->next[p] = pi.log_start_offset;
  if (t->next[p] >= pi.high_watermark) return 0;
  if (!txn_open) txn_begin(rk);
  takhin_cursor *c;
  if (takhin_cursor_open(s, t->name, p, &c) || takhin_cursor_seek(c, t->next[p], CHUNK, 0))
    die("%s [%d] at %" PRId64 ": %s", t->name, p, t->next[p], takhin_errmsg());
  takhin_message m;
  int64_t shipped = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(m.n_headers + 1);
    for (size_t i = 0; i < m.n_headers; i++) {
      takhin_header th;
      if (takhin_message_header(&m, i, &th))
        die("%s [%d] @%" PRId64 ": %s", t->name, p, m.offset, takhin_errmsg());
      rd_kafka_header_add(h, th.key, (ssize_t)th.key_len, th.value,
                          th.value ? (ssize_t)th.value_len : 0);
    }
    char off[24];
    int ol = snprintf(off, sizeof off, "%" PRId64, m.offset);
    rd_kafka_header_add(h, HDR_TO, -1, off, ol);
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(p),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m.key, m.key ? m.key_len : 0),
          RD_KAFKA_V_VALUE((void *)m.value, m.value ? m.value_len : 0),
          RD_KAFKA_V_TIMESTAMP(m.timestamp), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (!e) break;
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 50);
        continue;
      }
      die("produce to %s [%d]: %s", t->name, p, rd_kafka_err2str(e));
    }
    t->next[p] = m.offset + 1;
    shipped++;
  }
  if (rc != TAKHIN_END) die("reading %s [%d]: %s", t->name, p, takhin_errmsg());
  takhin_cursor_close(c);
  rd_kafka_poll(rk, 0);
  txn_records += shipped;
  return shipped;
}

/* --follow, nothing left to ship: sleep in takhin_cursor_wait_any until a
** partition grows past next[] (an append wakes it at once; on a read-only
** handle, the writer being another process, within 20 ms), or 500 ms pass
** so a stop request is seen. */
static void wait_for_records(takhin_store *s, topic_t *ts, int n) {
  int total = 0, k = 0;
  for (int i = 0; i < n; i++) total += ts[i].partitions;
  takhin_cursor **cs = calloc((size_t)total, sizeof *cs);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++)
    for (int32_t p = 0; p < ts[i].partitions && !rc; p++, k++) {
      takhin_partition_info pi;
      rc = takhin_partition_info_get(s, ts[i].name, p, &pi) ||
           takhin_cursor_open(s, ts[i].name, p, &cs[k]) ||
           takhin_cursor_seek(
               cs[k], ts[i].next[p] > pi.log_start_offset ? ts[i].next[p] : pi.log_start_offset, 1,
               0);
    }
  if (rc) die("waiting for records: %s", takhin_errmsg());
  rc = takhin_cursor_wait_any(cs, (size_t)total, 500, NULL);
  if (rc != TAKHIN_OK && rc != TAKHIN_END) die("waiting for records: %s", takhin_errmsg());
  for (k = 0; k < total; k++) takhin_cursor_close(cs[k]);
  free(cs);
}

static int run_to(const args_t *a) {
  takhin_options ro;
  takhin_options_init(&ro);
  ro.read_only = 1;
  takhin_store *s;
  if (access(a->store_path, F_OK)) die("store %s does not exist", a->store_path);
  if (takhin_open(a->store_path, &ro, &s))
    die("cannot open store %s: %s", a->store_path, takhin_errmsg());

  char **names = NULL;
  size_t nn = 0;
  if (a->ntopics == 0 && takhin_topic_list(s, &names, &nn))
    die("listing topics: %s", takhin_errmsg());
  int n = a->ntopics ? a->ntopics : (int)nn;
  if (n == 0) die("store %s has no topics to mirror", a->store_path);
  topic_t *ts = calloc((size_t)n, sizeof *ts);
  for (int i = 0; i < n; i++) {
    takhin_topic_desc d;
    const char *nm = a->ntopics ? a->topics[i] : names[i];
    if (takhin_topic_describe(s, nm, &d)) die("topic %s: %s", nm, takhin_errmsg());
    ts[i].name = strdup(nm);
    ts[i].partitions = d.partitions;
    ts[i].zstd = !strcmp(d.compression, "zstd");
    ts[i].next = calloc((size_t)d.partitions, sizeof(int64_t));
    ts[i].committed = calloc((size_t)d.partitions, sizeof(int64_t));
  }
  takhin_free(names);

  /* metadata, topic creation and the cluster id through a plain client: the
  ** transactional.id names the cluster */
  char err[512], group[300], tid[PATH_MAX + 400];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, make_conf(a, NULL), err, sizeof err);
  if (!rk) die("producer: %s", err);
  const rd_kafka_metadata_t *md = cluster_metadata(rk, a);
  create_missing_topics(rk, a, ts, n, md);
  rd_kafka_metadata_destroy(md);
  cluster_name(rk, a, group, sizeof group);
  rd_kafka_destroy(rk);

  txn_id(a, group, tid, sizeof tid);
  /* linger 50 ms: fuller batches (a commit flushes at once, so --follow does
  ** not wait for it); see BENCHMARKS.md */
  const char *defs[] = {"transactional.id", tid, "linger.ms", "50", NULL};
  rk = rd_kafka_new(RD_KAFKA_PRODUCER, make_conf(a, defs), err, sizeof err);
  if (!rk) die("producer: %s", err);
  /* a zstd takhin topic is compressed on the cluster too, unless -X says otherwise */
  int own_codec = x_given(a, "compression.codec") || x_given(a, "compression.type");
  for (int i = 0; i < n; i++) {
    rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
    if (ts[i].zstd && !own_codec)
      rd_kafka_topic_conf_set(tc, "compression.codec", "zstd", err, sizeof err);
    ts[i].rkt = rd_kafka_topic_new(rk, ts[i].name, tc);
    if (!ts[i].rkt) die("topic handle %s: %s", ts[i].name, rd_kafka_err2str(rd_kafka_last_error()));
  }
  txn_init(rk, a); /* fences the previous instance, aborts its open transaction */
  resume_from_target(a, s, ts, n);
  for (int i = 0; i < n; i++)
    memcpy(ts[i].committed, ts[i].next, sizeof(int64_t) * (size_t)ts[i].partitions);

  /* Progress needs the writer lock; an application holding it (--follow on
  ** a live store) leaves the mirror read-only, without progress in SQL. */
  takhin_store *w = NULL;
  takhin_close(s);
  int wrc = takhin_open(a->store_path, NULL, &w);
  if (wrc && wrc != TAKHIN_ELOCKED) die("cannot open store %s: %s", a->store_path, takhin_errmsg());
  if (wrc) {
    if (takhin_open(a->store_path, &ro, &s))
      die("cannot open store %s: %s", a->store_path, takhin_errmsg());
    fprintf(stderr, "takhin-mirror: store is locked by a writer; progress is not recorded\n");
    w = NULL;
  } else {
    s = w;
  }

  commit_progress(w, group, ts, n); /* the resume point: the group exists from the start */
  int aborts = 0;
  for (;;) {
    int64_t moved = 0;
    for (int i = 0; i < n; i++)
      for (int32_t p = 0; p < ts[i].partitions; p++) moved += ship_partition(s, rk, &ts[i], p);
    /* commit when idle, when stopping, or when the transaction is big or old
    ** enough: each commit drains the pipeline, so not per chunk */
    if (txn_open &&
        (!moved || stop_requested || txn_records >= TXN_RECORDS || ms_since(&txn_t0) >= TXN_MS)) {
      if (txn_commit(rk, ts, n)) {
        aborts = 0;
        commit_progress(w, group, ts, n);
      } else if (++aborts >= 5) {
        die("5 transactions aborted in a row; stopping");
      } else {
        continue;
      }
    }
    if (stop_requested) break;
    if (!moved) {
      if (!a->follow) break;
      wait_for_records(s, ts, n);
    }
  }
  for (int i = 0; i < n; i++) rd_kafka_topic_destroy(ts[i].rkt);
  rd_kafka_destroy(rk);
  free_topics(ts, n, 1);
  if (takhin_close(s)) die("closing the store: %s", takhin_errmsg());
  return 0;
}

/* ---- --from: cluster -> takhin ----------------------------------------- */

typedef struct {
  rd_kafka_message_t **msgs;
  size_t n, cap;
} pend_t;

/* Write the pending messages of one partition as one takhin batch, each
** with its cluster offset in a header; then record progress. */
static void store_batch(takhin_store *w, const char *group, topic_t *t, int32_t p, pend_t *pd) {
  if (pd->n == 0) return;
  takhin_record *r = calloc(pd->n, sizeof *r);
  size_t nh = 0;
  for (size_t i = 0; i < pd->n; i++) {
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(pd->msgs[i], &h) == 0) nh += rd_kafka_header_cnt(h);
    nh++;
  }
  takhin_header *hs = calloc(nh, sizeof *hs);
  char(*offs)[24] = calloc(pd->n, 24);
  size_t k = 0;
  for (size_t i = 0; i < pd->n; i++) {
    rd_kafka_message_t *m = pd->msgs[i];
    rd_kafka_headers_t *h = NULL;
    r[i].headers = &hs[k];
    if (rd_kafka_message_headers(m, &h) == 0) {
      const char *name;
      const void *v;
      size_t vl;
      for (size_t j = 0; rd_kafka_header_get_all(h, j, &name, &v, &vl) == 0; j++)
        hs[k++] = (takhin_header){name, strlen(name), v, vl};
    }
    int ol = snprintf(offs[i], 24, "%" PRId64, m->offset);
    hs[k++] = (takhin_header){HDR_FROM, strlen(HDR_FROM), offs[i], (size_t)ol};
    r[i].n_headers = (size_t)(&hs[k] - r[i].headers);
    r[i].key = m->key;
    r[i].key_len = m->key_len;
    r[i].value = m->payload;
    r[i].value_len = m->payload ? m->len : 0;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    r[i].timestamp = ts >= 0 ? ts : TAKHIN_TIMESTAMP_NOW;
  }
  int64_t last = pd->msgs[pd->n - 1]->offset;
  if (takhin_produce(w, t->name, p, r, pd->n, NULL))
    die("writing %s [%d]: %s", t->name, p, takhin_errmsg());
  t->next[p] = last + 1;
  takhin_partition_info pi;
  char meta[48];
  snprintf(meta, sizeof meta, "kafka_offset=%" PRId64, last + 1);
  if (takhin_partition_info_get(w, t->name, p, &pi) == 0) {
    takhin_offset_commit oc = {t->name, p, pi.high_watermark, meta};
    if (takhin_group_commit(w, group, &oc, 1))
      fprintf(stderr, "takhin-mirror: progress commit failed: %s\n", takhin_errmsg());
  }
  for (size_t i = 0; i < pd->n; i++) rd_kafka_message_destroy(pd->msgs[i]);
  pd->n = 0;
  free(r);
  free(hs);
  free(offs);
}

/* The next cluster offset for a takhin partition: the last record's
** kafka.offset + 1, else the progress group's metadata, else earliest. */
static int64_t resume_into(takhin_store *s, const char *group, const char *topic, int32_t p) {
  takhin_partition_info pi;
  if (takhin_partition_info_get(s, topic, p, &pi)) return RD_KAFKA_OFFSET_BEGINNING;
  if (pi.high_watermark > pi.log_start_offset) {
    takhin_cursor *c;
    takhin_message m;
    if (takhin_cursor_open(s, topic, p, &c) == 0) {
      int64_t found = -1;
      /* the tail record is never compacted away (it is the latest of its key) */
      if (takhin_cursor_get(c, pi.high_watermark - 1, &m) == 0)
        for (size_t i = 0; i < m.n_headers; i++) {
          takhin_header h;
          int ok;
          if (takhin_message_header(&m, i, &h) == 0 && h.key_len == strlen(HDR_FROM) &&
              !memcmp(h.key, HDR_FROM, h.key_len)) {
            int64_t v = parse_offset_header(h.value, h.value_len, &ok);
            if (ok) found = v + 1;
          }
        }
      takhin_cursor_close(c);
      if (found >= 0) return found;
      die("takhin %s [%d] ends with a record without a %s header: it holds records not "
          "written by takhin-mirror; refusing to guess where to resume",
          topic, p, HDR_FROM);
    }
  }
  char *meta = NULL;
  int64_t off;
  long long k;
  if (takhin_group_fetch(s, group, topic, p, &off, &meta) == 0 && meta &&
      sscanf(meta, "kafka_offset=%lld", &k) == 1) {
    takhin_free(meta);
    return k;
  }
  takhin_free(meta);
  return RD_KAFKA_OFFSET_BEGINNING;
}

static int run_from(const args_t *a) {
  int n = a->ntopics;
  topic_t *ts = calloc((size_t)n, sizeof *ts);
  const char *defs[] = {"group.id", "takhin-mirror", "enable.auto.commit", "false",
                        "enable.partition.eof", "true", "isolation.level", "read_committed",
                        /* a reset never skips forward: what is below next[] is dropped */
                        "auto.offset.reset", "earliest", NULL};
  char err[512];
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, make_conf(a, defs), err, sizeof err);
  if (!c) die("consumer: %s", err);
  const rd_kafka_metadata_t *md = cluster_metadata(c, a);
  char group[300];
  cluster_name(c, a, group, sizeof group);

  /* checks first, against a read-only view, so a bad setup changes nothing */
  takhin_store *s = NULL;
  int exists = access(a->store_path, F_OK) == 0;
  takhin_options ro;
  takhin_options_init(&ro);
  ro.read_only = 1;
  if (exists && takhin_open(a->store_path, &ro, &s))
    die("cannot open store %s: %s", a->store_path, takhin_errmsg());
  for (int i = 0; i < n; i++) {
    const rd_kafka_metadata_topic_t *mt = md_topic(md, a->topics[i]);
    if (!mt || mt->err)
      die("topic %s does not exist on the cluster at %s", a->topics[i], a->bootstrap);
    ts[i].name = a->topics[i];
    ts[i].partitions = mt->partition_cnt;
    ts[i].next = calloc((size_t)mt->partition_cnt, sizeof(int64_t));
    ts[i].stop = calloc((size_t)mt->partition_cnt, sizeof(int64_t));
    int32_t have;
    if (s && takhin_topic_partitions(s, ts[i].name, &have) == 0 && have != ts[i].partitions)
      die("takhin topic %s has %d partitions, the cluster's %d; refusing", ts[i].name, have,
          ts[i].partitions);
    for (int32_t p = 0; p < ts[i].partitions; p++) {
      int64_t lo, hi;
      watermarks(c, ts[i].name, p, &lo, &hi, a->timeout_ms);
      ts[i].next[p] = s ? resume_into(s, group, ts[i].name, p) : RD_KAFKA_OFFSET_BEGINNING;
      if (ts[i].next[p] >= 0 && ts[i].next[p] < lo)
        fprintf(stderr,
                "takhin-mirror: %s [%d]: resuming at %" PRId64
                ", but the cluster starts at %" PRId64 ": records %" PRId64 "..%" PRId64
                " were deleted there before being mirrored\n",
                ts[i].name, p, ts[i].next[p], lo, ts[i].next[p], lo - 1);
      if (ts[i].next[p] < lo) ts[i].next[p] = lo; /* BEGINNING, or lost to cluster retention */
      ts[i].stop[p] = hi;
    }
  }
  rd_kafka_metadata_destroy(md);
  if (s) takhin_close(s);

  takhin_store *w;
  if (takhin_open(a->store_path, NULL, &w))
    die("cannot open store %s for writing: %s", a->store_path, takhin_errmsg());
  for (int i = 0; i < n; i++) {
    int32_t have;
    if (takhin_topic_partitions(w, ts[i].name, &have) == TAKHIN_ENOTFOUND &&
        takhin_topic_create(w, ts[i].name, ts[i].partitions, NULL))
      die("creating takhin topic %s: %s", ts[i].name, takhin_errmsg());
  }

  /* Without --follow a partition is done once it reaches the high watermark
  ** seen at start (or librdkafka reports its end: compaction may have
  ** removed the record just below it). */
  rd_kafka_topic_partition_list_t *as = rd_kafka_topic_partition_list_new(16);
  pend_t **pend = calloc((size_t)n, sizeof *pend);
  char **done = calloc((size_t)n, sizeof *done);
  int open_parts = 0;
  for (int i = 0; i < n; i++) {
    pend[i] = calloc((size_t)ts[i].partitions, sizeof(pend_t));
    done[i] = calloc((size_t)ts[i].partitions, 1);
    for (int32_t p = 0; p < ts[i].partitions; p++) {
      rd_kafka_topic_partition_list_add(as, ts[i].name, p)->offset = ts[i].next[p];
      done[i][p] = ts[i].next[p] >= ts[i].stop[p];
      open_parts += !done[i][p];
    }
  }
  rd_kafka_assign(c, as);
  rd_kafka_topic_partition_list_destroy(as);

  while (!stop_requested && (a->follow || open_parts > 0)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m) {
      for (int i = 0; i < n; i++)
        for (int32_t p = 0; p < ts[i].partitions; p++)
          store_batch(w, group, &ts[i], p, &pend[i][p]);
      continue;
    }
    int i = 0;
    if (m->rkt)
      while (i < n && strcmp(ts[i].name, rd_kafka_topic_name(m->rkt))) i++;
    if (!m->rkt || i == n || m->partition < 0 || m->partition >= ts[i].partitions) {
      if (m->err) fprintf(stderr, "takhin-mirror: consumer: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    int32_t p = m->partition;
    pend_t *pd = &pend[i][p];
    int reached;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      store_batch(w, group, &ts[i], p, pd);
      reached = 1;
    } else if (m->err) {
      fprintf(stderr, "takhin-mirror: consumer: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    } else if (m->offset < (pd->n ? pd->msgs[pd->n - 1]->offset + 1 : ts[i].next[p])) {
      /* fetched again (a reset or a retry after a fault): already held */
      rd_kafka_message_destroy(m);
      continue;
    } else {
      if (pd->n == pd->cap) {
        pd->cap = pd->cap ? pd->cap * 2 : 256;
        pd->msgs = realloc(pd->msgs, pd->cap * sizeof *pd->msgs);
      }
      int64_t off = m->offset;
      pd->msgs[pd->n++] = m;
      reached = off + 1 >= ts[i].stop[p];
      if (pd->n >= 1000 || reached) store_batch(w, group, &ts[i], p, pd);
    }
    if (reached && !done[i][p]) {
      done[i][p] = 1;
      open_parts--;
    }
  }
  for (int i = 0; i < n; i++)
    for (int32_t p = 0; p < ts[i].partitions; p++) store_batch(w, group, &ts[i], p, &pend[i][p]);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  for (int i = 0; i < n; i++) {
    for (int32_t p = 0; p < ts[i].partitions; p++) free(pend[i][p].msgs);
    free(pend[i]);
    free(done[i]);
  }
  free(pend);
  free(done);
  free_topics(ts, n, 0);
  if (takhin_close(w)) die("closing the store: %s", takhin_errmsg());
  return 0;
}

int main(int argc, char **argv) {
  static args_t a;
  parse_args(&a, argc, argv);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  return a.to ? run_to(&a) : run_from(&a);
}
