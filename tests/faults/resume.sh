#!/bin/sh
# gptq checkpoints, --resume and --max-memory through the CLI on the shared
# novels-5m (suite 'faults'; SKIP when ../shared is absent):
#  - a run killed with SIGKILL after its third block leaves no output and a
#    checkpoint; the same command refuses to overwrite it; with --resume it
#    finishes, and the file is byte-identical to an uninterrupted run's
#    (same command, same output name, in another directory), the
#    checkpoint removed;
#  - a checkpoint of a different run (other --nsamples) is refused, as is a
#    corrupted one (CRC), each in one line, nothing written;
#  - a --max-memory below the calibration states spills them (the summary
#    says so) and gives the same tensors; one below what GPTQ needs even
#    spilled is refused up front with the numbers.
# Usage: resume.sh XFQUANT_BIN SOURCE_ROOT
set -eu
X=$1
ROOT=$2
M=$ROOT/../shared/models/novels-5m
CAL=$ROOT/../shared/data/novels/calib.txt
if [ ! -d "$M" ] || [ ! -f "$CAL" ]; then
    echo "SKIP: ../shared/models/novels-5m or ../shared/data/novels/calib.txt is absent"
    exit 77
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# 64 windows of 512 tokens: about a second per block on two cores, so that
# the kill lands between checkpoints
ARGS="--bits 4 --group 128 --calib $CAL --nsamples 64 --seqlen 512 --threads 2"

mkdir "$W/a" "$W/b"
(cd "$W/a" && "$X" gptq $ARGS "$M" out.xfq >/dev/null) || fail "uninterrupted run"
[ -e "$W/a/out.xfq.ckpt" ] && fail "checkpoint left after success"

# killed after block 2's checkpoint
kill_after_block() { # DIR BLOCK [extra args]
    d=$1; b=$2; shift 2
    (cd "$d" && exec "$X" gptq $ARGS "$@" "$M" out.xfq >/dev/null 2>&1) &
    pid=$!
    n=0
    while [ ! -e "$d/out.xfq.ckpt/block-0000$b.xfq" ]; do
        kill -0 $pid 2>/dev/null || fail "the run ended before block $b was checkpointed"
        n=$((n + 1)); [ $n -lt 6000 ] || fail "no checkpoint of block $b after 10 minutes"
        sleep 0.1
    done
    kill -9 $pid
    wait $pid 2>/dev/null || true
}
kill_after_block "$W/b" 2
[ -e "$W/b/out.xfq" ] && fail "a killed run left an output"
[ -e "$W/b/out.xfq.ckpt/stream.xfq" ] || fail "no stream checkpoint after the kill"

# the same command without --resume refuses to overwrite the checkpoint
if (cd "$W/b" && "$X" gptq $ARGS "$M" out.xfq >/dev/null 2>"$W/err"); then
    fail "ran over an interrupted run's checkpoint"
fi
grep -q -- "--resume" "$W/err" || fail "refusal does not name --resume: $(cat "$W/err")"
[ "$(wc -l <"$W/err")" -eq 1 ] || fail "refusal is not one line"

# a checkpoint of another run is refused
if (cd "$W/b" && "$X" gptq $ARGS --nsamples 32 --resume "$M" out.xfq >/dev/null 2>"$W/err"); then
    fail "resumed another run's checkpoint"
fi
grep -q "different run" "$W/err" || fail "wrong refusal: $(cat "$W/err")"
[ -e "$W/b/out.xfq" ] && fail "a refused resume wrote an output"

# resumed: the same bytes as the uninterrupted run, the checkpoint removed
(cd "$W/b" && "$X" gptq $ARGS --resume "$M" out.xfq >/dev/null) || fail "resume failed"
cmp "$W/a/out.xfq" "$W/b/out.xfq" || fail "resumed output differs from the uninterrupted run's"
[ -e "$W/b/out.xfq.ckpt" ] && fail "checkpoint left after a resumed success"
echo "resume after SIGKILL: byte-identical"

# a corrupted checkpoint is refused (CRC), one line naming the file
rm "$W/b/out.xfq"
kill_after_block "$W/b" 1
python3 - "$W/b/out.xfq.ckpt/stream.xfq" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[-100] ^= 0x40  # inside the hidden states
open(p, 'wb').write(b)
PY
if (cd "$W/b" && "$X" gptq $ARGS --resume "$M" out.xfq >/dev/null 2>"$W/err"); then
    fail "resumed from a corrupted checkpoint"
fi
grep -q "stream.xfq" "$W/err" || fail "corruption error does not name the file: $(cat "$W/err")"
[ -e "$W/b/out.xfq" ] && fail "a failed resume wrote an output"
rm -rf "$W/b/out.xfq.ckpt"

# spilled calibration states: the same tensors
mkdir "$W/c"
(cd "$W/c" && "$X" gptq $ARGS --max-memory 100M --json "$M" out.xfq >"$W/c/summary.json") ||
    fail "spilled run"
python3 - "$W/c/summary.json" <<'PY' || fail "summary does not report the spill"
import json, sys
m = json.load(open(sys.argv[1]))['memory']
assert m['spilled'] is True and m['bound'] == 100 << 20 and m['planned'] <= m['bound'], m
PY
python3 "$ROOT/bench/xfq_same.py" --ignore-command-line "$W/a/out.xfq" "$W/c/out.xfq" >/dev/null ||
    fail "spilled run's tensors differ"
[ "$(ls -A "$W/c")" = "out.xfq
summary.json" ] || fail "files left beside the output: $(ls -A "$W/c")"
echo "spilled states: same tensors"

# a bound below what even a spilled run needs: refused up front
if "$X" gptq $ARGS --max-memory 10M "$M" "$W/c/x.xfq" >/dev/null 2>"$W/err"; then
    fail "ran under an impossible bound"
fi
grep -q "GiB" "$W/err" && grep -q "spilled" "$W/err" || fail "refusal lacks the numbers: $(cat "$W/err")"
[ -e "$W/c/x.xfq" ] && fail "a refused run wrote an output"
echo "impossible bound: refused"
