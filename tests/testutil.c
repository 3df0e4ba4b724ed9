/*
** testutil.c -- see testutil.h.
*/
#include "testutil.h"

#include "index_run.h" /* the store's own decoding of a run */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void tu_remove_catalog(const char *db) {
  char p[4200];
  unlink(db);
  snprintf(p, sizeof p, "%s-wal", db);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", db);
  unlink(p);
}

void tu_rmtree(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) { /* best effort */
  }
}

const char *tu_store_path(const char *test_name) {
  static char path[4096];
  const char *root = getenv("TAKHIN_TEST_TMP");
  if (!root || !*root) root = "/tmp/takhin-test";
  char dir[4000];
  snprintf(dir, sizeof dir, "%s/%s-%d", root, test_name, (int)getpid());
  tu_rmtree(dir);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd) != 0) return NULL;
  snprintf(path, sizeof path, "%s/store.db", dir);
  return path;
}

void tu_segment_path(char *out, size_t cap, const char *db, const char *topic, int partition,
                     int64_t base) {
  snprintf(out, cap, "%s-takhin/%s-%d/%020lld.log", db, topic, partition, (long long)base);
}

int64_t tu_file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (int64_t)st.st_size;
}

static char pattern_byte(long i, size_t j) { return (char)('a' + (char)((i * 7 + (long)j) % 26)); }

void tu_make_record(takhin_record *r, char *kbuf, size_t kcap, char *vbuf, size_t vlen, long i) {
  memset(r, 0, sizeof *r);
  int kl = snprintf(kbuf, kcap, "k%ld", i);
  for (size_t j = 0; j < vlen; j++) vbuf[j] = pattern_byte(i, j);
  r->key = kbuf;
  r->key_len = (size_t)kl;
  r->value = vbuf;
  r->value_len = vlen;
  r->timestamp = 1700000000000LL + i;
}

int tu_value_ok(const void *v, size_t len, size_t vlen, long i) {
  if (len != vlen || (vlen && !v)) return 0;
  const char *c = v;
  for (size_t j = 0; j < vlen; j++)
    if (c[j] != pattern_byte(i, j)) return 0;
  return 1;
}

static char tu_err[2300];

__attribute__((format(printf, 1, 2))) static int tu_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tu_err, sizeof tu_err, fmt, ap);
  va_end(ap);
  return -1;
}

const char *tu_error(void) { return tu_err; }

/* ---- the catalog's sparse index ------------------------------------------ */

/* Append a segment's loaded entries e[0, ne) to the rows (*out, *n, *cap). */
static int add_entries(tu_index_row **out, size_t *n, size_t *cap, int64_t topic_id,
                       int32_t partition, int64_t seg_base, const tk_index_entry *e, size_t ne) {
  if (*n + ne > *cap) {
    size_t c = *cap ? *cap : 64;
    while (c < *n + ne) c *= 2;
    tu_index_row *v = realloc(*out, c * sizeof *v);
    if (!v) return tu_fail("out of memory for %zu index entries", *n + ne);
    *out = v;
    *cap = c;
  }
  for (size_t i = 0; i < ne; i++)
    (*out)[(*n)++] =
        (tu_index_row){topic_id, partition, seg_base, e[i].offset, e[i].position, e[i].max_ts};
  return 0;
}

int tu_cat_index_rows(sqlite3 *c, int64_t topic_id, int32_t partition, int64_t seg_base,
                      tu_index_row **rows, size_t *n) {
  *rows = NULL;
  *n = 0;
  static const char q[] =
      "SELECT topic_id, partition, segment_base, first_offset, entries FROM takhin_cat_index_run "
      "WHERE (?1 < 0 OR topic_id = ?1) AND (?2 < 0 OR partition = ?2) AND "
      "(?3 < 0 OR segment_base = ?3) ORDER BY topic_id, partition, segment_base, first_offset";
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c, q, -1, &st, NULL) != SQLITE_OK)
    return tu_fail("reading the index runs: %s", sqlite3_errmsg(c));
  sqlite3_bind_int64(st, 1, topic_id);
  sqlite3_bind_int(st, 2, partition);
  sqlite3_bind_int64(st, 3, seg_base);
  tu_index_row *out = NULL;
  size_t nout = 0, cap = 0;
  tk_index_entry *e = NULL; /* the current segment's entries so far */
  size_t ne = 0, ecap = 0;
  int64_t cur_t = 0, cur_g = 0;
  int32_t cur_p = 0;
  int have = 0, damaged = 0, rc = 0, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t t = sqlite3_column_int64(st, 0), g = sqlite3_column_int64(st, 2);
    int32_t p = sqlite3_column_int(st, 1);
    if (!have || t != cur_t || p != cur_p || g != cur_g) {
      if (have && (rc = add_entries(&out, &nout, &cap, cur_t, cur_p, cur_g, e, ne))) break;
      have = 1, damaged = 0, ne = 0;
      cur_t = t, cur_p = p, cur_g = g;
    }
    if (damaged) continue; /* the store stops reading this segment's runs there */
    const void *blob = sqlite3_column_blob(st, 4);
    int len = sqlite3_column_bytes(st, 4);
    int m = tk_index_run_merge(&e, &ne, &ecap, sqlite3_column_int64(st, 3), blob,
                               len > 0 ? (size_t)len : 0);
    if (m == TAKHIN_ECORRUPT) damaged = 1;
    else if (m) {
      rc = tu_fail("decoding an index run: %s", takhin_errmsg());
      break;
    }
  }
  if (!rc && step != SQLITE_DONE) rc = tu_fail("reading the index runs: %s", sqlite3_errmsg(c));
  if (!rc && have) rc = add_entries(&out, &nout, &cap, cur_t, cur_p, cur_g, e, ne);
  sqlite3_finalize(st);
  free(e);
  if (rc) {
    free(out);
    return rc;
  }
  *rows = out;
  *n = nout;
  return 0;
}

int64_t tu_cat_index_count(sqlite3 *c, int64_t topic_id, int32_t partition, int64_t seg_base) {
  tu_index_row *r;
  size_t n;
  if (tu_cat_index_rows(c, topic_id, partition, seg_base, &r, &n)) return -1;
  free(r);
  return (int64_t)n;
}

/* ---- files and bytes ----------------------------------------------------- */

void *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    tu_fail("open %s: %s", path, strerror(errno));
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!p) {
    fclose(f);
    tu_fail("cannot size or buffer %s", path);
    return NULL;
  }
  if (fread(p, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(p);
    tu_fail("short read of %s", path);
    return NULL;
  }
  fclose(f);
  p[n] = 0;
  if (len) *len = (size_t)n;
  return p;
}

int tu_flip(const char *path, int64_t pos, uint8_t mask) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return tu_fail("open %s: %s", path, strerror(errno));
  uint8_t b;
  int ok = pread(fd, &b, 1, pos) == 1;
  b ^= mask;
  ok = ok && pwrite(fd, &b, 1, pos) == 1;
  close(fd);
  return ok ? 0 : tu_fail("flip byte %lld of %s: %s", (long long)pos, path, strerror(errno));
}

int tu_path_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

int tu_dir_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void tu_dir_of(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  char *slash = strrchr(out, '/');
  if (slash) *slash = 0;
}

uint64_t tu_get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

void tu_put_be(uint8_t *p, int n, uint64_t v) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- snapshots of a store folder ----------------------------------------- */

static int read_whole(const char *path, uint8_t **out, size_t *len) {
  *out = tu_read_file(path, len);
  return *out ? 0 : -1;
}

static int snap_walk(tu_snap *sn, const char *rel) {
  char path[2048];
  snprintf(path, sizeof path, "%s%s%s", sn->root, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  if (!d) return tu_fail("opendir %s: %s", path, strerror(errno));
  struct dirent *e;
  int rc = 0;
  while (!rc && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (sn->n == sn->cap) {
      size_t cap = sn->cap ? sn->cap * 2 : 16;
      tu_snap_ent *v = realloc(sn->v, cap * sizeof *v);
      if (!v) {
        rc = tu_fail("out of memory");
        break;
      }
      sn->v = v;
      sn->cap = cap;
    }
    tu_snap_ent *x = &sn->v[sn->n];
    memset(x, 0, sizeof *x);
    snprintf(x->rel, sizeof x->rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    char full[2048];
    snprintf(full, sizeof full, "%s/%s", sn->root, x->rel);
    struct stat st;
    if (lstat(full, &st) != 0) {
      rc = tu_fail("lstat %s: %s", full, strerror(errno));
      break;
    }
    sn->n++;
    if (S_ISDIR(st.st_mode)) {
      x->is_dir = 1;
      char sub[512];
      snprintf(sub, sizeof sub, "%s", x->rel); /* x may move when v grows */
      rc = snap_walk(sn, sub);
    } else {
      rc = read_whole(full, &x->data, &x->len);
    }
  }
  closedir(d);
  return rc;
}

int tu_snap_take(tu_snap *sn, const char *root) {
  memset(sn, 0, sizeof *sn);
  snprintf(sn->root, sizeof sn->root, "%s", root);
  return snap_walk(sn, "");
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

int tu_snap_restore(const tu_snap *sn) {
  struct stat st;
  if (lstat(sn->root, &st) == 0 && nftw(sn->root, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    return tu_fail("remove %s: %s", sn->root, strerror(errno));
  if (mkdir(sn->root, 0755) != 0) return tu_fail("mkdir %s: %s", sn->root, strerror(errno));
  for (size_t i = 0; i < sn->n; i++) {
    char full[2048];
    snprintf(full, sizeof full, "%s/%s", sn->root, sn->v[i].rel);
    if (sn->v[i].is_dir) {
      if (mkdir(full, 0755) != 0) return tu_fail("mkdir %s: %s", full, strerror(errno));
      continue;
    }
    FILE *f = fopen(full, "wb");
    if (!f) return tu_fail("open %s: %s", full, strerror(errno));
    size_t w = fwrite(sn->v[i].data, 1, sn->v[i].len, f);
    if (fclose(f) != 0 || w != sn->v[i].len) return tu_fail("write %s: %s", full, strerror(errno));
  }
  return 0;
}

void tu_snap_free(tu_snap *sn) {
  for (size_t i = 0; i < sn->n; i++) free(sn->v[i].data);
  free(sn->v);
  memset(sn, 0, sizeof *sn);
}

/* ---- a small full-able file system ---------------------------------------- */

int tu_mount_small_fs(const char *name, const char *size, char *dir, size_t cap) {
  const char *db0 = tu_store_path(name);
  snprintf(dir, cap, "%.*s/fs", (int)(strlen(db0) - strlen("/store.db")), db0);
  mkdir(dir, 0755);
  if (unshare(CLONE_NEWNS) != 0) return tu_fail("unshare: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    return tu_fail("make mounts private: %s", strerror(errno));
  char opts[64];
  snprintf(opts, sizeof opts, "size=%s", size);
  if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0)
    return tu_fail("mount tmpfs: %s", strerror(errno));
  return 0;
}

const char *tu_fill_disk(const char *dir) {
  static char filler[4300];
  snprintf(filler, sizeof filler, "%.4200s/filler", dir);
  int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    tu_fail("open %s: %s", filler, strerror(errno));
    return NULL;
  }
  static char block[64 << 10];
  memset(block, 'f', sizeof block);
  for (size_t bs = sizeof block; bs > 0; bs /= 2) /* to the last byte */
    while (write(fd, block, bs) == (ssize_t)bs) {}
  close(fd);
  return filler;
}
