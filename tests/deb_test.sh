#!/usr/bin/env bash
# deb_test.sh BUILD_DIR SOURCE_DIR -- build the libtakhin Debian package
# with CPack, install it with dpkg, use it as a user would (Debian's sqlite3
# with `.load takhin`, Debian's python3 with load_extension("takhin"),
# pkg-config and the C library, takhin-bench's sql path), then remove it and
# check that nothing is left (dpkg -P).
#
# Installing needs root (as in CI). Without root the package is still built
# and its contents checked, then the test exits 77, which CTest reports as
# skipped. Runs of this test (other build folders, other worktrees) take
# turns through a lock, since they all install the same package.
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
skip() { echo "deb test: SKIPPED: $*"; exit 77; }
fail() { echo "deb test: FAILED: $*" >&2; exit 1; }

for tool in cpack dpkg-deb dpkg-shlibdeps file; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/deps.sh test installs it: apt-get install dpkg-dev file cmake)"
done
work=$(mktemp -d "${TMPDIR:-/tmp}/takhin-deb.XXXXXX")
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then dpkg_wait -P libtakhin || echo "deb test: dpkg -P libtakhin failed" >&2; fi
  rm -rf "$work"
}
trap cleanup EXIT

# -B: the staging tree and the .deb go to our own folder, not the build
# folder, so a cpack run by hand (or another test) cannot collide with it.
(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$work"/pkg/libtakhin_*.deb)

# what is in it, and what it depends on
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's,^\./,/,' >"$work/files"
for want in /usr/bin/takhin-bench /usr/include/takhin.h 'libtakhin\.so\.0$' 'libtakhin\.a$' \
            '/takhin\.so$' '/pkgconfig/takhin\.pc$'; do
  grep -q -- "$want" "$work/files" || fail "the package lacks $want; it holds:$(printf ' %s' $(cat "$work/files"))"
done
depends=$(dpkg-deb -f "$deb" Depends)
for want in libc6 libsqlite3-0 libzstd1 libjansson4; do
  [[ "$depends" == *"$want"* ]] || fail "Depends lacks $want: $depends"
done
echo "deb test: built $(basename "$deb"): Depends: $depends"

[ "$(id -u)" -eq 0 ] || skip "installing the package needs root (dpkg -i); run the test as root, as CI does"

# one fixed path (not $TMPDIR): every run on the machine must see the same lock
lock=/tmp/takhin-install-test.lock
exec 9>"$lock"
flock -w 600 9 || fail "another install test held $lock for 10 minutes"
if dpkg-query -W -f='${Status}' libtakhin 2>/dev/null | grep -q "install ok installed"; then
  skip "libtakhin is already installed on this machine, and is not this test's to replace or remove (dpkg -r libtakhin)"
fi
# another takhin on the loader's path (a cmake --install into /usr/local)
# would be found instead of, or before, the package's
if other=$(ldconfig -p | grep -E '(takhin\.so|libtakhin\.so\.0) ' | grep -v ' => /usr/lib/'); then
  skip "another takhin is on the dynamic loader's path, which .load takhin might find first: $other"
fi
# dpkg, waiting (up to 5 minutes) while apt or another dpkg holds its lock
dpkg_wait() {
  for _ in $(seq 60); do
    if dpkg "$@" >"$work/dpkg.log" 2>&1; then return 0; fi
    grep -qi "lock" "$work/dpkg.log" || return 1
    sleep 5
  done
  return 1
}
dpkg_wait -i "$deb" || { cat "$work/dpkg.log" >&2; dpkg_wait -P libtakhin || true; fail "dpkg -i failed"; }
installed=1
ext=$(grep '/takhin\.so$' "$work/files")

# Debian's sqlite3 shell, loading the extension by its bare name
cd "$work"
out=$(/usr/bin/sqlite3 app.db <<'EOF'
.load takhin
CREATE VIRTUAL TABLE orders USING takhin(partitions=2);
INSERT INTO orders(partition, key, value, headers) VALUES (1, 'user-1', 'hello', '[["emoji","\ud83d\ude00"]]');
SELECT partition, offset, key, value, headers FROM orders;
SELECT takhin_version();
EOF
) || fail "sqlite3 with .load takhin failed: $out"
want='1|0|user-1|hello|[["emoji","😀"]]
0.1.0'
[ "$out" = "$want" ] || fail "sqlite3 printed:
$out
instead of:
$want"
echo "deb test: sqlite3 .load takhin: ok"

# Debian's python3 (its sqlite3 module has enable_load_extension), bare name
/usr/bin/python3 - "$work/app.db" "$ext" <<'EOF' || fail "python3 with load_extension(\"takhin\") failed"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.enable_load_extension(True)
db.load_extension("takhin")
db.enable_load_extension(False)
maps = open("/proc/self/maps").read()
assert sys.argv[2] in maps, "the extension loaded is not the package's " + sys.argv[2]
db.execute("INSERT INTO orders(partition, key, value) VALUES (1, 'user-2', 'from python')")
rows = db.execute("SELECT offset, key, value FROM orders WHERE partition = 1").fetchall()
assert rows == [(0, "user-1", "hello"), (1, "user-2", "from python")], rows
print("deb test: python3 load_extension('takhin'): ok")
EOF

# the C library through pkg-config's default search path
pc=$(grep '/takhin\.pc$' "$work/files")
[ "$(PKG_CONFIG_LIBDIR="$(dirname "$pc")" pkg-config --variable=includedir takhin)" -ef /usr/include ] ||
  fail "the package's $pc does not point at /usr/include"
cc -std=c11 "$src/examples/embed.c" $(pkg-config --cflags takhin) -o "$work/embed" $(pkg-config --libs takhin) ||
  fail "cannot build examples/embed.c against the package (pkg-config takhin)"
"$work/embed" "$work/demo.db" | grep -q "produced 10 records" || fail "examples/embed.c against the package failed"
echo "deb test: pkg-config takhin and libtakhin.so: ok"

# takhin-bench from /usr/bin finds the installed extension for its sql path
bench_out=$(/usr/bin/takhin-bench -path sql -bench 'BenchmarkWriteThroughput/messages=100/size=1024B/sql' -benchtime 1x \
            -tmpdir "$work/bench" 2>&1) || fail "takhin-bench failed: $bench_out"
grep -q "/sql-" <<<"$bench_out" || fail "takhin-bench ran no sql case: $bench_out"
echo "deb test: takhin-bench sql path: ok"

dpkg_wait -P libtakhin || { cat "$work/dpkg.log" >&2; fail "dpkg -P libtakhin failed"; }
installed=0
while read -r f; do
  [ -d "$f" ] || [ ! -e "$f" ] || fail "$f is still there after dpkg -P"
done <"$work/files"
if /usr/bin/sqlite3 "$work/after.db" '.load takhin' 2>/dev/null; then
  fail "'.load takhin' still works after dpkg -P (another takhin.so on the loader's path?)"
fi
echo "deb test: dpkg -P removed it: ok"
echo "deb test: 1 passed, 0 failed"
