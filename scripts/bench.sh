#!/usr/bin/env bash
# bench.sh -- the main job: build takhin (build/, optimized with symbols for
# profiling) and run the quick
# benchmark suite (every benchmark on small matrices, 2-3 minutes), printing
# Go-style result lines and the api/file, api/sqlite ratios.
# Extra arguments go to takhin-bench, e.g. scripts/bench.sh -json out.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target takhin-bench
exec build/takhin-bench -quick "$@"
