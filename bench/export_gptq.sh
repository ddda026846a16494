#!/usr/bin/env bash
# Export throughput: `xfquant export --to gptq` and `--to compressed-tensors`
# of an RTN 4-bit g128 sym .xfq of a random fp16 llama, in MB/s of .xfq
# bytes, against `cp` + `sync` of the same .xfq in the same run (the I/O
# baseline: an export also fsyncs what it writes). Each is run REPS times,
# interleaved, and the fastest run counts (the machine may be shared).
# Default shape: 1.26B parameters (hidden 2048, MLP 5632, 22 layers, vocab
# 32000, untied head; ~2.5 GB fp16 on disk, ~0.85 GB as the .xfq).
# Usage: bench/export_gptq.sh [BUILD_DIR] [HIDDEN INTERMEDIATE LAYERS [VOCAB]]
set -euo pipefail
build=${1:-build}
hidden=${2:-2048}; inter=${3:-5632}; layers=${4:-22}; vocab=${5:-32000}
reps=${REPS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/make_model" --hidden "$hidden" --intermediate "$inter" --layers "$layers" \
  --heads $((hidden / 64)) --kv-heads $((hidden / 64)) --vocab "$vocab" "$work/model" >/dev/null
"$build/cli/xfquant" rtn --bits 4 --group 128 --sym "$work/model" "$work/q.xfq" >/dev/null
rm -rf "$work/model"
bytes=$(stat -c %s "$work/q.xfq")
now() { date +%s.%N; }
times=""
for r in $(seq "$reps"); do
  t0=$(now); cp "$work/q.xfq" "$work/copy.xfq"; sync "$work/copy.xfq"; t1=$(now)
  rm -f "$work/copy.xfq"
  "$build/cli/xfquant" export --to gptq "$work/q.xfq" "$work/gptq" >/dev/null; t2=$(now)
  "$build/cli/xfquant" export --to compressed-tensors "$work/q.xfq" "$work/ct" >/dev/null; t3=$(now)
  gbytes=$(stat -c %s "$work/gptq/model.safetensors"); cbytes=$(stat -c %s "$work/ct/model.safetensors")
  rm -rf "$work/gptq" "$work/ct"
  times="$times $t0 $t1 $t2 $t3"
done
python3 - "$bytes" "$gbytes" "$cbytes" "$hidden" "$inter" "$layers" "$vocab" $times <<'PY'
import sys
b, gb, cb, h, i, l, v = map(int, sys.argv[1:8])
t = list(map(float, sys.argv[8:]))
runs = [t[k:k + 4] for k in range(0, len(t), 4)]
cp = min(r[1] - r[0] for r in runs)
g = min(r[2] - r[1] for r in runs)
c = min(r[3] - r[2] for r in runs)
params = l * (4 * h * h + 3 * h * i) + 2 * v * h + (2 * l + 1) * h
mb = b / 1e6
print(f"model: {params/1e9:.3f}B params (hidden {h}, MLP {i}, {l} layers, vocab {v}); "
      f".xfq {mb:.1f} MB; fastest of {len(runs)} runs")
print(f"cp+sync      {cp:7.2f} s  {mb/cp:8.1f} MB/s  (baseline)")
print(f"export gptq  {g:7.2f} s  {mb/g:8.1f} MB/s  = {cp/g*100:5.1f} % of cp  (wrote {gb/1e6:.1f} MB)")
print(f"export ct    {c:7.2f} s  {mb/c:8.1f} MB/s  = {cp/c*100:5.1f} % of cp  (wrote {cb/1e6:.1f} MB)")
PY
