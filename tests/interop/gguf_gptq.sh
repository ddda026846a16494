#!/usr/bin/env bash
# Suite 'interop' (tests/interop/meson.build): GPTQ solved on llama.cpp's own
# block grids (`xfquant gptq --gguf-type FT`), checked against llama.cpp.
#  (a) ggml_grid_check.c, compiled here against the llama.cpp build's
#      libggml-base: for every GGML grid (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL
#      Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_XS; plain and static-group act-order) the
#      blocks GPTQ writes, converted by ggml's to_float, equal the solver's
#      values bit for bit (max |delta| = 0);
#  (b) novels-5m (the shared model whose widths allow K-quants) under each
#      file type below: the GGUF `xfquant export` writes has the same tensor
#      types and tensor bytes as llama-quantize's file for that type (with
#      an imatrix of the same calibration text), and llama-perplexity on it
#      agrees with `xfquant ppl --protocol llamacpp` on the .xfq (bound below:
#      llama.cpp quantizes activations to 8 bits in its matmuls).
# Accuracy (which file scores better) is the regress suite's job
# (tests/regress/gguf.json). Writes $XF_BUILD_ROOT/interop-gguf-gptq.md.
# Exit 77 = skipped (with the reason).
set -euo pipefail

root=${XF_SRC_ROOT:-$(pwd)}
build=${XF_BUILD_ROOT:-$root/build}
xfq=${XFQUANT_BIN:-$build/cli/xfquant}
shared=$root/../shared
skip() { echo "SKIP: $*"; exit 77; }
[ -d "$shared/models/novels-5m" ] && [ -d "$shared/data" ] &&
  [ -x "$shared/tools/llamacpp-build.sh" ] ||
  skip "../shared (models, texts, llama.cpp build script) is absent"
bin=$("$shared/tools/llamacpp-build.sh") || skip "the llama.cpp tools could not be built (above)"
for t in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$bin/$t" ] || skip "$bin/$t is missing"
done
ggml_lib=$bin/../ggml/src/libggml-base.a
[ -f "$ggml_lib" ] || skip "$ggml_lib (static ggml from the llama.cpp build) is missing"

BOUND=0.002
TEXT_BYTES=24000
THREADS=2
TYPES="Q4_K_M Q3_K_M Q4_K_S Q5_K_M Q6_K Q2_K IQ4_XS"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report=$build/interop-gguf-gptq.md
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# against the static libxfquant (every layer) and ggml; a compile failure is
# a FAIL (the layers or their headers moved), not a skip
[ -f "$build/api/libxfquant.a" ] || { echo "FAIL: $build/api/libxfquant.a is missing"; exit 1; }
cc -O2 -std=c11 -o "$work/gridcheck" "$root/tests/interop/ggml_grid_check.c" -I"$root" \
  -I"$shared/third_party/llama.cpp/ggml/include" "$build/api/libxfquant.a" "$ggml_lib" \
  -lstdc++ -lm -lpthread -ljansson -lnettle -lz -lpcre2-8 -fopenmp -lopenblas -llapacke ||
  { echo "FAIL: cannot compile tests/interop/ggml_grid_check.c against libxfquant.a and ggml"; exit 1; }

prefix() { head -c "$TEXT_BYTES" "$1" | tr -d '\r' | sed '$d'; } # whole lines, LF
source "$root/tests/interop/llamacpp_ppl.sh"
llama_ppl() { # FILE TEXT -> PPL (retries: see interop_read.sh)
  local v try rc
  for try in 1 2 3 4; do
    rc=0
    "$bin/llama-perplexity" -m "$1" -f "$2" -c 256 -t $THREADS -nr >"$work/lp.log" 2>&1 || rc=$?
    v=$(final_ppl "$work/lp.log")
    if [ -n "$v" ]; then echo "$v"; return 0; fi
    echo "note: llama-perplexity on $(basename "$1") gave no result (exit $rc, try $try)" >&2
  done
  tail -5 "$work/lp.log" >&2
}
xf_ppl() {
  "$xfq" ppl "$1" --text "$2" --protocol llamacpp --ctx 256 --threads $THREADS --json |
    sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'
}
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; printf "%.2e", d }'; }
within() { awk -v d="$1" -v b="$2" 'BEGIN { exit !(d <= b) }'; }

{
  echo "# interop-gguf-gptq: GPTQ on GGML grids, checked by llama.cpp"
  echo
  echo "## (a) GPTQ values = ggml's to_float of the blocks"
  echo
  echo '```'
} >"$report.tmp"
"$work/gridcheck" >"$work/grid.txt" || bad "GPTQ values differ from ggml's to_float"
cat "$work/grid.txt" | tee -a "$report.tmp"
{
  echo '```'
  echo
  echo "## (b) novels-5m: xfquant gptq --gguf-type FT vs llama-quantize FT --imatrix"
  echo
  echo "First $TEXT_BYTES bytes of the eval text for the PPL agreement; bound $BOUND relative."
  echo
  echo "| file type | tensor bytes xfquant | tensor bytes llama-quantize | same types | PPL llama-perplexity | PPL xfquant | rel. diff |"
  echo "|---|---:|---:|---|---:|---:|---:|"
} >>"$report.tmp"

m=novels-5m
hf=$shared/models/$m
prefix "$shared/data/novels/eval.txt" >"$work/eval.txt"
tr -d '\r' <"$shared/data/novels/calib.txt" >"$work/calib.txt"
"$xfq" export --to gguf --type f32 "$hf" "$work/f32.gguf" >/dev/null
"$bin/llama-imatrix" -m "$work/f32.gguf" -f "$work/calib.txt" -o "$work/imat.gguf" -c 256 \
  -t $THREADS --chunks 8 >"$work/imatrix.log" 2>&1 || bad "llama-imatrix failed"
for ft in $TYPES; do
  "$xfq" gptq --gguf-type "$ft" --calib "$shared/data/novels/calib.txt" --nsamples 16 \
    --seqlen 256 "$hf" "$work/x.xfq" >/dev/null || { bad "$ft: xfquant gptq failed"; continue; }
  "$xfq" export --to gguf "$work/x.xfq" "$work/x.gguf" >/dev/null ||
    { bad "$ft: export failed"; continue; }
  "$bin/llama-quantize" --imatrix "$work/imat.gguf" "$work/f32.gguf" "$work/l.gguf" "$ft" \
    $THREADS >"$work/q.log" 2>&1 || { bad "$ft: llama-quantize failed"; continue; }
  same=yes
  "$work/gridcheck" --same-types "$work/x.gguf" "$work/l.gguf" >"$work/same.txt" || {
    same=no
    bad "$ft: tensor types or bytes differ from llama-quantize's: $(tail -1 "$work/same.txt")"
  }
  xb=$(sed -n 's/^tensor bytes: \([0-9]*\) .*/\1/p' "$work/same.txt")
  lb=$(sed -n 's/^tensor bytes: [0-9]* ([^)]*), \([0-9]*\) .*/\1/p' "$work/same.txt")
  lp=$(llama_ppl "$work/x.gguf" "$work/eval.txt")
  xp=$(xf_ppl "$work/x.xfq" "$work/eval.txt")
  if [ -z "$lp" ] || [ -z "$xp" ]; then
    bad "$ft: no PPL (llama '$lp', xfquant '$xp')"
    continue
  fi
  d=$(rel "$xp" "$lp")
  within "$d" $BOUND || bad "$ft: llama-perplexity $lp vs xfquant $xp (rel $d > $BOUND)"
  echo "| $ft | $xb | $lb | $same | $lp | $xp | $d |" | tee -a "$report.tmp"
done
mv "$report.tmp" "$report"
echo "report: $report"
exit $fail
