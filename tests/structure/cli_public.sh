#!/usr/bin/env bash
# The CLI is a client of the public API: a cli/ file includes only cli/'s
# own headers, include/xfquant.h and system headers (docs/api.md).
# PENDING: files still on internal headers (cmd_quant.c: jansson for the
# --recipe file and the summary, xf_quantize_cmdline for the provenance).
set -euo pipefail
root=${1:-.}
pending=(cli/cmd_quant.c)
cd "$root"
bad=0
for f in cli/*.[ch]; do
  skip=0
  for p in "${pending[@]}"; do [[ $f == "$p" ]] && skip=1; done
  (( skip )) && continue
  while IFS= read -r inc; do
    case $inc in
      cli/*|include/xfquant.h) ;;
      *) echo "FAIL $f includes \"$inc\" (not the public API)"; bad=1 ;;
    esac
  done < <(grep -ho '^#include "[^"]*"' "$f" | sed 's/#include "//; s/"$//')
done
exit $bad
