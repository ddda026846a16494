#!/bin/sh
# Existing recipes keep their .xfq bytes (issue 15 items 5-7 add options,
# scheme keys and a forward hook that must change nothing when unused):
# each recipe below quantized by a reference binary (e.g. main's) and by
# this build, both called through the same symlink and writing the same
# path (the provenance records argv), then compared byte for byte.
# Usage: bench/sim_methods_identity.sh REF_XFQUANT [BUILD (default build)] [MODEL]
set -eu
REF=$(realpath "$1"); BUILD=${2:-build}
X=$(realpath "$BUILD/cli/xfquant")
MODEL=$(realpath "${3:-../shared/models/stories260K}")
CALIB=$(realpath "$(dirname "$MODEL")/../data/tinystories/calib.txt")
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
status=0
while read -r args; do
    [ -n "$args" ] || continue
    for b in ref new; do
        if [ $b = ref ]; then ln -sf "$REF" "$W/xfquant"; else ln -sf "$X" "$W/xfquant"; fi
        # shellcheck disable=SC2086
        "$W/xfquant" $args "$MODEL" "$W/o.xfq" > /dev/null 2>&1
        mv "$W/o.xfq" "$W/$b.xfq"
    done
    if cmp -s "$W/ref.xfq" "$W/new.xfq"; then echo "identical: $args"
    else echo "DIFFERENT: $args"; status=1; fi
done <<LIST
rtn --bits 4 --group 128
rtn --bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95 --rotate hadamard --seed 1
rtn --bits 4 --weight-grid log2
gptq --bits 4 --group -1 --sym --act-bits 4 --act-clip 0.9 --kv-bits 4 --kv-clip 0.95 --rotate hadamard --calib $CALIB --nsamples 8 --seqlen 128 --seed 2
gptq --bits 3 --group 32 --act-order --calib $CALIB --nsamples 8 --seqlen 128
gptq --bits 4 --group 32 --act-order --static-groups --clip mse --calib $CALIB --nsamples 8 --seqlen 128
rtn --bits 8 --act-bits 8 --attn-prob-bits 4 --attn-prob-quant log2 --smooth 0.5 --calib $CALIB --nsamples 4 --seqlen 64
LIST
exit $status
