#!/usr/bin/env bash
# bench_compare.sh -- benchmark a git revision against the working tree.
#
#   scripts/bench_compare.sh [-n ROUNDS] [--rev-harness] REV [takhin-bench flags...]
#   scripts/bench_compare.sh HEAD                       # -quick, 6 rounds
#   scripts/bench_compare.sh -n 6 main -bench 'WriteThroughput|SequentialFetch' -benchtime 500ms
#
# REV is checked out with `git worktree add` into a temporary folder and built
# there; the working tree is built in another temporary folder with the same
# settings. Then both binaries run the chosen benchmarks in turns, ROUNDS times
# (default 6), in the order A B, B A, A B, ... so drift of the machine (page
# cache, thermal, neighbours) lands on both sides alike, and takhin-bench
# -compare judges every case: the change of the medians, and a Mann-Whitney U
# test over the ROUNDS x -count samples of each side. A regression needs the
# plan's threshold and p < 0.05, and the test needs at least 6 samples a side:
# with fewer, nothing is judged (use -n 6, or -n 3 with -count 2).
# Exit status 1 when a case regressed significantly, 2 on a usage or build
# error, 0 otherwise.
#
# By default REV is built with the working tree's bench/ folder, so only the
# library differs between A and B; --rev-harness uses REV's own bench/. The
# working tree's bench/ calls takhin_produce_topic, takhin_topic_balance,
# takhin_compact and takhin_cursor_get_key (and its sql path loads REV's
# takhin.so): a REV older than those does not build with it, so use
# --rev-harness there (REV's own -compare format may differ; the table is
# always printed by the working tree's binary).
# The JSON files and logs of every run are kept in results/compare-<date>/.
set -euo pipefail

rounds=6
rev_harness=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) [ $# -ge 2 ] || { echo "bench_compare: -n: needs a number of rounds" >&2; exit 2; }
        rounds=$2; shift 2 ;;
    --rev-harness) rev_harness=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ]; then
  echo "usage: $0 [-n ROUNDS] [--rev-harness] REV [takhin-bench flags...]" >&2
  exit 2
fi
case $rounds in
  ''|*[!0-9]*|0) echo "bench_compare: -n: \"$rounds\" is not a number of rounds >= 1" >&2; exit 2 ;;
esac
rev=$1
shift
flags=("$@")
[ ${#flags[@]} -eq 0 ] && flags=(-quick)

root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse --verify "$rev^{commit}") || {
  echo "bench_compare: unknown revision $rev" >&2
  exit 2
}

tmp=$(mktemp -d /tmp/takhin-compare-XXXXXX)
cleanup() {
  git -C "$root" worktree remove --force "$tmp/rev" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "checking out $rev ($commit) in $tmp/rev" >&2
git -C "$root" worktree add --detach "$tmp/rev" "$commit" >/dev/null 2>&1 || {
  echo "bench_compare: git worktree add failed" >&2
  exit 2
}
if [ $rev_harness -eq 0 ]; then
  rm -rf "$tmp/rev/bench"
  cp -r "$root/bench" "$tmp/rev/bench"
fi
if ! grep -q 'bench' "$tmp/rev/CMakeLists.txt"; then
  echo "bench_compare: $rev's CMakeLists.txt does not build bench/" >&2
  exit 2
fi

build() { # build SRC DIR LABEL
  echo "building $3" >&2
  if ! { cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         cmake --build "$2" --target takhin-bench -j"$(nproc)"; } >"$tmp/build-$3.log" 2>&1; then
    echo "bench_compare: building $3 failed; the log:" >&2
    tail -30 "$tmp/build-$3.log" >&2
    [ "$3" = A ] && [ $rev_harness -eq 0 ] &&
      echo "bench_compare: if $rev predates a library call bench/ uses, try --rev-harness" >&2
    exit 2
  fi
}
build "$tmp/rev" "$tmp/build-a" A
build "$root" "$tmp/build-b" B
a=$tmp/build-a/takhin-bench
b=$tmp/build-b/takhin-bench

out=$root/results/compare-$(date +%Y-%m-%d_%H%M%S)
mkdir -p "$out"
old_files=""
new_files=""
# A B, then B A: a machine that slows down (or speeds up) steadily over the
# rounds favours neither side.
for i in $(seq 1 "$rounds"); do
  order="a b"; [ $((i % 2)) -eq 0 ] && order="b a"
  for side in $order; do
    bin=$a; [ $side = b ] && bin=$b
    label="A ($rev)"; [ $side = b ] && label="B (working tree)"
    echo "round $i/$rounds: $label" >&2
    # A failing case is reported in the log; the comparison still runs on
    # whatever the other cases produced.
    # The JSON above is what is kept; a harness that makes a results folder per
    # run (-results) is told not to.
    keep=(); "$bin" -results none -list >/dev/null 2>&1 && keep=(-results none)
    "$bin" "${flags[@]}" "${keep[@]}" -json "$out/$side$i.json" >"$out/$side$i.txt" 2>"$out/$side$i.err" || true
    if [ ! -s "$out/$side$i.json" ]; then
      echo "  no results from this run; see $out/$side$i.txt and $out/$side$i.err" >&2
    elif [ $side = a ]; then old_files=$old_files${old_files:+,}$out/a$i.json
    else new_files=$new_files${new_files:+,}$out/b$i.json; fi
  done
done
{
  echo "A: $rev ($commit)$([ $rev_harness -eq 0 ] && echo ', built with the working tree bench/')"
  echo "B: working tree"
  echo "flags: ${flags[*]}; rounds: $rounds, interleaved A B, B A, ..."
} | tee "$out/compare.txt"
if [ -z "$old_files" ] || [ -z "$new_files" ]; then
  echo "bench_compare: one side produced no results" >&2
  exit 2
fi
set +e
"$b" -compare "$old_files" -against "$new_files" | tee -a "$out/compare.txt"
status=${PIPESTATUS[0]}
echo "runs kept in $out" >&2
exit "$status"
