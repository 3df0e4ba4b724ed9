/*
** test_mirror.c -- takhin-mirror against librdkafka's in-process mock cluster
** (3 brokers). The mirror runs as a child process given the mock's bootstrap
** address; records are read back with a librdkafka consumer (takhin -> cluster)
** and with takhin cursors (cluster -> takhin) and compared per partition:
** order, key, value, timestamp, headers. Kill rounds SIGKILL the mirror at
** random points and check that every record arrives exactly once
** (TAKHIN_MIRROR_KILL_ROUNDS sets the rounds per direction, default 10).
** Fault runs inject broker faults through the mock API while each direction
** runs to its end, and check exactly once again.
** Bad configurations must exit non-zero with a message and leave the store's
** files byte for byte as they were.
*/
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sqlite3.h>

#include "takhin.h"

static int failures;
static char tmpdir[512], bootstrap[512];
static rd_kafka_mock_cluster_t *mc;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)
#define OK(call) CHECK((call) == 0, "%s", takhin_errmsg())

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static const char *path(const char *name) {
  static char buf[16][700];
  static int k;
  k = (k + 1) % 16;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

/* ---- running the mirror -------------------------------------------------- */

static pid_t spawn(char *const *argv, const char *errfile) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execv(MIRROR_BIN, argv);
    _exit(127);
  }
  return pid;
}

/* Run the mirror with the given arguments (NULL-terminated after argv[0]);
** returns its exit status, or -1 if it ran past the time limit (killed). */
static int run_mirror(int limit_s, char *errbuf, size_t errcap, ...) {
  char *argv[32] = {"takhin-mirror"};
  int n = 1;
  va_list ap;
  va_start(ap, errcap);
  for (char *s; (s = va_arg(ap, char *)) != NULL;) argv[n++] = s;
  va_end(ap);
  argv[n] = NULL;
  const char *ef = path("mirror.err");
  pid_t pid = spawn(argv, ef);
  double end = now_s() + limit_s;
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (now_s() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(20000);
  }
  if (errbuf) {
    FILE *f = fopen(ef, "r");
    size_t got = f ? fread(errbuf, 1, errcap - 1, f) : 0;
    errbuf[got] = 0;
    if (f) fclose(f);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- building source stores ---------------------------------------------- */

static const int64_t TS0 = 1700000000000LL;

/* "events": null keys, tombstones, empty values, headers (null values too). */
static void fill_events(takhin_store *s) {
  OK(takhin_topic_create(s, "events", 3, NULL));
  char kb[64][16], vb[64][32];
  takhin_header hb[64][3];
  for (int round = 0; round < 20; round++)
    for (int32_t p = 0; p < 3; p++) {
      takhin_record r[10];
      for (int i = 0; i < 10; i++) {
        int k = round * 10 + i;
        memset(&r[i], 0, sizeof r[i]);
        snprintf(kb[i], sizeof kb[i], "key-%d", k % 17);
        snprintf(vb[i], sizeof vb[i], "value-%d-%d", p, k);
        r[i].key = k % 5 == 0 ? NULL : kb[i];
        r[i].key_len = r[i].key ? strlen(kb[i]) : 0;
        r[i].value = k % 7 == 3 ? NULL : k % 11 == 4 ? "" : vb[i];
        r[i].value_len = r[i].value ? strlen(r[i].value) : 0;
        r[i].timestamp = TS0 + k * 1000 + p;
        int nh = k % 4;
        for (int h = 0; h < nh; h++)
          hb[i][h] = (takhin_header){h == 0   ? "trace"
                                     : h == 1 ? "empty"
                                              : "nullv",
                                     h == 0 ? 5 : 5,
                                     h == 2   ? NULL
                                     : h == 1 ? ""
                                              : vb[i],
                                     h == 0 ? strlen(vb[i]) : 0};
        r[i].headers = nh ? hb[i] : NULL;
        r[i].n_headers = (size_t)nh;
      }
      OK(takhin_produce(s, "events", p, r, 10, NULL));
    }
}

static void fill_bulk(takhin_store *s, const char *topic, int32_t parts, int per_part,
                      const char *const *cfg, int batch) {
  OK(takhin_topic_create(s, topic, parts, cfg));
  char kb[100][16], vb[100][120];
  takhin_record r[100];
  for (int32_t p = 0; p < parts; p++)
    for (int base = 0; base < per_part; base += batch) {
      int n = per_part - base < batch ? per_part - base : batch;
      for (int i = 0; i < n; i++) {
        int k = base + i;
        snprintf(kb[i], sizeof kb[i], "k%d", k % 20);
        snprintf(vb[i], sizeof vb[i], "payload %d/%d padding padding padding padding padding", p,
                 k);
        r[i] = (takhin_record){kb[i], strlen(kb[i]), vb[i], strlen(vb[i]), NULL, 0, TS0 + k};
      }
      OK(takhin_produce(s, topic, p, r, (size_t)n, NULL));
    }
}

/* ---- comparing ------------------------------------------------------------ */

static int same_bytes(const void *a, size_t al, const void *b, size_t bl) {
  if ((a == NULL) != (b == NULL)) return 0;
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* takhin record m vs cluster message k: key, value, timestamp, headers (the
** cluster's last header is takhin.offset = m's offset). */
static int same_record(const takhin_message *m, rd_kafka_message_t *k, char *why, size_t cap) {
  rd_kafka_timestamp_type_t tt;
  if (!same_bytes(m->key, m->key_len, k->key, k->key_len)) return snprintf(why, cap, "key"), 0;
  if (!same_bytes(m->value, m->value_len, k->payload, k->len))
    return snprintf(why, cap, "value"), 0;
  if (rd_kafka_message_timestamp(k, &tt) != m->timestamp) return snprintf(why, cap, "timestamp"), 0;
  rd_kafka_headers_t *h = NULL;
  rd_kafka_message_headers(k, &h);
  size_t kn = h ? rd_kafka_header_cnt(h) : 0;
  if (kn != m->n_headers + 1)
    return snprintf(why, cap, "header count %zu vs %zu", kn, m->n_headers + 1), 0;
  for (size_t i = 0; i < kn; i++) {
    const char *name;
    const void *v;
    size_t vl;
    rd_kafka_header_get_all(h, i, &name, &v, &vl);
    if (i == m->n_headers) {
      char off[24];
      snprintf(off, sizeof off, "%" PRId64, m->offset);
      if (strcmp(name, "takhin.offset") || !same_bytes(v, vl, off, strlen(off)))
        return snprintf(why, cap, "takhin.offset header"), 0;
      continue;
    }
    takhin_header th;
    takhin_message_header(m, i, &th);
    if (!same_bytes(name, strlen(name), th.key, th.key_len) ||
        !same_bytes(v, vl, th.value, th.value_len))
      return snprintf(why, cap, "header %zu", i), 0;
  }
  return 1;
}

static rd_kafka_t *new_consumer(void) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof err);
  rd_kafka_conf_set(c, "group.id", "test-reader", err, sizeof err);
  rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  if (!rk) fprintf(stderr, "consumer: %s\n", err);
  return rk;
}

/* Every message of one cluster partition, in order (*n of them). */
static rd_kafka_message_t **read_partition(rd_kafka_t *c, const char *topic, int32_t p, size_t *n) {
  int64_t lo = 0, hi = 0;
  *n = 0;
  if (rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 5000)) return NULL;
  rd_kafka_message_t **v = calloc((size_t)(hi - lo) + 1, sizeof *v);
  rd_kafka_topic_partition_list_t *as = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(as, topic, p)->offset = lo;
  rd_kafka_assign(c, as);
  rd_kafka_topic_partition_list_destroy(as);
  double end = now_s() + 20;
  while ((int64_t)*n < hi - lo && now_s() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m) continue;
    if (m->err) {
      rd_kafka_message_destroy(m);
      continue;
    }
    v[(*n)++] = m;
  }
  rd_kafka_assign(c, NULL);
  return v;
}

static void free_msgs(rd_kafka_message_t **v, size_t n) {
  for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(v[i]);
  free(v);
}

/* The cluster copy of a takhin topic matches record for record. */
static void verify_to(takhin_store *s, const char *topic) {
  rd_kafka_t *c = new_consumer();
  int32_t parts = 0;
  OK(takhin_topic_partitions(s, topic, &parts));
  size_t total = 0;
  for (int32_t p = 0; p < parts; p++) {
    size_t n;
    rd_kafka_message_t **v = read_partition(c, topic, p, &n);
    takhin_cursor *cur;
    takhin_message m;
    OK(takhin_cursor_open(s, topic, p, &cur));
    size_t i = 0;
    int bad = 0;
    while (takhin_cursor_next(cur, &m) == TAKHIN_OK) {
      char why[128] = "";
      if (i >= n) {
        CHECK(0, "%s [%d]: cluster has only %zu records, takhin more", topic, p, n);
        bad = 1;
        break;
      }
      if (!same_record(&m, v[i], why, sizeof why)) {
        CHECK(0, "%s [%d] takhin offset %" PRId64 " vs cluster %" PRId64 ": %s differs", topic, p,
              m.offset, v[i]->offset, why);
        bad = 1;
        break;
      }
      i++;
    }
    if (!bad) CHECK(i == n, "%s [%d]: takhin %zu records, cluster %zu", topic, p, i, n);
    total += n;
    takhin_cursor_close(cur);
    free_msgs(v, n);
  }
  printf("  %s: %zu records compared over %d partitions\n", topic, total, parts);
  rd_kafka_destroy(c);
}

/* The takhin copy (dst) of a cluster topic matches the original takhin
** source (src) record for record, with kafka.offset = the cluster offset
** (dense from 0 here: the mirror wrote every cluster partition from 0). */
static void verify_roundtrip(takhin_store *src, takhin_store *dst, const char *topic) {
  int32_t parts = 0, dparts = 0;
  OK(takhin_topic_partitions(src, topic, &parts));
  OK(takhin_topic_partitions(dst, topic, &dparts));
  CHECK(parts == dparts, "%s: %d vs %d partitions", topic, parts, dparts);
  size_t total = 0;
  for (int32_t p = 0; p < parts && p < dparts; p++) {
    takhin_cursor *a, *b;
    takhin_message ma, mb;
    OK(takhin_cursor_open(src, topic, p, &a));
    OK(takhin_cursor_open(dst, topic, p, &b));
    int64_t k = 0;
    for (;; k++) {
      int ra = takhin_cursor_next(a, &ma), rb = takhin_cursor_next(b, &mb);
      if (ra != TAKHIN_OK || rb != TAKHIN_OK) {
        CHECK(ra == rb, "%s [%d]: lengths differ at record %" PRId64, topic, p, k);
        break;
      }
      int same = same_bytes(ma.key, ma.key_len, mb.key, mb.key_len) &&
                 same_bytes(ma.value, ma.value_len, mb.value, mb.value_len) &&
                 ma.timestamp == mb.timestamp && mb.n_headers == ma.n_headers + 2;
      /* dst headers: src's, then takhin.offset = src offset, kafka.offset = k */
      for (size_t i = 0; same && i < mb.n_headers; i++) {
        takhin_header hb, ha;
        takhin_message_header(&mb, i, &hb);
        char want[24];
        if (i < ma.n_headers) {
          takhin_message_header(&ma, i, &ha);
          same = same_bytes(ha.key, ha.key_len, hb.key, hb.key_len) &&
                 same_bytes(ha.value, ha.value_len, hb.value, hb.value_len);
        } else {
          snprintf(want, sizeof want, "%" PRId64, i == ma.n_headers ? ma.offset : k);
          const char *nm = i == ma.n_headers ? "takhin.offset" : "kafka.offset";
          same = same_bytes(nm, strlen(nm), hb.key, hb.key_len) &&
                 same_bytes(want, strlen(want), hb.value, hb.value_len);
        }
      }
      if (!same) {
        CHECK(0, "%s [%d]: record %" PRId64 " (src offset %" PRId64 ") differs", topic, p, k,
              ma.offset);
        break;
      }
    }
    total += (size_t)k;
    takhin_cursor_close(a);
    takhin_cursor_close(b);
  }
  printf("  %s: %zu records compared takhin -> cluster -> takhin\n", topic, total);
}

static void hexout(FILE *f, const void *p, size_t n, int null) {
  if (null) {
    fputc('-', f);
    return;
  }
  if (n == 0) fputc('=', f);
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", ((const unsigned char *)p)[i]);
}

/* A second client reads the cluster copy: python3-kafka (readback.py) must
** see what librdkafka sees, record for record, headers included. */
static void verify_python(const char *topic, int32_t parts) {
  if (system("/usr/bin/python3 -c 'import kafka' 2>/dev/null") != 0) {
    printf("  %s: python3-kafka missing, python readback skipped (scripts/deps.sh test)\n", topic);
    return;
  }
  char *want = NULL, *got = NULL;
  size_t wl = 0, gl = 0;
  FILE *w = open_memstream(&want, &wl);
  rd_kafka_t *c = new_consumer();
  size_t total = 0;
  for (int32_t p = 0; p < parts; p++) {
    size_t n;
    rd_kafka_message_t **v = read_partition(c, topic, p, &n);
    for (size_t i = 0; i < n; i++) {
      rd_kafka_timestamp_type_t tt;
      fprintf(w, "%d %" PRId64 " ", p, v[i]->offset);
      hexout(w, v[i]->key, v[i]->key_len, v[i]->key == NULL);
      fputc(' ', w);
      hexout(w, v[i]->payload, v[i]->len, v[i]->payload == NULL);
      fprintf(w, " %" PRId64 " ", rd_kafka_message_timestamp(v[i], &tt));
      rd_kafka_headers_t *h = NULL;
      size_t hn = rd_kafka_message_headers(v[i], &h) == 0 ? rd_kafka_header_cnt(h) : 0;
      if (hn == 0) fputc('=', w);
      for (size_t j = 0; j < hn; j++) {
        const char *name;
        const void *val;
        size_t vl;
        rd_kafka_header_get_all(h, j, &name, &val, &vl);
        if (j) fputc(',', w);
        hexout(w, name, strlen(name), 0);
        fputc(':', w);
        hexout(w, val, vl, val == NULL);
      }
      fputc('\n', w);
    }
    total += n;
    free_msgs(v, n);
  }
  rd_kafka_destroy(c);
  fclose(w);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 %s/readback.py '%s' %s %d", MIRROR_SRC_DIR,
           bootstrap, topic, parts);
  FILE *pp = popen(cmd, "r");
  FILE *g = open_memstream(&got, &gl);
  char buf[4096];
  size_t k;
  while (pp && (k = fread(buf, 1, sizeof buf, pp)) > 0) fwrite(buf, 1, k, g);
  int st = pp ? pclose(pp) : -1;
  fclose(g);
  CHECK(st == 0, "%s: readback.py exited %d", topic, st);
  if (strcmp(want, got)) {
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    while (i > 0 && want[i - 1] != '\n') i--;
    CHECK(
        0,
        "%s: python3-kafka reads differently from librdkafka; first difference:\n  librdkafka %.200s\n  python     %.200s",
        topic, want + i, got + i);
  } else {
    printf("  %s: %zu records read identically by python3-kafka and librdkafka\n", topic, total);
  }
  free(want);
  free(got);
}

/* Exactly once on the cluster: partition p holds takhin offsets 0..n-1 in order. */
static void verify_exactly_once_cluster(const char *topic, int32_t parts, int per_part) {
  rd_kafka_t *c = new_consumer();
  for (int32_t p = 0; p < parts; p++) {
    size_t n;
    rd_kafka_message_t **v = read_partition(c, topic, p, &n);
    CHECK(n == (size_t)per_part, "%s [%d]: %zu records on the cluster, want %d", topic, p, n,
          per_part);
    for (size_t i = 0; i < n; i++) {
      rd_kafka_headers_t *h = NULL;
      const void *val = NULL;
      size_t vl = 0;
      char want[24];
      snprintf(want, sizeof want, "%zu", i);
      if (rd_kafka_message_headers(v[i], &h) ||
          rd_kafka_header_get_last(h, "takhin.offset", &val, &vl) ||
          !same_bytes(val, vl, want, strlen(want))) {
        CHECK(0, "%s [%d]: cluster record %zu is not takhin offset %zu (duplicate or gap)", topic,
              p, i, i);
        break;
      }
    }
    free_msgs(v, n);
  }
  rd_kafka_destroy(c);
}

/* Exactly once into takhin: partition p holds cluster offsets 0..n-1 in order. */
static void verify_exactly_once_store(takhin_store *s, const char *topic, int32_t parts,
                                      int per_part) {
  for (int32_t p = 0; p < parts; p++) {
    takhin_cursor *c;
    takhin_message m;
    OK(takhin_cursor_open(s, topic, p, &c));
    int64_t i = 0;
    while (takhin_cursor_next(c, &m) == TAKHIN_OK) {
      takhin_header h;
      char want[24];
      snprintf(want, sizeof want, "%" PRId64, i);
      if (m.n_headers == 0 || takhin_message_header(&m, m.n_headers - 1, &h) ||
          !same_bytes(h.value, h.value_len, want, strlen(want))) {
        CHECK(0, "%s [%d]: takhin record %" PRId64 " is not cluster offset %" PRId64, topic, p,
              m.offset, i);
        break;
      }
      i++;
    }
    CHECK(i == per_part, "%s [%d]: %" PRId64 " records in takhin, want %d", topic, p, i, per_part);
    takhin_cursor_close(c);
  }
}

/* ---- store snapshots (bad configuration must change nothing) -------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

static uint64_t hash_file(uint64_t h, const char *f) {
  FILE *fp = fopen(f, "rb");
  if (!fp) return fnv(h, "missing", 7);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, fp)) > 0) h = fnv(h, buf, n);
  fclose(fp);
  return fnv(h, f, strlen(f));
}

static uint64_t hash_tree(uint64_t h, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return h;
  struct dirent **list;
  closedir(d);
  int n = scandir(dir, &list, NULL, alphasort);
  for (int i = 0; i < n; i++) {
    char p[1024];
    if (list[i]->d_name[0] != '.') {
      snprintf(p, sizeof p, "%s/%s", dir, list[i]->d_name);
      struct stat st;
      if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) h = hash_tree(h, p);
      else if (strcmp(list[i]->d_name, "LOCK")) h = hash_file(h, p);
    }
    free(list[i]);
  }
  free(list);
  return h;
}

static uint64_t snapshot(const char *db) {
  char dir[700];
  snprintf(dir, sizeof dir, "%s-takhin", db);
  return hash_tree(hash_file(1469598103934665603ULL, db), dir);
}

/* Rows of one SQL statement on a store, "a|b|c\n" each as the sqlite3 shell
** prints them, with the takhin extension loaded into this process's SQLite
** (so it also works under the sanitizers). malloc'd; "" on failure. */
static char *sql(const char *db, const char *stmt) {
  char *out = NULL;
  size_t ol = 0;
  FILE *o = open_memstream(&out, &ol);
  sqlite3 *h = NULL;
  char *err = NULL;
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_open(db, &h) == SQLITE_OK && sqlite3_enable_load_extension(h, 1) == SQLITE_OK &&
           sqlite3_load_extension(h, TAKHIN_BUILD_DIR "/takhin", NULL, &err) == SQLITE_OK &&
           sqlite3_prepare_v2(h, stmt, -1, &st, NULL) == SQLITE_OK;
  int rc = SQLITE_ERROR;
  while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const unsigned char *t = sqlite3_column_text(st, i);
      fprintf(o, "%s%s", i ? "|" : "", t ? (const char *)t : "");
    }
    fputc('\n', o);
  }
  CHECK(ok && rc == SQLITE_DONE, "SQL on %s failed: %s: %s", db, err ? err : sqlite3_errmsg(h),
        stmt);
  sqlite3_free(err);
  sqlite3_finalize(st);
  sqlite3_close(h);
  fclose(o);
  return out;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* ---- the tests ------------------------------------------------------------ */

static void test_fidelity(void) {
  printf("fidelity: null keys, tombstones, headers, zstd, compacted with gaps\n");
  takhin_store *s;
  OK(takhin_open(path("src.db"), NULL, &s));
  fill_events(s);
  fill_bulk(s, "zipped", 2, 1500, (const char *const[]){"compression", "zstd", NULL}, 50);
  fill_bulk(s, "compacted", 2, 2000,
            (const char *const[]){"cleanup_policy", "compact", "segment_bytes", "8192", NULL}, 20);
  takhin_compaction_result cr;
  OK(takhin_compact(s, "compacted", -1, 1, &cr));
  CHECK(cr.records_removed > 1000, "compaction removed only %" PRId64, cr.records_removed);
  OK(takhin_close(s));

  /* librdkafka 2.0's mock cluster has no CreateTopics: the topics are made
  ** through the mock API (test_bad_config checks the refused creation) */
  CHECK(rd_kafka_mock_topic_create(mc, "events", 3, 3) == 0, "mock topic");
  CHECK(rd_kafka_mock_topic_create(mc, "zipped", 2, 3) == 0, "mock topic");
  CHECK(rd_kafka_mock_topic_create(mc, "compacted", 2, 3) == 0, "mock topic");
  char err[4096];
  int rc =
      run_mirror(60, err, sizeof err, path("src.db"), "--to", bootstrap, "--name", "test", NULL);
  CHECK(rc == 0, "mirror --to exited %d: %s", rc, err);

  OK(takhin_open(path("src.db"), NULL, &s));
  verify_to(s, "events");
  verify_to(s, "zipped");
  verify_to(s, "compacted");
  verify_python("events", 3);
  verify_python("zipped", 2);
  verify_python("compacted", 2);

  /* progress in SQL: group mirror:test is at each partition's high watermark */
  takhin_group_offset *g;
  size_t n;
  OK(takhin_group_list(s, "mirror:test", &g, &n));
  CHECK(n == 3 + 2 + 2, "mirror:test has %zu partitions committed", n);
  for (size_t i = 0; i < n; i++)
    CHECK(g[i].lag == 0, "%s [%d] lag %" PRId64, g[i].topic, g[i].partition, g[i].lag);
  takhin_free(g);

  /* a second run finds nothing new to ship: no duplicates */
  rc = run_mirror(60, err, sizeof err, path("src.db"), "--to", bootstrap, "--name", "test", NULL);
  CHECK(rc == 0, "second mirror --to exited %d: %s", rc, err);
  verify_to(s, "events");

  /* and back: cluster -> a second store */
  rc = run_mirror(60, err, sizeof err, path("back.db"), "--from", bootstrap, "--name", "test",
                  "--topics", "events,zipped,compacted", NULL);
  CHECK(rc == 0, "mirror --from exited %d: %s", rc, err);
  takhin_store *d;
  OK(takhin_open(path("back.db"), NULL, &d));
  verify_roundtrip(s, d, "events");
  verify_roundtrip(s, d, "zipped");
  verify_roundtrip(s, d, "compacted");
  OK(takhin_close(d));
  OK(takhin_close(s));

  /* the same records through SQL on both stores (offsets differ: gaps) */
  const char *q =
      "SELECT topic, partition, typeof(key), hex(key), typeof(value), hex(value), timestamp "
      "FROM takhin_messages WHERE topic IN ('events', 'zipped', 'compacted') "
      "ORDER BY topic, partition, offset;";
  char *a = sql(path("src.db"), q), *b = sql(path("back.db"), q);
  CHECK(count_lines(a) == 600 + 3000 + 160, "SQL on src.db gave %zu rows", count_lines(a));
  CHECK(strcmp(a, b) == 0, "SQL reads src.db and back.db differently");
  printf("  SQL: %zu rows equal on the source store and the round-tripped store\n", count_lines(a));
  free(a);
  free(b);
  char *lag =
      sql(path("src.db"),
          "SELECT count(*), sum(lag) FROM takhin_group_offsets WHERE group_id = 'mirror:test';");
  CHECK(strcmp(lag, "7|0\n") == 0, "progress of mirror:test in SQL: %s", lag);
  free(lag);
}

/* Records on the cluster's topic (sum of high watermarks). */
static int64_t cluster_count(const char *topic, int32_t parts) {
  rd_kafka_t *c = new_consumer();
  int64_t sum = 0;
  for (int32_t p = 0; p < parts; p++) {
    int64_t lo, hi;
    if (rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 5000) == 0) sum += hi - lo;
  }
  rd_kafka_destroy(c);
  return sum;
}

/* Records in a takhin topic, read-only (-1 when there is no store yet). */
static int64_t store_count(const char *db, const char *topic, int32_t parts) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s;
  if (access(db, F_OK) || takhin_open(db, &o, &s)) return -1;
  int64_t sum = 0;
  for (int32_t p = 0; p < parts; p++) {
    takhin_partition_info pi;
    if (takhin_partition_info_get(s, topic, p, &pi) == 0) sum += pi.high_watermark;
  }
  takhin_close(s);
  return sum;
}

static rd_kafka_t *prog_consumer; /* one handle for the frequent polls */
static int64_t prog_cluster(const char *db, int32_t parts) {
  (void)db;
  int64_t sum = 0;
  for (int32_t p = 0; p < parts; p++) {
    int64_t lo, hi;
    if (rd_kafka_query_watermark_offsets(prog_consumer, "bulk", p, &lo, &hi, 5000) == 0)
      sum += hi - lo;
  }
  return sum;
}
static int64_t prog_store(const char *db, int32_t parts) { return store_count(db, "bulk", parts); }

/* SIGKILL the mirror once the records delivered so far pass a random target
** within its share of what is left (plus a random few ms), so kills land
** at random points of the stream
** rather than mostly during start-up; give up waiting after 20 s. */
static void kill_at_progress(pid_t pid, int64_t (*progress)(const char *, int32_t), const char *db,
                             int32_t parts, int64_t total, int rounds_left) {
  /* spread the rounds over what is left of the stream */
  int64_t base = progress(db, parts), slice = (total - base) / (rounds_left + 1);
  int64_t target = base + 1 + rand() % (slice > 0 ? slice : 1);
  double end = now_s() + 20;
  while (now_s() < end && waitpid(pid, NULL, WNOHANG) == 0 && progress(db, parts) < target)
    usleep(2000);
  usleep((useconds_t)(rand() % 20000));
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void test_kill(int rounds) {
  printf("kill -9: %d rounds each way\n", rounds);
  const int parts = 4, per = 15000;
  takhin_store *s;
  OK(takhin_open(path("bulk.db"), NULL, &s));
  fill_bulk(s, "bulk", parts, per, NULL, 100);
  OK(takhin_close(s));
  CHECK(rd_kafka_mock_topic_create(mc, "bulk", parts, 3) == 0, "mock topic");
  /* slow brokers stretch a run over the kill window, so kills land mid-way */
  for (int32_t b = 1; b <= 3; b++) rd_kafka_mock_broker_set_rtt(mc, b, 25);

  char err[4096];
  int partial = 0; /* rounds killed mid-way: the test must exercise resumption */
  prog_consumer = new_consumer();
  for (int r = 0; r < rounds; r++) {
    /* small batches, one request in flight: a run lasts seconds (and -X is exercised) */
    char *argv[] = {"takhin-mirror",
                    (char *)path("bulk.db"),
                    "--to",
                    bootstrap,
                    "--name",
                    "k",
                    "-X",
                    "batch.num.messages=200",
                    "-X",
                    "max.in.flight.requests.per.connection=1",
                    NULL};
    pid_t pid = spawn(argv, path("kill.err"));
    kill_at_progress(pid, prog_cluster, NULL, parts, (int64_t)parts * per, rounds - r);
    int64_t c = cluster_count("bulk", parts);
    printf("  --to round %d: %" PRId64 " of %d records on the cluster\n", r, c, parts * per);
    partial += c > 0 && c < parts * per;
  }
  rd_kafka_destroy(prog_consumer);
  /* the last kill left the mirror behind: its lag shows in SQL */
  char *lag = sql(path("bulk.db"),
                  "SELECT sum(lag) FROM takhin_group_offsets WHERE group_id = 'mirror:k';");
  printf("  after the kills, SQL shows mirror:k lagging by %s", lag);
  /* the group trails the cluster (committed every 0.5 s), never leads it */
  int64_t behind = (int64_t)parts * per - cluster_count("bulk", parts);
  CHECK(rounds == 0 || behind == 0 || atoll(lag) >= behind,
        "SQL lag %s below the %" PRId64 " unshipped", lag, behind);
  free(lag);
  int rc = run_mirror(90, err, sizeof err, path("bulk.db"), "--to", bootstrap, "--name", "k", NULL);
  CHECK(rc == 0, "final mirror --to exited %d: %s", rc, err);
  verify_exactly_once_cluster("bulk", parts, per);
  lag = sql(path("bulk.db"),
            "SELECT count(*), sum(lag) FROM takhin_group_offsets WHERE group_id = 'mirror:k';");
  CHECK(strcmp(lag, "4|0\n") == 0, "after the final run, mirror:k in SQL: %s", lag);
  free(lag);

  for (int r = 0; r < rounds; r++) {
    char *argv[] = {"takhin-mirror",
                    (char *)path("bulkback.db"),
                    "--from",
                    bootstrap,
                    "--name",
                    "k",
                    "--topics",
                    "bulk",
                    NULL};
    pid_t pid = spawn(argv, path("kill.err"));
    kill_at_progress(pid, prog_store, path("bulkback.db"), parts, (int64_t)parts * per, rounds - r);
    int64_t c = store_count(path("bulkback.db"), "bulk", parts);
    printf("  --from round %d: %" PRId64 " of %d records in the store\n", r, c, parts * per);
    partial += c > 0 && c < parts * per;
  }
  rc = run_mirror(90, err, sizeof err, path("bulkback.db"), "--from", bootstrap, "--name", "k",
                  "--topics", "bulk", NULL);
  CHECK(rc == 0, "final mirror --from exited %d: %s", rc, err);
  for (int32_t b = 1; b <= 3; b++) rd_kafka_mock_broker_set_rtt(mc, b, 0);
  OK(takhin_open(path("bulkback.db"), NULL, &s));
  verify_exactly_once_store(s, "bulk", parts, per);
  OK(takhin_close(s));
  CHECK(rounds == 0 || partial > 0, "no kill round stopped the mirror mid-way");
}

/* One fault of a scripted sequence, through the mock API: retriable errors on
** the requests the direction uses (api: 0 Produce, 1 Fetch), a disconnect,
** leader changes, a broker down and back up, transaction coordinator errors. */
static void inject_fault(int step, int16_t api, const char *topic, int32_t parts) {
  switch (step % 6) {
  case 0:
    rd_kafka_mock_push_request_errors(
        mc, api, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
    break;
  case 1:
    for (int32_t p = 0; p < parts; p++)
      rd_kafka_mock_partition_set_leader(mc, topic, p, 1 + (p + step) % 3);
    break;
  case 2: rd_kafka_mock_broker_set_down(mc, 1 + step % 3); break;
  case 3: rd_kafka_mock_broker_set_up(mc, 1 + (step - 1) % 3); break;
  case 4: /* AddPartitionsToTxn (24) and EndTxn (26): the coordinator is busy */
    rd_kafka_mock_push_request_errors(mc, 24, 2, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    rd_kafka_mock_push_request_errors(mc, 26, 2, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    break;
  case 5:
    rd_kafka_mock_push_request_errors(mc, api, 2, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR__TRANSPORT);
    break;
  }
}

/* Run the mirror (argv) to its end while faults land every 300 ms; returns
** its exit status (-1: still running after 120 s, killed) and the number of
** faults injected while it ran. */
static int run_with_faults(char *const *argv, int16_t api, const char *topic, int32_t parts,
                           int *faults) {
  double t0 = now_s();
  pid_t pid = spawn(argv, path(api == 0 ? "faults-to.err" : "faults-from.err"));
  double end = now_s() + 120;
  int st = 0, step = 0;
  *faults = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (now_s() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      st = -1;
      break;
    }
    if (step < 24) inject_fault(step++, api, topic, parts), ++*faults;
    usleep(300000);
  }
  printf("  %s ran %.1f s\n", argv[2], now_s() - t0);
  rd_kafka_mock_broker_set_up(mc, -1); /* whatever the script left down */
  rd_kafka_mock_clear_request_errors(mc, api);
  rd_kafka_mock_clear_request_errors(mc, 24);
  rd_kafka_mock_clear_request_errors(mc, 26);
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Broker faults during a mirror, each way: the mirror retries through them
** and every record arrives exactly once, in order. EndTxn errors pushed on
** every broker show that --to commits through the transaction coordinator. */
static void test_faults(void) {
  printf("broker faults during a mirror\n");
  const int32_t parts = 3;
  const int per = 12000;
  takhin_store *s;
  OK(takhin_open(path("faulty.db"), NULL, &s));
  fill_bulk(s, "faulty", parts, per, NULL, 100);
  OK(takhin_close(s));
  CHECK(rd_kafka_mock_topic_create(mc, "faulty", parts, 3) == 0, "mock topic");
  for (int32_t b = 1; b <= 3; b++) {
    rd_kafka_mock_broker_set_rtt(mc, b, 15);
    CHECK(rd_kafka_mock_broker_push_request_error_rtts(
              mc, b, 26, 1, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, 0) == 0,
          "push EndTxn error");
  }
  char *to[] = {"takhin-mirror", (char *)path("faulty.db"), "--to", bootstrap, "--name", "faults",
                "-X", "batch.num.messages=200", "-X", "max.in.flight.requests.per.connection=1",
                /* No record may time out while faults land (slowly, under ASan): a
                ** timeout aborts the transaction, and the mock cluster, which writes
                ** no abort markers, would show the aborted records beside their resend. */
                "-X", "message.timeout.ms=600000", "-X", "transaction.timeout.ms=600000", NULL};
  int faults;
  int rc = run_with_faults(to, 0, "faulty", parts, &faults);
  CHECK(rc == 0, "mirror --to under faults exited %d", rc);
  CHECK(faults >= 4, "only %d faults landed while --to ran", faults);
  size_t left = 0;
  for (int32_t b = 1; b <= 3; b++) {
    size_t cnt = 0;
    rd_kafka_mock_broker_error_stack_cnt(mc, b, 26, &cnt);
    left += cnt;
  }
  CHECK(left < 3, "no EndTxn reached a broker: --to did not commit transactions");
  verify_exactly_once_cluster("faulty", parts, per);
  printf("  --to: %d faults while it ran, every record once\n", faults);

  char *from[] = {"takhin-mirror",
                  (char *)path("faultyback.db"),
                  "--from",
                  bootstrap,
                  "--name",
                  "faults",
                  "--topics",
                  "faulty",
                  "-X",
                  "max.partition.fetch.bytes=8000",
                  NULL};
  rc = run_with_faults(from, 1, "faulty", parts, &faults);
  CHECK(rc == 0, "mirror --from under faults exited %d", rc);
  CHECK(faults >= 4, "only %d faults landed while --from ran", faults);
  for (int32_t b = 1; b <= 3; b++) rd_kafka_mock_broker_set_rtt(mc, b, 0);
  OK(takhin_open(path("faultyback.db"), NULL, &s));
  verify_exactly_once_store(s, "faulty", parts, per);
  OK(takhin_close(s));
  printf("  --from: %d faults while it ran, every record once\n", faults);
}

/* --follow against a store an application keeps writing (so the mirror runs
** read-only), while the mock cluster misbehaves: produce errors, a leader
** change, a broker down and up. Everything arrives once, in order. */
static void test_follow_faults(void) {
  printf("--follow with broker faults\n");
  takhin_store *s;
  OK(takhin_open(path("follow.db"), NULL, &s)); /* held open: the mirror cannot take the lock */
  const int32_t parts = 2;
  OK(takhin_topic_create(s, "live", parts, NULL));
  CHECK(rd_kafka_mock_topic_create(mc, "live", parts, 3) == 0, "mock topic");
  char kb[16], vb[64];
  int produced = 0;
  for (; produced < 100; produced++) {
    snprintf(kb, sizeof kb, "u%d", produced % 13);
    snprintf(vb, sizeof vb, "early %d", produced);
    takhin_record r = {kb, strlen(kb), vb, strlen(vb), NULL, 0, TS0 + produced};
    OK(takhin_produce(s, "live", produced % parts, &r, 1, NULL));
  }
  char *argv[] = {"takhin-mirror",
                  (char *)path("follow.db"),
                  "--to",
                  bootstrap,
                  "--follow",
                  "--name",
                  "f",
                  NULL};
  pid_t pid = spawn(argv, path("follow.err"));
  for (int step = 0; step < 40; step++) {
    switch (step) {
    case 5: /* retriable produce errors (ApiKey 0 = Produce) */
      rd_kafka_mock_push_request_errors(mc, 0, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
      break;
    case 12: rd_kafka_mock_partition_set_leader(mc, "live", 0, 2); break;
    case 13: rd_kafka_mock_partition_set_leader(mc, "live", 1, 3); break;
    case 20: rd_kafka_mock_broker_set_down(mc, 2); break;
    case 28: rd_kafka_mock_broker_set_up(mc, 2); break;
    case 32: rd_kafka_mock_partition_set_leader(mc, "live", 0, 1); break;
    }
    takhin_record r[10];
    char kbs[10][16], vbs[10][64];
    for (int i = 0; i < 10; i++, produced++) {
      snprintf(kbs[i], sizeof kbs[i], "u%d", produced % 13);
      snprintf(vbs[i], sizeof vbs[i], "live %d", produced);
      r[i] =
          (takhin_record){kbs[i], strlen(kbs[i]), vbs[i], strlen(vbs[i]), NULL, 0, TS0 + produced};
    }
    OK(takhin_produce(s, "live", step % parts, r, 10, NULL));
    usleep(100000);
  }
  double end = now_s() + 60;
  while (now_s() < end && cluster_count("live", parts) < produced) usleep(200000);
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mirror --follow ended with status %d", st);
  verify_to(s, "live");
  OK(takhin_close(s));

  /* --from --follow: records produced to the cluster later arrive too */
  char *fargv[] = {"takhin-mirror",
                   (char *)path("followback.db"),
                   "--from",
                   bootstrap,
                   "--follow",
                   "--name",
                   "f",
                   "--topics",
                   "live",
                   NULL};
  pid = spawn(fargv, path("followback.err"));
  end = now_s() + 30;
  while (now_s() < end && store_count(path("followback.db"), "live", parts) < produced)
    usleep(100000);
  char perr[512];
  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  rd_kafka_conf_set(pc, "bootstrap.servers", bootstrap, perr, sizeof perr);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, perr, sizeof perr);
  for (int i = 0; i < 50; i++)
    CHECK(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("live"), RD_KAFKA_V_PARTITION(i % parts),
                            RD_KAFKA_V_VALUE("later", 5), RD_KAFKA_V_END) == 0,
          "produce");
  CHECK(rd_kafka_flush(p, 10000) == 0, "flush");
  rd_kafka_destroy(p);
  end = now_s() + 30;
  while (now_s() < end && store_count(path("followback.db"), "live", parts) < produced + 50)
    usleep(100000);
  kill(pid, SIGTERM);
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mirror --from --follow ended with status %d", st);
  OK(takhin_open(path("followback.db"), NULL, &s));
  verify_exactly_once_store(s, "live", parts, (produced + 50) / parts);
  OK(takhin_close(s));
  printf("  --from --follow: %d records, 50 of them produced while it ran\n", produced + 50);
}

static void expect_refusal(const char *what, const char *db, const char *needle, char *a1, char *a2,
                           char *a3, char *a4, char *a5, char *a6) {
  uint64_t before = snapshot(db);
  char err[4096];
  double t0 = now_s();
  int rc = run_mirror(30, err, sizeof err, db, a1, a2, a3, a4, a5, a6, NULL);
  CHECK(rc > 0, "%s: exit status %d, want non-zero", what, rc);
  CHECK(strstr(err, needle) != NULL, "%s: message lacks \"%s\": %s", what, needle, err);
  CHECK(snapshot(db) == before, "%s: the store changed", what);
  printf("  %s: exit %d in %.1f s: %s", what, rc, now_s() - t0, err);
}

static void test_bad_config(void) {
  printf("bad configuration\n");
  takhin_store *s;
  OK(takhin_open(path("bad.db"), NULL, &s));
  fill_bulk(s, "mismatch", 3, 10, NULL, 10);
  fill_bulk(s, "fine", 1, 10, NULL, 10);
  OK(takhin_close(s));
  const char *db = path("bad.db");
  expect_refusal("unreachable bootstrap", db, "cannot reach", "--to", "127.0.0.1:1", "--timeout-ms",
                 "1500", NULL, NULL);
  CHECK(rd_kafka_mock_topic_create(mc, "mismatch", 5, 1) == 0, "mock topic");
  expect_refusal("partition count mismatch", db, "partitions", "--to", bootstrap, "--topics",
                 "mismatch", NULL, NULL);
  expect_refusal("missing target topic, creation refused", db, "cannot create", "--to", bootstrap,
                 "--topics", "fine", "--timeout-ms", "1500");
  expect_refusal("--from a missing topic", db, "does not exist", "--from", bootstrap, "--topics",
                 "nosuchtopic", NULL, NULL);
  expect_refusal("--from unreachable", db, "cannot reach", "--from", "127.0.0.1:1", "--topics",
                 "fine", "--timeout-ms", "1500");
  /* a target partition whose tail was not written by the mirror: no resume point */
  CHECK(rd_kafka_mock_topic_create(mc, "fine", 1, 3) == 0, "mock topic");
  char perr[512];
  rd_kafka_conf_t *pc = rd_kafka_conf_new();
  rd_kafka_conf_set(pc, "bootstrap.servers", bootstrap, perr, sizeof perr);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, perr, sizeof perr);
  CHECK(p && rd_kafka_producev(p, RD_KAFKA_V_TOPIC("fine"), RD_KAFKA_V_PARTITION(0),
                               RD_KAFKA_V_VALUE("alien", 5), RD_KAFKA_V_END) == 0,
        "produce");
  CHECK(rd_kafka_flush(p, 10000) == 0, "flush");
  rd_kafka_destroy(p);
  expect_refusal("target holds foreign records", db, "not written by takhin-mirror", "--to",
                 bootstrap, "--topics", "fine", NULL, NULL);
  /* usage errors exit 2 */
  uint64_t before = snapshot(db);
  char err[4096];
  int rc = run_mirror(10, err, sizeof err, db, "--topics", "fine", NULL);
  CHECK(rc == 2 && strstr(err, "usage:"), "no direction: exit %d: %s", rc, err);
  rc = run_mirror(10, err, sizeof err, db, "--from", bootstrap, NULL);
  CHECK(rc == 2 && strstr(err, "--from needs --topics"), "--from without topics: exit %d: %s", rc,
        err);
  CHECK(snapshot(db) == before, "usage errors changed the store");
  expect_refusal("bad -X property", db, "no.such.property", "--to", bootstrap, "-X",
                 "no.such.property=1", NULL, NULL);
}

int main(void) {
  const char *base = getenv("TAKHIN_TEST_TMP") ? getenv("TAKHIN_TEST_TMP") : "/tmp";
  mkdir(base, 0755);
  snprintf(tmpdir, sizeof tmpdir, "%s/mirror-%d", base, (int)getpid());
  mkdir(tmpdir, 0755);
  unsigned seed = getenv("TAKHIN_MIRROR_SEED") ? (unsigned)atoi(getenv("TAKHIN_MIRROR_SEED"))
                                               : (unsigned)time(NULL);
  srand(seed);
  printf("tmp %s, seed %u\n", tmpdir, seed);

  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!host) return fprintf(stderr, "rd_kafka_new: %s\n", err), 1;
  mc = rd_kafka_mock_cluster_new(host, 3);
  if (!mc) return fprintf(stderr, "mock cluster failed\n"), 1;
  snprintf(bootstrap, sizeof bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(mc));
  printf("mock cluster of 3 brokers at %s\n", bootstrap);

  int rounds = getenv("TAKHIN_MIRROR_KILL_ROUNDS") ? atoi(getenv("TAKHIN_MIRROR_KILL_ROUNDS")) : 10;
  test_fidelity();
  test_kill(rounds);
  test_faults();
  test_follow_faults();
  test_bad_config();

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
  if (failures) {
    fprintf(stderr, "%d check(s) failed (seed %u)\n", failures, seed);
    return 1;
  }
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir); /* kept when a check failed */
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  printf("all mirror checks passed\n");
  return 0;
}
