/*
** json.h -- a small JSON reader for -compare: enough for the files -json
** writes (objects, arrays, numbers, strings, true/false/null), no more.
*/
#ifndef TAKHIN_BENCH_JSON_H
#define TAKHIN_BENCH_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } json_type;

typedef struct json {
  json_type type;
  double num;  /* JSON_NUM, JSON_BOOL (0/1) */
  char *str;   /* JSON_STR */
  size_t n;    /* JSON_ARR, JSON_OBJ: number of items */
  char **keys; /* JSON_OBJ */
  struct json *items;
} json;

/* Parse text; NULL on error with a message in err. Free with json_free. */
json *json_parse(const char *text, char *err, size_t errcap);
void json_free(json *v);
/* Member of an object, NULL if absent or v is not an object. */
const json *json_get(const json *v, const char *key);

#endif /* TAKHIN_BENCH_JSON_H */
