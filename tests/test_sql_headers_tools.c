/*
** test_sql_headers_tools.c -- headers JSON as the tools people use really
** write it, produced at test time: Python's json.dumps (ASCII escapes and
** not), jq (-c and -a -c) and SQLite's json_array(). test_sql.c checks the
** strings these tools printed once; this runs the tools installed here, so a
** version that writes JSON differently is caught too. A missing tool skips
** its part (the test says which).
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqltest.h"
#include "testutil.h"

/* What every input below must read back as: UTF-8 text as text, a value
** holding NUL as {"hex":...}, control characters escaped, null as null. */
static const char want[] =
    "[[\"emoji\",\"😀\"],[\"nul\",{\"hex\":\"610062\"}],[\"accent\",\"héllo\"],"
    "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]";

/* The first line cmd prints (sqlite3_malloc'd), or NULL when it fails. */
static char *run(const char *cmd) {
  FILE *f = popen(cmd, "r");
  if (!f) return NULL;
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  int st = pclose(f);
  if (st != 0 || n == 0) return NULL;
  buf[n] = 0;
  char *nl = strchr(buf, '\n');
  if (nl) *nl = 0;
  return sqlite3_mprintf("%s", buf);
}

static int landed;

static void check(sqlite3 *db, const char *tool, const char *json) {
  cr_assert(json, "%s printed nothing", tool);
  static int ts = 0;
  ts++;
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', %d, %Q)", ts, json);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT headers FROM ev WHERE timestamp = ?", -1, &st, NULL),
               SQLITE_OK);
  sqlite3_bind_int(st, 1, ts);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_expect_str_eq((const char *)sqlite3_column_text(st, 0), want, "%s wrote\n%s", tool, json);
  sqlite3_finalize(st);
  landed++;
}

Test(sql_headers_tools, json_from_python_jq_and_sqlite_at_test_time) {
  const char *path = tu_store_path("sql_headers_live");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  /* the headers, as a Python literal and as JSON for jq */
  const char *py = "[['emoji','\\U0001F600'],['nul','a\\x00b'],['accent','h\\u00e9llo'],"
                   "['ctl','a\\tb\\n\\x01'],['quote','\"\\\\/'],['none',None]]";
  const char *jq =
      "[[\"emoji\",\"\\ud83d\\ude00\"],[\"nul\",\"a\\u0000b\"],[\"accent\",\"h\\u00e9llo\"],"
      "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]";
  char cmd[2048];
  const char *python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : NULL;
  if (python) {
    /* the program goes in a file: the headers hold every kind of quote */
    static const char *const how[] = {"", ", ensure_ascii=False"};
    for (int i = 0; i < 2; i++) {
      char *script = sqlite3_mprintf("%s.%d.py", path, i);
      FILE *f = fopen(script, "w");
      cr_assert(f, "%s", script);
      fprintf(f, "import json\nprint(json.dumps(%s%s))\n", py, how[i]);
      fclose(f);
      snprintf(cmd, sizeof cmd, "%s '%s'", python, script);
      char *out = run(cmd);
      check(db, i ? "json.dumps(ensure_ascii=False)" : "json.dumps", out);
      sqlite3_free(out);
      unlink(script);
      sqlite3_free(script);
    }
  } else {
    cr_log_warn("no /usr/bin/python3: Python's JSON not checked");
  }
  if (access("/usr/bin/jq", X_OK) == 0) {
    const char *flags[] = {"-c", "-a -c"};
    for (int i = 0; i < 2; i++) {
      snprintf(cmd, sizeof cmd, "/usr/bin/jq %s -n '%s'", flags[i], jq);
      char *out = run(cmd);
      check(db, flags[i], out);
      sqlite3_free(out);
    }
  } else {
    cr_log_warn("no /usr/bin/jq: jq's JSON not checked");
  }
  /* SQLite's own json_array(), straight into the INSERT */
  exec_ok(
      db,
      "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', 100, "
      "json_array(json_array('emoji', '😀'), json_array('nul', json('\"a\\u0000b\"')), "
      "json_array('accent', 'héllo'), json_array('ctl', 'a' || char(9) || 'b' || char(10) || char(1)), "
      "json_array('quote', '\"\\/'), json_array('none', NULL)))");
  sqlite3_stmt *st;
  cr_assert_eq(
      sqlite3_prepare_v2(db, "SELECT headers FROM ev WHERE timestamp = 100", -1, &st, NULL),
      SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_expect_str_eq((const char *)sqlite3_column_text(st, 0), want, "json_array()");
  sqlite3_finalize(st);
  cr_log_info("%d tool outputs checked besides json_array()", landed);
  sqlite3_close(db);
}
