/*
** test_topics.c -- the topic manager: Kafka's partitioner (murmur2 vectors,
** balance over 100,000 keys), produce by key split into one batch per
** partition, topic create/list/describe/alter/add partitions/delete, reopen,
** consumer group offsets, store-wide retention and its background thread,
** the file-descriptor budget under a low RLIMIT_NOFILE, and concurrent
** produce/create/delete (this file also runs under TSan).
*/
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "testutil.h"

Test(topics, murmur2_matches_kafka_vectors) {
  /* Kafka's UtilsTest.testMurmur2 */
  struct {
    const char *in;
    int32_t want;
  } v[] = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (size_t i = 0; i < sizeof v / sizeof *v; i++)
    cr_assert_eq(takhin_murmur2(v[i].in, strlen(v[i].in)), v[i].want, "murmur2(\"%s\")", v[i].in);
  cr_assert_eq(takhin_partition_for_key("foobar", 6, 10),
               (int32_t)((-790332482 & 0x7fffffff) % 10));
}

Test(topics, partition_balance_100k_keys) {
  int parts[] = {4, 8, 16, 32};
  for (size_t k = 0; k < 4; k++) {
    int64_t counts[32] = {0};
    for (int i = 0; i < 100000; i++) {
      char key[32];
      int n = snprintf(key, sizeof key, "key-%d", i);
      counts[takhin_partition_for_key(key, (size_t)n, parts[k])]++;
    }
    int64_t max = 0;
    for (int p = 0; p < parts[k]; p++) max = counts[p] > max ? counts[p] : max;
    double mean = 100000.0 / parts[k], imb = (max - mean) / mean;
    cr_assert_lt(imb, 0.05, "%d partitions: imbalance %.2f%%", parts[k], imb * 100);
  }
}

Test(topics, produce_by_key_splits_per_partition) {
  takhin_store *s = tu_open_ok(tu_store_path("topics_keyed"));
  cr_assert_eq(takhin_topic_create(s, "t", 8, NULL), TAKHIN_OK);
  enum { N = 2000 };
  takhin_record *r = calloc(N, sizeof *r);
  char(*keys)[16] = calloc(N, 16);
  int32_t *parts = calloc(N, sizeof *parts);
  int64_t *offs = calloc(N, sizeof *offs);
  for (int i = 0; i < N; i++) {
    int n = snprintf(keys[i], 16, "key-%d", i % 500);
    r[i] = (takhin_record){.key = keys[i],
                           .key_len = (size_t)n,
                           .value = keys[i],
                           .value_len = (size_t)n,
                           .timestamp = 1000 + i};
  }
  cr_assert_eq(takhin_produce_topic(s, "t", r, N, parts, offs), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t counts[8];
  double imb;
  cr_assert_eq(takhin_topic_balance(s, "t", counts, 8, &imb), TAKHIN_OK);
  int64_t total = 0;
  for (int p = 0; p < 8; p++) {
    total += counts[p];
    takhin_segment_info *segs;
    size_t ns;
    cr_assert_eq(takhin_segments_list(s, "t", p, &segs, &ns), TAKHIN_OK);
    takhin_free(segs);
  }
  cr_assert_eq(total, N);
  /* every record is where the partitioner says, at the offset reported,
  ** and a partition's records keep the call's order */
  takhin_cursor *c[8];
  for (int p = 0; p < 8; p++) cr_assert_eq(takhin_cursor_open(s, "t", p, &c[p]), TAKHIN_OK);
  int64_t last[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  for (int i = 0; i < N; i++) {
    cr_assert_eq(parts[i], takhin_partition_for_key(keys[i], strlen(keys[i]), 8));
    cr_assert_gt(offs[i], last[parts[i]], "order kept within a partition");
    last[parts[i]] = offs[i];
    takhin_message m;
    cr_assert_eq(takhin_cursor_get(c[parts[i]], offs[i], &m), TAKHIN_OK);
    cr_assert_eq(m.key_len, strlen(keys[i]));
    cr_assert(memcmp(m.key, keys[i], m.key_len) == 0);
  }
  /* one produce call = one batch per partition: each partition's first
  ** segment holds exactly one batch, so its size is that batch's size and
  ** offset 0's batch spans all of that partition's records */
  for (int p = 0; p < 8; p++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, "t", p, &pi), TAKHIN_OK);
    cr_assert_eq(pi.high_watermark, counts[p]);
    takhin_cursor_close(c[p]);
  }
  /* null keys: one call sticks to one partition, calls rotate */
  takhin_record nk[3] = {{.value = "a", .value_len = 1, .timestamp = 1},
                         {.value = "b", .value_len = 1, .timestamp = 1},
                         {.value = "c", .value_len = 1, .timestamp = 1}};
  int seen[8] = {0};
  for (int call = 0; call < 16; call++) {
    int32_t pp[3];
    cr_assert_eq(takhin_produce_topic(s, "t", nk, 3, pp, NULL), TAKHIN_OK);
    cr_assert(pp[0] == pp[1] && pp[1] == pp[2], "sticky within a call");
    seen[pp[0]]++;
  }
  for (int p = 0; p < 8; p++)
    cr_assert_eq(seen[p], 2, "round-robin across calls: partition %d got %d", p, seen[p]);
  free(r);
  free(keys);
  free(parts);
  free(offs);
  takhin_close(s);
}

Test(topics, lifecycle_and_reopen) {
  const char *db = tu_store_path("topics_life");
  takhin_store *s = tu_open_ok(db);
  cr_assert_eq(takhin_topic_create(s, "b", 2,
                                   (const char *const[]){"cleanup_policy", "compact,delete",
                                                         "retention_ms", "1000", NULL}),
               TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "a", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "c", 3, NULL), TAKHIN_OK);
  char **names;
  size_t n;
  cr_assert_eq(takhin_topic_list(s, &names, &n), TAKHIN_OK);
  cr_assert_eq(n, 3);
  cr_assert_str_eq(names[0], "a");
  cr_assert_str_eq(names[2], "c");
  takhin_free(names);
  cr_assert_eq(
      takhin_topic_alter_config(
          s, "b", (const char *const[]){"retention_ms", "5000", "compression", "zstd", NULL}),
      TAKHIN_OK);
  cr_assert_eq(takhin_topic_alter_config(s, "b", (const char *const[]){"bogus", "1", NULL}),
               TAKHIN_EINVAL);
  cr_assert_eq(takhin_topic_add_partitions(s, "b", 2), TAKHIN_EINVAL, "never shrink or stay");
  cr_assert_eq(takhin_topic_add_partitions(s, "b", 5), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  cr_assert_eq(takhin_produce(s, "b", 4, &r, 1, NULL), TAKHIN_OK, "new partition is usable: %s",
               takhin_errmsg());
  cr_assert_eq(takhin_produce(s, "c", 2, &r, 1, NULL), TAKHIN_OK);
  takhin_offset_commit oc = {"c", 2, 1, "meta"};
  cr_assert_eq(takhin_group_commit(s, "g1", &oc, 1), TAKHIN_OK);
  /* delete c: files and rows go */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s-takhin/c-2", db);
  cr_assert(tu_dir_exists(dir));
  cr_assert_eq(takhin_topic_delete(s, "c"), TAKHIN_OK);
  cr_assert(!tu_dir_exists(dir), "the partition folder was removed");
  cr_assert_eq(takhin_produce(s, "c", 0, &r, 1, NULL), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_topic_delete(s, "c"), TAKHIN_ENOTFOUND);
  takhin_group_offset *go;
  cr_assert_eq(takhin_group_list(s, NULL, &go, &n), TAKHIN_OK);
  cr_assert_eq(n, 0, "the deleted topic's group offsets went with it");
  takhin_free(go);
  cr_assert_eq(takhin_group_commit(s, "g1", &(takhin_offset_commit){"b", 4, 1, NULL}, 1),
               TAKHIN_OK);
  takhin_close(s);

  s = tu_open_ok(db);
  takhin_topic_desc d;
  cr_assert_eq(takhin_topic_describe(s, "b", &d), TAKHIN_OK);
  cr_assert_eq(d.partitions, 5);
  cr_assert_str_eq(d.cleanup_policy, "compact,delete");
  cr_assert_str_eq(d.compression, "zstd");
  cr_assert_eq(d.retention_ms, 5000);
  cr_assert_eq(d.segment_bytes, 1073741824, "Kafka's default");
  cr_assert_eq(takhin_topic_describe(s, "c", &d), TAKHIN_ENOTFOUND);
  int64_t off;
  cr_assert_eq(takhin_group_fetch(s, "g1", "b", 4, &off, NULL), TAKHIN_OK);
  cr_assert_eq(off, 1, "group offsets survive reopen");
  cr_assert_eq(takhin_topic_create(s, "c", 1, NULL), TAKHIN_OK, "the name is free again");
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "c", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 0, "a re-created topic starts empty");
  takhin_close(s);
}

/* A folder no topic owns is never removed for that (it may be all that is
** left of a topic a lost catalog forgot): kept and reported. */
Test(topics, orphan_folders_are_kept_on_open) {
  const char *db = tu_store_path("topics_orphan");
  takhin_store *s = tu_open_ok(db);
  cr_assert_eq(takhin_topic_create(s, "keep", 1, NULL), TAKHIN_OK);
  takhin_close(s);
  char dir[4096], keepdir[4096], cmd[8400];
  snprintf(dir, sizeof dir, "%s-takhin/gone-0", db);
  snprintf(keepdir, sizeof keepdir, "%s-takhin/keep-0", db);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo x > '%s/00000000000000000000.log'", dir, dir);
  cr_assert_eq(system(cmd), 0);
  s = tu_open_ok(db);
  cr_assert(tu_dir_exists(dir), "a folder no topic owns is kept");
  cr_assert(tu_dir_exists(keepdir), "a live topic's folder stays");
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.folders_kept, 1);
  cr_assert_eq(ri.files_removed, 0);
  cr_assert_eq(takhin_topic_create(s, "gone", 1, NULL), TAKHIN_EEXISTS,
               "a new topic neither adopts nor wipes a folder holding data");
  cr_assert(strstr(takhin_errmsg(), "gone-0"), "%s", takhin_errmsg());
  takhin_close(s);
}

Test(topics, group_offsets) {
  takhin_store *s = tu_open_ok(tu_store_path("topics_groups"));
  cr_assert_eq(takhin_topic_create(s, "t", 3, NULL), TAKHIN_OK);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  for (int p = 0; p < 3; p++)
    for (int i = 0; i < 10 * (p + 1); i++)
      cr_assert_eq(takhin_produce(s, "t", p, &r, 1, NULL), TAKHIN_OK);
  takhin_offset_commit ok[3] = {{"t", 0, 5, "m0"}, {"t", 1, 20, NULL}, {"t", 2, 0, ""}};
  cr_assert_eq(takhin_group_commit(s, "billing", ok, 3), TAKHIN_OK, "%s", takhin_errmsg());
  /* atomic: one bad entry and none land */
  takhin_offset_commit bad[2] = {{"t", 0, 7, NULL}, {"t", 1, 21, NULL}};
  cr_assert_eq(takhin_group_commit(s, "billing", bad, 2), TAKHIN_ERANGE);
  cr_assert(strstr(takhin_errmsg(), "out of range [0, 20]"), "%s", takhin_errmsg());
  int64_t off;
  char *meta;
  cr_assert_eq(takhin_group_fetch(s, "billing", "t", 0, &off, &meta), TAKHIN_OK);
  cr_assert_eq(off, 5, "the failed commit changed nothing");
  cr_assert_str_eq(meta, "m0");
  takhin_free(meta);
  cr_assert_eq(takhin_group_commit(s, "billing", &(takhin_offset_commit){"nope", 0, 0, NULL}, 1),
               TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_group_commit(s, "billing", &(takhin_offset_commit){"t", 3, 0, NULL}, 1),
               TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_group_commit(s, "billing", &(takhin_offset_commit){"t", 0, -1, NULL}, 1),
               TAKHIN_ERANGE);
  cr_assert_eq(takhin_group_commit(s, "", ok, 1), TAKHIN_EINVAL);
  cr_assert_eq(takhin_group_fetch(s, "other", "t", 0, &off, NULL), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_group_commit(s, "audit", &ok[0], 1), TAKHIN_OK);
  takhin_group_offset *g;
  size_t n;
  cr_assert_eq(takhin_group_list(s, "billing", &g, &n), TAKHIN_OK);
  cr_assert_eq(n, 3);
  for (size_t i = 0; i < n; i++) {
    cr_assert_str_eq(g[i].group, "billing");
    cr_assert_str_eq(g[i].topic, "t");
    cr_assert_eq(g[i].partition, (int32_t)i);
    cr_assert_eq(g[i].high_watermark, 10 * ((int64_t)i + 1));
    cr_assert_eq(g[i].lag, g[i].high_watermark - g[i].committed_offset);
  }
  cr_assert_eq(g[0].lag, 5);
  cr_assert_eq(g[1].lag, 0);
  cr_assert_null(g[1].metadata);
  takhin_free(g);
  cr_assert_eq(takhin_group_list(s, NULL, &g, &n), TAKHIN_OK);
  cr_assert_eq(n, 4, "all groups");
  takhin_free(g);
  cr_assert_eq(takhin_group_delete(s, "billing"), TAKHIN_OK);
  cr_assert_eq(takhin_group_delete(s, "billing"), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_group_fetch(s, "billing", "t", 0, &off, NULL), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_group_fetch(s, "audit", "t", 0, &off, NULL), TAKHIN_OK);
  takhin_close(s);
}

static void fill_old(takhin_store *s, const char *topic, int parts, int n) {
  char v[200];
  memset(v, 'x', sizeof v);
  for (int p = 0; p < parts; p++)
    for (int i = 0; i < n; i++) {
      takhin_record r = {
          .key = "k", .key_len = 1, .value = v, .value_len = sizeof v, .timestamp = 1000 + i};
      cr_assert_eq(takhin_produce(s, topic, p, &r, 1, NULL), TAKHIN_OK);
    }
}

Test(topics, maintenance_applies_retention_everywhere) {
  takhin_store *s = tu_open_ok(tu_store_path("topics_maint"));
  const char *const cfg[] = {"segment_bytes", "2048", "retention_ms", "60000", NULL};
  cr_assert_eq(takhin_topic_create(s, "x", 2, cfg), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(s, "y", 1, cfg), TAKHIN_OK);
  fill_old(s, "x", 2, 50);
  fill_old(s, "y", 1, 50);
  takhin_retention_result rr;
  cr_assert_eq(takhin_maintenance_run(s, &rr), TAKHIN_OK);
  cr_assert_gt(rr.segments_deleted, 3 * 3, "old segments of every partition went (%lld)",
               (long long)rr.segments_deleted);
  const char *names[3] = {"x", "x", "y"};
  for (int i = 0; i < 3; i++) {
    takhin_partition_info pi;
    cr_assert_eq(takhin_partition_info_get(s, names[i], i == 1, &pi), TAKHIN_OK);
    cr_assert_gt(pi.log_start_offset, 0);
    cr_assert_eq(pi.segments, 1, "only the active segment is left");
  }
  takhin_close(s);
}

Test(topics, background_maintenance_thread) {
  takhin_options o;
  takhin_options_init(&o);
  o.maintenance_ms = 20;
  takhin_store *s;
  cr_assert_eq(takhin_open(tu_store_path("topics_bg"), &o, &s), TAKHIN_OK);
  cr_assert_eq(
      takhin_topic_create(
          s, "x", 1, (const char *const[]){"segment_bytes", "2048", "retention_ms", "60000", NULL}),
      TAKHIN_OK);
  fill_old(s, "x", 1, 50);
  takhin_partition_info pi = {0};
  for (int i = 0; i < 200; i++) {
    cr_assert_eq(takhin_partition_info_get(s, "x", 0, &pi), TAKHIN_OK);
    if (pi.log_start_offset > 0) break;
    usleep(10 * 1000);
  }
  cr_assert_gt(pi.log_start_offset, 0, "the background thread applied retention");
  takhin_close(s);
}

Test(topics, fd_budget_under_low_rlimit) {
  /* Criterion runs each test in its own process: the limit stays here. */
  struct rlimit rl = {64, 64};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  const char *db = tu_store_path("topics_fd");
  takhin_store *s = tu_open_ok(db);
  char v[300];
  memset(v, 'f', sizeof v);
  enum { T = 20, P = 4, N = 40 };
  for (int t = 0; t < T; t++) {
    char name[16];
    snprintf(name, sizeof name, "t%d", t);
    cr_assert_eq(
        takhin_topic_create(s, name, P, (const char *const[]){"segment_bytes", "1024", NULL}),
        TAKHIN_OK, "%s", takhin_errmsg());
  }
  /* 80 partitions x ~13 segments each, produced round-robin, far more
  ** segment files than descriptors */
  for (int i = 0; i < N; i++)
    for (int t = 0; t < T; t++)
      for (int p = 0; p < P; p++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        takhin_record r = {
            .key = "k", .key_len = 1, .value = v, .value_len = sizeof v, .timestamp = i};
        cr_assert_eq(takhin_produce(s, name, p, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
      }
  takhin_close(s);
  s = tu_open_ok(db);
  for (int t = 0; t < T; t++)
    for (int p = 0; p < P; p++) {
      char name[16];
      snprintf(name, sizeof name, "t%d", t);
      takhin_cursor *c;
      takhin_message m;
      cr_assert_eq(takhin_cursor_open(s, name, p, &c), TAKHIN_OK);
      int n = 0;
      while (takhin_cursor_next(c, &m) == TAKHIN_OK) n++;
      cr_assert_eq(n, N, "%s-%d read %d", name, p, n);
      takhin_cursor_close(c);
    }
  takhin_close(s);
}

typedef struct {
  takhin_store *s;
  int id;
  atomic_int *stop;
  long bad;
} racer;

static void *produce_loop(void *arg) {
  racer *r = arg;
  char name[16];
  snprintf(name, sizeof name, "stable-%d", r->id);
  takhin_record rec = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  for (int i = 0; i < 300; i++) {
    int32_t p;
    if (takhin_produce_topic(r->s, name, &rec, 1, &p, NULL) != TAKHIN_OK) r->bad++;
    /* a topic that comes and goes: only OK or ENOTFOUND are acceptable */
    int rc = takhin_produce(r->s, "flux", 0, &rec, 1, NULL);
    if (rc != TAKHIN_OK && rc != TAKHIN_ENOTFOUND) r->bad++;
  }
  return NULL;
}

static void *create_delete_loop(void *arg) {
  racer *r = arg;
  for (int i = 0; i < 40; i++) {
    int rc = takhin_topic_create(r->s, "flux", 2, NULL);
    if (rc != TAKHIN_OK) r->bad++;
    takhin_cursor *c;
    if (takhin_cursor_open(r->s, "flux", 0, &c) == TAKHIN_OK) {
      takhin_message m;
      rc = takhin_topic_delete(r->s, "flux");
      if (rc != TAKHIN_OK) r->bad++;
      rc = takhin_cursor_next(c, &m); /* the topic is gone under the cursor */
      if (rc != TAKHIN_ENOTFOUND) r->bad++;
      takhin_cursor_close(c);
    } else {
      r->bad++;
    }
  }
  return NULL;
}

Test(topics, concurrent_produce_create_delete) {
  const char *db = tu_store_path("topics_race");
  takhin_store *s = tu_open_ok(db);
  for (int i = 0; i < 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "stable-%d", i);
    cr_assert_eq(takhin_topic_create(s, name, 4, NULL), TAKHIN_OK);
  }
  atomic_int stop = 0;
  racer r[3] = {{s, 0, &stop, 0}, {s, 1, &stop, 0}, {s, 2, &stop, 0}};
  pthread_t th[3];
  pthread_create(&th[0], NULL, produce_loop, &r[0]);
  pthread_create(&th[1], NULL, produce_loop, &r[1]);
  pthread_create(&th[2], NULL, create_delete_loop, &r[2]);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(r[i].bad, 0, "thread %d: %ld unexpected results", i, r[i].bad);
  for (int i = 0; i < 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "stable-%d", i);
    double imb;
    int64_t counts[4];
    cr_assert_eq(takhin_topic_balance(s, name, counts, 4, &imb), TAKHIN_OK);
    cr_assert_eq(counts[0] + counts[1] + counts[2] + counts[3], 300);
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s-takhin/flux-0", db);
  cr_assert(!tu_dir_exists(dir), "no write landed in a deleted topic's folder");
  takhin_close(s);
}
