#!/bin/bash
# Whole-model `gptq` time against its bound, measured in the same run:
# one forward pass over the calibration windows (build/bench/bench_stream:
# the block stream with no hooks) + the solves gptq itself reports
# (--json "timing": Hessian accumulation, factorization + sweep), and its
# peak RSS against the memory plan it reports ("memory") plus the model's
# mapped bytes, and its peak anonymous RSS (sampled) against the plan.
#
# Usage: bench/gptq_bound.sh BUILD_DIR MODEL_DIR [OUT_DIR]
#   env: NSAMPLES (128), SEQLEN (512), CALIB (../shared/data/novels/calib.txt),
#        GPTQ_FLAGS ("--bits 4 --group 128"), EXTRA (more gptq flags, e.g.
#        "--max-blocks 2" or "--max-memory 6G"), THREADS (2)
set -euo pipefail
BUILD=${1:?usage: gptq_bound.sh BUILD_DIR MODEL_DIR [OUT_DIR]}
MODEL=${2:?usage: gptq_bound.sh BUILD_DIR MODEL_DIR [OUT_DIR]}
OUT=${3:-$(mktemp -d)}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-512}
CALIB=${CALIB:-$(dirname "$0")/../../shared/data/novels/calib.txt}
GPTQ_FLAGS=${GPTQ_FLAGS:---bits 4 --group 128}
EXTRA=${EXTRA:-}
THREADS=${THREADS:-2}
X=$BUILD/cli/xfquant
[ -f "$CALIB" ] || { echo "SKIP: calibration text $CALIB is absent"; exit 77; }
mkdir -p "$OUT"
MAXB=$(echo "$EXTRA" | sed -n 's/.*--max-blocks \([0-9]*\).*/\1/p')

echo "== one forward pass: bench_stream $NSAMPLES x $SEQLEN ${MAXB:+(first $MAXB blocks)}"
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
    "$BUILD/bench/bench_stream" "$MODEL" "$CALIB" "$NSAMPLES" "$SEQLEN" $MAXB | tee "$OUT/forward.json"

echo "== gptq $GPTQ_FLAGS --nsamples $NSAMPLES --seqlen $SEQLEN $EXTRA"
/usr/bin/time -v -o "$OUT/time.txt" "$X" gptq $GPTQ_FLAGS --calib "$CALIB" --nsamples "$NSAMPLES" \
    --seqlen "$SEQLEN" --threads "$THREADS" $EXTRA --json "$MODEL" "$OUT/out.xfq" >"$OUT/summary.json" &
TPID=$!
# the anonymous part of the resident set (what the plan bounds; the mapped
# model is file-backed), sampled every 0.2 s: the kernel keeps no peak of it
echo 0 >"$OUT/anon_kb"
sleep 0.2
GPID=$(pgrep -P "$TPID" -n || true)
while kill -0 "$TPID" 2>/dev/null; do
    a=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$GPID/status" 2>/dev/null || true)
    if [ -n "$a" ] && [ "$a" -gt "$(cat "$OUT/anon_kb")" ]; then echo "$a" >"$OUT/anon_kb"; fi
    sleep 0.2
done
wait "$TPID"
WALL=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$OUT/time.txt")
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/time.txt")
MODEL_BYTES=$(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1)
python3 - "$OUT/forward.json" "$OUT/summary.json" "$WALL" "$RSS_KB" "$MODEL_BYTES" "$(cat "$OUT/anon_kb")" <<'PY'
import json, sys
fw = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
wall = sys.argv[3]; rss = int(sys.argv[4]) * 1024; model = int(sys.argv[5])
anon = int(sys.argv[6]) * 1024
parts = [float(p) for p in wall.split(':')]
wall_s = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
t = s['timing']; m = s['memory']
bound = fw['seconds'] + t['hessian_s'] + t['solve_s']
G = 2 ** 30
print(f"forward pass (bench_stream): {fw['seconds']:.1f} s ({fw['tokens_per_s']:.0f} tokens/s)")
print(f"gptq: wall {wall_s:.1f} s, quantization {s['seconds']:.1f} s = stream forward "
      f"{t['forward_s']:.1f} + Hessians {t['hessian_s']:.1f} + solves {t['solve_s']:.1f} + "
      f"checkpoints {t['checkpoint_s']:.1f} + rest {s['seconds'] - t['forward_s'] - t['hessian_s'] - t['solve_s'] - t['checkpoint_s']:.1f}")
print(f"gptq quantization time / (one forward + Hessians + solves) = {s['seconds']:.1f} / {bound:.1f} = {s['seconds'] / bound:.3f}")
print(f"gptq wall time / (one forward + Hessians + solves) = {wall_s / bound:.3f}")
print(f"memory plan: {m['planned'] / G:.2f} GiB (states {m['states'] / G:.2f} GiB, "
      f"{'spilled' if m['spilled'] else 'in memory'}) of a {m['bound'] / G:.2f} GiB bound; "
      f"model files {model / G:.2f} GiB (mapped)")
print(f"peak RSS {rss / G:.2f} GiB; plan + model files {(m['planned'] + model) / G:.2f} GiB; "
      f"peak RSS / (plan + model) = {rss / (m['planned'] + model):.3f}")
print(f"peak anonymous RSS (sampled every 0.2 s) {anon / G:.2f} GiB; / plan = {anon / m['planned']:.3f}")
PY
