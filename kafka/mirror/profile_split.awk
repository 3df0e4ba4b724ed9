# The mirror's main thread, per sample: reading takhin, or librdkafka's side
# (producev's copy, headers, poll/commit, and the malloc and fresh-page faults
# its copies cause: takhin's read path allocates nothing per record).
function flush() {
  if (!have) return
  n++
  cls = "other: startup, exit, timers, scheduler"
  if (stack ~ /^ (_int_malloc|malloc|__GI___libc_malloc|malloc_consolidate|sysmalloc|_int_free|free|cfree)/ || stack ~ / do_anonymous_page/) cls = "librdkafka"
  if (stack ~ / (takhin_cursor_next|takhin_cursor_seek|takhin_cursor_open|takhin_cursor_close|takhin_partition_info_get|takhin_message_header|next_batch|filemap_map_pages)/) cls = "reading takhin"
  if (stack ~ / (rd_kafka_producev|rd_kafka_headers_new|rd_kafka_header_add|rd_kafka_poll|rd_kafka_commit_transaction|rd_kafka_begin_transaction|rd_kafka_flush)/) cls = "librdkafka"
  if (stack ~ / (resume_from_target|txn_init|cluster_metadata|create_missing_topics|rd_kafka_new|rd_kafka_destroy|dl_main|_dl_start)/) cls = "other: startup, exit, timers, scheduler"
  c[cls]++
  have = 0; stack = ""
}
/^ *[0-9]+ *$/ { flush(); have = 1; next }
/^$/ { next }
{ stack = stack " " $2 }
END { flush(); for (k in c) printf "%5.1f%% %s\n", 100*c[k]/n, k; printf "%d samples\n", n }
