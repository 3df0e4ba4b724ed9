/*
** topic_config.c -- topic configuration, driven by the one table in
** topic_config.h: defaults, strict parsing of key=value pairs (an unknown
** key or malformed value is an error that names it, never silently
** ignored), formatting, catalog binding and takhin_topic_describe's fields.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "error.h"
#include "topic.h"
#include "sqlite_compat.h"

/* Where a key's value lives in tk_topic_config (cleanup_policy: see
** set_policy) and in takhin_topic_desc. */
#define CFGOFF_TK_CFG_POLICY(k) 0
#define CFGOFF_TK_CFG_CODEC(k) offsetof(tk_topic_config, k)
#define CFGOFF_TK_CFG_INT(k) offsetof(tk_topic_config, k)
#define CFGOFF_TK_CFG_REAL(k) offsetof(tk_topic_config, k)
#define DEF_(k, kafka, type, sqltype, lo, hi, def)                                                 \
  {#k,                                                                                             \
   kafka,                                                                                          \
   type,                                                                                           \
   CFGOFF_##type(k),                                                                               \
   offsetof(takhin_topic_desc, k),                                                                 \
   sizeof(((takhin_topic_desc *)0)->k),                                                            \
   lo,                                                                                             \
   hi,                                                                                             \
   def},
const tk_config_def tk_config_defs[TK_NCONFIGS] = {TK_TOPIC_CONFIGS(DEF_)};

const tk_config_def *tk_config_find(const char *key) {
  for (int i = 0; i < TK_NCONFIGS; i++)
    if (!strcmp(tk_config_defs[i].key, key)) return &tk_config_defs[i];
  return NULL;
}

#define INT_FIELD(c, d) ((int64_t *)((char *)(c) + (d)->cfg_off))
#define REAL_FIELD(c, d) ((double *)((char *)(c) + (d)->cfg_off))
#define CODEC_FIELD(c, d) ((int *)((char *)(c) + (d)->cfg_off))

/* Only [-]digits: strtoll alone would also take leading spaces, a '+' and
** an empty string, and a value that is not what was meant must be refused. */
static int plain_integer(const char *v) {
  if (*v == '-') v++;
  if (!*v) return 0;
  for (; *v; v++)
    if (*v < '0' || *v > '9') return 0;
  return 1;
}

/* Parse a whole decimal int64 in [lo, hi]. */
static int parse_i64(const char *key, const char *v, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  if (!plain_integer(v))
    return tk_err(TAKHIN_EINVAL,
                  "config %s: \"%s\" is not an integer (digits only, no spaces or "
                  "'+')",
                  key, v);
  long long x = strtoll(v, &end, 10);
  if (*end || errno == ERANGE)
    return tk_err(TAKHIN_EINVAL, "config %s: \"%s\" is not an integer", key, v);
  if (x < lo || x > hi)
    return tk_err(TAKHIN_EINVAL, "config %s: %lld is out of range [%lld, %lld]", key, x,
                  (long long)lo, (long long)hi);
  *out = x;
  return TAKHIN_OK;
}

/* A plain decimal in [lo, hi]: strtod would also take spaces, hex, "inf",
** "nan". */
static int parse_real(const char *key, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  int plain = (*v >= '0' && *v <= '9') || (*v == '.' && v[1] >= '0' && v[1] <= '9');
  for (const char *q = v; plain && *q; q++)
    plain =
        (*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '-' || *q == '+';
  double d = plain ? strtod(v, &end) : 0.0;
  if (!plain || *end || errno || !(d >= lo && d <= hi))
    return tk_err(TAKHIN_EINVAL, "config %s: \"%s\" is not a number in [%g, %g]", key, v, lo, hi);
  *out = d;
  return TAKHIN_OK;
}

static int set_policy(tk_topic_config *c, const char *v) {
  if (!strcmp(v, "delete")) {
    c->compact = 0;
    c->delete_ = 1;
  } else if (!strcmp(v, "compact")) {
    c->compact = 1;
    c->delete_ = 0;
  } else if (!strcmp(v, "compact,delete") || !strcmp(v, "delete,compact")) {
    c->compact = 1;
    c->delete_ = 1;
  } else {
    return tk_err(TAKHIN_EINVAL,
                  "config cleanup_policy: \"%s\" is not delete, compact or compact,delete", v);
  }
  return TAKHIN_OK;
}

static int set_codec(const tk_config_def *d, int *out, const char *v) {
  if (!strcmp(v, "none")) *out = TK_CODEC_NONE;
  else if (!strcmp(v, "zstd")) *out = TK_CODEC_ZSTD;
  else return tk_err(TAKHIN_EINVAL, "config %s: \"%s\" is not none or zstd", d->key, v);
  return TAKHIN_OK;
}

static int set_one(tk_topic_config *c, const tk_config_def *d, const char *v) {
  switch (d->type) {
  case TK_CFG_POLICY: return set_policy(c, v);
  case TK_CFG_CODEC: return set_codec(d, CODEC_FIELD(c, d), v);
  case TK_CFG_INT: return parse_i64(d->key, v, d->lo, d->hi, INT_FIELD(c, d));
  default: return parse_real(d->key, v, (double)d->lo, (double)d->hi, REAL_FIELD(c, d));
  }
}

void tk_config_defaults(tk_topic_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < TK_NCONFIGS; i++) {
    int rc = set_one(c, &tk_config_defs[i], tk_config_defs[i].def);
    (void)rc; /* the table's defaults parse: test_topics checks describe's */
  }
}

int tk_config_apply(tk_topic_config *c, const char *const *kv) {
  if (!kv) return TAKHIN_OK;
  for (; kv[0]; kv += 2) {
    const char *k = kv[0], *v = kv[1];
    if (!v) return tk_err(TAKHIN_EINVAL, "config %s has no value", k);
    const tk_config_def *d = tk_config_find(k);
    if (!d) return tk_err(TAKHIN_EINVAL, "unrecognized topic config \"%s\"", k);
    int rc = set_one(c, d, v);
    if (rc) return rc;
  }
  return TAKHIN_OK;
}

const char *tk_config_policy_name(const tk_topic_config *c) {
  if (c->compact && c->delete_) return "compact,delete";
  return c->compact ? "compact" : "delete";
}

const char *tk_config_codec_name(const tk_topic_config *c) {
  return c->compression == TK_CODEC_ZSTD ? "zstd" : "none";
}

void tk_config_format(const tk_topic_config *c, const tk_config_def *d, char *buf, size_t cap) {
  switch (d->type) {
  case TK_CFG_POLICY: snprintf(buf, cap, "%s", tk_config_policy_name(c)); break;
  case TK_CFG_CODEC:
    snprintf(buf, cap, "%s",
             *(const int *)((const char *)c + d->cfg_off) == TK_CODEC_ZSTD ? "zstd" : "none");
    break;
  case TK_CFG_INT:
    snprintf(buf, cap, "%lld", (long long)*(const int64_t *)((const char *)c + d->cfg_off));
    break;
  default: snprintf(buf, cap, "%.17g", *(const double *)((const char *)c + d->cfg_off)); break;
  }
}

void tk_config_bind(sqlite3_stmt *st, int first, const tk_topic_config *c) {
  for (int i = 0; i < TK_NCONFIGS; i++) {
    const tk_config_def *d = &tk_config_defs[i];
    const void *f = (const char *)c + d->cfg_off;
    switch (d->type) {
    case TK_CFG_POLICY:
      sqlite3_bind_text(st, first + i, tk_config_policy_name(c), -1, SQLITE_STATIC);
      break;
    case TK_CFG_CODEC:
      sqlite3_bind_text(st, first + i, *(const int *)f == TK_CODEC_ZSTD ? "zstd" : "none", -1,
                        SQLITE_STATIC);
      break;
    case TK_CFG_INT: sqlite3_bind_int64(st, first + i, *(const int64_t *)f); break;
    default: sqlite3_bind_double(st, first + i, *(const double *)f); break;
    }
  }
}

int tk_config_from_row(sqlite3_stmt *st, int first, tk_topic_config *c) {
  char vals[TK_NCONFIGS][64];
  const char *kv[2 * TK_NCONFIGS + 1];
  for (int i = 0; i < TK_NCONFIGS; i++) {
    const unsigned char *t = sqlite3_column_text(st, first + i);
    snprintf(vals[i], sizeof vals[i], "%s", t ? (const char *)t : "");
    kv[2 * i] = tk_config_defs[i].key;
    kv[2 * i + 1] = vals[i];
  }
  kv[2 * TK_NCONFIGS] = NULL;
  tk_config_defaults(c);
  return tk_config_apply(c, kv);
}

void tk_config_describe(const tk_topic_config *c, takhin_topic_desc *out) {
  for (int i = 0; i < TK_NCONFIGS; i++) {
    const tk_config_def *d = &tk_config_defs[i];
    char *f = (char *)out + d->desc_off;
    switch (d->type) {
    case TK_CFG_POLICY:
    case TK_CFG_CODEC: tk_config_format(c, d, f, d->desc_size); break;
    case TK_CFG_INT: memcpy(f, (const char *)c + d->cfg_off, sizeof(int64_t)); break;
    default: memcpy(f, (const char *)c + d->cfg_off, sizeof(double)); break;
    }
  }
}

int tk_config_same(const tk_topic_config *a, const tk_topic_config *b) {
  if (a->compact != b->compact || a->delete_ != b->delete_) return 0;
  for (int i = 0; i < TK_NCONFIGS; i++) {
    const tk_config_def *d = &tk_config_defs[i];
    const char *x = (const char *)a + d->cfg_off, *y = (const char *)b + d->cfg_off;
    switch (d->type) {
    case TK_CFG_POLICY: break;
    case TK_CFG_CODEC:
      if (*(const int *)x != *(const int *)y) return 0;
      break;
    case TK_CFG_INT:
      if (*(const int64_t *)x != *(const int64_t *)y) return 0;
      break;
    default:
      if (*(const double *)x != *(const double *)y) return 0;
      break;
    }
  }
  return 1;
}
