/*
** rdk_util.h -- what the librdkafka tests (test_rdkafka*.c) share: a CHECK
** that exits, takhin-server started as a child on a 127.0.0.1 port and
** stopped again (never left behind), and a conf setter that checks.
*/
#ifndef TAKHIN_RDK_UTIL_H
#define TAKHIN_RDK_UTIL_H

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/* The running server's pid, 0 when none. */
extern pid_t server_pid;

/* Start takhin-server (bin) on store db, listening on 127.0.0.1:port (0: an
** ephemeral one), with --partitions partitions unless NULL, and with
** TAKHIN_KAFKA_TEST_DROP_PRODUCE=drop_produce unless NULL. Returns the port
** the server printed. */
int start_server_with(const char *bin, const char *db, int port, const char *partitions,
                      const char *drop_produce);

/* SIGTERM the server and check it exits with status 0. */
void stop_server(void);

/* atexit handler: a failed CHECK exits, and must not leave the server
** behind (it holds ctest's pipes). */
void kill_server(void);

/* SIGALRM handler: kill the server and fail. */
void on_alarm(int sig);

/* mkdir -p dir (the scratch directory of a fresh build tree has no parent
** yet when a test runs first); a failure is a CHECK. */
void scratch_mkdir(const char *dir);

/* rd_kafka_conf_set, checked. */
void conf_set(rd_kafka_conf_t *c, const char *k, const char *v);

#endif
