#!/usr/bin/env bash
# The forward pass against llama.cpp's (issue 14): tokens/s of
# `llama-perplexity` and of `xfquant ppl --protocol llamacpp` on the same
# F32 GGUF (written by `xfquant export --to gguf --type f32` from MODEL, so
# both evaluate the same weights, the same file), the same text, context and
# chunk count, THREADS threads each, runs alternated REPS times in this run.
#
# Timing: the wall time of each whole command (load, tokenization and
# evaluation; date around it), for both sides alike; tokens/s = CHUNKS x CTX
# / wall. (llama-perplexity's own "prompt eval time" is not usable: with
# several sequences per batch it reports about a millisecond.)
#
# Text: ../shared/data/novels/eval.txt. xfquant reads it as it is (CRLF
# turned into LF like Python's text mode); llama.cpp reads `-f` as raw bytes,
# so it gets a copy with CRLF turned into LF (BOM kept) - the text xfquant
# reads (../shared/docs/llamacpp-side-by-side.md). Both print their PPL; the
# script prints them too so that a mismatch (different tokens) shows.
# OMP_WAIT_POLICY=passive for both: on a shared machine spinning OpenMP
# workers slow llama.cpp down many times (same document); xfquant's results
# are the same either way.
#
#   bench/forward_vs_llamacpp.sh BUILD MODEL [CTX] [CHUNKS] [REPS]
#   defaults: build ../shared/models/novels-5m 256 all(0) 3; THREADS=2
#   the 1B model: bench/forward_vs_llamacpp.sh build /work/tmp/m1b 512 4 3
# XFQUANT_REF=OLD_BIN: an older xfquant timed too, alternated with the two
# (before/after a change, in the same run).
# Prints one line per run, then per tool the median, min and max tokens/s,
# and the ratio xfquant / llama.cpp of the medians (and of the runs paired
# in order: min and max). Exit 77 (SKIP) without ../shared or llama.cpp.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-build}")
model=${2:-$root/../shared/models/novels-5m}
ctx=${3:-256} chunks=${4:-0} reps=${5:-3}
threads=${THREADS:-2}
text=$root/../shared/data/novels/eval.txt
xfq=${XFQUANT_BIN:-$build/cli/xfquant}
if [ ! -d "$root/../shared" ] || [ ! -f "$text" ]; then
    echo "SKIP: ../shared (models, data/novels/eval.txt) is absent"; exit 77
fi
if [ ! -d "$model" ]; then
    echo "SKIP: model $model is absent"; exit 77
fi
bin=${XF_LLAMACPP_BIN:-$("$root/../shared/tools/llamacpp-build.sh" 2>/dev/null || true)}
if [ -z "$bin" ] || [ ! -x "$bin/llama-perplexity" ]; then
    echo "SKIP: llama.cpp tools not available (../shared/tools/llamacpp-build.sh)"; exit 77
fi
[ -x "$xfq" ] || { echo "forward_vs_llamacpp: $xfq not built" >&2; exit 1; }
export OMP_WAIT_POLICY=passive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

"$xfq" export --to gguf --type f32 "$model" "$work/m.gguf" >/dev/null
tr -d '\r' <"$text" >"$work/text_lf.txt"
# the chunk count both tools run: CHUNKS, or every chunk xfquant plans
if [ "$chunks" = 0 ]; then
    chunks=$("$xfq" ppl --json --protocol llamacpp --ctx "$ctx" --threads "$threads" \
        --max-windows 1 --text "$text" "$work/m.gguf" 2>/dev/null |
        sed -n 's/.*"ntokens": \([0-9]*\).*/\1/p')
    chunks=$((chunks / ctx))
fi
ntok=$((chunks * ctx))

run_llama() { # out-file
    local i
    for i in 1 2; do # it sometimes stops one chunk early (side-by-side notes): once more
        "$bin/llama-perplexity" -m "$work/m.gguf" -f "$work/text_lf.txt" -c "$ctx" \
            -t "$threads" --chunks "$chunks" >"$1" 2>&1 || true
        grep -q "Final estimate" "$1" && return 0
    done
    echo "forward_vs_llamacpp: llama-perplexity failed, see:" >&2; tail -5 "$1" >&2; exit 1
}
run_xfq() { # out-file [binary]
    "${2:-$xfq}" ppl --protocol llamacpp --ctx "$ctx" --threads "$threads" --max-windows "$chunks" \
        --text "$text" "$work/m.gguf" >"$1" 2>/dev/null
}

printf 'model %s, ctx %d, %d chunks (%d tokens), %d threads, %d runs each, alternated\n' \
    "$(basename "$model")" "$ctx" "$chunks" "$ntok" "$threads" "$reps"
: >"$work/ll.tps"; : >"$work/xf.tps"; : >"$work/ref.tps"
for r in $(seq 1 "$reps"); do
    t0=$(now); run_llama "$work/ll.log"; t1=$(now)
    run_xfq "$work/xf.log"; t2=$(now)
    ll=$(echo "$ntok / ($t1 - $t0)" | bc -l); xf=$(echo "$ntok / ($t2 - $t1)" | bc -l)
    echo "$ll" >>"$work/ll.tps"; echo "$xf" >>"$work/xf.tps"
    printf 'run %d: llama-perplexity %8.1f tok/s (%6.2f s, PPL %s)  xfquant ppl %8.1f tok/s (%6.2f s, PPL %s)\n' \
        "$r" "$ll" "$(echo "$t1 - $t0" | bc -l)" \
        "$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$work/ll.log")" \
        "$xf" "$(echo "$t2 - $t1" | bc -l)" \
        "$(sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p' "$work/xf.log")"
    if [ -n "${XFQUANT_REF:-}" ]; then
        t0=$(now); run_xfq "$work/ref.log" "$XFQUANT_REF"; t1=$(now)
        ref=$(echo "$ntok / ($t1 - $t0)" | bc -l); echo "$ref" >>"$work/ref.tps"
        printf 'run %d: reference %s %8.1f tok/s (%6.2f s, PPL %s)\n' "$r" "$XFQUANT_REF" "$ref" \
            "$(echo "$t1 - $t0" | bc -l)" "$(sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p' "$work/ref.log")"
    fi
done
paste "$work/ll.tps" "$work/xf.tps" "$work/ref.tps" | awk '
  { ll[NR] = $1; xf[NR] = $2; q[NR] = $2 / $1; if (NF > 2) { rf[NR] = $3; qr[NR] = $3 / $1; nref++ } }
  function median(a, n,   i, j, t, s) {
    for (i = 1; i <= n; i++) s[i] = a[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
    return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2 }
  function lo(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
  function hi(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
  END {
    n = NR
    printf "llama-perplexity: median %.1f tok/s (min %.1f, max %.1f)\n", median(ll, n), lo(ll, n), hi(ll, n)
    printf "xfquant ppl:      median %.1f tok/s (min %.1f, max %.1f)\n", median(xf, n), lo(xf, n), hi(xf, n)
    printf "xfquant / llama.cpp: %.2f (medians); per run %.2f .. %.2f\n", median(xf, n) / median(ll, n), lo(q, n), hi(q, n)
    if (nref > 0) {
      printf "reference:        median %.1f tok/s (min %.1f, max %.1f)\n", median(rf, n), lo(rf, n), hi(rf, n)
      printf "reference / llama.cpp: %.2f (medians); per run %.2f .. %.2f\n", median(rf, n) / median(ll, n), lo(qr, n), hi(qr, n)
    }
  }'
