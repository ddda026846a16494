#!/bin/sh
# RTN at memory speed (issue 14): wall time of `xfquant rtn --bits 4
# --group 128` (reading, quantizing and writing the .xfq) and of the same
# with --clip mse, against `cp` of the model's safetensors bytes to the
# filesystem of RTN_SPEED_TMP (then sync), measured in this run. Prints wall seconds,
# quantized weights/s, the ratios to cp and peak RSS (/usr/bin/time -v).
# RTN_SPEED_MSE=0: the plain recipe only; RTN_SPEED_REF=XFQUANT: the plain
# recipe with that (older) binary too.
# Usage: bench/rtn_speed.sh [BUILD (default build)] [MODEL (default /work/tmp/m1b)]
set -eu
BUILD=${1:-build}; MODEL=$(realpath "${2:-/work/tmp/m1b}")
X=$(realpath "$BUILD/cli/xfquant")
# the copy and the .xfq go to RTN_SPEED_TMP (default /tmp): put it on the
# model's filesystem for a like-for-like cp
W=$(mktemp -d "${RTN_SPEED_TMP:-/tmp}/rtn_speed.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
# warm the page cache once, so every timing below reads from memory alike
cat "$MODEL"/*.safetensors > /dev/null
t0=$(now); cp "$MODEL"/*.safetensors "$W/"; sync; t1=$(now)
t_cp=$(echo "$t1 - $t0" | bc -l)
rm -f "$W"/*.safetensors
quant() { # label, extra args
    lab=$1; shift
    t0=$(now)
    /usr/bin/time -v "${XB:-$X}" rtn --bits 4 --group 128 "$@" "$MODEL" "$W/out.xfq" \
        > "$W/$lab.log" 2> "$W/$lab.time"
    sync; t1=$(now)
    echo "$t1 - $t0" | bc -l > "$W/$lab.wall"
    grep -o '(\([0-9]*\) parameters)' "$W/$lab.log" | tr -dc 0-9 > "$W/$lab.n" || true
    [ -s "$W/$lab.n" ] || grep -o '[0-9]* parameters' "$W/$lab.time" | tr -dc 0-9 > "$W/$lab.n"
    sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/$lab.time" > "$W/$lab.rss"
    rm -f "$W/out.xfq"
}
quant rtn
[ -z "${RTN_SPEED_REF:-}" ] || XB=$(realpath "$RTN_SPEED_REF") quant ref
[ "${RTN_SPEED_MSE:-1}" = 0 ] || quant mse --clip mse
n=$(cat "$W/rtn.n")
printf 'model %s: %s bytes of safetensors, %s quantized weights\n' "$MODEL" \
    "$(cat "$MODEL"/*.safetensors | wc -c)" "$n"
printf '%-28s %8.2f s\n' "cp + sync" "$t_cp"
for lab in ref rtn mse; do
    [ -s "$W/$lab.wall" ] || continue
    w=$(cat "$W/$lab.wall")
    printf '%-28s %8.2f s  %7.1f M weights/s  %5.2fx cp  peak RSS %s MB\n' \
        "$([ $lab = ref ] && echo 'ref ' || true)rtn --bits 4 --group 128$([ $lab = mse ] && echo ' --clip mse' || true)" "$w" \
        "$(echo "$n / $w / 1000000" | bc -l)" "$(echo "$w / $t_cp" | bc -l)" \
        "$(( $(cat "$W/$lab.rss") / 1024 ))"
done
[ ! -s "$W/mse.wall" ] || printf 'clip mse / plain: %.2fx\n' "$(echo "$(cat "$W/mse.wall") / $(cat "$W/rtn.wall")" | bc -l)"
