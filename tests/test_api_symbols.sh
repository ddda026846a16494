#!/usr/bin/env bash
# libxfquant.so exports exactly the public API: every dynamic symbol it
# defines is an xf_* function declared XF_API in include/xfquant.h, and
# every function declared there is exported.
# usage: test_api_symbols.sh HEADER LIBXFQUANT_SO
set -euo pipefail
header=$1 so=$2
declared=$(grep -oE 'XF_API[^;(]*\bxf_[a-z0-9_]+\(' "$header" | grep -oE 'xf_[a-z0-9_]+\($' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort -u)
bad=0
[[ -n $declared ]] || { echo "FAIL: no XF_API declarations found in $header"; exit 1; }
while read -r s; do
  [[ -z $s ]] && continue
  if ! grep -qx "$s" <<<"$declared"; then echo "FAIL: $so exports $s, not in the public API"; bad=1; fi
done <<<"$exported"
while read -r s; do
  if ! grep -qx "$s" <<<"$exported"; then echo "FAIL: $s is declared XF_API but not exported"; bad=1; fi
done <<<"$declared"
echo "exported: $(echo $exported)"
exit $bad
