#!/usr/bin/env bash
# find_package_test.sh BUILD_DIR SOURCE_DIR -- cmake --install into a scratch
# prefix, then configure tests/find_package (a consumer project using
# find_package(takhin)) against it, build and run examples/embed.c linked to
# the shared and to the static library: proves the CMake package works, as
# install_test.sh does for pkg-config.
set -euo pipefail
build=$1 src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/lib/cmake/takhin/takhinConfig.cmake"
cmake -S "$src/tests/find_package" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DEMBED_C="$src/examples/embed.c" >"$prefix/configure.log" 2>&1 ||
  { cat "$prefix/configure.log" >&2; exit 1; }
cmake --build "$prefix/consumer" >"$prefix/build.log" 2>&1 || { cat "$prefix/build.log" >&2; exit 1; }
# the shared build runs against the installed libtakhin.so, not the build tree's
out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer/embed_shared" "$prefix/a.db")
grep -q "produced 10 records" <<<"$out"
ldd "$prefix/consumer/embed_shared" | grep -q "$prefix/lib/libtakhin.so" ||
  { echo "embed_shared does not use the installed libtakhin.so" >&2; exit 1; }
"$prefix/consumer/embed_static" "$prefix/b.db" | grep -q "produced 10 records"
! ldd "$prefix/consumer/embed_static" | grep -q libtakhin
echo "find_package test: 2 passed, 0 failed"
