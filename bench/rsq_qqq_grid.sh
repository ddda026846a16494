#!/usr/bin/env bash
# Issue 15's accuracy protocol for RSQ (--token-weight attn-concentration)
# and QQQ W4A8 (--smooth search) against their baselines: every recipe is
# quantized with seeds 0, 1, 2 (calibration windows and Hadamard signs),
# each output evaluated on both halves of the model's eval text; one table
# row per recipe: mean and spread (min..max) over the seeds per half.
# Nothing is tuned on the eval halves; the recipes see calibration text only.
#
# Usage: bench/rsq_qqq_grid.sh [BUILD_DIR]
#   GRID=rsq|rsqv2|qqq|all (default all)  MODELS="stories260K novels-5m"
#   TWS="uniform attn-concentration attn-concentration-mean" (the token weights of rsq/rsqv2)
#   each model's eval text is scored on its two halves (`ppl --text-half 1|2`)
set -euo pipefail
build=${1:-build}
X="$build/cli/xfquant"
shared=${SHARED:-../shared}
grid=${GRID:-all}
models=${MODELS:-"stories260K novels-5m"}
tws=${TWS:-"uniform attn-concentration attn-concentration-mean"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# model -> calibration text, eval halves, eval flags
setup() {
  case $1 in
    stories260K) calib=$shared/data/tinystories/calib.txt; evalt=$shared/data/tinystories/eval.txt
                 evalf="--seqlen 512 --max-windows 64" ;;
    novels-5m)   calib=$shared/data/novels/calib.txt; evalt=$shared/data/novels/eval.txt
                 evalf="--seqlen 256 --max-windows 128" ;;
    *) echo "unknown model $1" >&2; exit 2 ;;
  esac
}

ppl() { # FILE HALF -> ppl
  "$X" ppl "$1" --text "$evalt" --text-half "$2" --protocol gptq $evalf --threads 2 2>/dev/null |
    sed -n 's/.*: ppl \([0-9.]*\).*/\1/p'
}

stats() { # values... -> "mean (min..max)"
  printf '%s\n' "$@" | awk '{s+=$1; if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1}
    END {printf "%.4f (%.4f..%.4f)", s/NR, lo, hi}'
}

row() { # MODEL LABEL FLAGS...
  local model=$1 label=$2; shift 2
  local h1=() h2=()
  for seed in 0 1 2; do
    local out="$work/q.xfq"
    "$X" gptq "$shared/models/$model" "$out" --calib "$calib" --nsamples 64 --seqlen 256 \
      --seed "$seed" --progress none --threads 2 "$@" >/dev/null 2>"$work/log" ||
      { cat "$work/log" >&2; exit 1; }
    h1+=("$(ppl "$out" 1)"); h2+=("$(ppl "$out" 2)")
    rm -f "$out"
  done
  printf '| %s | %s | %s | %s | %s |\n' "$model" "$label" "$(stats "${h1[@]}")" \
    "$(stats "${h2[@]}")" "${h1[*]} / ${h2[*]}"
}

echo "| model | recipe | half 1 ppl mean (min..max) | half 2 ppl mean (min..max) | seeds 0,1,2: half 1 / half 2 |"
echo "|---|---|---|---|---|"
for model in $models; do
  setup "$model"
  if [[ $grid == all || $grid == rsq ]]; then
    for g in 32 -1; do
      for rot in none hadamard; do
        for tw in $tws; do
          row "$model" "W3 g$g rotate=$rot token-weight=$tw" --bits 3 --group "$g" \
            --rotate "$rot" --token-weight "$tw"
        done
      done
    done
  fi
  if [[ $grid == all || $grid == rsqv2 ]] && [[ $model == stories260K ]]; then
    for tw in $tws; do
      for rot in none hadamard; do
        row "$model" "W3 g32 gptq-v2 clip=mse rotate=$rot token-weight=$tw" --bits 3 --group 32 \
          --gptq-v2 --clip mse --rotate "$rot" --token-weight "$tw"
      done
    done
  fi
  if [[ $grid == all || $grid == qqq ]]; then
    for g in 128 -1; do
      for sm in none 0.5 search; do
        smf=(); [[ $sm == none ]] || smf=(--smooth "$sm")
        row "$model" "W4A8 g$g sym smooth=$sm" --bits 4 --group "$g" --sym --act-bits 8 \
          "${smf[@]}"
      done
    done
  fi
done
