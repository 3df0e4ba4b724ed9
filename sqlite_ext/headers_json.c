/*
** headers_json.c -- record headers as JSON, the form the headers column
** shows and INSERT accepts: an array of [key, value] pairs, which keeps the
** order and duplicates Kafka headers allow.
**
**   [["trace","abc"],["trace","def"],["flag",null],["bin",{"hex":"00ff"}]]
**
** Parsing and writing go through jansson (Debian's libjansson), a complete
** RFC 8259 implementation: surrogate pairs, every escape, UTF-8 validation.
** SQLite's own JSON functions were the other candidate, but before 3.45
** json_extract() cuts a string at "\u0000" and turns a lone surrogate into
** invalid UTF-8 without complaint, so they cannot decode header bytes exactly.
**
** Bytes <-> JSON, for keys and values alike (see ext.h and sql/README.md):
** bytes that are valid UTF-8 without NUL are written as a JSON string, any
** other bytes as {"hex":"..."}, as in the table's columns, so SQLite's JSON
** functions (which stop at NUL) read every header back whole. On input, a
** string may hold any escape, "\u0000" included, and {"hex":...} any bytes.
*/
#include <jansson.h>
#include <string.h>

#include "ext.h"

/* ---- writing -------------------------------------------------------------- */

static const char hexdig[] = "0123456789abcdef";

/* A header key or value as JSON: a string when it is text, else {"hex":...}. */
static json_t *bytes_json(const char *p, size_t n) {
  if (tkx_is_text(p, n)) return json_stringn_nocheck(p ? p : "", n);
  char *hex = sqlite3_malloc64(2 * n + 1);
  if (!hex) return NULL;
  for (size_t i = 0; i < n; i++) {
    hex[2 * i] = hexdig[(unsigned char)p[i] >> 4];
    hex[2 * i + 1] = hexdig[(unsigned char)p[i] & 15];
  }
  json_t *o = json_object(), *v = json_stringn_nocheck(hex, 2 * n);
  sqlite3_free(hex);
  if (!o || !v ||
      json_object_set_new_nocheck(o, "hex", v)) { /* set_new takes v even when it fails */
    if (!o) json_decref(v);
    json_decref(o);
    return NULL;
  }
  return o;
}

static int append_cb(const char *buf, size_t size, void *data) {
  sqlite3_str_append(data, buf, (int)size);
  return 0;
}

char *tkx_headers_to_json(const takhin_message *m) {
  if (!m->n_headers) return sqlite3_mprintf("[]");
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < m->n_headers; i++) {
    takhin_header h;
    if (takhin_message_header(m, i, &h) != TAKHIN_OK) break;
    json_t *pair = json_array(), *k = bytes_json(h.key, h.key_len),
           *v = h.value ? bytes_json(h.value, h.value_len) : json_null();
    /* jansson's *_append_new take (and on failure free) what they are given */
    if (!pair || !k || !v || json_array_append_new(pair, k) || json_array_append_new(pair, v) ||
        json_array_append_new(arr, pair)) {
      if (!pair || !k || !v) json_decref(pair), json_decref(k), json_decref(v);
      json_decref(arr);
      return NULL; /* out of memory */
    }
  }
  if (!arr) return NULL;
  sqlite3_str *o = sqlite3_str_new(NULL);
  /* JSON_COMPACT: [["k","v"]] with no spaces; non-ASCII stays UTF-8. */
  int rc = json_dump_callback(arr, append_cb, o, JSON_COMPACT);
  json_decref(arr);
  char *s = sqlite3_str_finish(o);
  if (rc && s) {
    sqlite3_free(s);
    return NULL;
  }
  return s;
}

/* ---- parsing ---------------------------------------------------------------- */

static const char *type_name(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER:
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

typedef struct sink {
  char *buf;
  size_t cap, used;
} sink;

/* Copy a key or value (a JSON string, or {"hex":...}) into the sink. NULL
** on success, else an sqlite3_mprintf'd message naming element i. */
static char *take_bytes(sink *s, const json_t *j, long long i, const char *what, const char **out,
                        size_t *n) {
  const char *src;
  size_t len;
  int hex = 0;
  if (json_is_string(j)) {
    src = json_string_value(j);
    len = json_string_length(j);
  } else if (json_is_object(j) && json_object_size(j) == 1 &&
             json_is_string(json_object_get(j, "hex"))) {
    const json_t *h = json_object_get(j, "hex");
    src = json_string_value(h);
    len = json_string_length(h);
    hex = 1;
    if (len % 2)
      return sqlite3_mprintf(
          "takhin: headers[%lld]: the %s's {\"hex\":\"...\"} has an odd number of digits (%lld)", i,
          what, (long long)len);
  } else {
    return sqlite3_mprintf(
        "takhin: headers[%lld]: the %s must be a string%s or {\"hex\":\"...\"}, got %s", i, what,
        strcmp(what, "value") ? "" : ", null", json_is_object(j) ? "another object" : type_name(j));
  }
  size_t need = hex ? len / 2 : len;
  /* Decoding never makes a string longer than its JSON text, so the
  ** caller's buffer (as long as that text) always holds every header. */
  if (need > s->cap - s->used)
    return sqlite3_mprintf("takhin: headers: internal error: decoded headers overflow");
  char *w = s->buf + s->used;
  if (!hex) {
    memcpy(w, src, len);
  } else {
    for (size_t k = 0; k < len; k += 2) {
      int hi = hexval(src[k]), lo = hexval(src[k + 1]);
      if (hi < 0 || lo < 0)
        return sqlite3_mprintf(
            "takhin: headers[%lld]: the %s's {\"hex\":\"...\"} holds a non-hex character", i, what);
      w[k / 2] = (char)(hi * 16 + lo);
    }
  }
  *out = w;
  *n = need;
  s->used += need;
  return NULL;
}

char *tkx_headers_from_json(const char *json, size_t len, char *buf, size_t cap,
                            takhin_header **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!len) return sqlite3_mprintf("takhin: headers are empty text: write '[]' or NULL for none");
  json_error_t je;
  /* JSON_ALLOW_NUL: "\u0000" is valid JSON and a valid header byte.
  ** JSON_DECODE_ANY: a bare string or number is valid JSON of the wrong
  ** shape, and is told as such below; so is a huge integer, which
  ** JSON_DECODE_INT_AS_REAL keeps from being called invalid JSON.
  ** JSON_REJECT_DUPLICATES: {"hex":"00","hex":"01"} has no one meaning. */
  json_t *root = json_loadb(
      json, len,
      JSON_ALLOW_NUL | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return sqlite3_mprintf("takhin: headers are not valid JSON: %s (line %d, column %d)", je.text,
                           je.line, je.column);
  char *err = NULL;
  takhin_header *v = NULL;
  size_t cnt = json_is_array(root) ? json_array_size(root) : 0;
  if (!json_is_array(root)) {
    err = sqlite3_mprintf("takhin: headers must be a JSON array of [key, value] pairs, e.g. "
                          "'[[\"trace\",\"abc\"]]', got %s",
                          type_name(root));
    goto done;
  }
  if (cnt && !(v = sqlite3_malloc64(cnt * sizeof *v))) {
    err = sqlite3_mprintf("takhin: out of memory parsing %lld headers", (long long)cnt);
    goto done;
  }
  sink s = {buf, cap, 0};
  for (size_t i = 0; i < cnt; i++) {
    const json_t *pair = json_array_get(root, i);
    if (!json_is_array(pair) || json_array_size(pair) != 2) {
      err = json_is_array(pair)
                ? sqlite3_mprintf(
                      "takhin: headers[%lld] must be a [key, value] pair, got an array of %lld",
                      (long long)i, (long long)json_array_size(pair))
                : sqlite3_mprintf("takhin: headers[%lld] must be a [key, value] pair, got %s",
                                  (long long)i, type_name(pair));
      goto done;
    }
    takhin_header *h = &v[i];
    memset(h, 0, sizeof *h);
    const json_t *val = json_array_get(pair, 1);
    if ((err = take_bytes(&s, json_array_get(pair, 0), (long long)i, "key", &h->key, &h->key_len)))
      goto done;
    const char *bytes = NULL; /* stays NULL for a JSON null: a null value, not an empty one */
    if (!json_is_null(val) &&
        (err = take_bytes(&s, val, (long long)i, "value", &bytes, &h->value_len)))
      goto done;
    h->value = bytes;
  }
done:
  json_decref(root);
  if (err) {
    sqlite3_free(v);
    return err;
  }
  *out = v;
  *n = cnt;
  return NULL;
}
