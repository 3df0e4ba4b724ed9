/*
** sqlfile.c -- the named statements in the files of sql/, the one registry of the
** SQL the store runs on its catalog. Each file is compiled in whole; on first
** use it is split at its "-- name: <name>" lines into statements, which land
** in the slot of their id: CMake numbers the names (TK_SQL_<NAME> in
** sql_names.h) in the same file and statement order, so a lookup is an array
** index. Placeholders for the topic config columns are expanded here (see
** sql/catalog.sql). The strings live as long as the process.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "store.h"
#include "topic_config.h"

static const char *const names[TK_SQL_COUNT] = {TK_SQL_NAMES};
static const struct { const char *file, *text; } files[] = {TK_SQL_FILES};

static char *sql[TK_SQL_COUNT]; /* NULL until split, or where it failed */
static char split_err[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The generated parts: a column list and as many parameters, from the
** config table, so that adding a config changes no SQL file. */
static const struct {
  const char *tag, *text;
} expand[] = {
    {"{config_columns}", TK_CONFIG_COLUMNS},
    {"{config_params}", TK_CONFIG_PARAMS},
};

/* A copy of body[0, n) with the placeholders expanded; NULL when out of memory. */
static char *expanded(const char *body, size_t n) {
  size_t cap = n + 1;
  for (size_t i = 0; i < sizeof expand / sizeof *expand; i++)
    for (const char *p = body; (p = strstr(p, expand[i].tag)) && p < body + n; p++)
      cap += strlen(expand[i].text);
  char *out = malloc(cap), *o = out;
  if (!out) return NULL;
  const char *p = body, *end = body + n;
  while (p < end) {
    size_t i = 0;
    for (; i < sizeof expand / sizeof *expand; i++) {
      size_t tl = strlen(expand[i].tag);
      if ((size_t)(end - p) >= tl && !memcmp(p, expand[i].tag, tl)) {
        size_t xl = strlen(expand[i].text);
        memcpy(o, expand[i].text, xl);
        o += xl;
        p += tl;
        break;
      }
    }
    if (i == sizeof expand / sizeof *expand) *o++ = *p++;
  }
  *o = 0;
  return out;
}

static void split(void) {
  /* at the start of a line, as CMake matches it ("^-- name: ") */
  static const char marker[] = "\n-- name: ";
  int id = 0;
  for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
    const char *p = strstr(files[f].text, marker);
    while (p) {
      const char *name = p + sizeof marker - 1, *eol = strchr(name, '\n');
      if (!eol) break;
      size_t nl = (size_t)(eol - name);
      while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t' || name[nl - 1] == '\r')) nl--;
      /* CMake read the same lines: a mismatch is a build bug */
      if (id >= TK_SQL_COUNT || strlen(names[id]) != nl || memcmp(names[id], name, nl)) {
        snprintf(split_err, sizeof split_err,
                 "%s: statement \"%.*s\" is not where the build "
                 "numbered it (reconfigure)",
                 files[f].file, (int)nl, name);
        return;
      }
      const char *body = eol + 1;
      p = strstr(body, marker);
      size_t bl = p ? (size_t)(p - body) : strlen(body);
      if (!(sql[id] = expanded(body, bl))) {
        snprintf(split_err, sizeof split_err, "out of memory reading %s", files[f].file);
        return;
      }
      id++;
    }
  }
  if (id != TK_SQL_COUNT)
    snprintf(split_err, sizeof split_err, "sql/: %d statements found, %d expected (reconfigure)",
             id, (int)TK_SQL_COUNT);
}

const char *tk_sql_text(int id) {
  pthread_once(&once, split);
  if (id < 0 || id >= TK_SQL_COUNT || !sql[id]) {
    tk_err(TAKHIN_ECATALOG, "catalog statement %d: %s", id,
           split_err[0] ? split_err : "no such statement");
    return NULL;
  }
  return sql[id];
}

const char *tk_sql_name(int id) { return id >= 0 && id < TK_SQL_COUNT ? names[id] : "?"; }

/* The SQLite extension can be unloaded while the process lives on: give the
** copies back then (a library's destructors run at unload and at exit). */
__attribute__((destructor)) static void sqlfile_free(void) {
  for (int i = 0; i < TK_SQL_COUNT; i++) {
    free(sql[i]);
    sql[i] = NULL;
  }
}
