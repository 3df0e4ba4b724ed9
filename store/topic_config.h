/*
** topic_config.h -- the topic configuration keys, defined once.
**
** TK_TOPIC_CONFIGS is the one table of them; everything else is generated
** from it: the defaults and strict parsing (topic_config.c), takhin_topic_
** describe, the catalog's column lists and bindings (catalog.c,
** reconcile.c), the topic.meta lines (topic_meta.c), and the extension's
** CREATE VIRTUAL TABLE keys and takhin_topics columns. A new key is one new
** row here, plus its field in tk_topic_config (topic.h), in
** takhin_topic_desc (takhin.h, at the end) and a column in sql/schema.sql.
**
** Columns: X(key, Kafka's name, type, SQL type, lo, hi, default text).
** key is also the field's name in tk_topic_config (cleanup_policy: the
** compact and delete_ pair) and in takhin_topic_desc; lo and hi bound INT
** and REAL values; the default is parsed like any value.
*/
#ifndef TK_TOPIC_CONFIG_H
#define TK_TOPIC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "takhin.h"

#define TK_TOPIC_CONFIGS(X)                                                                        \
  X(cleanup_policy, "cleanup.policy", TK_CFG_POLICY, "TEXT", 0, 0, "delete")                       \
  X(compression, "compression.type", TK_CFG_CODEC, "TEXT", 0, 0, "none")                           \
  /* Kafka's minimum segment is 14 bytes */                                                        \
  X(segment_bytes, "segment.bytes", TK_CFG_INT, "INTEGER", 14, TK_MAX_BATCH_BYTES,                 \
    "1073741824")                                                               /* 1 GiB */        \
  X(segment_ms, "segment.ms", TK_CFG_INT, "INTEGER", 1, INT64_MAX, "604800000") /* 7 days */       \
  X(retention_bytes, "retention.bytes", TK_CFG_INT, "INTEGER", -1, INT64_MAX, "-1")                \
  X(retention_ms, "retention.ms", TK_CFG_INT, "INTEGER", -1, INT64_MAX, "604800000")               \
  /* Kafka's 1 MiB + record overhead */                                                            \
  X(max_message_bytes, "max.message.bytes", TK_CFG_INT, "INTEGER", 0, TK_MAX_BATCH_BYTES,          \
    "1048588")                                                                                     \
  X(delete_retention_ms, "delete.retention.ms", TK_CFG_INT, "INTEGER", 0, INT64_MAX,               \
    "86400000") /* 1 day */                                                                        \
  X(min_compaction_lag_ms, "min.compaction.lag.ms", TK_CFG_INT, "INTEGER", 0, INT64_MAX, "0")      \
  X(min_cleanable_dirty_ratio, "min.cleanable.dirty.ratio", TK_CFG_REAL, "REAL", 0, 1, "0.5")

enum {
  TK_CFG_POLICY, /* delete | compact | compact,delete */
  TK_CFG_CODEC,  /* none | zstd */
  TK_CFG_INT,    /* int64_t in [lo, hi] */
  TK_CFG_REAL    /* double in [lo, hi] */
};

#define TK_CFG_COUNT_(k, ...) +1
enum { TK_NCONFIGS = 0 TK_TOPIC_CONFIGS(TK_CFG_COUNT_) };

/* The config columns for SQL, each with a leading ", ": "SELECT name"
** TK_CONFIG_COLUMNS " FROM ...". TK_CONFIG_PARAMS is as many ", ?". */
#define TK_CFG_COLUMN_(k, ...) ", " #k
#define TK_CFG_PARAM_(k, ...) ", ?"
#define TK_CFG_COLDEF_(k, kafka, type, sqltype, ...) ", " #k " " sqltype
#define TK_CONFIG_COLUMNS TK_TOPIC_CONFIGS(TK_CFG_COLUMN_)
#define TK_CONFIG_PARAMS TK_TOPIC_CONFIGS(TK_CFG_PARAM_)
#define TK_CONFIG_COLUMN_DEFS TK_TOPIC_CONFIGS(TK_CFG_COLDEF_) /* ", key TYPE" */

typedef struct tk_config_def {
  const char *key;            /* takhin's name (underscored) */
  const char *kafka_name;     /* Kafka's (dotted) */
  int type;                   /* TK_CFG_* */
  size_t cfg_off;             /* the field in tk_topic_config (INT, REAL, CODEC) */
  size_t desc_off, desc_size; /* the field in takhin_topic_desc */
  int64_t lo, hi;
  const char *def; /* the default, as text */
} tk_config_def;

/* The table, in TK_TOPIC_CONFIGS order (the order of TK_CONFIG_COLUMNS). */
extern const tk_config_def tk_config_defs[TK_NCONFIGS];

/* The definition of key, or NULL. */
const tk_config_def *tk_config_find(const char *key);

struct tk_topic_config;
struct sqlite3_stmt;

/* The value of d in c as text (what parsing takes back), into buf. */
void tk_config_format(const struct tk_topic_config *c, const tk_config_def *d, char *buf,
                      size_t cap);
/* Bind every config of c, in table order, to parameters first.. of st. */
void tk_config_bind(struct sqlite3_stmt *st, int first, const struct tk_topic_config *c);
/* c from the columns first.. of the current row of st (table order), through
** the same strict parser as the API, so a hand-edited row cannot smuggle in
** a bad value. EINVAL naming the key. */
int tk_config_from_row(struct sqlite3_stmt *st, int first, struct tk_topic_config *c);
/* The config fields of out (takhin_topic_desc) from c. */
void tk_config_describe(const struct tk_topic_config *c, takhin_topic_desc *out);
/* 1 when a and b hold the same values. */
int tk_config_same(const struct tk_topic_config *a, const struct tk_topic_config *b);

#endif /* TK_TOPIC_CONFIG_H */
