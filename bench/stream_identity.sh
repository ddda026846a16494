#!/usr/bin/env bash
# Byte identity of the calibration-stream paths: runs a fixed set of
# quantize / stats commands (every stage that captures activations: GPTQ
# plain, act-order, GPTQv2, smoothing, the three rotations, the clip and
# log2-base searches, --gguf-type, rtn, stats) on the shared models with
# BIN, writing the outputs into OUT_DIR; with REF_DIR, cmp's each output
# against the file of the same name there and prints SAME/DIFF per command.
# EXTRA="DIR..." adds other model directories (e.g. random OPT / GPT-2
# models with a tokenizer) with a subset of the commands.
# Usage: bench/stream_identity.sh BIN OUT_DIR [REF_DIR]
set -uo pipefail
bin=$1 out=$2 ref=${3:-}
shared=${SHARED:-../shared}
mkdir -p "$out"
# outputs are written under one fixed name ($w) and moved: the command line,
# output path included, is recorded in each .xfq
w=${WORK:-/tmp/xf_stream_identity}
rm -rf "$w" && mkdir -p "$w/bin"
# and so is argv[0]: both binaries run as $w/bin/xfquant
ln -s "$(realpath "$bin")" "$w/bin/xfquant"
bin=$w/bin/xfquant
st=$shared/models/stories260K st_c=$shared/data/tinystories/calib.txt
nv=$shared/models/novels-5m nv_c=$shared/data/novels/calib.txt
[ -d "$st" ] && [ -d "$nv" ] || { echo "SKIP: $shared/models absent"; exit 77; }
fail=0
run() { # NAME CMD... ; the output file is $out/NAME (.xfq or .json)
  local name=$1; shift
  if ! "$@" > "$out/$name.log" 2>&1; then echo "FAIL $name (see $out/$name.log)"; fail=1; return; fi
  mv "$w/$name".* "$out/"
  if [ -n "$ref" ]; then
    local f; f=$(ls "$out/$name".xfq "$out/$name".json 2>/dev/null | head -1)
    if cmp -s "$f" "$ref/$(basename "$f")"; then echo "SAME $name"; else echo "DIFF $name"; fail=1; fi
  else echo "done $name"; fi
}
S="--nsamples 8 --seqlen 64 --seed 1" N="--nsamples 6 --seqlen 128 --seed 2"
for m in st nv; do
  if [ $m = st ]; then M=$st C=$st_c A=$S Hd=; else M=$nv C=$nv_c A=$N Hd=--quantize-head; fi
  run ${m}_gptq        $bin gptq --bits 4 --group 32 --calib $C $A $M $w/${m}_gptq.xfq
  run ${m}_gptq_ao     $bin gptq --bits 3 --group 32 --act-order --calib $C $A $M $w/${m}_gptq_ao.xfq
  run ${m}_gptq_v2     $bin gptq --bits 4 --group 32 --gptq-v2 --calib $C $A $M $w/${m}_gptq_v2.xfq
  run ${m}_gptq_head   $bin gptq --bits 4 --group -1 --sym --clip mse $Hd --calib $C $A $M $w/${m}_gptq_head.xfq
  run ${m}_smooth      $bin gptq --bits 4 --group 32 --smooth 0.5 --calib $C $A $M $w/${m}_smooth.xfq
  run ${m}_had         $bin gptq --bits 4 --group 32 --rotate hadamard --act-bits 8 --kv-bits 8 --calib $C $A $M $w/${m}_had.xfq
  run ${m}_had_v2      $bin gptq --bits 4 --group 32 --rotate hadamard --gptq-v2 --act-bits 6 --calib $C $A $M $w/${m}_had_v2.xfq
  run ${m}_klt         $bin gptq --bits 4 --group 32 --rotate klt --calib $C $A $M $w/${m}_klt.xfq
  run ${m}_learned     $bin gptq --bits 4 --group 32 --rotate learned --rotate-steps 4 --act-bits 8 --calib $C $A $M $w/${m}_learned.xfq
  run ${m}_actclip     $bin gptq --bits 4 --group 32 --act-bits 6 --act-clip search --kv-bits 4 --calib $C $A $M $w/${m}_actclip.xfq
  run ${m}_probbase    $bin gptq --bits 4 --group 32 --attn-prob-bits 4 --attn-prob-quant log2 --attn-prob-base search --calib $C $A $M $w/${m}_probbase.xfq
  run ${m}_gguf        $bin gptq --gguf-type Q4_K_M --calib $C $A $M $w/${m}_gguf.xfq
  run ${m}_rtn         $bin rtn --bits 4 --group 32 $M $w/${m}_rtn.xfq
  run ${m}_rtn_smooth  $bin rtn --bits 4 --group 32 --smooth 0.5 --act-bits 8 --calib $C $A $M $w/${m}_rtn_smooth.xfq
  run ${m}_gptq_v2_ao  $bin gptq --bits 4 --group 32 --gptq-v2 --act-order --static-groups --kv-bits 4 --attn-prob-bits 6 --calib $C $A $M $w/${m}_gptq_v2_ao.xfq
  run ${m}_stats       sh -c "$bin stats --json --calib $C $A $M > $w/${m}_stats.json"
done
i=0
for M in ${EXTRA:-}; do
  m=x$i C=$st_c A="--nsamples 4 --seqlen 32 --seed 3"; i=$((i + 1))
  run ${m}_gptq        $bin gptq --bits 4 --group 32 --calib $C $A $M $w/${m}_gptq.xfq
  run ${m}_gptq_ao_v2  $bin gptq --bits 3 --group 32 --act-order --gptq-v2 --act-bits 8 --kv-bits 8 --calib $C $A $M $w/${m}_gptq_ao_v2.xfq
  run ${m}_smooth      $bin gptq --bits 4 --group 32 --smooth 0.5 --calib $C $A $M $w/${m}_smooth.xfq
  run ${m}_stats       sh -c "$bin stats --json --calib $C $A $M > $w/${m}_stats.json"
  # post-LN OPT cannot be rotated (refused alike by both)
  grep -q '"do_layer_norm_before": false' "$M/config.json" && continue
  run ${m}_had         $bin gptq --bits 4 --group 32 --rotate hadamard --gptq-v2 --act-bits 8 --calib $C $A $M $w/${m}_had.xfq
  run ${m}_learned     $bin gptq --bits 4 --group 32 --rotate learned --rotate-steps 3 --calib $C $A $M $w/${m}_learned.xfq
done
exit $fail
