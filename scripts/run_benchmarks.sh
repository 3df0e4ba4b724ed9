#!/usr/bin/env bash
# run_benchmarks.sh -- run the benchmark suite into results/<date>/: the text
# report, JSON, CSV and gnuplot charts (MB/s by message size per path, latency
# percentiles, scaling curves).
#
#   scripts/run_benchmarks.sh                 # the full suite (-full: 30-60 minutes)
#   scripts/run_benchmarks.sh -quick          # 2-3 minutes
#   scripts/run_benchmarks.sh -bench Fetch -benchtime 3s   # any takhin-bench flags
#
# Flags after the script name go to takhin-bench after -full, so -quick or
# -smoke replace it. BUILD_DIR (default build/) is configured and built first,
# unless TAKHIN_BENCH names a takhin-bench binary to use as it is.
# Charts need gnuplot; without it the data files are still written.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ -n "${TAKHIN_BENCH:-}" ]; then
  bin=$TAKHIN_BENCH
else
  bin=$build/takhin-bench
  echo "building takhin-bench in $build" >&2
  cmake -S "$root" -B "$build" >/dev/null
  cmake --build "$build" --target takhin-bench -j"$(nproc)" >/dev/null
fi

out=$root/results/$(date +%Y-%m-%d_%H%M%S)
mkdir -p "$out"
echo "results go to $out" >&2

# The binary's own exit status says whether a case failed; keep the files
# either way and report it at the end.
set +e
"$bin" -full "$@" -json "$out/results.json" -csv "$out/results.csv" | tee "$out/results.txt"
status=${PIPESTATUS[0]}
set -e
{
  echo "command: takhin-bench -full $*"
  echo "git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "host: $(uname -n), $(nproc) cores, $(uname -r)"
} >"$out/run.txt"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "gnuplot not found: charts skipped (install it with: sudo apt-get install gnuplot-nox)." >&2
  echo "text, JSON and CSV are in $out" >&2
  exit "$status"
fi

# ---- chart data -------------------------------------------------------------
# table CSV NAME_REGEX XKEY YCOL [DURABILITY]: one row per value of parameter
# XKEY (size=1024B -> 1024), one column per path (api sql file sqlite), the
# mean of YCOL over repeated runs; "?" where a path has no result.
table() {
  awk -F, -v re="$2" -v xkey="$3" -v ycol="$4" -v dur="${5:-os}" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["name"] ~ re && $col["durability"] == dur {
      x = ""
      n = split($col["name"], parts, "/")
      for (i = 2; i <= n; i++) {
        split(parts[i], kv, "=")
        if (kv[1] == xkey) { x = kv[2]; sub(/[A-Za-z]+$/, "", x) }
      }
      y = $col[ycol]
      if (x == "" || y == "") next
      key = x SUBSEP $col["path"]
      sum[key] += y; cnt[key]++; xs[x] = 1
    }
    END {
      split("api sql file sqlite", paths, " ")
      print "# " xkey, "api", "sql", "file", "sqlite"
      m = 0
      for (x in xs) order[++m] = x + 0
      # insertion sort: a handful of values
      for (i = 2; i <= m; i++) { v = order[i]; j = i - 1
        while (j > 0 && order[j] > v) { order[j + 1] = order[j]; j-- }
        order[j + 1] = v }
      for (i = 1; i <= m; i++) {
        line = order[i]
        for (p = 1; p <= 4; p++) {
          key = order[i] SUBSEP paths[p]
          line = line " " (cnt[key] ? sum[key] / cnt[key] : "?")
        }
        print line
      }
    }' "$1"
}

# latency CSV NAME_REGEX: rows path, columns p50 p99 p999 (ms).
latency() {
  awk -F, -v re="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["name"] ~ re && $col["durability"] == "os" && $col["p99_ms"] != "" {
      p = $col["path"]; n[p]++
      a[p] += $col["p50_ms"]; b[p] += $col["p99_ms"]; c[p] += $col["p999_ms"]
    }
    END { print "# path p50 p99 p999"
      split("api sql file sqlite", paths, " ")
      for (i = 1; i <= 4; i++) { p = paths[i]
        if (n[p]) print p, a[p] / n[p], b[p] / n[p], c[p] / n[p] } }' "$1"
}

csv=$out/results.csv
data=$out/data
mkdir -p "$data"
table "$csv" '^BenchmarkWriteThroughput/messages=1000/' size mb_per_s >"$data/write_by_size.dat"
table "$csv" '^BenchmarkBatchWriteThroughput/batch=100/' size mb_per_s >"$data/batch_by_size.dat"
table "$csv" '^BenchmarkSequentialFetch/messages=1000/.*fetch=100$' size mb_per_s >"$data/seqfetch_by_size.dat"
table "$csv" '^BenchmarkRandomFetch/messages=10000/' size mb_per_s >"$data/randfetch_by_size.dat"
latency "$csv" '^BenchmarkProduceLatency/size=1024B$' >"$data/produce_latency.dat"
latency "$csv" '^BenchmarkFetchLatency/size=1024B$' >"$data/fetch_latency.dat"
table "$csv" '^BenchmarkConcurrentProducers/.*size=1024B/partition=shared$' producers msgs_per_s >"$data/producers_shared.dat"
table "$csv" '^BenchmarkConcurrentProducers/.*size=1024B/partition=separate$' producers msgs_per_s >"$data/producers_separate.dat"
table "$csv" '^BenchmarkConcurrentConsumers/.*size=1024B$' consumers msgs_per_s >"$data/consumers.dat"
table "$csv" '^BenchmarkCompaction/.*size=1024B/dup=70pct$' segments ms_per_100mb >"$data/compaction_1k.dat"
table "$csv" '^BenchmarkCompaction/.*size=100B/dup=70pct$' segments ms_per_100mb >"$data/compaction_100.dat"
table "$csv" '^BenchmarkTopicManagerProduceThroughput/.*size=1024B$' partitions mb_per_s >"$data/tm_produce.dat"
table "$csv" '^BenchmarkTopicManagerFetchThroughput/.*size=1024B$' partitions mb_per_s >"$data/tm_fetch.dat"
table "$csv" '^BenchmarkTopicManagerPartitionBalance/' partitions imbalance_pct >"$data/balance.dat"
table "$csv" '^BenchmarkTopicManagerMultiTopic/' topics open_fds >"$data/multitopic_fds.dat"

# ---- charts -----------------------------------------------------------------
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then term='pngcairo size 1400,900 font ",10"'
else term='png size 1400,900'; fi

# Columns 2-5 are api sql file sqlite; plot only the ones with data.
lines() { # lines FILE -> a gnuplot plot clause
  local f=$1 clause="" c name
  for c in 2 3 4 5; do
    name=$(awk -v c="$c" 'NR == 1 { print $(c + 1) }' "$f")
    if awk -v c="$c" 'NR > 1 && $c != "?" { found = 1 } END { exit !found }' "$f"; then
      clause="$clause${clause:+, }'$f' using 1:$c with linespoints title '$name'"
    fi
  done
  echo "${clause:-1/0 notitle}"
}

gnuplot <<EOF || echo "gnuplot failed on a chart (a matrix without its cases, e.g. -smoke?); the data files are in $data" >&2
set terminal $term
set output '$out/mbps_by_size.png'
set datafile missing '?'
set multiplot layout 2,2 title 'MB/s (payload, 10^6 B/s) by message size, durability os (log scales)'
set logscale xy 10
set autoscale xfix
set xlabel 'message size (bytes)'
set ylabel 'MB/s'
set key top left
set grid
set title 'WriteThroughput, messages=1000 (one message per call)'
plot $(lines "$data/write_by_size.dat")
set title 'BatchWriteThroughput, batch=100'
plot $(lines "$data/batch_by_size.dat")
set title 'SequentialFetch, messages=1000, fetch=100'
plot $(lines "$data/seqfetch_by_size.dat")
set title 'RandomFetch, messages=10000'
plot $(lines "$data/randfetch_by_size.dat")
unset multiplot
EOF

gnuplot <<EOF || echo "gnuplot failed on a chart (a matrix without its cases, e.g. -smoke?); the data files are in $data" >&2
set terminal $term
set output '$out/latency.png'
set multiplot layout 1,2 title 'latency percentiles, 1 KiB messages, durability os (log scale)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 10
set ylabel 'ms per call'
set grid ytics
set key top left
set title 'ProduceLatency'
plot '$data/produce_latency.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99', '' using 4 title 'p999'
set title 'FetchLatency (cached)'
plot '$data/fetch_latency.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99', '' using 4 title 'p999'
unset multiplot
EOF

gnuplot <<EOF || echo "gnuplot failed on a chart (a matrix without its cases, e.g. -smoke?); the data files are in $data" >&2
set terminal $term
set output '$out/scaling.png'
set datafile missing '?'
set multiplot layout 1,3 title 'scaling: messages per second by thread count, 1 KiB messages, durability os'
set xlabel 'threads'
set ylabel 'msg/s'
set logscale x 2
set autoscale xfix
set key top left
set grid
set title 'ConcurrentProducers, one shared partition'
plot $(lines "$data/producers_shared.dat")
set title 'ConcurrentProducers, one partition each'
plot $(lines "$data/producers_separate.dat")
set title 'ConcurrentConsumers'
plot $(lines "$data/consumers.dat")
unset multiplot
EOF

gnuplot <<EOF || echo "gnuplot failed on a chart (a matrix without its cases, e.g. -smoke?); the data files are in $data" >&2
set terminal $term
set output '$out/topics.png'
set datafile missing '?'
set multiplot layout 2,3 title 'compaction and the topic manager, durability os'
set key top left
set grid
set logscale x 2
set autoscale xfix
set xlabel 'segments (1 MiB each)'
set ylabel 'ms per 100 MB compacted'
set title 'Compaction, 1 KiB records, 70% superseded (target < 100)'
plot $(lines "$data/compaction_1k.dat"), 100 title 'target' dashtype 2
set title 'Compaction, 100 B records, 70% superseded (target < 100)'
plot $(lines "$data/compaction_100.dat"), 100 title 'target' dashtype 2
set xlabel 'partitions'
set ylabel 'MB/s'
set title 'TopicManagerProduceThroughput, 1 KiB'
plot $(lines "$data/tm_produce.dat")
set title 'TopicManagerFetchThroughput, 1 KiB'
plot $(lines "$data/tm_fetch.dat")
set ylabel 'imbalance %'
set title 'TopicManagerPartitionBalance (target < 5%)'
plot $(lines "$data/balance.dat"), 5 title 'target' dashtype 2
set xlabel 'topics (4 partitions each)'
set ylabel 'open descriptors'
set title 'TopicManagerMultiTopic: open fds'
plot $(lines "$data/multitopic_fds.dat")
unset multiplot
EOF

echo "charts: $out/mbps_by_size.png $out/latency.png $out/scaling.png $out/topics.png" >&2
exit "$status"
