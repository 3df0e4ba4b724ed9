/*
** topic.c -- topic names: Kafka's naming rule. The topic configuration is
** topic_config.c's.
*/
#include <string.h>

#include "batch.h" /* TK_CODEC_* */
#include "topic.h"

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
    if (!ok)
      return tk_err(TAKHIN_EINVAL, "invalid character in topic name \"%.64s\": %s", name, rule);
  }
  return TAKHIN_OK;
}
