/*
** topic_meta.c -- the topic metadata file kept beside each partition's data,
** "<topic>-<n>/topic.meta", as Kafka keeps partition.metadata: with it the
** data folder alone says which topic, incarnation and config its segment
** files belong to, so a lost, empty, damaged or older catalog is rebuilt
** from the files (reconcile.c) instead of costing data.
**
** Format, version 1. ASCII text, every line ended by one LF (0x0A), no CR,
** no blank lines, no comments. Each line is a key, one space (0x20) and a
** value; the keys appear exactly once each and in exactly this order:
**
**   takhin-topic-meta 1          magic and format version
**   name <topic>                 the topic name (Kafka's rule, [a-zA-Z0-9._-])
**   topic_id <int64>             the catalog's topic_id when it was written
**   created_ms <int64>           creation time; with name and topic_id it
**                                names one incarnation of the topic
**   epoch <int64>                +1 at every alter_config / add_partitions:
**                                among a topic's files the highest is newest
**   partitions <int32>           the topic's partition count
**   partition <int32>            this folder's partition (matches its name)
**   log_start <int64>            this partition's log start offset
**   key_from <int64>             compacted topics: first key-indexed offset
**   cleanup_policy <v>           delete | compact | compact,delete
**   compression <v>              none | zstd
**   segment_bytes <int64>        and the other configs, under the names and
**   segment_ms <int64>           with the ranges of tk_config_apply
**   retention_bytes <int64>
**   retention_ms <int64>
**   max_message_bytes <int64>
**   delete_retention_ms <int64>
**   min_compaction_lag_ms <int64>
**   min_cleanable_dirty_ratio <double, printf %.17g>
**   end                          (no value) the file is complete
**
** Integers are plain decimal ("-" for negatives, no "+", no spaces). A file
** that breaks any of this is "unreadable": recovery then trusts the catalog
** and writes the file again. The file is at most TK_META_MAX bytes.
**
** Written atomically: "topic.meta.tmp" is written, fsynced, renamed over
** topic.meta, and the folder fsynced. A crash leaves the old file or the new
** one; a stray .tmp is removed with the other temporary files when the
** partition loads. Callers hold the partition's append_lock (or own it),
** which is what orders two writers of the same file.
**
** When it is written: at topic create (each new folder), alter_config (all
** partitions, before the catalog: the file is the intent), add_partitions
** (old ones before the catalog, new ones with their folders), when a
** partition's log start moves (DeleteRecords, retention; before the catalog
** commit), and on open wherever the file is missing or differs from what
** recovery settled on. The rules recovery applies when file and catalog
** disagree are in reconcile.c.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "partition.h"
#include "store.h"
#include "topic.h"

#define TK_META_MAX 4096

/* The config lines are topic_config.h's table, in its order: a new key
** there is a new line here (and a new version of this file's format). */
#define NCFG TK_NCONFIGS
#define cfg_key(i) (tk_config_defs[i].key)

/* The file's bytes for m into buf; returns the length (or -1 if too long). */
static int format_meta(const tk_meta *m, char *buf, size_t cap) {
  const tk_topic_config *c = &m->cfg;
  int n = snprintf(buf, cap,
                   "takhin-topic-meta 1\n"
                   "name %s\n"
                   "topic_id %" PRId64 "\n"
                   "created_ms %" PRId64 "\n"
                   "epoch %" PRId64 "\n"
                   "partitions %d\n"
                   "partition %d\n"
                   "log_start %" PRId64 "\n"
                   "key_from %" PRId64 "\n",
                   m->name, m->topic_id, m->created_ms, m->epoch, (int)m->partitions,
                   (int)m->partition, m->log_start, m->key_from);
  for (int i = 0; i < NCFG && n >= 0 && (size_t)n < cap; i++) {
    char v[64];
    tk_config_format(c, &tk_config_defs[i], v, sizeof v);
    n += snprintf(buf + n, cap - (size_t)n, "%s %s\n", cfg_key(i), v);
  }
  if (n >= 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, "end\n");
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

int tk_meta_write(const char *dir, const tk_meta *m) {
  char buf[TK_META_MAX], tmp[TK_PATH_MAX], path[TK_PATH_MAX];
  int len = format_meta(m, buf, sizeof buf);
  if (len < 0) return tk_err(TAKHIN_EINVAL, "topic metadata of \"%s\" is too long", m->name);
  snprintf(tmp, sizeof tmp, "%s/" TK_META_FILE ".tmp", dir);
  snprintf(path, sizeof path, "%s/" TK_META_FILE, dir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return tk_err_sys(errno, "create", tmp);
  int rc = TAKHIN_OK;
  for (int done = 0; done < len && !rc;) {
    ssize_t w = write(fd, buf + done, (size_t)(len - done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = tk_err_sys(w < 0 ? errno : ENOSPC, "write", tmp);
    else done += (int)w;
  }
  if (!rc && fsync(fd) != 0) rc = tk_err_sys(errno, "fsync", tmp);
  if (close(fd) != 0 && !rc) rc = tk_err_sys(errno, "close", tmp);
  if (!rc && rename(tmp, path) != 0) rc = tk_err_sys(errno, "rename", tmp);
  if (rc) {
    unlink(tmp); /* the old file, if any, stays as it was */
    return rc;
  }
  return tk_sync_dir(dir);
}

/* Next line of the file as key and value: the key must be `key`. NULL when
** the line is missing, unterminated or has another key. */
static const char *expect_line(char **cur, const char *key) {
  char *line = *cur, *nl = strchr(line, '\n');
  if (!nl) return NULL;
  *nl = 0;
  *cur = nl + 1;
  size_t kl = strlen(key);
  if (strncmp(line, key, kl)) return NULL;
  if (line[kl] == 0) return line + kl; /* a key without a value ("end") */
  if (line[kl] != ' ') return NULL;
  return line + kl + 1;
}

static int parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out) {
  if (!v || !*v || (*v != '-' && (*v < '0' || *v > '9'))) return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (*end || errno || x < lo || x > hi) return 0;
  *out = x;
  return 1;
}

int tk_meta_read(const char *dir, tk_meta *m) {
  char path[TK_PATH_MAX], buf[TK_META_MAX + 1];
  snprintf(path, sizeof path, "%s/" TK_META_FILE, dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return TAKHIN_ENOTFOUND;
    return tk_err_sys(errno, "open", path);
  }
  ssize_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof buf - 1 - (size_t)len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return tk_err_sys(e, "read", path);
    }
    if (r == 0 || (len += r) == (ssize_t)sizeof buf - 1) break;
  }
  close(fd);
  if (len >= (ssize_t)sizeof buf - 1)
    return tk_err(TAKHIN_EFORMAT, "%s is larger than %d bytes: not a topic metadata file", path,
                  TK_META_MAX);
  buf[len] = 0;
  if (memchr(buf, 0, (size_t)len))
    return tk_err(TAKHIN_EFORMAT, "%s holds NUL bytes: not a topic metadata file", path);
  memset(m, 0, sizeof *m);
  char *cur = buf;
  const char *v;
  int64_t x;
  const char *bad = NULL;
#define NEED(key)                                                                                  \
  if (!bad && !(v = expect_line(&cur, key))) bad = key
  NEED("takhin-topic-meta");
  if (!bad && strcmp(v, "1")) bad = "takhin-topic-meta (version)";
  NEED("name");
  if (!bad && (strlen(v) > TK_MAX_TOPIC_NAME || tk_topic_name_check(v))) bad = "name";
  if (!bad) snprintf(m->name, sizeof m->name, "%s", v);
#define INT(key, lo, hi, dst)                                                                      \
  NEED(key);                                                                                       \
  if (!bad) {                                                                                      \
    if (parse_int(v, lo, hi, &x)) dst = x;                                                         \
    else bad = key;                                                                                \
  }
  INT("topic_id", 1, INT64_MAX, m->topic_id);
  INT("created_ms", INT64_MIN, INT64_MAX, m->created_ms);
  INT("epoch", 0, INT64_MAX, m->epoch);
  INT("partitions", 1, TK_MAX_PARTITIONS, m->partitions);
  INT("partition", 0, TK_MAX_PARTITIONS - 1, m->partition);
  INT("log_start", 0, INT64_MAX, m->log_start);
  INT("key_from", 0, INT64_MAX, m->key_from);
#undef INT
  char vals[NCFG][64];
  const char *kv[2 * NCFG + 1];
  for (int i = 0; i < NCFG && !bad; i++) {
    NEED(cfg_key(i));
    if (bad) break;
    if (strlen(v) >= sizeof vals[i]) {
      bad = cfg_key(i);
      break;
    }
    snprintf(vals[i], sizeof vals[i], "%s", v);
    kv[2 * i] = cfg_key(i);
    kv[2 * i + 1] = vals[i];
  }
  kv[2 * NCFG] = NULL;
  NEED("end");
  if (!bad && (*v || *cur)) bad = "end (data after it)";
#undef NEED
  if (bad) return tk_err(TAKHIN_EFORMAT, "%s: line \"%s\" is missing or malformed", path, bad);
  if (m->partition >= m->partitions)
    return tk_err(TAKHIN_EFORMAT, "%s: partition %d is not below partitions %d", path,
                  (int)m->partition, (int)m->partitions);
  tk_config_defaults(&m->cfg);
  if (tk_config_apply(&m->cfg, kv)) {
    char why[256]; /* tk_err writes the buffer takhin_errmsg() reads: copy first */
    snprintf(why, sizeof why, "%s", takhin_errmsg());
    return tk_err(TAKHIN_EFORMAT, "%s: %s", path, why);
  }
  return TAKHIN_OK;
}

int tk_meta_same(const tk_meta *a, const tk_meta *b) {
  char x[TK_META_MAX], y[TK_META_MAX];
  int lx = format_meta(a, x, sizeof x), ly = format_meta(b, y, sizeof y);
  return lx >= 0 && lx == ly && !memcmp(x, y, (size_t)lx);
}

void tk_meta_of(const tk_partition *p, tk_meta *m) {
  const tk_topic *t = p->topic;
  memset(m, 0, sizeof *m);
  snprintf(m->name, sizeof m->name, "%s", t->name);
  m->topic_id = t->topic_id;
  m->created_ms = t->created_ms;
  m->epoch = t->meta_epoch;
  m->partitions = t->nparts;
  m->partition = p->id;
  m->log_start = p->log_start;
  m->key_from = p->key_from;
  m->cfg = t->cfg;
}

int tk_meta_write_part(tk_partition *p) {
  tk_meta m;
  tk_meta_of(p, &m);
  return tk_meta_write(p->dir, &m);
}
