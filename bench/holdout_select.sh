#!/bin/bash
# Chooses a recipe on calibration text only (docs/accuracy-methods.md, "Best
# W3 group 32" and "OstQuant: choosing the loss"): stories260K's calib.txt is
# cut into a fit part (its first 3,166 lines, 80 % of the bytes, ending at a
# paragraph) that the recipe calibrates on and a validation part (the rest)
# whose perplexity ranks the candidates. The eval text is never read.
#
#   bench/holdout_select.sh w3|ost [OUTDIR]
#
# w3:  GPTQ W3 group 32 candidates (128 windows of 512 tokens, seed 0 unless
#      SEEDS says otherwise); ost: GPTQ W4A4KV4 (the protocol's settings, 64
#      windows of 256) with Hadamard, SpinQuant e2e and OstQuant variants.
# Env: XFQ (binary, default build/cli/xfquant), SEEDS (default "0"; the
# docs' tables used "0 1 2" for the finalists), THREADS (default 1).
# Prints one line per candidate and seed: name, seed, validation ppl, flags.
set -euo pipefail
part=${1:?w3 or ost}
out=${2:-/tmp/holdout_select}
here=$(cd "$(dirname "$0")/.." && pwd)
XFQ=${XFQ:-$here/build/cli/xfquant}
SEEDS=${SEEDS:-0}
THREADS=${THREADS:-1}
shared=$here/../shared
M=$shared/models/stories260K
calib=$shared/data/tinystories/calib.txt
[ -f "$calib" ] || { echo "SKIP: $calib is absent"; exit 77; }
mkdir -p "$out"
head -n 3166 "$calib" > "$out/cal-fit.txt"
tail -n +3167 "$calib" > "$out/cal-val.txt"

run() { # NAME SEED FLAGS...
    local name=$1 seed=$2; shift 2
    local f="$out/$part-$name-s$seed.xfq"
    "$XFQ" gptq --calib "$out/cal-fit.txt" --seed "$seed" --threads "$THREADS" "$@" "$M" "$f" \
        > "$f.log" 2>&1 || { echo "$name s$seed FAILED: $(tail -1 "$f.log")"; return 1; }
    local v
    v=$("$XFQ" ppl "$f" --text "$out/cal-val.txt" --seqlen 512 --threads "$THREADS" --json |
        python3 -c "import json,sys; print('%.4f' % json.load(sys.stdin)['ppl'])")
    echo "$name s$seed val $v :: $*"
}

case $part in
w3)
    W3=(--bits 3 --group 32 --nsamples 128 --seqlen 512)
    B=(--gptq-v2 --clip mse --act-order)
    for s in $SEEDS; do
        run gptq "$s" "${W3[@]}"
        run v2 "$s" "${W3[@]}" --gptq-v2
        run v2mse "$s" "${W3[@]}" --gptq-v2 --clip mse
        run v2mse-ao "$s" "${W3[@]}" "${B[@]}"
        run v2mse-ao-sg "$s" "${W3[@]}" "${B[@]}" --static-groups
        run v2mse-ao-n256 "$s" "${W3[@]}" "${B[@]}" --nsamples 256
        for d in 0.001 0.03 0.1 0.2 0.5; do
            run "v2mse-ao-damp$d" "$s" "${W3[@]}" "${B[@]}" --damp "$d"
        done
        run v2mse-ao-damp0.1-block64 "$s" "${W3[@]}" "${B[@]}" --damp 0.1 --block 64
    done ;;
ost)
    A=(--bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95
       --nsamples 64 --seqlen 256)
    O=(--rotate learned --rotate-scales)
    for s in $SEEDS; do
        run hadamard "$s" "${A[@]}" --rotate hadamard
        run learned "$s" "${A[@]}" --rotate learned
        run ost-kltop32 "$s" "${A[@]}" "${O[@]}" --rotate-loss kl-top
        run ost-kltop8 "$s" "${A[@]}" "${O[@]}" --rotate-loss kl-top --kl-top-k 8
        run ost-kltop128 "$s" "${A[@]}" "${O[@]}" --rotate-loss kl-top --kl-top-k 128
        run ost-kltop32-rtn "$s" "${A[@]}" "${O[@]}" --rotate-loss kl-top --rotate-weights rtn
        run ost-kl "$s" "${A[@]}" "${O[@]}" --rotate-loss kl
        run ost-ce "$s" "${A[@]}" "${O[@]}" --rotate-loss ce
    done ;;
*) echo "usage: $0 w3|ost [OUTDIR]" >&2; exit 2 ;;
esac
