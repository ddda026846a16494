#!/bin/sh
# Same-bytes check of `xfquant rtn` between two binaries (issue 14: RTN
# streamed from the stored rows must write what the whole-tensor path
# wrote) and between thread counts. Both binaries run as $DIR/bin/xfquant
# writing out.xfq in their own cwd (the .xfq records argv[0] and the
# output path). NEW with --threads 1 against NEW by default: the same
# tensors and metadata but for the command line recorded in the
# provenance. Reports per recipe for REF vs NEW: "identical", or for REF vs NEW
# "same except qerr (max rel diff X)" when only the tensor_stats qerr
# values differ (their summation order changed: per-row fp64, rows in
# order), else DIFFERENT (exit 1).
# RTN_IDENTITY_RECIPES="ARGS;ARGS..." replaces the default recipe list.
# Usage: bench/rtn_identity.sh REF_XFQUANT NEW_XFQUANT MODEL...
set -eu
REF=$(realpath "$1"); NEW=$(realpath "$2"); shift 2
W=$(mktemp -d /tmp/rtn_identity.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/a" "$W/b" "$W/c"
CMP="$W/cmp.py"
cat > "$CMP" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    mo, ms, to = struct.unpack_from('<QQQ', b, 16)
    n, names = struct.unpack_from('<II', b, 40); do, = struct.unpack_from('<Q', b, 48)
    return json.loads(b[mo:mo + ms]), b[to:to + 80 * n + names] + b[do:], b
ma, ta, ba = load(sys.argv[1]); mb, tb, bb = load(sys.argv[2])
if ba == bb: print('identical'); sys.exit(0)
if len(sys.argv) > 3: # thread counts: argv differs by "--threads 1", all else must not
    for m in (ma, mb): m['provenance'].pop('command_line')
    same = ma == mb and ta == tb
    print('same except the recorded command line' if same else 'DIFFERENT'); sys.exit(0 if same else 1)
sa, sb = ma.pop('tensor_stats', {}), mb.pop('tensor_stats', {})
rel = 0.0
for k in set(sa) | set(sb):
    a, b = dict(sa.get(k, {})), dict(sb.get(k, {}))
    qa, qb = a.pop('qerr', None), b.pop('qerr', None)
    if a != b or (qa is None) != (qb is None): print('stats differ at', k); sys.exit(1)
    if qa is not None and qa != qb: rel = max(rel, abs(qa - qb) / max(abs(qa), 1e-300))
if ma != mb or ta != tb: print('DIFFERENT (meta or tensors)'); sys.exit(1)
print('same except qerr (max rel diff %.3g)' % rel)
PY
run() { # bin dir recipe...
    ln -sf "$1" "$W/bin/xfquant"; d=$2; m=$3; shift 3
    (cd "$W/$d" && rm -f out.xfq && "$W/bin/xfquant" rtn "$@" "$m" out.xfq >/dev/null 2>&1)
}
DEFAULT_RECIPES="--bits 4 --group 128;--bits 3 --group 32 --sym;--bits 4 --group 128 --clip mse;\
--bits 4 --group -1;--bits 4 --group 128 --outliers 0.5%;--bits 4 --group 128 --weight-grid log2;\
--gguf-type Q4_K_M;--bits 4 --group 128 --tensor-bits down_proj=8"
fail=0
for m in "$@"; do
    m=$(realpath "$m")
    IFS=';'
    for r in ${RTN_IDENTITY_RECIPES:-$DEFAULT_RECIPES}; do
        IFS=' '
        run "$REF" a "$m" $r
        run "$NEW" b "$m" $r
        run "$NEW" c "$m" $r --threads 1
        printf '%s | %s | ref-new: ' "$(basename "$m")" "$r"
        python3 "$CMP" "$W/a/out.xfq" "$W/b/out.xfq" || fail=1
        printf '%s | %s | new threads default-1: ' "$(basename "$m")" "$r"
        python3 "$CMP" "$W/b/out.xfq" "$W/c/out.xfq" threads || fail=1
    done
done
exit $fail
