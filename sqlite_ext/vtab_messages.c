/*
** vtab_messages.c -- topics as virtual tables.
**
**   CREATE VIRTUAL TABLE orders USING takhin(partitions=4, compression='zstd');
**       creates topic "orders" (every topic config is a key=value argument);
**       with no arguments it binds to an existing topic of that name.
**   orders(partition, offset, timestamp, key, value, headers)
**   takhin_messages(topic, partition, offset, timestamp, key, value, headers)
**       eponymous: every topic of the store.
**
** Reads: a scan walks the chosen partitions in order, each from its start
** offset through a takhin cursor (see the xBestIndex comment for what is
** pushed down). Writes: INSERTed rows wait in the vtab until the transaction
** commits; xSync appends them as one batch per partition (split only where a
** batch would pass max_message_bytes), and takes back what it appended if a
** later partition fails, so a COMMIT lands all of its rows or none. DELETE is
** Kafka's DeleteRecords: it must remove a prefix of a partition. UPDATE is
** refused: records are immutable.
**
** Everything here reads or writes files, so both modules are DIRECTONLY.
*/
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "ext.h"

/* Column numbers of takhin_messages; a topic table has the same columns
** without "topic", so its column i is COL(i + 1). */
enum { C_TOPIC, C_PARTITION, C_OFFSET, C_TIMESTAMP, C_KEY, C_VALUE, C_HEADERS, C_COUNT };

#define ROWID_PART_SHIFT 40 /* rowid of a topic table row: partition << 40 | offset */

/* idxNum: the order a scan produces (see vt_best_index). */
#define ORD_TOPIC_DESC 1  /* topics by name, descending */
#define ORD_PART_DESC 2   /* partitions descending */
#define ORD_OFFSET_DESC 4 /* offsets descending, read backwards */
#define ORD_MERGE 8       /* one topic, partitions merged by offset (ties by partition) */

/* A row waiting for COMMIT. One allocation holds the struct and its bytes. */
typedef struct pend_row {
  const char *topic;
  int32_t partition; /* -1: Kafka's partitioner decides */
  takhin_record rec;
  takhin_header *headers;
} pend_row;

/* A partition this COMMIT appended to, and where its log ended before: kept
** until the transaction is over, so a failure anywhere (another topic,
** another table's xSync, the database commit) can take the appends back. */
typedef struct undo_mark {
  char topic[TK_MAX_TOPIC_NAME + 1];
  int32_t partition;
  tk_part_mark mark;
} undo_mark;

/* What an INSERT checks a row against. Read from the topic itself, not
** through takhin_topic_describe, which formats every string of the topic's
** description. */
typedef struct topic_limits {
  int32_t partitions;
  int64_t max_message_bytes;
  int compacted;
} topic_limits;

/* Pending rows live in chunks of one arena per table: a malloc and a free
** per INSERTed row cost more than the rest of xUpdate (a 1 KiB record is
** past glibc's per-thread cache). Chunks are only appended to until the
** transaction ends; then the first is kept for the next one and the rest
** are freed. */
#define ROW_CHUNK_BYTES (256u * 1024u)
typedef struct row_chunk {
  struct row_chunk *next;
  size_t cap, used;
  /* the bytes follow, 8-aligned */
} row_chunk;

/* A DELETE in progress on one partition: the next offset it must remove. */
typedef struct pend_delete {
  int32_t partition;
  int64_t next;
} pend_delete;

typedef struct tkx_vtab {
  sqlite3_vtab base;
  tkx_conn *conn;
  int multi; /* takhin_messages: the topic is a column */
  char topic[TK_MAX_TOPIC_NAME + 1];
  pend_row **rows;
  size_t nrows, rows_cap;
  row_chunk *chunks; /* newest first; the rows' bytes */
  /* Checked once per transaction, not per row (xBegin, the end of the
  ** transaction and ROLLBACK TO forget them): the store is open on a
  ** catalog that exists (tkx_store asks SQLite's schema for it), and, for
  ** a topic table, its topic's limits. Neither can change inside the
  ** transaction: this connection owns the store, and nothing it can run in
  ** a transaction adds partitions or changes a topic's configs. */
  int store_checked, limits_checked;
  topic_limits limits;
  pend_delete *dels;
  size_t ndels, dels_cap;
  undo_mark *undo;
  size_t nundo, undo_cap;
  size_t marks[64];          /* savepoint level -> nrows at its start */
  pend_delete *del_snap[64]; /* savepoint level -> the deletes as they stood */
  size_t del_snap_n[64];
  unsigned sticky; /* round-robin partition for null-key rows, per COMMIT */
  /* The read cursor of the last scan, kept for the next one: SQLite opens a
  ** new scan for every statement, and a reader that goes on where the last
  ** one stopped (fetching a log in pieces) then keeps its read buffer and
  ** position instead of starting cold. */
  takhin_cursor *park;
  char park_topic[TK_MAX_TOPIC_NAME + 1];
  const void *park_topic_obj; /* its tk_topic (held by the cursor): a topic
                               ** deleted and made again is another object */
  int32_t park_part;
  int sp_level; /* the last xSavepoint's level: > 0, a savepoint encloses the statement */
  /* The last closed scan cursor, kept with its buffers: SQLite opens and
  ** closes one per statement, which is three allocations and frees per
  ** SELECT otherwise. */
  struct tkx_cursor *spare;
} tkx_vtab;

static void cursor_free(struct tkx_cursor *c);

static int vt_error(tkx_vtab *vt, char *msg) {
  sqlite3_free(vt->base.zErrMsg);
  vt->base.zErrMsg = msg;
  return SQLITE_ERROR;
}

static int vt_takhin_error(tkx_vtab *vt, int rc) {
  if (rc == TAKHIN_EREADONLY && vt->conn->read_only) {
    vt_error(vt, sqlite3_mprintf("%s", TKX_LOCKED_MSG));
    return SQLITE_READONLY;
  }
  vt_error(vt, tkx_errmsg(rc));
  return rc == TAKHIN_ECORRUPT ? SQLITE_CORRUPT_VTAB
         : rc == TAKHIN_ENOMEM ? SQLITE_NOMEM
                               : SQLITE_ERROR;
}

static takhin_store *vt_store(tkx_vtab *vt) {
  char *msg = NULL;
  takhin_store *s = tkx_store(vt->conn, &msg);
  if (!s) vt_error(vt, msg);
  return s;
}

/* ---- CREATE VIRTUAL TABLE arguments ------------------------------------- */

/* CREATE VIRTUAL TABLE accepts, besides partitions, every topic config of
** topic_config.h's table. */

/* Parse argv[3..] strictly into key/value pairs (values unquoted, in bufs).
** Returns NULL or an error message. */
static char *parse_args(int argc, const char *const *argv, char bufs[][256], const char **kv,
                        int64_t *partitions) {
  int n = 0;
  *partitions = 0;
  for (int i = 3; i < argc; i++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    if (!eq) return sqlite3_mprintf("malformed option: \"%s\" (expected key=value)", a);
    char key[64];
    size_t kl = (size_t)(eq - a);
    while (kl && (a[kl - 1] == ' ' || a[kl - 1] == '\t')) kl--;
    size_t k0 = 0;
    while (k0 < kl && (a[k0] == ' ' || a[k0] == '\t')) k0++;
    if (kl - k0 == 0 || kl - k0 >= sizeof key)
      return sqlite3_mprintf("malformed option: \"%s\"", a);
    memcpy(key, a + k0, kl - k0);
    key[kl - k0] = 0;
    const char *v = eq + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (vl >= 2 && (v[0] == '\'' || v[0] == '"') && v[vl - 1] == v[0]) {
      v++;
      vl -= 2;
    }
    if (vl == 0 || vl >= 256)
      return sqlite3_mprintf("malformed option: \"%s\" (empty or too long value)", a);
    int known = !strcmp(key, "partitions") || tk_config_find(key) != NULL;
    if (!known) return sqlite3_mprintf("unrecognized option: \"%s\"", key);
    for (int k = 0; k < n; k++)
      if (!strcmp(kv[2 * k], key)) return sqlite3_mprintf("duplicate option: \"%s\"", key);
    if (!strcmp(key, "partitions") && *partitions)
      return sqlite3_mprintf("duplicate option: \"partitions\"");
    memcpy(bufs[n], v, vl);
    bufs[n][vl] = 0;
    if (!strcmp(key, "partitions")) {
      char *end;
      /* digits only: strtoll would take " 3" or "+3" as well */
      size_t digits = strspn(bufs[n], "0123456789");
      errno = 0;
      long long x = digits && !bufs[n][digits] ? strtoll(bufs[n], &end, 10) : 0;
      if (errno || x < 1 || x > TK_MAX_PARTITIONS)
        return sqlite3_mprintf("option partitions: \"%s\" is not an integer in [1, %d]", bufs[n],
                               TK_MAX_PARTITIONS);
      *partitions = x;
      continue;
    }
    kv[2 * n] = tk_config_find(key)->key; /* a static key string outlives argv */
    kv[2 * n + 1] = bufs[n];
    n++;
  }
  kv[2 * n] = NULL;
  return NULL;
}

static const char *schema_topic =
    "CREATE TABLE x(partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, headers TEXT)";
static const char *schema_multi =
    "CREATE TABLE x(topic TEXT, partition INTEGER, offset INTEGER, timestamp INTEGER, key, value, "
    "headers TEXT)";

static int vt_new(sqlite3 *db, tkx_conn *conn, int multi, const char *topic, sqlite3_vtab **out,
                  char **err) {
  int rc = sqlite3_declare_vtab(db, multi ? schema_multi : schema_topic);
  if (rc != SQLITE_OK) return rc;
  tkx_vtab *vt = sqlite3_malloc(sizeof *vt);
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  vt->conn = conn;
  vt->multi = multi;
  if (topic) snprintf(vt->topic, sizeof vt->topic, "%s", topic);
  /* DIRECTONLY: these tables read and write files; a view or trigger in a
  ** schema someone else wrote must not reach them. */
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *out = &vt->base;
  (void)err;
  return SQLITE_OK;
}

/* CREATE VIRTUAL TABLE t USING takhin(...): create topic t, or bind to it. */
static int topic_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err) {
  tkx_conn *conn = aux;
  if (strcmp(argv[1], "main")) {
    *err = sqlite3_mprintf(
        "takhin tables live in the main database (the store beside it), not in \"%s\"", argv[1]);
    return SQLITE_ERROR;
  }
  if (tk_topic_name_check(argv[2])) {
    *err = sqlite3_mprintf("takhin: the table name is the topic name: %s", takhin_errmsg());
    return SQLITE_ERROR;
  }
  char bufs[16][256];
  const char *kv[2 * 16 + 1];
  int64_t partitions;
  if (argc - 3 > 16) {
    *err = sqlite3_mprintf("too many options");
    return SQLITE_ERROR;
  }
  if ((*err = parse_args(argc, argv, bufs, kv, &partitions))) return SQLITE_ERROR;
  char *msg = NULL;
  takhin_store *s = tkx_store(conn, &msg);
  if (!s) {
    *err = msg;
    return SQLITE_ERROR;
  }
  if (tkx_drop_pending(conn, argv[2])) {
    *err = sqlite3_mprintf("takhin: topic \"%s\" is dropped by this transaction, at its "
                           "COMMIT: COMMIT first",
                           argv[2]);
    return SQLITE_ERROR;
  }
  int32_t have;
  int exists = takhin_topic_partitions(s, argv[2], &have) == TAKHIN_OK;
  if (argc == 3) {
    if (!exists) {
      *err = sqlite3_mprintf("takhin: topic \"%s\" does not exist; create it with arguments, e.g. "
                             "USING takhin(partitions=1)",
                             argv[2]);
      return SQLITE_ERROR;
    }
  } else {
    if (exists) {
      *err = sqlite3_mprintf("takhin: topic \"%s\" already exists; bind to it with no arguments: "
                             "CREATE VIRTUAL TABLE \"%w\" USING takhin",
                             argv[2], argv[2]);
      return SQLITE_ERROR;
    }
    if (!sqlite3_get_autocommit(db)) {
      *err =
          sqlite3_mprintf("takhin: creating topic \"%s\" writes files that a ROLLBACK cannot take "
                          "back: run CREATE VIRTUAL TABLE outside a transaction",
                          argv[2]);
      return SQLITE_ERROR;
    }
    int rc = takhin_topic_create(s, argv[2], partitions ? (int32_t)partitions : 1, kv);
    if (rc) {
      *err = rc == TAKHIN_EREADONLY && conn->read_only ? sqlite3_mprintf("%s", TKX_LOCKED_MSG)
                                                       : tkx_errmsg(rc);
      return SQLITE_ERROR;
    }
  }
  return vt_new(db, conn, 0, argv[2], out, err);
}

static int topic_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                         sqlite3_vtab **out, char **err) {
  (void)argc;
  /* The topic may since have been deleted through C or another connection:
  ** that surfaces as "unknown topic" when the table is used. */
  return vt_new(db, aux, 0, argv[2], out, err);
}

static int messages_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                            sqlite3_vtab **out, char **err) {
  (void)argc;
  (void)argv;
  return vt_new(db, aux, 1, NULL, out, err);
}

/* n bytes, 8-aligned, from vt's row arena; NULL when out of memory. */
static void *row_alloc(tkx_vtab *vt, size_t n) {
  n = (n + 7) & ~(size_t)7;
  row_chunk *ch = vt->chunks;
  if (!ch || ch->cap - ch->used < n) {
    size_t cap = n > ROW_CHUNK_BYTES ? n : ROW_CHUNK_BYTES;
    ch = sqlite3_malloc64(sizeof *ch + cap);
    if (!ch) return NULL;
    ch->cap = cap;
    ch->used = 0;
    ch->next = vt->chunks;
    vt->chunks = ch;
  }
  void *p = (char *)(ch + 1) + ch->used;
  ch->used += n;
  return p;
}

/* A row's own allocations (its bytes stay in the arena until the
** transaction ends). */
static void free_row(pend_row *r) { sqlite3_free(r->headers); }

/* The transaction is over: forget its rows, keep one arena chunk. */
static void clear_pending(tkx_vtab *vt) {
  for (size_t i = 0; i < vt->nrows; i++) free_row(vt->rows[i]);
  vt->nrows = 0;
  vt->ndels = 0;
  vt->store_checked = vt->limits_checked = 0;
  row_chunk *keep = NULL;
  for (row_chunk *ch = vt->chunks, *next; ch; ch = next) {
    next = ch->next;
    if (!next && ch->cap == ROW_CHUNK_BYTES) keep = ch; /* the oldest, of the usual size */
    else sqlite3_free(ch);
  }
  if (keep) keep->used = 0, keep->next = NULL;
  vt->chunks = keep;
}

static int vt_disconnect(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  cursor_free(vt->spare);
  takhin_cursor_close(vt->park);
  vt->park = NULL;
  clear_pending(vt);
  sqlite3_free(vt->chunks);
  sqlite3_free(vt->rows);
  sqlite3_free(vt->dels);
  sqlite3_free(vt->undo);
  for (int i = 0; i < 64; i++) sqlite3_free(vt->del_snap[i]);
  sqlite3_free(vt->base.zErrMsg); /* a message SQLite did not take (a failed xDestroy's) */
  sqlite3_free(vt);
  return SQLITE_OK;
}

/* SQLite drops the message of a failing xDestroy (OP_VDestroy reports only
** the result code, 3.40 and since), and no earlier step of DROP TABLE's
** program can pass one on. So a refused DROP TABLE says no more than the
** code's generic text: the code is chosen for that text, and the whole
** message goes to sqlite3_log for hosts that set SQLITE_CONFIG_LOG. zErrMsg
** is left empty: a later statement would pick up a message left there. */
static int destroy_refused(tkx_vtab *vt, int code, char *msg) {
  sqlite3_log(code, "%s", msg ? msg : "takhin: DROP TABLE refused");
  sqlite3_free(msg);
  sqlite3_free(vt->base.zErrMsg);
  vt->base.zErrMsg = NULL;
  return code;
}

/* DROP TABLE: delete the topic and its files at COMMIT (drop.c), a lone
** DROP TABLE's own included: its files go only once SQLite's commit is done. */
static int topic_destroy(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  takhin_store *s = vt_store(vt);
  if (!s) {
    char *m = vt->base.zErrMsg;
    vt->base.zErrMsg = NULL;
    return destroy_refused(vt, SQLITE_ERROR, m);
  }
  /* "attempt to write a readonly database" */
  if (vt->conn->read_only)
    return destroy_refused(vt, SQLITE_READONLY, sqlite3_mprintf("%s", TKX_LOCKED_MSG));
  /* This table's uncommitted rows go with it; a ROLLBACK TO a savepoint
  ** opened after them and before the DROP would bring the table back
  ** without them. "database table is locked": SQLite's own words for a
  ** table that cannot be dropped now. */
  if (!sqlite3_get_autocommit(vt->conn->db) && (vt->nrows || vt->ndels) && vt->sp_level > 0)
    return destroy_refused(
        vt, SQLITE_LOCKED,
        sqlite3_mprintf("takhin: topic \"%s\" has uncommitted INSERTs or DELETEs and a "
                        "savepoint is open: RELEASE or COMMIT before DROP TABLE",
                        vt->topic));
  char *m = NULL;
  if (tkx_drop_defer(vt->conn, vt->topic, &m) != SQLITE_OK)
    return destroy_refused(vt, SQLITE_LOCKED, m);
  return vt_disconnect(base);
}

static int topic_rename(sqlite3_vtab *base, const char *name) {
  (void)name;
  return vt_error((tkx_vtab *)base,
                  sqlite3_mprintf("takhin: topics cannot be renamed (Kafka has no rename either)"));
}

/* ---- planning ---------------------------------------------------------------
** idxStr lists, in argv order, the constraints xFilter receives, one letter
** each; idxNum is the order of the rows (ORD_* bits, 0 for the natural one):
**   T topic =          P partition =       I partition IN (all values at once)
**   o offset =         g offset >          G offset >=
**   l offset <         L offset <=         t timestamp >=   u timestamp >
**   N LIMIT
** Offsets, partitions and topics are exact and omitted from SQLite's own
** check; timestamps are not (timestamps need not grow with offsets, so the
** scan starts at the first offset with timestamp >= T and SQLite filters).
** LIMIT is taken only when every other constraint is exact and the rows
** come out in the ORDER BY's order, so stopping early can never drop a row
** SQLite would have kept.
** Rows come out by topic (name order), partition, then offset, each either
** way, or merged by offset across the partitions of one topic.
*/
static int vt_best_index(sqlite3_vtab *base, sqlite3_index_info *info) {
  tkx_vtab *vt = (tkx_vtab *)base;
  char ops[32];
  int nops = 0, argi = 0;
  int has_topic = 0, has_part = 0, part_in = 0, has_offset_eq = 0, has_range = 0, has_ts = 0;
  int has_key = 0, compacted = 0;
  if (!vt->multi && vt->conn->store) {
    takhin_topic_desc d;
    compacted = takhin_topic_describe(vt->conn->store, vt->topic, &d) == TAKHIN_OK &&
                d.cleanup_policy[0] == 'c';
  }
  int inexact = 0, limit_at = -1, has_offset_clause = 0;
  int off = vt->multi ? 0 : 1; /* column numbers -> the C_* layout */
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) {
      if (c->usable) limit_at = i;
      continue;
    }
    if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
      has_offset_clause = 1;
      continue;
    }
    if (!c->usable) {
      inexact = 1;
      continue;
    }
    int col = c->iColumn + off;
    char op = 0;
    int omit = 1;
    if (col == C_TOPIC && c->op == SQLITE_INDEX_CONSTRAINT_EQ && !has_topic) {
      op = 'T';
      has_topic = 1;
    } else if (col == C_PARTITION && c->op == SQLITE_INDEX_CONSTRAINT_EQ && !has_part) {
      if (sqlite3_vtab_in(info, i, -1)) {
        op = 'I';
        sqlite3_vtab_in(info, i, 1);
        part_in = 1;
      } else op = 'P';
      has_part = 1;
    } else if (col == C_OFFSET) {
      switch (c->op) {
      case SQLITE_INDEX_CONSTRAINT_EQ:
        op = 'o';
        has_offset_eq = 1;
        break;
      case SQLITE_INDEX_CONSTRAINT_GT:
        op = 'g';
        has_range = 1;
        break;
      case SQLITE_INDEX_CONSTRAINT_GE:
        op = 'G';
        has_range = 1;
        break;
      case SQLITE_INDEX_CONSTRAINT_LT:
        op = 'l';
        has_range = 1;
        break;
      case SQLITE_INDEX_CONSTRAINT_LE:
        op = 'L';
        has_range = 1;
        break;
      }
    } else if (col == C_KEY && c->op == SQLITE_INDEX_CONSTRAINT_EQ && compacted && !has_key) {
      op = 'K';
      has_key = 1;
    } else if (col == C_TIMESTAMP &&
               (c->op == SQLITE_INDEX_CONSTRAINT_GE || c->op == SQLITE_INDEX_CONSTRAINT_GT)) {
      op = c->op == SQLITE_INDEX_CONSTRAINT_GE ? 't' : 'u';
      omit = 0;
      has_ts = 1;
    }
    if (!op || nops >= (int)sizeof ops - 2) {
      inexact = 1;
      continue;
    }
    if (!omit) inexact = 1;
    ops[nops++] = op;
    info->aConstraintUsage[i].argvIndex = ++argi;
    info->aConstraintUsage[i].omit = (unsigned char)omit;
  }
  /* Estimates from the live log sizes. */
  double rows = 1e6, parts = 1;
  takhin_store *s = vt->conn->store;
  if (s && !vt->multi) {
    int32_t np;
    if (takhin_topic_partitions(s, vt->topic, &np) == TAKHIN_OK) {
      double total = 0;
      for (int32_t p = 0; p < np; p++) {
        takhin_partition_info pi;
        if (takhin_partition_info_get(s, vt->topic, p, &pi) == TAKHIN_OK)
          total += (double)(pi.high_watermark - pi.log_start_offset);
      }
      rows = total > 1 ? total : 1;
      parts = np;
    }
  }
  if (vt->multi && !has_topic) rows *= 10;
  if (has_part) rows = rows / parts * (part_in ? 2 : 1);
  if (has_key) rows = has_part && !part_in ? 1 : parts;
  if (has_offset_eq) rows = has_part && !part_in ? 1 : parts;
  else if (has_range) rows /= 4;
  if (has_ts) rows /= 4;
  if (rows < 1) rows = 1;
  info->estimatedRows = (sqlite3_int64)rows;
  info->estimatedCost = rows + (has_part ? 10 : 10 * parts);
  if ((has_offset_eq || has_key) && has_part && !part_in && (!vt->multi || has_topic))
    info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  /* ORDER BY. In order, rows come out by topic, then partition, then
  ** offset, each level walked either way (ORD_*_DESC). On one topic they can
  ** instead be merged across partitions by offset, ties by partition
  ** (ORD_MERGE). A column fixed by = is constant: it may appear anywhere in
  ** the ORDER BY, or not at all. Anything else is left to SQLite's sort. */
  int fixed[C_COUNT] = {0};
  fixed[C_TOPIC] = vt->multi && has_topic;
  fixed[C_PARTITION] = has_part && !part_in;
  fixed[C_OFFSET] = has_offset_eq || (has_key && fixed[C_PARTITION]);
  int order = 0, consumed = info->nOrderBy > 0;
  {
    int levels[3], nl = 0, at = 0;
    if (vt->multi) levels[nl++] = C_TOPIC;
    levels[nl++] = C_PARTITION;
    levels[nl++] = C_OFFSET;
    for (int i = 0; i < info->nOrderBy && consumed; i++) {
      int col = info->aOrderBy[i].iColumn < 0 ? -1 : info->aOrderBy[i].iColumn + off;
      if (col >= 0 && col <= C_OFFSET && fixed[col]) continue;
      while (at < nl && fixed[levels[at]]) at++;
      if (at < nl && col == levels[at]) {
        if (info->aOrderBy[i].desc)
          order |= col == C_TOPIC       ? ORD_TOPIC_DESC
                   : col == C_PARTITION ? ORD_PART_DESC
                                        : ORD_OFFSET_DESC;
        at++;
      } else {
        consumed = 0;
      }
    }
  }
  if (!consumed && info->nOrderBy > 0 && (!vt->multi || has_topic)) {
    /* offset first, then at most partition, fixed columns anywhere */
    int seen = 0;
    order = ORD_MERGE;
    consumed = 1;
    for (int i = 0; i < info->nOrderBy && consumed; i++) {
      int col = info->aOrderBy[i].iColumn < 0 ? -1 : info->aOrderBy[i].iColumn + off;
      if (col >= 0 && col <= C_OFFSET && fixed[col]) continue;
      if (seen == 0 && col == C_OFFSET) order |= info->aOrderBy[i].desc ? ORD_OFFSET_DESC : 0;
      else if (seen == 1 && col == C_PARTITION) order |= info->aOrderBy[i].desc ? ORD_PART_DESC : 0;
      else consumed = 0;
      seen++;
    }
    if (!consumed) order = 0;
  }
  info->orderByConsumed = consumed;
  info->idxNum = order;
  if (order & ORD_MERGE) info->estimatedCost += parts; /* a heap step per row */
  /* LIMIT: SQLite offers it only where it may stop the scan early, given
  ** that the rows come out in the ORDER BY's order. So it is taken only
  ** when that order is ours (or there is no ORDER BY), SQLite has nothing
  ** left to check (every other constraint exact), and there is no OFFSET
  ** (the LIMIT's value does not count the rows OFFSET skips). */
  if (limit_at >= 0 && !inexact && !has_offset_clause && (consumed || info->nOrderBy == 0)) {
    ops[nops++] = 'N';
    info->aConstraintUsage[limit_at].argvIndex = ++argi;
    info->aConstraintUsage[limit_at].omit = 1;
  }
  ops[nops] = 0;
  info->idxStr = sqlite3_mprintf("%s", ops);
  info->needToFreeIdxStr = 1;
  if (!info->idxStr) return SQLITE_NOMEM;
  return SQLITE_OK;
}

/* ---- scanning ------------------------------------------------------------
** A partition is read by a part_reader: forward through a takhin cursor
** (zero-copy views), or backward for ORDER BY offset DESC. Backward reading
** walks stretches of offsets from the end: it seeks to the stretch's first
** offset (the sparse index finds its batch), reads the stretch forward into
** a buffer and hands it out last record first, then steps back one stretch.
** The first stretch is the LIMIT when SQLite gave one and stretches double
** from there, so "the last N records" reads about N records whatever the
** partition holds, and a full backward scan costs a seek per stretch. */

#define BACK_STRETCH_FIRST 64        /* records, when there is no LIMIT */
#define BACK_STRETCH_MAX 4096        /* records */
#define BACK_STRETCH_BYTES (1 << 20) /* stop doubling past this much buffer */

typedef struct back_row {
  takhin_message m;
  size_t key_at, value_at, headers_at; /* into the arena (pointers once it stops growing) */
} back_row;

typedef struct part_reader {
  int32_t part;
  takhin_cursor *cur;
  char topic[TK_MAX_TOPIC_NAME + 1];
  const void *topic_obj; /* the tk_topic cur reads */
  int desc;
  int64_t start, end; /* the offsets to read: [start, end) */
  int64_t back_hi;    /* desc: offsets below this are still to read */
  int64_t stretch;
  back_row *rows;
  size_t nrows, rows_cap, at;
  unsigned char *arena;
  size_t arena_len, arena_cap;
  takhin_message m;  /* the current record */
  const char *pf_hi; /* forward: prefetched up to here (prefetch_after) */
} part_reader;

#define TKX_HELD_MAX 8
#define TKX_PREFETCH_BYTES 2048

typedef struct tkx_cursor {
  sqlite3_vtab_cursor base;
  tkx_vtab *vt;
  takhin_store *store;
  char **topics; /* multi: sorted topic names (takhin_free) */
  size_t ntopics, ti;
  const char *topic; /* current topic */
  int32_t *parts;    /* partitions to visit, ascending (NULL: all) */
  size_t nparts, pi;
  int32_t part_all_n, part_cur;
  int64_t topic_id; /* multi: the current topic's catalog id, for rowids */
  int64_t lo, hi, ts;
  int has_ts;
  int64_t limit, emitted;
  int order;       /* ORD_* bits of idxNum */
  int topic_named; /* topics came from a topic = constraint */
  const void *key; /* K: the key looked up (in key_buf) */
  size_t key_len;
  int has_key;
  char *key_buf;
  part_reader *rd; /* one (in order) or one per partition (ORD_MERGE) */
  size_t nrd, rd_cap;
  size_t *heap; /* ORD_MERGE: readers with a record, best on top */
  size_t nheap;
  const takhin_message *m; /* the current row (the m of one of rd) */
  int eof;
  /* Segments whose mapping a key or value column handed to SQLite without
  ** a copy (refs held until xClose; see vt_column). */
  tk_segment *held[TKX_HELD_MAX];
  int nheld;
  /* The mapping of the held segment the last view was in: bytes inside it
  ** need no lookup (vt_column), so a forward scan of mapped records pays
  ** two compares per key or value instead of asking the cursor. */
  const char *view_map;
  size_t view_len;
} tkx_cursor;

static int vt_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out) {
  tkx_vtab *vt = (tkx_vtab *)base;
  tkx_cursor *c = vt->spare;
  vt->spare = NULL;
  if (c) { /* as new, but with the readers (closed) and the heap it had */
    part_reader *rd = c->rd;
    size_t rd_cap = c->rd_cap, *heap = c->heap;
    memset(c, 0, sizeof *c);
    c->rd = rd;
    c->rd_cap = rd_cap;
    c->heap = heap;
  } else {
    if (!(c = sqlite3_malloc(sizeof *c))) return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
  }
  c->vt = vt;
  *out = &c->base;
  return SQLITE_OK;
}

/* Done with r: its cursor is parked in the table for the next scan, in
** place of the one parked before. */
static void reader_close(tkx_vtab *vt, part_reader *r) {
  if (!r->cur) return;
  takhin_cursor_close(vt->park);
  vt->park = r->cur;
  snprintf(vt->park_topic, sizeof vt->park_topic, "%s", r->topic);
  vt->park_part = r->part;
  vt->park_topic_obj = r->topic_obj;
  r->cur = NULL;
}

/* A cursor on partition part of topic for r: the parked one if it reads
** there, in the same incarnation of the topic. */
static int cursor_take(tkx_cursor *c, part_reader *r, const char *topic, int32_t part) {
  tkx_vtab *vt = c->vt;
  tk_topic *t;
  r->topic_obj = NULL;
  if (tk_store_topic(c->store, topic, &t) == TAKHIN_OK) {
    r->topic_obj = t;
    tk_topic_unref(t);
  }
  if (vt->park && vt->park_part == part && vt->park_topic_obj == r->topic_obj && r->topic_obj &&
      !strcmp(vt->park_topic, topic)) {
    r->cur = vt->park;
    vt->park = NULL;
    return TAKHIN_OK;
  }
  return takhin_cursor_open(c->store, topic, part, &r->cur);
}

static void cursor_reset(tkx_cursor *c) {
  for (size_t i = 0; i < c->rd_cap; i++) reader_close(c->vt, &c->rd[i]);
  c->nrd = c->nheap = 0;
  takhin_free(c->topics);
  c->topics = NULL;
  sqlite3_free(c->parts);
  c->parts = NULL;
  sqlite3_free(c->key_buf);
  c->key_buf = NULL;
  c->has_key = 0;
  c->m = NULL;
  c->ntopics = c->ti = c->nparts = c->pi = 0;
}

static void cursor_free(tkx_cursor *c) {
  if (!c) return;
  for (size_t i = 0; i < c->rd_cap; i++) {
    sqlite3_free(c->rd[i].rows);
    sqlite3_free(c->rd[i].arena);
  }
  sqlite3_free(c->rd);
  sqlite3_free(c->heap);
  sqlite3_free(c);
}

/* The statement is done with c: the segments it held go (SQLite may have
** kept views into them until now, see vt_column), the cursor is kept. */
static int vt_close(sqlite3_vtab_cursor *base) {
  tkx_cursor *c = (tkx_cursor *)base;
  tkx_vtab *vt = c->vt;
  cursor_reset(c);
  for (int i = 0; i < c->nheld; i++) tk_seg_unref(c->held[i]);
  c->nheld = 0;
  c->view_map = NULL; /* its segment is no longer held */
  c->view_len = 0;
  if (!vt->spare) vt->spare = c;
  else cursor_free(c);
  return SQLITE_OK;
}

/* Copy n bytes into r's arena; *at gets their position. */
static int arena_put(part_reader *r, const void *p, size_t n, size_t *at) {
  if (r->arena_len + n > r->arena_cap) {
    size_t cap = r->arena_cap ? r->arena_cap : 16384;
    while (cap < r->arena_len + n) cap *= 2;
    unsigned char *na = sqlite3_realloc64(r->arena, cap);
    if (!na) return SQLITE_NOMEM;
    r->arena = na;
    r->arena_cap = cap;
  }
  if (n) memcpy(r->arena + r->arena_len, p, n);
  *at = r->arena_len;
  r->arena_len += n;
  return SQLITE_OK;
}

/* Keep a copy of m (its views die with the cursor's next call). */
static int back_keep(part_reader *r, const takhin_message *m) {
  if (r->nrows == r->rows_cap) {
    size_t cap = r->rows_cap ? r->rows_cap * 2 : 64;
    back_row *nr = sqlite3_realloc64(r->rows, cap * sizeof *nr);
    if (!nr) return SQLITE_NOMEM;
    r->rows = nr;
    r->rows_cap = cap;
  }
  back_row *b = &r->rows[r->nrows];
  b->m = *m;
  if ((m->key && arena_put(r, m->key, m->key_len, &b->key_at)) ||
      (m->value && arena_put(r, m->value, m->value_len, &b->value_at)) ||
      (m->headers_raw && arena_put(r, m->headers_raw, m->headers_raw_len, &b->headers_at)))
    return SQLITE_NOMEM;
  r->nrows++;
  return SQLITE_OK;
}

/* desc: read the next stretch below back_hi that holds a record; *has = 0
** when the partition is used up. */
static int back_fill(tkx_cursor *c, part_reader *r, int *has) {
  *has = 0;
  while (r->back_hi > r->start) {
    int64_t from = r->back_hi - r->start > r->stretch ? r->back_hi - r->stretch : r->start;
    r->nrows = r->arena_len = 0;
    int rc = takhin_cursor_seek(r->cur, from, r->back_hi - from, 0);
    if (rc == TAKHIN_ERANGE) { /* DeleteRecords moved the log start meanwhile */
      takhin_partition_info pi;
      if ((rc = takhin_partition_info_get(c->store, c->topic, r->part, &pi)))
        return vt_takhin_error(c->vt, rc);
      if (pi.log_start_offset <= from) return vt_takhin_error(c->vt, TAKHIN_ERANGE);
      r->start = pi.log_start_offset;
      continue;
    }
    if (rc) return vt_takhin_error(c->vt, rc);
    takhin_message m;
    while ((rc = takhin_cursor_next(r->cur, &m)) == TAKHIN_OK && m.offset < r->back_hi)
      if (back_keep(r, &m)) return SQLITE_NOMEM;
    if (rc != TAKHIN_OK && rc != TAKHIN_END) return vt_takhin_error(c->vt, rc);
    r->back_hi = from;
    if (r->stretch < BACK_STRETCH_MAX && r->arena_len < BACK_STRETCH_BYTES) r->stretch *= 2;
    if (r->nrows) {
      for (size_t i = 0; i < r->nrows; i++) { /* the arena is final: views into it */
        back_row *b = &r->rows[i];
        if (b->m.key) b->m.key = r->arena + b->key_at;
        if (b->m.value) b->m.value = r->arena + b->value_at;
        if (b->m.headers_raw) b->m.headers_raw = r->arena + b->headers_at;
      }
      r->at = r->nrows - 1;
      r->m = r->rows[r->at].m;
      *has = 1;
      return SQLITE_OK;
    }
  }
  return SQLITE_OK;
}

/* Open r on partition part of c->topic for offsets [start, end); *has says
** whether it stands on a record. */
static int reader_open(tkx_cursor *c, part_reader *r, int32_t part, int64_t start, int64_t end,
                       int *has) {
  *has = 0;
  reader_close(c->vt, r);
  r->part = part;
  snprintf(r->topic, sizeof r->topic, "%s", c->topic);
  r->start = start;
  r->end = end;
  r->desc = (c->order & ORD_OFFSET_DESC) != 0;
  r->nrows = r->arena_len = 0;
  int rc = cursor_take(c, r, c->topic, part);
  if (rc) return vt_takhin_error(c->vt, rc);
  if (c->has_key) { /* the key's latest record in this partition, if in range */
    rc = takhin_cursor_get_key(r->cur, c->key, c->key_len, &r->m);
    if (rc == TAKHIN_OK) *has = r->m.offset >= start && r->m.offset < end;
    else if (rc != TAKHIN_ENOTFOUND) return vt_takhin_error(c->vt, rc);
    return SQLITE_OK;
  }
  if (r->desc) {
    r->back_hi = end;
    r->stretch = c->limit > 0 && c->limit < BACK_STRETCH_MAX ? c->limit
                 : c->limit > 0                              ? BACK_STRETCH_MAX
                                                             : BACK_STRETCH_FIRST;
    return back_fill(c, r, has);
  }
  if ((rc = takhin_cursor_seek(r->cur, start, 0, 0))) return vt_takhin_error(c->vt, rc);
  rc = takhin_cursor_next(r->cur, &r->m);
  if (rc == TAKHIN_OK) *has = r->m.offset < end;
  else if (rc != TAKHIN_END) return vt_takhin_error(c->vt, rc);
  return SQLITE_OK;
}

/* Start loading what the next rows will read: the records after m follow
** its value in the batch. A forward scan is memory-bound on the first touch
** of each record's header (the decode in takhin_cursor_next) and of its
** value (the text check); SQLite's own work between rows leaves the
** hardware prefetcher behind (a range SELECT of 1 KiB records ran 20-25%
** faster with this). Each line is asked for once (pf_hi), TKX_PREFETCH_BYTES
** ahead. A prefetch never faults, so asking past the end of a batch or
** mapping is harmless. */
static inline void prefetch_after(part_reader *r) {
  const takhin_message *m = &r->m;
  const char *p = m->value ? (const char *)m->value + m->value_len
                  : m->key ? (const char *)m->key + m->key_len
                           : NULL;
  if (!p) return;
  const char *from = r->pf_hi > p && r->pf_hi <= p + TKX_PREFETCH_BYTES ? r->pf_hi : p;
  const char *to = p + TKX_PREFETCH_BYTES;
  for (; to - from > 192; from += 256) { /* four lines a turn: half the loop's instructions */
    __builtin_prefetch(from);
    __builtin_prefetch(from + 64);
    __builtin_prefetch(from + 128);
    __builtin_prefetch(from + 192);
  }
  for (; from < to; from += 64) __builtin_prefetch(from);
  r->pf_hi = from;
}

/* Move r to its next record; *has = 0 at its end. */
static int reader_next(tkx_cursor *c, part_reader *r, int *has) {
  *has = 0;
  if (c->has_key) return SQLITE_OK; /* one record per partition */
  if (r->desc) {
    if (r->at > 0) {
      r->m = r->rows[--r->at].m;
      *has = 1;
      return SQLITE_OK;
    }
    return back_fill(c, r, has);
  }
  int rc = takhin_cursor_next(r->cur, &r->m);
  if (rc == TAKHIN_OK) {
    *has = r->m.offset < r->end;
    prefetch_after(r);
  } else if (rc != TAKHIN_END) {
    return vt_takhin_error(c->vt, rc);
  }
  return SQLITE_OK;
}

/* The offsets of partition part of c->topic to read, from the constraints:
** [*start, *end), empty when *start >= *end. */
static int part_range(tkx_cursor *c, int32_t part, int64_t *start, int64_t *end) {
  takhin_partition_info pi;
  int rc = takhin_partition_info_get(c->store, c->topic, part, &pi);
  if (rc) return vt_takhin_error(c->vt, rc);
  *start = c->lo > pi.log_start_offset ? c->lo : pi.log_start_offset;
  *end = c->hi < pi.high_watermark ? c->hi : pi.high_watermark;
  if (c->has_ts && *start < *end) {
    int64_t t;
    if ((rc = takhin_offset_for_time(c->store, c->topic, part, c->ts, &t)))
      return vt_takhin_error(c->vt, rc);
    if (t > *start) *start = t;
  }
  return SQLITE_OK;
}

static int reader_grow(tkx_cursor *c, size_t n) {
  if (n <= c->rd_cap) return SQLITE_OK;
  part_reader *nr = sqlite3_realloc64(c->rd, n * sizeof *nr);
  if (!nr) return SQLITE_NOMEM;
  memset(nr + c->rd_cap, 0, (n - c->rd_cap) * sizeof *nr);
  c->rd = nr;
  /* rd_cap grows only once both arrays have: a failed heap realloc must not
  ** leave a capacity the heap does not have */
  size_t *nh = sqlite3_realloc64(c->heap, n * sizeof *nh);
  if (!nh) return SQLITE_NOMEM;
  c->heap = nh;
  c->rd_cap = n;
  return SQLITE_OK;
}

/* Next topic of the walk (by name, either way); 0 when there is none. A
** topic of the store's list deleted meanwhile is skipped; one named by
** topic = that does not exist is an error, as for a topic table. */
static int next_topic(tkx_cursor *c, int *found) {
  tkx_vtab *vt = c->vt;
  *found = 0;
  while (c->ti < c->ntopics) {
    size_t i = c->ti++;
    c->topic =
        vt->multi ? c->topics[c->order & ORD_TOPIC_DESC ? c->ntopics - 1 - i : i] : vt->topic;
    int32_t n;
    int rc = takhin_topic_partitions(c->store, c->topic, &n);
    if (rc == TAKHIN_ENOTFOUND && vt->multi && !c->topic_named) continue;
    if (rc) return vt_takhin_error(vt, rc);
    c->topic_id = 0;
    tk_topic *t;
    if (vt->multi && tk_store_topic(c->store, c->topic, &t) == TAKHIN_OK) {
      tk_topic_limits l;
      tk_topic_limits_get(c->store, t, &l);
      c->topic_id = l.topic_id;
      tk_topic_unref(t);
    }
    c->part_all_n = n;
    c->pi = 0;
    *found = 1;
    return SQLITE_OK;
  }
  return SQLITE_OK;
}

/* Next partition of the current topic in the walk's direction; 0 when the
** topic has no more. */
static int next_part_of_topic(tkx_cursor *c, int32_t *part) {
  int desc = (c->order & ORD_PART_DESC) != 0;
  for (;;) {
    if (c->parts) {
      if (c->pi >= c->nparts) return 0;
      size_t i = c->pi++;
      *part = c->parts[desc ? c->nparts - 1 - i : i];
    } else {
      if (c->pi >= (size_t)c->part_all_n) return 0;
      size_t i = c->pi++;
      *part = (int32_t)(desc ? (size_t)c->part_all_n - 1 - i : i);
    }
    if (*part >= 0 && *part < c->part_all_n) return 1; /* a listed partition may not exist */
  }
}

/* In order: position on the next (topic, partition) that has a row in
** range; sets eof when there is none. */
static int advance_partition(tkx_cursor *c) {
  part_reader *r = &c->rd[0];
  for (;;) {
    int32_t part;
    if (!c->topic || !next_part_of_topic(c, &part)) {
      int found, rc = next_topic(c, &found);
      if (rc) return rc;
      if (!found) {
        reader_close(c->vt, r);
        c->eof = 1;
        return SQLITE_OK;
      }
      continue;
    }
    int64_t start, end;
    int has, rc = part_range(c, part, &start, &end);
    if (rc) return rc;
    if (start >= end) continue;
    if ((rc = reader_open(c, r, part, start, end, &has))) return rc;
    if (has) {
      c->part_cur = part;
      c->m = &r->m;
      return SQLITE_OK;
    }
  }
}

/* ORD_MERGE: is reader a's record before reader b's? By offset, then by
** partition, each in the direction of the plan. */
static int merge_before(const tkx_cursor *c, size_t a, size_t b) {
  const part_reader *x = &c->rd[a], *y = &c->rd[b];
  if (x->m.offset != y->m.offset)
    return c->order & ORD_OFFSET_DESC ? x->m.offset > y->m.offset : x->m.offset < y->m.offset;
  return c->order & ORD_PART_DESC ? x->part > y->part : x->part < y->part;
}

static void heap_down(tkx_cursor *c, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, best = i;
    if (l < c->nheap && merge_before(c, c->heap[l], c->heap[best])) best = l;
    if (l + 1 < c->nheap && merge_before(c, c->heap[l + 1], c->heap[best])) best = l + 1;
    if (best == i) return;
    size_t t = c->heap[i];
    c->heap[i] = c->heap[best];
    c->heap[best] = t;
    i = best;
  }
}

static void merge_top(tkx_cursor *c) {
  if (!c->nheap) {
    c->eof = 1;
    return;
  }
  part_reader *r = &c->rd[c->heap[0]];
  c->part_cur = r->part;
  c->m = &r->m;
}

/* ORD_MERGE: open a reader on every partition of the one topic. */
static int merge_open(tkx_cursor *c) {
  int found, rc = next_topic(c, &found);
  if (rc) return rc;
  if (!found) {
    c->eof = 1;
    return SQLITE_OK;
  }
  size_t n = c->parts ? c->nparts : (size_t)c->part_all_n;
  if ((rc = reader_grow(c, n ? n : 1))) return rc;
  int32_t part;
  while (next_part_of_topic(c, &part)) {
    int64_t start, end;
    int has;
    if ((rc = part_range(c, part, &start, &end))) return rc;
    if (start >= end) continue;
    part_reader *r = &c->rd[c->nrd];
    if ((rc = reader_open(c, r, part, start, end, &has))) return rc;
    if (has) c->heap[c->nheap++] = c->nrd;
    c->nrd++;
  }
  for (size_t i = c->nheap / 2; i-- > 0;) heap_down(c, i);
  merge_top(c);
  return SQLITE_OK;
}

static int vt_next(sqlite3_vtab_cursor *base) {
  tkx_cursor *c = (tkx_cursor *)base;
  if (c->limit >= 0 && ++c->emitted >= c->limit) {
    c->eof = 1;
    return SQLITE_OK;
  }
  int has, rc;
  if (c->order & ORD_MERGE) {
    if ((rc = reader_next(c, &c->rd[c->heap[0]], &has))) return rc;
    if (!has) c->heap[0] = c->heap[--c->nheap];
    heap_down(c, 0);
    merge_top(c);
    return SQLITE_OK;
  }
  if ((rc = reader_next(c, &c->rd[0], &has))) return rc;
  return has ? SQLITE_OK : advance_partition(c);
}

static void value_bytes(sqlite3_value *v, const void **p, size_t *n);

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* How a constraint's value bounds an INTEGER column, compared the way
** SQLite compares: numbers (and numeric text, by the column's affinity) by
** value; other TEXT and BLOBs are greater than every number; NULL matches
** nothing. op is one of the idxStr letters o G g l L. For o, G and g *out is
** the lowest matching integer; for l and L one past the highest. */
typedef enum { B_NONE, B_EMPTY, B_VALUE } bound_kind;

static bound_kind int_bound(sqlite3_value *v, char op, int64_t *out) {
  int t = sqlite3_value_numeric_type(v);
  if (t == SQLITE_NULL) return B_EMPTY;
  if (t == SQLITE_TEXT || t == SQLITE_BLOB) /* above every integer */
    return op == 'l' || op == 'L' ? B_NONE : B_EMPTY;
  if (t == SQLITE_INTEGER) {
    int64_t x = sqlite3_value_int64(v);
    if ((op == 'g' || op == 'L') && x == INT64_MAX) return op == 'g' ? B_EMPTY : B_NONE;
    *out = op == 'g' || op == 'L' ? x + 1 : x;
    return B_VALUE;
  }
  double d = sqlite3_value_double(v);
  if (d != d) return B_EMPTY; /* NaN compares as NULL */
  if (d >= 9.2e18) return op == 'l' || op == 'L' ? B_NONE : B_EMPTY;
  if (d <= -9.2e18) return op == 'l' || op == 'L' ? B_EMPTY : B_NONE;
  double f = floor(d), c = ceil(d);
  switch (op) {
  case 'o':
    if (f != d) return B_EMPTY;
    *out = (int64_t)d;
    return B_VALUE;
  case 'G': *out = (int64_t)c; return B_VALUE;     /* >= 2.5: from 3 */
  case 'g': *out = (int64_t)f + 1; return B_VALUE; /* > 2.5 or > 2.0: from 3 */
  case 'l': *out = (int64_t)c; return B_VALUE;     /* < 2.5: up to 2, < 2.0: up to 1 */
  default: *out = (int64_t)f + 1; return B_VALUE;  /* <= 2.5: up to 2 */
  }
}

static int add_part(tkx_cursor *c, sqlite3_value *v) {
  int64_t p;
  if (int_bound(v, 'o', &p) != B_VALUE) return SQLITE_OK; /* matches nothing */
  if (p < 0 || p > INT32_MAX) return SQLITE_OK;
  int32_t *np = sqlite3_realloc64(c->parts, (c->nparts + 1) * sizeof *np);
  if (!np) return SQLITE_NOMEM;
  c->parts = np;
  c->parts[c->nparts++] = (int32_t)p;
  return SQLITE_OK;
}

static int vt_filter(sqlite3_vtab_cursor *base, int idxNum, const char *idxStr, int argc,
                     sqlite3_value **argv) {
  tkx_cursor *c = (tkx_cursor *)base;
  tkx_vtab *vt = c->vt;
  cursor_reset(c);
  c->order = idxNum;
  c->eof = 0;
  c->topic = NULL;
  c->lo = 0;
  c->hi = INT64_MAX;
  c->has_ts = 0;
  c->limit = -1;
  c->emitted = 0;
  c->topic_named = 0;
  if (!(c->store = vt_store(vt))) return SQLITE_ERROR;
  const char *topic_eq = NULL;
  int empty = 0, rc;
  for (int i = 0; i < argc && idxStr && idxStr[i]; i++) {
    sqlite3_value *v = argv[i];
    int is_int = sqlite3_value_numeric_type(v) == SQLITE_INTEGER;
    int64_t x = is_int ? sqlite3_value_int64(v) : 0;
    double d = sqlite3_value_numeric_type(v) == SQLITE_FLOAT ? sqlite3_value_double(v) : 0;
    switch (idxStr[i]) {
    case 'T':
      if (sqlite3_value_type(v) != SQLITE_TEXT) empty = 1;
      else topic_eq = (const char *)sqlite3_value_text(v);
      break;
    case 'P':
      if (!c->parts && !(c->parts = sqlite3_malloc(sizeof *c->parts))) return SQLITE_NOMEM;
      c->nparts = 0;
      if ((rc = add_part(c, v))) return rc;
      break;
    case 'I': {
      sqlite3_value *e;
      c->nparts = 0;
      if (!c->parts && !(c->parts = sqlite3_malloc(sizeof *c->parts))) return SQLITE_NOMEM;
      for (rc = sqlite3_vtab_in_first(v, &e); rc == SQLITE_OK && e;
           rc = sqlite3_vtab_in_next(v, &e))
        if ((rc = add_part(c, e))) return rc;
      if (rc != SQLITE_OK && rc != SQLITE_DONE) return rc;
      qsort(c->parts, c->nparts, sizeof *c->parts, cmp_i32);
      size_t k = 0; /* dedupe */
      for (size_t j = 0; j < c->nparts; j++)
        if (!k || c->parts[k - 1] != c->parts[j]) c->parts[k++] = c->parts[j];
      c->nparts = k;
      break;
    }
    case 'o':
    case 'G':
    case 'g':
    case 'l':
    case 'L': {
      int64_t b;
      switch (int_bound(v, idxStr[i], &b)) {
      case B_EMPTY: empty = 1; break;
      case B_NONE: break;
      case B_VALUE:
        if (idxStr[i] == 'o' || idxStr[i] == 'G' || idxStr[i] == 'g') {
          if (b > c->lo) c->lo = b;
        }
        if (idxStr[i] == 'o') b++; /* = x is [x, x + 1) */
        if (idxStr[i] == 'o' || idxStr[i] == 'l' || idxStr[i] == 'L') {
          if (b < c->hi) c->hi = b;
        }
      }
      break;
    }
    case 't':
    case 'u':
      if (is_int || sqlite3_value_numeric_type(v) == SQLITE_FLOAT) {
        int64_t t = is_int ? x + (idxStr[i] == 'u') : (int64_t)d;
        if (!c->has_ts || t > c->ts) c->ts = t < 0 ? 0 : t;
        c->has_ts = 1;
      }
      break;
    case 'N':
      c->limit = is_int && x >= 0 ? x : -1;
      if (c->limit == 0) empty = 1;
      break;
    case 'K': {
      const void *k;
      size_t kl;
      value_bytes(v, &k, &kl);
      if (!k) {
        empty = 1;
        break;
      } /* key = NULL matches nothing */
      if (!(c->key_buf = sqlite3_malloc64(kl + 1))) return SQLITE_NOMEM;
      memcpy(c->key_buf, k, kl);
      c->key = c->key_buf;
      c->key_len = kl;
      c->has_key = 1;
      break;
    }
    }
  }
  if (c->lo < 0) c->lo = 0;
  if (empty || c->lo >= c->hi) {
    c->eof = 1;
    return SQLITE_OK;
  }
  if (vt->multi) {
    if (topic_eq) {
      size_t len = strlen(topic_eq) + 1;
      c->topics = malloc(sizeof(char *) + len); /* takhin_free()s it like a topic list */
      if (!c->topics) return SQLITE_NOMEM;
      c->topics[0] = (char *)(c->topics + 1);
      memcpy(c->topics[0], topic_eq, len);
      c->ntopics = 1;
      c->topic_named = 1;
    } else if ((rc = takhin_topic_list(c->store, &c->topics, &c->ntopics))) {
      return vt_takhin_error(vt, rc);
    }
  } else {
    c->ntopics = 1;
  }
  if ((rc = reader_grow(c, 1))) return rc;
  return c->order & ORD_MERGE ? merge_open(c) : advance_partition(c);
}

static int vt_eof(sqlite3_vtab_cursor *base) { return ((tkx_cursor *)base)->eof; }

/* A key or value column. SQLite copies a SQLITE_TRANSIENT result into its
** own memory: a copy of every key and value read, the main cost of a range
** SELECT after the record decoding. Bytes in a segment's mapping are handed
** over as SQLITE_STATIC instead, which SQLite uses where they are. That is
** safe only while they stay valid and unchanged for as long as SQLite may
** read the register holding them, which is not just until xNext: a bare
** column of a min()/max() aggregate, or an OP_Move of a subquery's result,
** keeps a register past later rows. So the segment (and with it its
** mapping, unmapped only when the last ref goes) is held until xClose, when
** the statement is done. Bytes anywhere else (a pread buffer, a
** decompressed batch, the backward reader's arena, all reused while the
** scan goes on) are copied, as are those of a scan that already holds
** TKX_HELD_MAX segments. Written records never change in place: the writer
** only appends (tk_part_undo zeroes the bytes of a COMMIT it takes back,
** records no committed read can have returned). */
static int view_held(tkx_cursor *c, const void *p, size_t n) {
  const part_reader *r = (const part_reader *)((const char *)c->m - offsetof(part_reader, m));
  tk_segment *g = r->cur ? tk_cursor_mapped_seg(r->cur, p, n) : NULL;
  int i = 0;
  while (g && i < c->nheld && c->held[i] != g) i++;
  if (g && i == c->nheld && c->nheld < TKX_HELD_MAX) {
    tk_seg_ref(g);
    c->held[c->nheld++] = g;
  }
  if (!g || i == c->nheld) return 0;
  c->view_map = tk_seg_mapping(g, &c->view_len);
  return 1;
}

/* Inside the held mapping of the last view (view_len 0: none yet)? A ref
** keeps all of that mapping valid until xClose, whichever record of the
** segment the bytes belong to. */
static inline int in_view(const tkx_cursor *c, const void *p, size_t n) {
  size_t at = (size_t)((uintptr_t)p - (uintptr_t)c->view_map);
  return at < c->view_len && n <= c->view_len - at;
}

/* A key or value outside the last view's mapping (or NULL): rare in a
** forward scan of uncompressed records, so kept out of vt_column's path. */
static void result_bytes_slow(tkx_cursor *c, sqlite3_context *ctx, const void *p, size_t n) {
  tkx_result_bytes(ctx, p, n, p && c->m && view_held(c, p, n) ? SQLITE_STATIC : SQLITE_TRANSIENT);
}

static int vt_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col) {
  tkx_cursor *c = (tkx_cursor *)base;
  if (!c->vt->multi) col++;
  const takhin_message *m = c->m;
  switch (col) {
  case C_TOPIC: sqlite3_result_text(ctx, c->topic, -1, SQLITE_TRANSIENT); break;
  case C_PARTITION: sqlite3_result_int(ctx, c->part_cur); break;
  case C_OFFSET: sqlite3_result_int64(ctx, m->offset); break;
  case C_TIMESTAMP: sqlite3_result_int64(ctx, m->timestamp); break;
  case C_KEY:
    if (m->key && in_view(c, m->key, m->key_len))
      tkx_result_bytes(ctx, m->key, m->key_len, SQLITE_STATIC);
    else result_bytes_slow(c, ctx, m->key, m->key_len);
    break;
  case C_VALUE:
    if (m->value && in_view(c, m->value, m->value_len))
      tkx_result_bytes(ctx, m->value, m->value_len, SQLITE_STATIC);
    else result_bytes_slow(c, ctx, m->value, m->value_len);
    break;
  case C_HEADERS: {
    char *j = tkx_headers_to_json(m);
    if (!j) return SQLITE_NOMEM;
    sqlite3_result_text(ctx, j, -1, sqlite3_free);
    break;
  }
  }
  return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid) {
  tkx_cursor *c = (tkx_cursor *)base;
  uint64_t id = (uint64_t)c->part_cur << ROWID_PART_SHIFT | (uint64_t)c->m->offset;
  /* takhin_messages: the same row must get the same rowid in every scan
  ** of a statement, and different rows different ones: SQLite's OR
  ** optimization merges the rows of several scans by rowid. Exact while
  ** topic ids stay below 64 (as partitions below 2^17 and offsets below
  ** 2^40); beyond, the topic id is folded in. */
  if (c->vt->multi) id ^= (uint64_t)c->topic_id << 57 ^ (uint64_t)c->topic_id >> 7;
  *rowid = (sqlite3_int64)id;
  return SQLITE_OK;
}

/* ---- writing --------------------------------------------------------------- */

/* Bytes of a key/value column: TEXT and BLOB as they are, numbers as their
** text, NULL as a null key/value. */
static void value_bytes(sqlite3_value *v, const void **p, size_t *n) {
  switch (sqlite3_value_type(v)) {
  case SQLITE_NULL:
    *p = NULL;
    *n = 0;
    return;
  case SQLITE_BLOB:
    *p = sqlite3_value_blob(v);
    *n = (size_t)sqlite3_value_bytes(v);
    if (!*p) *p = ""; /* a zero-length blob is empty, not null */
    return;
  default:
    *p = sqlite3_value_text(v);
    *n = (size_t)sqlite3_value_bytes(v);
    if (!*p) *p = "";
  }
}


static int topic_limits_get(takhin_store *s, const char *topic, topic_limits *out) {
  tk_topic *t;
  int rc = tk_store_topic(s, topic, &t);
  if (rc) return rc;
  tk_topic_limits l;
  tk_topic_limits_get(s, t, &l);
  out->partitions = l.partitions;
  out->max_message_bytes = l.max_message_bytes;
  out->compacted = l.compacted;
  tk_topic_unref(t);
  return TAKHIN_OK;
}

static int queue_insert(tkx_vtab *vt, sqlite3_value **col) {
  takhin_store *s = vt->store_checked ? vt->conn->store : vt_store(vt);
  if (!s) return SQLITE_ERROR;
  vt->store_checked = 1;
  const char *topic = vt->topic;
  if (vt->multi) {
    if (sqlite3_value_type(col[C_TOPIC]) != SQLITE_TEXT)
      return vt_error(vt, sqlite3_mprintf("takhin_messages: topic must be text naming a topic"));
    topic = (const char *)sqlite3_value_text(col[C_TOPIC]);
    if (tkx_drop_pending(vt->conn, topic))
      return vt_error(
          vt, sqlite3_mprintf("takhin: topic \"%s\" is dropped by this transaction", topic));
  }
  topic_limits d;
  if (vt->limits_checked) {
    d = vt->limits;
  } else {
    int rc = topic_limits_get(s, topic, &d);
    if (rc) return vt_takhin_error(vt, rc);
    if (!vt->multi) vt->limits = d, vt->limits_checked = 1;
  }
  if (vt->conn->read_only) return vt_takhin_error(vt, TAKHIN_EREADONLY);
  int32_t part = -1;
  if (sqlite3_value_type(col[C_PARTITION]) != SQLITE_NULL) {
    if (sqlite3_value_type(col[C_PARTITION]) != SQLITE_INTEGER)
      return vt_error(
          vt,
          sqlite3_mprintf("takhin: partition must be an integer (or NULL to let the key choose)"));
    int64_t p = sqlite3_value_int64(col[C_PARTITION]);
    if (p < 0 || p >= d.partitions)
      return vt_error(
          vt, sqlite3_mprintf("takhin: partition %lld out of range [0, %d) for topic \"%s\"",
                              (long long)p, (int)d.partitions, topic));
    part = (int32_t)p;
  }
  if (sqlite3_value_type(col[C_OFFSET]) != SQLITE_NULL)
    return vt_error(
        vt, sqlite3_mprintf("takhin: offset is assigned by the log; leave it out of the INSERT"));
  int64_t ts = TAKHIN_TIMESTAMP_NOW;
  if (sqlite3_value_type(col[C_TIMESTAMP]) != SQLITE_NULL) {
    if (sqlite3_value_type(col[C_TIMESTAMP]) != SQLITE_INTEGER ||
        sqlite3_value_int64(col[C_TIMESTAMP]) < 0)
      return vt_error(
          vt,
          sqlite3_mprintf(
              "takhin: timestamp must be a non-negative integer (ms since the epoch) or NULL for now"));
    ts = sqlite3_value_int64(col[C_TIMESTAMP]);
  }
  const void *k, *v;
  size_t kl, vl;
  value_bytes(col[C_KEY], &k, &kl);
  value_bytes(col[C_VALUE], &v, &vl);
  const char *hj = NULL;
  size_t hl = 0;
  if (sqlite3_value_type(col[C_HEADERS]) != SQLITE_NULL) {
    if (sqlite3_value_type(col[C_HEADERS]) != SQLITE_TEXT)
      return vt_error(
          vt, sqlite3_mprintf("takhin: headers must be JSON text like '[[\"key\",\"value\"]]'"));
    hj = (const char *)sqlite3_value_text(col[C_HEADERS]);
    hl = (size_t)sqlite3_value_bytes(col[C_HEADERS]);
  }
  if ((int64_t)(kl + vl + hl) > d.max_message_bytes)
    return vt_takhin_error(
        vt, tk_err(TAKHIN_ETOOBIG,
                   "record of %zu bytes is larger than max_message_bytes %lld of topic \"%s\"",
                   kl + vl + hl, (long long)d.max_message_bytes, topic));
  /* A topic table's rows all name its topic: they point at vt->topic (one
  ** pointer, which same_topic compares first); takhin_messages keeps each
  ** row's own copy. */
  size_t tl = vt->multi ? strlen(topic) + 1 : 0;
  pend_row *r = row_alloc(vt, sizeof *r + kl + vl + hl + 1 + tl);
  if (!r) return SQLITE_NOMEM;
  memset(r, 0, sizeof *r);
  char *p = (char *)(r + 1);
  if (vt->multi) {
    memcpy(p, topic, tl);
    r->topic = p;
    p += tl;
  } else {
    r->topic = vt->topic;
  }
  r->partition = part;
  r->rec.timestamp = ts;
  if (k) {
    memcpy(p, k, kl);
    r->rec.key = p;
    r->rec.key_len = kl;
    p += kl;
  }
  if (v) {
    memcpy(p, v, vl);
    r->rec.value = p;
    r->rec.value_len = vl;
    p += vl;
  }
  if (hj) {
    char *err = tkx_headers_from_json(hj, hl, p, hl, &r->headers, &r->rec.n_headers);
    if (err) {
      free_row(r);
      return vt_error(vt, err);
    }
    r->rec.headers = r->headers;
  }
  if (d.compacted && !r->rec.key) {
    free_row(r);
    return vt_error(
        vt, sqlite3_mprintf("takhin: topic \"%s\" is compacted: every record needs a key", topic));
  }
  if (vt->nrows == vt->rows_cap) {
    size_t cap = vt->rows_cap ? vt->rows_cap * 2 : 64;
    pend_row **nr = sqlite3_realloc64(vt->rows, cap * sizeof *nr);
    if (!nr) {
      free_row(r);
      return SQLITE_NOMEM;
    }
    vt->rows = nr;
    vt->rows_cap = cap;
  }
  vt->rows[vt->nrows++] = r;
  return SQLITE_OK;
}

static int queue_delete(tkx_vtab *vt, sqlite3_int64 rowid) {
  if (vt->multi)
    return vt_error(
        vt, sqlite3_mprintf("takhin_messages: DELETE through the topic's own table "
                            "(CREATE VIRTUAL TABLE t USING takhin), as a prefix of one partition"));
  takhin_store *s = vt_store(vt);
  if (!s) return SQLITE_ERROR;
  int32_t part = (int32_t)(rowid >> ROWID_PART_SHIFT);
  int64_t off = rowid & ((1LL << ROWID_PART_SHIFT) - 1);
  pend_delete *d = NULL;
  for (size_t i = 0; i < vt->ndels; i++)
    if (vt->dels[i].partition == part) d = &vt->dels[i];
  int64_t expect;
  if (d && off < d->next) return SQLITE_OK; /* an earlier DELETE of this transaction took it */
  if (d) {
    expect = d->next;
  } else {
    takhin_partition_info pi;
    int rc = takhin_partition_info_get(s, vt->topic, part, &pi);
    if (rc) return vt_takhin_error(vt, rc);
    expect = pi.log_start_offset;
  }
  if (off != expect)
    return vt_error(
        vt,
        sqlite3_mprintf(
            "takhin: DELETE removes a prefix of a partition (Kafka's DeleteRecords): offset %lld of "
            "partition %d is not the next one from the log start (%lld); write DELETE FROM \"%w\" "
            "WHERE partition = %d AND offset < N",
            (long long)off, (int)part, (long long)expect, vt->topic, (int)part));
  if (!d) {
    if (vt->ndels == vt->dels_cap) {
      size_t cap = vt->dels_cap ? vt->dels_cap * 2 : 8;
      pend_delete *nd = sqlite3_realloc64(vt->dels, cap * sizeof *nd);
      if (!nd) return SQLITE_NOMEM;
      vt->dels = nd;
      vt->dels_cap = cap;
    }
    d = &vt->dels[vt->ndels++];
    d->partition = part;
  }
  d->next = off + 1;
  return SQLITE_OK;
}

static int vt_update(sqlite3_vtab *base, int argc, sqlite3_value **argv, sqlite3_int64 *rowid) {
  tkx_vtab *vt = (tkx_vtab *)base;
  (void)rowid;
  if (argc == 1) return queue_delete(vt, sqlite3_value_int64(argv[0]));
  if (sqlite3_value_type(argv[0]) != SQLITE_NULL)
    return vt_error(vt, sqlite3_mprintf("takhin: records are immutable: UPDATE is not supported "
                                        "(produce a new record instead)"));
  /* argv[1] is the rowid an INSERT names (NULL when it names none): a
  ** record's rowid is its partition and offset, which the store assigns, so
  ** naming one would be silently ignored. */
  if (sqlite3_value_type(argv[1]) != SQLITE_NULL)
    return vt_error(
        vt, sqlite3_mprintf("takhin: INSERT cannot set rowid: a record's rowid is its "
                            "partition and offset, which the store assigns; leave rowid out"));
  sqlite3_value *col[C_COUNT];
  if (vt->multi) {
    for (int i = 0; i < C_COUNT; i++) col[i] = argv[2 + i];
  } else {
    col[C_TOPIC] = NULL;
    for (int i = 1; i < C_COUNT; i++) col[i] = argv[1 + i];
  }
  return queue_insert(vt, col);
}

/* ---- transactions ------------------------------------------------------- */

static int vt_begin(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  clear_pending(vt);
  vt->sp_level = 0;
  /* drop.c's COMMIT marks the dropped topics' folders; no takhin table
  ** appends after it (SQLite syncs the tables in the order they began):
  ** kept from when that step deleted the files (drop.c says why). */
  if (vt->conn->ndrops)
    return vt_error(vt, sqlite3_mprintf("takhin: this transaction drops topic \"%s\", which "
                                        "happens at COMMIT: COMMIT before writing to another "
                                        "takhin table",
                                        vt->conn->drops[0]));
  return SQLITE_OK;
}

/* Append the pending rows of topic (rows[i] with that topic) as one batch
** per partition, chunked under max_message_bytes. */
/* Remember that partition p of topic is about to be appended to (once). */
static int note_undo(tkx_vtab *vt, const char *topic, int32_t p, tk_partition *part) {
  for (size_t i = 0; i < vt->nundo; i++)
    if (vt->undo[i].partition == p && !strcmp(vt->undo[i].topic, topic)) return SQLITE_OK;
  if (vt->nundo == vt->undo_cap) {
    size_t cap = vt->undo_cap ? vt->undo_cap * 2 : 8;
    undo_mark *nu = sqlite3_realloc64(vt->undo, cap * sizeof *nu);
    if (!nu) return SQLITE_NOMEM;
    vt->undo = nu;
    vt->undo_cap = cap;
  }
  undo_mark *u = &vt->undo[vt->nundo++];
  snprintf(u->topic, sizeof u->topic, "%s", topic);
  u->partition = p;
  tk_part_mark_get(part, &u->mark);
  return SQLITE_OK;
}

/* Take back every append of this transaction, newest first. */
static void undo_all(tkx_vtab *vt) {
  takhin_store *s = vt->conn->store;
  for (size_t i = vt->nundo; s && i-- > 0;) {
    tk_topic *t;
    tk_partition *part;
    if (tk_store_partition(s, vt->undo[i].topic, vt->undo[i].partition, &t, &part) == TAKHIN_OK) {
      tk_part_undo(part, &vt->undo[i].mark);
      tk_topic_unref(t);
    }
  }
  vt->nundo = 0;
}

static int same_topic(const char *a, const char *b) { return a == b || !strcmp(a, b); }

/* Append the pending rows of topic (rows[i] with that topic) as one batch
** per partition, chunked under max_message_bytes. */
static int flush_topic(tkx_vtab *vt, takhin_store *s, const char *topic) {
  takhin_topic_desc d;
  int rc = takhin_topic_describe(s, topic, &d);
  if (rc) return vt_takhin_error(vt, rc);
  int32_t np = d.partitions;
  size_t n = 0;
  for (size_t i = 0; i < vt->nrows; i++) n += same_topic(vt->rows[i]->topic, topic);
  size_t *start = sqlite3_malloc64(((size_t)np + 1) * sizeof *start);
  takhin_record *recs = sqlite3_malloc64((n ? n : 1) * sizeof *recs);
  int32_t *rp = sqlite3_malloc64((n ? n : 1) * sizeof *rp);
  if (!start || !recs || !rp) {
    rc = SQLITE_NOMEM;
    goto out;
  }
  memset(start, 0, ((size_t)np + 1) * sizeof *start);
  int32_t sticky = (int32_t)(vt->sticky++ % (unsigned)np);
  size_t k = 0;
  for (size_t i = 0; i < vt->nrows; i++) {
    pend_row *r = vt->rows[i];
    if (!same_topic(r->topic, topic)) continue;
    int32_t p = r->partition >= 0 ? r->partition
                : r->rec.key      ? takhin_partition_for_key(r->rec.key, r->rec.key_len, np)
                                  : sticky;
    if (p >= np) {
      rc = vt_error(vt,
                    sqlite3_mprintf("takhin: partition %d out of range for \"%s\"", (int)p, topic));
      goto out;
    }
    rp[k++] = p;
    start[p + 1]++;
  }
  for (int32_t p = 0; p < np; p++) start[p + 1] += start[p];
  k = 0;
  for (size_t i = 0; i < vt->nrows; i++) {
    pend_row *r = vt->rows[i];
    if (!same_topic(r->topic, topic)) continue;
    recs[start[rp[k]]++] = r->rec;
    k++;
  }
  for (int32_t p = np; p > 0; p--) start[p] = start[p - 1]; /* back to group starts */
  start[0] = 0;
  /* Chunk budget: payload plus a generous per-record overhead stays under
  ** the topic's limit even uncompressed. */
  int64_t budget = d.max_message_bytes - TK_BATCH_HEADER_SIZE;
  for (int32_t p = 0; p < np && rc == SQLITE_OK; p++) {
    size_t a = start[p], b = start[p + 1];
    if (a == b) continue;
    tk_partition *part;
    tk_topic *t2;
    if ((rc = tk_store_partition(s, topic, p, &t2, &part))) {
      rc = vt_takhin_error(vt, rc);
      break;
    }
    rc = note_undo(vt, topic, p, part);
    while (a < b && rc == SQLITE_OK) {
      size_t e = a;
      int64_t used = 0;
      do {
        const takhin_record *r = &recs[e];
        int64_t sz = (int64_t)(r->key_len + r->value_len) + 40;
        for (size_t h = 0; h < r->n_headers; h++)
          sz += (int64_t)(r->headers[h].key_len + r->headers[h].value_len) + 20;
        if (e > a && used + sz > budget) break;
        used += sz;
        e++;
      } while (e < b);
      int prc = tk_part_append(part, recs + a, e - a, NULL);
      if (prc) rc = vt_takhin_error(vt, prc);
      a = e;
    }
    tk_topic_unref(t2);
  }
out:
  sqlite3_free(start);
  sqlite3_free(recs);
  sqlite3_free(rp);
  return rc;
}

/* COMMIT, first phase: append the rows, apply the deletes. An error here
** makes SQLite roll the transaction back. */
static int vt_sync(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  vt->nundo = 0;
  if (!vt->nrows && !vt->ndels) return SQLITE_OK;
  takhin_store *s = vt_store(vt);
  if (!s) return SQLITE_ERROR;
  int rc = SQLITE_OK;
  for (size_t i = 0; i < vt->nrows && rc == SQLITE_OK; i++) {
    /* each topic once, at its first row; a row of the same topic as the
    ** row before (every row, on a topic's own table) is not a first */
    int first = i == 0 || !same_topic(vt->rows[i - 1]->topic, vt->rows[i]->topic);
    for (size_t j = 0; j + 1 < i && first; j++)
      first = !same_topic(vt->rows[j]->topic, vt->rows[i]->topic);
    if (first) rc = flush_topic(vt, s, vt->rows[i]->topic);
  }
  if (rc != SQLITE_OK) { /* all or nothing: the topics already appended too */
    char *keep = vt->base.zErrMsg ? sqlite3_mprintf("%s", vt->base.zErrMsg) : NULL;
    undo_all(vt);
    if (keep) vt_error(vt, keep);
  }
  for (size_t i = 0; i < vt->ndels && rc == SQLITE_OK; i++) {
    int trc = takhin_delete_records(s, vt->topic, vt->dels[i].partition, vt->dels[i].next);
    if (trc) rc = vt_takhin_error(vt, trc);
  }
  clear_pending(vt);
  return rc;
}

static int vt_commit(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  vt->nundo = 0;
  clear_pending(vt);
  return SQLITE_OK;
}

/* ROLLBACK, including one after our xSync succeeded but something else in
** the COMMIT failed: appends already made are taken back. */
static int vt_rollback(sqlite3_vtab *base) {
  tkx_vtab *vt = (tkx_vtab *)base;
  undo_all(vt);
  clear_pending(vt);
  return SQLITE_OK;
}

static int vt_savepoint(sqlite3_vtab *base, int i) {
  tkx_vtab *vt = (tkx_vtab *)base;
  if (i < 0 || i >= 64)
    return vt_error(vt, sqlite3_mprintf("takhin: savepoints nest at most 64 deep"));
  vt->marks[i] = vt->nrows;
  vt->sp_level = i;
  sqlite3_free(vt->del_snap[i]);
  vt->del_snap[i] = NULL;
  vt->del_snap_n[i] = vt->ndels;
  if (vt->ndels) {
    if (!(vt->del_snap[i] = sqlite3_malloc64(vt->ndels * sizeof *vt->dels))) return SQLITE_NOMEM;
    memcpy(vt->del_snap[i], vt->dels, vt->ndels * sizeof *vt->dels);
  }
  return SQLITE_OK;
}

static int vt_release(sqlite3_vtab *base, int i) {
  (void)base;
  (void)i;
  return SQLITE_OK;
}

static int vt_rollback_to(sqlite3_vtab *base, int i) {
  tkx_vtab *vt = (tkx_vtab *)base;
  if (i < 0) { /* the savepoint that began the transaction: nothing stays */
    clear_pending(vt);
    return SQLITE_OK;
  }
  vt->store_checked = vt->limits_checked = 0; /* it may have undone the catalog's creation */
  if (i >= 64) return SQLITE_OK;
  while (vt->nrows > vt->marks[i]) free_row(vt->rows[--vt->nrows]);
  /* Deletes go back to where they stood at the savepoint. */
  vt->ndels = vt->del_snap_n[i];
  if (vt->ndels) memcpy(vt->dels, vt->del_snap[i], vt->ndels * sizeof *vt->dels);
  return SQLITE_OK;
}

static sqlite3_module topic_module = {
    .iVersion = 3,
    .xCreate = topic_create,
    .xConnect = topic_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = topic_destroy,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
    .xUpdate = vt_update,
    .xBegin = vt_begin,
    .xSync = vt_sync,
    .xCommit = vt_commit,
    .xRollback = vt_rollback,
    .xRename = topic_rename,
    .xSavepoint = vt_savepoint,
    .xRelease = vt_release,
    .xRollbackTo = vt_rollback_to,
};

static sqlite3_module messages_module; /* eponymous-only: no xCreate */

int tkx_register_messages(sqlite3 *db, tkx_conn *c) {
  messages_module = topic_module;
  messages_module.xCreate = NULL;
  messages_module.xConnect = messages_connect;
  messages_module.xDestroy = vt_disconnect;
  messages_module.xRename = NULL;
  tkx_conn_ref(c);
  int rc = sqlite3_create_module_v2(db, "takhin", &topic_module, c, tkx_conn_unref);
  if (rc != SQLITE_OK) return rc;
  tkx_conn_ref(c);
  return sqlite3_create_module_v2(db, "takhin_messages", &messages_module, c, tkx_conn_unref);
}
