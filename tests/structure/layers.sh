#!/usr/bin/env bash
# The layering rule of docs/ARCHITECTURE.md, checked on the tree: a file in
# a layer includes only headers of its own layer or of layers before it.
# Order = the table in docs/ARCHITECTURE.md.
set -euo pipefail
root=${1:-.}
layers=(core formats model calib export sim quant/weights quant/transform quant/search pipeline eval regress api cli)
rank() { local i; for i in "${!layers[@]}"; do [[ $1 == "${layers[$i]}" ]] && { echo "$i"; return; }; done; echo -1; }
layer_of() { local p=$1 l best=""; for l in "${layers[@]}"; do [[ $p == "$l"/* ]] && best=$l; done; echo "$best"; }
bad=0
cd "$root"
while IFS= read -r f; do
  own=$(layer_of "$f"); [[ -z $own ]] && continue
  r=$(rank "$own")
  while IFS= read -r inc; do
    il=$(layer_of "$inc"); [[ -z $il ]] && continue
    if (( $(rank "$il") > r )); then echo "FAIL $f ($own) includes $inc ($il)"; bad=1; fi
  done < <(grep -ho '^#include "[^"]*"' "$f" | sed 's/#include "//; s/"$//')
done < <(find "${layers[@]}" -name '*.[ch]' 2>/dev/null | sort)
exit $bad
