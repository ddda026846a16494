#!/usr/bin/env bash
# Export throughput: `xfquant export --to gptq` and `--to compressed-tensors`
# of an RTN 4-bit g128 .xfq of a random fp16 llama, in MB/s of .xfq bytes,
# against `cp` + `sync` of the same .xfq in the same run (the I/O baseline;
# an export also fsyncs what it writes). Default shape: 1.1B parameters
# (hidden 2048, MLP 5632, 22 layers, vocab 32000; ~2.2 GB fp16 on disk).
# Usage: bench/export_gptq.sh [BUILD_DIR] [HIDDEN INTERMEDIATE LAYERS [VOCAB]]
set -euo pipefail
build=${1:-build}
hidden=${2:-2048}; inter=${3:-5632}; layers=${4:-22}; vocab=${5:-32000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/gen_random_model" "$work/model" "$hidden" "$inter" "$layers" "$vocab"
"$build/cli/xfquant" rtn --bits 4 --group 128 --sym "$work/model" "$work/q.xfq" >/dev/null
bytes=$(stat -c %s "$work/q.xfq")
now() { date +%s.%N; }
t0=$(now); cp "$work/q.xfq" "$work/copy.xfq"; sync "$work/copy.xfq"; t1=$(now)
rm -f "$work/copy.xfq"
"$build/cli/xfquant" export --to gptq "$work/q.xfq" "$work/gptq" >/dev/null; t2=$(now)
"$build/cli/xfquant" export --to compressed-tensors "$work/q.xfq" "$work/ct" >/dev/null; t3=$(now)
gbytes=$(stat -c %s "$work/gptq/model.safetensors"); cbytes=$(stat -c %s "$work/ct/model.safetensors")
python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$gbytes" "$cbytes" "$hidden" "$inter" "$layers" "$vocab" <<'PY'
import sys
b, t0, t1, t2, t3, gb, cb = int(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6]), int(sys.argv[7])
h, i, l, v = map(int, sys.argv[8:12])
params = l * (4 * h * h + 3 * h * i) + 2 * v * h + (2 * l + 1) * h
cp, g, c = t1 - t0, t2 - t1, t3 - t2
mb = b / 1e6
print(f"model: {params/1e9:.3f}B params (hidden {h}, MLP {i}, {l} layers, vocab {v}); .xfq {mb:.1f} MB")
print(f"cp+sync      {cp:7.2f} s  {mb/cp:8.1f} MB/s  (baseline)")
print(f"export gptq  {g:7.2f} s  {mb/g:8.1f} MB/s  = {cp/g*100:5.1f} % of cp  (wrote {gb/1e6:.1f} MB)")
print(f"export ct    {c:7.2f} s  {mb/c:8.1f} MB/s  = {cp/c*100:5.1f} % of cp  (wrote {cb/1e6:.1f} MB)")
PY
