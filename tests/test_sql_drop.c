/*
** test_sql_drop.c -- DROP TABLE of a topic against SQLite's commit
** (sqlite_ext/drop.c, store/topic_drop.c): the segment files go only once
** the commit is done. A commit that fails after the extension's xSync (a
** commit hook saying no), or a process killed there, leaves the topic with
** its folders and every record; the "-drop" marks the COMMIT leaves are
** settled on open by the catalog (rows: renamed back; none: removed).
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqltest.h"
#include "testutil.h"

static void data_dir(char *out, size_t cap, const char *db) { snprintf(out, cap, "%s-takhin", db); }

/* The data folder's entries that start with prefix, sorted, one a line. */
static char *entries(const char *db, const char *prefix) {
  char dir[4096];
  data_dir(dir, sizeof dir, db);
  struct dirent **v = NULL;
  int n = scandir(dir, &v, NULL, alphasort);
  sqlite3_str *o = sqlite3_str_new(NULL);
  for (int i = 0; i < n; i++) {
    if (!strncmp(v[i]->d_name, prefix, strlen(prefix)))
      sqlite3_str_appendf(o, "%s\n", v[i]->d_name);
    free(v[i]);
  }
  free(v);
  char *s = sqlite3_str_finish(o);
  return s ? s : sqlite3_mprintf("");
}

#define EXPECT_ENTRIES(db, prefix, want)                                                           \
  do {                                                                                             \
    char *got_ = entries(db, prefix);                                                              \
    cr_assert_str_eq(got_, want, "data folder entries \"%s*\":\n%s--- want:\n%s", prefix, got_,    \
                     want);                                                                        \
    sqlite3_free(got_);                                                                            \
  } while (0)

/* A topic "ev" of two partitions with three records. Returns its topic_id. */
static int64_t make_ev(sqlite3 *db) {
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=2)");
  exec_ok(db, "INSERT INTO ev(partition, key, value) VALUES (0,'a','1'),(1,'b','2'),(1,'c','3')");
  return q_int(db, "SELECT topic_id FROM takhin_cat_topic WHERE name = 'ev'");
}

static const char ev_rows[] = "0|a|1\n1|b|2\n1|c|3\n";
#define EV_SELECT "SELECT partition, key, value FROM ev ORDER BY partition, offset"

/* The topic, its table, its catalog rows, its folders and every record. */
static void expect_ev_intact(sqlite3 *db, const char *path, int64_t id) {
  EXPECT_ROWS(db, "ev\n", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "1\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  EXPECT_ROWS(db, "2\n", "SELECT count(*) FROM takhin_cat_partition WHERE topic_id = %lld",
              (long long)id);
  EXPECT_ENTRIES(path, "ev-", "ev-0\nev-1\n");
  EXPECT_ROWS(db, ev_rows, EV_SELECT);
}

/* Nothing of topic_id id is left: rows, schema row, folders, marks. */
static void expect_ev_gone(sqlite3 *db, const char *path, int64_t id) {
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM sqlite_schema WHERE name = 'ev'");
  EXPECT_ROWS(db, "0|0|0\n",
              "SELECT (SELECT count(*) FROM takhin_cat_topic WHERE topic_id = %lld), "
              "(SELECT count(*) FROM takhin_cat_partition WHERE topic_id = %lld), "
              "(SELECT count(*) FROM takhin_cat_segment WHERE topic_id = %lld)",
              (long long)id, (long long)id, (long long)id);
  EXPECT_ENTRIES(path, "ev-", "");
}

Test(sql_drop, rollback_keeps_folders_and_records) {
  const char *path = tu_store_path("sql_drop_rb");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE ev");
  exec_ok(db, "ROLLBACK");
  expect_ev_intact(db, path, id);
  sqlite3_close(db);
}

Test(sql_drop, commit_removes_folders_and_rows) {
  const char *path = tu_store_path("sql_drop_commit");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE ev");
  exec_ok(db, "COMMIT");
  expect_ev_gone(db, path, id);
  /* a lone DROP TABLE takes the same two steps */
  id = make_ev(db);
  exec_ok(db, "DROP TABLE ev");
  expect_ev_gone(db, path, id);
  sqlite3_close(db);
  db = db_open(path);
  expect_ev_gone(db, path, id);
  sqlite3_close(db);
}

/* A commit hook runs after every virtual table's xSync and, returning
** non-zero, fails the commit: SQLite's own commit failing after the
** extension's first step. */
static char hook_marks[4096];
static int hook_fail(void *arg) {
  char *e = entries(arg, "ev-");
  snprintf(hook_marks, sizeof hook_marks, "%s", e);
  sqlite3_free(e);
  return 1;
}

Test(sql_drop, commit_failing_after_sync_keeps_the_topic) {
  const char *path = tu_store_path("sql_drop_hook");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  char marks[256];
  snprintf(marks, sizeof marks, "ev-0.%lld-drop\nev-1.%lld-drop\n", (long long)id, (long long)id);
  for (int lone = 0; lone < 2; lone++) {
    hook_marks[0] = 0;
    sqlite3_commit_hook(db, hook_fail, (void *)path);
    if (lone) {
      exec_err(db, "constraint failed", "DROP TABLE ev");
    } else {
      exec_ok(db, "BEGIN");
      exec_ok(db, "DROP TABLE ev");
      exec_err(db, "constraint failed", "COMMIT");
    }
    sqlite3_commit_hook(db, NULL, NULL);
    cr_assert(sqlite3_get_autocommit(db), "the failed commit rolled back");
    EXPECT_ROWS(db, "", "SELECT topic FROM takhin_pending_drops");
    expect_ev_intact(db, path, id);
    cr_assert_str_eq(hook_marks, marks, "at the commit, the folders are marked (lone=%d)", lone);
  }
  /* still a usable topic, here and after a reopen */
  exec_ok(db, "INSERT INTO ev(partition, key, value) VALUES (0,'d','4')");
  sqlite3_close(db);
  db = db_open(path);
  EXPECT_ROWS(db, "0|a|1\n0|d|4\n1|b|2\n1|c|3\n", EV_SELECT);
  EXPECT_ENTRIES(path, "ev-", "ev-0\nev-1\n");
  exec_ok(db, "DROP TABLE ev");
  expect_ev_gone(db, path, id);
  sqlite3_close(db);
}

/* Two topics dropped by one transaction whose commit fails: both renamed
** back with every record, both usable; a new transaction then drops both. */
Test(sql_drop, failed_commit_of_two_drops_keeps_both) {
  const char *path = tu_store_path("sql_drop_hook2");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE a USING takhin(partitions=1)");
  exec_ok(db, "CREATE VIRTUAL TABLE b USING takhin(partitions=3)");
  exec_ok(db, "INSERT INTO a(key, value) VALUES ('ka','1')");
  exec_ok(db, "INSERT INTO b(partition, key, value) VALUES (0,'k0','1'),(2,'k2','2')");
  exec_ok(db, "BEGIN");
  exec_ok(db, "DROP TABLE a");
  exec_ok(db, "DROP TABLE b");
  sqlite3_commit_hook(db, hook_fail, (void *)path);
  exec_err(db, "constraint failed", "COMMIT");
  sqlite3_commit_hook(db, NULL, NULL);
  EXPECT_ROWS(db, "a\nb\n", "SELECT name FROM takhin_topics ORDER BY name");
  EXPECT_ENTRIES(path, "a-", "a-0\n");
  EXPECT_ENTRIES(path, "b-", "b-0\nb-1\nb-2\n");
  EXPECT_ROWS(db, "ka|1\n", "SELECT key, value FROM a");
  EXPECT_ROWS(db, "0|k0\n2|k2\n", "SELECT partition, key FROM b ORDER BY partition");
  exec_ok(db, "INSERT INTO b(partition, key, value) VALUES (1,'k1','3')");
  exec_ok(db, "BEGIN; DROP TABLE a; DROP TABLE b; COMMIT");
  EXPECT_ROWS(db, "", "SELECT name FROM takhin_topics");
  EXPECT_ENTRIES(path, "a-", "");
  EXPECT_ENTRIES(path, "b-", "");
  sqlite3_close(db);
}

/* The process dies inside the commit hook: after the extension's xSync
** marked the folders and deleted the rows, before SQLite's commit. The
** catalog comes back with the rows, so the next open renames the marks
** back: the topic is intact with every record. */
static int hook_kill(void *arg) {
  (void)arg;
  raise(SIGKILL);
  return 1;
}

static int child_drop(const char *path, int lone) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) return 10;
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, EXT_PATH, "sqlite3_takhin_init", NULL) != SQLITE_OK) return 11;
  /* the store opens (and commits its own catalog work) before the hook is set */
  if (sqlite3_exec(db, "SELECT count(*) FROM takhin_topics", NULL, NULL, NULL) != SQLITE_OK)
    return 12;
  sqlite3_commit_hook(db, hook_kill, NULL);
  const char *sql = lone ? "DROP TABLE ev" : "BEGIN; DROP TABLE ev; COMMIT";
  sqlite3_exec(db, sql, NULL, NULL, NULL);
  return 13; /* the hook never ran */
}

Test(sql_drop, killed_inside_the_commit_keeps_the_topic) {
  const char *path = tu_store_path("sql_drop_kill");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  sqlite3_close(db);
  char marks[256];
  snprintf(marks, sizeof marks, "ev-0.%lld-drop\nev-1.%lld-drop\n", (long long)id, (long long)id);
  for (int lone = 0; lone < 2; lone++) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) _exit(child_drop(path, lone));
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child died in the hook (status %d)",
              st);
    char *left = entries(path, "ev-");
    db = db_open(path);
    exec_ok(db, "SELECT count(*) FROM takhin_topics"); /* opens the store: recovery */
    expect_ev_intact(db, path, id);
    sqlite3_close(db);
    cr_assert_str_eq(left, marks, "killed between the two steps, the marks were left");
    sqlite3_free(left);
  }
}

/* Marks left on open: one whose topic the catalog no longer holds (the
** COMMIT happened, the process died before removing it) is removed; one
** whose topic it holds (it did not) is renamed back. */
Test(sql_drop, marks_are_settled_on_open) {
  const char *path = tu_store_path("sql_drop_marks");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  sqlite3_close(db);
  char dir[4096], from[4200], to[4200];
  data_dir(dir, sizeof dir, path);
  /* committed drops: no catalog rows for these incarnations */
  snprintf(to, sizeof to, "%s/ghost-0.%lld-drop", dir, (long long)id + 7);
  cr_assert_eq(mkdir(to, 0755), 0);
  char file[4300];
  snprintf(file, sizeof file, "%s/00000000000000000000.log", to);
  FILE *f = fopen(file, "w");
  cr_assert(f);
  fputs("old records", f);
  fclose(f);
  snprintf(to, sizeof to, "%s/ev-5.%lld-drop", dir, (long long)id + 9); /* a deleted "ev" */
  cr_assert_eq(mkdir(to, 0755), 0);
  /* a drop that did not commit: ev's rows are there */
  snprintf(from, sizeof from, "%s/ev-1", dir);
  snprintf(to, sizeof to, "%s/ev-1.%lld-drop", dir, (long long)id);
  cr_assert_eq(rename(from, to), 0);
  /* and the C API's mark keeps its meaning: always finished */
  snprintf(to, sizeof to, "%s/old-0.%lld-delete", dir, (long long)id + 8);
  cr_assert_eq(mkdir(to, 0755), 0);
  db = db_open(path);
  exec_ok(db, "SELECT count(*) FROM takhin_topics");
  EXPECT_ENTRIES(path, "ghost-", "");
  EXPECT_ENTRIES(path, "old-", "");
  expect_ev_intact(db, path, id);
  sqlite3_close(db);
}

/* A damaged catalog (moved aside and rebuilt from the files) cannot say
** whether a DROP's COMMIT happened: the marks go back, the files being the
** truth, and the rebuilt topic keeps every record. */
Test(sql_drop, marks_go_back_when_the_catalog_was_damaged) {
  const char *path = tu_store_path("sql_drop_damaged");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  sqlite3_close(db);
  char dir[4096], from[4200], to[4200];
  data_dir(dir, sizeof dir, path);
  for (int p = 0; p < 2; p++) {
    snprintf(from, sizeof from, "%s/ev-%d", dir, p);
    snprintf(to, sizeof to, "%s/ev-%d.%lld-drop", dir, p, (long long)id);
    cr_assert_eq(rename(from, to), 0);
  }
  snprintf(from, sizeof from, "%s-wal", path);
  unlink(from);
  snprintf(from, sizeof from, "%s-shm", path);
  unlink(from);
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  for (int i = 0; i < 8192; i++) fputc((i * 7919) & 0xff, f);
  fclose(f);
  takhin_store *s = c_open(path, 0);
  takhin_recovery_info ri;
  takhin_recovery(s, &ri);
  cr_assert_eq(ri.catalog_moved_aside, 1);
  cr_assert_eq(ri.topics_rebuilt, 1);
  takhin_close(s);
  EXPECT_ENTRIES(path, "ev-", "ev-0\nev-1\n");
  db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin"); /* the schema row went with the catalog */
  EXPECT_ROWS(db, ev_rows, EV_SELECT);
  sqlite3_close(db);
}

/* A commit hook that fails the commit after putting a non-empty "ev-1" in
** the way, so that xRollback renames ev-0 back but not ev-1: the topic then
** stays dropping (unusable) until reopened. */
static int hook_block(void *arg) {
  char dir[4096], blocker[4200];
  data_dir(dir, sizeof dir, arg);
  snprintf(blocker, sizeof blocker, "%s/ev-1", dir);
  if (mkdir(blocker, 0755) != 0) return 1;
  snprintf(blocker, sizeof blocker, "%s/ev-1/x", dir);
  FILE *f = fopen(blocker, "w");
  if (f) fclose(f);
  return 1;
}

/* A DROP TABLE retried after a rollback that could rename only some folders
** back must still mark (and so remove) every folder: a folder left under its
** own name with no catalog rows would bring the dropped topic back on the
** next open. */
Test(sql_drop, drop_after_a_partial_rename_back_removes_every_folder) {
  const char *path = tu_store_path("sql_drop_partial_back");
  sqlite3 *db = db_open(path);
  int64_t id = make_ev(db);
  sqlite3_commit_hook(db, hook_block, (void *)path);
  exec_err(db, "constraint failed", "DROP TABLE ev");
  sqlite3_commit_hook(db, NULL, NULL);
  char dir[4096], p[4200];
  data_dir(dir, sizeof dir, path);
  snprintf(p, sizeof p, "%s/ev-1/x", dir);
  cr_assert_eq(unlink(p), 0);
  snprintf(p, sizeof p, "%s/ev-1", dir);
  cr_assert_eq(rmdir(p), 0);
  exec_ok(db, "DROP TABLE ev");
  expect_ev_gone(db, path, id);
  sqlite3_close(db);
  db = db_open(path);
  expect_ev_gone(db, path, id);
  sqlite3_close(db);
}
