#!/bin/sh
# Issue 15 items 5-7 under the accuracy protocol (docs/accuracy-methods.md: both halves of each eval text, `ppl --text-half`):
# QRazor W4A4KV4, LogQuant KV2 against uniform KV2 and the recent window at
# equal memory, RepQuant's re-parameterised qkv/mlp quantizers, on both
# models and both halves of each eval text; seeds 0, 1, 2 where a seed
# changes the file (calibration windows, Hadamard signs), one run where it
# does not (RTN without calibration text). Prints one table row per case:
# the perplexity of each half, mean over the seeds and [min, max].
#
# Results are appended to $GRID_OUT/results.tsv (model case seed half ppl)
# and a case already there is not run again, so an interrupted grid
# resumes. GRID_PARTS picks parts (default "qrazor logquant repquant");
# GRID_MODELS picks models (default "stories novels").
# Usage: bench/sim_methods_grid.sh [BUILD (default build)]
set -eu
BUILD=${1:-build}
X=$(realpath "$BUILD/cli/xfquant")
SH=$(realpath "$(dirname "$0")/../../shared")
[ -d "$SH/models" ] || { echo "SKIP: ../shared is absent" >&2; exit 77; }
OUT=${GRID_OUT:-/tmp/sim_methods_grid}
PARTS=${GRID_PARTS:-qrazor logquant repquant}
MODELS=${GRID_MODELS:-stories novels}
mkdir -p "$OUT"
RES="$OUT/results.tsv"
touch "$RES"

setup_model() {
    case $1 in
    stories) MODEL=$SH/models/stories260K; CALIB=$SH/data/tinystories/calib.txt
        TEXT=$SH/data/tinystories/eval.txt; EVAL="--seqlen 512 --max-windows 64"; KW=16 ;;
    novels) MODEL=$SH/models/novels-5m; CALIB=$SH/data/novels/calib.txt
        TEXT=$SH/data/novels/eval.txt; EVAL="--seqlen 256 --max-windows 128"; KW=8 ;;
    esac
}

# run CASE SEED METHOD ARGS...: quantize once, evaluate both halves
run() {
    lab=$1; seed=$2; shift 2
    if grep -q "^$M	$lab	$seed	2	" "$RES"; then return 0; fi
    f="$OUT/$M-$lab-$seed.xfq"
    "$X" "$@" "$MODEL" "$f" > "$OUT/$M-$lab-$seed.log" 2>&1 ||
        { echo "FAILED: $M $lab $seed: $(tail -1 "$OUT/$M-$lab-$seed.log")" >&2; return 0; }
    for h in 1 2; do
        p=$("$X" ppl "$f" --text "$TEXT" --text-half $h --protocol gptq $EVAL 2>/dev/null |
            sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p')
        printf '%s\t%s\t%s\t%s\t%s\n' "$M" "$lab" "$seed" "$h" "$p" >> "$RES"
    done
    rm -f "$f"
}

CAL() { echo "--calib $CALIB --nsamples 64 --seqlen 256 --seed $1"; }
W4A4KV4="--bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95"
RAZOR="--bits 4 --group -1 --weight-grid razor --act-bits 4 --act-quant razor --kv-bits 4 --kv-quant razor --razor-group 16"

for M in $MODELS; do
    setup_model "$M"
    for part in $PARTS; do
        case $part in
        qrazor)
            run qrazor-rtn - rtn $RAZOR
            # equal payload: sign + 3 kept bits (4 bits a value, plus the
            # group's shift) against the plain 4-bit grids
            run qrazor3-rtn - rtn --bits 3 --group -1 --weight-grid razor --act-bits 3 \
                --act-quant razor --kv-bits 3 --kv-quant razor --razor-group 16
            run rtn-w4a4kv4 - rtn $W4A4KV4
            for s in 0 1 2; do
                run qrazor-rtn-hadamard "$s" rtn $RAZOR --rotate hadamard --seed "$s"
                run rtn-w4a4kv4-hadamard "$s" rtn $W4A4KV4 --rotate hadamard --seed "$s"
                run gptq-w4a4kv4 "$s" gptq $W4A4KV4 $(CAL "$s")
                run gptq-w4a4kv4-hadamard "$s" gptq $W4A4KV4 --rotate hadamard $(CAL "$s")
                # QRazor with GPTQ on the razor grid (calibrated on the
                # razored activations / KV), with and without the rotation
                run qrazor-gptq "$s" gptq $RAZOR $(CAL "$s")
                run qrazor-gptq-hadamard "$s" gptq $RAZOR --rotate hadamard $(CAL "$s")
                # GPTQ int4 weights calibrated on razored activations / KV
                run gptq-w4-razor-a4kv4 "$s" gptq --bits 4 --group -1 --sym --act-bits 4 \
                    --act-quant razor --kv-bits 4 --kv-quant razor --razor-group 16 $(CAL "$s")
            done ;;
        logquant)
            # weights: RTN W8 per channel (near fp16); KV2 asymmetric per head
            KV2="--bits 8 --group -1 --kv-bits 2"
            run w8-fp-kv - rtn --bits 8 --group -1
            run kv2-uniform - rtn $KV2
            # W = KW is the main setting (at most 3W = 48 of 512 / 24 of 256
            # tokens in full precision, under 10%); half and twice it as well
            for w in "$KW" $((KW / 2)) $((KW * 2)); do
                run kv2-recent-w$w - rtn $KV2 --kv-keep recent --kv-keep-window "$w"
                run kv2-logquant-w$w - rtn $KV2 --kv-keep log --kv-keep-window "$w"
            done ;;
        repquant)
            # weights RTN W8 per channel; A4 on qkv/mlp inputs only (the
            # post-norm inputs RepQuant re-parameterises)
            for b in 4 6; do
                A="--bits 8 --group -1 --act-bits $b --act-inputs qkv,mlp --act-asym"
                run a$b-per-token - rtn $A
                for s in 0 1 2; do
                    run a$b-repquant "$s" rtn $A --repquant $(CAL "$s")
                done
            done ;;
        timing)
            # the cost of the kept-token attention: ppl wall time of KV2 with
            # LogQuant / the recent window against plain KV2, same run,
            # interleaved 3 times (other agents share the 2 cores: ratios only)
            KV2="--bits 8 --group -1 --kv-bits 2"
            for k in none log recent; do
                "$X" rtn $KV2 --kv-keep $k --kv-keep-window "$KW" "$MODEL" "$OUT/t-$k.xfq" > /dev/null 2>&1
            done
            for i in 1 2 3; do
                for k in none log recent; do
                    t0=$(date +%s.%N)
                    "$X" ppl "$OUT/t-$k.xfq" --text "$TEXT" --text-half 1 --protocol gptq $EVAL > /dev/null 2>&1
                    t1=$(date +%s.%N)
                    echo "$M $k $(echo "$t1 - $t0" | bc -l)" >> "$OUT/timing.txt"
                done
            done
            awk -v m="$M" '$1 == m { s[$2] += $3 } END { printf "%s ppl time vs plain KV2: log %.2fx, recent %.2fx\n", m, s["log"] / s["none"], s["recent"] / s["none"] }' "$OUT/timing.txt"
            rm -f "$OUT"/t-*.xfq ;;
        esac
    done
done

# the table: mean over seeds and [min, max] per half
awk -F'\t' '
{ k = $1 "\t" $2; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
  key = k "\t" $4; s[key] += $5; c[key]++
  if (!(key in lo) || $5 < lo[key]) lo[key] = $5
  if (!(key in hi) || $5 > hi[key]) hi[key] = $5 }
END {
  printf "%-8s %-26s %-30s %-30s\n", "model", "case", "half 1 mean [min, max] (n)", "half 2 mean [min, max] (n)"
  for (i = 1; i <= n; i++) {
    k = order[i]; split(k, a, "\t"); line = sprintf("%-8s %-26s", a[1], a[2])
    for (h = 1; h <= 2; h++) { key = k "\t" h
      if (c[key]) line = line sprintf(" %8.3f [%7.3f, %7.3f] (%d)  ", s[key] / c[key], lo[key], hi[key], c[key])
      else line = line sprintf(" %-30s", "-") }
    print line }
}' "$RES"
