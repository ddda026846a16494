#!/usr/bin/env bash
# The CLI is a client of the public API: a cli/ file includes only cli/'s
# own headers, include/xfquant.h and system headers (docs/api.md) — no
# internal header and none of the libraries the layers use (jansson, PCRE2,
# OpenBLAS, LAPACKE, zlib, nettle).
set -euo pipefail
root=${1:-.}
cd "$root"
bad=0
for f in cli/*.[ch]; do
  while IFS= read -r inc; do
    case $inc in
      cli/*|include/xfquant.h) ;;
      *) echo "FAIL $f includes \"$inc\" (not the public API)"; bad=1 ;;
    esac
  done < <(grep -ho '^#include "[^"]*"' "$f" | sed 's/#include "//; s/"$//')
  if grep -Hn '^#include <\(jansson\|pcre2\|cblas\|lapacke\|zlib\|nettle/\)' "$f"; then
    echo "FAIL $f includes a library of the layers (the CLI sees only the public API)"; bad=1
  fi
done
exit $bad
