#!/usr/bin/env bash
# GGUF files from `xfquant gptq --gguf-type FT` against `llama-quantize FT
# --imatrix` (imatrix from llama-imatrix on the same calibration text), both
# scored by llama-perplexity on each half of the eval text separately (held-
# out discipline: a method wins only where it wins on both halves), xfquant
# with several calibration seeds (mean and spread).
#
#   bench/gguf_accuracy.sh MODEL_DIR DATA_NAME "FT..." "SEEDS" [OUT.md]
#   e.g. bench/gguf_accuracy.sh ../shared/models/novels-5m novels "Q4_K_M Q3_K_M" "0 1 2"
#
# The calibration text is ../shared/data/DATA_NAME/calib.txt (the only text a
# recipe sees), the eval text ../shared/data/DATA_NAME/eval.txt, split at the
# middle line into halves A and B (LF). llama-imatrix reads the whole
# calibration text (-c = the model's context, 256); xfquant samples
# --nsamples 128 windows of --seqlen 256 with --seed S. Each file's tensor
# bytes are reported (same types as llama-quantize's: tests/interop/gguf_gptq.sh).
set -euo pipefail
model=$1 data=$2 types=$3 seeds=$4 out=${5:-/dev/stdout}
root=$(cd "$(dirname "$0")/.." && pwd)
xfq=${XFQUANT_BIN:-$root/build/cli/xfquant}
shared=$root/../shared
bin=${XF_LLAMACPP_BIN:-$("$shared/tools/llamacpp-build.sh")}
T=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tr -d '\r' <"$shared/data/$data/eval.txt" >"$work/eval.txt"
tr -d '\r' <"$shared/data/$data/calib.txt" >"$work/calib.txt"
n=$(wc -l <"$work/eval.txt")
head -n $((n / 2)) "$work/eval.txt" >"$work/A.txt"
tail -n +$((n / 2 + 1)) "$work/eval.txt" >"$work/B.txt"
source "$root/tests/interop/llamacpp_ppl.sh"
ppl() { # FILE HALF -> PPL (retries: llama-perplexity sometimes dies on this CPU)
  local v try
  for try in 1 2 3 4; do
    "$bin/llama-perplexity" -m "$1" -f "$work/$2.txt" -c 256 -b 256 -t $T -nr >"$work/lp.log" 2>&1 || true
    v=$(final_ppl "$work/lp.log")
    [ -n "$v" ] && { echo "$v"; return; }
  done
  echo "nan"
}
"$xfq" export --to gguf --type f32 "$model" "$work/f32.gguf" >/dev/null
"$bin/llama-imatrix" -m "$work/f32.gguf" -f "$work/calib.txt" -o "$work/imat.gguf" -c 256 -t $T \
  >"$work/imatrix.log" 2>&1
fa=$(ppl "$work/f32.gguf" A) fb=$(ppl "$work/f32.gguf" B)
{
  echo "model $(basename "$model"), eval halves of $data/eval.txt ($n lines): fp32 A $fa, B $fb"
  echo
  echo "| file type | tool | seed | file bytes | PPL A | PPL B |"
  echo "|---|---|---|---:|---:|---:|"
  echo "| fp32 | — | — | $(stat -c %s "$work/f32.gguf") | $fa | $fb |"
} >>"$out"
for ft in $types; do
  "$bin/llama-quantize" --imatrix "$work/imat.gguf" "$work/f32.gguf" "$work/l.gguf" "$ft" $T \
    >"$work/q.log" 2>&1 || { echo "| $ft | llama-quantize refuses | | | | |" >>"$out"; continue; }
  echo "| $ft | llama-quantize --imatrix | — | $(stat -c %s "$work/l.gguf") | $(ppl "$work/l.gguf" A) | $(ppl "$work/l.gguf" B) |" >>"$out"
  for s in $seeds; do
    "$xfq" gptq --gguf-type "$ft" --calib "$shared/data/$data/calib.txt" --nsamples 128 \
      --seqlen 256 --seed "$s" "$model" "$work/x.gguf" >/dev/null 2>"$work/x.log" ||
      { echo "| $ft | xfquant gptq fails: $(tail -1 "$work/x.log") | $s | | | |" >>"$out"; continue; }
    echo "| $ft | xfquant gptq | $s | $(stat -c %s "$work/x.gguf") | $(ppl "$work/x.gguf" A) | $(ppl "$work/x.gguf" B) |" >>"$out"
  done
done
