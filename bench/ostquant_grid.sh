#!/bin/bash
# The issue-15 accuracy grid of OstQuant (docs/accuracy-methods.md "OstQuant"),
# per the issue-15 protocol: GPTQ W4A4KV4 with --rotate hadamard / learned
# (SpinQuant e2e) / ost (--rotate learned --rotate-scales --rotate-loss
# kl-top), seeds 0 1 2, both halves of the eval text, ppl mean and spread;
# fp16 for reference. With GRID_PARTS=w3: the W3 group-32 weight-only case
# (gptq --bits 3 --group 32 --gptq-v2 --clip mse, with and without the
# OstQuant transform, learned with --rotate-weights rtn). With GRID_PARTS=timing: the time of one learning step
# against GPTQ's solve time in the same run (ratios; see below).
#
#   bench/ostquant_grid.sh [stories|novels] [OUTDIR] [extra flags for ost...]
#
# Env: XFQ (binary, default build/cli/xfquant), SEEDS (default "0 1 2"),
# METHODS (default "hadamard learned ost"; also learned_kltop: SpinQuant
# with the KL-Top loss, no scales; ost_ce: scales with the ce loss),
# APPEND=1 (add to OUTDIR/results.tsv), TABLE_ONLY=1 (print the table of
# OUTDIR/results.tsv), GRID_PARTS (w4a4 (default), w3 or timing).
set -euo pipefail
model=${1:-stories}
out=${2:-/tmp/ostquant_grid}
shift $(( $# > 2 ? 2 : $# )) || true
extra=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
XFQ=${XFQ:-$here/build/cli/xfquant}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-hadamard learned ost}
PART=${GRID_PARTS:-w4a4}
shared=$here/../shared
case $model in
stories) M=$shared/models/stories260K; calib=$shared/data/tinystories/calib.txt
         evalt=$shared/data/tinystories/eval.txt; eval=(--seqlen 512 --max-windows 64) ;;
novels)  M=$shared/models/novels-5m; calib=$shared/data/novels/calib.txt
         evalt=$shared/data/novels/eval.txt; eval=(--seqlen 256 --max-windows 128) ;;
*) echo "usage: $0 stories|novels [OUTDIR] [flags...]" >&2; exit 2 ;;
esac
mkdir -p "$out"
cal=(--calib "$calib" --nsamples 64 --seqlen 256 --progress none)
case $PART in
w4a4) q=("${cal[@]}" --bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95)
      res=$out/results.tsv; title="GPTQ W4A4KV4" ;;
w3)   q=("${cal[@]}" --bits 3 --group 32 --gptq-v2 --clip mse)
      res=$out/results_w3.tsv; title="GPTQ W3 group 32 (v2, mse clip), weight-only"
      METHODS=${W3_METHODS:-none ost} ;;
timing)
  # one learning step against the GPTQ solve of the same run: steps 0 and
  # N differ only by N learner steps; solve_s from gptq --json
  q=("${cal[@]}" --bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95
     --seed 0 --json)
  N=${TIMING_STEPS:-10}
  run() { local t0 t1; t0=$(date +%s.%N)
          "$XFQ" gptq "$M" "$out/timing.xfq" "${q[@]}" "$@" > "$out/timing.json" 2>/dev/null
          t1=$(date +%s.%N); echo "$t0 $t1"; }
  for meth in learned ost; do
    case $meth in
    learned) f=(--rotate learned) ;;
    ost) f=(--rotate learned --rotate-scales --rotate-loss kl-top) ;;
    esac
    read -r a0 a1 < <(run "${f[@]}" --rotate-steps 0)
    read -r b0 b1 < <(run "${f[@]}" --rotate-steps "$N")
    solve=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timing"]["solve_s"])' "$out/timing.json")
    python3 - "$meth" "$a0" "$a1" "$b0" "$b1" "$N" "$solve" <<'PY'
import sys
m, a0, a1, b0, b1, n, solve = sys.argv[1], *map(float, sys.argv[2:])
step = ((b1 - b0) - (a1 - a0)) / n
print(f"{m}: one learning step / GPTQ solve (whole model) = {step / solve:.2f}")
PY
  done
  rm -f "$out/timing.xfq" "$out/timing.json"
  exit 0 ;;
*) echo "GRID_PARTS: w4a4, w3 or timing" >&2; exit 2 ;;
esac
if [ "${TABLE_ONLY:-0}" != 1 ]; then
[ "${APPEND:-0}" = 1 ] || : > "$res"
ppl() { "$XFQ" ppl "$1" --text "$evalt" --text-half "$2" --protocol gptq "${eval[@]}" --json \
        --progress none | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }
if ! grep -q '^fp16' "$res" 2>/dev/null; then
  for h in 1 2; do printf 'fp16\t-\t%s\t%s\n' "$h" "$(ppl "$M" $h)" >> "$res"; done
fi
for meth in $METHODS; do
  case $meth in
  none|hadamard) flags=(--rotate "$meth") ;;
  learned) flags=(--rotate learned) ;;
  learned_kltop) flags=(--rotate learned --rotate-loss kl-top) ;;
  ost) flags=(--rotate learned --rotate-scales --rotate-loss kl-top "${extra[@]}")
       # weight-only: nothing else is quantized, so the objective needs the
       # weights fake-quantized (RTN on the recipe's grid), not gptq's default fp
       [ "$PART" = w3 ] && flags+=(--rotate-weights rtn) ;;
  ost_ce) flags=(--rotate learned --rotate-scales "${extra[@]}") ;;
  *) echo "unknown method $meth" >&2; exit 2 ;;
  esac
  for s in $SEEDS; do
    f=$out/$model-$PART-$meth-$s.xfq
    "$XFQ" gptq "$M" "$f" "${q[@]}" --seed "$s" "${flags[@]}" -v 2> "$out/$model-$PART-$meth-$s.log" > /dev/null
    for h in 1 2; do printf '%s\t%s\t%s\t%s\n' "$meth" "$s" "$h" "$(ppl "$f" $h)" >> "$res"; done
    rm -f "$f"
  done
done
fi
python3 - "$res" "$model" "$title" <<'PY'
import sys, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for m, s, h, p in rows:
    by.setdefault((m, h), []).append(float(p))
meths = list(dict.fromkeys(m for m, _, _, _ in rows))
print(f"#### {sys.argv[2]}: {sys.argv[3]}, ppl (mean over seeds, min..max)\n")
print("| method | half 1 | half 2 |")
print("|---|---|---|")
for m in meths:
    cells = []
    for h in ("1", "2"):
        v = by.get((m, h), [])
        if not v:
            cells.append("-")
            continue
        cells.append(f"{st.mean(v):.3f}" + (f" ({min(v):.3f}..{max(v):.3f}, n={len(v)})" if len(v) > 1 else ""))
    print(f"| {m} | {cells[0]} | {cells[1]} |")
for a, b in (("learned", "ost"), ("hadamard", "ost"), ("none", "ost")):
    if all((a, h) in by and (b, h) in by for h in ("1", "2")):
        d = [st.mean(by[(b, h)]) - st.mean(by[(a, h)]) for h in ("1", "2")]
        win = all(x < 0 for x in d)
        print(f"\n{b} - {a}: half 1 {d[0]:+.3f}, half 2 {d[1]:+.3f} ({'wins on both halves' if win else 'no win'})", end="")
print()
PY
