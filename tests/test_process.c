/*
** test_process.c -- one writer per store, many readers: a second writer (in
** this process or another) gets TAKHIN_ELOCKED; a read-only handle in
** another process sees what the writer has handed to the OS, including new
** segments, new topics and DeleteRecords, and refuses to write.
*/
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void produce_range(takhin_store *s, const char *topic, long from, long n) {
  char k[32], v[256];
  takhin_record r;
  for (long i = from; i < from + n; i++) {
    tu_make_record(&r, k, sizeof k, v, 200, i);
    cr_assert_eq(takhin_produce(s, topic, 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  }
}

static long count_records(takhin_store *s, const char *topic, long *first) {
  takhin_cursor *c;
  takhin_message m;
  if (takhin_cursor_open(s, topic, 0, &c) != TAKHIN_OK) return -1;
  long n = 0;
  int rc;
  while ((rc = takhin_cursor_next(c, &m)) == TAKHIN_OK) {
    if (n == 0 && first) *first = m.offset;
    if (!tu_value_ok(m.value, m.value_len, 200, m.offset)) return -2;
    n++;
  }
  takhin_cursor_close(c);
  return rc == TAKHIN_END ? n : -3;
}

Test(process, second_writer_is_locked_out) {
  const char *db = tu_store_path("proc_lock");
  takhin_store *s, *s2;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK);
  cr_assert_eq(takhin_open(db, NULL, &s2), TAKHIN_ELOCKED, "same process, second handle");
  cr_assert(strstr(takhin_errmsg(), "locked by another writer"), "%s", takhin_errmsg());
  pid_t pid = fork();
  if (pid == 0) {
    takhin_store *cs;
    _exit(takhin_open(db, NULL, &cs) == TAKHIN_ELOCKED ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another process is locked out too");
  takhin_close(s);
  cr_assert_eq(takhin_open(db, NULL, &s2), TAKHIN_OK, "the lock goes with the writer: %s",
               takhin_errmsg());
  takhin_close(s2);
}

Test(process, lock_released_when_writer_dies) {
  const char *db = tu_store_path("proc_lock_die");
  pid_t pid = fork();
  if (pid == 0) {
    takhin_store *cs;
    if (takhin_open(db, NULL, &cs)) _exit(1);
    raise(SIGKILL);
  }
  int st;
  waitpid(pid, &st, 0);
  takhin_store *s;
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK, "no stale lock after a crash: %s",
               takhin_errmsg());
  takhin_close(s);
}

/* Send a one-letter request to the reader process and read its answer. */
static void ask(int wfd, int rfd, long ans[3], const char *cmd) {
  cr_assert_eq(write(wfd, cmd, 1), 1);
  cr_assert_eq(read(rfd, ans, 3 * sizeof(long)), (ssize_t)(3 * sizeof(long)));
}

Test(process, reader_process_sees_writer) {
  const char *db = tu_store_path("proc_reader");
  int to_child[2], to_parent[2];
  cr_assert_eq(pipe(to_child), 0);
  cr_assert_eq(pipe(to_parent), 0);
  /* Forked before the writer opens: a child forked while the writer's
  ** threads are inside SQLite (the checkpoint thread writes the rows a
  ** roll leaves owed at once) would inherit SQLite's mutexes locked. */
  pid_t pid = fork();
  if (pid == 0) {
    /* reader: opens at the first request, then answers each one-byte
    ** request with the count it sees */
    close(to_child[1]);
    close(to_parent[0]);
    takhin_options o;
    takhin_options_init(&o);
    o.read_only = 1;
    takhin_store *r = NULL;
    char cmd;
    while (read(to_child[0], &cmd, 1) == 1) {
      if (!r && takhin_open(db, &o, &r)) _exit(1);
      long ans[3] = {0, -1, 0};
      if (cmd == 'c') ans[0] = count_records(r, "t", &ans[1]);
      if (cmd == 'n') ans[0] = count_records(r, "t2", &ans[1]);
      if (cmd == 'w') {
        char k[4] = "k", v[4] = "v";
        takhin_record rec = {.key = k, .key_len = 1, .value = v, .value_len = 1, .timestamp = 1};
        ans[0] = takhin_produce(r, "t", 0, &rec, 1, NULL);
      }
      if (write(to_parent[1], ans, sizeof ans) != sizeof ans) _exit(2);
    }
    takhin_close(r);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  takhin_store *w;
  cr_assert_eq(takhin_open(db, NULL, &w), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(w, "t", 1, (const char *const[]){"segment_bytes", "8192", NULL}),
               TAKHIN_OK);
  produce_range(w, "t", 0, 50);
  long ans[3];
  ask(to_child[1], to_parent[0], ans, "c");
  cr_assert_eq(ans[0], 50, "reader sees the 50 records present at its open (%ld)", ans[0]);
  produce_range(w, "t", 50, 100); /* rolls several 8 KiB segments */
  ask(to_child[1], to_parent[0], ans, "c");
  cr_assert_eq(ans[0], 150, "reader sees appends and new segments (%ld)", ans[0]);
  cr_assert_eq(takhin_topic_create(w, "t2", 1, NULL), TAKHIN_OK);
  produce_range(w, "t2", 0, 3);
  ask(to_child[1], to_parent[0], ans, "n");
  cr_assert_eq(ans[0], 3, "reader sees a topic created after it opened (%ld)", ans[0]);
  takhin_segment_info *segs;
  size_t ns;
  cr_assert_eq(takhin_segments_list(w, "t", 0, &segs, &ns), TAKHIN_OK);
  int64_t cut = segs[2].base_offset;
  takhin_free(segs);
  cr_assert_eq(takhin_delete_records(w, "t", 0, cut), TAKHIN_OK);
  ask(to_child[1], to_parent[0], ans, "c");
  cr_assert_eq(ans[1], cut, "reader starts at the new log start (%ld)", ans[1]);
  cr_assert_eq(ans[0], 150 - cut);
  ask(to_child[1], to_parent[0], ans, "w");
  cr_assert_eq(ans[0], TAKHIN_EREADONLY, "read-only handle refuses produce");
  close(to_child[1]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader exit %d", st);
  takhin_close(w);
}

Test(process, read_only_open_of_missing_store) {
  const char *db = tu_store_path("proc_missing");
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *s;
  cr_assert_eq(takhin_open(db, &o, &s), TAKHIN_ENOTFOUND);
  cr_assert_eq(tu_file_size(db), -1, "a read-only open creates nothing");
}
