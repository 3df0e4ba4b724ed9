#!/usr/bin/env bash
# system_install_test.sh BUILD_DIR -- `cmake --install` into /usr/local, the
# default prefix, then `.load takhin` in Debian's sqlite3 and
# load_extension("takhin") in Debian's python3, by the bare name: proves the
# install puts takhin.so where the dynamic loader finds it (ld.so.cache, for
# /usr/local/lib; see sqlite_ext/CMakeLists.txt). Then removes exactly the
# files it installed and refreshes the cache again.
#
# Needs root (exit 77, skipped, otherwise), and refuses to touch a
# /usr/local that already holds any of these files. Shares a lock with
# deb_test.sh: both put a takhin on the loader's path.
set -euo pipefail
build=$(cd "$1" && pwd)
skip() { echo "system install test: SKIPPED: $*"; exit 77; }
fail() { echo "system install test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "installing into /usr/local needs root; run the test as root, as CI does"
for tool in ldconfig /usr/bin/sqlite3 /usr/bin/python3; do
  command -v "$tool" >/dev/null || skip "$tool is missing (apt-get install sqlite3 python3)"
done
grep -rqs '^/usr/local/lib$' /etc/ld.so.conf /etc/ld.so.conf.d/ ||
  skip "/usr/local/lib is not in /etc/ld.so.conf here (Debian lists it in libc.conf)"

work=$(mktemp -d "${TMPDIR:-/tmp}/takhin-sysinst.XXXXXX")
installed=()
pcdir_was_there=1
cleanup() {
  if [ ${#installed[@]} -gt 0 ]; then
    rm -f "${installed[@]}"
    [ "$pcdir_was_there" = 1 ] || rmdir /usr/local/lib/pkgconfig 2>/dev/null || true
    ldconfig
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# one fixed path (not $TMPDIR): every run on the machine must see the same lock
lock=/tmp/takhin-install-test.lock
exec 9>"$lock"
flock -w 600 9 || fail "another install test held $lock for 10 minutes"

# what the install writes, staged first so nothing already there is replaced
DESTDIR="$work/stage" cmake --install "$build" --prefix /usr/local >/dev/null
mapfile -t files < <(cd "$work/stage" && find . ! -type d | sed 's,^\.,,' | sort)
[ ${#files[@]} -gt 0 ] || fail "cmake --install staged no files"
for f in "${files[@]}"; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || skip "$f already exists: this machine has a takhin install of its own"
done
if other=$(ldconfig -p | grep -E '(takhin\.so|libtakhin\.so\.0) '); then
  skip "a takhin is already on the dynamic loader's path: $other"
fi

pcdir_was_there=0
[ -d /usr/local/lib/pkgconfig ] && pcdir_was_there=1
installed=("${files[@]}")
cmake --install "$build" --prefix /usr/local >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install failed"; }
ldconfig -p | grep -q 'takhin\.so .*=> /usr/local/lib' ||
  fail "after cmake --install, ld.so.cache has no takhin.so: $(ldconfig -p | grep takhin || true)"

cd "$work"
out=$(/usr/bin/sqlite3 app.db '.load takhin' \
      "CREATE VIRTUAL TABLE t USING takhin(partitions=1)" \
      "INSERT INTO t(key, value) VALUES ('k', 'v')" \
      "SELECT offset, key, value FROM t" 2>&1) || fail "sqlite3 .load takhin: $out"
[ "$out" = "0|k|v" ] || fail "sqlite3 printed '$out' instead of '0|k|v'"
echo "system install test: sqlite3 .load takhin: ok"
/usr/bin/python3 - "$work/app.db" <<'EOF' || fail "python3 load_extension(\"takhin\") failed"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.enable_load_extension(True)
db.load_extension("takhin")
assert "/usr/local/lib/takhin.so" in open("/proc/self/maps").read(), "not the installed takhin.so"
assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1
print("system install test: python3 load_extension('takhin'): ok")
EOF
echo "system install test: 1 passed, 0 failed"
