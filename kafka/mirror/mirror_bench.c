/*
** mirror_bench.c -- throughput of takhin-mirror --to against librdkafka's
** in-process mock cluster (3 brokers): 1 KiB records, 1 and 4 partitions,
** beside the API path's produce rate (takhin_produce, 100-record batches)
** for the same records in the same run.
** Usage: takhin-mirror-bench [MB per run, default 32] [-X key=value ...]
** (the -X options go to takhin-mirror, to try producer settings). Not a CTest: numbers
** on a shared 2-core machine are noisy, and the mock broker shares the CPU.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "takhin.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Run takhin-mirror to its end; returns wall seconds (-1 on failure) and
** its CPU seconds, all threads (OUT: *cpu). */
static double run_mirror(char **argv, double *cpu) {
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    execv(MIRROR_BIN, argv);
    _exit(127);
  }
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  *cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? now_s() - t0 : -1;
}

int main(int argc, char **argv) {
  int mb = argc > 1 ? atoi(argv[1]) : 32;
  if (mb <= 0) return fprintf(stderr, "usage: %s [MB > 0] [-X key=value ...]\n", argv[0]), 2;
  char *margv[64] = {"takhin-mirror", NULL, "--to", NULL, "--name", "bench"};
  int margc = 6;
  for (int i = 2; i < argc && margc < 62; i++) margv[margc++] = argv[i];
  char dir[256];
  snprintf(dir, sizeof dir, "/tmp/takhin-mirror-bench-%d", (int)getpid());
  mkdir(dir, 0755);
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_mock_cluster_t *mc = host ? rd_kafka_mock_cluster_new(host, 3) : NULL;
  if (!mc) return fprintf(stderr, "mock cluster: %s\n", err), 1;
  const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
  const int64_t n = (int64_t)mb * 1024; /* 1 KiB records */
  char *value = malloc(1024);
  for (int i = 0; i < 1024; i++) value[i] = (char)('a' + (i * 7 + i / 13) % 26);

  /* mirror CPU well below its wall time: it waits on the cluster (the mock
  ** broker and librdkafka), not on reading takhin */
  printf("%-11s %10s %10s %12s %12s %8s %8s %10s\n", "partitions", "records", "api MB/s",
         "mirror MB/s", "steady MB/s", "wall s", "idle s", "mirror CPU");
  for (int parts = 1; parts <= 4; parts += 3) {
    char db[300], topic[32];
    snprintf(db, sizeof db, "%s/p%d.db", dir, parts);
    snprintf(topic, sizeof topic, "bench%d", parts);
    takhin_store *s;
    if (takhin_open(db, NULL, &s) || takhin_topic_create(s, topic, parts, NULL))
      return fprintf(stderr, "store: %s\n", takhin_errmsg()), 1;
    takhin_record r[100];
    char keys[100][16];
    double t0 = now_s();
    for (int64_t i = 0; i < n; i += 100) {
      for (int j = 0; j < 100; j++) {
        snprintf(keys[j], sizeof keys[j], "k%" PRId64, i + j);
        r[j] =
            (takhin_record){keys[j], strlen(keys[j]), value, 1024, NULL, 0, TAKHIN_TIMESTAMP_NOW};
      }
      if (takhin_produce(s, topic, (int32_t)((i / 100) % parts), r, 100, NULL))
        return fprintf(stderr, "produce: %s\n", takhin_errmsg()), 1;
    }
    double api = now_s() - t0;
    takhin_close(s);
    rd_kafka_mock_topic_create(mc, topic, parts, 3);
    margv[1] = db;
    margv[3] = (char *)bs;
    double cpu, mir = run_mirror(margv, &cpu), idle_cpu;
    /* a second run finds nothing to ship: its time is the fixed cost (two
    ** clients, metadata, init_transactions, the tail read), not throughput */
    double idle = run_mirror(margv, &idle_cpu);
    if (mir < 0 || idle < 0) return fprintf(stderr, "mirror failed\n"), 1;
    printf("%-11d %10" PRId64 " %10.1f %12.1f %12.1f %8.2f %8.2f %10.2f\n", parts, n, mb / api,
           mb / mir, mb / (mir - idle), mir, idle, cpu);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
