#!/usr/bin/env bash
# Suite 'interop' (tests/interop/meson.build): GGUF files made by llama.cpp itself, read by xfquant.
# On both shared models (stories260K, novels-5m):
#  (a) llama-tokenize ids == xfquant's tokenizer ids (from the GGUF and from
#      the HF directory) on the whole eval text, LF line ends;
#  (b) an F32 GGUF (the tests' own writer: llama.cpp's Python converter needs
#      numpy) scored by llama-perplexity -c 256 == xfquant ppl --protocol
#      llamacpp --ctx 256 on the HF directory and on the GGUF;
#  (d) llama-quantize Q4_0, Q4_K_M, Q3_K_M, IQ4_XS, each with and without an
#      --imatrix from llama-imatrix on the calibration text: xfquant's PPL
#      on the file vs llama-perplexity's (bound below), and, for those and
#      Q2_K Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q5_K_M Q6_K BF16, every dequantized
#      weight equal to ggml's own to_float (a C program compiled here
#      against the llama.cpp build's libggml-base).
# Texts are prefixes (whole lines) of the eval/calibration files so the suite
# takes minutes; the tokenizer check uses the whole eval text.
# llama-perplexity runs with -nr (no weight repacking): on CPUs with AMX this
# llama.cpp build crashes in ggml_backend_amx_mul_mat on quantized files.
# Writes the table to $XF_BUILD_ROOT/interop-read.md. Exit 77 = skipped.
set -euo pipefail

root=${XF_SRC_ROOT:-$(pwd)}
build=${XF_BUILD_ROOT:-$root/build}
xfq=${XFQUANT_BIN:-$build/cli/xfquant}
write=${GGUF_WRITE_HF:-$build/tests/interop/gguf_write_hf}
tokids=${TOKENIZE_IDS:-$build/tests/interop/tokenize_ids}
shared=$root/../shared
skip() { echo "SKIP: $*"; exit 77; }
[ -d "$shared/models" ] && [ -d "$shared/data" ] && [ -d "$shared/third_party/llama.cpp" ] &&
  [ -x "$shared/tools/llamacpp-build.sh" ] ||
  skip "../shared (models, texts, llama.cpp source and build script) is absent"
bin=$("$shared/tools/llamacpp-build.sh") || skip "the llama.cpp tools could not be built (above)"
for t in llama-perplexity llama-quantize llama-imatrix llama-tokenize; do
  [ -x "$bin/$t" ] || skip "$bin/$t is missing"
done
ggml_lib=$bin/../ggml/src/libggml-base.a
[ -f "$ggml_lib" ] || skip "$ggml_lib (static ggml from the llama.cpp build) is missing"

# bounds, checked below (measured values are printed and go to the report)
F32_BOUND=0.00001   # F32 GGUF vs HF directory: same fp32 weights, llama.cpp prints 4 decimals
Q_BOUND=0.002       # quantized files: llama.cpp quantizes activations to 8 bits in its matmuls
TEXT_BYTES=24000
THREADS=2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report=$build/interop-read.md
fail=0
bad() { echo "FAIL: $*"; fail=1; }

cc -O2 -std=c11 -o "$work/dqcheck" "$root/tests/interop/ggml_dequant_check.c" -I"$root" \
  -I"$shared/third_party/llama.cpp/ggml/include" "$build/formats/libxf_formats.a" \
  "$build/core/libxf_core.a" "$ggml_lib" -lstdc++ -lm -lpthread -ljansson -lnettle -lz -fopenmp \
  -lopenblas || skip "cannot compile the ggml dequantization check"

prefix() { head -c "$TEXT_BYTES" "$1" | tr -d '\r' | sed '$d'; } # whole lines, LF
llama_ppl() { # FILE TEXT [ARGS] -> PPL (4 decimals, as llama-perplexity prints it)
  # llama-perplexity has been seen to die without a result on this CPU (a
  # segfault in its CPU backend, also on files llama-quantize made): one
  # retry, said on stderr; a second failure is reported with its log tail
  local v try
  for try in 1 2; do
    local rc=0
    "$bin/llama-perplexity" -m "$1" -f "$2" -c 256 -t $THREADS -nr "${@:3}" >"$work/lp.log" 2>&1 ||
      rc=$?
    v=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$work/lp.log")
    if [ -n "$v" ]; then echo "$v"; return 0; fi
    echo "note: llama-perplexity on $(basename "$1") gave no result (exit $rc, try $try): $(tail -1 "$work/lp.log")" >&2
  done
  tail -5 "$work/lp.log" >&2
}
xf_ppl() { # MODEL TEXT -> PPL
  "$xfq" ppl "$1" --text "$2" --protocol llamacpp --ctx 256 --threads $THREADS --json |
    sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'
}
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; printf "%.2e", d }'; }
within() { awk -v d="$1" -v b="$2" 'BEGIN { exit !(d <= b) }'; }
bpw() { "$xfq" info "$1" --json >"$work/info.json" && awk -F'[:,]' '/^  "bits_per_weight"/ { printf "%.3f", $2; exit }' "$work/info.json"; }

{
  echo "# interop-read: llama.cpp GGUF files read by xfquant"
  echo
  echo "llama.cpp tools: $bin. PPL: \`llama-perplexity -c 256 -nr\` (F32: also \`-fa off\`) vs \`xfquant ppl --protocol llamacpp --ctx 256\`, first $TEXT_BYTES bytes (whole lines, LF) of the eval text; bound $Q_BOUND relative for quantized files, $F32_BOUND for F32."
  echo
  echo "| model | file type | bits/weight | PPL llama-perplexity | PPL xfquant | rel. diff | weights = ggml to_float |"
  echo "|---|---|---|---|---|---|---|"
} >"$report.tmp"

for pair in stories260K:tinystories novels-5m:novels; do
  m=${pair%%:*} d=${pair##*:}
  hf=$shared/models/$m
  tr -d '\r' <"$shared/data/$d/eval.txt" >"$work/$m-eval-full.txt"
  prefix "$shared/data/$d/eval.txt" >"$work/$m-eval.txt"
  prefix "$shared/data/$d/calib.txt" >"$work/$m-calib.txt"
  "$write" "$hf" "$work/$m-F32.gguf" f32
  "$write" "$hf" "$work/$m-F16.gguf" f16

  # (a) tokenizer
  "$bin/llama-tokenize" -m "$work/$m-F16.gguf" -f "$work/$m-eval-full.txt" --ids --log-disable 2>/dev/null |
    tr -d '[] ' | tr ',' '\n' | sed '/^$/d' >"$work/llama.ids"
  "$tokids" "$work/$m-F16.gguf" "$work/$m-eval-full.txt" >"$work/gguf.ids"
  "$tokids" "$hf" "$work/$m-eval-full.txt" >"$work/hf.ids"
  n=$(wc -l <"$work/llama.ids")
  if cmp -s "$work/llama.ids" "$work/gguf.ids" && cmp -s "$work/llama.ids" "$work/hf.ids" && [ "$n" -gt 1000 ]; then
    echo "$m: (a) llama-tokenize = xfquant (GGUF and tokenizer.json) on $n tokens"
  else
    bad "$m: (a) token ids differ (llama-tokenize $n, xfquant GGUF $(wc -l <"$work/gguf.ids"), HF $(wc -l <"$work/hf.ids"))"
  fi

  # (b) the F32 GGUF: the protocol itself, with flash attention off: llama.cpp's
  # CPU flash attention (on by default) computes in F16 and moves stories260K's
  # PPL by 8e-5 relative
  lp=$(llama_ppl "$work/$m-F32.gguf" "$work/$m-eval.txt" -fa off)
  xg=$(xf_ppl "$work/$m-F32.gguf" "$work/$m-eval.txt")
  xh=$(xf_ppl "$hf" "$work/$m-eval.txt")
  r=$(rel "$xg" "$lp")
  echo "$m: (b) F32: llama-perplexity $lp, xfquant GGUF $xg, HF dir $xh (rel $r)"
  within "$r" $F32_BOUND && [ "$xg" = "$xh" ] || bad "$m: F32 PPL disagree beyond $F32_BOUND or GGUF != HF"
  echo "| $m | F32 (tests' writer) | $(bpw "$work/$m-F32.gguf") | $lp | $xg (HF dir $xh) | $r | - |" >>"$report.tmp"

  # imatrix from the calibration text
  "$bin/llama-imatrix" -m "$work/$m-F16.gguf" -f "$work/$m-calib.txt" -o "$work/$m-imat.gguf" \
    -c 256 -t $THREADS --chunks 8 >"$work/imatrix.log" 2>&1 || bad "$m: llama-imatrix failed"

  # llama-quantize refuses legacy types outright for rows not a multiple of 32
  if "$bin/llama-quantize" "$work/$m-F16.gguf" "$work/refused.gguf" Q4_0 $THREADS >"$work/q.log" 2>&1; then
    echo "$m: llama-quantize Q4_0 accepted every row"
  else
    echo "$m: llama-quantize Q4_0 refused: $(grep -m1 -o '[^ ]*ffn_down.weight .*required for type *q4_0.*' "$work/q.log" | tr -s ' ' || true)"
  fi
  files=()
  for t in Q4_0 Q4_K_M Q3_K_M IQ4_XS Q2_K Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q5_K_M Q6_K BF16; do
    for im in "" imatrix; do
      case $t in Q4_0|Q4_K_M|Q3_K_M|IQ4_XS) ;; *) [ -z "$im" ] || continue ;; esac
      out=$work/$m-$t${im:+-$im}.gguf
      args=(--tensor-type ffn_down=f16) # rows of 172/688: the F16 that llama-quantize's
      [ -z "$im" ] || args+=(--imatrix "$work/$m-imat.gguf") # K-quant fallback also picks
      if ! "$bin/llama-quantize" "${args[@]}" "$work/$m-F16.gguf" "$out" $t $THREADS >"$work/q.log" 2>&1; then
        bad "$m: llama-quantize $t ${im:+(imatrix)} failed: $(tail -1 "$work/q.log")"
        continue
      fi
      fb=$(grep -c 'falling back' "$work/q.log" || true)
      [ "$fb" = 0 ] || echo "$m: $t${im:+ (imatrix)}: llama-quantize fell back on $fb tensors"
      files+=("$out")
      case $t in Q4_0|Q4_K_M|Q3_K_M|IQ4_XS) ;; *) continue ;; esac
      lp=$(llama_ppl "$out" "$work/$m-eval.txt")
      xp=$(xf_ppl "$out" "$work/$m-eval.txt")
      r=$(rel "$xp" "$lp")
      ok=$("$work/dqcheck" "$out" | sed -n 's/.* \([0-9]*\) differ from.*/\1/p')
      echo "$m: $t${im:+ imatrix}: llama-perplexity $lp, xfquant $xp (rel $r), weights differing from ggml: $ok"
      echo "| $m | $t${im:+ + imatrix} | $(bpw "$out") | $lp | $xp | $r | ${ok:-?} differ |" >>"$report.tmp"
      within "$r" $Q_BOUND || bad "$m: $t${im:+ imatrix}: PPL differs by $r > $Q_BOUND"
    done
  done
  # (d) weights: every file, every tensor, bit for bit against ggml
  if "$work/dqcheck" "${files[@]}" "$work/$m-F32.gguf" "$work/$m-F16.gguf" >"$work/dq.txt"; then
    sed "s|$work/||" "$work/dq.txt"
  else
    sed "s|$work/||" "$work/dq.txt"
    bad "$m: dequantized weights differ from ggml's"
  fi
  sed "s|$work/||; s|^|    |" "$work/dq.txt" >>"$report.dq"
done
{
  cat "$report.tmp"
  echo
  echo "Dequantization against ggml's to_float, every tensor of every file:"
  echo
  cat "$report.dq"
} >"$report"
rm -f "$report.tmp" "$report.dq"
echo "report: $report"
exit $fail
