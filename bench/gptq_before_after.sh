#!/usr/bin/env bash
# Whole-model `xfquant gptq` with two binaries, alternately (BEFORE, AFTER,
# BEFORE, ... REPS times each, so that load drifts hit both alike): median
# wall time of each, the ratio AFTER / BEFORE, and a cmp of the two .xfq
# files (the same command must give the same bytes).
# Usage: bench/gptq_before_after.sh BEFORE_BIN AFTER_BIN [MODEL...]
#   MODEL defaults to the shared stories260K and novels-5m; the calibration
#   text is the shared one of the model (CALIB=FILE overrides it). REPS (3),
#   GPTQ_FLAGS ("--bits 4 --group 128") and SHARED (../shared) from the
#   environment.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN [MODEL...]" >&2; exit 2; }
before=$(realpath "$1") after=$(realpath "$2")
shift 2
shared=${SHARED:-../shared}
reps=${REPS:-3}
flags=${GPTQ_FLAGS:-"--bits 4 --group 128"}
[ $# -gt 0 ] || set -- "$shared/models/stories260K" "$shared/models/novels-5m"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/before" "$w/after"
# both run as $w/bin/xfquant writing $w/out.xfq: the command line, argv[0]
# and output path included, is recorded in the .xfq
ln -s "$before" "$w/before/xfquant"
ln -s "$after" "$w/after/xfquant"
calib_of() {
  if [ -n "${CALIB:-}" ]; then echo "$CALIB"; return; fi
  case $(basename "$1") in
    stories*) echo "$shared/data/tinystories/calib.txt" ;;
    novels*) echo "$shared/data/novels/calib.txt" ;;
    *) echo "$shared/data/wikitext-2-raw/wiki.test.joined.txt" ;;
  esac
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for model in "$@"; do
  calib=$(calib_of "$model")
  : > "$w/t.before"; : > "$w/t.after"; : > "$w/m.before"; : > "$w/m.after"
  for r in $(seq "$reps"); do
    for which in before after; do
      rm -rf "$w/bin"; ln -s "$w/$which" "$w/bin"
      # shellcheck disable=SC2086
      /usr/bin/time -f "%e %M" -o "$w/time" "$w/bin/xfquant" gptq $flags --calib "$calib" \
        "$model" "$w/out.xfq" > /dev/null 2>&1
      awk '{print $1}' "$w/time" >> "$w/t.$which"
      awk '{print $2}' "$w/time" >> "$w/m.$which"
      mv "$w/out.xfq" "$w/$which.xfq"
    done
  done
  tb=$(median < "$w/t.before") ta=$(median < "$w/t.after")
  mb=$(sort -g "$w/m.before" | tail -1) ma=$(sort -g "$w/m.after" | tail -1)
  # identical, or (a BEFORE without the option table's recorded options)
  # the same tensors and metadata apart from recipe.options
  same=$(cmp -s "$w/before.xfq" "$w/after.xfq" && echo identical ||
         python3 "$(dirname "$0")/xfq_same.py" "$w/before.xfq" "$w/after.xfq" | tail -1)
  printf '%s: gptq %s: before %.3f s, after %.3f s (median of %d), after/before %.3f; peak RSS before %.0f MiB, after %.0f MiB; .xfq %s\n' \
    "$(basename "$model")" "$flags" "$tb" "$ta" "$reps" "$(echo "$ta / $tb" | bc -l)" \
    "$(echo "$mb / 1024" | bc -l)" "$(echo "$ma / 1024" | bc -l)" "$same"
  case $same in identical|"same except recipe.options") ;; *) exit 1 ;; esac
done
