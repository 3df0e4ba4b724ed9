/*
** headers_json.c -- record headers as JSON, the form the headers column
** shows and INSERT accepts: an array of [key, value] pairs, which keeps the
** order and duplicates Kafka headers allow.
**
**   [["trace","abc"],["trace","def"],["flag",null],["bin",{"hex":"00ff"}]]
**
** A value that is not valid UTF-8 (see ext.h) is written as {"hex": ...} so
** its bytes survive; keys are UTF-8 by Kafka's definition.
*/
#include <string.h>

#include "ext.h"

static void put_json_string(sqlite3_str *o, const char *p, size_t n) {
  sqlite3_str_appendchar(o, 1, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '"' || ch == '\\') sqlite3_str_appendf(o, "\\%c", ch);
    else if (ch == '\n') sqlite3_str_appendall(o, "\\n");
    else if (ch == '\t') sqlite3_str_appendall(o, "\\t");
    else if (ch == '\r') sqlite3_str_appendall(o, "\\r");
    else if (ch < 0x20) sqlite3_str_appendf(o, "\\u%04x", ch);
    else sqlite3_str_appendchar(o, 1, (char)ch);
  }
  sqlite3_str_appendchar(o, 1, '"');
}

char *tkx_headers_to_json(const takhin_message *m) {
  sqlite3_str *o = sqlite3_str_new(NULL);
  sqlite3_str_appendchar(o, 1, '[');
  for (size_t i = 0; i < m->n_headers; i++) {
    takhin_header h;
    if (takhin_message_header(m, i, &h) != TAKHIN_OK) break;
    sqlite3_str_appendall(o, i ? ",[" : "[");
    put_json_string(o, h.key, h.key_len);
    sqlite3_str_appendchar(o, 1, ',');
    if (!h.value) {
      sqlite3_str_appendall(o, "null");
    } else if (tkx_is_text(h.value, h.value_len)) {
      put_json_string(o, h.value, h.value_len);
    } else {
      sqlite3_str_appendall(o, "{\"hex\":\"");
      for (size_t k = 0; k < h.value_len; k++) sqlite3_str_appendf(o, "%02x", ((const unsigned char *)h.value)[k]);
      sqlite3_str_appendall(o, "\"}");
    }
    sqlite3_str_appendchar(o, 1, ']');
  }
  sqlite3_str_appendchar(o, 1, ']');
  return sqlite3_str_finish(o);
}

/* ---- parsing (in place: strings are unescaped into the text itself) ----- */

typedef struct jp {
  char *p;
  const char *err;
} jp;

static void ws(jp *j) {
  while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r') j->p++;
}

static int lit(jp *j, char ch) {
  ws(j);
  if (*j->p != ch) return 0;
  j->p++;
  return 1;
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A JSON string at j->p, unescaped in place; out and n view the result. */
static int str(jp *j, const char **out, size_t *n) {
  ws(j);
  if (*j->p != '"') return 0;
  char *w = ++j->p, *start = w;
  for (;;) {
    char ch = *j->p;
    if (!ch) return 0;
    j->p++;
    if (ch == '"') break;
    if (ch != '\\') { *w++ = ch; continue; }
    ch = *j->p++;
    switch (ch) {
      case '"': case '\\': case '/': *w++ = ch; break;
      case 'n': *w++ = '\n'; break;
      case 't': *w++ = '\t'; break;
      case 'r': *w++ = '\r'; break;
      case 'b': *w++ = '\b'; break;
      case 'f': *w++ = '\f'; break;
      case 'u': {
        unsigned cp = 0;
        for (int k = 0; k < 4; k++) {
          int v = hexval(*j->p);
          if (v < 0) return 0;
          cp = cp * 16 + (unsigned)v;
          j->p++;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0; /* surrogates: not supported here */
        if (cp < 0x80) *w++ = (char)cp;
        else if (cp < 0x800) *w++ = (char)(0xC0 | cp >> 6), *w++ = (char)(0x80 | (cp & 0x3F));
        else *w++ = (char)(0xE0 | cp >> 12), *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *w++ = (char)(0x80 | (cp & 0x3F));
        break;
      }
      default: return 0;
    }
  }
  *out = start;
  *n = (size_t)(w - start);
  return 1;
}

char *tkx_headers_from_json(char *json, takhin_header **out, size_t *n) {
  static const char shape[] = "headers must be a JSON array of [key, value] pairs, value a string, "
                              "null or {\"hex\":\"...\"}, e.g. '[[\"trace\",\"abc\"]]'";
  jp j = {json, NULL};
  takhin_header *v = NULL;
  size_t cnt = 0, cap = 0;
  *out = NULL;
  *n = 0;
  if (!lit(&j, '[')) goto bad;
  if (lit(&j, ']')) goto done;
  do {
    const char *k, *val = NULL;
    size_t kl, vl = 0;
    if (!lit(&j, '[') || !str(&j, &k, &kl) || !lit(&j, ',')) goto bad;
    ws(&j);
    if (!strncmp(j.p, "null", 4)) {
      j.p += 4;
    } else if (*j.p == '"') {
      if (!str(&j, &val, &vl)) goto bad;
    } else if (lit(&j, '{')) {
      const char *name, *hex;
      size_t nl, hl;
      if (!str(&j, &name, &nl) || nl != 3 || memcmp(name, "hex", 3) || !lit(&j, ':') ||
          !str(&j, &hex, &hl) || hl % 2 || !lit(&j, '}'))
        goto bad;
      char *w = (char *)hex; /* decode in place: two digits become one byte */
      for (size_t i = 0; i < hl; i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0) goto bad;
        w[i / 2] = (char)(hi * 16 + lo);
      }
      val = hex;
      vl = hl / 2;
    } else {
      goto bad;
    }
    if (!lit(&j, ']')) goto bad;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 4;
      takhin_header *nv = sqlite3_realloc64(v, cap * sizeof *nv);
      if (!nv) {
        sqlite3_free(v);
        return sqlite3_mprintf("out of memory parsing headers");
      }
      v = nv;
    }
    v[cnt++] = (takhin_header){k, kl, val, vl};
  } while (lit(&j, ','));
  if (!lit(&j, ']')) goto bad;
done:
  ws(&j);
  if (*j.p) goto bad;
  *out = v;
  *n = cnt;
  return NULL;
bad:
  sqlite3_free(v);
  return sqlite3_mprintf("takhin: %s", shape);
}
