#!/usr/bin/env bash
# No circle among the files of one static library (docs/ARCHITECTURE.md):
# file A calls file B when A.o uses a symbol B.o defines; those calls must
# form no loop (formats/ once had tensor.c <-> xfq_pack.c: the dtype traits
# table, formats/dtype.c, now dispatches one way). Usage: calls.sh LIB.a
set -euo pipefail
lib=$1
edges=$(
  { nm -A -g --defined-only "$lib" | awk '{ n = split($1, p, ":"); print "D", p[n-1], $NF }'
    nm -A -u "$lib" | awk '{ n = split($1, p, ":"); print "U", p[n-1], $NF }'; } |
  awk '$1 == "D" { def[$3] = $2; next }
       { use[++k] = $2 " " $3 }
       END { for (i = 1; i <= k; i++) { split(use[i], u, " ");
               if ((u[2] in def) && def[u[2]] != u[1]) print u[1], def[u[2]] } }' | sort -u)
if [[ -z $edges ]]; then echo "no calls between files of $lib"; exit 0; fi
if ! out=$(tsort <<<"$edges" 2>&1 >/dev/null) || [[ -n $out ]]; then
  echo "FAIL: the files of $lib call each other in a loop:"
  echo "$out"
  exit 1
fi
echo "$(wc -l <<<"$edges") calls between files of $lib, no loop"
