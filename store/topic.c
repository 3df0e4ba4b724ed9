/*
** topic.c -- topic names and topic configuration: Kafka's naming rule, the
** config keys with Kafka's names and defaults, and strict parsing of
** key=value pairs (an unknown key or malformed value is an error that names
** it, never silently ignored).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h" /* TK_CODEC_* */
#include "topic.h"

void tk_config_defaults(tk_topic_config *c) {
  c->compact = 0;
  c->delete_ = 1;
  c->compression = TK_CODEC_NONE;
  c->segment_bytes = 1073741824LL;      /* 1 GiB */
  c->segment_ms = 604800000LL;          /* 7 days */
  c->retention_bytes = -1;
  c->retention_ms = 604800000LL;        /* 7 days */
  c->max_message_bytes = 1048588;       /* Kafka's 1 MiB + record overhead */
  c->delete_retention_ms = 86400000LL;  /* 1 day */
  c->min_compaction_lag_ms = 0;
  c->min_cleanable_dirty_ratio = 0.5;
}

int tk_topic_name_check(const char *name) {
  static const char rule[] =
      "topic names are 1-249 characters of [a-zA-Z0-9._-] and not \".\" or \"..\"";
  if (!name) return tk_err(TAKHIN_EINVAL, "topic name is NULL: %s", rule);
  size_t n = strlen(name);
  if (n == 0 || n > TK_MAX_TOPIC_NAME)
    return tk_err(TAKHIN_EINVAL, "invalid topic name (length %zu): %s", n, rule);
  if (!strcmp(name, ".") || !strcmp(name, ".."))
    return tk_err(TAKHIN_EINVAL, "invalid topic name \"%s\": %s", name, rule);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)name[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    if (!ok) return tk_err(TAKHIN_EINVAL, "invalid character in topic name \"%.64s\": %s", name, rule);
  }
  return TAKHIN_OK;
}

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
    return tk_err(TAKHIN_EINVAL, "config %s: \"%s\" is not an integer (digits only, no spaces or "
                  "'+')", key, v);
  long long x = strtoll(v, &end, 10);
  if (*end || errno == ERANGE)
    return tk_err(TAKHIN_EINVAL, "config %s: \"%s\" is not an integer", key, v);
  if (x < lo || x > hi)
    return tk_err(TAKHIN_EINVAL, "config %s: %lld is out of range [%lld, %lld]", key, x,
                  (long long)lo, (long long)hi);
  *out = x;
  return TAKHIN_OK;
}

int tk_config_apply(tk_topic_config *c, const char *const *kv) {
  if (!kv) return TAKHIN_OK;
  for (; kv[0]; kv += 2) {
    const char *k = kv[0], *v = kv[1];
    if (!v) return tk_err(TAKHIN_EINVAL, "config %s has no value", k);
    int rc = TAKHIN_OK;
    if (!strcmp(k, "cleanup_policy")) {
      if (!strcmp(v, "delete")) c->compact = 0, c->delete_ = 1;
      else if (!strcmp(v, "compact")) c->compact = 1, c->delete_ = 0;
      else if (!strcmp(v, "compact,delete") || !strcmp(v, "delete,compact")) c->compact = 1, c->delete_ = 1;
      else rc = tk_err(TAKHIN_EINVAL, "config cleanup_policy: \"%s\" is not delete, compact or compact,delete", v);
    } else if (!strcmp(k, "compression")) {
      if (!strcmp(v, "none")) c->compression = TK_CODEC_NONE;
      else if (!strcmp(v, "zstd")) c->compression = TK_CODEC_ZSTD;
      else rc = tk_err(TAKHIN_EINVAL, "config compression: \"%s\" is not none or zstd", v);
    } else if (!strcmp(k, "segment_bytes")) {
      rc = parse_i64(k, v, 14, TK_MAX_BATCH_BYTES, &c->segment_bytes); /* Kafka's minimum is 14 */
    } else if (!strcmp(k, "segment_ms")) {
      rc = parse_i64(k, v, 1, INT64_MAX, &c->segment_ms);
    } else if (!strcmp(k, "retention_bytes")) {
      rc = parse_i64(k, v, -1, INT64_MAX, &c->retention_bytes);
    } else if (!strcmp(k, "retention_ms")) {
      rc = parse_i64(k, v, -1, INT64_MAX, &c->retention_ms);
    } else if (!strcmp(k, "max_message_bytes")) {
      rc = parse_i64(k, v, 0, TK_MAX_BATCH_BYTES, &c->max_message_bytes);
    } else if (!strcmp(k, "delete_retention_ms")) {
      rc = parse_i64(k, v, 0, INT64_MAX, &c->delete_retention_ms);
    } else if (!strcmp(k, "min_compaction_lag_ms")) {
      rc = parse_i64(k, v, 0, INT64_MAX, &c->min_compaction_lag_ms);
    } else if (!strcmp(k, "min_cleanable_dirty_ratio")) {
      char *end;
      errno = 0;
      /* a plain decimal: strtod would also take spaces, hex, "inf", "nan" */
      int plain = (*v >= '0' && *v <= '9') || (*v == '.' && v[1] >= '0' && v[1] <= '9');
      for (const char *q = v; plain && *q; q++)
        plain = (*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '-' || *q == '+';
      double d = plain ? strtod(v, &end) : 0.0;
      if (!plain || *end || errno || !(d >= 0.0 && d <= 1.0))
        rc = tk_err(TAKHIN_EINVAL, "config min_cleanable_dirty_ratio: \"%s\" is not a number in [0, 1]", v);
      else c->min_cleanable_dirty_ratio = d;
    } else {
      rc = tk_err(TAKHIN_EINVAL, "unrecognized topic config \"%s\"", k);
    }
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
