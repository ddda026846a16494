#!/usr/bin/env bash
# Whole-model GPTQ: wall time and peak RSS of `xfquant gptq`, against the
# memory bound the design promises: the fp16 model (mmapped) + one decoder
# block's weights in fp32 (x2 with --gptq-v2) + the calibration stream
# (nsamples x seqlen x (hidden + max(hidden, n_heads * head_dim)) fp32: the
# hidden states and each window's kept input, no wider than o's input, as
# the down input is recomputed from the MLP input, model/block_stream.h;
# x2 with --gptq-v2) + one Hessian (with --gptq-v2 also the cross-covariance C).
# Usage: bench/gptq_model.sh [BUILD_DIR] [MODEL] [CALIB] [SEQLEN] [extra gptq flags...]
set -euo pipefail
build=${1:-build}
model=${2:-../shared/models/novels-5m}
calib=${3:-../shared/data/novels/calib.txt}
seqlen=${4:-256}
shift $(( $# < 4 ? $# : 4 ))
out=$(mktemp --suffix=.xfq)
trap 'rm -f "$out" "$out.time"' EXIT
/usr/bin/time -v "$build/cli/xfquant" gptq --bits 4 --group 128 --calib "$calib" --seqlen "$seqlen" \
  "$@" "$model" "$out" 2> "$out.time" >/dev/null
base_kb=$( { /usr/bin/time -v "$build/cli/xfquant" info "$model" >/dev/null; } 2>&1 | grep 'Maximum resident' | awk '{print $NF}')
wall=$(grep 'Elapsed (wall clock)' "$out.time" | awk '{print $NF}')
rss_kb=$(grep 'Maximum resident set size' "$out.time" | awk '{print $NF}')
python3 - "$model" "$seqlen" "$rss_kb" "$wall" "$base_kb" "$@" <<'PY'
import json, os, sys
model, seqlen, rss_kb, wall, base_kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
flags = sys.argv[6:]
nsamples = int(flags[flags.index("--nsamples") + 1]) if "--nsamples" in flags else 128
streams = 2 if "--gptq-v2" in flags else 1
cfg = json.load(open(os.path.join(model, "config.json")))
h, inter = cfg["hidden_size"], cfg.get("intermediate_size", 4 * cfg["hidden_size"])
heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
hd = h // heads
block = streams * 4 * (h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * inter)
weights = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
acts = streams * 4 * nsamples * seqlen * (h + max(h, heads * hd))
hess = 8 * max(h, inter) ** 2 * (2 + streams - 1)  # H and its factor; GPTQv2: C
bound = weights + block + acts + hess
print(f"gptq wall {wall}  peak RSS {rss_kb/1024:.1f} MiB  bound {bound/2**20:.1f} MiB "
      f"(fp16 model {weights/2**20:.1f} + fp32 block {block/2**20:.1f} + activations {acts/2**20:.1f} "
      f"+ Hessians {hess/2**20:.1f}); process baseline ('info' on the model) {base_kb/1024:.1f} MiB; "
      f"peak RSS - baseline = {(rss_kb-base_kb)*1024/bound:.2f} x bound")
PY
