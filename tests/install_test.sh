#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR -- cmake --install into a scratch
# prefix, then build and run examples/embed.c against it with pkg-config:
# proves the installed header, library and takhin.pc work together.
set -euo pipefail
build=$1 src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c11 "$src/examples/embed.c" $(pkg-config --cflags takhin) \
   -o "$prefix/embed" $(pkg-config --libs --static takhin)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/embed" "$prefix/demo.db" | grep -q "produced 10 records"
test -f "$prefix/lib/takhin.so"
# ldconfig caches lib*.so files under their SONAME: this link and the SONAME
# takhin.so make `.load takhin` find an install whose libdir ld.so.conf lists
test "$(readlink "$prefix/lib/libtakhin-sqlite3.so")" = takhin.so
readelf -d "$prefix/lib/takhin.so" | grep -q 'Library soname: \[takhin.so\]'
echo "install test: 1 passed, 0 failed"
