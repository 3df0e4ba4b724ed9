#!/usr/bin/env bash
# deps.sh -- make sure the Debian packages takhin needs are installed.
# Usage: scripts/deps.sh [build|test|bench|format]   (default: build)
# As root it installs what is missing with apt-get; otherwise it names the
# missing packages and the command to install them, and exits 1.
set -euo pipefail

# zlib, lz4 and snappy: the codecs Kafka clients compress batches with (store/codecs.c)
# jansson: the SQL extension's header JSON; librdkafka-dev: kafka/mirror (takhin-mirror)
want=(cmake make gcc pkg-config libsqlite3-dev libzstd-dev zlib1g-dev liblz4-dev libsnappy-dev libjansson-dev libcriterion-dev sqlite3 librdkafka-dev)
case "${1:-build}" in
  build) ;;
  # the test suite also needs: Kafka's own codec (conformance), clang's
  # libFuzzer runtime, and the runtimes of the sanitizers
  # dpkg-dev and file: cpack -G DEB (tests/deb_test.sh) runs dpkg-shlibdeps and file;
  # and, for the Kafka server (kafka/), real Kafka clients to test it with
  test) want+=(python3 python3-kafka python3-zstandard clang libclang-rt-14-dev dpkg-dev file kcat) ;;
  bench) want+=(gnuplot-nox) ;;
  # scripts/format.sh applies .clang-format
  format) want+=(clang-format) ;;
  *) echo "usage: $0 [build|test|bench|format]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
