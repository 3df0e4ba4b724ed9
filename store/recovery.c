/*
** recovery.c -- a partition's segments loaded on open and reconciled with
** the files (tk_part_load), and a read-only handle's refresh of what the
** writer process appended since (tk_part_refresh).
**
** Recovery trusts the files: see load_segment().
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "catalog.h"
#include "compaction.h"
#include "partition.h"
#include "store.h"
#include "testing.h"

static int parse_segment_name(const char *name, int64_t *base) {
  size_t n = strlen(name);
  if (n != 24 || strcmp(name + 20, ".log")) return 0;
  int64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    if (v > (INT64_MAX - 9) / 10) return 0;
    v = v * 10 + (name[i] - '0');
  }
  *base = v;
  return 1;
}

/* Base offsets of the segment files present (sorted), and tidy away files a
** crashed operation of ours left behind (*.tmp, *.cleaned). */
static int list_segment_files(tk_partition *p, int64_t **out, size_t *n,
                              takhin_recovery_info *rec) {
  takhin_store *s = tk_part_store(p);
  DIR *d = opendir(p->dir);
  *out = NULL;
  *n = 0;
  if (!d) {
    if (errno == ENOENT && !s->opt.read_only) {
      if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) return tk_err_sys(errno, "mkdir", p->dir);
      return TAKHIN_OK;
    }
    return errno == ENOENT ? TAKHIN_OK : tk_err_sys(errno, "open directory", p->dir);
  }
  int64_t *v = NULL;
  size_t cnt = 0, cap = 0;
  struct dirent *e;
  int rc = TAKHIN_OK;
  while ((e = readdir(d))) {
    int64_t base;
    size_t len = strlen(e->d_name);
    if (parse_segment_name(e->d_name, &base)) {
      if (TK_ARRAY_GROW(v, cnt, cap, 16)) {
        rc = tk_err(TAKHIN_ENOMEM, "out of memory listing %s", p->dir);
        break;
      }
      v[cnt++] = base;
    } else if (!s->opt.read_only && ((len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) ||
                                     (len > 8 && !strcmp(e->d_name + len - 8, ".cleaned")))) {
      /* compaction output no swap row vouches for: an unfinished run */
      char path[TK_PATH_MAX];
      snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name);
      if (unlink(path) == 0) rec->files_removed++;
    }
  }
  closedir(d);
  if (rc) {
    free(v);
    return rc;
  }
  for (size_t i = 1; i < cnt; i++) /* insertion sort: directories are small and mostly sorted */
    for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
      int64_t x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  *out = v;
  *n = cnt;
  return TAKHIN_OK;
}

static int has_base(const int64_t *v, size_t n, int64_t base) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] == base) return 1;
    if (v[mid] < base) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

/* Keep the longest prefix of catalog index entries that is plausible for a
** segment starting at base with at most limit bytes; a hand-edited or stale
** row must not send a reader into the middle of a batch. */
static size_t sane_index_prefix(const tk_index_entry *e, size_t n, int64_t base, int64_t limit) {
  size_t k = 0;
  for (; k < n; k++) {
    if (e[k].position < 0 || e[k].position >= limit || e[k].offset < base) break;
    if (k == 0 && e[k].position != 0) break;
    if (k > 0 && (e[k].position <= e[k - 1].position || e[k].offset <= e[k - 1].offset)) break;
  }
  return k;
}

static void note_reindexed(const tk_partition *p, const tk_segment *g, takhin_recovery_info *rec) {
  rec->segments_reindexed++;
  size_t used = strlen(rec->message);
  if (used + 1 < sizeof rec->message)
    snprintf(rec->message + used, sizeof rec->message - used,
             "%s%s-%d: segment %020lld.log is not the file its catalog rows describe: "
             "rebuilt from the file",
             used ? "; " : "", p->topic->name, (int)p->id, (long long)g->base_offset);
}

/* Whether g's file is sound from its start to its end, every batch checked
** (a scratch segment: g is left as it is). */
static int file_sound(tk_partition *p, const tk_segment *g) {
  tk_segment *t = tk_seg_new(p, g->base_offset, g->created_ms);
  if (!t) return tk_err(TAKHIN_ENOMEM, "out of memory loading segments");
  tk_scan_result sr;
  int rc = tk_seg_scan(t, 0, 0, &sr);
  tk_seg_unref(t);
  return rc ? rc : sr.good_end == sr.file_size;
}

/* Rebuild one segment's state from its catalog row and index rows and its
** file: walk the indexed zone by headers from the last index entry, then
** validate the unindexed tail batch by batch and truncate (writer only) a
** torn or corrupt tail. A file shorter than the catalog says was cut behind
** our back: everything from the last index entry inside it is revalidated. */
static int load_segment(tk_partition *p, tk_segment *g, const tk_seg_row *row, int64_t file_size,
                        takhin_recovery_info *rec) {
  takhin_store *s = tk_part_store(p);
  tk_index_entry *e = NULL;
  size_t n = 0;
  int rc = TAKHIN_OK;
  int row_sane = row && row->size >= 0 && row->next >= g->base_offset;
  int64_t trusted = row_sane && row->size <= file_size ? row->size : 0;
  int64_t damaged_from = INT64_MAX; /* a damaged index run: its entries on were dropped */
  if (row) {
    rc = tk_cat_index(s, p->topic->topic_id, p->id, g->base_offset, &e, &n, &damaged_from);
    if (rc) return rc;
  }
  size_t keep = sane_index_prefix(e, n, g->base_offset,
                                  row_sane && row->size < file_size ? row->size : file_size);
  /* Not even the first entry is plausible: the segment is walked from its
  ** start, and all its runs go (one keyed below the rebuilt entries, such
  ** as another segment's, would be read first again at every open). */
  if (n && !keep) damaged_from = INT64_MIN;
  /* The row may describe another file than <base>.log: an older catalog
  ** restored, or a compaction's commit lost (synchronous=NORMAL) while its
  ** renames survived. Its entries then point into the middle of the new
  ** file's batches: the walk would resume there and truncate live records
  ** as damage, and lookups would land mid-batch. A row of the file's size
  ** is taken as it is (nothing read: the common case). Otherwise the
  ** entries are checked against the file's batches: all of them when the
  ** row is sealed or claims more than the file holds (a sealed file never
  ** grows; compaction shrinks it), only the one the walk resumes from when
  ** an active segment's row is behind its file (the writer holds rows back,
  ** so every crash leaves that). One that fails: the file is walked from
  ** its start, every batch checked, and its rows rebuilt. */
  int reindex = 0;
  if (row && keep && (!row_sane || row->size != file_size)) {
    size_t from = !row_sane || row->sealed || row->size > file_size ? 0 : keep - 1;
    int ok = tk_seg_index_matches(g, e + from, keep - from, file_size);
    if (ok < 0) {
      free(e);
      return ok;
    }
    if (!ok) {
      reindex = 1;
      keep = 0;
      trusted = 0;
      g->records = -1; /* the row's count is the other file's: the walk finds out */
      note_reindexed(p, g, rec);
    }
  }
  /* Resume at the last kept entry: its stretch is re-walked to recompute it. */
  size_t resume = keep ? keep - 1 : 0;
  g->idx = e;
  g->idx_cap = n;
  g->idx_n = resume;
  g->idx_persisted = resume;
  for (size_t k = 0; k < resume; k++)
    e[k].run_max =
        k ? (e[k].max_ts > e[k - 1].run_max ? e[k].max_ts : e[k - 1].run_max) : e[k].max_ts;
  int64_t pos = keep ? e[resume].position : 0;
  g->size = pos;
  g->next_offset = keep ? e[resume].offset : g->base_offset;
  g->max_ts = resume ? e[resume - 1].run_max : -1;
  /* pos is where entry `resume` stood: the walk must re-create it there even
  ** when it lies closer than TK_INDEX_INTERVAL to the previous entry. */
  g->last_idx_pos = INT64_MIN / 2;
  tk_scan_result sr;
  /* Zone 1 must end where the catalog row says the segment ends: the
  ** catalog's next offset pins the last batch's lastOffsetDelta. */
  rc = tk_seg_scan_indexed(g, pos, trusted, trusted ? row->next : -1, &sr);
  if (rc) return rc;
  if (sr.damaged && !reindex && row && row->size != file_size) {
    /* The entries checked above name batches of the file, but the rest of
    ** the row does not describe it: an active segment's row, its file
    ** sealed and compacted since (only past the row's last entry). Damage
    ** is believed only if the file is not sound from its start; if it is,
    ** the row was another file's and the file is walked again from 0. */
    int sound = file_sound(p, g);
    if (sound < 0) return sound;
    if (sound) {
      reindex = 1;
      pthread_rwlock_wrlock(&p->meta_lock);
      g->idx_n = g->idx_persisted = 0;
      g->size = 0;
      g->next_offset = g->base_offset;
      g->max_ts = -1;
      g->last_idx_pos = INT64_MIN / 2;
      g->records = -1;
      atomic_store_explicit(&g->gaps, 0, memory_order_relaxed);
      pthread_rwlock_unlock(&p->meta_lock);
      note_reindexed(p, g, rec);
      if ((rc = tk_seg_scan_indexed(g, 0, 0, -1, &sr))) return rc;
    }
  }
  if (reindex && row->sealed && row_sane && row->next > g->next_offset) {
    /* Compaction keeps a sealed segment's offset range when its last
    ** records go (as load_fresh): counted, so it is not taken as dense. */
    pthread_rwlock_wrlock(&p->meta_lock);
    if (g->records < 0) g->records = g->next_offset - g->base_offset;
    g->next_offset = row->next;
    pthread_rwlock_unlock(&p->meta_lock);
  }
  if (sr.damaged) {
    /* Kept in place: its offsets read as ECORRUPT, the ones around it
    ** as they were. Its timestamps are unknown; the catalog's stand. */
    if (row->max_ts > g->max_ts) g->max_ts = row->max_ts;
    if (rec->batches_damaged == 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(g, path, sizeof path);
      snprintf(rec->first_damage, sizeof rec->first_damage,
               "%s-%d/%s: damaged batch at byte %lld (offsets %lld-%lld): %s", p->topic->name,
               (int)p->id, strrchr(path, '/') + 1, (long long)sr.damaged_pos,
               (long long)sr.damaged_lo, (long long)sr.damaged_hi, sr.damaged_why);
    }
    rec->batches_damaged += sr.damaged;
  }
  rec->batches_recovered += sr.recovered;
  if (sr.good_end < sr.file_size && !s->opt.read_only) {
    int fd;
    if ((rc = tk_seg_fd_acquire(g, &fd))) return rc;
    if (ftruncate(fd, sr.good_end) != 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(g, path, sizeof path);
      rc = tk_err_sys(errno, "truncate", path);
    }
    tk_seg_fd_release(g);
    if (rc) return rc;
    rec->bytes_truncated += sr.file_size - sr.good_end;
    rec->segments_truncated++;
    g->cat_dirty = 1;
  }
  if (!row || g->size != row->size || g->next_offset != row->next || g->max_ts != row->max_ts)
    g->cat_dirty = 1;
  /* A row that claims no more than the file holds may stay behind it while
  ** the segment is active (partition.c); one that claims more (the file
  ** lost its tail) is rewritten at once. */
  g->cat_row = row && row->size <= g->size && row->next <= g->next_offset;
  if (row && !s->opt.read_only && reindex) {
    /* Every row describes the other file: all go, and the rebuilt entries
    ** are written at the next persist (a crash before then: no rows, the
    ** next open walks the file from its start again). */
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_index_from(s, p->topic->topic_id, p->id, g->base_offset, 0);
    pthread_mutex_unlock(&s->cat_lock);
    g->idx_persisted = 0;
  } else if (row && !s->opt.read_only && g->idx_n < n) {
    /* Catalog rows past what the file now holds would mislead a later open. */
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_index_from(s, p->topic->topic_id, p->id, g->base_offset,
                                  g->idx_n ? g->idx[g->idx_n - 1].position + 1 : 0);
    pthread_mutex_unlock(&s->cat_lock);
    g->idx_persisted = g->idx_n ? g->idx_n - 1 : 0;
  }
  if (!rc && row && !s->opt.read_only && damaged_from != INT64_MAX) {
    /* The damaged runs and those after them: nothing rewrites a run keyed
    ** below the entries written from the walk's resume point, so one whose
    ** first_offset was damaged downwards would be read (and the file walked
    ** from there) at every open. */
    pthread_mutex_lock(&s->cat_lock);
    rc = tk_cat_delete_index_runs_from(s, p->topic->topic_id, p->id, g->base_offset, damaged_from);
    pthread_mutex_unlock(&s->cat_lock);
    /* the entries those runs held are written again */
    size_t k = 0;
    while (k < g->idx_n && g->idx[k].offset < damaged_from) k++;
    if (g->idx_persisted > k) g->idx_persisted = k;
  }
  return rc;
}

/* A catalog row whose segment file is gone (deleted by hand): report it in
** rec and, when it continues the log (lost_end not NULL), move *lost_end
** and *log_end to the end of its offsets -- if the row is plausible: a
** record takes at least a byte, so offsets never outnumber bytes, and a
** hand-edited next_offset cannot fling the log forward. */
static void note_missing(const tk_partition *p, const tk_seg_row *r, takhin_recovery_info *rec,
                         int64_t *lost_end, int64_t *log_end) {
  rec->segments_missing++;
  int plausible = r->next >= r->base && r->size >= 0 && r->next - r->base <= r->size;
  if (plausible) rec->offsets_lost += r->next - r->base;
  if (plausible && lost_end && r->next > *lost_end) *lost_end = *log_end = r->next;
  size_t used = strlen(rec->message);
  if (used + 1 < sizeof rec->message)
    snprintf(rec->message + used, sizeof rec->message - used,
             "%s%s-%d: segment %020lld.log is missing: %s%lld-%lld%s", used ? "; " : "",
             p->topic->name, (int)p->id, (long long)r->base,
             plausible ? "offsets " : "its catalog row is implausible (offsets ",
             (long long)r->base, (long long)r->next - 1, plausible ? " are lost" : ")");
}

static int64_t file_size_of(const tk_partition *p, int64_t base) {
  char path[TK_PATH_MAX];
  struct stat st;
  snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)base);
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int load_fresh(tk_partition *p, const tk_seg_row *r, int sealed, tk_segment **out);

/* Read-only handles: whether the catalog's row for r->base still says what r
** says (a compaction commits its rows, then renames its files). */
static int row_changed(tk_partition *p, const tk_seg_row *r) {
  takhin_store *s = tk_part_store(p);
  tk_seg_row *rows = NULL;
  size_t n = 0;
  pthread_mutex_lock(&s->cat_lock);
  int rc = tk_cat_segments(s, p->topic->topic_id, p->id, r->base, &rows, &n);
  pthread_mutex_unlock(&s->cat_lock);
  int changed = !rc && (!n || rows[0].base != r->base || rows[0].size != r->size ||
                        rows[0].next != r->next || rows[0].records != r->records);
  free(rows);
  return changed;
}

/* Read-only handles: a compaction's new file for segment g waits beside
** its .log (committed, not renamed yet), or g's path names another file
** than the one g was loaded from (renamed since). */
static int swap_pending(tk_segment *g) {
  char path[TK_PATH_MAX + 16];
  struct stat st;
  tk_seg_path(g, path, sizeof path);
  strcat(path, ".cleaned");
  return stat(path, &st) == 0 || tk_seg_retired(g);
}

/* A read-only open of segment row r, whose file g was loaded from, when the
** two may not belong together: the writer's compaction committed new rows
** (and index rows) for a file not yet renamed over the old one, or renamed
** it between our reads of the catalog and of the file. The row and its
** index would then describe another file's bytes (reported as damage, read
** at wrong positions). Load the segment from the file alone instead, every
** batch checked, as tk_part_refresh loads a replaced segment; its refresh
** then follows the rename as for any compaction. */
static int load_unmatched(tk_partition *p, const tk_seg_row *r, tk_segment **g,
                          takhin_recovery_info *rec, const takhin_recovery_info *before) {
  tk_segment *n;
  int rc = load_fresh(p, r, 0, &n);
  if (rc || !n) return rc; /* gone meanwhile: keep what we have */
  n->sealed = r->sealed;
  if (r->sealed && r->next > n->next_offset) n->next_offset = r->next;
  pthread_rwlock_wrlock(&p->meta_lock);
  p->segs[p->nsegs - 1] = n;
  pthread_rwlock_unlock(&p->meta_lock);
  tk_seg_unref(*g);
  *g = n;
  /* what the mismatched load reported was not about the file */
  rec->batches_damaged = before->batches_damaged;
  rec->batches_recovered = before->batches_recovered;
  memcpy(rec->first_damage, before->first_damage, sizeof rec->first_damage);
  return TAKHIN_OK;
}

#ifdef TAKHIN_TESTING
/* Test hook (testing.h): called before each catalog row's segment loads. */
void (*tk_load_segment_hook)(const char *dir, int64_t base);
#endif

int tk_part_load(tk_partition *p, takhin_recovery_info *rec) {
  takhin_store *s = tk_part_store(p);
  tk_topic *t = p->topic;
  tk_seg_row *rows = NULL;
  int64_t *files = NULL;
  size_t nrows = 0, nfiles = 0;
  int rc = tk_compact_recover(p, rec); /* first: it decides which file is <base>.log */
  if (rc) return rc;
  pthread_mutex_lock(&s->cat_lock);
  rc = tk_cat_segments(s, t->topic_id, p->id, INT64_MIN, &rows, &nrows);
  if (!rc) rc = tk_cat_log_start(s, t->topic_id, p->id, &p->log_start);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) return rc;
  if ((rc = list_segment_files(p, &files, &nfiles, rec))) goto out;
  rec->partitions_checked++;
  int64_t expect = 0; /* segments must not overlap */
  /* Where the log ends so far (-1: nothing yet), and where it ended when
  ** the files of its last segments are gone. Only a missing segment that
  ** continues the log counts for the latter: a row beyond it (hand-made)
  ** must not move the high watermark. */
  int64_t log_end = -1, lost_end = 0;
  for (size_t i = 0; i < nrows; i++) {
    tk_seg_row *r = &rows[i];
    int64_t fsz = r->base >= expect ? file_size_of(p, r->base) : -1;
    /* A row wholly below the log start whose file is gone is retention's or
    ** DeleteRecords' (an older catalog restored still lists it): nothing
    ** was lost there. */
    if (r->base >= expect && (fsz < 0 || !has_base(files, nfiles, r->base)) &&
        r->next > p->log_start)
      note_missing(p, r, rec, log_end < 0 || r->base == log_end ? &lost_end : NULL, &log_end);
    if (fsz < 0 || !has_base(files, nfiles, r->base)) {
      /* The file is gone (or the row overlaps its neighbour): its records
      ** cannot be served. Drop the row; the offsets read as removed. */
      if (!s->opt.read_only) {
        pthread_mutex_lock(&s->cat_lock);
        rc = tk_cat_delete_segment(s, t->topic_id, p->id, r->base);
        pthread_mutex_unlock(&s->cat_lock);
        if (rc) goto out;
      }
      continue;
    }
    tk_segment *g = tk_seg_new(p, r->base, r->created_ms);
    if (!g) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory loading segments");
      goto out;
    }
    g->sealed = r->sealed;
    g->records = r->records;
    if ((rc = tk_part_push_seg(p, g))) {
      tk_seg_unref(g);
      goto out;
    }
    int64_t damaged0 = rec->batches_damaged;
    takhin_recovery_info before = *rec;
#ifdef TAKHIN_TESTING
    if (tk_load_segment_hook) tk_load_segment_hook(p->dir, r->base);
#endif
    rc = load_segment(p, g, r, fsz, rec);
    if (rc == TAKHIN_ENOTFOUND && s->opt.read_only && file_size_of(p, r->base) < 0) {
      /* Read-only, beside a live writer: its retention or DeleteRecords
      ** removed the file since the catalog was read. Only the log's oldest
      ** segments go that way, so nothing after them is missing; the log
      ** start follows the first segment left (below), and refreshes follow
      ** the writer from there. */
      p->nsegs--;
      tk_seg_unref(g);
      rc = TAKHIN_OK;
      continue;
    }
    if (rc) goto out;
    if (s->opt.read_only && r->sealed && (fsz != r->size || rec->batches_damaged != damaged0) &&
        (swap_pending(g) || row_changed(p, r)) && (rc = load_unmatched(p, r, &g, rec, &before)))
      goto out;
    expect = log_end = g->next_offset;
  }
  /* Files the catalog does not know: past the end, a segment whose row a
  ** crash kept from landing (adopt it); before the start, a file retention
  ** had already dropped from the catalog (finish deleting it). */
  int64_t first_base = p->nsegs ? p->segs[0]->base_offset : INT64_MAX;
  for (size_t i = 0; i < nfiles; i++) {
    int64_t b = files[i];
    if (p->nsegs && b <= tk_part_active(p)->base_offset) {
      if (b < first_base && b < p->log_start && !s->opt.read_only) {
        char path[TK_PATH_MAX];
        snprintf(path, sizeof path, "%s/%020lld.log", p->dir, (long long)b);
        if (unlink(path) == 0) rec->files_removed++;
      }
      continue;
    }
    if (p->nsegs && b < tk_part_active(p)->next_offset) continue; /* overlaps: leave it alone */
    tk_segment *g = tk_seg_new(p, b, tk_now_ms());
    if (!g) {
      rc = tk_err(TAKHIN_ENOMEM, "out of memory loading segments");
      goto out;
    }
    if ((rc = tk_part_push_seg(p, g))) {
      tk_seg_unref(g);
      goto out;
    }
    int64_t fsz = file_size_of(p, b);
    rc = load_segment(p, g, NULL, fsz, rec);
    if (rc == TAKHIN_ENOTFOUND && s->opt.read_only && file_size_of(p, b) < 0) {
      /* Listed, then removed by a live writer's retention, as above: here
      ** when every row before it went that way too (nothing loaded yet). */
      p->nsegs--;
      tk_seg_unref(g);
      rc = TAKHIN_OK;
      continue;
    }
    if (rc) goto out;
    if (g->next_offset == g->base_offset && p->nsegs > 1 &&
        b > p->segs[p->nsegs - 2]->next_offset && fsz != 0) {
      /* No valid batch, and not where a roll would have put it: its name
      ** must not move the high watermark. An empty file is where a roll
      ** put it: past offsets a failed BUFFERED write lost (drop_pending),
      ** whose catalog row a full disk kept from landing. Its name keeps
      ** those offsets from being handed out again. */
      p->nsegs--;
      if (!s->opt.read_only) {
        char path[TK_PATH_MAX];
        tk_seg_path(g, path, sizeof path);
        if (unlink(path) == 0) rec->files_removed++;
      }
      tk_seg_unref(g);
    }
  }
  for (size_t i = 0; i + 1 < p->nsegs; i++)
    if (!p->segs[i]->sealed) {
      p->segs[i]->sealed = 1;
      p->segs[i]->cat_dirty = 1;
    }
  if (p->nsegs) {
    tk_segment *last = tk_part_active(p);
    if (last->sealed) {
      last->sealed = 0;
      last->cat_dirty = 1;
      last->cat_row = 0; /* readers must not take it for sealed */
    }
    p->next_offset = last->next_offset;
  } else {
    p->next_offset = p->log_start > 0 ? p->log_start : 0;
  }
  /* The files of the log's last offsets are gone, but those offsets were
  ** handed out: a writer continues after them, in a new segment (readers
  ** skip the gap), so no offset ever names two different records. */
  int resume_after_lost = !s->opt.read_only && lost_end > p->next_offset;
  if (resume_after_lost) p->next_offset = lost_end;
  /* The log start lies within [first segment, high watermark]. */
  int64_t lo = p->nsegs ? p->segs[0]->base_offset : p->next_offset;
  int64_t ls = p->log_start;
  if (ls < lo) ls = lo;
  if (ls > p->next_offset) ls = p->next_offset;
  if (ls != p->log_start) {
    p->log_start = ls;
    p->log_start_dirty = 1;
  }
  p->pending_next = p->next_offset;
  p->synced_next = p->next_offset;
  if (!s->opt.read_only) {
    if (!p->nsegs || resume_after_lost) {
      pthread_mutex_lock(&p->append_lock);
      rc = tk_part_new_active(p, p->next_offset, tk_now_ms());
      pthread_mutex_unlock(&p->append_lock);
      if (rc) goto out;
    }
    /* Not fatal: the state in memory is right and the catalog catches up at
    ** the next persist. A full disk must not keep the log from being read. */
    pthread_mutex_lock(&p->append_lock);
    tk_part_persist_opened(p);
    pthread_mutex_unlock(&p->append_lock);
  }
out:
  free(rows);
  free(files);
  return rc;
}

/* ---- read-only refresh ------------------------------------------------ */

/* A read-only handle's segment for catalog row r, read from the file its
** path names now, every batch validated: the row may describe a file that
** is not yet renamed into place (compaction commits its rows first), or
** the file may have been replaced since. Nothing is published: *out is
** NULL when the file is gone, or when a sealed row's file does not yet
** hold what the row says (a later refresh tries again). */
static int load_fresh(tk_partition *p, const tk_seg_row *r, int sealed, tk_segment **out) {
  *out = NULL;
  tk_segment *g = tk_seg_new(p, r->base, r->created_ms);
  if (!g) return tk_err(TAKHIN_ENOMEM, "out of memory loading segments");
  g->records = r->records;
  tk_scan_result sr;
  int rc = tk_seg_scan(g, 0, 0, &sr);
  if (rc == TAKHIN_ENOTFOUND || rc == TAKHIN_ERANGE || (!rc && sealed && sr.file_size != r->size)) {
    tk_seg_unref(g); /* gone, or not the row's file yet */
    return TAKHIN_OK;
  }
  if (rc) {
    tk_seg_unref(g);
    return rc;
  }
  g->sealed = sealed;
  /* Compaction keeps a segment's offset range even when its last records go. */
  if (sealed && r->next > g->next_offset) g->next_offset = r->next;
  *out = g;
  return TAKHIN_OK;
}

/* Read-only handles follow the writer process through the catalog and the
** files: appends to the active segment, new segments, segments the writer
** sealed, rewrote (compaction) or deleted (retention, DeleteRecords), and
** the log start. The catalog is read first: a segment it shows sealed was
** written to its end before, so scanning ours after reading it reaches that
** end; a segment is published only once loaded, so no reader ever sees a
** half-built one; a segment whose file was replaced is swapped for one
** loaded from the new file, and the old one is retired, never reopened by
** path (its holders finish with the file they have). */
int tk_part_refresh(tk_partition *p) {
  takhin_store *s = tk_part_store(p);
  tk_topic *t = p->topic;
  int rc = TAKHIN_OK;
  pthread_mutex_lock(&p->append_lock); /* no appends in a read-only handle: serializes refreshes */
  tk_seg_row *rows = NULL;
  size_t nrows = 0;
  int64_t ls = p->log_start, version = -1;
  int complete =
      1; /* every row reconciled: the next refresh may skip them while the catalog stands */
  pthread_mutex_lock(&s->cat_lock);
  /* Unchanged since the last complete refresh: no segment was added,
  ** sealed, rewritten or deleted; only appends to the active segment are
  ** new. Reading every row costs ~1.4 us a segment, on every poll of a
  ** reader at the end of the log. */
  rc = tk_cat_data_version(s, &version);
  int fast = !rc && version == p->seen_version;
  /* The rows, then the log start: a row missing here was deleted before, so
  ** the log start read after it is past its segment. */
  if (!rc && !fast) rc = tk_cat_segments(s, t->topic_id, p->id, INT64_MIN, &rows, &nrows);
  if (!rc && !fast) rc = tk_cat_log_start(s, t->topic_id, p->id, &ls);
  pthread_mutex_unlock(&s->cat_lock);
  if (rc) goto out;
  if (p->nsegs) {
    tk_segment *g = tk_part_active(p);
    tk_scan_result sr;
    /* ERANGE: our active segment's file was deleted or replaced; its row
    ** (if any) reloads it below, else it falls below the log start. */
    rc = tk_seg_scan(g, g->size, 0, &sr);
    if (rc == TAKHIN_ERANGE) rc = TAKHIN_OK;
    if (rc) goto out;
  }
  size_t k = 0; /* p->segs[k]: the first segment not matched with a row yet */
  for (size_t i = 0; i < nrows; i++) {
    tk_seg_row *r = &rows[i];
    int sealed = r->sealed || i + 1 < nrows;
    while (k < p->nsegs && p->segs[k]->base_offset < r->base) k++;
    if (k < p->nsegs && p->segs[k]->base_offset == r->base) {
      tk_segment *g = p->segs[k], *n = NULL;
      /* Differs from its row (rewritten by compaction, or loaded while the
      ** writer still wrote it): reload if the path names another file. */
      int differs = sealed && (g->size != r->size || g->records != r->records);
      int stale = differs && tk_seg_retired(g);
      if (stale && (rc = load_fresh(p, r, 1, &n))) goto out;
      /* Not replaced yet (its file not renamed into place, or damaged):
      ** look again next time, whatever the catalog does meanwhile. */
      if (differs && !n) complete = 0;
      if (stale && !n && k + 1 == p->nsegs)
        break; /* our last segment: later ones would seal it short of its end */
      if (n) {
        pthread_rwlock_wrlock(&p->meta_lock);
        p->segs[k] = n;
        if (k + 1 < p->nsegs) n->sealed = 1;
        pthread_rwlock_unlock(&p->meta_lock);
        tk_seg_unref(g); /* retired: holders keep the file they have */
      }
      k++;
      continue;
    }
    if (k < p->nsegs) continue; /* a row between ours we never loaded: nothing to read there */
    if (p->nsegs && r->base < tk_part_active(p)->next_offset) continue; /* overlaps ours */
    tk_segment *n;
    if ((rc = load_fresh(p, r, sealed, &n))) goto out;
    if (!n) { /* not there yet: later segments must wait for it */
      complete = 0;
      break;
    }
    pthread_rwlock_wrlock(&p->meta_lock);
    if (p->nsegs) tk_part_active(p)->sealed = 1;
    rc = tk_part_push_seg(p, n);
    pthread_rwlock_unlock(&p->meta_lock);
    if (rc) {
      tk_seg_unref(n);
      goto out;
    }
    k = p->nsegs;
  }
  /* Drop what the writer deleted (retention, DeleteRecords). */
  pthread_rwlock_wrlock(&p->meta_lock);
  if (p->nsegs) p->next_offset = tk_part_active(p)->next_offset;
  if (ls > p->next_offset) ls = p->next_offset;
  if (ls > p->log_start) p->log_start = ls;
  size_t drop = 0;
  while (drop + 1 < p->nsegs && p->segs[drop]->next_offset <= p->log_start) drop++;
  tk_segment **gone = NULL;
  if (drop) {
    gone = malloc(drop * sizeof *gone);
    if (gone) {
      memcpy(gone, p->segs, drop * sizeof *gone);
      memmove(p->segs, p->segs + drop, (p->nsegs - drop) * sizeof *p->segs);
      p->nsegs -= drop;
    } else {
      drop = 0;
    }
  }
  p->pending_next = p->next_offset;
  pthread_rwlock_unlock(&p->meta_lock);
  for (size_t i = 0; i < drop; i++) tk_seg_unref(gone[i]);
  free(gone);
  if (!fast) p->seen_version = complete ? version : -1;
out:
  free(rows);
  pthread_mutex_unlock(&p->append_lock);
  return rc;
}
