/*
** test_sql_values.c -- the SQLite extension (build/takhin.so) driven through SQL:
** the value and headers mapping: SQL types, headers as JSON
** round trips (also from Python, jq and SQLite), malformed headers.
**
** One of the test_sql_*.c files (split along the list test_sql.c had);
** sqltest.h holds the helpers they share. The extension is loaded into this
** binary's own libsqlite3 (the extension links none), exactly as the sqlite3
** shell loads it.
*/
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <string.h>

#include "sqltest.h"
#include "testutil.h"

/* ---- values and headers ---------------------------------------------------- */

Test(sql, type_mapping) {
  const char *path = tu_store_path("sql_types");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  exec_ok(db, "INSERT INTO ev(key, value, timestamp) VALUES "
              "('text', 'héllo wörld', 1), (x'00ff', x'00ff', 2), (42, 42, 3), (1.5, -0.25, 4), "
              "(NULL, NULL, 5), ('', '', 6), (x'', x'', 7), (x'68656c6c6f', x'68656c6c6f', 8), "
              "(CAST(x'610062' AS TEXT), x'c3', 9), (x'ffffffff', zeroblob(3), 10)");
  EXPECT_ROWS(
      db,
      "text|text|text|text|héllo wörld\n"
      "blob|blob|x'00ff'|blob|x'00ff'\n"
      "text|text|42|text|42\n"
      "text|text|1.5|text|-0.25\n"
      "null|null|NULL|null|NULL\n"
      "text|text||text|\n"
      "text|text||text|\n"
      "text|text|hello|text|hello\n"
      "blob|blob|x'610062'|blob|x'c3'\n"
      "blob|blob|x'ffffffff'|blob|x'000000'\n",
      "SELECT typeof(key), typeof(value), key, typeof(value), value FROM ev ORDER BY offset");
  /* bytes survive exactly, whichever type they come back as */
  EXPECT_ROWS(
      db, "00FF|00FF\n3432|3432\n|\n68656C6C6F|68656C6C6F\n610062|C3\n",
      "SELECT hex(key), hex(value) FROM ev WHERE timestamp IN (2, 3, 6, 8, 9) ORDER BY offset");
  EXPECT_ROWS(db, "1|1\n", "SELECT key IS NULL, value IS NULL FROM ev WHERE timestamp = 5");
  EXPECT_ROWS(db, "0|0\n", "SELECT key IS NULL, value IS NULL FROM ev WHERE timestamp = 7");
  /* a large binary value round-trips byte for byte */
  sqlite3_stmt *st;
  unsigned char big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 131 + 7);
  cr_assert_eq(sqlite3_prepare_v2(db,
                                  "INSERT INTO ev(key, value, timestamp) VALUES ('big', ?1, 11)",
                                  -1, &st, NULL),
               SQLITE_OK);
  sqlite3_bind_blob(st, 1, big, sizeof big, SQLITE_STATIC);
  cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM ev WHERE key = 'big'", -1, &st, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_type(st, 0), SQLITE_BLOB);
  cr_assert_eq(sqlite3_column_bytes(st, 0), (int)sizeof big);
  cr_assert(!memcmp(sqlite3_column_blob(st, 0), big, sizeof big));
  sqlite3_finalize(st);
  /* and the C API reads the same bytes */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get(c, 1, &m), TAKHIN_OK);
  cr_assert_eq(m.value_len, 2);
  cr_assert(!memcmp(m.value, "\x00\xff", 2));
  cr_assert_eq(takhin_cursor_get(c, 4, &m), TAKHIN_OK);
  cr_assert(m.key == NULL && m.value == NULL, "NULL is a null key and a null value (tombstone)");
  cr_assert_eq(takhin_cursor_get(c, 6, &m), TAKHIN_OK);
  cr_assert(m.key != NULL && m.key_len == 0, "x'' is an empty, non-null key");
  takhin_cursor_close(c);
  takhin_close(s);
}

/* Which byte strings read back as TEXT: UTF-8 without NUL, by a plain
** byte-at-a-time check (RFC 3629: no overlong forms, no surrogates, nothing
** past U+10FFFF), against the extension's word-at-a-time one. */
static int ref_is_text(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i], cp, min;
    size_t len;
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1Fu, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0Fu, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07u, min = 0x10000;
    else return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

/* Random strings built from the pieces that decide the type, at every
** position of an 8-byte word: ASCII runs, NUL, stray continuation bytes,
** every kind of lead byte, well-formed and broken sequences. */
Test(sql, text_or_blob_as_a_reference_check_decides) {
  static const char *const pieces[] = {"a",
                                       "hello, w",
                                       "\x00",
                                       "\x7f",
                                       "\x80",
                                       "\xbf",
                                       "\xc0\x80",
                                       "\xc1\xbf",
                                       "\xc2\x80",
                                       "\xdf\xbf",
                                       "\xc3",
                                       "\xc3\xa9",
                                       "\xe0\x80\x80",
                                       "\xe0\xa0\x80",
                                       "\xed\x9f\xbf",
                                       "\xed\xa0\x80",
                                       "\xef\xbf\xbf",
                                       "\xe2\x82",
                                       "\xf0\x80\x80\x80",
                                       "\xf0\x90\x80\x80",
                                       "\xf4\x8f\xbf\xbf",
                                       "\xf4\x90\x80\x80",
                                       "\xf5\x80\x80\x80",
                                       "\xf8",
                                       "\xff",
                                       "\xf0\x9f\x98"};
  const int npieces = (int)(sizeof pieces / sizeof *pieces);
  const char *path = tu_store_path("sql_text_check");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE tx USING takhin(partitions=1)");
  exec_ok(db, "CREATE TABLE want(i INTEGER PRIMARY KEY, b BLOB, text INTEGER)");
  sqlite3_stmt *ins, *want;
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO tx(key, value, timestamp) VALUES (?1, ?1, ?2)",
                                  -1, &ins, NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO want VALUES (?2, ?1, ?3)", -1, &want, NULL),
               SQLITE_OK);
  uint64_t seed = 7;
  int texts = 0;
  const int n = 3000;
  exec_ok(db, "BEGIN");
  for (int i = 0; i < n; i++) {
    unsigned char buf[96];
    size_t len = 0;
    int np = (int)(i % 12);
    for (int k = 0; k < np; k++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      /* mostly ASCII, so that a word check has whole words to pass */
      const char *pc =
          (seed >> 60) < 10 ? pieces[(seed >> 33) % 2] : pieces[(seed >> 33) % npieces];
      size_t pl = pc[0] ? strlen(pc) : 1;
      if (len + pl > sizeof buf) break;
      memcpy(buf + len, pc, pl);
      len += pl;
    }
    int t = ref_is_text(buf, len);
    texts += t;
    for (int b = 0; b < 2; b++) {
      sqlite3_stmt *st = b ? want : ins;
      sqlite3_bind_blob(st, 1, buf, (int)len, SQLITE_TRANSIENT);
      sqlite3_bind_int(st, 2, i);
      if (b) sqlite3_bind_int(st, 3, t);
      cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
      sqlite3_reset(st);
    }
  }
  exec_ok(db, "COMMIT");
  sqlite3_finalize(ins);
  sqlite3_finalize(want);
  cr_assert(texts > n / 5 && texts < n - n / 5, "both kinds are tested (%d texts of %d)", texts, n);
  /* each column alone and both together: the type and the bytes */
  EXPECT_ROWS(db, "0\n",
              "SELECT count(*) FROM tx JOIN want ON want.i = tx.timestamp "
              "WHERE (typeof(tx.value) = 'text') != want.text OR CAST(tx.value AS BLOB) != want.b");
  EXPECT_ROWS(db, "0\n",
              "SELECT count(*) FROM tx JOIN want ON want.i = tx.timestamp "
              "WHERE (typeof(tx.key) = 'text') != want.text OR CAST(tx.key AS BLOB) != want.b");
  char *got = q(db, "SELECT group_concat(typeof(key) || typeof(value), '') FROM tx");
  char *exp = q(db, "SELECT group_concat(CASE text WHEN 1 THEN 'texttext' ELSE 'blobblob' END, '') "
                    "FROM (SELECT text FROM want ORDER BY i)");
  cr_assert_str_eq(got, exp);
  sqlite3_free(got);
  sqlite3_free(exp);
  sqlite3_close(db);
}

Test(sql, headers_json_round_trip) {
  const char *path = tu_store_path("sql_headers");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  struct {
    const char *in, *out;
  } cases[] = {
      {"[]", "[]"},
      {"[[\"trace\",\"abc\"]]", "[[\"trace\",\"abc\"]]"},
      {"[[\"trace\",\"abc\"],[\"trace\",\"def\"],[\"flag\",null],[\"bin\",{\"hex\":\"00ff\"}]]",
       "[[\"trace\",\"abc\"],[\"trace\",\"def\"],[\"flag\",null],[\"bin\",{\"hex\":\"00ff\"}]]"},
      {" [ [ \"a\" , \"1\" ] , [\"b\",\"\"] ] ", "[[\"a\",\"1\"],[\"b\",\"\"]]"},
      {"[[\"q\",\"a\\\"b\\\\c\\nd\\te\\r\\u0001\\/\"]]",
       "[[\"q\",\"a\\\"b\\\\c\\nd\\te\\r\\u0001/\"]]"},
      {"[[\"u\",\"\\u00e9\\u20ac\"]]", "[[\"u\",\"é€\"]]"},
      {"[[\"h\",{\"hex\":\"DEADbeef\"}]]", "[[\"h\",{\"hex\":\"deadbeef\"}]]"},
      {"[[\"t\",{\"hex\":\"6869\"}]]",
       "[[\"t\",\"hi\"]]"}, /* valid UTF-8 bytes read back as a string */
      {"[[\"e\",{\"hex\":\"\"}]]", "[[\"e\",\"\"]]"},
      {"[[\"\",\"empty key\"]]", "[[\"\",\"empty key\"]]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', %d, %Q)", (int)i,
            cases[i].in);
    char *got = q(db, "SELECT headers FROM ev WHERE timestamp = %d", (int)i);
    char *want = sqlite3_mprintf("%s\n", cases[i].out);
    cr_assert_str_eq(got, want, "headers %s read back as\n%s", cases[i].in, got);
    sqlite3_free(got);
    sqlite3_free(want);
  }
  /* what SQLite's JSON functions build is accepted, and the output parses */
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', 100, "
              "json_array(json_array('x', '1'), json_array('x', '2'), json_array('n', NULL)))");
  EXPECT_ROWS(
      db, "x|1\nx|2\nn|NULL\n",
      "SELECT h.value ->> 0, h.value ->> 1 FROM ev, json_each(ev.headers) AS h WHERE ev.timestamp = 100");
  /* the C API sees the real headers, duplicates, nulls and bytes included */
  sqlite3_close(db);
  takhin_store *s = c_open(path, 1);
  takhin_cursor *c;
  takhin_message m;
  takhin_header h;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_get(c, 2, &m), TAKHIN_OK);
  cr_assert_eq(m.n_headers, 4);
  cr_assert_eq(takhin_message_header(&m, 1, &h), TAKHIN_OK);
  cr_assert(h.key_len == 5 && !memcmp(h.key, "trace", 5) && h.value_len == 3 &&
            !memcmp(h.value, "def", 3));
  cr_assert_eq(takhin_message_header(&m, 2, &h), TAKHIN_OK);
  cr_assert(h.value == NULL, "null header value");
  cr_assert_eq(takhin_message_header(&m, 3, &h), TAKHIN_OK);
  cr_assert(h.value_len == 2 && !memcmp(h.value, "\x00\xff", 2));
  takhin_cursor_close(c);
  takhin_close(s);
}

/* Headers JSON as other tools write it is accepted byte for byte. The
** strings are what these commands printed (Python 3.11, jq 1.6), for
**   h = [["emoji","😀"],["nul","a\x00b"],["accent","héllo"],["ctl","a\tb\n\x01"],
**        ["quote","\"\\/"],["none",None]]
**   python3 -c 'import json; print(json.dumps(h))'                       (ensure_ascii)
**   python3 -c 'import json; print(json.dumps(h, ensure_ascii=False))'
**   jq -c -n '<h as JSON>'   and   jq -a -c -n '<h as JSON>'              (ASCII output) */
Test(sql, headers_json_from_python_jq_and_sqlite) {
  const char *path = tu_store_path("sql_headers_tools");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  const char *in[] = {
      "[[\"emoji\", \"\\ud83d\\ude00\"], [\"nul\", \"a\\u0000b\"], [\"accent\", \"h\\u00e9llo\"], "
      "[\"ctl\", \"a\\tb\\n\\u0001\"], [\"quote\", \"\\\"\\\\/\"], [\"none\", null]]",
      "[[\"emoji\", \"😀\"], [\"nul\", \"a\\u0000b\"], [\"accent\", \"héllo\"], "
      "[\"ctl\", \"a\\tb\\n\\u0001\"], [\"quote\", \"\\\"\\\\/\"], [\"none\", null]]",
      "[[\"emoji\",\"😀\"],[\"nul\",\"a\\u0000b\"],[\"accent\",\"héllo\"],"
      "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]",
      "[[\"emoji\",\"\\ud83d\\ude00\"],[\"nul\",\"a\\u0000b\"],[\"accent\",\"h\\u00e9llo\"],"
      "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]",
  };
  /* A value holding NUL reads back as {"hex":...}, as in the value column:
  ** SQLite's JSON functions (->>, json_each) would cut a "\u0000" string. */
  const char *out = "[[\"emoji\",\"😀\"],[\"nul\",{\"hex\":\"610062\"}],[\"accent\",\"héllo\"],"
                    "[\"ctl\",\"a\\tb\\n\\u0001\"],[\"quote\",\"\\\"\\\\/\"],[\"none\",null]]\n";
  for (int i = 0; i < 4; i++) {
    exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', %d, %Q)", i,
            in[i]);
    char *got = q(db, "SELECT headers FROM ev WHERE timestamp = %d", i);
    cr_assert_str_eq(got, out, "input %d: %s\nread back as\n%s", i, in[i], got);
    sqlite3_free(got);
  }
  /* SQLite's json_array() and json_object(), characters beyond the BMP too */
  exec_ok(db, "INSERT INTO ev(key, value, timestamp, headers) VALUES ('k', 'v', 10, "
              "json_array(json_array('emoji', '😀'), json_array('tab', 'a' || char(9) || 'b'), "
              "json_array('bin', json_object('hex', '00ff')), json_array('none', NULL)))");
  EXPECT_ROWS(
      db, "[[\"emoji\",\"😀\"],[\"tab\",\"a\\tb\"],[\"bin\",{\"hex\":\"00ff\"}],[\"none\",null]]\n",
      "SELECT headers FROM ev WHERE timestamp = 10");
  /* and SQLite reads what takhin writes */
  EXPECT_ROWS(
      db,
      "emoji|F09F9880|NULL\ntab|610962|NULL\nbin|NULL|00ff\nnone||NULL\n", /* hex(NULL) is empty */
      "SELECT h.value ->> 0, CASE WHEN h.value ->> '$[1].hex' IS NULL THEN hex(h.value ->> 1) END, "
      "h.value ->> '$[1].hex' FROM ev, json_each(ev.headers) AS h WHERE ev.timestamp = 10");
  sqlite3_close(db);

  /* The bytes themselves, through the C API; then a header key that is not
  ** UTF-8 (possible from C) reads back as {"hex":...} too. */
  takhin_store *s = c_open(path, 0);
  takhin_cursor *c;
  takhin_message m;
  takhin_header h;
  cr_assert_eq(takhin_cursor_open(s, "ev", 0, &c), TAKHIN_OK);
  for (int64_t off = 0; off < 4; off++) {
    cr_assert_eq(takhin_cursor_get(c, off, &m), TAKHIN_OK);
    cr_assert_eq(m.n_headers, 6);
    cr_assert_eq(takhin_message_header(&m, 0, &h), TAKHIN_OK);
    cr_assert(h.value_len == 4 && !memcmp(h.value, "\xF0\x9F\x98\x80", 4),
              "U+1F600 from a surrogate pair");
    cr_assert_eq(takhin_message_header(&m, 1, &h), TAKHIN_OK);
    cr_assert(h.value_len == 3 && !memcmp(h.value, "a\0b", 3), "\\u0000 is the byte 0");
    cr_assert_eq(takhin_message_header(&m, 3, &h), TAKHIN_OK);
    cr_assert(h.value_len == 5 && !memcmp(h.value, "a\tb\n\x01", 5));
    cr_assert_eq(takhin_message_header(&m, 5, &h), TAKHIN_OK);
    cr_assert(h.key_len == 4 && !memcmp(h.key, "none", 4) && h.value == NULL);
  }
  takhin_cursor_close(c);
  takhin_header raw[] = {{"\xff\x00k", 3, "v\x00", 2}, {"", 0, "", 0}};
  takhin_record r = {.key = "c",
                     .key_len = 1,
                     .value = "v",
                     .value_len = 1,
                     .timestamp = 20,
                     .headers = raw,
                     .n_headers = 2};
  cr_assert_eq(takhin_produce(s, "ev", 0, &r, 1, NULL), TAKHIN_OK, "%s", takhin_errmsg());
  takhin_close(s);
  db = db_open(path);
  EXPECT_ROWS(db, "[[{\"hex\":\"ff006b\"},{\"hex\":\"7600\"}],[\"\",\"\"]]\n",
              "SELECT headers FROM ev WHERE timestamp = 20");
  /* what takhin writes, written again, lands the same bytes */
  exec_ok(
      db,
      "INSERT INTO ev(key, value, timestamp, headers) SELECT 'k', 'v', 21, headers FROM ev WHERE timestamp = 20");
  EXPECT_ROWS(db, "1\n", "SELECT count(DISTINCT headers) FROM ev WHERE timestamp IN (20, 21)");
  sqlite3_close(db);
}

/* Mutated headers JSON (fixed seed): every INSERT either lands, and then
** reads back as JSON SQLite accepts, or is refused with a headers message;
** none crashes or writes part of a row. */
Test(sql, mutated_headers_json_never_crash) {
  const char *path = tu_store_path("sql_headers_mut");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  static const char seed[] =
      "[[\"emoji\", \"\\ud83d\\ude00\"], [\"nul\", \"a\\u0000b\"], [\"bin\", {\"hex\":\"00ff\"}], "
      "[\"none\", null], [\"u\", \"h\\u00e9\"]]";
  static const char alphabet[] = "[]{}\",:\\u0dDhex0123456789abcdefnul \x01\x80\xff";
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  int landed = 0, refused = 0;
  sqlite3_stmt *ins;
  cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', ?)",
                                  -1, &ins, NULL),
               SQLITE_OK);
  for (int i = 0; i < 3000; i++) {
    char buf[sizeof seed + 8];
    size_t n = sizeof seed - 1;
    memcpy(buf, seed, n);
    for (int m = 0; m < 1 + i % 4; m++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t at = (size_t)(x % n);
      switch ((x >> 32) % 3) {
      case 0: buf[at] = alphabet[(x >> 40) % (sizeof alphabet - 1)]; break; /* replace */
      case 1: memmove(buf + at, buf + at + 1, n - at - 1), n--; break;      /* delete */
      default:                                                              /* insert */
        if (n < sizeof buf - 1) {
          memmove(buf + at + 1, buf + at, n - at);
          buf[at] = alphabet[(x >> 40) % (sizeof alphabet - 1)];
          n++;
        }
      }
    }
    sqlite3_bind_text(ins, 1, buf, (int)n, SQLITE_TRANSIENT);
    int rc = sqlite3_step(ins);
    if (rc == SQLITE_DONE) {
      landed++;
    } else {
      cr_assert(!strncmp(sqlite3_errmsg(db), "takhin: headers", 15), "input %.*s: %s", (int)n, buf,
                sqlite3_errmsg(db));
      refused++;
    }
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  cr_assert_gt(landed, 10);
  cr_assert_gt(refused, 10);
  char *cnt = sqlite3_mprintf("%d\n", landed);
  EXPECT_ROWS(db, cnt, "SELECT count(*) FROM ev");
  EXPECT_ROWS(db, cnt,
              "SELECT count(*) FROM ev WHERE json_valid(headers) AND json_type(headers) = 'array'");
  sqlite3_free(cnt);
  sqlite3_close(db);
}

/* Each malformed headers value, and the exact message it gets: invalid JSON
** is told apart from valid JSON of the wrong shape, and both say where. */
Test(sql, malformed_headers_refused) {
  const char *path = tu_store_path("sql_headers_bad");
  sqlite3 *db = db_open(path);
  exec_ok(db, "CREATE VIRTUAL TABLE ev USING takhin(partitions=1)");
  static const char array[] = "takhin: headers must be a JSON array of [key, value] pairs, e.g. "
                              "'[[\"trace\",\"abc\"]]', got ";
  struct {
    const char *in, *a, *b;
  } bad[] = {
      {"", "takhin: headers are empty text: write '[]' or NULL for none", ""},
      {"{}", array, "an object"},
      {"null", array, "null"},
      {"\"x\"", array, "a string"},
      {"[", "takhin: headers are not valid JSON: ']' expected near end of file (line 1, column 1)",
       ""},
      {"[[\"a\",\"b\"]",
       "takhin: headers are not valid JSON: ']' expected near end of file (line 1, column 10)", ""},
      {"[[\"a\",\"b\"]] x",
       "takhin: headers are not valid JSON: end of file expected near 'x' (line 1, column 13)", ""},
      {"[[\"a\",\"b\"],]",
       "takhin: headers are not valid JSON: unexpected token near ']' (line 1, column 12)", ""},
      {"[[\"a\",nul]]",
       "takhin: headers are not valid JSON: invalid token near 'nul' (line 1, column 9)", ""},
      {"[[\"a\",\"\\q\"]]",
       "takhin: headers are not valid JSON: invalid escape near '\"\\q' (line 1, column 9)", ""},
      /* a lone surrogate encodes no character: such bytes go as {"hex":...} */
      {"[[\"a\",\"\\ud800\"]]",
       "takhin: headers are not valid JSON: invalid Unicode '\\uD800' near '\"\\ud800\"' (line 1, column 14)",
       ""},
      {"[[\"a\",{\"hex\":\"00\",\"hex\":\"01\"}]]",
       "takhin: headers are not valid JSON: duplicate object key near '\"hex\"' (line 1, column 23)",
       ""},
      {"[[\"a\"]]", "takhin: headers[0] ", "must be a [key, value] pair, got an array of 1"},
      {"[[\"a\",\"b\",\"c\"]]", "takhin: headers[0] ",
       "must be a [key, value] pair, got an array of 3"},
      {"[[\"k\",\"v\"],\"a\"]", "takhin: headers[1] ", "must be a [key, value] pair, got a string"},
      {"[[\"a\",1]]", "takhin: headers[0]: ",
       "the value must be a string, null or {\"hex\":\"...\"}, got a number"},
      {"[[\"a\",true]]", "takhin: headers[0]: ",
       "the value must be a string, null or {\"hex\":\"...\"}, got a boolean"},
      {"[[\"a\",[\"b\"]]]", "takhin: headers[0]: ",
       "the value must be a string, null or {\"hex\":\"...\"}, got an array"},
      {"[[\"a\",{\"hx\":\"00\"}]]", "takhin: headers[0]: ",
       "the value must be a string, null or {\"hex\":\"...\"}, got another object"},
      {"[[\"a\",{\"hex\":\"00\",\"x\":1}]]", "takhin: headers[0]: ",
       "the value must be a string, null or {\"hex\":\"...\"}, got another object"},
      {"[[1,\"b\"]]",
       "takhin: headers[0]: ", "the key must be a string or {\"hex\":\"...\"}, got a number"},
      {"[[null,\"b\"]]",
       "takhin: headers[0]: ", "the key must be a string or {\"hex\":\"...\"}, got null"},
      {"[[\"a\",{\"hex\":\"0\"}]]",
       "takhin: headers[0]: ", "the value's {\"hex\":\"...\"} has an odd number of digits (1)"},
      {"[[\"a\",{\"hex\":\"zz\"}]]",
       "takhin: headers[0]: ", "the value's {\"hex\":\"...\"} holds a non-hex character"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *sql =
        sqlite3_mprintf("INSERT INTO ev(key, value, headers) VALUES ('k', 'v', %Q)", bad[i].in);
    char *want = sqlite3_mprintf("%s%s", bad[i].a, bad[i].b);
    exec_err_exact(db, want, sql);
    sqlite3_free(want);
    sqlite3_free(sql);
  }
  /* not UTF-8 at all: jansson checks the text's encoding too */
  exec_err_exact(
      db,
      "takhin: headers are not valid JSON: unable to decode byte 0x80 near '\"' (line 1, column 7)",
      "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', CAST(x'5b5b2261222c2280225d5d' AS TEXT))");
  exec_err_exact(db, "takhin: headers must be JSON text like '[[\"key\",\"value\"]]'",
                 "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', x'5b5d')");
  exec_err(db, "headers must be JSON text",
           "INSERT INTO ev(key, value, headers) VALUES ('k', 'v', 5)");
  EXPECT_ROWS(db, "0\n", "SELECT count(*) FROM ev");
  EXPECT_ROWS(db, "0|0\n",
              "SELECT high_watermark, size_bytes FROM takhin_partitions WHERE topic = 'ev'");
  sqlite3_close(db);
}
