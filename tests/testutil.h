/*
** testutil.h -- helpers shared by the Criterion tests: fresh store paths under
** the build folder, and small record builders.
*/
#ifndef TAKHIN_TESTUTIL_H
#define TAKHIN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "takhin.h"
#include "testing.h" /* takhin_topic_balance; the hooks in TAKHIN_TESTING builds */

/* A fresh, empty directory for one test; returns a path "<dir>/store.db"
** (static storage, overwritten by the next call). */
const char *tu_store_path(const char *test_name);

/* The "<db>-takhin/<topic>-<partition>/<base %020>.log" path of a segment. */
void tu_segment_path(char *out, size_t cap, const char *db, const char *topic,
                     int partition, int64_t base);

/* Remove a directory tree (best effort). */
void tu_rmtree(const char *path);

/* Size of a file, -1 if missing. */
int64_t tu_file_size(const char *path);

/* Fill a record whose key is "k<i>" and value is "v<i>" padded to vlen bytes
** with a repeating pattern derived from i; buffers are caller-owned. */
void tu_make_record(takhin_record *r, char *kbuf, size_t kcap, char *vbuf, size_t vlen,
                    long i);

/* Check value bytes produced by tu_make_record for index i. */
int tu_value_ok(const void *v, size_t len, size_t vlen, long i);

/* A store folder (catalog, WAL leftovers, segment tree) held in memory, so
** each case of a sweep can start again from identical bytes. */
typedef struct tu_snap_ent {
  char rel[512];
  int is_dir;
  uint8_t *data;
  size_t len;
} tu_snap_ent;

typedef struct tu_snap {
  char root[1024];
  tu_snap_ent *v;
  size_t n, cap;
} tu_snap;

/* Read the folder root into sn. 0, or -1 with tu_error() saying why. */
int tu_snap_take(tu_snap *sn, const char *root);

/* Make root hold exactly the snapshot again (stray files removed too).
** 0, or -1 with tu_error() saying why. */
int tu_snap_restore(const tu_snap *sn);

/* Free a snapshot's contents (sn zeroed). */
void tu_snap_free(tu_snap *sn);

/* Under root: a private mount namespace (the mount vanishes with this
** process even if an assertion ends the test early) and a tmpfs of size
** ("4m") at <tu_store_path(name)'s folder>/fs, whose path goes to dir.
** 0, or -1 with tu_error() saying which step failed. */
int tu_mount_small_fs(const char *name, const char *size, char *dir, size_t cap);

/* Fill the file system holding dir to the last byte; returns the filler's
** path (static) so the test can give the space back, NULL (tu_error())
** when it cannot be created. */
const char *tu_fill_disk(const char *dir);

/* What the last failed tu_snap_*, tu_mount_small_fs or tu_fill_disk ran
** into. */
const char *tu_error(void);

#endif
