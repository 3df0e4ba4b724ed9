#!/usr/bin/env bash
# kcat_test.sh -- kcat (Debian's, librdkafka inside) against takhin-server:
# -L lists the broker and topics; -P produces keyed records with headers;
# -C reads them back from the beginning, byte for byte; the sqlite3 shell
# with the extension sees them while the server runs; after kill -9 of the
# server every acknowledged (acks=all) record is still there.
# usage: kcat_test.sh SERVER_BINARY SCRATCH_DIR [EXTENSION.so]   (each step under `timeout`)
set -euo pipefail
server=$1
ext=${3:-}
dir=$2/kcat
rm -rf "$dir"
mkdir -p "$dir"
"$server" "$dir/k.db" --listen 127.0.0.1:0 >"$dir/port" 2>"$dir/server.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(head -1 "$dir/port")
b=127.0.0.1:$port
k() { timeout 30 kcat -b "$b" "$@"; }

# metadata before and after a topic exists
k -L >"$dir/L0"
grep -q "broker 0 at 127.0.0.1:$port" "$dir/L0"
echo "ok: kcat -L lists the broker"

# keyed records with headers; values with spaces, tabs' neighbours, UTF-8, an empty one
{
  for i in $(seq 1 200); do printf 'key-%d|value %d: héllo wörld %s\n' "$i" "$i" "$(printf '%*s' $((i % 37)) '' | tr ' ' x)"; done
  printf 'empty-key-value|\n'
} >"$dir/in"
k -P -t kc -K '|' -H src=kcat -H 'n=two words' -l "$dir/in"
k -L -t kc >"$dir/L1"
grep -q 'topic "kc" with 1 partitions' "$dir/L1"
echo "ok: kcat -L lists the auto-created topic"

k -C -t kc -o beginning -e -q -f '%k|%s\n' >"$dir/out"
cmp "$dir/in" "$dir/out"
echo "ok: $(wc -l <"$dir/in") keyed records read back byte for byte"
k -C -t kc -o beginning -e -q -f '%h\n' | sort -u >"$dir/hdrs"
[ "$(cat "$dir/hdrs")" = "src=kcat,n=two words" ]
echo "ok: headers read back"
k -C -t kc -o 150 -c 1 -e -q -f '%o %k\n' >"$dir/one"
[ "$(cat "$dir/one")" = "150 key-151" ]
echo "ok: a read from offset 150"

if [ -n "$ext" ] && command -v sqlite3 >/dev/null; then
  # side by side: the extension opens the store as a reader while the server writes
  n=$(timeout 30 sqlite3 "$dir/k.db" ".load $ext" "SELECT count(*) FROM takhin_messages WHERE topic = 'kc';")
  [ "$n" = "$(wc -l <"$dir/in")" ]
  echo "ok: sqlite3 with the extension sees the $n records while the server runs"
fi

# kill -9: what was acknowledged with acks=all is on disk
printf 'after-%d|v\n' 1 2 3 | k -P -t kc -K '|' -X acks=all
kill -9 $pid
wait $pid 2>/dev/null || true
"$server" "$dir/k.db" --listen "$b" >/dev/null 2>>"$dir/server.log" &
pid=$!
for _ in $(seq 100); do k -L >/dev/null 2>&1 && break; sleep 0.1; done
k -C -t kc -o beginning -e -q -f '%k|%s\n' >"$dir/out2"
{ cat "$dir/in"; printf 'after-%d|v\n' 1 2 3; } | cmp - "$dir/out2"
echo "ok: after kill -9 and a restart every acknowledged record reads back"

kill -TERM $pid
wait $pid
trap - EXIT
echo "ok: the server stopped cleanly on SIGTERM"
