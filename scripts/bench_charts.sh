#!/usr/bin/env bash
# bench_charts.sh -- draw the charts of one takhin-bench run with gnuplot.
#
#   scripts/bench_charts.sh results/<UTC time>-<commit>
#
# takhin-bench runs it by itself at the end of every run (when gnuplot is
# installed: scripts/deps.sh bench); run it by hand to redraw a folder. It
# reads results.csv and run.txt of the folder and writes charts-*.png and the
# data files behind them (data/*.dat) into it.
#
# Every chart: one colour per path everywhere (api blue, sql orange, file
# green, sqlite red), the target as a dashed line inside the plotted range,
# and a stamp with the run's date, commit and load average. Benchmarks with
# one point per path (the quick matrices, Compaction) are bars, not lines.
set -euo pipefail

dir=${1:?usage: bench_charts.sh RESULTS_FOLDER}
csv=$dir/results.csv
[ -f "$csv" ] || { echo "bench_charts: $csv not found" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "bench_charts: gnuplot not installed (scripts/deps.sh bench)" >&2; exit 2; }
data=$dir/data
mkdir -p "$data"

field() { sed -n "s/^$1: //p" "$dir/run.txt" 2>/dev/null | head -1; }
cores=$(field cores); cores=${cores:-$(nproc)}
stamp="$(field date)  commit $(field commit)  load average $(field loadavg)  $(field cores) cores  $(field tier) $(field benchtime)"

# table NAME_REGEX XKEY YCOL [SCALE]: one row per value of parameter XKEY
# (size=1024B -> 1024), columns api sql file sqlite, the mean of YCOL over
# repeated runs (times SCALE), "?" where a path has no result. Durability os.
table() {
  awk -F, -v re="$1" -v xkey="$2" -v ycol="$3" -v scale="${4:-1}" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["name"] ~ re && $col["durability"] == "os" {
      x = ""
      n = split($col["name"], parts, "/")
      for (i = 2; i <= n; i++) {
        split(parts[i], kv, "=")
        if (kv[1] == xkey) { x = kv[2]; sub(/[A-Za-z]+$/, "", x) }
      }
      y = (ycol in col) ? $col[ycol] : ""
      if (x == "" || y == "") next
      key = x SUBSEP $col["path"]
      sum[key] += y * scale; cnt[key]++; xs[x] = 1
    }
    END {
      split("api sql file sqlite", paths, " ")
      print "# " xkey, "api", "sql", "file", "sqlite"
      m = 0
      for (x in xs) order[++m] = x + 0
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
    }' "$csv"
}

# cases NAME_REGEX YCOL [SCALE]: one row per case (its parameters as the
# label, "segments=10/size=100B" -> "10 100B"), columns api sql file sqlite.
cases() {
  awk -F, -v re="$1" -v ycol="$2" -v scale="${3:-1}" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["name"] ~ re && $col["durability"] == "os" {
      y = (ycol in col) ? $col[ycol] : ""
      if (y == "") next
      n = split($col["name"], parts, "/"); label = ""
      for (i = 2; i <= n; i++) { split(parts[i], kv, "="); label = label (label == "" ? "" : " ") kv[2] }
      if (!(label in seen)) { seen[label] = 1; order[++m] = label }
      key = label SUBSEP $col["path"]; sum[key] += y * scale; cnt[key]++
    }
    END {
      split("api sql file sqlite", paths, " ")
      print "# case api sql file sqlite"
      for (i = 1; i <= m; i++) {
        line = "\"" order[i] "\""
        for (p = 1; p <= 4; p++) { key = order[i] SUBSEP paths[p]; line = line " " (cnt[key] ? sum[key] / cnt[key] : "?") }
        print line
      }
    }' "$csv"
}

# latency NAME_REGEX: rows p50 p99 p999, columns api sql file sqlite, in us.
latency() {
  awk -F, -v re="$1" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["name"] ~ re && $col["durability"] == "os" && $col["p99_ms"] != "" {
      p = $col["path"]; n[p]++
      v["p50", p] += $col["p50_ms"] * 1000; v["p99", p] += $col["p99_ms"] * 1000; v["p999", p] += $col["p999_ms"] * 1000
    }
    END { print "# percentile api sql file sqlite"
      split("api sql file sqlite", paths, " "); split("p50 p99 p999", q, " ")
      for (i = 1; i <= 3; i++) { line = q[i]
        for (j = 1; j <= 4; j++) line = line " " (n[paths[j]] ? v[q[i], paths[j]] / n[paths[j]] : "?")
        print line } }' "$csv"
}

# yrange FILE TARGET... [log]: a range holding every value of columns 2-5
# and every target, with room around it (log: factors, linear: from 0).
yrange() {
  local f=$1 mode=$2; shift 2
  awk -v mode="$mode" -v targets="$*" '
    BEGIN { lo = 1e300; hi = -1e300; n = split(targets, t, " ")
      for (i = 1; i <= n; i++) { if (t[i] + 0 < lo) lo = t[i] + 0; if (t[i] + 0 > hi) hi = t[i] + 0 } }
    !/^#/ { for (c = 2; c <= NF; c++) if ($c != "?" && $c + 0 > 0) { if ($c + 0 < lo) lo = $c + 0; if ($c + 0 > hi) hi = $c + 0 } }
    END { if (hi < lo) { print "[*:*]"; exit }
      if (mode == "log") printf "[%g:%g]\n", lo / 3, hi * 3
      else printf "[0:%g]\n", hi * 1.25 }' "$f"
}

# What an empty panel plots: nothing visible, and the key says why.
none="1 with lines lc rgb '#ffffff' title 'not run in this mode'"

colour() { case $1 in api) echo '#1f77b4' ;; sql) echo '#ff7f0e' ;; file) echo '#2ca02c' ;; *) echo '#d62728' ;; esac; }

# lines FILE: a plot clause, one line per path with data, in its colour.
lines() {
  local f=$1 clause="" c name
  for c in 2 3 4 5; do
    name=$(awk -v c="$c" 'NR == 1 { print $(c + 1) }' "$f")
    if awk -v c="$c" '!/^#/ && $c != "?" { found = 1 } END { exit !found }' "$f"; then
      clause="$clause${clause:+, }'$f' using 1:$c with linespoints lw 2 pt 7 lc rgb '$(colour "$name")' title '$name'"
    fi
  done
  echo "${clause:-$none}"
}

# bars FILE: a clustered-histogram clause, one bar per path with data.
bars() {
  local f=$1 clause="" c name first=1
  for c in 2 3 4 5; do
    name=$(awk -v c="$c" 'NR == 1 { print $(c + 1) }' "$f")
    if awk -v c="$c" '!/^#/ && $c != "?" { found = 1 } END { exit !found }' "$f"; then
      if [ $first = 1 ]; then clause="'$f' using $c:xtic(1) lc rgb '$(colour "$name")' title '$name'"; first=0
      else clause="$clause, '' using $c lc rgb '$(colour "$name")' title '$name'"; fi
    fi
  done
  echo "${clause:-$none}"
}

# target VALUE LABEL: a dashed horizontal line (a function: it spans the plot).
target() { echo "$1 with lines dashtype 2 lw 2 lc rgb '#555555' title '$2'"; }

table '^BenchmarkWriteThroughput/' size mb_per_s >"$data/write_by_size.dat"
table '^BenchmarkBatchWriteThroughput/batch=100/' size mb_per_s >"$data/batch_by_size.dat"
table '^BenchmarkSequentialFetch/messages=1000+/.*fetch=100$' size mb_per_s >"$data/seqfetch_by_size.dat"
table '^BenchmarkRandomFetch/messages=10000/' size mb_per_s >"$data/randfetch_by_size.dat"
latency '^BenchmarkProduceLatency/size=1024B$' >"$data/produce_latency.dat"
latency '^BenchmarkFetchLatency/size=1024B$' >"$data/fetch_latency.dat"
table '^BenchmarkConcurrentProducers/.*size=1024B/partition=shared$' producers scaling_eff >"$data/producers_shared.dat"
table '^BenchmarkConcurrentProducers/.*size=1024B/partition=separate$' producers scaling_eff >"$data/producers_separate.dat"
table '^BenchmarkConcurrentConsumers/.*size=1024B$' consumers scaling_eff >"$data/consumers.dat"
table '^BenchmarkTopicManagerProduceThroughput/.*size=1024B$' partitions scaling_eff >"$data/tm_produce.dat"
table '^BenchmarkTopicManagerFetchThroughput/.*size=1024B$' partitions scaling_eff >"$data/tm_fetch.dat"
cases '^BenchmarkCompaction/' ms_per_100mb >"$data/compaction.dat"
table '^BenchmarkTopicManagerPartitionBalance/' partitions imbalance_pct >"$data/balance.dat"
table '^BenchmarkTopicManagerMultiTopic/' topics store_fds >"$data/multitopic_fds.dat"

if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then term='pngcairo size 1500,950 font ",10"'
else term='png size 1500,950'; fi
common="set terminal $term
set datafile missing '?'
set grid
set key outside right top vertical Left reverse samplen 2
set style fill solid 0.85 border -1
set style histogram clustered gap 1
set style data histograms"

# Writes are compared at the plan's 1 KiB target; 500 MB/s is drawn across
# all sizes as the plan states it for 1 KiB only (the title says so).
gnuplot <<EOF || failed=1
$common
set output '$dir/charts-throughput.png'
set multiplot layout 2,2 title "MB/s (payload, 10^6 B/s) by message size, durability os, log scales\n$stamp"
set style data linespoints
set logscale xy 10
set xlabel 'message size (bytes)'
set ylabel 'MB/s'
set xrange [70:15000]
set title 'WriteThroughput (one message per call; mean over message counts)'
set yrange $(yrange "$data/write_by_size.dat" log)
plot $(lines "$data/write_by_size.dat")
set title 'BatchWriteThroughput, batch=100'
set yrange $(yrange "$data/batch_by_size.dat" log 500)
plot $(lines "$data/batch_by_size.dat"), $(target 500 'plan: 500 MB/s at 1 KiB')
set title 'SequentialFetch, fetch=100'
set yrange $(yrange "$data/seqfetch_by_size.dat" log 1000)
plot $(lines "$data/seqfetch_by_size.dat"), $(target 1000 'plan: 1000 MB/s at 1 KiB')
set title 'RandomFetch, messages=10000'
set yrange $(yrange "$data/randfetch_by_size.dat" log)
plot $(lines "$data/randfetch_by_size.dat")
unset multiplot
EOF

gnuplot <<EOF || failed=1
$common
set output '$dir/charts-latency.png'
set multiplot layout 1,2 title "latency per call, 1 KiB messages, durability os (log scale)\n$stamp"
set logscale y 10
set ylabel 'microseconds per call'
set title 'ProduceLatency'
set yrange $(yrange "$data/produce_latency.dat" log 2000 50)
plot $(bars "$data/produce_latency.dat"), $(target 2000 'plan: p99 < 2 ms'), 50 with lines dashtype 3 lw 2 lc rgb '#999999' title 'aim: p99 < 50 us'
set title 'FetchLatency (cached)'
set yrange $(yrange "$data/fetch_latency.dat" log 1000 20)
plot $(bars "$data/fetch_latency.dat"), $(target 1000 'plan: p99 < 1 ms'), 20 with lines dashtype 3 lw 2 lc rgb '#999999' title 'aim: p99 < 20 us'
unset multiplot
EOF

gnuplot <<EOF || failed=1
$common
set output '$dir/charts-scaling.png'
# "linear up to CPU count": past the dotted line, N threads share the cores.
set arrow 1 from $cores, graph 0 to $cores, graph 1 nohead dashtype 3 lw 2 lc rgb '#999999'
set label 1 'cores' at $cores, graph 0.05 offset 0.5, 0 textcolor rgb '#777777'
set multiplot layout 2,3 title "scaling efficiency = throughput(N) / (min(N, cores) x throughput(1)), 1 KiB, durability os\n$stamp"
set style data linespoints
set logscale x 2
set xrange [0.8:20]
set ylabel 'efficiency (1 = linear)'
set xlabel 'threads'
set title 'ConcurrentProducers, one shared partition'
set yrange $(yrange "$data/producers_shared.dat" lin 1.05)
plot $(lines "$data/producers_shared.dat"), $(target 0.7 'plan: 0.7 at 4')
set title 'ConcurrentProducers, one partition each'
set yrange $(yrange "$data/producers_separate.dat" lin 1.05)
plot $(lines "$data/producers_separate.dat"), $(target 0.7 'plan: 0.7 at 4')
set title 'ConcurrentConsumers'
set yrange $(yrange "$data/consumers.dat" lin 1.05)
plot $(lines "$data/consumers.dat"), $(target 0.9 'plan: 0.9 at 4')
set xlabel 'partitions (threads = min(partitions, cores))'
set title 'TopicManagerProduceThroughput'
set yrange $(yrange "$data/tm_produce.dat" lin 1.05)
plot $(lines "$data/tm_produce.dat"), $(target 0.95 'plan: 0.95 at 16')
set title 'TopicManagerFetchThroughput'
set yrange $(yrange "$data/tm_fetch.dat" lin 1.05)
plot $(lines "$data/tm_fetch.dat"), $(target 0.95 'plan: 0.95 at 16')
unset multiplot
EOF

gnuplot <<EOF || failed=1
$common
set output '$dir/charts-compaction-topics.png'
set multiplot layout 2,2 title "compaction and the topic manager, durability os\n$stamp"
set xtics rotate by -30
set logscale y 10
set ylabel 'ms per 100 MB compacted (log scale)'
set xlabel 'segments, record size, share superseded'
set title 'Compaction: time per 100 MB'
set yrange $(yrange "$data/compaction.dat" log 100)
plot $(bars "$data/compaction.dat"), $(target 100 'plan: < 100 ms')
unset logscale y
set xtics norotate
set xlabel 'partitions'
set ylabel 'imbalance %'
set title 'TopicManagerPartitionBalance'
set yrange $(yrange "$data/balance.dat" lin 5)
plot $(bars "$data/balance.dat"), $(target 5 'plan: < 5%')
set xlabel 'topics (4 partitions each)'
set ylabel 'descriptors the store holds'
set title 'TopicManagerMultiTopic: open descriptors'
set yrange $(yrange "$data/multitopic_fds.dat" lin)
plot $(bars "$data/multitopic_fds.dat")
unset multiplot
EOF
ls "$dir"/charts-*.png
exit "${failed:-0}"
