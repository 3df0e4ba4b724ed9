/*
** payload.c -- the messages benchmarks write, the untimed pre-fill of fetch
** benchmarks, and directory helpers.
**
** A message of size S carries S payload bytes: a 16-byte decimal key plus
** S-16 value bytes. Values are windows into one 128 KiB block of random bytes
** (random so that no layer can gain from compressible data), each record at a
** different start, so the pool stays small (1024 records x 10 KiB would be
** 10 MB of distinct buffers) while neighbouring records still differ.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define RANDOM_BLOCK (128u * 1024u)
#define POOL_MIN 1024u

int payload_pool_init(payload_pool *p, size_t size, size_t batch, uint64_t seed) {
  memset(p, 0, sizeof *p);
  if (size < PAYLOAD_KEY_LEN || size - PAYLOAD_KEY_LEN > RANDOM_BLOCK / 2 || batch == 0) {
    bench_errorf("payload size %zu / batch %zu not supported", size, batch);
    return -1;
  }
  /* A whole number of batches, at least POOL_MIN records. */
  size_t n = ((POOL_MIN + batch - 1) / batch) * batch;
  p->recs = calloc(n, sizeof *p->recs);
  p->keys = malloc(n * (PAYLOAD_KEY_LEN + 1));
  p->random = malloc(RANDOM_BLOCK);
  if (!p->recs || !p->keys || !p->random) {
    payload_pool_free(p);
    bench_errorf("out of memory for the payload pool");
    return -1;
  }
  for (size_t i = 0; i < RANDOM_BLOCK; i += 8) {
    uint64_t r = rng_next(&seed);
    memcpy(p->random + i, &r, 8);
  }
  size_t vlen = size - PAYLOAD_KEY_LEN;
  for (size_t i = 0; i < n; i++) {
    unsigned char *k = p->keys + i * (PAYLOAD_KEY_LEN + 1);
    snprintf((char *)k, PAYLOAD_KEY_LEN + 1, "%016llu",
             (unsigned long long)(i % 10000000000000000ull));
    p->recs[i].key = k;
    p->recs[i].key_len = PAYLOAD_KEY_LEN;
    /* 4093 is prime: starts spread over the first half of the block. */
    p->recs[i].value = p->random + (i * 4093u) % (RANDOM_BLOCK / 2);
    p->recs[i].value_len = vlen;
    p->recs[i].timestamp = TAKHIN_TIMESTAMP_NOW;
  }
  p->n = n;
  p->size = size;
  p->batch = batch;
  return 0;
}

void payload_pool_free(payload_pool *p) {
  free(p->recs);
  free(p->keys);
  free(p->random);
  memset(p, 0, sizeof *p);
}

int prefill(const bench_path *path, bp_store *st, int32_t part, const payload_pool *pool,
            int64_t messages) {
  int64_t done = 0;
  uint64_t i = 0;
  while (done < messages) {
    const takhin_record *recs = payload_batch(pool, i++);
    size_t n = pool->batch;
    if ((int64_t)n > messages - done) n = (size_t)(messages - done);
    if (path->produce(st, part, recs, n, NULL) != 0) return -1;
    done += (int64_t)n;
  }
  return path->flush(st);
}

int fs_mkdir_p(const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return -1;
  for (char *s = tmp + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(p) : unlink(p)) == 0 || errno == ENOENT ? 0 : -1;
}

int fs_rm_rf(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
  return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static int drop_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag != FTW_F || !S_ISREG(sb->st_mode)) return 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  /* Dirty pages cannot be dropped: write them back first. */
  int rc = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 ? 0 : -1;
  close(fd);
  return rc;
}

int bench_drop_cache(const char *dir) {
  if (nftw(dir, drop_one, 32, FTW_PHYS) != 0) {
    bench_errorf("cannot drop the page cache of %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory stream's own descriptor */
}
