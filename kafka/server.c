/*
** server.c -- takhin-server: a Kafka protocol broker over one takhin store.
**
**   takhin-server STORE [--listen 127.0.0.1:9092] [--durability os|fsync|buffered]
**                       [--partitions N] [--no-auto-create] [--frame-timeout-ms MS]
**                       [--idle-timeout-ms MS] [-v]
**
** One thread per connection, not an event loop: the store's calls block
** (an fsync for acks=all, a long-polling fetch), the connections of an
** embedded broker are few, and a blocking thread keeps each request a
** straight line of code. The cost is bounded by MAX_CONNS threads; each
** holds at most one request frame (<= socket.request.max.bytes, 100 MiB,
** allocated only as its bytes arrive) and one response: its headers in
** memory, and the stored batches of a Fetch as views into the segment
** files, sent with sendmsg straight from the mapping (no copy).
**
** Peers are untrusted: a frame size outside [8, 100 MiB] closes the
** connection; a frame must arrive whole within FRAME_TIMEOUT_MS of its first
** byte (--frame-timeout-ms; a client sending one byte a second is cut off); an idle connection
** is closed after IDLE_TIMEOUT_MS (connections.max.idle.ms, --idle-timeout-ms); malformed
** requests, unknown APIs and versions close the connection (see
** handlers.c). Nothing a peer sends reaches the store except through the
** validating takhin_* calls.
**
** SIGTERM/SIGINT: stop accepting, let every connection finish the request
** in hand (reads wake within POLL_TICK_MS), join them, flush and close the
** store. Binds to 127.0.0.1 unless told otherwise; no authentication.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"

#define MAX_CONNS 256
#define FRAME_TIMEOUT_MS 30000 /* default of --frame-timeout-ms */
#define IDLE_TIMEOUT_MS 600000
#define POLL_TICK_MS 200
#define READ_CHUNK (1024 * 1024) /* a frame's buffer grows as its bytes arrive */

static atomic_int stopping;
/* when the accept loop saw `stopping` (ms, monotonic): requests that keep
** arriving after it are served for STOP_GRACE_MS at most, so a client that
** pipelines without pause cannot hold the drain open */
static _Atomic int64_t stop_seen_ms;
#define STOP_GRACE_MS 1000
static int frame_timeout_ms = FRAME_TIMEOUT_MS;
static int idle_timeout_ms = IDLE_TIMEOUT_MS;
/* Test hook (environment TAKHIN_KAFKA_TEST_DROP_PRODUCE=N): close the
** connection instead of answering every Nth Produce, after its batches were
** appended, so tests can force a client's retries (idempotence). */
static int drop_produce_every;
static atomic_int produce_count;
static atomic_int nconns;

typedef struct conn {
  int fd;
  kh_ctx *ctx;
  char peer[64];
} conn;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly n bytes before deadline (ms, monotonic). 0 ok, -1 closed,
** timed out, stopping (only while idle: idle_ok) or failed. */
static int read_full(int fd, uint8_t *p, size_t n, int64_t deadline, int idle_ok) {
  size_t got = 0;
  while (got < n) {
    if (idle_ok && got == 0 && atomic_load(&stopping)) {
      /* stopping: a request that arrived before is served, no later one waited for */
      struct pollfd now = {fd, POLLIN, 0};
      if (poll(&now, 1, 0) <= 0) return -1;
      int64_t seen = atomic_load(&stop_seen_ms);
      if (seen && mono_ms() - seen > STOP_GRACE_MS) return -1;
    }
    int64_t left = deadline - mono_ms();
    if (left <= 0) return -1;
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)(left < POLL_TICK_MS ? left : POLL_TICK_MS));
    if (pr < 0 && errno != EINTR) return -1;
    if (pr <= 0) continue;
    ssize_t r = recv(fd, p + got, n - got, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static void *conn_main(void *arg) {
  conn *cn = arg;
  kh_ctx *ctx = cn->ctx;
  uint8_t *buf = NULL;
  size_t cap = 0;
  kp_writer w = {.limit = (size_t)80 * 1024 * 1024};
  if (ctx->verbose) kh_log("connection from %s", cn->peer);
  for (;;) {
    uint8_t sz[4];
    /* wait for a frame: idle timeout; then the frame has FRAME_TIMEOUT_MS */
    if (read_full(cn->fd, sz, 1, mono_ms() + idle_timeout_ms, 1)) break;
    int64_t deadline = mono_ms() + frame_timeout_ms;
    if (read_full(cn->fd, sz + 1, 3, deadline, 0)) break;
    int32_t n = (int32_t)(((uint32_t)sz[0] << 24) | ((uint32_t)sz[1] << 16) |
                          ((uint32_t)sz[2] << 8) | sz[3]);
    if (n < 8 || n > KP_MAX_FRAME) {
      kh_log("closing %s: frame size %d outside [8, %d]", cn->peer, (int)n, KP_MAX_FRAME);
      break;
    }
    /* grow as bytes arrive, so a size alone never costs 100 MiB */
    size_t got = 0, need = (size_t)n;
    int bad = 0;
    while (got < need) {
      size_t step = need - got < READ_CHUNK ? need - got : READ_CHUNK;
      if (cap < got + step) {
        size_t nc = cap ? cap : 4096;
        while (nc < got + step) nc *= 2;
        if (nc > need) nc = need;
        uint8_t *nb = realloc(buf, nc);
        if (!nb) {
          bad = 1;
          break;
        }
        buf = nb;
        cap = nc;
      }
      if (read_full(cn->fd, buf + got, step, deadline, 0)) {
        bad = 1;
        break;
      }
      got += step;
    }
    if (bad) {
      if (ctx->verbose) kh_log("closing %s: truncated or slow frame", cn->peer);
      break;
    }
    kp_w_reset(&w); /* releases the last response's segment views */
    if (kh_dispatch(ctx, buf, need, &w)) break;
    if (drop_produce_every && buf[0] == 0 && buf[1] == KP_PRODUCE &&
        atomic_fetch_add(&produce_count, 1) % drop_produce_every == drop_produce_every - 1) {
      kh_log("test hook: dropping %s instead of answering a Produce", cn->peer);
      break;
    }
    if (w.len && kp_w_send(&w, cn->fd)) break;
    kp_w_reset(&w); /* hold no segment while waiting for the next request */
    /* a big request or response does not pin its memory for the connection's life */
    if (cap > READ_CHUNK) free(buf), buf = NULL, cap = 0;
    if (w.cap > READ_CHUNK) kp_w_free(&w);
  }
  if (ctx->verbose) kh_log("connection from %s closed", cn->peer);
  close(cn->fd);
  free(buf);
  kp_w_free(&w);
  free(cn);
  atomic_fetch_sub(&nconns, 1);
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&stopping, 1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: takhin-server STORE [--listen HOST:PORT] [--durability os|fsync|buffered]\n"
          "                     [--partitions N] [--no-auto-create] [--frame-timeout-ms MS]\n"
          "                     [--idle-timeout-ms MS] [-v [-v]]\n"
          "Serves the Kafka protocol over the takhin store STORE (its catalog file).\n"
          "Listens on 127.0.0.1:9092 by default (port 0: any free port, printed on stdout).\n"
          "There is no authentication: do not listen beyond loopback on a shared network.\n");
}

int main(int argc, char **argv) {
  const char *path = NULL, *listen_at = "127.0.0.1:9092";
  kh_ctx ctx = {.auto_create = 1, .default_partitions = 1, .stopping = &stopping};
  takhin_options opt;
  takhin_options_init(&opt);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen_at = argv[++i];
    else if (!strcmp(argv[i], "--durability") && i + 1 < argc) {
      const char *d = argv[++i];
      if (!strcmp(d, "os")) opt.durability = TAKHIN_DURABILITY_OS;
      else if (!strcmp(d, "fsync")) opt.durability = TAKHIN_DURABILITY_FSYNC;
      else if (!strcmp(d, "buffered")) opt.durability = TAKHIN_DURABILITY_BUFFERED;
      else {
        usage();
        return 2;
      }
    } else if (!strcmp(argv[i], "--partitions") && i + 1 < argc) {
      ctx.default_partitions = atoi(argv[++i]);
      if (ctx.default_partitions < 1) {
        usage();
        return 2;
      }
    } else if (!strcmp(argv[i], "--no-auto-create")) ctx.auto_create = 0;
    else if (!strcmp(argv[i], "--frame-timeout-ms") && i + 1 < argc) {
      frame_timeout_ms = atoi(argv[++i]);
      if (frame_timeout_ms < 1) {
        usage();
        return 2;
      }
    } else if (!strcmp(argv[i], "--idle-timeout-ms") && i + 1 < argc) {
      idle_timeout_ms = atoi(argv[++i]);
      if (idle_timeout_ms < 1) {
        usage();
        return 2;
      }
    } else if (!strcmp(argv[i], "-v")) ctx.verbose++;
    else if (argv[i][0] != '-' && !path) path = argv[i];
    else {
      usage();
      return 2;
    }
  }
  if (!path) {
    usage();
    return 2;
  }
  const char *drop = getenv("TAKHIN_KAFKA_TEST_DROP_PRODUCE");
  if (drop) drop_produce_every = atoi(drop) > 0 ? atoi(drop) : 0;
  char host[256];
  const char *colon = strrchr(listen_at, ':');
  if (!colon || (size_t)(colon - listen_at) >= sizeof host) {
    usage();
    return 2;
  }
  memcpy(host, listen_at, (size_t)(colon - listen_at));
  host[colon - listen_at] = 0;
  int port = atoi(colon + 1);

  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE},
                  *ai;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  if (getaddrinfo(host, portstr, &hints, &ai) != 0) {
    fprintf(stderr, "takhin-server: cannot resolve %s\n", host);
    return 1;
  }
  int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(lfd, 64) != 0) {
    fprintf(stderr, "takhin-server: cannot listen on %s: %s\n", listen_at, strerror(errno));
    return 1;
  }
  freeaddrinfo(ai);
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  ctx.port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port);
  snprintf(ctx.host, sizeof ctx.host, "%s", host);

  int rc = takhin_open(path, &opt, &ctx.store);
  if (rc) {
    fprintf(stderr, "takhin-server: cannot open %s: %s\n", path, takhin_errmsg());
    return 1;
  }
  struct sigaction sact = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sact, NULL);
  sigaction(SIGINT, &sact, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* the port on stdout, alone on its line, for scripts and tests (port 0) */
  printf("%d\n", ctx.port);
  fflush(stdout);
  kh_log("serving %s on %s:%d (no authentication)", path, ctx.host, ctx.port);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  while (!atomic_load(&stopping)) {
    struct pollfd pfd = {lfd, POLLIN, 0};
    if (poll(&pfd, 1, POLL_TICK_MS) <= 0) continue;
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (atomic_load(&nconns) >= MAX_CONNS) {
      kh_log("refusing a connection: %d open", MAX_CONNS);
      close(fd);
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {FRAME_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    conn *cn = calloc(1, sizeof *cn);
    if (!cn) {
      close(fd);
      continue;
    }
    cn->fd = fd;
    cn->ctx = &ctx;
    char ip[INET6_ADDRSTRLEN] = "?";
    int pport = 0;
    if (peer.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, ip, sizeof ip);
      pport = ntohs(((struct sockaddr_in *)&peer)->sin_port);
    }
    snprintf(cn->peer, sizeof cn->peer, "%s:%d", ip, pport);
    atomic_fetch_add(&nconns, 1);
    pthread_t th;
    if (pthread_create(&th, &attr, conn_main, cn) != 0) {
      atomic_fetch_sub(&nconns, 1);
      close(fd);
      free(cn);
    }
  }
  close(lfd);
  atomic_store(&stop_seen_ms, mono_ms());
  kh_log("stopping: draining %d connections", atomic_load(&nconns));
  /* connections notice `stopping` between requests, within POLL_TICK_MS;
  ** a long poll returns early; an in-flight request completes */
  for (int i = 0; i < 600 && atomic_load(&nconns) > 0; i++) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (atomic_load(&nconns) > 0) {
    kh_log("%d connections still busy after 30 s; exiting without closing the store",
           atomic_load(&nconns));
    takhin_flush(ctx.store, 1);
    return 1;
  }
  rc = takhin_close(ctx.store);
  kh_log("stopped%s", rc ? " (close reported an error)" : "");
  return rc ? 1 : 0;
}
