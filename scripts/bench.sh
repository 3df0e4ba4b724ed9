#!/usr/bin/env bash
# bench.sh -- the main job: install what it needs (gnuplot for the charts
# included), build takhin (build/, optimized with symbols for profiling) and
# run the quick benchmark suite (every benchmark on small matrices, 2-3
# minutes on 2 cores). On a terminal it prints a table per benchmark, then
# the scorecard (every target: met, missed or not run) and the bottleneck
# report; the Go-format lines, JSON, CSV, scorecard and charts are kept in
# results/<UTC time>-<commit>/, whose path it prints last.
# Extra arguments go to takhin-bench, e.g. scripts/bench.sh -bench Fetch -cold
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target takhin-bench
exec build/takhin-bench -quick "$@"
