#!/usr/bin/env bash
# Whole-model wall time of `xfquant gptq --gguf-type FT` against llama.cpp's
# own route to the same file type with an importance matrix
# (`llama-imatrix` + `llama-quantize --imatrix`), in the same run, on the same
# calibration tokens (NSAMPLES windows of SEQLEN: llama-imatrix --chunks
# NSAMPLES -c SEQLEN from the start of the text, xfquant sampled windows).
# llama.cpp's route needs an F32/F16 GGUF first: that export is timed
# separately (xfquant export, not llama.cpp's Python converter).
#
#   bench/gguf_model_time.sh [MODEL_DIR] [CALIB] [FT] [NSAMPLES] [SEQLEN]
#   defaults: ../shared/models/novels-5m ../shared/data/novels/calib.txt Q4_K_M 128 256
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/../shared/models/novels-5m}
calib=${2:-$root/../shared/data/novels/calib.txt}
ft=${3:-Q4_K_M} ns=${4:-128} T=${5:-256}
xfq=${XFQUANT_BIN:-$root/build/cli/xfquant}
bin=${XF_LLAMACPP_BIN:-$("$root/../shared/tools/llamacpp-build.sh")}
threads=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
tr -d '\r' <"$calib" >"$work/calib.txt"
t0=$(now)
"$xfq" gptq --gguf-type "$ft" --calib "$calib" --nsamples "$ns" --seqlen "$T" \
  --threads "$threads" "$model" "$work/x.gguf" >/dev/null
t1=$(now)
"$xfq" export --to gguf --type f32 "$model" "$work/f32.gguf" >/dev/null
t2=$(now)
"$bin/llama-imatrix" -m "$work/f32.gguf" -f "$work/calib.txt" -o "$work/imat.gguf" -c "$T" \
  --chunks "$ns" -t "$threads" >"$work/imat.log" 2>&1
t3=$(now)
"$bin/llama-quantize" --imatrix "$work/imat.gguf" "$work/f32.gguf" "$work/l.gguf" "$ft" \
  "$threads" >"$work/q.log" 2>&1
t4=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v ft="$ft" -v ns="$ns" -v T="$T" \
  -v m="$(basename "$model")" 'BEGIN {
  x = b - a; im = d - c; q = e - d
  printf "model %s, %s, %d x %d calibration tokens\n", m, ft, ns, T
  printf "xfquant gptq --gguf-type (to .gguf): %.2f s\n", x
  printf "llama-imatrix: %.2f s, llama-quantize: %.2f s, together: %.2f s\n", im, q, im + q
  printf "(F32 GGUF for llama.cpp, xfquant export: %.2f s)\n", c - b
  printf "xfquant / llama.cpp: %.2f\n", x / (im + q) }'
