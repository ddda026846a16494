#!/usr/bin/env bash
# GGUF import throughput: MB/s of `xf_model_open` on a random llama-shaped
# GGUF (parse + dequantize every matrix to fp32 + bind) against `cp` of the
# same file in the same run (both from the page cache: the file is read once
# before either is timed). The issue's target: import >= 50 % of cp. Also
# printed: MB/s of fp32 written (a 4-bit file becomes ~7x its size in fp32).
# Usage: bench/gguf_import.sh [BUILD_DIR] [MPARAMS (1000 = 1B)] [TYPES...]
set -euo pipefail
build=${1:-build}
mparams=${2:-1000}
shift $(( $# < 2 ? $# : 2 ))
types=${*:-q4_0 q4_K q8_0 f16}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for t in $types; do
  f=$dir/model-$t.gguf
  "$build/bench/bench_gguf_import" write "$f" "$t" "$mparams" >/dev/null
  cat "$f" >/dev/null                      # page cache, for both
  bytes=$(stat -c %s "$f")
  s=$(date +%s.%N); cp "$f" "$dir/copy"; sync "$dir/copy"; e=$(date +%s.%N)
  rm -f "$dir/copy"
  read -r imp _ out < <("$build/bench/bench_gguf_import" open "$f")
  awk -v t="$t" -v b="$bytes" -v c="$(echo "$e - $s" | bc)" -v i="$imp" -v m="$mparams" -v o="$out" 'BEGIN {
    printf "%-5s %5dM params, %7.1f MB: import %7.1f MB/s of the file (%.2f s; %7.1f MB/s of fp32 written), cp %7.1f MB/s (%.2f s): import/cp = %.2f\n",
      t, m, b / 1e6, b / 1e6 / i, i, o / 1e6 / i, b / 1e6 / c, c, c / i }'
  rm -f "$f"
done
