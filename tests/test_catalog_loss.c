/*
** test_catalog_loss.c -- the catalog (store.db) deleted, emptied, filled
** with garbage, restored from an older backup, or edited by hand, while the
** data folder is intact. After each, a writer's open must bring back every
** topic with its partition count and configs, every record at its offset
** with its key and value, the log start offsets, the key index of the
** compacted topic (takhin_cursor_get_key), and delete no file. Also: topic
** deletion still removes its folders, including after a crash mid-delete
** (marked "<topic>-<n>.<id>-delete" folders), and only those.
**
** The fixture: "plain" (3 partitions, zstd, small segments, a DeleteRecords
** inside a segment of partition 1) and "comp" (compacted, 2 partitions,
** compacted once so its segments have gaps), closed cleanly.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define NP 3      /* partitions of "plain" */
#define NREC 60   /* records per partition of "plain" */
#define NKEYS 12  /* keys of "comp" */
#define ROUNDS 8  /* values per key of "comp" */
#define START1 25 /* DeleteRecords point of plain-1 (inside a segment) */
#define MAXF 512

typedef struct file_sz {
  char rel[512];
  int64_t size;
} file_sz;

typedef struct fx {
  char db[4096];
  char data[4200];
  int64_t hwm[NP + 1]; /* plain; [NP] is the partition add_partitions makes */
  int comp_rounds;     /* rounds of values "comp" holds */
  int late;            /* topic "late" exists (NREC records in each of 2 partitions) */
  int32_t plain_parts;
  int64_t retention_ms; /* plain's */
  file_sz files[MAXF];
  size_t nfiles;
} fx;

/* ---- records ------------------------------------------------------------ */

static void plain_kv(int p, int64_t o, char *k, size_t kc, char *v, size_t vc) {
  snprintf(k, kc, "p%d-%lld", p, (long long)o);
  snprintf(v, vc, "value-%d-%lld-%0*d", p, (long long)o, (int)(20 + o % 17), 7);
}

static void produce_plain(takhin_store *s, const char *topic, int p, int64_t *hwm, int n) {
  for (int i = 0; i < n; i++) {
    char k[64], v[128];
    plain_kv(p, *hwm, k, sizeof k, v, sizeof v);
    takhin_record r = {.key = k,
                       .key_len = strlen(k),
                       .value = v,
                       .value_len = strlen(v),
                       .timestamp = 1700000000000LL + *hwm};
    int64_t off;
    cr_assert_eq(takhin_produce(s, topic, p, &r, 1, &off), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(off, *hwm);
    (*hwm)++;
  }
}

static void comp_value(int key, int round, char *v, size_t vc) {
  snprintf(v, vc, "round-%d-of-key-%d", round, key);
}

static void produce_comp(takhin_store *s, int from_round, int to_round) {
  for (int r = from_round; r < to_round; r++)
    for (int k = 0; k < NKEYS; k++) {
      char key[32], v[64];
      snprintf(key, sizeof key, "key-%d", k);
      comp_value(k, r, v, sizeof v);
      takhin_record rec = {.key = key,
                           .key_len = strlen(key),
                           .value = v,
                           .value_len = strlen(v),
                           .timestamp = TAKHIN_TIMESTAMP_NOW};
      cr_assert_eq(takhin_produce(s, "comp", k % 2, &rec, 1, NULL), TAKHIN_OK, "%s",
                   takhin_errmsg());
    }
}

/* ---- files ---------------------------------------------------------------- */

static void walk(fx *f, const char *rel) {
  char path[8400];
  snprintf(path, sizeof path, "%s%s%s", f->data, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char r[512], full[8800];
    snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", f->data, r);
    struct stat st;
    cr_assert_eq(stat(full, &st), 0);
    if (S_ISDIR(st.st_mode)) {
      walk(f, r);
    } else if (strstr(e->d_name, ".log")) {
      cr_assert_lt(f->nfiles, MAXF);
      snprintf(f->files[f->nfiles].rel, sizeof f->files[f->nfiles].rel, "%s", r);
      f->files[f->nfiles++].size = st.st_size;
    }
  }
  closedir(d);
}

static void snap_files(fx *f) {
  f->nfiles = 0;
  walk(f, "");
  cr_assert_gt(f->nfiles, 8, "the fixture has several segments");
}

/* Every segment file there was is still there, with the same bytes count. */
static void files_kept(const fx *f, const char *ctx) {
  for (size_t i = 0; i < f->nfiles; i++) {
    char full[8800];
    snprintf(full, sizeof full, "%s/%s", f->data, f->files[i].rel);
    cr_assert_eq(tu_file_size(full), f->files[i].size, "%s: %s was %lld bytes, now %lld", ctx,
                 f->files[i].rel, (long long)f->files[i].size, (long long)tu_file_size(full));
  }
}

static void spit(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(data, 1, len, fp), len);
  cr_assert_eq(fclose(fp), 0);
}

static void sql(const fx *f, const char *q) {
  sqlite3 *h;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  char *msg = NULL;
  cr_assert_eq(sqlite3_exec(h, q, NULL, NULL, &msg), SQLITE_OK, "%s: %s", q, msg ? msg : "");
  cr_assert_gt(sqlite3_changes(h), 0, "\"%s\" changed no row", q);
  sqlite3_close(h);
}

static int64_t topic_id_of(const fx *f, const char *topic) {
  sqlite3 *h;
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  cr_assert_eq(
      sqlite3_prepare_v2(h, "SELECT topic_id FROM takhin_cat_topic WHERE name = ?1", -1, &st, NULL),
      SQLITE_OK);
  sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return id;
}

/* ---- the fixture ------------------------------------------------------------ */

static void build(fx *f, const char *name) {
  memset(f, 0, sizeof *f);
  snprintf(f->db, sizeof f->db, "%s", tu_store_path(name));
  snprintf(f->data, sizeof f->data, "%s-takhin", f->db);
  takhin_store *s = tu_open_ok(f->db);
  cr_assert_eq(
      takhin_topic_create(s, "plain", NP,
                          (const char *const[]){"compression", "zstd", "retention_ms", "123456789",
                                                "segment_bytes", "1200", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_topic_create(s, "comp", 2,
                                   (const char *const[]){"cleanup_policy", "compact",
                                                         "segment_bytes", "600", NULL}),
               TAKHIN_OK, "%s", takhin_errmsg());
  for (int p = 0; p < NP; p++) produce_plain(s, "plain", p, &f->hwm[p], NREC);
  cr_assert_eq(takhin_delete_records(s, "plain", 1, START1), TAKHIN_OK, "%s", takhin_errmsg());
  produce_comp(s, 0, ROUNDS);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "comp", -1, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(cr.records_removed, 0, "the compacted topic has gaps");
  f->comp_rounds = ROUNDS;
  f->plain_parts = NP;
  f->retention_ms = 123456789;
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  snap_files(f);
}

/* ---- the checks ---------------------------------------------------------- */

static void check_plain_part(takhin_store *s, const char *topic, int p, int64_t start, int64_t hwm,
                             const char *ctx) {
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, topic, p, &pi), TAKHIN_OK, "%s: %s", ctx,
               takhin_errmsg());
  cr_assert_eq(pi.high_watermark, hwm, "%s: %s-%d high watermark %lld, want %lld", ctx, topic, p,
               (long long)pi.high_watermark, (long long)hwm);
  cr_assert_eq(pi.log_start_offset, start, "%s: %s-%d log start %lld, want %lld", ctx, topic, p,
               (long long)pi.log_start_offset, (long long)start);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, topic, p, &c), TAKHIN_OK);
  for (int64_t o = start; o < hwm; o++) {
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, TAKHIN_OK, "%s: %s-%d offset %lld: %s", ctx, topic, p, (long long)o,
                 takhin_errmsg());
    char k[64], v[128];
    plain_kv(p, o, k, sizeof k, v, sizeof v);
    cr_assert(m.offset == o && m.key_len == strlen(k) && !memcmp(m.key, k, m.key_len) &&
                  m.value_len == strlen(v) && !memcmp(m.value, v, m.value_len),
              "%s: %s-%d offset %lld holds another record", ctx, topic, p, (long long)o);
  }
  if (start > 0)
    cr_assert_eq(takhin_cursor_get(c, start - 1, &m), TAKHIN_ERANGE,
                 "%s: %s-%d below the log start is gone", ctx, topic, p);
  takhin_cursor_close(c);
}

static void check_comp(takhin_store *s, int rounds, const char *ctx) {
  for (int k = 0; k < NKEYS; k++) {
    takhin_cursor *c;
    takhin_message m;
    char key[32], v[64];
    snprintf(key, sizeof key, "key-%d", k);
    comp_value(k, rounds - 1, v, sizeof v);
    cr_assert_eq(takhin_cursor_open(s, "comp", k % 2, &c), TAKHIN_OK);
    int rc = takhin_cursor_get_key(c, key, strlen(key), &m);
    cr_assert_eq(rc, TAKHIN_OK, "%s: get_key %s: %s", ctx, key, takhin_errmsg());
    cr_assert(m.value_len == strlen(v) && !memcmp(m.value, v, m.value_len),
              "%s: get_key %s gives %.*s, want %s", ctx, key, (int)m.value_len,
              (const char *)m.value, v);
    takhin_cursor_close(c);
  }
}

/* Everything the fixture holds is back, and the store goes on. */
static void verify(fx *f, takhin_store *s, const char *ctx) {
  char **names;
  size_t n;
  cr_assert_eq(takhin_topic_list(s, &names, &n), TAKHIN_OK);
  cr_assert_eq(n, (size_t)(2 + f->late), "%s: %zu topics", ctx, n);
  cr_assert_str_eq(names[0], "comp");
  cr_assert_str_eq(names[f->late ? 2 : 1], "plain");
  takhin_free(names);
  takhin_topic_desc d;
  cr_assert_eq(takhin_topic_describe(s, "plain", &d), TAKHIN_OK);
  cr_assert_eq(d.partitions, f->plain_parts, "%s: plain has %d partitions", ctx, (int)d.partitions);
  cr_assert_str_eq(d.compression, "zstd", "%s", ctx);
  cr_assert_eq(d.retention_ms, f->retention_ms, "%s: retention_ms %lld", ctx,
               (long long)d.retention_ms);
  cr_assert_eq(d.segment_bytes, 1200, "%s", ctx);
  cr_assert_str_eq(d.cleanup_policy, "delete", "%s", ctx);
  cr_assert_eq(takhin_topic_describe(s, "comp", &d), TAKHIN_OK);
  cr_assert_eq(d.partitions, 2);
  cr_assert_str_eq(d.cleanup_policy, "compact", "%s", ctx);
  cr_assert_eq(d.segment_bytes, 600, "%s", ctx);
  for (int p = 0; p < f->plain_parts; p++)
    check_plain_part(s, "plain", p, p == 1 ? START1 : 0, f->hwm[p], ctx);
  check_comp(s, f->comp_rounds, ctx);
  if (f->late) {
    cr_assert_eq(takhin_topic_describe(s, "late", &d), TAKHIN_OK);
    cr_assert_eq(d.partitions, 2);
    cr_assert_eq(d.max_message_bytes, 5000, "%s", ctx);
    for (int p = 0; p < 2; p++) check_plain_part(s, "late", p, 0, NREC, ctx);
  }
  files_kept(f, ctx);
}

/* Open, verify, produce one more record to plain-0 (it must get the next
** offset), close; open again: still all there, nothing left to rebuild. */
static takhin_recovery_info reopen_and_verify(fx *f, const char *ctx) {
  takhin_store *s = tu_open_ok(f->db);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  verify(f, s, ctx);
  produce_plain(s, "plain", 0, &f->hwm[0], 1);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  snap_files(f);
  s = tu_open_ok(f->db);
  takhin_recovery_info again;
  takhin_recovery(s, &again);
  cr_assert_eq(again.topics_rebuilt + again.partitions_rebuilt + again.segments_rebuilt +
                   again.meta_trusted_file + again.meta_trusted_catalog + again.folders_deleted,
               0, "%s: the repaired catalog and files agree on the next open", ctx);
  verify(f, s, ctx);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  return ri;
}

/* ---- lost, empty, damaged --------------------------------------------------- */

Test(catalog_loss, deleted) {
  fx f;
  build(&f, "cl_deleted");
  tu_remove_catalog(f.db);
  takhin_recovery_info ri = reopen_and_verify(&f, "catalog deleted");
  cr_assert_eq(ri.topics_rebuilt, 2);
  cr_assert_eq(ri.partitions_rebuilt, NP + 2);
  cr_assert_eq(ri.folders_kept, 0);
  cr_assert_eq(ri.files_removed, 0);
}

Test(catalog_loss, read_only_open_of_a_missing_catalog_changes_nothing) {
  fx f;
  build(&f, "cl_ro_missing");
  tu_remove_catalog(f.db);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_ENOTFOUND);
  cr_assert_null(s);
  cr_assert_eq(tu_file_size(f.db), -1, "a read-only open creates no catalog");
  files_kept(&f, "read-only");
}

Test(catalog_loss, truncated_to_zero_bytes) {
  fx f;
  build(&f, "cl_empty");
  tu_remove_catalog(f.db);
  spit(f.db, "", 0);
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_ECATALOG);
  cr_assert(strstr(takhin_errmsg(), "open the store once for writing"), "%s", takhin_errmsg());
  cr_assert_eq(tu_file_size(f.db), 0, "a read-only open changes nothing");
  takhin_recovery_info ri = reopen_and_verify(&f, "catalog emptied");
  cr_assert_eq(ri.topics_rebuilt, 2);
}

Test(catalog_loss, garbage) {
  fx f;
  build(&f, "cl_garbage");
  tu_remove_catalog(f.db);
  uint8_t junk[8192];
  uint32_t x = 7;
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 1103515245 + 12345) >> 16);
  spit(f.db, junk, sizeof junk);
  /* A reader changes nothing and says why. */
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(f.db, &o, &s), TAKHIN_ECATALOG);
  cr_assert(strstr(takhin_errmsg(), "damaged"), "%s", takhin_errmsg());
  cr_assert_eq(tu_file_size(f.db), (int64_t)sizeof junk);
  /* The writer keeps the damaged file aside and rebuilds. */
  s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.catalog_moved_aside, 1);
  cr_assert_eq(ri.topics_rebuilt, 2);
  cr_assert(strstr(ri.catalog_aside, ".damaged-"), "%s", ri.catalog_aside);
  FILE *fp = fopen(ri.catalog_aside, "rb");
  cr_assert_not_null(fp, "the damaged catalog is kept at %s", ri.catalog_aside);
  uint8_t back[sizeof junk + 1];
  cr_assert_eq(fread(back, 1, sizeof back, fp), sizeof junk);
  fclose(fp);
  cr_assert(!memcmp(back, junk, sizeof junk), "the damaged catalog is kept byte for byte");
  verify(&f, s, "garbage catalog");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  reopen_and_verify(&f, "garbage catalog, reopened");
}

/* ---- an older backup ------------------------------------------------------ */

static void backup(const char *from, const char *to) {
  sqlite3 *a, *b;
  cr_assert_eq(sqlite3_open(from, &a), SQLITE_OK);
  cr_assert_eq(sqlite3_open(to, &b), SQLITE_OK);
  sqlite3_backup *bk = sqlite3_backup_init(b, "main", a, "main");
  cr_assert_not_null(bk);
  cr_assert_eq(sqlite3_backup_step(bk, -1), SQLITE_DONE);
  sqlite3_backup_finish(bk);
  sqlite3_close(a);
  sqlite3_close(b);
}

Test(catalog_loss, older_backup_restored) {
  fx f;
  build(&f, "cl_older");
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", f.db);
  backup(f.db, old);
  /* After the backup: more records, a new topic, a config change, a new
  ** partition, more values per key, a log start moved by DeleteRecords. */
  takhin_store *s = tu_open_ok(f.db);
  for (int p = 0; p < NP; p++) produce_plain(s, "plain", p, &f.hwm[p], 40);
  cr_assert_eq(
      takhin_topic_create(s, "late", 2, (const char *const[]){"max_message_bytes", "5000", NULL}),
      TAKHIN_OK);
  int64_t lh[2] = {0, 0};
  for (int p = 0; p < 2; p++) produce_plain(s, "late", p, &lh[p], NREC);
  f.late = 1;
  cr_assert_eq(
      takhin_topic_alter_config(s, "plain", (const char *const[]){"retention_ms", "999999", NULL}),
      TAKHIN_OK);
  f.retention_ms = 999999;
  cr_assert_eq(takhin_topic_add_partitions(s, "plain", NP + 1), TAKHIN_OK);
  f.plain_parts = NP + 1;
  produce_plain(s, "plain", NP, &f.hwm[NP], 30);
  produce_comp(s, ROUNDS, ROUNDS + 3);
  f.comp_rounds = ROUNDS + 3;
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  snap_files(&f);
  tu_remove_catalog(f.db);
  cr_assert_eq(rename(old, f.db), 0);
  takhin_recovery_info ri = reopen_and_verify(&f, "older backup");
  cr_assert_eq(ri.topics_rebuilt, 1, "\"late\" came back from its files");
  cr_assert_geq(ri.meta_trusted_file, 1, "plain's config and partition count came from its files");
  cr_assert_eq(ri.folders_kept, 0);
}

/* ---- hand edits ------------------------------------------------------------ */

static void hand_edit(const char *name, const char *q, const char *ctx) {
  fx f;
  build(&f, name);
  sql(&f, q);
  takhin_recovery_info ri = reopen_and_verify(&f, ctx);
  cr_assert_eq(ri.files_removed, 0, "%s", ctx);
  cr_assert_eq(ri.folders_deleted, 0, "%s", ctx);
}

Test(catalog_loss, partition_count_lowered) {
  hand_edit("cl_parts", "UPDATE takhin_cat_topic SET partitions = 1 WHERE name = 'plain'",
            "partition count lowered");
}

Test(catalog_loss, topic_rows_deleted) {
  hand_edit("cl_topic_row", "DELETE FROM takhin_cat_topic WHERE name IN ('plain', 'comp')",
            "topic rows deleted");
}

Test(catalog_loss, all_rows_of_a_compacted_topic_deleted) {
  hand_edit(
      "cl_comp_rows",
      "DELETE FROM takhin_cat_key; DELETE FROM takhin_cat_segment; DELETE FROM takhin_cat_index_run; "
      "DELETE FROM takhin_cat_partition; DELETE FROM takhin_cat_topic WHERE name = 'comp'",
      "every row of comp deleted");
}

Test(catalog_loss, segment_rows_deleted) {
  hand_edit("cl_seg_rows",
            "DELETE FROM takhin_cat_segment WHERE base_offset < 30 AND topic_id = "
            "(SELECT topic_id FROM takhin_cat_topic WHERE name = 'plain')",
            "first segment rows deleted");
}

Test(catalog_loss, log_start_edited) {
  hand_edit("cl_log_start",
            "UPDATE takhin_cat_partition SET log_start_offset = CASE partition "
            "WHEN 0 THEN 40 WHEN 1 THEN 0 ELSE 100000 END WHERE topic_id = "
            "(SELECT topic_id FROM takhin_cat_topic WHERE name = 'plain')",
            "log starts edited");
}

Test(catalog_loss, config_edited) {
  hand_edit(
      "cl_config",
      "UPDATE takhin_cat_topic SET retention_ms = 5, compression = 'none' WHERE name = 'plain'",
      "config edited");
}

/* ---- folders no topic owns, and deletion -------------------------------------- */

Test(catalog_loss, unattributable_folders_are_kept) {
  fx f;
  build(&f, "cl_unknown");
  char a[4400], b[4400], c[4400], path[8900];
  snprintf(a, sizeof a, "%s/stranger-0", f.data);    /* no topic.meta, unknown name */
  snprintf(b, sizeof b, "%s/plain-7", f.data);       /* no topic.meta, past plain's partitions */
  snprintf(c, sizeof c, "%s/my own things", f.data); /* not a partition folder at all */
  const char *dirs[] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(mkdir(dirs[i], 0755), 0);
    snprintf(path, sizeof path, "%s/00000000000000000000.log", dirs[i]);
    spit(path, "not a batch", 11);
  }
  snprintf(path, sizeof path, "%s/topic.meta", a);
  spit(path, "takhin-topic-meta 1\nname stranger\n", 34); /* unreadable: cut short */
  takhin_store *s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.folders_kept, 3);
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/00000000000000000000.log", dirs[i]);
    cr_assert_eq(tu_file_size(path), 11, "%s is kept as it was", path);
  }
  verify(&f, s, "unknown folders");
  cr_assert_eq(takhin_topic_partitions(s, "stranger", &(int32_t){0}), TAKHIN_ENOTFOUND);
  cr_assert_eq(takhin_topic_add_partitions(s, "plain", 8), TAKHIN_EEXISTS,
               "a new partition neither adopts nor wipes plain-7");
  takhin_close(s);
}

Test(catalog_loss, delete_removes_the_folders) {
  fx f;
  build(&f, "cl_delete");
  takhin_store *s = tu_open_ok(f.db);
  cr_assert_eq(takhin_topic_delete(s, "plain"), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  DIR *d = opendir(f.data);
  struct dirent *e;
  while ((e = readdir(d))) cr_assert(strncmp(e->d_name, "plain", 5), "%s is left", e->d_name);
  closedir(d);
  s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.topics_rebuilt, 0, "a deleted topic does not come back");
  cr_assert_eq(takhin_topic_partitions(s, "plain", &(int32_t){0}), TAKHIN_ENOTFOUND);
  check_comp(s, ROUNDS, "after delete");
  cr_assert_eq(takhin_topic_create(s, "plain", 1, NULL), TAKHIN_OK, "the name is free again");
  takhin_close(s);
}

/* A crash after the first folder was marked, before the rows went: the next
** open finishes the delete (rows, the marked folder, and the unmarked
** folders of the same topic), and touches nothing else. */
Test(catalog_loss, crash_mid_delete_is_finished_on_open) {
  fx f;
  build(&f, "cl_crash_delete");
  char from[4400], to[4400];
  snprintf(from, sizeof from, "%s/plain-0", f.data);
  snprintf(to, sizeof to, "%s/plain-0.%lld-delete", f.data, (long long)topic_id_of(&f, "plain"));
  cr_assert_eq(rename(from, to), 0);
  takhin_store *s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.folders_deleted, NP);
  cr_assert_eq(takhin_topic_partitions(s, "plain", &(int32_t){0}), TAKHIN_ENOTFOUND);
  check_comp(s, ROUNDS, "after the finished delete");
  takhin_close(s);
  for (int p = 0; p < NP; p++) {
    snprintf(from, sizeof from, "%s/plain-%d", f.data, p);
    cr_assert(!tu_dir_exists(from), "%s is gone", from);
  }
  cr_assert(!tu_dir_exists(to));
}

/* A crash after the rows went, before the marked folders were removed. */
Test(catalog_loss, marked_folders_of_a_deleted_topic_are_removed) {
  fx f;
  build(&f, "cl_crash_delete2");
  int64_t id = topic_id_of(&f, "plain");
  char from[4400], to[NP][4400];
  for (int p = 0; p < NP; p++) {
    snprintf(from, sizeof from, "%s/plain-%d", f.data, p);
    snprintf(to[p], sizeof to[p], "%s/plain-%d.%lld-delete", f.data, p, (long long)id);
    cr_assert_eq(rename(from, to[p]), 0);
  }
  sql(&f, "DELETE FROM takhin_cat_topic WHERE name = 'plain'");
  takhin_store *s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.folders_deleted, NP);
  cr_assert_eq(ri.topics_rebuilt, 0);
  cr_assert_eq(takhin_topic_partitions(s, "plain", &(int32_t){0}), TAKHIN_ENOTFOUND);
  check_comp(s, ROUNDS, "after the finished delete");
  takhin_close(s);
  for (int p = 0; p < NP; p++) cr_assert(!tu_dir_exists(to[p]), "%s is gone", to[p]);
}

/* An older backup that still holds a topic which was deleted and created
** again since: the files name the new incarnation and win; the old rows go. */
Test(catalog_loss, older_backup_of_a_topic_created_again) {
  fx f;
  build(&f, "cl_recreated");
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", f.db);
  backup(f.db, old);
  takhin_store *s = tu_open_ok(f.db);
  cr_assert_eq(takhin_topic_delete(s, "plain"), TAKHIN_OK);
  cr_assert_eq(
      takhin_topic_create(s, "plain", 2, (const char *const[]){"retention_ms", "4242", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  int64_t h[2] = {0, 0};
  produce_plain(s, "plain", 0, &h[0], 10);
  produce_plain(s, "plain", 1, &h[1], 5);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  tu_remove_catalog(f.db);
  cr_assert_eq(rename(old, f.db), 0);
  s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.meta_trusted_file, 1, "the files' incarnation of plain won");
  cr_assert_eq(ri.folders_kept, 0);
  takhin_topic_desc d;
  cr_assert_eq(takhin_topic_describe(s, "plain", &d), TAKHIN_OK);
  cr_assert_eq(d.partitions, 2);
  cr_assert_eq(d.retention_ms, 4242);
  cr_assert_str_eq(d.compression, "none");
  check_plain_part(s, "plain", 0, 0, 10, "created again");
  check_plain_part(s, "plain", 1, 0, 5, "created again");
  check_comp(s, ROUNDS, "created again");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* One partition folder whose topic.meta names another incarnation than the
** catalog and its sibling folders: it is not read as that partition, and it
** is kept (renamed "<folder>.<ms>-stray"), never removed. */
Test(catalog_loss, conflicting_folder_is_moved_aside_and_kept) {
  fx f;
  build(&f, "cl_conflict");
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "sed -i 's/^created_ms .*/created_ms 1/' '%s/plain-2/topic.meta'",
           f.data);
  cr_assert_eq(system(cmd), 0);
  takhin_store *s = tu_open_ok(f.db);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.folders_kept, 1);
  check_plain_part(s, "plain", 0, 0, f.hwm[0], "conflict");
  check_plain_part(s, "plain", 1, START1, f.hwm[1], "conflict");
  /* The catalog's partition 2 lost its files to the stray folder: it goes on
  ** empty, after the offsets it had (never handed out again), and says so. */
  cr_assert_gt(ri.segments_missing, 0);
  cr_assert_eq(ri.offsets_lost, f.hwm[2]);
  check_plain_part(s, "plain", 2, f.hwm[2], f.hwm[2], "conflict: partition 2 goes on, empty");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  /* Every file of the conflicting folder is still there, under the new name. */
  DIR *d = opendir(f.data);
  struct dirent *e;
  char stray[512] = "";
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "plain-2.", 8) && strstr(e->d_name, "-stray"))
      snprintf(stray, sizeof stray, "%s", e->d_name);
  closedir(d);
  cr_assert(*stray, "the conflicting folder is kept under a new name");
  size_t kept = 0;
  for (size_t i = 0; i < f.nfiles; i++) {
    if (strncmp(f.files[i].rel, "plain-2/", 8)) continue;
    char full[9000];
    snprintf(full, sizeof full, "%s/%s/%s", f.data, stray, f.files[i].rel + 8);
    cr_assert_eq(tu_file_size(full), f.files[i].size, "%s", full);
    kept++;
  }
  cr_assert_gt(kept, 0);
}

/* Compaction over a key index rebuilt from the log: it keeps each key's
** latest record, and nothing before key_from (records from before the topic
** was switched to compact, which the key index never covered: here with
** null keys, which compaction would otherwise drop). */
Test(catalog_loss, compaction_after_rebuild_respects_key_from) {
  fx f;
  build(&f, "cl_key_from");
  takhin_store *s = tu_open_ok(f.db);
  cr_assert_eq(takhin_topic_create(s, "sw", 1, (const char *const[]){"segment_bytes", "300", NULL}),
               TAKHIN_OK);
  for (int i = 0; i < 20; i++) {
    char v[32];
    snprintf(v, sizeof v, "unkeyed-%d", i);
    takhin_record r = {.value = v, .value_len = strlen(v), .timestamp = TAKHIN_TIMESTAMP_NOW};
    cr_assert_eq(takhin_produce(s, "sw", 0, &r, 1, NULL), TAKHIN_OK);
  }
  cr_assert_eq(
      takhin_topic_alter_config(s, "sw", (const char *const[]){"cleanup_policy", "compact", NULL}),
      TAKHIN_OK, "%s", takhin_errmsg());
  for (int i = 0; i < 40; i++) {
    char k[16], v[32];
    snprintf(k, sizeof k, "k%d", i % 4);
    snprintf(v, sizeof v, "keyed-%d", i);
    takhin_record r = {.key = k,
                       .key_len = strlen(k),
                       .value = v,
                       .value_len = strlen(v),
                       .timestamp = TAKHIN_TIMESTAMP_NOW};
    cr_assert_eq(takhin_produce(s, "sw", 0, &r, 1, NULL), TAKHIN_OK);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  tu_remove_catalog(f.db);
  s = tu_open_ok(f.db);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "sw", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_gt(cr.records_removed, 0, "older values of the keys were compacted");
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "sw", 0, &c), TAKHIN_OK);
  for (int i = 0; i < 20; i++) {
    cr_assert_eq(takhin_cursor_get(c, i, &m), TAKHIN_OK, "unkeyed record %d: %s", i,
                 takhin_errmsg());
    cr_assert_null(m.key);
  }
  for (int k = 0; k < 4; k++) {
    char key[16], v[32];
    snprintf(key, sizeof key, "k%d", k);
    snprintf(v, sizeof v, "keyed-%d", 36 + k);
    cr_assert_eq(takhin_cursor_get_key(c, key, strlen(key), &m), TAKHIN_OK, "%s", takhin_errmsg());
    cr_assert_eq(m.offset, 20 + 36 + k);
    cr_assert(m.value_len == strlen(v) && !memcmp(m.value, v, m.value_len));
  }
  takhin_cursor_close(c);
  check_comp(s, ROUNDS, "after compaction");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

/* An older backup restored after DeleteRecords (or retention) deleted the
** first segments: the backup still lists them. Their files were deleted on
** purpose, below the log start the topic.meta file keeps: nothing is lost,
** and recovery must not report them as missing segments or lost offsets. */
Test(catalog_loss, older_backup_lists_segments_deleted_below_the_log_start) {
  const char *db = tu_store_path("cl_older_deleted");
  takhin_store *s = tu_open_ok(db);
  cr_assert_eq(takhin_topic_create(s, "t", 1, (const char *const[]){"segment_bytes", "2000", NULL}),
               TAKHIN_OK);
  char k[32], v[300];
  for (long i = 0; i < 200; i++) {
    takhin_record r;
    tu_make_record(&r, k, sizeof k, v, 200, i);
    int64_t off;
    cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, &off), TAKHIN_OK, "%s", takhin_errmsg());
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", db);
  backup(db, old);
  s = tu_open_ok(db);
  cr_assert_eq(takhin_delete_records(s, "t", 0, 150), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  tu_remove_catalog(db);
  cr_assert_eq(rename(old, db), 0);
  s = tu_open_ok(db);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.segments_missing, 0, "%s", ri.message);
  cr_assert_eq(ri.offsets_lost, 0, "%s", ri.message);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "t", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, 200);
  cr_assert_geq(pi.log_start_offset, 150 - 20, "log start %lld", (long long)pi.log_start_offset);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  int64_t n = 0, expect = pi.log_start_offset;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_eq(m.offset, expect++);
    n++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s", takhin_errmsg());
  cr_assert_eq(expect, 200);
  takhin_cursor_close(c);
  takhin_close(s);
}

/* ---- an older catalog than a compaction ------------------------------------ */

/* A compaction commits its catalog rows, then renames its .cleaned files
** over the segments. Its commit is not synced (synchronous=NORMAL): after a
** power loss the renames may survive without it, and a catalog backup
** restored does the same. The catalog then describes the segments' old,
** larger files: its index rows point into the middle of the new files'
** batches. Open must read the files as they are: every record the compacted
** log holds, nothing truncated, nothing reported damaged. */

#define SK_MAX 1200
#define SK_VLEN 180

typedef struct sk_log {
  int64_t n;             /* records produced: offsets 0 .. n-1 */
  char keys[SK_MAX][24]; /* the key of each offset */
  int64_t last[SK_MAX];  /* each offset's key's latest offset */
  int64_t bytes, files;  /* the segment files' total size and count */
} sk_log;

static void sk_value(int64_t o, char *v) {
  int w = snprintf(v, SK_VLEN + 1, "value-of-%lld-", (long long)o);
  for (int i = w; i < SK_VLEN; i++) v[i] = (char)('a' + (o + i) % 26);
  v[SK_VLEN] = 0;
}

static void sk_produce(takhin_store *s, sk_log *l, const char *key) {
  cr_assert_lt(l->n, SK_MAX);
  char v[SK_VLEN + 1];
  sk_value(l->n, v);
  takhin_record r = {.key = key,
                     .key_len = strlen(key),
                     .value = v,
                     .value_len = SK_VLEN,
                     .timestamp = 1700000000000LL + l->n};
  int64_t off;
  cr_assert_eq(takhin_produce(s, "sk", 0, &r, 1, &off), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(off, l->n);
  snprintf(l->keys[off], sizeof l->keys[off], "%s", key);
  for (int64_t o = 0; o <= off; o++)
    if (!strcmp(l->keys[o], key)) l->last[o] = off;
  l->n++;
}

/* Keys "k-<from>" .. "k-<to - 1>", a record each. */
static void sk_produce_new_keys(takhin_store *s, sk_log *l, int from, int to) {
  for (int i = from; i < to; i++) {
    char key[24];
    snprintf(key, sizeof key, "k-%d", i);
    sk_produce(s, l, key);
  }
}

/* The partition's segment files: how many, how many bytes, and the base
** offsets of the first max of them. */
static void sk_files(const char *db, sk_log *l, int64_t *bases, size_t max) {
  char dir[4300];
  snprintf(dir, sizeof dir, "%s-takhin/sk-0", db);
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
  struct dirent *e;
  l->bytes = l->files = 0;
  size_t nb = 0;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len != 24 || strcmp(e->d_name + 20, ".log")) continue;
    char full[4600];
    snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
    l->bytes += tu_file_size(full);
    l->files++;
    if (bases && nb < max) bases[nb++] = atoll(e->d_name);
  }
  closedir(d);
  if (bases) /* readdir's order is not the offsets' */
    for (size_t i = 1; i < nb; i++)
      for (size_t j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
        int64_t x = bases[j];
        bases[j] = bases[j - 1];
        bases[j - 1] = x;
      }
}

/* Every key's latest record is there at its offset with its value (by
** offset, by a walk of the log and, for a writer, by key), every record
** read is the one produced at its offset, and the files are as they were. */
static void sk_check(takhin_store *s, const sk_log *l, const char *db, int writer,
                     const char *ctx) {
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.batches_damaged, 0, "%s: %s", ctx, ri.first_damage);
  cr_assert_eq(ri.segments_truncated + ri.bytes_truncated, 0, "%s: nothing is truncated", ctx);
  cr_assert_eq(ri.segments_missing, 0, "%s: %s", ctx, ri.message);
  takhin_partition_info pi;
  cr_assert_eq(takhin_partition_info_get(s, "sk", 0, &pi), TAKHIN_OK);
  cr_assert_eq(pi.high_watermark, l->n, "%s: high watermark %lld", ctx,
               (long long)pi.high_watermark);
  takhin_cursor *c;
  takhin_message m;
  char v[SK_VLEN + 1];
  cr_assert_eq(takhin_cursor_open(s, "sk", 0, &c), TAKHIN_OK);
  for (int64_t o = 0; o < l->n; o++) {
    if (l->last[o] != o) continue;
    int rc = takhin_cursor_get(c, o, &m);
    cr_assert_eq(rc, TAKHIN_OK, "%s: offset %lld (key %s): %s", ctx, (long long)o, l->keys[o],
                 takhin_errmsg());
    sk_value(o, v);
    cr_assert(m.offset == o && m.key_len == strlen(l->keys[o]) &&
                  !memcmp(m.key, l->keys[o], m.key_len) && m.value_len == SK_VLEN &&
                  !memcmp(m.value, v, SK_VLEN),
              "%s: offset %lld holds another record", ctx, (long long)o);
    if (writer) {
      rc = takhin_cursor_get_key(c, l->keys[o], strlen(l->keys[o]), &m);
      cr_assert_eq(rc, TAKHIN_OK, "%s: key %s: %s", ctx, l->keys[o], takhin_errmsg());
      cr_assert_eq(m.offset, o, "%s: key %s at %lld, want %lld", ctx, l->keys[o],
                   (long long)m.offset, (long long)o);
    }
  }
  cr_assert_eq(takhin_cursor_seek(c, 0, 0, 0), TAKHIN_OK, "%s", takhin_errmsg());
  int64_t seen = 0, prev = -1, live = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    cr_assert_gt(m.offset, prev, "%s: offsets grow", ctx);
    cr_assert_lt(m.offset, l->n);
    prev = m.offset;
    sk_value(m.offset, v);
    cr_assert(m.key_len == strlen(l->keys[m.offset]) &&
                  !memcmp(m.key, l->keys[m.offset], m.key_len) && m.value_len == SK_VLEN &&
                  !memcmp(m.value, v, SK_VLEN),
              "%s: the walk finds another record at %lld", ctx, (long long)m.offset);
    seen++;
    if (l->last[m.offset] == m.offset) live++;
  }
  cr_assert_eq(rc, TAKHIN_END, "%s: %s", ctx, takhin_errmsg());
  int64_t want = 0;
  for (int64_t o = 0; o < l->n; o++) want += l->last[o] == o;
  cr_assert_eq(live, want, "%s: the walk finds every key's latest record", ctx);
  takhin_cursor_close(c);
  sk_log now;
  sk_files(db, &now, NULL, 0);
  cr_assert(now.files == l->files && now.bytes == l->bytes,
            "%s: %lld files of %lld bytes, were %lld of %lld", ctx, (long long)now.files,
            (long long)now.bytes, (long long)l->files, (long long)l->bytes);
}

static takhin_store *sk_open_ro(const char *db) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s = NULL;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_OK, "%s", takhin_errmsg());
  return s;
}

/* Restore the catalog backed up at old, then open read-only, then as the
** writer (twice: the rows it rebuilt must hold). */
static void sk_restore_and_check(const char *db, const char *old, sk_log *l) {
  sk_files(db, l, NULL, 0);
  tu_remove_catalog(db);
  cr_assert_eq(rename(old, db), 0);
  takhin_store *s = sk_open_ro(db);
  sk_check(s, l, db, 0, "read-only open");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  takhin_recovery_info ri;
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_geq(ri.segments_reindexed, 1, "the stale rows are reported: %s", ri.message);
  sk_check(s, l, db, 1, "writer open");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  cr_assert_eq(takhin_recovery(s, &ri), TAKHIN_OK);
  cr_assert_eq(ri.segments_reindexed, 0, "the rebuilt rows describe the files: %s", ri.message);
  sk_check(s, l, db, 1, "writer open, again");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = sk_open_ro(db);
  sk_check(s, l, db, 0, "read-only open, again");
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
}

static takhin_store *sk_create(const char *db) {
  takhin_store *s = tu_open_ok(db);
  cr_assert_eq(takhin_topic_create(s, "sk", 1,
                                   (const char *const[]){"cleanup_policy", "compact",
                                                         "segment_bytes", "20000", NULL}),
               TAKHIN_OK, "%s", takhin_errmsg());
  return s;
}

Test(catalog_loss, older_backup_from_before_a_compaction) {
  static sk_log l;
  memset(&l, 0, sizeof l);
  const char *db = tu_store_path("cl_sk_all");
  takhin_store *s = sk_create(db);
  /* a third of the keys written once (every segment keeps some records),
  ** the rest ten keys written over and over */
  for (int i = 0; i < 900; i++) {
    char key[24];
    if (i % 3 == 0) snprintf(key, sizeof key, "once-%d", i);
    else snprintf(key, sizeof key, "hot-%d", i % 10);
    sk_produce(s, &l, key);
  }
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  sk_files(db, &l, NULL, 0);
  cr_assert_geq(l.files, 6, "several segments: %lld", (long long)l.files);
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", db);
  backup(db, old);
  s = tu_open_ok(db);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "sk", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_geq(cr.segments_compacted, 5, "%lld", (long long)cr.segments_compacted);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  sk_restore_and_check(db, old, &l);
}

Test(catalog_loss, older_backup_from_before_a_compaction_of_two_segments) {
  static sk_log l;
  memset(&l, 0, sizeof l);
  const char *db = tu_store_path("cl_sk_two");
  takhin_store *s = sk_create(db);
  sk_produce_new_keys(s, &l, 0, 700);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  int64_t b[16];
  sk_files(db, &l, b, 16);
  cr_assert_geq(l.files, 6, "several segments: %lld", (long long)l.files);
  /* Every other key of the second and fourth segments written again: only
  ** those two have anything to compact. */
  s = tu_open_ok(db);
  for (int seg = 1; seg <= 3; seg += 2)
    for (int64_t o = b[seg]; o < b[seg + 1]; o += 2) sk_produce(s, &l, l.keys[o]);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", db);
  backup(db, old);
  s = tu_open_ok(db);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "sk", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(cr.segments_compacted, 2, "%lld", (long long)cr.segments_compacted);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  sk_restore_and_check(db, old, &l);
}

/* The backup's row is the active segment's, behind what it came to hold;
** the segment was sealed later, and compaction removed records only past
** the backup's last index entry of it: the entries still name batches of
** the new file, but the rest of the row does not describe it. */
Test(catalog_loss, older_backup_of_an_active_segment_compacted_since) {
  static sk_log l;
  memset(&l, 0, sizeof l);
  const char *db = tu_store_path("cl_sk_active");
  takhin_store *s = sk_create(db);
  sk_produce_new_keys(s, &l, 0, 100);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  int64_t b[16];
  sk_files(db, &l, b, 16);
  cr_assert_eq(l.files, 2, "the second segment is active: %lld", (long long)l.files);
  char old[4200];
  snprintf(old, sizeof old, "%s.bak", db);
  backup(db, old);
  s = tu_open_ok(db);
  int64_t at_backup = l.n;
  sk_produce_new_keys(s, &l, 100, 400);
  sk_produce(s, &l, l.keys[at_backup - 1]);
  sk_produce(s, &l, l.keys[at_backup - 2]);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  s = tu_open_ok(db);
  takhin_compaction_result cr;
  cr_assert_eq(takhin_compact(s, "sk", 0, 1, &cr), TAKHIN_OK, "%s", takhin_errmsg());
  cr_assert_eq(cr.segments_compacted, 1, "%lld", (long long)cr.segments_compacted);
  cr_assert_eq(takhin_close(s), TAKHIN_OK);
  sk_restore_and_check(db, old, &l);
}
