#!/usr/bin/env bash
# Rotations compared at W4A4KV4 (RTN W4 per-channel sym, A4 per-token sym
# clip 0.9, KV4 asym clip 0.95) over several seeds: none, QuaRot's
# randomized Hadamard, KLT (+ Hadamard) and the learned rotation (Cayley
# SGD from the same Hadamard). Random Hadamards vary from seed to seed, so
# the comparison is per seed and in the mean. Prints one line per run and
# a summary; the ratios (learned / hadamard) are the result, not the
# absolute perplexities (first WINDOWS eval windows only).
# Usage: bench/rotations.sh [BUILD_DIR] [stories|novels] [SEEDS] [WINDOWS] [STEPS]
set -euo pipefail
build=${1:-build}
which=${2:-stories}
seeds=${3:-5}
windows=${4:-32}
steps=${5:-100}
if [ "$which" = stories ]; then
  model=../shared/models/stories260K calib=../shared/data/tinystories/calib.txt
  text=../shared/data/tinystories/eval.txt seqlen=512
else
  model=../shared/models/novels-5m calib=../shared/data/novels/calib.txt
  text=../shared/data/novels/eval.txt seqlen=256
fi
x="$build/cli/xfquant"
out=$(mktemp --suffix=.xfq)
trap 'rm -f "$out"' EXIT
scheme="--bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95"
cal="--calib $calib --nsamples 32 --seqlen 256"
ppl() { "$x" ppl "$out" --text "$text" --seqlen "$seqlen" --max-windows "$windows" --json |
        python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])'; }
run() { local t0=$(date +%s.%N); "$x" rtn $scheme "$@" "$model" "$out" >/dev/null 2>&1
        local t1=$(date +%s.%N); echo "$(ppl) $(python3 -c "print(round($t1 - $t0, 1))")"; }
read -r p_none t_none < <(run)
echo "$which none: ppl $p_none (${t_none}s)"
results=()
for s in $(seq 0 $((seeds - 1))); do
  read -r ph th < <(run --rotate hadamard --seed "$s")
  read -r pk tk < <(run --rotate klt --klt-hadamard --seed "$s" $cal)
  read -r pl tl < <(run --rotate learned --seed "$s" --rotate-steps "$steps" $cal)
  echo "$which seed $s: hadamard $ph (${th}s)  klt+hadamard $pk (${tk}s)  learned $pl (${tl}s)"
  results+=("$ph $pk $pl")
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics as st
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
h, k, l = zip(*rows)
print("mean ppl: hadamard %.4f (sd %.4f)  klt+hadamard %.4f  learned %.4f (sd %.4f)" %
      (st.mean(h), st.pstdev(h), st.mean(k), st.mean(l), st.pstdev(l)))
print("learned beats hadamard in %d of %d seeds; mean learned/hadamard = %.4f" %
      (sum(b < a for a, b in zip(h, l)), len(h), st.mean(b / a for a, b in zip(h, l))))'
