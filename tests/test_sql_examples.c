/*
** test_sql_examples.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the examples run for real: the sqlite3 shell on
** examples/shell_session.sql, the Python example, and every ```sql example of
** sql/README.md.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* A prefix for shell commands that load the extension into another program
** (sqlite3, python3). Under ASan the extension needs the ASan runtime loaded
** first, so it is preloaded; the host program's own leaks are not ours. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
static void host_prefix(char *out, size_t cap) {
  out[0] = 0;
#ifdef TU_ASAN
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f)) {
    char *p = strchr(line, '/');
    if (p && strstr(p, "libasan.so")) {
      p[strcspn(p, "\n")] = 0;
      snprintf(out, cap, "LD_PRELOAD='%s' ASAN_OPTIONS=detect_leaks=0 ", p);
      break;
    }
  }
  if (f) fclose(f);
#else
  (void)cap;
#endif
}

/* ---- the examples: shell session, Python, sql/README.md --------------------- */

Test(sql, shell_session_matches_expected) {
  if (system("command -v sqlite3 > /dev/null 2>&1") != 0) cr_skip_test("no sqlite3 shell on PATH");
  const char *path = tu_store_path("sql_shell");
  char dir[4096], out[4200], err[4200], cmd[32768];
  tu_dir_of(path, dir, sizeof dir);
  snprintf(out, sizeof out, "%s/stdout", dir);
  snprintf(err, sizeof err, "%s/stderr", dir);
  char pre[4200];
  host_prefix(pre, sizeof pre);
  snprintf(
      cmd, sizeof cmd,
      "cd '%s' && %ssqlite3 -batch -cmd '.load %s' store.db < '%s/examples/shell_session.sql' > '%s' 2> '%s'",
      dir, pre, EXT_PATH, TAKHIN_SOURCE_DIR, out, err);
  int st = system(cmd);
  size_t nerr = 0, ngot = 0, nwant = 0;
  char *e = tu_read_file(err, &nerr);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sqlite3 exit status %d; stderr:\n%s", st,
            e ? e : "");
  cr_assert_eq(nerr, 0, "the session prints no errors:\n%s", e);
  char *got = tu_read_file(out, &ngot);
  char *want = tu_read_file(TAKHIN_SOURCE_DIR "/examples/shell_session.expected", &nwant);
  cr_assert(got && want);
  if (ngot != nwant || memcmp(got, want, ngot)) {
    snprintf(cmd, sizeof cmd, "diff -u '%s/examples/shell_session.expected' '%s' >&2",
             TAKHIN_SOURCE_DIR, out);
    if (system(cmd)) { /* the diff is the message */
    }
    cr_assert_fail("stdout differs from examples/shell_session.expected (diff above)");
  }
  free(e);
  free(got);
  free(want);
}

Test(sql, python_example_runs) {
  if (access("/usr/bin/python3", X_OK) != 0) cr_skip_test("no /usr/bin/python3");
  const char *path = tu_store_path("sql_python");
  char dir[4096], out[4200], cmd[32768];
  tu_dir_of(path, dir, sizeof dir);
  snprintf(out, sizeof out, "%s/out", dir);
  char pre[4200];
  host_prefix(pre, sizeof pre);
  snprintf(cmd, sizeof cmd,
           "%s/usr/bin/python3 '%s/examples/python_example.py' '%s' '%s' > '%s' 2>&1", pre,
           TAKHIN_SOURCE_DIR, path, EXT_PATH, out);
  int st = system(cmd);
  char *o = tu_read_file(out, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python exit status %d:\n%s", st, o ? o : "");
  cr_assert(strstr(o, "takhin " TAKHIN_VERSION "\n"), "%s", o);
  cr_assert(strstr(o, "row (0, 0, 1700000000000, 'user-1', '{\"total\":10}', '[]')\n"), "%s", o);
  cr_assert(strstr(o, "blob True bytes\n"), "%s", o);
  cr_assert(strstr(o, "headers True\n"), "json.dumps headers read back by json.loads:\n%s", o);
  cr_assert(strstr(o, "refused: takhin: records are immutable"), "%s", o);
  free(o);
  /* it runs as ./examples/python_example.py (shebang /usr/bin/python3) */
  cr_assert_eq(access(TAKHIN_SOURCE_DIR "/examples/python_example.py", X_OK), 0,
               "examples/python_example.py is not executable");
  /* A Python whose sqlite3 lacks enable_load_extension (pyenv's default
  ** build), faked by hiding the method: the script names the fix. */
  snprintf(
      cmd, sizeof cmd,
      "/usr/bin/python3 -c 'import runpy, sqlite3, sys; sqlite3.Connection = type(\"Connection\", (), {}); "
      "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\"__main__\")' "
      "'%s/examples/python_example.py' '%s' '%s' > '%s' 2>&1",
      TAKHIN_SOURCE_DIR, path, EXT_PATH, out);
  st = system(cmd);
  o = tu_read_file(out, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "python exit status %d:\n%s", st, o ? o : "");
  cr_assert(
      strstr(o, "cannot load SQLite extensions: it was built without enable_load_extension") &&
          strstr(o, "Run it with Debian's /usr/bin/python3"),
      "%s", o);
  free(o);
  /* what Python wrote is there for SQL and C */
  sqlite3 *db = db_open(path);
  EXPECT_ROWS(db, "orders|0|4\norders|1|1\n",
              "SELECT topic, partition, high_watermark FROM takhin_partitions");
  sqlite3_close(db);
}

/* Python's sqlite3 in its default mode opens a transaction before an INSERT
** and leaves it open: a DROP TABLE after it is deleted at commit(), and
** kept by rollback(). */
Test(sql, python_default_mode_drop_table) {
  if (access("/usr/bin/python3", X_OK) != 0) cr_skip_test("no /usr/bin/python3");
  const char *path = tu_store_path("sql_python_drop");
  char dir[4096], out[4200], script[4200], cmd[32768];
  tu_dir_of(path, dir, sizeof dir);
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(script, sizeof script, "%s/drop.py", dir);
  FILE *f = fopen(script, "w");
  cr_assert(f);
  fputs(
      "import sqlite3, sys\n"
      "con = sqlite3.connect(sys.argv[1])\n"
      "con.enable_load_extension(True)\n"
      "con.load_extension(sys.argv[2])\n"
      "for t in ('gone', 'kept', 'log'):\n"
      "    con.execute(f'CREATE VIRTUAL TABLE {t} USING takhin(partitions=1)')\n"
      "con.execute(\"INSERT INTO log(key, value) VALUES ('k', '1')\")\n"
      "print('in_transaction', con.in_transaction)\n"
      "con.execute('DROP TABLE gone')\n"
      "print('pending', [r[0] for r in con.execute('SELECT topic FROM takhin_pending_drops')])\n"
      "con.commit()\n"
      "print('after commit', [r[0] for r in con.execute('SELECT name FROM takhin_topics ORDER BY 1')])\n"
      "con.execute(\"INSERT INTO log(key, value) VALUES ('k', '2')\")\n"
      "con.execute('DROP TABLE kept')\n"
      "con.rollback()\n"
      "print('after rollback', [r[0] for r in con.execute('SELECT name FROM takhin_topics ORDER BY 1')])\n"
      "print('log', [r[0] for r in con.execute('SELECT value FROM log')])\n",
      f);
  fclose(f);
  char pre[4200];
  host_prefix(pre, sizeof pre);
  snprintf(cmd, sizeof cmd, "%s/usr/bin/python3 '%s' '%s' '%s' > '%s' 2>&1", pre, script, path,
           EXT_PATH, out);
  int st = system(cmd);
  char *o = tu_read_file(out, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python exit status %d:\n%s", st, o ? o : "");
  cr_assert_str_eq(o, "in_transaction True\n"
                      "pending ['gone']\n"
                      "after commit ['kept', 'log']\n"
                      "after rollback ['kept', 'log']\n"
                      "log ['1']\n");
  free(o);
}

/* Render one row as the README shows results: "a|b", NULL as NULL. */
static void readme_row(sqlite3_str *o, sqlite3_stmt *st) {
  for (int i = 0; i < sqlite3_column_count(st); i++) {
    if (i) sqlite3_str_appendchar(o, 1, '|');
    put_value(o, st, i);
  }
  sqlite3_str_appendchar(o, 1, '\n');
}

/* Does text match pattern, where "…" in pattern stands for any text? */
static int ellipsis_match(const char *pat, const char *text) {
  const char *e = strstr(pat, "…");
  if (!e) return !strcmp(pat, text);
  size_t n = (size_t)(e - pat);
  if (strncmp(pat, text, n)) return 0;
  for (const char *t = text + n;; t++) {
    if (ellipsis_match(e + strlen("…"), t)) return 1;
    if (!*t) return 0;
  }
}

/* Every `Error: …` quoted in the prose of sql/README.md (outside ``` blocks)
** must be the message of some example's "-- Error: " line, which
** readme_examples_run checks against what the statement really says: so the
** text cannot quote an error the code does not produce. An error-looking
** quote ("takhin: …", SQLite's generic texts) without the mark fails too. */
static int readme_prose_errors(const char *md, const char *errors, const char *logged) {
  int bad = 0, line = 1, fence = 0;
  for (const char *p = md; *p; p++) {
    if (*p == '\n') {
      line++;
      if (!strncmp(p + 1, "```", 3)) { /* a fence line: skip it whole */
        fence = !fence;
        const char *nl = strchr(p + 1, '\n');
        if (!nl) break;
        p = nl - 1;
      }
      continue;
    }
    if (fence || *p != '`' || p[1] == '`') continue;
    const char *end = strchr(p + 1, '`');
    if (!end) break;
    /* the quote, its line breaks and runs of spaces made single spaces */
    sqlite3_str *o = sqlite3_str_new(NULL);
    for (const char *c = p + 1; c < end; c++) {
      if (*c == '\n' || *c == ' ') {
        while (c + 1 < end && (c[1] == '\n' || c[1] == ' ')) c++;
        sqlite3_str_appendchar(o, 1, ' ');
      } else {
        sqlite3_str_appendchar(o, 1, *c);
      }
    }
    char *q = sqlite3_str_finish(o);
    int is_log = q && !strncmp(q, "Log: ", 5);
    if (q && ((!strncmp(q, "Error: ", 7) && q[7]) || is_log)) {
      int found = 0;
      for (const char *l = is_log ? logged : errors; *l && !found;) {
        const char *nl = strchr(l, '\n');
        char *one = sqlite3_mprintf("%.*s", (int)(nl - l), l);
        found = ellipsis_match(q + (is_log ? 5 : 7), one);
        sqlite3_free(one);
        l = nl + 1;
      }
      if (!found) {
        cr_log_error(
            "sql/README.md:%d: `%s` is not the error of any example (add one that produces it)",
            line, q);
        bad++;
      }
    } else if (q && (!strncmp(q, "takhin: ", 8) || strstr(q, "SQL logic error") ||
                     strstr(q, "unsafe use") || strstr(q, "read-only") || strstr(q, "readonly"))) {
      cr_log_error(
          "sql/README.md:%d: `%s` looks like an error message: quote it as `Error: ...` so the "
          "test checks it",
          line, q);
      bad++;
    }
    for (const char *c = p + 1; c < end; c++) line += *c == '\n';
    sqlite3_free(q);
    p = end;
  }
  return bad;
}

/* Every ```sql block of sql/README.md, in order, on one fresh store. Lines
** starting with "." are shell commands and skipped. The "-- " lines right
** after a statement (on the lines that follow the one it ends on) are its
** result: rows as a|b|c (EXPLAIN QUERY PLAN: the detail of each line), or
** "Error: <message>". A statement without them must succeed and return no
** rows. A block whose first line is "-- connection: reader" runs on a
** second connection, which finds the store held by the first and reads. */
static void readme_log(void *arg, int code, const char *msg) {
  (void)code;
  sqlite3_str_appendf(arg, "%s\n", msg);
}

Test(sql, readme_examples_run) {
  /* what goes to SQLite's error log, for the README's `Log: …` quotes */
  sqlite3_str *logged = sqlite3_str_new(NULL);
  sqlite3_shutdown();
  cr_assert_eq(sqlite3_config(SQLITE_CONFIG_LOG, readme_log, logged), SQLITE_OK);
  cr_assert_eq(sqlite3_initialize(), SQLITE_OK);
  const char *path = tu_store_path("sql_readme");
  /* the topic the binding example says a C program made */
  takhin_store *s = c_open(path, 0);
  cr_assert_eq(takhin_topic_create(s, "clicks", 2, NULL), TAKHIN_OK);
  takhin_record r[3] = {
      {.key = "u1", .key_len = 2, .value = "/home", .value_len = 5, .timestamp = 1700000000000},
      {.key = "u2", .key_len = 2, .value = "/cart", .value_len = 5, .timestamp = 1700000001000},
      {.key = "u1", .key_len = 2, .value = "/pay", .value_len = 4, .timestamp = 1700000002000}};
  cr_assert_eq(takhin_produce(s, "clicks", 0, r, 2, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_produce(s, "clicks", 1, r + 2, 1, NULL), TAKHIN_OK);
  takhin_close(s);

  size_t len;
  char *md = tu_read_file(TAKHIN_SOURCE_DIR "/sql/README.md", &len);
  cr_assert(md, "sql/README.md exists");
  sqlite3 *writer = db_open(path), *reader = NULL;
  sqlite3_str *errors = sqlite3_str_new(NULL); /* every "-- Error: " message */
  int blocks = 0, stmts = 0, failures = 0;
  char *p = md;
  while ((p = strstr(p, "```sql\n"))) {
    p += 7;
    sqlite3 *db = writer;
    if (!strncmp(p, "-- connection: reader\n", 22)) {
      if (!reader) reader = db_open(path);
      db = reader;
    }
    char *end = strstr(p, "\n```");
    cr_assert(end, "unterminated ```sql block");
    size_t n = (size_t)(end - p) + 1;
    char *sql = malloc(n + 1);
    memcpy(sql, p, n);
    sql[n] = 0;
    for (char *line = sql; *line;) { /* blank out shell dot-commands */
      char *nl = strchr(line, '\n');
      if (*line == '.') memset(line, ' ', nl ? (size_t)(nl - line) : strlen(line));
      if (!nl) break;
      line = nl + 1;
    }
    int line_no = 1;
    for (const char *q0 = md; q0 < p; q0++) line_no += *q0 == '\n';
    blocks++;
    const char *at = sql;
    for (;;) {
      sqlite3_stmt *st = NULL;
      const char *tail = NULL;
      int rc = sqlite3_prepare_v2(db, at, -1, &st, &tail);
      sqlite3_str *got = sqlite3_str_new(NULL);
      if (rc != SQLITE_OK) {
        sqlite3_str_appendf(got, "Error: %s\n", sqlite3_errmsg(db));
        tail = at + strcspn(at, ";");
        if (*tail) tail++;
      } else if (!st) {
        sqlite3_free(sqlite3_str_finish(got));
        break; /* only comments and blanks left */
      } else {
        int eqp = sqlite3_stmt_isexplain(st) == 2; /* EXPLAIN QUERY PLAN: its detail column */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
          if (eqp) sqlite3_str_appendf(got, "%s\n", sqlite3_column_text(st, 3));
          else readme_row(got, st);
        }
        if (rc != SQLITE_DONE) {
          sqlite3_str_reset(got);
          sqlite3_str_appendf(got, "Error: %s\n", sqlite3_errmsg(db));
        }
      }
      stmts++;
      /* the result lines: after the end of the statement's last line */
      sqlite3_str *want = sqlite3_str_new(NULL);
      const char *e = tail;
      while (*e == ' ' || *e == '\t') e++;
      if (*e == '\n' || *e == 0 || (e[0] == '-' && e[1] == '-')) {
        e = strchr(e, '\n');
        while (e && !strncmp(e + 1, "-- ", 3)) {
          const char *l = e + 4, *nl = strchr(l, '\n');
          sqlite3_str_append(want, l, nl ? (int)(nl - l) : (int)strlen(l));
          sqlite3_str_appendchar(want, 1, '\n');
          if (!strncmp(l, "Error: ", 7)) {
            sqlite3_str_append(errors, l + 7, nl ? (int)(nl - l - 7) : (int)strlen(l + 7));
            sqlite3_str_appendchar(errors, 1, '\n');
          }
          e = nl;
        }
      }
      char *g = sqlite3_str_finish(got), *w = sqlite3_str_finish(want);
      const char *gs = g ? g : "", *ws = w ? w : "";
      if (strcmp(gs, ws)) {
        int stmt_line = line_no;
        for (const char *q0 = sql; q0 < tail; q0++) stmt_line += *q0 == '\n';
        char *text = sqlite3_mprintf("%.*s", (int)(tail - at), at);
        cr_log_error("sql/README.md:%d: %s\n--- got:\n%s--- the README shows:\n%s", stmt_line, text,
                     gs, ws);
        sqlite3_free(text);
        failures++;
      }
      sqlite3_free(g);
      sqlite3_free(w);
      sqlite3_finalize(st);
      at = tail;
    }
    free(sql);
    p = end + 4;
  }
  cr_assert_eq(failures, 0, "%d README example(s) do not match (see above)", failures);
  cr_assert_geq(blocks, 15, "README examples found: %d blocks, %d statements", blocks, stmts);
  cr_assert(reader, "sql/README.md has a -- connection: reader block");
  char *errs = sqlite3_str_finish(errors);
  sqlite3_close(reader);
  sqlite3_close(writer);
  /* logged stays allocated: SQLite's log callback holds it to the end */
  char *logs = sqlite3_str_value(logged);
  int bad = readme_prose_errors(md, errs ? errs : "", logs ? logs : "");
  cr_assert_eq(bad, 0, "%d error text(s) quoted in sql/README.md are not checked (see above)", bad);
  sqlite3_free(errs);
  /* one section per table and function */
  const char *names[] = {
      "takhin_messages",          "takhin_topics",        "takhin_partitions",
      "takhin_segments",          "takhin_group_offsets", "takhin_retention",
      "takhin_compact",           "takhin_commit",        "takhin_offset_for_time",
      "takhin_partition_for_key", "takhin_version",       "CREATE VIRTUAL TABLE"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char *h = sqlite3_mprintf("\n## %s", names[i]);
    char *h3 = sqlite3_mprintf("\n### %s", names[i]);
    cr_assert(strstr(md, h) || strstr(md, h3), "sql/README.md has a section for %s", names[i]);
    sqlite3_free(h);
    sqlite3_free(h3);
  }
  free(md);
}
