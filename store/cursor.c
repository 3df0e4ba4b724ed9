/*
** cursor.c -- reading a partition: cursors that hand out zero-copy views of
** records, single-record reads, and ListOffsets by timestamp.
**
** A cursor asks the partition for the segment and index position of its next
** offset (a short read-locked lookup), then pread()s whole batches into its
** own buffer, in chunks that grow while it reads sequentially, so a stream of
** records costs one syscall per chunk, not per record. Every batch's CRC is
** checked before any of its records is returned. Buffers are kept between
** calls: a cursor in steady state allocates nothing.
*/
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cursor.h"
#include "keyindex.h"
#include "partition.h"
#include "store.h"
#include "wait.h"

#define READ_MIN (16 * 1024)
#define TK_RELOCATE 2 /* internal: the segment was replaced; locate again */
#define READ_MAX (1024 * 1024)

struct takhin_cursor {
  takhin_store *store;
  tk_topic *topic;
  tk_partition *part;
  int64_t next;         /* next offset to return */
  int64_t left_records; /* -1 = unbounded */
  int64_t left_bytes;   /* -1 = unbounded */
  int returned;         /* records returned since the last seek */
  int written_only;     /* never flush BUFFERED batches to read them (tk_cursor_written_only) */
  /* the window of the segment file held in buf */
  tk_segment *seg;  /* ref held while set */
  int64_t seg_end;  /* visible end of seg when it was located */
  int64_t seg_next; /* one past seg's last offset */
  int seg_sealed;
  int64_t entry_offset;             /* offset the index entry we started from names; -1 none */
  tk_segment *retired_seg;          /* the last segment found retired (ref held) */
  int retired_waits;                /* ... and how often in a row */
  tk_segment *verified_seg;         /* the run of batches whose CRC was checked (ref held) */
  int64_t verified_lo, verified_hi; /* ... its byte range [lo, hi) */
  /* The batch at the window's position must have baseOffset chain (dense
  ** segments) or at least chain (compacted): what the batch before it, or
  ** the index entry or segment start the walk began at, says comes next.
  ** The CRC does not cover baseOffset; this is what does. */
  int64_t chain;
  /* A dense segment's batches before the offset wanted are stepped over on
  ** the chain's word, without their CRC: pend_at is the last one (-1 none)
  ** and pend_chain the chain before it. When the batch after it looks
  ** wrong, that one is checked first (force_at): its own length or
  ** lastOffsetDelta may be what is damaged. */
  int64_t pend_at, pend_chain, force_at;
  int64_t past_damage; /* after ECORRUPT for a damaged batch: the offset after it; else -1 */
  int64_t buf_pos;     /* file position of win[0] */
  size_t consumed;     /* bytes of the window already walked */
  const uint8_t *win;  /* the window: into the segment's mapping, or buf */
  size_t win_len;
  size_t read_size;
  tk_buf buf;
  /* the batch being iterated */
  tk_batch_hdr hdr;
  const uint8_t *rec, *rec_end;
  int32_t rec_left;
  int in_batch; /* hdr describes a batch whose records were handed out */
  ZSTD_DCtx *dctx;
  tk_buf zbuf;
};

static void drop_segment(takhin_cursor *c) {
  if (c->seg) tk_seg_unref(c->seg);
  c->seg = NULL;
  c->buf.len = 0;
  c->win = NULL;
  c->win_len = 0;
  c->consumed = 0;
  c->rec = c->rec_end = NULL;
  c->rec_left = 0;
  c->in_batch = 0;
}

void tk_cursor_written_only(takhin_cursor *c) { c->written_only = 1; }

int tk_cursor_open_part(takhin_store *s, tk_topic *t, tk_partition *p, takhin_cursor **out) {
  takhin_cursor *c = calloc(1, sizeof *c);
  if (!c) return tk_err(TAKHIN_ENOMEM, "out of memory opening a cursor");
  tk_topic_ref(t);
  c->store = s;
  c->topic = t;
  c->part = p;
  c->left_records = c->left_bytes = -1;
  c->read_size = READ_MIN;
  if (s->opt.read_only) tk_part_refresh(p);
  tk_part_offsets(p, &c->next, NULL, NULL);
  *out = c;
  return TAKHIN_OK;
}

int takhin_cursor_open(takhin_store *s, const char *topic, int32_t partition, takhin_cursor **out) {
  if (!out) return tk_err(TAKHIN_EMISUSE, "takhin_cursor_open: out is NULL");
  *out = NULL;
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_cursor_open: store is NULL or closed");
  tk_topic *t;
  tk_partition *p;
  int rc = tk_store_partition(s, topic, partition, &t, &p);
  if (rc) return rc;
  rc = tk_cursor_open_part(s, t, p, out);
  tk_topic_unref(t);
  return rc;
}

void takhin_cursor_close(takhin_cursor *c) {
  if (!c) return;
  drop_segment(c);
  if (c->verified_seg) tk_seg_unref(c->verified_seg);
  if (c->retired_seg) tk_seg_unref(c->retired_seg);
  tk_buf_free(&c->buf);
  tk_buf_free(&c->zbuf);
  ZSTD_freeDCtx(c->dctx);
  tk_topic_unref(c->topic);
  free(c);
}

/* The high watermark a reader may read up to, making BUFFERED batches
** visible first when the reader asks for them. */
static int64_t readable_end(takhin_cursor *c, int64_t want, int64_t *log_start) {
  tk_partition *p = c->part;
  int64_t hwm, pending;
  tk_part_offsets(p, log_start, &pending, &hwm);
  if (want < hwm || c->written_only || !(c->store->opt.read_only || pending > hwm)) return hwm;
  if (c->store->opt.read_only) tk_part_refresh(p);
  else tk_part_flush(p, 0, 0);
  tk_part_offsets(p, log_start, NULL, &hwm);
  return hwm;
}

static int check_alive(takhin_cursor *c) {
  if (atomic_load(&c->topic->deleted))
    return tk_err(TAKHIN_ENOTFOUND, "topic \"%s\" was deleted", c->topic->name);
  return TAKHIN_OK;
}

int takhin_cursor_seek(takhin_cursor *c, int64_t offset, int64_t max_records, int64_t max_bytes) {
  if (!c) return tk_err(TAKHIN_EMISUSE, "takhin_cursor_seek: cursor is NULL");
  int rc = check_alive(c);
  if (rc) return rc;
  if (max_records < 0 || max_bytes < 0)
    return tk_err(TAKHIN_EINVAL, "max_records and max_bytes must be >= 0 (0 = unbounded)");
  int64_t start;
  int64_t hwm = readable_end(c, offset, &start);
  if (offset < start || offset > hwm)
    return tk_err(TAKHIN_ERANGE, "offset %lld out of range [%lld, %lld] for %s-%d",
                  (long long)offset, (long long)start, (long long)hwm, c->topic->name,
                  (int)c->part->id);
  /* Keep the window when the target lies in the batch being walked: a
  ** sequential reader that seeks to where it stands pays nothing. */
  if (!(c->seg && c->rec && offset >= c->next &&
        offset <= c->hdr.base_offset + c->hdr.last_offset_delta + 1))
    drop_segment(c);
  c->next = offset;
  c->left_records = max_records ? max_records : -1;
  c->left_bytes = max_bytes ? max_bytes : -1;
  c->returned = 0;
  c->read_size = READ_MIN;
  return TAKHIN_OK;
}

/* Make sure bytes [consumed, consumed + need) of the segment are in the
** window. The window points into the segment's mapping when it has one (no
** copy, no syscall); otherwise it is buf, filled by pread in chunks that grow
** while the reader streams. 0, TAKHIN_END when the segment's visible end
** comes first, or an error. */
static int window(takhin_cursor *c, size_t need) {
  if (c->win_len - c->consumed >= need) return TAKHIN_OK;
  int64_t from = c->buf_pos + (int64_t)c->consumed;
  if (from + (int64_t)need > c->seg_end) return TAKHIN_END;
  const uint8_t *map = tk_seg_map(c->seg, c->seg_end, c->seg_sealed);
  if (map) { /* everything up to the visible end, at once */
    c->buf_pos = from;
    c->consumed = 0;
    c->win = map + from;
    c->win_len = (size_t)(c->seg_end - from);
    return TAKHIN_OK;
  }
  size_t want = need > c->read_size ? need : c->read_size;
  if ((int64_t)want > c->seg_end - from) want = (size_t)(c->seg_end - from);
  /* keep what is left, read the rest behind it */
  size_t keep = c->win_len - c->consumed;
  if (keep && c->win == c->buf.p) {
    if (c->consumed) memmove(c->buf.p, c->buf.p + c->consumed, keep);
  } else if (keep) { /* the window was a mapping too short for `need` */
    c->buf.len = 0;
    if (tk_buf_reserve(&c->buf, keep)) return tk_err(TAKHIN_ENOMEM, "out of memory reading");
    memcpy(c->buf.p, c->win + c->consumed, keep);
  }
  c->buf.len = keep;
  c->buf_pos = from;
  c->consumed = 0;
  if (tk_buf_reserve(&c->buf, want - keep)) return tk_err(TAKHIN_ENOMEM, "out of memory reading");
  int fd, rc = tk_seg_fd_acquire(c->seg, &fd);
  /* ERANGE: compaction or retention retired the segment; find its successor */
  if (rc) return rc == TAKHIN_ERANGE ? TK_RELOCATE : rc;
  while (c->buf.len < want) {
    ssize_t r = pread(fd, c->buf.p + c->buf.len, want - c->buf.len, from + (int64_t)c->buf.len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      char path[TK_PATH_MAX];
      tk_seg_path(c->seg, path, sizeof path);
      rc = r < 0 ? tk_err_sys(errno, "read", path)
                 : tk_err(TAKHIN_ECORRUPT, "%s is shorter than its index says (%lld bytes)", path,
                          (long long)(from + (int64_t)c->buf.len));
      break;
    }
    c->buf.len += (size_t)r;
  }
  tk_seg_fd_release(c->seg);
  c->win = c->buf.p;
  c->win_len = c->buf.len;
  if (c->read_size < READ_MAX) c->read_size *= 2;
  return rc;
}

/* Position on the segment holding c->next (or the first after it). */
static int locate(takhin_cursor *c) {
  drop_segment(c);
  int64_t pos = 0, end = 0, hwm = 0;
  c->seg = tk_part_locate(c->part, c->next, &pos, &end, &hwm, &c->seg_next, &c->seg_sealed,
                          &c->entry_offset);
  if (!c->seg) return TAKHIN_END;
  /* Offsets below the segment that no segment holds (lost to a failed
  ** BUFFERED write, or with a segment file deleted by hand) are skipped:
  ** an empty segment after such a gap would otherwise never be left. */
  if (c->next < c->seg->base_offset) c->next = c->seg->base_offset;
  c->seg_end = end;
  c->buf_pos = pos;
  c->chain = c->entry_offset >= 0 ? c->entry_offset : c->seg->base_offset;
  c->pend_at = c->force_at = -1;
  return TAKHIN_OK;
}

#define RETIRED_WAITS 10000 /* looks for the successor of a retired segment before giving up */

/* The segment in hand was retired before its file could be (re)opened:
** retention deleted it, or compaction renamed its replacement over it.
** Drop it and look again. Deleted, its offsets are below the log start now,
** and reading goes on from there. Replaced, the partition's array holds
** the new segment -- but in this process only once the compaction run that
** renamed it has swapped it in (moments later), and in a read-only process
** once a refresh has loaded it: until then the lookup finds the retired
** segment again, and this waits for the swap, yielding. */
static int retired(takhin_cursor *c) {
  tk_partition *p = c->part;
  int rc = check_alive(c); /* a deleted topic's files are all gone: no successor */
  if (rc) return rc;
  if (c->seg == c->retired_seg) {
    if (++c->retired_waits > RETIRED_WAITS) {
      char path[TK_PATH_MAX];
      tk_seg_path(c->seg, path, sizeof path);
      c->retired_waits = 0;
      return tk_err(TAKHIN_ECORRUPT,
                    "%s was deleted or replaced, and no segment has taken its place", path);
    }
    if (c->retired_waits < 100) {
      sched_yield();
    } else {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  } else {
    if (c->retired_seg) tk_seg_unref(c->retired_seg);
    tk_seg_ref(c->seg); /* held so the pointer cannot be reused by a new segment */
    c->retired_seg = c->seg;
    c->retired_waits = 0;
  }
  drop_segment(c);
  if (c->store->opt.read_only) tk_part_refresh(p);
  int64_t start;
  tk_part_offsets(p, &start, NULL, NULL);
  if (c->next < start) c->next = start;
  return TAKHIN_OK;
}

/* Start reading the segment again at pos, where a batch with baseOffset
** chain must be (entry_offset: chain is an index entry's claim, to check). */
static void restart_at(takhin_cursor *c, int64_t pos, int64_t chain, int64_t entry_offset) {
  c->buf.len = c->win_len = c->consumed = 0;
  c->win = NULL;
  c->buf_pos = pos;
  c->chain = chain;
  c->entry_offset = entry_offset;
  c->pend_at = -1;
}

/* The batch at `at` (total bytes) passed its CRC before: remember it, and
** the run of checked batches it extends. */
static void note_verified(takhin_cursor *c, int64_t at, int64_t total) {
  if (c->verified_seg != c->seg) {
    if (c->verified_seg) tk_seg_unref(c->verified_seg);
    tk_seg_ref(c->seg); /* held so the pointer cannot be reused by a new segment */
    c->verified_seg = c->seg;
    c->verified_lo = c->verified_hi = at;
  }
  if (at == c->verified_hi) c->verified_hi = at + total;
  else if (at + total == c->verified_lo) c->verified_lo = at;
  else if (at < c->verified_lo || at >= c->verified_hi) {
    c->verified_lo = at;
    c->verified_hi = at + total;
  }
}

/* The batch at `at` is damaged (why): its header cannot be trusted. Its
** offsets run from c->chain to just before the next sound batch, found by
** its CRC from `from` on. If c->next lies beyond them, go on reading from
** that batch (1); otherwise ECORRUPT naming the file and byte, the window
** staying on the damaged batch so a retry fails the same way. */
static int damaged(takhin_cursor *c, int64_t at, int64_t from, int64_t claimed_last,
                   const char *why) {
  int64_t n_at = -1;
  tk_batch_hdr nh;
  int found = tk_seg_resync(c->seg, from, c->seg_end, c->chain + 1, c->seg_next, &n_at, &nh);
  if (found < 0) return found == TAKHIN_ERANGE ? TK_RELOCATE : found;
  int64_t hi = found ? nh.base_offset - 1 : c->seg_next - 1;
  if (c->next > hi) {
    if (!found) return TAKHIN_END; /* this segment has nothing more for c->next */
    /* In a compacted segment the next batch must also lie past what a
    ** sound damaged batch claims: when two overlap, neither is served. */
    restart_at(c, n_at,
               claimed_last >= nh.base_offset && claimed_last < c->seg_next && !tk_seg_dense(c->seg)
                   ? claimed_last + 1
                   : nh.base_offset,
               -1);
    return 1;
  }
  char path[TK_PATH_MAX];
  tk_seg_path(c->seg, path, sizeof path);
  c->past_damage = hi + 1;
  return tk_err(TAKHIN_ECORRUPT, "%s: damaged batch at byte %lld (offsets %lld-%lld): %s", path,
                (long long)at, (long long)c->chain, (long long)hi, why);
}

/* Load the next batch that holds offsets >= c->next into hdr/rec. Every
** batch walked over is checked (CRC, and that its baseOffset follows the
** batch before it), so damage is found where it is, and skipped when the
** offsets wanted lie beyond it. */
static int next_batch(takhin_cursor *c) {
  c->in_batch = 0;
  for (;;) {
    if (!c->seg) {
      int rc = locate(c);
      if (rc) return rc;
    }
    int rc = window(c, TK_BATCH_HEADER_SIZE);
    if (rc == TK_RELOCATE) {
      if ((rc = retired(c))) return rc;
      continue;
    }
    if (rc == TAKHIN_END) {
      /* This segment's visible part is used up. A sealed segment's later
      ** offsets were compacted away: go on after it. Otherwise look again:
      ** the writer may have appended, or rolled to a new segment. */
      if (c->seg_sealed && c->next < c->seg_next) c->next = c->seg_next;
      int64_t before_end = c->seg_end, before_next = c->next;
      tk_segment *before = c->seg;
      tk_seg_ref(before);
      rc = locate(c);
      int same = c->seg == before && c->seg_end == before_end && c->next == before_next;
      tk_seg_unref(before);
      if (rc) return rc;
      if (same) {
        char path[TK_PATH_MAX];
        tk_seg_path(c->seg, path, sizeof path);
        return tk_err(TAKHIN_ECORRUPT, "%s: offset %lld is not where the index says", path,
                      (long long)c->next);
      }
      continue;
    }
    if (rc) return rc;
    const uint8_t *p = c->win + c->consumed;
    int64_t at = c->buf_pos + (int64_t)c->consumed;
    const char *why = NULL;
    int64_t total = 0;
    int crc_ok = 0;
    if (tk_batch_parse_header(p, c->win_len - c->consumed, &c->hdr) != TAKHIN_OK) {
      why = "bad batch header";
    } else {
      total = tk_batch_total(&c->hdr);
      rc = window(c, (size_t)total);
      if (rc == TK_RELOCATE) {
        if ((rc = retired(c))) return rc;
        continue;
      }
      if (rc == TAKHIN_END) why = "batch runs past the segment end";
      else if (rc) return rc;
      p = c->win + c->consumed;
    }
    int dense = tk_seg_dense(c->seg);
    int64_t last = why ? 0 : c->hdr.base_offset + c->hdr.last_offset_delta;
    /* In a dense segment the chain catches a batch stepped over whose
    ** header lies (see pend_at); a compacted one has gaps, so its batches
    ** are all checked. */
    int skipping = !why && dense && last < c->next && at != c->force_at;
    if (!why && !skipping) {
      /* Random reads come back to the same batches: checking them once per
      ** segment version is enough (segment files never change in place). */
      crc_ok =
          (c->seg == c->verified_seg && at >= c->verified_lo && at + total <= c->verified_hi) ||
          tk_batch_crc_ok(p, &c->hdr);
      if (!crc_ok) why = "CRC mismatch";
      else note_verified(c, at, total);
    }
    if (!why && (dense ? c->hdr.base_offset != c->chain : c->hdr.base_offset < c->chain))
      why = "baseOffset does not follow the batch before it";
    if (!why && last >= c->seg_next) why = "its offsets run past the segment's end";
    if (!why && !dense && at + total + TK_BATCH_HEADER_SIZE <= c->seg_end) {
      /* A compacted segment has gaps between batches, so the chain only
      ** bounds baseOffset from below: the next batch must bound it from
      ** above. If the two overlap, either may be the damaged one. */
      rc = window(c, (size_t)total + TK_BATCH_HEADER_SIZE);
      if (rc == TK_RELOCATE) {
        if ((rc = retired(c))) return rc;
        continue;
      }
      if (rc) return rc;
      p = c->win + c->consumed;
      tk_batch_hdr nh;
      if (tk_batch_parse_header(p + total, TK_BATCH_HEADER_SIZE, &nh) == TAKHIN_OK &&
          nh.base_offset <= last)
        why = "its offsets overlap the next batch's";
    }
    if (why && c->pend_at >= 0 && c->pend_at < at) {
      /* The batch stepped over before this one may be the damaged one. */
      int64_t pa = c->pend_at;
      restart_at(c, pa, c->pend_chain, -1);
      c->force_at = pa;
      continue;
    }
    if (c->entry_offset >= 0) {
      /* The first batch after an index lookup must be the one the entry
      ** names. If not, either the catalog row is wrong (edited or stale)
      ** or the batch is damaged: walk from the entry before (or the
      ** segment start), whose batches tell which. */
      int64_t named = c->entry_offset;
      c->entry_offset = -1;
      if (why || c->hdr.base_offset != named) {
        int64_t prev = -1, pos = 0;
        if (named > c->seg->base_offset) {
          pthread_rwlock_rdlock(&c->part->meta_lock);
          pos = tk_seg_index_lookup(c->seg, named - 1, &prev);
          pthread_rwlock_unlock(&c->part->meta_lock);
        }
        if (prev < 0 || pos >= at) {
          pos = 0;
          prev = -1;
        }
        restart_at(c, pos, prev >= 0 ? prev : c->seg->base_offset, prev);
        continue;
      }
    }
    if (why) {
      /* A sound batch with a wrong baseOffset ends where its length says;
      ** otherwise look for the next sound batch from the next byte on. */
      if (skipping) crc_ok = tk_batch_crc_ok(p, &c->hdr);
      rc = damaged(c, at, crc_ok ? at + total : at + 1,
                   crc_ok ? c->hdr.base_offset + c->hdr.last_offset_delta : -1, why);
      if (rc == 1) continue;
      if (rc == TK_RELOCATE) {
        if ((rc = retired(c))) return rc;
        continue;
      }
      if (rc == TAKHIN_END) {
        if (c->next < c->seg_next) c->next = c->seg_next;
        drop_segment(c);
        continue;
      }
      return rc;
    }
    c->consumed += (size_t)total;
    if (skipping) {
      c->pend_at = at;
      c->pend_chain = c->chain;
    } else c->pend_at = -1;
    if (at == c->force_at) c->force_at = -1;
    c->chain = last + 1;
    if (last < c->next) continue;              /* before our offset */
    if (c->hdr.attributes & TK_ATTR_CONTROL) { /* transaction markers carry no data */
      c->next = last + 1;
      continue;
    }
    if ((c->hdr.attributes & TK_ATTR_CODEC_MASK) != TK_CODEC_NONE && !c->dctx &&
        !(c->dctx = ZSTD_createDCtx()))
      return tk_err(TAKHIN_ENOMEM, "out of memory for a zstd context");
    size_t len;
    rc = tk_batch_records(p, &c->hdr, c->dctx, &c->zbuf, TK_MAX_BATCH_BYTES, &c->rec, &len);
    if (rc) {
      c->consumed -= (size_t)total; /* stay on it: a retry fails the same way */
      c->chain = c->hdr.base_offset;
      char path[TK_PATH_MAX];
      tk_seg_path(c->seg, path, sizeof path);
      char why2[256]; /* tk_err writes the buffer takhin_errmsg() reads: copy first */
      snprintf(why2, sizeof why2, "%s", takhin_errmsg());
      return tk_err(rc, "%s: batch at byte %lld: %s", path, (long long)at, why2);
    }
    c->rec_end = c->rec + len;
    c->rec_left = c->hdr.records_count;
    c->in_batch = 1;
    return TAKHIN_OK;
  }
}

int64_t tk_cursor_past_damage(const takhin_cursor *c) { return c->past_damage; }

tk_segment *tk_cursor_mapped_seg(const takhin_cursor *c, const void *p, size_t n) {
  if (!c || !c->seg || !p) return NULL;
  const uint8_t *map = atomic_load_explicit(&c->seg->map, memory_order_acquire);
  const uint8_t *b = p;
  if (!map || b < map || (size_t)(b - map) > c->seg->map_len ||
      n > c->seg->map_len - (size_t)(b - map))
    return NULL;
  return c->seg;
}

int takhin_cursor_next(takhin_cursor *c, takhin_message *m) {
  if (!c || !m) return tk_err(TAKHIN_EMISUSE, "takhin_cursor_next: NULL argument");
  int rc = check_alive(c);
  if (rc) return rc;
  c->past_damage = -1;
  if (c->left_records == 0) return TAKHIN_END;
  /* Records of the batch in hand are visible already: the high watermark
  ** and log start (one read lock) are consulted only for another batch. */
  for (;;) {
    while (c->rec_left > 0) {
      c->rec_left--;
      if ((rc = tk_record_decode(&c->rec, c->rec_end, &c->hdr, m))) {
        char why[256];
        snprintf(why, sizeof why, "%s", takhin_errmsg());
        c->rec_left = 0;
        return tk_err(rc, "%s-%d: corrupt record in the batch at offset %lld: %s", c->topic->name,
                      (int)c->part->id, (long long)c->hdr.base_offset, why);
      }
      if (m->offset < c->next) continue;
      size_t size = tk_message_payload(m);
      if (c->left_bytes >= 0 && c->returned && (int64_t)size > c->left_bytes) {
        c->left_bytes = 0;
        c->left_records = 0;
        return TAKHIN_END;
      }
      if (c->left_bytes >= 0)
        c->left_bytes = (int64_t)size > c->left_bytes ? 0 : c->left_bytes - (int64_t)size;
      if (c->left_records > 0) c->left_records--;
      c->returned++;
      c->next = m->offset + 1;
      return TAKHIN_OK;
    }
    c->rec = c->rec_end = NULL;
    /* The rest of the batch's offsets were compacted away, if any. */
    if (c->seg && c->in_batch && c->hdr.records_count &&
        c->next <= c->hdr.base_offset + c->hdr.last_offset_delta)
      c->next = c->hdr.base_offset + c->hdr.last_offset_delta + 1;
    int64_t start;
    if (c->next >= readable_end(c, c->next, &start)) return TAKHIN_END;
    /* Records deleted (DeleteRecords, retention) while we read are skipped:
    ** checked once per batch, so a window already read may finish first. */
    if (c->next < start) {
      c->next = start;
      drop_segment(c);
    }
    if ((rc = next_batch(c))) return rc;
  }
}

/* ---- waiting for new data ---------------------------------------------- */

/* Whether the cursor's partition holds offsets at or past its position, as
** a read would see them: a BUFFERED batch still in memory counts (the read
** flushes it), and a read-only handle re-reads the partition first. 1, 0,
** or ENOTFOUND when the topic was deleted. */
static int cursor_ready(takhin_cursor *c) {
  int rc = check_alive(c);
  if (rc) return rc;
  tk_partition *p = c->part;
  if (c->store->opt.read_only) tk_part_refresh(p);
  pthread_rwlock_rdlock(&p->meta_lock);
  int64_t end = p->next_offset > p->pending_next ? p->next_offset : p->pending_next;
  pthread_rwlock_unlock(&p->meta_lock);
  return end > c->next;
}

typedef struct wait_set {
  takhin_cursor *const *c;
  size_t n, *ready;
} wait_set;

static int set_ready(void *arg) {
  wait_set *w = arg;
  for (size_t i = 0; i < w->n; i++) {
    int rc = cursor_ready(w->c[i]);
    if (rc > 0 && w->ready) *w->ready = i;
    if (rc) return rc;
  }
  return 0;
}

int takhin_cursor_wait_any(takhin_cursor *const *cursors, size_t n, int64_t timeout_ms,
                           size_t *ready) {
  if (!cursors || n == 0 || n > 65536)
    return tk_err(TAKHIN_EMISUSE, "takhin_cursor_wait_any: no cursors");
  takhin_store *s = cursors[0] ? cursors[0]->store : NULL;
  tk_partition *one[8], **parts = n <= 8 ? one : malloc(n * sizeof *parts);
  if (!parts) return tk_err(TAKHIN_ENOMEM, "out of memory waiting on %zu cursors", n);
  int rc = TAKHIN_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    if (!cursors[i]) rc = tk_err(TAKHIN_EMISUSE, "takhin_cursor_wait_any: cursor %zu is NULL", i);
    else if (cursors[i]->store != s)
      rc = tk_err(TAKHIN_EMISUSE, "takhin_cursor_wait_any: cursors of two stores");
    else parts[i] = cursors[i]->part;
  }
  if (!rc && !tk_store_live(s))
    rc = tk_err(TAKHIN_EMISUSE, "takhin_cursor_wait: the store is closed");
  if (!rc) {
    wait_set w = {cursors, n, ready};
    rc = tk_wait_for(s, parts, n, set_ready, &w, timeout_ms);
  }
  if (parts != one) free(parts);
  return rc;
}

int takhin_cursor_wait(takhin_cursor *c, int64_t timeout_ms) {
  if (!c) return tk_err(TAKHIN_EMISUSE, "takhin_cursor_wait: cursor is NULL");
  return takhin_cursor_wait_any(&c, 1, timeout_ms, NULL);
}

int takhin_cursor_get(takhin_cursor *c, int64_t offset, takhin_message *m) {
  if (!c || !m) return tk_err(TAKHIN_EMISUSE, "takhin_cursor_get: NULL argument");
  int rc = takhin_cursor_seek(c, offset, 1, 0);
  if (rc) return rc;
  if (offset == readable_end(c, offset, NULL))
    return tk_err(TAKHIN_ERANGE, "offset %lld out of range: it is the high watermark of %s-%d",
                  (long long)offset, c->topic->name, (int)c->part->id);
  rc = takhin_cursor_next(c, m);
  if ((rc == TAKHIN_OK && m->offset != offset) || rc == TAKHIN_END) {
    /* Deleted meanwhile (retention, DeleteRecords) rather than compacted? */
    int64_t start;
    readable_end(c, offset, &start);
    if (offset < start)
      return tk_err(TAKHIN_ERANGE, "offset %lld out of range: below the log start %lld of %s-%d",
                    (long long)offset, (long long)start, c->topic->name, (int)c->part->id);
  }
  /* Offsets with no record: compaction's, or, in any topic, lost with a
  ** segment file deleted by hand or a failed BUFFERED write (takhin_recovery,
  ** TAKHIN_ELOST). */
  if ((rc == TAKHIN_OK && m->offset != offset) || rc == TAKHIN_END)
    rc = tk_err(
        TAKHIN_ENOTFOUND, "offset %lld of %s-%d %s", (long long)offset, c->topic->name,
        (int)c->part->id,
        c->topic->cfg.compact
            ? "was removed by compaction"
            : "holds no record (a transaction marker, or lost with a missing segment file or a failed "
              "write)");
  return rc;
}

int takhin_cursor_get_key(takhin_cursor *c, const void *key, size_t len, takhin_message *m) {
  if (!c || !m || (!key && len))
    return tk_err(TAKHIN_EMISUSE, "takhin_cursor_get_key: NULL argument");
  int rc = check_alive(c);
  if (rc) return rc;
  int64_t off;
  int tomb;
  if (!c->store->opt.read_only) { /* a key just produced must be found: its row written first */
    pthread_mutex_lock(&c->part->append_lock);
    int pending = tk_key_unwritten(c->part) > 0;
    pthread_mutex_unlock(&c->part->append_lock);
    if (pending && (rc = tk_part_flush(c->part, 1, 0))) return rc;
  }
  if ((rc = tk_key_lookup(c->part, key ? key : "", len, &off, &tomb))) return rc;
  rc = takhin_cursor_get(c, off, m);
  if (rc == TAKHIN_ERANGE || rc == TAKHIN_ENOTFOUND)
    rc = tk_err(TAKHIN_ENOTFOUND, "key has no record in %s-%d (its latest, offset %lld, is gone)",
                c->topic->name, (int)c->part->id, (long long)off);
  return rc;
}

int takhin_message_header(const takhin_message *m, size_t i, takhin_header *out) {
  if (!m || !out) return tk_err(TAKHIN_EMISUSE, "takhin_message_header: NULL argument");
  if (i >= m->n_headers)
    return tk_err(TAKHIN_EINVAL, "header %zu out of range: the record has %zu", i, m->n_headers);
  const uint8_t *p = m->headers_raw, *end = p + m->headers_raw_len;
  for (size_t k = 0; k <= i; k++)
    if (tk_header_next(&p, end, out) != TAKHIN_OK)
      return tk_err(TAKHIN_ECORRUPT, "malformed record header %zu", k);
  return TAKHIN_OK;
}

/* ---- ListOffsets -------------------------------------------------------- */

int takhin_offset_for_time(takhin_store *s, const char *topic, int32_t partition, int64_t ts,
                           int64_t *offset) {
  if (!tk_store_live(s))
    return tk_err(TAKHIN_EMISUSE, "takhin_offset_for_time: store is NULL or closed");
  if (!offset) return tk_err(TAKHIN_EMISUSE, "takhin_offset_for_time: NULL argument");
  if (ts < 0 && ts != TAKHIN_OFFSET_EARLIEST && ts != TAKHIN_OFFSET_LATEST)
    return tk_err(TAKHIN_EINVAL, "timestamp %lld is negative (use -2 earliest or -1 latest)",
                  (long long)ts);
  takhin_cursor *c;
  int rc = takhin_cursor_open(s, topic, partition, &c);
  if (rc) return rc;
  tk_partition *p = c->part;
  int64_t hwm = readable_end(c, INT64_MAX, NULL);
  pthread_rwlock_rdlock(&p->meta_lock);
  int64_t log_start = p->log_start;
  int64_t from = -1; /* offset of the first batch worth decoding */
  if (ts == TAKHIN_OFFSET_EARLIEST) {
    from = log_start;
    *offset = log_start;
  } else if (ts == TAKHIN_OFFSET_LATEST) {
    *offset = hwm;
  } else {
    *offset = hwm;
    for (size_t i = 0; i < p->nsegs && from < 0; i++) {
      tk_segment *g = p->segs[i];
      if (g->max_ts < ts || g->next_offset <= log_start) continue;
      /* first stretch whose running max reaches ts */
      size_t lo = 0, hi = g->idx_n;
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->idx[mid].run_max < ts) lo = mid + 1;
        else hi = mid;
      }
      from = lo < g->idx_n ? g->idx[lo].offset : g->base_offset;
      if (from < log_start) from = log_start;
    }
  }
  pthread_rwlock_unlock(&p->meta_lock);
  if (ts >= 0 && from >= 0) {
    /* Decode forward from the stretch: the first record at or after ts. */
    takhin_message m;
    rc = takhin_cursor_seek(c, from, 0, 0);
    while (!rc && (rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
      if (m.timestamp >= ts) {
        *offset = m.offset;
        break;
      }
    }
    if (rc == TAKHIN_END) rc = TAKHIN_OK;
  }
  takhin_cursor_close(c);
  return rc;
}

/* At the end of the file: code added above takhin_cursor_next moves its hot
** loop, which measurably changed the api path's time (alignment). */
const void *tk_seg_mapping(const tk_segment *g, size_t *len) {
  const uint8_t *map = atomic_load_explicit(&g->map, memory_order_acquire);
  *len = map ? g->map_len : 0;
  return map;
}
