#!/usr/bin/env bash
# test.sh -- the whole test suite, from a fresh clone: installs what it needs
# (as root) and runs every test three ways:
#   1. build/        RelWithDebInfo, all tests through CTest
#   2. build-asan/   ASan + UBSan, all tests
#   3. build-tsan/   TSan, the threaded tests (TAKHIN_THREADED_TESTS in tests/)
# plus a short libFuzzer run of the batch decoder and recovery, and the
# benchmark binary's smoke run (every benchmark once, no timing checks).
# Every build is made with -DTAKHIN_WERROR=ON: a compiler warning fails it.
# Set TAKHIN_TEST_QUICK=1 to skip the sanitizer and fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

jobs=$(nproc 2>/dev/null || echo 2)
# TAKHIN_WERROR: every build here fails on a compiler warning (CMakeLists.txt).
build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAKHIN_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

echo "== build and test (build/)"
build build
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${TAKHIN_TEST_QUICK:-0}" != 1 ]; then
  echo "== ASan + UBSan (build-asan/)"
  build build-asan -DTAKHIN_SANITIZE=address,undefined
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs")

  echo "== TSan, threaded tests (build-tsan/)"
  build build-tsan -DTAKHIN_SANITIZE=thread
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j"$jobs")

  if [ -f fuzz/CMakeLists.txt ]; then
    echo "== libFuzzer, 30 s per target (build-fuzz/)"
    CC=clang cmake -S . -B build-fuzz -DTAKHIN_FUZZ=ON -DTAKHIN_SANITIZE=address,undefined -DTAKHIN_WERROR=ON >/dev/null
    cmake --build build-fuzz -j"$jobs" --target fuzz_targets
    for name in fuzz_batch fuzz_recovery fuzz_kafka fuzz_index_run; do
      extra=()
      # fuzz_recovery: takhin_close keeps the last closed handles by design,
      # so libFuzzer's per-input leak check fired (re-run + heap scan) on every
      # input; see fuzz/fuzz_recovery.c.
      [ "$name" = fuzz_recovery ] && extra=(-detect_leaks=0)
      corpus=fuzz/corpus
      [ "$name" = fuzz_kafka ] && corpus=fuzz/corpus_kafka # request frames, not batches
      [ "$name" = fuzz_index_run ] && corpus=fuzz/corpus_index_run # index runs, not batches
      scratch=$(mktemp -d) # libFuzzer adds new inputs to the first folder: keep fuzz/corpus to its seeds
      status=0
      build-fuzz/fuzz/$name -max_total_time=30 -print_final_stats=1 "${extra[@]}" "$scratch" "$corpus" \
        >"$scratch.log" 2>&1 || status=$?
      # Each line names its target: "fuzz_batch: Done 285154 runs in 31 second(s)".
      grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)|ERROR|SUMMARY" "$scratch.log" |
        sed "s/^/$name: /" || true
      [ "$status" -eq 0 ] || { tail -50 "$scratch.log"; echo "$name found a crash"; exit 1; }
      rm -rf "$scratch" "$scratch.log"
    done
  fi
fi
echo "== all tests passed"
