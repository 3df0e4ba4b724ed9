/*
** rdk_util.c -- see rdk_util.h.
*/
#include "rdk_util.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t server_pid;

int start_server_with(const char *bin, const char *db, int port, const char *partitions,
                      const char *drop_produce) {
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  int pfd[2];
  CHECK(pipe(pfd) == 0, "pipe");
  server_pid = fork();
  CHECK(server_pid >= 0, "fork");
  if (server_pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    if (drop_produce) setenv("TAKHIN_KAFKA_TEST_DROP_PRODUCE", drop_produce, 1);
    if (partitions)
      execl(bin, bin, db, "--listen", listen, "--partitions", partitions, (char *)NULL);
    else execl(bin, bin, db, "--listen", listen, (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  char buf[32] = {0};
  size_t got = 0;
  while (got < sizeof buf - 1) {
    ssize_t r = read(pfd[0], buf + got, 1);
    if (r <= 0 || buf[got] == '\n') break;
    got++;
  }
  close(pfd[0]);
  int got_port = atoi(buf);
  CHECK(got_port > 0, "server did not print its port");
  return got_port;
}

void stop_server(void) {
  int st;
  kill(server_pid, SIGTERM);
  CHECK(waitpid(server_pid, &st, 0) == server_pid, "waitpid");
  server_pid = 0;
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit status %d", st);
}

void kill_server(void) {
  if (server_pid > 0) kill(server_pid, SIGKILL);
}

void on_alarm(int sig) {
  (void)sig;
  if (server_pid > 0) kill(server_pid, SIGKILL);
  static const char msg[] = "FAIL: timed out\n";
  if (write(2, msg, sizeof msg - 1)) {}
  _exit(1);
}

void conf_set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[256];
  CHECK(rd_kafka_conf_set(c, k, v, err, sizeof err) == RD_KAFKA_CONF_OK, "%s: %s", k, err);
}

void scratch_mkdir(const char *dir) {
  char p[1024];
  CHECK(strlen(dir) < sizeof p, "scratch path too long");
  strcpy(p, dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      CHECK(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s", p);
      *s = '/';
    }
  CHECK(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s", p);
}
