/*
** test_badinput.c -- every kind of bad input gets its documented status and
** a message naming the problem, and changes nothing already stored: NULL
** handles and arguments, unknown topics and partitions, bad names and
** configs, oversized batches, out-of-range offsets, read-only misuse.
*/
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static takhin_store *s;
static const char *db;

static void setup(void) {
  db = tu_store_path("badinput");
  cr_assert_eq(takhin_open(db, NULL, &s), TAKHIN_OK);
  cr_assert_eq(
      takhin_topic_create(s, "t", 2, (const char *const[]){"max_message_bytes", "2000", NULL}),
      TAKHIN_OK);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  cr_assert_eq(takhin_produce(s, "t", 0, &r, 1, NULL), TAKHIN_OK);
}

static void teardown(void) {
  /* whatever failed, the one stored record is intact */
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_OK);
  cr_assert_eq(m.value_len, 1);
  cr_assert_eq(takhin_cursor_next(c, &m), TAKHIN_END, "no failed call stored anything");
  takhin_cursor_close(c);
  takhin_close(s);
}

#define EXPECT(call, code, text)                                                                   \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    cr_assert_eq(rc_, code, "%s returned %d (%s): %s", #call, rc_, takhin_errstr(rc_),             \
                 takhin_errmsg());                                                                 \
    cr_assert(strstr(takhin_errmsg(), text), "%s: message \"%s\" lacks \"%s\"", #call,             \
              takhin_errmsg(), text);                                                              \
  } while (0)

TestSuite(badinput, .init = setup, .fini = teardown);

Test(badinput, null_handles_and_arguments) {
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  takhin_message m;
  takhin_partition_info pi;
  int64_t off;
  EXPECT(takhin_produce(NULL, "t", 0, &r, 1, NULL), TAKHIN_EMISUSE, "store is NULL");
  EXPECT(takhin_produce(s, "t", 0, NULL, 1, NULL), TAKHIN_EINVAL, "no records");
  EXPECT(takhin_produce(s, "t", 0, &r, 0, NULL), TAKHIN_EINVAL, "no records");
  EXPECT(takhin_produce(s, NULL, 0, &r, 1, NULL), TAKHIN_EINVAL, "topic name is NULL");
  EXPECT(takhin_cursor_next(NULL, &m), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_cursor_open(s, "t", 0, NULL), TAKHIN_EMISUSE, "out is NULL");
  EXPECT(takhin_partition_info_get(s, "t", 0, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_partition_info_get(NULL, "t", 0, &pi), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_offset_for_time(s, "t", 0, 0, NULL), TAKHIN_EMISUSE, "NULL");
  EXPECT(takhin_open(NULL, NULL, NULL), TAKHIN_EMISUSE, "out is NULL");
  takhin_store *x;
  EXPECT(takhin_open("", NULL, &x), TAKHIN_EINVAL, "path");
  cr_assert_eq(takhin_close(NULL), TAKHIN_OK);
  takhin_cursor_close(NULL);
  takhin_free(NULL);
  (void)off;
}

Test(badinput, unknown_topic_and_partition) {
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  takhin_cursor *c;
  EXPECT(takhin_produce(s, "nope", 0, &r, 1, NULL), TAKHIN_ENOTFOUND, "unknown topic \"nope\"");
  EXPECT(takhin_produce(s, "t", 2, &r, 1, NULL), TAKHIN_ENOTFOUND,
         "partition 2 out of range [0, 2)");
  EXPECT(takhin_produce(s, "t", -1, &r, 1, NULL), TAKHIN_ENOTFOUND, "partition -1 out of range");
  EXPECT(takhin_cursor_open(s, "t", 7, &c), TAKHIN_ENOTFOUND, "partition 7");
  EXPECT(takhin_delete_records(s, "nope", 0, 0), TAKHIN_ENOTFOUND, "unknown topic");
  EXPECT(takhin_retention_apply(s, "t", 5, NULL), TAKHIN_ENOTFOUND, "partition 5");
}

Test(badinput, topic_names_and_configs) {
  const char *bad[] = {"", ".", "..", "a/b", "a b", "ü", "../../etc", "x\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    EXPECT(takhin_topic_create(s, bad[i], 1, NULL), TAKHIN_EINVAL, "[a-zA-Z0-9._-]");
  char longname[260];
  memset(longname, 'a', 250);
  longname[250] = 0;
  EXPECT(takhin_topic_create(s, longname, 1, NULL), TAKHIN_EINVAL, "1-249 characters");
  longname[249] = 0;
  cr_assert_eq(takhin_topic_create(s, longname, 1, NULL), TAKHIN_OK, "249 characters is allowed");
  EXPECT(takhin_topic_create(s, "t", 1, NULL), TAKHIN_EEXISTS, "already exists");
  EXPECT(takhin_topic_create(s, "u", 0, NULL), TAKHIN_EINVAL, "partitions must be");
  EXPECT(takhin_topic_create(s, "u", 1, (const char *const[]){"colour", "red", NULL}),
         TAKHIN_EINVAL, "unrecognized topic config \"colour\"");
  EXPECT(takhin_topic_create(s, "u", 1, (const char *const[]){"segment_bytes", "12abc", NULL}),
         TAKHIN_EINVAL, "segment_bytes");
  EXPECT(takhin_topic_create(s, "u", 1, (const char *const[]){"compression", "lz4", NULL}),
         TAKHIN_EINVAL, "compression");
  EXPECT(takhin_topic_create(s, "u", 1, (const char *const[]){"cleanup_policy", "sometimes", NULL}),
         TAKHIN_EINVAL, "cleanup_policy");
  EXPECT(takhin_topic_create(s, "u", 1,
                             (const char *const[]){"min_cleanable_dirty_ratio", "1.5", NULL}),
         TAKHIN_EINVAL, "min_cleanable_dirty_ratio");
  EXPECT(takhin_topic_create(s, "u", 1, (const char *const[]){"retention_ms", "-2", NULL}),
         TAKHIN_EINVAL, "retention_ms");
  int32_t n;
  EXPECT(takhin_topic_partitions(s, "u", &n), TAKHIN_ENOTFOUND, "unknown topic");
}

Test(badinput, oversized_batch_is_refused_whole) {
  char *big = malloc(3000);
  memset(big, 'x', 3000);
  takhin_record r[2] = {
      {.key = "a", .key_len = 1, .value = big, .value_len = 1500, .timestamp = 1},
      {.key = "b", .key_len = 1, .value = big, .value_len = 1500, .timestamp = 1}};
  EXPECT(takhin_produce(s, "t", 0, &r[0], 2, NULL), TAKHIN_ETOOBIG,
         "larger than max_message_bytes 2000");
  r[0].value_len = 3000;
  EXPECT(takhin_produce(s, "t", 0, &r[0], 1, NULL), TAKHIN_ETOOBIG, "max_message_bytes");
  free(big);
}

Test(badinput, offsets_out_of_range) {
  takhin_cursor *c;
  takhin_message m;
  cr_assert_eq(takhin_cursor_open(s, "t", 0, &c), TAKHIN_OK);
  EXPECT(takhin_cursor_seek(c, 5, 0, 0), TAKHIN_ERANGE, "offset 5 out of range [0, 1]");
  EXPECT(takhin_cursor_seek(c, 0, -1, 0), TAKHIN_EINVAL, "max_records");
  EXPECT(takhin_cursor_get(c, 1, &m), TAKHIN_ERANGE, "high watermark");
  EXPECT(takhin_delete_records(s, "t", 0, -3), TAKHIN_ERANGE, "offset -3 out of range");
  takhin_cursor_close(c);
}

Test(badinput, read_only_handle_refuses_writes) {
  takhin_options o;
  takhin_options_init(&o);
  o.read_only = 1;
  takhin_store *r;
  cr_assert_eq(takhin_open(db, &o, &r), TAKHIN_OK, "read-only beside the writer: %s",
               takhin_errmsg());
  takhin_record rec = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  EXPECT(takhin_produce(r, "t", 0, &rec, 1, NULL), TAKHIN_EREADONLY, "read-only");
  EXPECT(takhin_topic_create(r, "new", 1, NULL), TAKHIN_EREADONLY, "read-only");
  EXPECT(takhin_delete_records(r, "t", 0, 1), TAKHIN_EREADONLY, "read-only");
  EXPECT(takhin_retention_apply(r, "t", -1, NULL), TAKHIN_EREADONLY, "read-only");
  takhin_close(r);
}

Test(badinput, bad_options) {
  takhin_options o;
  takhin_options_init(&o);
  o.durability = 9;
  takhin_store *x;
  const char *other = tu_store_path("badinput_opts");
  EXPECT(takhin_open(other, &o, &x), TAKHIN_EINVAL, "durability");
  takhin_options_init(&o);
  o.max_open_files = 0;
  EXPECT(takhin_open(other, &o, &x), TAKHIN_EINVAL, "max_open_files");
  cr_assert_str_eq(takhin_errstr(TAKHIN_ELOCKED), "locked by another writer");
  cr_assert_str_eq(takhin_errstr(12345), "unknown status code");
}

Test(closed_handle, calls_on_a_closed_store_are_refused) {
  takhin_store *x;
  cr_assert_eq(takhin_open(tu_store_path("closed_handle"), NULL, &x), TAKHIN_OK);
  cr_assert_eq(takhin_topic_create(x, "t", 1, NULL), TAKHIN_OK);
  cr_assert_eq(takhin_close(x), TAKHIN_OK);
  takhin_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 1};
  takhin_partition_info pi;
  takhin_cursor *c;
  cr_assert_eq(takhin_produce(x, "t", 0, &r, 1, NULL), TAKHIN_EMISUSE);
  cr_assert(strstr(takhin_errmsg(), "closed"), "%s", takhin_errmsg());
  cr_assert_eq(takhin_partition_info_get(x, "t", 0, &pi), TAKHIN_EMISUSE);
  cr_assert_eq(takhin_cursor_open(x, "t", 0, &c), TAKHIN_EMISUSE);
  cr_assert_eq(takhin_topic_create(x, "u", 1, NULL), TAKHIN_EMISUSE);
  cr_assert_eq(takhin_close(x), TAKHIN_EMISUSE, "a second close is refused, not a double free");
}
