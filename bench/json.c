/*
** json.c -- recursive-descent JSON parser behind json.h. Strings keep \uXXXX
** escapes below 0x80 only (the bench never writes others); depth is capped so
** a hostile file cannot exhaust the stack.
*/
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
  const char *p;
  char *err;
  size_t errcap;
  int depth;
} parser;

static int fail(parser *ps, const char *what) {
  if (!ps->err[0]) snprintf(ps->err, ps->errcap, "%s near \"%.20s\"", what, ps->p);
  return -1;
}

static void ws(parser *ps) {
  while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static void release(json *v) {
  if (v->type == JSON_STR) free(v->str);
  for (size_t i = 0; i < v->n; i++) {
    release(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  memset(v, 0, sizeof *v);
}

static int parse_value(parser *ps, json *out);

static int parse_string(parser *ps, char **out) {
  if (*ps->p != '"') return fail(ps, "expected a string");
  ps->p++;
  size_t cap = 32, len = 0;
  char *s = malloc(cap);
  if (!s) return fail(ps, "out of memory");
  while (*ps->p != '"') {
    char c = *ps->p++;
    if (c == 0) {
      free(s);
      return fail(ps, "unterminated string");
    }
    if (c == '\\') {
      char e = *ps->p++;
      switch (e) {
      case 'n': c = '\n'; break;
      case 't': c = '\t'; break;
      case 'r': c = '\r'; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'u': {
        unsigned code = 0;
        for (int i = 0; i < 4; i++) {
          char h = *ps->p++;
          code = code * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                               : 0);
        }
        c = code < 0x80 ? (char)code : '?';
        break;
      }
      default: c = e; break; /* \" \\ \/ */
      }
    }
    if (len + 2 > cap) {
      char *n = realloc(s, cap *= 2);
      if (!n) {
        free(s);
        return fail(ps, "out of memory");
      }
      s = n;
    }
    s[len++] = c;
  }
  ps->p++;
  s[len] = 0;
  *out = s;
  return 0;
}

static int push(parser *ps, json *v, size_t *cap) {
  if (v->n < *cap) return 0;
  *cap = *cap ? *cap * 2 : 8;
  json *items = realloc(v->items, *cap * sizeof *items);
  if (!items) return fail(ps, "out of memory");
  v->items = items;
  if (v->type == JSON_OBJ) {
    char **keys = realloc(v->keys, *cap * sizeof *keys);
    if (!keys) return fail(ps, "out of memory");
    v->keys = keys;
  }
  return 0;
}

static int parse_container(parser *ps, json *out, char close) {
  size_t cap = 0;
  out->type = close == '}' ? JSON_OBJ : JSON_ARR;
  ps->p++;
  ws(ps);
  if (*ps->p == close) {
    ps->p++;
    return 0;
  }
  for (;;) {
    ws(ps);
    if (push(ps, out, &cap) != 0) return -1;
    char *key = NULL;
    if (out->type == JSON_OBJ) {
      if (parse_string(ps, &key) != 0) return -1;
      ws(ps);
      if (*ps->p++ != ':') {
        free(key);
        return fail(ps, "expected ':'");
      }
      out->keys[out->n] = key;
    }
    memset(&out->items[out->n], 0, sizeof out->items[0]);
    out->n++; /* counted before parsing so release() frees a partial item */
    if (parse_value(ps, &out->items[out->n - 1]) != 0) return -1;
    ws(ps);
    if (*ps->p == ',') {
      ps->p++;
      continue;
    }
    if (*ps->p++ == close) return 0;
    return fail(ps, "expected ',' or a closing bracket");
  }
}

static int parse_value(parser *ps, json *out) {
  ws(ps);
  if (++ps->depth > 64) return fail(ps, "nested too deeply");
  int rc = 0;
  char c = *ps->p;
  if (c == '{') rc = parse_container(ps, out, '}');
  else if (c == '[') rc = parse_container(ps, out, ']');
  else if (c == '"') {
    out->type = JSON_STR;
    rc = parse_string(ps, &out->str);
  } else if (!strncmp(ps->p, "null", 4)) {
    out->type = JSON_NULL;
    ps->p += 4;
  } else if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5)) {
    out->type = JSON_BOOL;
    out->num = c == 't';
    ps->p += c == 't' ? 4 : 5;
  } else {
    char *end;
    out->type = JSON_NUM;
    out->num = strtod(ps->p, &end);
    if (end == ps->p) rc = fail(ps, "unexpected character");
    ps->p = end;
  }
  ps->depth--;
  return rc;
}

json *json_parse(const char *text, char *err, size_t errcap) {
  parser ps = {.p = text, .err = err, .errcap = errcap};
  err[0] = 0;
  json *v = calloc(1, sizeof *v);
  if (!v) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  if (parse_value(&ps, v) != 0) {
    json_free(v);
    return NULL;
  }
  ws(&ps);
  if (*ps.p) {
    fail(&ps, "trailing characters");
    json_free(v);
    return NULL;
  }
  return v;
}

void json_free(json *v) {
  if (!v) return;
  release(v);
  free(v);
}

const json *json_get(const json *v, const char *key) {
  if (!v || v->type != JSON_OBJ) return NULL;
  for (size_t i = 0; i < v->n; i++)
    if (!strcmp(v->keys[i], key)) return &v->items[i];
  return NULL;
}
