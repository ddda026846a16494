#!/usr/bin/env bash
# Runs one libFuzzer harness of tests/fuzz/ over its seed corpus and its
# minimised crashers, then fuzzes for SECONDS more (0: corpus only).
#   run_fuzz.sh HARNESS_BINARY NAME SECONDS FUZZ_SRC_DIR WORK_DIR [libFuzzer flags...]
# New corpus inputs go to WORK_DIR/corpus/NAME, findings to
# WORK_DIR/artifacts/NAME/ (never into the source tree). The limits turn
# resource blowups into findings: 2 GiB RSS or one 2 GiB allocation, 10 s
# per input. Exit status: libFuzzer's (0 = no finding).
set -euo pipefail
exe=$1 name=$2 secs=$3 src=$4 work=$5
shift 5
mkdir -p "$work/corpus/$name" "$work/artifacts/$name"
dirs=("$work/corpus/$name" "$src/corpus/$name")
[ -d "$src/regressions/$name" ] && dirs+=("$src/regressions/$name")
flags=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1
       "-artifact_prefix=$work/artifacts/$name/")
[ -f "$src/$name.dict" ] && flags+=("-dict=$src/$name.dict")
if [ "$secs" -gt 0 ]; then
  flags+=("-max_total_time=$secs")
else
  flags+=(-runs=0)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
exec "$exe" "${flags[@]}" "$@" "${dirs[@]}"
