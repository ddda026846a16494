#!/bin/bash
# The issue-15 accuracy grid of SpinQuant (docs/accuracy-methods.md), per
# the issue-15 protocol (docs/accuracy-methods.md): GPTQ W4A4KV4 with --rotate none / hadamard /
# learned (e2e, and local), seeds 0 1 2, both halves of the eval text,
# ppl mean and spread; fp16 for reference.
#
#   bench/spinquant_grid.sh [stories|novels] [OUTDIR] [extra rtn/gptq flags for learned...]
#
# Env: XFQ (binary, default build/cli/xfquant), SEEDS (default "0 1 2"), METHODS (default
# "none hadamard learned local"; also hadamard_qk, learned_qk: with
# --rotate-qk), APPEND=1 (add to OUTDIR/results.tsv instead of starting
# it; fp16 is measured only when it is not there), TABLE_ONLY=1 (print the
# table of OUTDIR/results.tsv). Prints a Markdown table; each run's
# numbers also go to OUTDIR/results.tsv.
set -euo pipefail
model=${1:-stories}
out=${2:-/tmp/spinquant_grid}
shift $(( $# > 2 ? 2 : $# )) || true
extra=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
XFQ=${XFQ:-$here/build/cli/xfquant}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-none hadamard learned local}
shared=$here/../shared
case $model in
stories) M=$shared/models/stories260K; calib=$shared/data/tinystories/calib.txt
         evalt=$shared/data/tinystories/eval.txt; eval=(--seqlen 512 --max-windows 64) ;;
novels)  M=$shared/models/novels-5m; calib=$shared/data/novels/calib.txt
         evalt=$shared/data/novels/eval.txt; eval=(--seqlen 256 --max-windows 128) ;;
*) echo "usage: $0 stories|novels [OUTDIR] [flags...]" >&2; exit 2 ;;
esac
mkdir -p "$out"
res=$out/results.tsv
if [ "${TABLE_ONLY:-0}" != 1 ]; then
[ "${APPEND:-0}" = 1 ] || : > "$res"
q=(--calib "$calib" --nsamples 64 --seqlen 256 --bits 4 --group -1 --sym --act-bits 4
   --act-clip 0.9 --kv-bits 4 --kv-clip 0.95 --progress none)
ppl() { "$XFQ" ppl "$1" --text "$evalt" --text-half "$2" --protocol gptq "${eval[@]}" --json \
        --progress none | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }
if ! grep -q '^fp16' "$res" 2>/dev/null; then
  for h in 1 2; do printf 'fp16\t-\t%s\t%s\n' "$h" "$(ppl "$M" $h)" >> "$res"; done
fi
for meth in $METHODS; do
  case $meth in
  none|hadamard) flags=(--rotate "$meth") ;;
  learned) flags=(--rotate learned --rotate-objective e2e "${extra[@]}") ;;
  local) flags=(--rotate learned --rotate-objective local) ;;
  hadamard_qk) flags=(--rotate hadamard --rotate-qk) ;;
  learned_qk) flags=(--rotate learned --rotate-objective e2e --rotate-qk "${extra[@]}") ;;
  *) echo "unknown method $meth" >&2; exit 2 ;;
  esac
  for s in $SEEDS; do
    f=$out/$model-$meth-$s.xfq
    "$XFQ" gptq "$M" "$f" "${q[@]}" --seed "$s" "${flags[@]}" -v 2> "$out/$model-$meth-$s.log" > /dev/null
    for h in 1 2; do printf '%s\t%s\t%s\t%s\n' "$meth" "$s" "$h" "$(ppl "$f" $h)" >> "$res"; done
    rm -f "$f"
  done
done
fi
python3 - "$res" "$model" <<'PY'
import sys, statistics as st
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for m, s, h, p in rows:
    by.setdefault((m, h), []).append(float(p))
meths = list(dict.fromkeys(m for m, _, _, _ in rows))
print(f"### {sys.argv[2]}: GPTQ W4A4KV4, ppl (mean over seeds, min..max)\n")
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
fp = {h: st.mean(by[("fp16", h)]) for h in ("1", "2")}
for a, b in (("hadamard", "learned"), ("hadamard_qk", "learned_qk"), ("hadamard", "local")):
    if all((a, h) in by and (b, h) in by for h in ("1", "2")):
        for h in ("1", "2"):
            had, lea = st.mean(by[(a, h)]), st.mean(by[(b, h)])
            print(f"\nhalf {h}: {b} closes {100 * (had - lea) / (had - fp[h]):.1f}% of {a}'s gap to fp16", end="")
        print()
PY
