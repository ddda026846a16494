#!/usr/bin/env bash
# Suite 'interop' (tests/interop/meson.build): the GGML type of every tensor
# that export/gguf_ftype.h plans for a llama-quantize file type, against the
# type llama-quantize itself writes (docs/export.md, "File types: which GGML
# type each tensor gets").
# Models: both shared ones (stories260K: 64 wide, MLP 172, tied embeddings;
# novels-5m: 256 wide, MLP 688) and two random ones (ftype_model) with widths
# that are multiples of 256: llama 512 / 1536, 4 layers, GQA 4 (8 heads, 2 kv);
# qwen2 256 / 768, 16 layers, no GQA (q/k/v biases; 16 layers make the
# n/8 and n/16 layer thresholds non-zero).
# Each is exported F16 by `xfquant export --to gguf --type f16`, then for each
# of the 16 file types: llama-quantize IN OUT FTYPE vs `ftype_plan plan IN
# FTYPE`. Either both refuse the file, naming the same tensor, or both give
# every tensor the same type, the same general.file_type and the same data
# section size (tensors padded to the alignment). On the random qwen2 model
# the file types whose rules read the imatrix flag (and two others) run again
# with an --imatrix from llama-imatrix. Every mismatch fails the test.
# Writes the table to $XF_BUILD_ROOT/interop-ftype.md. Exit 77 = skipped.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${XF_BUILD_ROOT:-$root/build}
xfq=${XFQUANT_BIN:-$build/cli/xfquant}
mkmodel=${FTYPE_MODEL:-$build/tests/interop/ftype_model}
planner=${FTYPE_PLAN:-$build/tests/interop/ftype_plan}
shared=$root/../shared
skip() { echo "SKIP: $*"; exit 77; }
[ -d "$shared/models/stories260K" ] && [ -d "$shared/models/novels-5m" ] &&
  [ -d "$shared/data" ] && [ -x "$shared/tools/llamacpp-build.sh" ] ||
  skip "../shared (models, texts, llama.cpp build script) is absent"
bin=$("$shared/tools/llamacpp-build.sh") || skip "the llama.cpp tools could not be built (above)"
for t in llama-quantize llama-imatrix; do
  [ -x "$bin/$t" ] || skip "$bin/$t is missing"
done
for x in "$xfq" "$mkmodel" "$planner"; do
  [ -x "$x" ] || { echo "FAIL: $x is not built"; exit 1; }
done

FTYPES="Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS"
IMATRIX_FTYPES="Q4_0 Q5_0 IQ4_NL IQ4_XS Q4_K_M Q2_K"
THREADS=2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report=$build/interop-ftype.md
fail=0
n_same=0 n_refused=0
bad() { echo "FAIL: $*"; fail=1; }

# "q4_K x20, f32 x9" from NAME TYPE lines
summary() { grep -v -e '^file_type ' -e '^data_bytes ' "$1" | awk '{ print $2 }' | sort |
  uniq -c | sort -k2 | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }'; }

{
  echo "# interop-ftype: per-tensor types of llama-quantize vs export/gguf_ftype.h"
  echo
  echo "llama.cpp tools: $bin. Input: \`xfquant export --to gguf --type f16\` of each model; \`llama-quantize [--imatrix F] IN OUT FTYPE $THREADS\` vs \`ftype_plan plan IN FTYPE [imatrix]\`."
  echo
  echo "| model | file type | result | types (llama-quantize = plan) | data bytes |"
  echo "|---|---|---|---|---|"
} >"$report.tmp"

# check MODEL F16 FTYPE [IMATRIX]
check() {
  local m=$1 in=$2 ft=$3 imat=${4:-} lq=0 pl=0
  local out=$work/out.gguf label=$3${4:+ + imatrix}
  local args=()
  [ -z "$imat" ] || args=(--imatrix "$imat")
  rm -f "$out"
  "$bin/llama-quantize" "${args[@]}" "$in" "$out" "$ft" $THREADS >"$work/q.log" 2>&1 || lq=$?
  "$planner" plan "$in" "$ft" ${imat:+imatrix} >"$work/plan.txt" 2>"$work/plan.err" || pl=$?
  if [ "$lq" != 0 ] && [ "$pl" = 1 ]; then
    # llama-quantize warns "warning: NAME - ncols N not divisible by B" for the
    # tensor it then finds no type for, and stops there
    local theirs ours
    theirs=$(grep -o 'warning: [^ ]* *- ncols' "$work/q.log" | tail -1 | awk '{ print $2 }')
    ours=$(sed -n 's/^tensor \([^:]*\): .*/\1/p' "$work/plan.err")
    grep -q 'no tensor type fallback' "$work/q.log" ||
      bad "$m $label: llama-quantize failed otherwise: $(tail -1 "$work/q.log")"
    if [ -n "$ours" ] && [ "$theirs" = "$ours" ]; then
      echo "$m $label: both refuse ($ours)"
      echo "| $m | $label | both refuse: \`$ours\` | - | - |" >>"$report.tmp"
      n_refused=$((n_refused + 1))
    else
      bad "$m $label: refusals differ: llama-quantize at '$theirs', plan: $(cat "$work/plan.err")"
    fi
    return
  fi
  if [ "$lq" != 0 ] || [ "$pl" != 0 ]; then
    bad "$m $label: llama-quantize exit $lq ($(tail -1 "$work/q.log")), plan exit $pl ($(cat "$work/plan.err"))"
    echo "| $m | $label | **mismatch** (exit $lq vs $pl) | - | - |" >>"$report.tmp"
    return
  fi
  "$planner" types "$out" >"$work/got.txt" || { bad "$m $label: cannot read $out"; return; }
  sort "$work/plan.txt" >"$work/a" && sort "$work/got.txt" >"$work/b"
  local nt nd
  nt=$(grep -vc -e '^file_type ' -e '^data_bytes ' "$work/a" || true)
  if cmp -s "$work/a" "$work/b"; then
    n_same=$((n_same + 1))
    echo "$m $label: $nt tensors equal ($(summary "$work/b"))"
    echo "| $m | $label | $nt tensors equal | $(summary "$work/b") | $(sed -n 's/^data_bytes //p' "$work/b") |" >>"$report.tmp"
  else
    nd=$(diff "$work/a" "$work/b" | grep -c '^<' || true)
    bad "$m $label: $nd lines differ (< plan, > llama-quantize):"
    diff "$work/a" "$work/b" | grep '^[<>]' | head -20 || true
    echo "| $m | $label | **$nd differ** | - | - |" >>"$report.tmp"
  fi
}

"$mkmodel" "$work/rand-llama" llama 512 1536 4 8 2
"$mkmodel" "$work/rand-qwen2" qwen2 256 768 16 4 4
for m in stories260K novels-5m rand-llama rand-qwen2; do
  case $m in rand-*) hf=$work/$m ;; *) hf=$shared/models/$m ;; esac
  f16=$work/$m-F16.gguf
  "$xfq" export --to gguf --type f16 "$hf" "$f16" >/dev/null ||
    { bad "$m: xfquant export failed"; continue; }
  for ft in $FTYPES; do
    check "$m" "$f16" "$ft"
  done
done

# imatrix rules: Q4_0/Q5_0 ffn_down below n/8 -> Q4_1/Q5_1, IQ4_NL/IQ4_XS lose
# their ffn_down Q5_K; the others are unchanged by an imatrix
head -c 20000 "$shared/data/tinystories/calib.txt" | tr -d '\r' >"$work/calib.txt"
if "$bin/llama-imatrix" -m "$work/rand-qwen2-F16.gguf" -f "$work/calib.txt" \
    -o "$work/imat.gguf" -c 64 --chunks 4 -t $THREADS >"$work/imatrix.log" 2>&1; then
  for ft in $IMATRIX_FTYPES; do
    check rand-qwen2 "$work/rand-qwen2-F16.gguf" "$ft" "$work/imat.gguf"
  done
else
  bad "llama-imatrix failed: $(tail -1 "$work/imatrix.log")"
fi

{
  cat "$report.tmp"
  echo
  echo "$n_same files equal, $n_refused refused by both."
} >"$report"
rm -f "$report.tmp"
echo "$n_same files equal, $n_refused refused by both; report: $report"
exit $fail
