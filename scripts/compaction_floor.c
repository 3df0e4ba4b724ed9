/*
** compaction_floor.c -- the physical floor of a compaction run, broken down
** into its steps, so a slow machine can be told from a slow change
** (BENCHMARKS.md, "Where compaction's time goes").
**
** It makes N "old segments" of 2 x SIZE bytes (written, synced, kept open as
** takhin's reaper keeps replaced segments open), then times what any
** compaction must do to replace them with N new files of SIZE bytes at
** takhin's durability point: create each new file, write it, start its
** writeback (sync_file_range), fdatasync every new file, fsync the folder,
** rename each over its old segment, fsync the folder. The fdatasyncs run:
**   seq    one after another, after all are written
**   par    on T threads at once, after all are written
**   early  on T threads at once, each file as soon as it is written (what
**          takhin's compaction and the bench's file path do)
** Build and run (the folder must be on the file system under test):
**   cc -O2 -pthread -o build/compaction-floor scripts/compaction_floor.c
**   for m in seq par early; do build/compaction-floor $m 100 524288 4 /tmp; done
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 1000
#define MAX_THREADS 64

static int fds[MAX_FILES], old[MAX_FILES], nf;
static int next_i, written;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *syncer(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (next_i >= written && next_i < nf) pthread_cond_wait(&cv, &mu);
    int i = next_i++;
    pthread_mutex_unlock(&mu);
    if (i >= nf) return NULL;
    if (fdatasync(fds[i]) != 0) perror("fdatasync");
  }
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s seq|par|early FILES SIZE [THREADS [FOLDER]]\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  nf = atoi(argv[2]);
  size_t sz = (size_t)atol(argv[3]);
  int nt = argc > 4 ? atoi(argv[4]) : 4;
  const char *base = argc > 5 ? argv[5] : "/tmp";
  int early = !strcmp(mode, "early"), seq = !strcmp(mode, "seq");
  if ((!early && !seq && strcmp(mode, "par")) || nf < 1 || nf > MAX_FILES || nt < 1 ||
      nt > MAX_THREADS || sz < 1)
    return fprintf(stderr, "bad arguments\n"), 2;
  char *buf = malloc(2 * sz);
  if (!buf) die("malloc");
  for (size_t i = 0; i < 2 * sz; i++) buf[i] = (char)(i * 7);
  char dir[4096], p[4200], q[4200];
  snprintf(dir, sizeof dir, "%s/compaction-floor-%d", base, (int)getpid());
  if (mkdir(dir, 0755) != 0) die(dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0) die(dir);
  for (int i = 0; i < nf; i++) {
    snprintf(p, sizeof p, "%s/%03d.log", dir, i);
    if ((old[i] = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) die(p);
    if (write(old[i], buf, 2 * sz) != (ssize_t)(2 * sz)) die("write");
  }
  syncfs(dfd); /* as the benchmark's setup: nothing of it is left to write back */
  usleep(200000);
  pthread_t th[MAX_THREADS];
  written = early ? 0 : nf;
  if (early)
    for (int k = 0; k < nt; k++) pthread_create(&th[k], NULL, syncer, NULL);
  double t0 = now_ms(), create = 0, wr = 0;
  for (int i = 0; i < nf; i++) {
    double a = now_ms();
    snprintf(p, sizeof p, "%s/%03d.log.cleaned", dir, i);
    if ((fds[i] = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) die(p);
    double b = now_ms();
    create += b - a;
    if (write(fds[i], buf, sz) != (ssize_t)sz) die("write");
    sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
    if (early) {
      pthread_mutex_lock(&mu);
      written = i + 1;
      pthread_cond_broadcast(&cv);
      pthread_mutex_unlock(&mu);
    }
    wr += now_ms() - b;
  }
  double t1 = now_ms();
  if (seq) {
    for (int i = 0; i < nf; i++)
      if (fdatasync(fds[i]) != 0) die("fdatasync");
  } else {
    if (!early)
      for (int k = 0; k < nt; k++) pthread_create(&th[k], NULL, syncer, NULL);
    for (int k = 0; k < nt; k++) pthread_join(th[k], NULL);
  }
  double t2 = now_ms();
  fsync(dfd);
  double t3 = now_ms();
  for (int i = 0; i < nf; i++) {
    snprintf(p, sizeof p, "%s/%03d.log.cleaned", dir, i);
    snprintf(q, sizeof q, "%s/%03d.log", dir, i);
    if (rename(p, q) != 0) die("rename");
  }
  double t4 = now_ms();
  fsync(dfd);
  double t5 = now_ms();
  printf("%-5s files=%d size=%zu threads=%d: create %.2f, write+writeback start %.2f, "
         "fdatasync wait %.2f, folder fsync %.2f, renames %.2f, folder fsync %.2f; "
         "total %.2f ms\n",
         mode, nf, sz, seq ? 1 : nt, create, wr, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0);
  for (int i = 0; i < nf; i++) {
    close(fds[i]);
    close(old[i]);
    snprintf(q, sizeof q, "%s/%03d.log", dir, i);
    unlink(q);
  }
  close(dfd);
  rmdir(dir);
  free(buf);
  return 0;
}
