#!/usr/bin/env bash
# format.sh -- apply .clang-format to our C sources and headers in place.
# Usage: scripts/format.sh [--check]
#   --check   change nothing; list the files that would change, exit 1 if any
# The folders are ours (store sqlite_ext kafka bench tests fuzz examples);
# generated code lives in build*/ and is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || scripts/deps.sh format

mapfile -t files < <(git ls-files -- 'store/*.[ch]' 'sqlite_ext/*.[ch]' 'kafka/*.[ch]' 'bench/*.[ch]' \
  'tests/*.[ch]' 'fuzz/*.[ch]' 'examples/*.[ch]')
[ ${#files[@]} -gt 0 ] || { echo "format: no C files found" >&2; exit 1; }

if [ "${1:-}" = --check ]; then
  changed=0
  for f in "${files[@]}"; do
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then
      echo "$f"
      changed=1
    fi
  done
  exit $changed
fi
clang-format --style=file -i "${files[@]}"
