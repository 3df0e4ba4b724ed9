#!/usr/bin/env bash
# abi_symbols.sh LIBTAKHIN_SO TAKHIN_H [EXTENSION_SO] -- the ABI is what
# takhin.h marks TAKHIN_API, nothing more and nothing less: the shared
# library's dynamic symbol table defines exactly those functions (no tk_*
# internals), and the SQLite extension exports only its entry points.
set -euo pipefail
lib=$1 header=$2 ext=${3:-}
fail() { echo "abi test: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# defined dynamic symbols, without the linker's own markers
nm -D --defined-only "$lib" | awk '{print $NF}' | grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' |
  sort -u >"$tmp/exported"
sed -n 's/^TAKHIN_API .*[ *]\(takhin_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/declared"
[ -s "$tmp/declared" ] || fail "no TAKHIN_API declarations found in $header"
if ! diff -u "$tmp/declared" "$tmp/exported" >"$tmp/diff"; then
  cat "$tmp/diff" >&2
  fail "$lib exports other symbols than takhin.h declares (- declared only, + exported only)"
fi
if [ -n "$ext" ]; then
  nm -D --defined-only "$ext" | awk '{print $NF}' | grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' |
    sort -u >"$tmp/ext"
  if grep -v '^sqlite3_.*init$' "$tmp/ext" >"$tmp/ext_extra"; then
    cat "$tmp/ext_extra" >&2
    fail "$ext exports more than its sqlite3_*_init entry points"
  fi
fi
echo "abi test: $(wc -l <"$tmp/declared") takhin_* functions exported, nothing else"
