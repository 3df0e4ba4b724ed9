/*
** benchfmt_check.c -- does takhin-bench's text output read cleanly in
** benchstat? A test helper: benchstat (golang.org/x/perf) is not packaged for
** Debian, so this applies the rules of its reader, golang.org/x/perf/benchfmt:
**
**  - A line starting with "Benchmark" is a result and must parse: a name, an
**    integer iteration count, then one or more "value unit" pairs. Any other
**    line starting with "Benchmark" (a table row) is a syntax error there.
**  - A line whose text up to the first ':' begins with a lower-case letter and
**    has no space or upper-case letter, followed by a space, tab or nothing,
**    is a "key: value" configuration line. Results are grouped into tables by
**    their configuration, so a per-run fact there (load average, a note)
**    keeps two runs from ever being compared.
**  - goarch must be Go's name for the architecture (amd64, not x86_64).
**
**   benchfmt_check FILE...
** checks every file, and that all files have the same configuration lines
** (two runs of the same flags must fall into one benchstat table). Exit 0 if
** clean, 1 with one message per problem.
*/
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG 256

typedef struct config {
  char *lines[MAX_CONFIG];
  int n;
  int before_last_result; /* lines that apply to some result; later ones label nothing */
} config;

static int problems;

static void problem(const char *file, int line, const char *fmt, const char *what) {
  fprintf(stderr, "%s:%d: ", file, line);
  fprintf(stderr, fmt, what);
  fputc('\n', stderr);
  problems++;
}

/* benchfmt's parseKeyValueLine: the key length, or 0 when not a config line. */
static size_t config_key(const char *s) {
  if (!islower((unsigned char)s[0])) return 0;
  size_t i = 0;
  for (; s[i] && s[i] != ':'; i++)
    if (isspace((unsigned char)s[i]) || isupper((unsigned char)s[i])) return 0;
  if (s[i] != ':' || i == 0) return 0;
  char after = s[i + 1];
  return after == 0 || after == ' ' || after == '\t' ? i : 0;
}

static const char *next_field(const char **p, size_t *len) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  const char *start = s;
  while (*s && *s != ' ' && *s != '\t') s++;
  *len = (size_t)(s - start);
  *p = s;
  return start;
}

static int is_number(const char *s, size_t len, int integer) {
  char buf[64];
  if (len == 0 || len >= sizeof buf) return 0;
  memcpy(buf, s, len);
  buf[len] = 0;
  char *end;
  if (integer) (void)strtoll(buf, &end, 10);
  else (void)strtod(buf, &end);
  return *end == 0;
}

/* A result line, after "Benchmark": name, iterations, value unit pairs. */
static void check_result(const char *file, int ln, const char *line) {
  const char *p = line + strlen("Benchmark");
  size_t len;
  next_field(&p, &len); /* the name: may be empty for "Benchmark" alone, as in Go */
  const char *f = next_field(&p, &len);
  if (!len) {
    problem(file, ln, "%s: missing iteration count", "Benchmark line");
    return;
  }
  if (!is_number(f, len, 1)) {
    problem(file, ln, "%s: iteration count is not an integer", "Benchmark line");
    return;
  }
  int pairs = 0;
  for (;;) {
    f = next_field(&p, &len);
    if (!len) break;
    if (!is_number(f, len, 0)) {
      problem(file, ln, "%s: a measurement is not a number", "Benchmark line");
      return;
    }
    next_field(&p, &len);
    if (!len) {
      problem(file, ln, "%s: missing unit", "Benchmark line");
      return;
    }
    pairs++;
  }
  if (!pairs) problem(file, ln, "%s: missing measurements", "Benchmark line");
}

static const char *const goarchs[] = {"386",     "amd64",   "arm",    "arm64",    "loong64",
                                      "mips",    "mipsle",  "mips64", "mips64le", "ppc64",
                                      "ppc64le", "riscv64", "s390x",  "wasm"};

static int check_file(const char *file, config *cfg, int *results) {
  FILE *f = fopen(file, "r");
  if (!f) {
    perror(file);
    return -1;
  }
  char line[8192];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    line[strcspn(line, "\r\n")] = 0;
    if (!strncmp(line, "Benchmark", 9)) {
      check_result(file, ln, line);
      (*results)++;
      cfg->before_last_result = cfg->n;
      continue;
    }
    size_t k = config_key(line);
    if (!k) continue;
    if (!strncmp(line, "goarch:", 7)) {
      const char *v = line + 7;
      while (*v == ' ' || *v == '\t') v++;
      int ok = 0;
      for (size_t i = 0; i < sizeof goarchs / sizeof goarchs[0]; i++) ok |= !strcmp(v, goarchs[i]);
      if (!ok) problem(file, ln, "goarch \"%s\" is not a Go architecture name", v);
    }
    if (cfg->n < MAX_CONFIG) cfg->lines[cfg->n++] = strdup(line);
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: benchfmt_check FILE...\n");
    return 2;
  }
  config *cfgs = calloc((size_t)argc, sizeof *cfgs);
  if (!cfgs) return 2;
  int results = 0;
  for (int i = 1; i < argc; i++)
    if (check_file(argv[i], &cfgs[i], &results) != 0) return 2;
  if (results == 0) {
    fprintf(stderr, "no result lines\n");
    problems++;
  }
  /* Every file against the first: same configuration lines, same order, as
  ** far as they label results. */
  for (int i = 2; i < argc; i++) {
    int na = cfgs[1].before_last_result, nb = cfgs[i].before_last_result;
    for (int k = 0; k < (na > nb ? na : nb); k++) {
      const char *a = k < na ? cfgs[1].lines[k] : "(none)";
      const char *b = k < nb ? cfgs[i].lines[k] : "(none)";
      if (strcmp(a, b) != 0) {
        fprintf(stderr, "configuration differs between %s and %s: \"%s\" vs \"%s\"\n", argv[1],
                argv[i], a, b);
        problems++;
        break;
      }
    }
  }
  for (int i = 1; i < argc; i++)
    for (int k = 0; k < cfgs[i].n; k++) free(cfgs[i].lines[k]);
  free(cfgs);
  if (problems) {
    fprintf(stderr, "%d problem(s)\n", problems);
    return 1;
  }
  printf("benchfmt: %d result lines in %d file(s), configuration alike: ok\n", results, argc - 1);
  return 0;
}
