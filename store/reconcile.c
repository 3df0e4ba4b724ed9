/*
** reconcile.c -- on a writer's open, before the topics load: make the
** catalog agree with the data folder, never the other way round. Nothing on
** disk is removed because the catalog does not know it; the only folders
** removed are those a topic delete marked ("<topic>-<n>.<id>-delete") and
** those a DROP TABLE's committed COMMIT marked ("<topic>-<n>.<id>-drop").
**
** What is read: every entry of the data folder, each partition folder's
** topic.meta (format: topic_meta.c) and the catalog's topic rows.
**
**  0. "-drop" marks (topic_drop.c): a DROP TABLE whose COMMIT a crash cut
**     short. The catalog still holds the topic: the COMMIT never happened,
**     the folder is renamed back. It does not: the folder is removed.
**  1. Marked folders: a delete a crash cut short. Its catalog rows go if the
**     catalog still holds that incarnation (name, topic_id, created_ms from
**     the marked folder's topic.meta), and so do the unmarked folders whose
**     topic.meta names the same incarnation; then the marked folders.
**  2. Partition folders "<topic>-<n>", grouped by topic name. The rules:
**     - Incarnation: the catalog row and the metadata files each name one
**       (name, topic_id, created_ms); the one most folders' files name wins,
**       on a tie the catalog's, then the newest created_ms. A catalog row no
**       file names loses to any the files name (an older backup: the topic
**       was deleted and created again since) and its rows are replaced.
**     - Partition count: the largest of the winning metadata file's, the
**       catalog's (same incarnation) and the highest folder of the winning
**       incarnation + 1: a partition is never hidden.
**     - Config, log start, key_from: the metadata files win (they are
**       written before the catalog at every change: they hold the intent);
**       among a topic's files the highest epoch wins. A missing or
**       unreadable file loses to the catalog and is written again.
**     - A topic the catalog lacks is inserted from its files, under the
**       files' topic_id when it is free; its key index is rebuilt from the
**       log after load (tk_key_catch_up from key_from).
**     - A folder of a losing incarnation inside the winner's partition range
**       would be read as the winner's: it is renamed "<name>.<ms>-stray" and
**       kept. A folder with no readable metadata and no topic to give it to
**       (or beyond its topic's partitions) is left as it is. Both are counted
**       in takhin_recovery_info.folders_kept.
**  3. Segment files the catalog has no row for (rows deleted by hand, an
**     older catalog, a rebuilt topic) get a row that makes the load validate
**     the whole file, unless they lie wholly below the log start
**     (retention's: the load finishes deleting them) or overlap a known
**     segment. The newest file, when past the last known segment, is left
**     to the load's own adoption (tk_part_load).
** tk_reconcile_finish then writes every metadata file that is missing or
** differs from what the store settled on, so file and catalog agree again.
*/
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "partition.h"
#include "store.h"
#include "topic.h"
#include "sqlite_compat.h"

typedef struct folder {
  char entry[256];                  /* its name in the data folder */
  char name[TK_MAX_TOPIC_NAME + 1]; /* topic part of "<topic>-<n>" */
  int32_t part;
  int has_meta; /* topic.meta read and it names this folder */
  tk_meta meta;
  int skip; /* removed, moved aside or left alone */
} folder;

typedef struct cat_topic {
  int64_t id, created_ms;
  char name[TK_MAX_TOPIC_NAME + 1];
  int32_t nparts;
  int cfg_ok;
  tk_topic_config cfg;
  int gone;
} cat_topic;

typedef struct ident {
  char name[TK_MAX_TOPIC_NAME + 1];
  int64_t id, created_ms;
  int created_known;
} ident;

typedef struct state {
  takhin_store *s;
  folder *f;
  size_t nf, capf;
  cat_topic *c;
  size_t nc, capc;
  char (*marked)[256];
  size_t nm, capm;
} state;

static int grow(void **v, size_t *cap, size_t n, size_t size) {
  if (tk_array_reserve(v, cap, n + 1, size, 16))
    return tk_err(TAKHIN_ENOMEM, "out of memory reconciling the catalog");
  return TAKHIN_OK;
}

/* "<topic>-<n>" with a valid topic name and partition: 1. */
static int parse_part_dir(const char *entry, char *name, int32_t *part) {
  size_t len = strlen(entry);
  if (len > TK_MAX_TOPIC_NAME + 7) return 0;
  const char *dash = strrchr(entry, '-');
  if (!dash || dash == entry || !dash[1] || (size_t)(dash - entry) > TK_MAX_TOPIC_NAME) return 0;
  int64_t n = 0;
  for (const char *q = dash + 1; *q; q++) {
    if (*q < '0' || *q > '9' || (q == dash + 1 && *q == '0' && q[1])) return 0;
    n = n * 10 + (*q - '0');
    if (n >= TK_MAX_PARTITIONS) return 0;
  }
  memcpy(name, entry, (size_t)(dash - entry));
  name[dash - entry] = 0;
  const char *ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
  if (strspn(name, ok) != strlen(name) || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
  *part = (int32_t)n;
  return 1;
}

static void marker(const takhin_store *s, const char *topic, int32_t part, int64_t id,
                   const char *kind, char *out, size_t cap) {
  char tail[64];
  int tl = snprintf(tail, sizeof tail, "-%d.%lld-%s", (int)part, (long long)id, kind);
  /* Kafka shortens the topic the same way: a folder name holds 255 bytes. */
  int room = 255 - tl, nl = (int)strlen(topic);
  snprintf(out, cap, "%s/%.*s%s", s->data_dir, nl < room ? nl : room, topic, tail);
}

void tk_delete_marker(const takhin_store *s, const char *topic, int32_t part, int64_t id, char *out,
                      size_t cap) {
  marker(s, topic, part, id, "delete", out, cap);
}

void tk_drop_marker(const takhin_store *s, const char *topic, int32_t part, int64_t id, char *out,
                    size_t cap) {
  marker(s, topic, part, id, "drop", out, cap);
}

/* ---- catalog access (cat_lock held) ------------------------------------ */

/* Named statements (sql/catalog.sql), prepared and given back through the
** catalog as everywhere else. */
static sqlite3_stmt *prep(takhin_store *s, int id) { return tk_cat_stmt(s, id); }

/* Run statement id with up to four integer parameters; no rows. */
static int run4(takhin_store *s, int id, int n, int64_t a, int64_t b, int64_t c, int64_t d) {
  sqlite3_stmt *st = prep(s, id);
  if (!st) return TAKHIN_ECATALOG;
  const int64_t v[4] = {a, b, c, d};
  for (int i = 0; i < n; i++) sqlite3_bind_int64(st, i + 1, v[i]);
  int rc = sqlite3_step(st) == SQLITE_DONE ? TAKHIN_OK : tk_cat_error(s, "reconcile");
  tk_cat_done(s, st);
  return rc;
}

int64_t tk_cat_topic_created(takhin_store *s, int64_t topic_id) {
  TK_ASSERT_HELD(&s->cat_lock);
  sqlite3_stmt *st = prep(s, TK_SQL_TOPIC_CREATED);
  int64_t v = 0;
  if (!st) return 0;
  sqlite3_bind_int64(st, 1, topic_id);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  tk_cat_done(s, st);
  return v;
}

static int read_catalog(state *z) {
  takhin_store *s = z->s;
  sqlite3_stmt *st = prep(s, TK_SQL_RECONCILE_TOPICS);
  if (!st) return TAKHIN_ECATALOG;
  int rc = TAKHIN_OK, step;
  while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    if (!name || strlen(name) > TK_MAX_TOPIC_NAME) continue; /* the load reports it */
    if ((rc = grow((void **)&z->c, &z->capc, z->nc, sizeof *z->c))) break;
    cat_topic *c = &z->c[z->nc++];
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    snprintf(c->name, sizeof c->name, "%s", name);
    int64_t np = sqlite3_column_int64(st, 2);
    c->nparts = np >= 1 && np <= TK_MAX_PARTITIONS ? (int32_t)np : 0;
    c->created_ms = sqlite3_column_int64(st, 3);
    c->cfg_ok = tk_config_from_row(st, 4, &c->cfg) == TAKHIN_OK;
  }
  if (!rc && step != SQLITE_DONE) rc = tk_cat_error(s, "reading topics (reconcile)");
  tk_cat_done(s, st);
  return rc;
}

static cat_topic *find_cat(state *z, const char *name) {
  for (size_t i = 0; i < z->nc; i++)
    if (!z->c[i].gone && !strcmp(z->c[i].name, name)) return &z->c[i];
  return NULL;
}

static int same_cfg(const tk_topic_config *a, const tk_topic_config *b) {
  return tk_config_same(a, b);
}

static int insert_topic(takhin_store *s, int64_t want_id, const char *name, int32_t nparts,
                        const tk_topic_config *cfg, int64_t created_ms, int64_t *id) {
  sqlite3_stmt *st = prep(s, TK_SQL_RECONCILE_INSERT_TOPIC);
  if (!st) return TAKHIN_ECATALOG;
  if (want_id > 0) sqlite3_bind_int64(st, 1, want_id);
  else sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, nparts);
  tk_config_bind(st, 4, cfg);
  sqlite3_bind_int64(st, 4 + TK_NCONFIGS, created_ms);
  int rc =
      sqlite3_step(st) == SQLITE_DONE ? TAKHIN_OK : tk_cat_error(s, "insert topic (reconcile)");
  tk_cat_done(s, st);
  if (!rc) *id = sqlite3_last_insert_rowid(tk_cat_db(s));
  return rc;
}

static int id_taken(takhin_store *s, int64_t id, int *taken) {
  sqlite3_stmt *st = prep(s, TK_SQL_TOPIC_EXISTS);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, id);
  int step = sqlite3_step(st);
  *taken = step == SQLITE_ROW;
  tk_cat_done(s, st);
  return step == SQLITE_ROW || step == SQLITE_DONE ? TAKHIN_OK : tk_cat_error(s, "reading a topic");
}

/* The partition row: 0 and *found = 0 when there is none. */
static int read_part(takhin_store *s, int64_t id, int32_t part, int *found, int64_t *log_start,
                     int64_t *key_from) {
  sqlite3_stmt *st = prep(s, TK_SQL_RECONCILE_PARTITION);
  if (!st) return TAKHIN_ECATALOG;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int(st, 2, part);
  int step = sqlite3_step(st);
  *found = step == SQLITE_ROW;
  *log_start = *found ? sqlite3_column_int64(st, 0) : 0;
  *key_from = *found ? sqlite3_column_int64(st, 1) : 0;
  tk_cat_done(s, st);
  return step == SQLITE_ROW || step == SQLITE_DONE ? TAKHIN_OK
                                                   : tk_cat_error(s, "reading a partition");
}

static int insert_part(takhin_store *s, int64_t id, int32_t part, int64_t log_start,
                       int64_t key_from) {
  int rc = run4(s, TK_SQL_RECONCILE_INSERT_PARTITION, 4, id, part, log_start, key_from);
  return rc ? rc : tk_cat_forget_dead(s, id, part); /* rows an older release left */
}

/* A key_from the files disagree with: the key index is rebuilt from the log
** at key_from (after load), never trusted across a gap. */
static int reset_keys(takhin_store *s, int64_t id, int32_t part, int64_t key_from) {
  int rc = run4(s, TK_SQL_WIPE_KEYS, 2, id, part, 0, 0);
  if (!rc) rc = run4(s, TK_SQL_RESET_KEY_STATE, 3, id, part, key_from, 0);
  /* the dead offsets with them: rebuilt with the keys, exact from key_from */
  if (!rc) rc = run4(s, TK_SQL_WIPE_DEAD, 2, id, part, 0, 0);
  if (!rc) rc = run4(s, TK_SQL_CLEAR_DEAD_FROM, 2, id, part, 0, 0);
  return rc;
}

/* ---- the data folder ----------------------------------------------------- */

/* "<topic>-<n>.<id><suffix>" (the topic part maybe shortened): the mark a
** delete ("-delete") or a DROP TABLE's COMMIT ("-drop") leaves, with its
** topic part, partition and topic_id. Anything less exact is not ours. */
static int parse_marker(const char *entry, const char *suffix, char *name, int32_t *part,
                        int64_t *id) {
  char buf[256];
  size_t len = strlen(entry), sl = strlen(suffix);
  if (len <= sl || len >= sizeof buf || strcmp(entry + len - sl, suffix)) return 0;
  memcpy(buf, entry, len - sl);
  buf[len - sl] = 0;
  char *dot = strrchr(buf, '.');
  if (!dot || !dot[1] || strlen(dot + 1) > 18 || strspn(dot + 1, "0123456789") != strlen(dot + 1))
    return 0;
  *id = strtoll(dot + 1, NULL, 10);
  *dot = 0;
  return parse_part_dir(buf, name, part);
}

static int is_marker(const char *entry) {
  char name[TK_MAX_TOPIC_NAME + 1];
  int32_t part;
  int64_t id;
  return parse_marker(entry, "-delete", name, &part, &id);
}

static int scan_data_dir(state *z) {
  takhin_store *s = z->s;
  DIR *d = opendir(s->data_dir);
  if (!d) return errno == ENOENT ? TAKHIN_OK : tk_err_sys(errno, "open directory", s->data_dir);
  struct dirent *e;
  int rc = TAKHIN_OK;
  while (!rc && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char path[TK_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->data_dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue; /* LOCK and other files */
    if (is_marker(e->d_name)) {
      if ((rc = grow((void **)&z->marked, &z->capm, z->nm, sizeof *z->marked))) break;
      snprintf(z->marked[z->nm++], sizeof *z->marked, "%s", e->d_name);
      continue;
    }
    folder f;
    memset(&f, 0, sizeof f);
    snprintf(f.entry, sizeof f.entry, "%s", e->d_name);
    if (!parse_part_dir(e->d_name, f.name, &f.part)) {
      s->recovery.folders_kept++; /* not ours to judge: left as it is */
      continue;
    }
    int mrc = tk_meta_read(path, &f.meta);
    f.has_meta = mrc == TAKHIN_OK && !strcmp(f.meta.name, f.name) && f.meta.partition == f.part;
    if ((rc = grow((void **)&z->f, &z->capf, z->nf, sizeof *z->f))) break;
    z->f[z->nf++] = f;
  }
  closedir(d);
  return rc;
}

static int cmp_folder(const void *a, const void *b) {
  const folder *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->part > y->part) - (x->part < y->part);
}

static void remove_folder(takhin_store *s, const char *entry) {
  char path[TK_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", s->data_dir, entry);
  tk_clear_dir(path, 1);
  s->recovery.folders_deleted++;
}

/* Step 0: the "-drop" marks of a DROP TABLE whose COMMIT a crash cut short
** (topic_drop.c): the catalog rows went inside that COMMIT, so the catalog
** tells whether it happened. Still holding the marked incarnation (topic_id,
** and name and created_ms from the folder's topic.meta): it did not, and the
** folder is renamed back, to be read as any partition folder below. Not
** holding it: it did, and the folder is removed -- unless the catalog was
** damaged and moved aside, which says nothing: then every mark goes back.
** Before the scan, so the scan sees the folders under their own names. */
static int settle_drops(state *z) {
  takhin_store *s = z->s;
  DIR *d = opendir(s->data_dir);
  if (!d) return errno == ENOENT ? TAKHIN_OK : tk_err_sys(errno, "open directory", s->data_dir);
  char(*v)[256] = NULL;
  size_t n = 0, cap = 0;
  int rc = TAKHIN_OK, restored = 0;
  struct dirent *e;
  while (!rc && (e = readdir(d))) { /* names first: no renames while reading the folder */
    char name[TK_MAX_TOPIC_NAME + 1];
    int32_t part;
    int64_t id;
    if (!parse_marker(e->d_name, "-drop", name, &part, &id)) continue;
    if ((rc = grow((void **)&v, &cap, n, sizeof *v))) break;
    snprintf(v[n++], sizeof *v, "%s", e->d_name);
  }
  closedir(d);
  for (size_t i = 0; i < n && !rc; i++) {
    char name[TK_MAX_TOPIC_NAME + 1], path[TK_PATH_MAX];
    int32_t part;
    int64_t id;
    parse_marker(v[i], "-drop", name, &part, &id);
    snprintf(path, sizeof path, "%s/%s", s->data_dir, v[i]);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    tk_meta m;
    int known = tk_meta_read(path, &m) == TAKHIN_OK && m.topic_id == id && m.partition == part;
    size_t nl = strlen(name);
    const cat_topic *c = NULL;
    for (size_t j = 0; j < z->nc && !c; j++) {
      const cat_topic *x = &z->c[j];
      if (x->id != id) continue;
      if (known ? !strcmp(x->name, m.name) && x->created_ms == m.created_ms
                : !strncmp(x->name, name, nl) && (!x->name[nl] || strlen(v[i]) == 255))
        c = x; /* without a readable topic.meta: the name, maybe shortened */
    }
    /* A damaged catalog, moved aside, cannot tell: the files are the truth,
    ** so the folder goes back under its topic's name, as the scan expects. */
    const char *back = c                                  ? c->name
                       : !s->recovery.catalog_moved_aside ? NULL
                       : known                            ? m.name
                       : strlen(v[i]) < 255               ? name
                                                          : NULL;
    if (!back) {
      remove_folder(s, v[i]);
      continue;
    }
    char to[TK_PATH_MAX];
    snprintf(to, sizeof to, "%s/%s-%d", s->data_dir, back, (int)part);
    /* The name taken: both stay, nothing guessed (the scan counts it kept). */
    if (rename(path, to) == 0) restored = 1;
  }
  if (!rc && restored) rc = tk_sync_dir(s->data_dir);
  free(v);
  return rc;
}

/* Step 1: finish the deletes a crash cut short. */
static int finish_deletes(state *z) {
  takhin_store *s = z->s;
  if (!z->nm) return TAKHIN_OK;
  ident *gone = calloc(z->nm, sizeof *gone);
  if (!gone) return tk_err(TAKHIN_ENOMEM, "out of memory reconciling the catalog");
  size_t ng = 0;
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_begin(s);
  for (size_t i = 0; i < z->nm && !rc; i++) {
    char path[TK_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->data_dir, z->marked[i]);
    tk_meta m;
    ident *g = &gone[ng];
    if (tk_meta_read(path, &m) == TAKHIN_OK) {
      snprintf(g->name, sizeof g->name, "%s", m.name);
      g->id = m.topic_id;
      g->created_ms = m.created_ms;
      g->created_known = 1;
    } else { /* "<topic>-<n>.<id>-delete", the topic part possibly shortened */
      char buf[256];
      snprintf(buf, sizeof buf, "%s", z->marked[i]);
      buf[strlen(buf) - 7] = 0;
      char *dot = strrchr(buf, '.');
      int32_t part;
      if (!dot || !dot[1] || strspn(dot + 1, "0123456789") != strlen(dot + 1)) continue;
      g->id = strtoll(dot + 1, NULL, 10);
      *dot = 0;
      if (!parse_part_dir(buf, g->name, &part)) continue;
    }
    ng++;
    cat_topic *c = find_cat(z, g->name);
    if (c && c->id == g->id && (!g->created_known || c->created_ms == g->created_ms)) {
      rc = tk_cat_delete_topic(s, c->id);
      c->gone = 1;
    }
  }
  if (!rc) rc = tk_cat_commit(s);
  else tk_cat_rollback(s);
  pthread_mutex_unlock(&s->cat_lock);
  if (!rc) {
    /* The catalog no longer holds them: now the folders. */
    for (size_t i = 0; i < z->nm; i++) remove_folder(s, z->marked[i]);
    for (size_t k = 0; k < z->nf; k++) {
      folder *f = &z->f[k];
      for (size_t j = 0; j < ng && f->has_meta && !f->skip; j++)
        if (gone[j].created_known && !strcmp(gone[j].name, f->meta.name) &&
            gone[j].id == f->meta.topic_id && gone[j].created_ms == f->meta.created_ms) {
          remove_folder(s, f->entry); /* an unmarked partition of the same delete */
          f->skip = 1;
        }
    }
  }
  free(gone);
  return rc;
}

/* Move a folder of a losing incarnation out of the way of the winner's
** partition of the same name; it is kept, under a name no topic uses. */
static void move_stray(takhin_store *s, folder *f) {
  char from[TK_PATH_MAX], to[TK_PATH_MAX + 64];
  snprintf(from, sizeof from, "%s/%s", s->data_dir, f->entry);
  char tail[48];
  int tl = snprintf(tail, sizeof tail, ".%lld-stray", (long long)tk_now_ms());
  int room = 255 - tl, nl = (int)strlen(f->entry);
  snprintf(to, sizeof to, "%s/%.*s%s", s->data_dir, nl < room ? nl : room, f->entry, tail);
  if (rename(from, to) == 0) tk_sync_dir(s->data_dir);
  f->skip = 1;
  s->recovery.folders_kept++;
}

/* The folder of partition p among [lo, hi) (sorted by partition) when it
** has a metadata file and is still in play, else NULL. */
static const folder *part_meta(const state *z, size_t lo, size_t hi, int32_t p) {
  size_t a = lo, b = hi;
  while (a < b) { /* binary search: a topic may have many partitions */
    size_t mid = a + (b - a) / 2;
    if (z->f[mid].part < p) a = mid + 1;
    else b = mid;
  }
  if (a >= hi) return NULL;
  const folder *f = &z->f[a];
  return f->part == p && f->has_meta && !f->skip ? f : NULL;
}

/* Step 2 for the folders [lo, hi) of one topic name. *id and *nparts
** receive what the catalog now holds for it (*id = 0: no topic). */
static int settle_topic(state *z, size_t lo, size_t hi, int64_t *out_id, int32_t *out_n) {
  takhin_store *s = z->s;
  const char *name = z->f[lo].name;
  cat_topic *c = find_cat(z, name);
  *out_id = 0;
  *out_n = 0;
  /* The winning incarnation: the one most folders' files name; on a tie
  ** the catalog's, then the newest. A catalog row no folder names loses to
  ** any the files name (an older backup: deleted and created again since). */
  int have = 0, from_cat = 0;
  int64_t wid = 0, wcreated = 0;
  size_t wvotes = 0;
  if (c) {
    have = 1;
    from_cat = 1;
    wid = c->id;
    wcreated = c->created_ms;
  }
  for (size_t i = lo; i < hi; i++) {
    const tk_meta *m = &z->f[i].meta;
    if (!z->f[i].has_meta || z->f[i].skip) continue;
    if (have && wvotes && m->topic_id == wid && m->created_ms == wcreated) continue; /* counted */
    size_t votes = 0;
    for (size_t j = lo; j < hi; j++)
      votes += z->f[j].has_meta && !z->f[j].skip && z->f[j].meta.topic_id == m->topic_id &&
               z->f[j].meta.created_ms == m->created_ms;
    int is_cat = c && c->id == m->topic_id && c->created_ms == m->created_ms;
    if (!have || votes > wvotes ||
        (votes == wvotes && !from_cat && (is_cat || m->created_ms > wcreated))) {
      have = 1;
      from_cat = is_cat;
      wid = m->topic_id;
      wcreated = m->created_ms;
      wvotes = votes;
    }
    if (votes > (hi - lo) / 2) break; /* a majority: no other can beat it */
  }
  if (!have) { /* neither catalog nor a file can say whose these are */
    for (size_t i = lo; i < hi; i++)
      if (!z->f[i].skip) {
        z->f[i].skip = 1;
        s->recovery.folders_kept++;
      }
    return TAKHIN_OK;
  }
  const tk_meta *best = NULL;               /* the winner's newest file */
  int32_t count = from_cat ? c->nparts : 0; /* 0: the row's count is out of range */
  for (size_t i = lo; i < hi; i++) {
    const folder *f = &z->f[i];
    if (f->skip || !f->has_meta || f->meta.topic_id != wid || f->meta.created_ms != wcreated)
      continue;
    if (!best || f->meta.epoch > best->epoch) best = &f->meta;
    if (f->part + 1 > count) count = f->part + 1;
  }
  if (best && best->partitions > count) count = best->partitions;
  if (from_cat && !best && (!c->nparts || !c->cfg_ok))
    return TAKHIN_OK; /* a broken row and no file to repair it from: the load reports it */
  /* Folders of other incarnations: out of the way of the winner's. */
  int unreadable = 0;
  for (size_t i = lo; i < hi; i++) {
    folder *f = &z->f[i];
    if (f->skip) continue;
    int mine = f->has_meta && f->meta.topic_id == wid && f->meta.created_ms == wcreated;
    if (f->has_meta && !mine) {
      if (f->part < count) move_stray(s, f);
      else {
        f->skip = 1;
        s->recovery.folders_kept++;
      }
    } else if (!f->has_meta && f->part >= count) {
      f->skip = 1; /* no file, beyond the topic: not ours to guess */
      s->recovery.folders_kept++;
    } else if (!f->has_meta) {
      unreadable = 1; /* its name puts it in the topic's range: it loads as that partition */
    }
  }
  int rc = TAKHIN_OK, disagreed = 0;
  int64_t id = wid;
  if (from_cat) {
    if (best && (!c->cfg_ok || !same_cfg(&c->cfg, &best->cfg) || count != c->nparts)) {
      rc = tk_cat_update_topic(s, c->id, count, &best->cfg);
      disagreed = 1;
    }
    for (int32_t p = 0; p < count && !rc; p++) {
      const folder *f = part_meta(z, lo, hi, p);
      int found;
      int64_t ls, kf;
      if ((rc = read_part(s, id, p, &found, &ls, &kf))) break;
      if (!found) {
        rc = insert_part(s, id, p, f ? f->meta.log_start : 0, f ? f->meta.key_from : 0);
        s->recovery.partitions_rebuilt++;
        if (p < c->nparts) disagreed = 1;
        continue;
      }
      if (!f) continue;
      if (f->meta.log_start != ls) {
        rc = tk_cat_set_log_start(s, id, p, f->meta.log_start);
        disagreed = 1;
      }
      if (!rc && f->meta.key_from != kf && f->meta.cfg.compact) {
        rc = reset_keys(s, id, p, f->meta.key_from);
        disagreed = 1;
      }
    }
    if (disagreed) s->recovery.meta_trusted_file++;
    else if (unreadable || !best) s->recovery.meta_trusted_catalog++;
  } else {
    if (c) { /* the catalog's incarnation is older than the files': replaced */
      rc = tk_cat_delete_topic(s, c->id);
      c->gone = 1;
      s->recovery.meta_trusted_file++;
    }
    int taken = 0;
    if (!rc) rc = id_taken(s, wid, &taken);
    /* child rows a hand edit orphaned under that id belong to no one now */
    if (!rc && !taken) rc = tk_cat_delete_topic(s, wid);
    if (!rc) rc = insert_topic(s, taken ? 0 : wid, name, count, &best->cfg, wcreated, &id);
    for (int32_t p = 0; p < count && !rc; p++) {
      const folder *f = part_meta(z, lo, hi, p);
      rc = insert_part(s, id, p, f ? f->meta.log_start : 0, f ? f->meta.key_from : 0);
    }
    if (!rc) {
      s->recovery.topics_rebuilt++;
      s->recovery.partitions_rebuilt += count;
    }
  }
  *out_id = id;
  *out_n = count;
  return rc;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Step 3 for one partition folder of topic id. */
static int adopt_segments(state *z, const folder *f, int64_t id) {
  takhin_store *s = z->s;
  char dir[TK_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", s->data_dir, f->entry);
  DIR *d = opendir(dir);
  if (!d) return TAKHIN_OK;
  int64_t *files = NULL;
  size_t nfiles = 0, cap = 0;
  int rc = TAKHIN_OK;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    const char *n = e->d_name;
    if (strlen(n) != 24 || strcmp(n + 20, ".log") || strspn(n, "0123456789") != 20) continue;
    if (strncmp(n, "09223372036854775807", 20) > 0) continue; /* past INT64_MAX */
    if ((rc = grow((void **)&files, &cap, nfiles, sizeof *files))) break;
    files[nfiles++] = strtoll(n, NULL, 10);
  }
  closedir(d);
  if (rc || !nfiles) {
    free(files);
    return rc;
  }
  qsort(files, nfiles, sizeof *files, cmp_i64);
  int found;
  int64_t log_start, kf;
  sqlite3_stmt *st = NULL;
  int64_t *base = NULL, *next = NULL;
  size_t nrows = 0, rcap = 0;
  if ((rc = read_part(s, id, f->part, &found, &log_start, &kf))) goto out;
  if (!(st = prep(s, TK_SQL_RECONCILE_SEGMENTS))) {
    rc = TAKHIN_ECATALOG;
    goto out;
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int(st, 2, f->part);
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    size_t c2 = rcap;
    if ((rc = grow((void **)&base, &rcap, nrows, sizeof *base))) break;
    if ((rc = grow((void **)&next, &c2, nrows, sizeof *next))) break;
    base[nrows] = sqlite3_column_int64(st, 0);
    next[nrows++] = sqlite3_column_int64(st, 1);
  }
  tk_cat_done(s, st);
  if (rc) goto out;
  for (size_t i = 0, r = 0; i < nfiles && !rc; i++) {
    int64_t b = files[i];
    /* wholly below the log start (the next file starts at or before it):
    ** retention's, which the load finishes deleting */
    if (i + 1 < nfiles && files[i + 1] <= log_start) continue;
    /* The newest file past the known end: the load adopts it, and judges a
    ** file with no valid batch there. Earlier ones get rows here: a
    ** compacted segment may hold no batch at all and must not be taken for
    ** garbage. */
    if (i + 1 == nfiles && (!nrows || b > base[nrows - 1])) break;
    while (r < nrows && base[r] < b) r++;
    if (r < nrows && base[r] == b) continue; /* known */
    if (r > 0 && b < next[r - 1]) continue;  /* inside a known segment: leave it alone */
    char path[TK_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%020lld.log", dir, (long long)b);
    struct stat sb;
    int64_t created = stat(path, &sb) == 0 ? (int64_t)sb.st_mtime * 1000 : tk_now_ms();
    /* size 0 and next = base: the load validates the whole file (no trust) */
    rc = run4(s, TK_SQL_RECONCILE_INSERT_SEGMENT, 4, id, f->part, b, created);
    if (!rc) s->recovery.segments_rebuilt++;
  }
out:
  free(files);
  free(base);
  free(next);
  return rc;
}

int tk_reconcile(takhin_store *s) {
  if (s->opt.read_only) return TAKHIN_OK; /* a reader changes nothing */
  state z = {.s = s};
  int rc;
  pthread_mutex_lock(&s->cat_lock);
  rc = read_catalog(&z);
  pthread_mutex_unlock(&s->cat_lock);
  if (!rc) rc = settle_drops(&z);
  if (!rc) rc = scan_data_dir(&z);
  if (!rc) rc = finish_deletes(&z);
  if (!rc && z.nf) {
    qsort(z.f, z.nf, sizeof *z.f, cmp_folder);
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_begin(s);
    for (size_t lo = 0, hi; lo < z.nf && !rc; lo = hi) {
      for (hi = lo + 1; hi < z.nf && !strcmp(z.f[hi].name, z.f[lo].name); hi++) {}
      int64_t id;
      int32_t n;
      rc = settle_topic(&z, lo, hi, &id, &n);
      for (size_t i = lo; i < hi && !rc && id; i++)
        if (!z.f[i].skip && z.f[i].part < n) rc = adopt_segments(&z, &z.f[i], id);
    }
    if (!rc) rc = tk_cat_commit(s);
    else tk_cat_rollback(s);
    pthread_mutex_unlock(&s->cat_lock);
  }
  free(z.f);
  free(z.c);
  free(z.marked);
  return rc;
}

/* ---- after load: the files say what the catalog says ------------------- */

int tk_reconcile_finish(takhin_store *s) {
  if (s->opt.read_only) return TAKHIN_OK;
  for (size_t b = 0; b < s->nbuckets; b++)
    for (tk_topic *t = s->topics[b]; t; t = t->hnext) {
      int64_t epoch = t->meta_epoch;
      tk_meta m;
      for (int32_t i = 0; i < t->nparts; i++)
        if (tk_meta_read(t->parts[i]->dir, &m) == TAKHIN_OK && m.topic_id == t->topic_id &&
            m.created_ms == t->created_ms && !strcmp(m.name, t->name) && m.epoch > epoch)
          epoch = m.epoch;
      t->meta_epoch = epoch;
      for (int32_t i = 0; i < t->nparts; i++) {
        tk_partition *p = t->parts[i];
        tk_meta want;
        pthread_mutex_lock(&p->append_lock);
        tk_meta_of(p, &want);
        /* Best effort: a full disk must not keep the store from opening;
        ** the next open writes it again. */
        if (tk_meta_read(p->dir, &m) != TAKHIN_OK || !tk_meta_same(&m, &want))
          tk_meta_write(p->dir, &want);
        pthread_mutex_unlock(&p->append_lock);
      }
    }
  return TAKHIN_OK;
}
