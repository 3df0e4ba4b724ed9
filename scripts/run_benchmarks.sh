#!/usr/bin/env bash
# run_benchmarks.sh -- the full suite (-full: every durability mode, 30-60
# minutes) into results/<UTC time>-<commit>/, like every takhin-bench run:
# Go-format text, JSON, CSV, scorecard, tables and charts.
#
#   scripts/run_benchmarks.sh                 # the full suite
#   scripts/run_benchmarks.sh -quick          # the main job's quick suite (scripts/bench.sh)
#   scripts/run_benchmarks.sh -bench Fetch -benchtime 3s   # any takhin-bench flags
#
# Flags after the script name go to takhin-bench after -full, so -quick or
# -smoke replace it. BUILD_DIR (default build/) is configured and built first,
# unless TAKHIN_BENCH names a takhin-bench binary to use as it is. Charts
# need gnuplot (scripts/deps.sh bench); scripts/bench_charts.sh FOLDER redraws them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ -n "${TAKHIN_BENCH:-}" ]; then
  bin=$TAKHIN_BENCH
else
  "$root/scripts/deps.sh" bench
  bin=$build/takhin-bench
  echo "building takhin-bench in $build" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" --target takhin-bench -j"$(nproc)" >/dev/null
fi
exec "$bin" -full "$@"
