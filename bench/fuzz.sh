#!/usr/bin/env bash
# Long fuzzing campaign over the libFuzzer harnesses of tests/fuzz/, one
# harness after the other (each fuzzer is single-threaded), and a Markdown
# table per harness: executions, exec/s, coverage (cov = edges, ft =
# features, from libFuzzer's last status line), findings.
#   bench/fuzz.sh MINUTES [BUILD_DIR] [HARNESS...]
# BUILD_DIR (default build-fuzz) is a -Dfuzz=enabled build with CC=clang:
#   CC=clang meson setup build-fuzz -Dfuzz=enabled && ninja -C build-fuzz
# The corpus grows in BUILD_DIR/fuzz-campaign/corpus/H (kept between runs,
# so campaigns continue where the last one stopped); findings land in
# BUILD_DIR/fuzz-campaign/artifacts/H/ — minimise one with
#   BUILD_DIR/tests/fuzz/fuzz_H -minimize_crash=1 -max_total_time=60 \
#     -exact_artifact_path=tests/fuzz/regressions/H/NAME ARTIFACT
# libFuzzer stops at the first finding: fix it and run again.
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:?usage: bench/fuzz.sh MINUTES [BUILD_DIR] [HARNESS...]}
build=${2:-build-fuzz}
shift $(( $# >= 2 ? 2 : 1 ))
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] &&
  harnesses=(safetensors xfq config tokenizer calib_text regress_suite recipe gguf hf_quantized)
work=$build/fuzz-campaign
mkdir -p "$work/logs"
rows=()
total_findings=0
for h in "${harnesses[@]}"; do
  exe=$build/tests/fuzz/fuzz_$h
  if [ ! -x "$exe" ]; then
    echo "bench/fuzz.sh: $exe missing (build with -Dfuzz=enabled)" >&2
    exit 2
  fi
  before=$(ls "$work/artifacts/$h" 2>/dev/null | wc -l)
  log=$work/logs/$h.log
  echo "fuzzing $h for $minutes min (log: $log)" >&2
  tests/fuzz/run_fuzz.sh "$exe" "$h" $((minutes * 60)) tests/fuzz "$work" >"$log" 2>&1
  rc=$?
  after=$(ls "$work/artifacts/$h" 2>/dev/null | wc -l)
  findings=$((after - before))
  [ $rc -ne 0 ] && [ $findings -eq 0 ] && findings=1 # e.g. a crash libFuzzer could not save
  total_findings=$((total_findings + findings))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  what=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+|runtime error: .*' "$log" | head -c 80)
  rows+=("| $h | ${execs:-?} | ${eps:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $findings${what:+ ($what)} |")
done
echo
echo "Fuzzing campaign: $minutes min per harness, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD)"
echo
echo "| harness | executions | exec/s | cov (edges) | ft (features) | corpus | findings |"
echo "|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
[ $total_findings -eq 0 ]
