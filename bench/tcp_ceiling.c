/*
** tcp_ceiling.c -- takhin-tcp-ceiling: what a fetch over loopback TCP can
** cost at best, to judge the kafka path's SequentialFetch against.
**
** It moves the bytes of SequentialFetch (messages records of size bytes,
** each framed by a 4-byte length and an 8-byte key, fewer bytes than
** Kafka's batches carry) from a server process to a client process through
** one loopback TCP connection, in responses of at most -chunk bytes (the
** kafka reader's fetch.message.max.bytes), with no Kafka protocol:
**   server  a forked child; the log lies in a mapping; each 12-byte request
**           (offset, max bytes) is answered with a 4-byte length and the
**           whole records in range, in one sendmsg from the mapping, as
**           takhin-server sends a Fetch;
**   client  one thread; per op it reads the whole log from offset 0: it
**           receives a response whole into a buffer (as librdkafka does),
**           sends the next request before walking this one (so the server
**           sends while the client works), and hands every key and value to
**           a sink that counts them and touches their last bytes (bench's
**           bp_sink).
** That is two copies per byte (mapping -> socket, socket -> buffer) and
** nothing else: no per-message allocation, no thread handoff, no CRC, no
** decoding. A Kafka client on the same socket cannot do better, so
** api/tcp-ceiling bounds what kafka/api can reach on this machine.
**
** Output: one benchstat-style line per run, named like the bench's case with
** the path "tcp-ceiling"; usr/sys-ns/op are the client's, srv-usr/srv-sys the
** server's (the bench's kafka line shows only its own process: takhin-server
** runs apart).
**   takhin-tcp-ceiling [-messages N] [-size B] [-chunk BYTES] [-time MS] [-count N]
*/
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 8
#define REC_HDR 4

typedef struct req {
  uint64_t offset; /* byte offset into the log; UINT64_MAX: report CPU */
  uint32_t max;
} __attribute__((packed)) req;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(const struct timeval *tv) {
  return (uint64_t)tv->tv_sec * 1000000000ull + (uint64_t)tv->tv_usec * 1000ull;
}

static int read_full(int fd, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, (char *)p + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const struct iovec *iov0, int n) {
  struct iovec iov[2];
  memcpy(iov, iov0, (size_t)n * sizeof *iov);
  struct iovec *v = iov;
  while (n > 0) {
    struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)n};
    ssize_t s = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (s < 0 && errno == EINTR) continue;
    if (s <= 0) return -1;
    size_t left = (size_t)s;
    while (n > 0 && left >= v->iov_len) left -= v->iov_len, v++, n--;
    if (n > 0) v->iov_base = (char *)v->iov_base + left, v->iov_len -= left;
  }
  return 0;
}

/* The server: answer requests until the client hangs up. */
static void serve(int fd, const uint8_t *log, size_t log_len, size_t rec) {
  req q;
  while (read_full(fd, &q, sizeof q) == 0) {
    if (q.offset == UINT64_MAX) { /* the client asks for this process's CPU */
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      uint64_t t[2] = {cpu_ns(&ru.ru_utime), cpu_ns(&ru.ru_stime)};
      struct iovec v = {t, sizeof t};
      if (write_full(fd, &v, 1)) break;
      continue;
    }
    size_t off = q.offset < log_len ? (size_t)q.offset : log_len;
    size_t len = log_len - off < q.max ? log_len - off : q.max;
    len -= len % rec;                         /* whole records only */
    if (len == 0 && off < log_len) len = rec; /* the first record always goes whole */
    uint32_t hdr = (uint32_t)len;
    struct iovec v[2] = {{&hdr, sizeof hdr}, {(void *)(log + off), len}};
    if (write_full(fd, v, 2)) break;
  }
}

static int ask(int fd, uint64_t off, uint32_t max) {
  req q = {off, max};
  struct iovec v = {&q, sizeof q};
  return write_full(fd, &v, 1);
}

typedef struct sink {
  uint64_t msgs, bytes, check;
} sink;

/* One op: the whole log from offset 0, the next request sent before the
** current response is walked. */
static int one_op(int fd, uint8_t *bufs[2], size_t chunk, size_t log_len, sink *s) {
  size_t off = 0;
  int cur = 0;
  if (ask(fd, 0, (uint32_t)chunk)) return -1;
  while (off < log_len) {
    uint32_t len;
    if (read_full(fd, &len, sizeof len) || len == 0 || len > chunk || read_full(fd, bufs[cur], len))
      return -1;
    size_t next = off + len;
    if (next < log_len && ask(fd, next, (uint32_t)chunk)) return -1;
    for (const uint8_t *p = bufs[cur], *e = p + len; p + REC_HDR <= e;) {
      uint32_t n;
      memcpy(&n, p, sizeof n);
      if (n < KEY_LEN || n > (size_t)(e - p) - REC_HDR) return -1; /* a record past the response */
      const uint8_t *key = p + REC_HDR, *val = key + KEY_LEN;
      size_t vlen = n - KEY_LEN;
      s->msgs++;
      s->bytes += KEY_LEN + vlen;
      s->check += key[0] + (vlen ? val[vlen - 1] : 0);
      p += REC_HDR + n;
    }
    off = next;
    cur ^= 1;
  }
  return 0;
}

static int server_cpu(int fd, uint64_t t[2]) {
  return ask(fd, UINT64_MAX, 0) || read_full(fd, t, 2 * sizeof *t);
}

int main(int argc, char **argv) {
  long messages = 1000, size = 1024, chunk = 4194304, time_ms = 1000, count = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    long v = atol(argv[i + 1]);
    if (!strcmp(argv[i], "-messages")) messages = v;
    else if (!strcmp(argv[i], "-size")) size = v;
    else if (!strcmp(argv[i], "-chunk")) chunk = v;
    else if (!strcmp(argv[i], "-time")) time_ms = v;
    else if (!strcmp(argv[i], "-count")) count = v;
    else {
      fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (argc % 2 == 0 || messages < 1 || size < 1 || time_ms < 1 || count < 1 ||
      chunk < REC_HDR + KEY_LEN + size || chunk > (1L << 30)) {
    fprintf(stderr, "usage: takhin-tcp-ceiling [-messages N] [-size B] [-chunk BYTES >= a record] "
                    "[-time MS] [-count N]\n");
    return 2;
  }
  size_t rec = REC_HDR + KEY_LEN + (size_t)size, log_len = rec * (size_t)messages;
  uint8_t *log = mmap(NULL, log_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint8_t *bufs[2] = {malloc((size_t)chunk), malloc((size_t)chunk)};
  if (log == MAP_FAILED || !bufs[0] || !bufs[1]) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  uint64_t seed = 1;
  for (size_t m = 0; m < (size_t)messages; m++) {
    uint8_t *p = log + m * rec;
    uint32_t n = (uint32_t)(KEY_LEN + size);
    memcpy(p, &n, sizeof n);
    for (size_t k = REC_HDR; k < rec; k++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      p[k] = (uint8_t)(seed >> 56);
    }
  }
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1) ||
      getsockname(lfd, (struct sockaddr *)&a, &al)) {
    perror("listen");
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) _exit(1);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve(fd, log, log_len, rec);
    _exit(0);
  }
  close(lfd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (pid < 0 || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    perror("connect");
    return 1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = 0;
  sink s = {0};
  if (one_op(fd, bufs, (size_t)chunk, log_len, &s)) rc = 1; /* warm-up */
  for (long c = 0; c < count && !rc; c++) {
    struct rusage r0, r1;
    uint64_t s0[2], s1[2];
    memset(&s, 0, sizeof s);
    if (server_cpu(fd, s0)) rc = 1;
    getrusage(RUSAGE_SELF, &r0);
    uint64_t t0 = now_ns(), t1 = t0;
    long ops = 0;
    while (!rc && t1 - t0 < (uint64_t)time_ms * 1000000ull) {
      if (one_op(fd, bufs, (size_t)chunk, log_len, &s)) rc = 1;
      ops++;
      t1 = now_ns();
    }
    getrusage(RUSAGE_SELF, &r1);
    if (rc || server_cpu(fd, s1)) {
      rc = 1;
      break;
    }
    if (s.msgs != (uint64_t)ops * (uint64_t)messages ||
        s.bytes != (uint64_t)ops * (uint64_t)messages * (uint64_t)(KEY_LEN + size)) {
      fprintf(stderr, "read %llu records, expected %llu\n", (unsigned long long)s.msgs,
              (unsigned long long)ops * (unsigned long long)messages);
      rc = 1;
      break;
    }
    double ns = (double)(t1 - t0) / (double)ops;
    printf("BenchmarkSequentialFetch/messages=%ld/size=%ldB/chunk=%ld/tcp-ceiling\t%8ld\t%12.0f "
           "ns/op\t%8.2f MB/s\t%.0f usr-ns/op\t%.0f sys-ns/op\t%.0f srv-usr-ns/op\t%.0f "
           "srv-sys-ns/op\n",
           messages, size, chunk, ops, ns, (double)messages * (double)size / ns * 1e3,
           (double)(cpu_ns(&r1.ru_utime) - cpu_ns(&r0.ru_utime)) / (double)ops,
           (double)(cpu_ns(&r1.ru_stime) - cpu_ns(&r0.ru_stime)) / (double)ops,
           (double)(s1[0] - s0[0]) / (double)ops, (double)(s1[1] - s0[1]) / (double)ops);
    fflush(stdout);
  }
  if (rc) fprintf(stderr, "takhin-tcp-ceiling: the loopback transfer failed\n");
  close(fd);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  free(bufs[0]);
  free(bufs[1]);
  munmap(log, log_len);
  return rc;
}
