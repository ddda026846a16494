#!/usr/bin/env bash
# `mpirun -np 2 xfquant gptq` against one process on one model (docs/distributed.md, "On this
# machine"): wall and CPU time of one process with 1 and with 2 threads and of 2 ranks of 1
# thread each,
# every rank's seconds by kind of work (forward, Hessians, solves, transfers, waiting for the
# other rank) and its CPU seconds outside and inside MPI from the summary's "distributed", and the bytes each rank moved per block against
# the cost model (bench/mpi_cost.py). The outputs must be byte-identical.
# Usage: bench/mpi_gptq.sh BUILD_DIR MODEL_DIR [CALIB]
#   env: NSAMPLES (16), SEQLEN (512), BLOCKS (2: --max-blocks), OUT (a temp dir)
set -euo pipefail
build=$(cd "$1" && pwd); model=$(cd "$2" && pwd)
calib=$(cd "$(dirname "${3:-../shared/data/novels/calib.txt}")" && pwd)/$(basename "${3:-../shared/data/novels/calib.txt}")
here=$(cd "$(dirname "$0")" && pwd)
ns=${NSAMPLES:-16}; T=${SEQLEN:-512}; blocks=${BLOCKS:-2}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"/{p1,p2,r2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(gptq --bits 4 --group 128 --calib "$calib" --nsamples "$ns" --seqlen "$T"
      --max-blocks "$blocks" --no-checkpoint --json)
x="$build/cli/xfquant"
run() { # dir label command...: wall and CPU (user + sys of the whole process tree)
  local d=$1 label=$2; shift 2
  (cd "$out/$d" && /usr/bin/time -f "%e %U %S" -o time.txt "$@" > summary.json)
  read -r wall user sys < "$out/$d/time.txt"
  echo "$label: wall $wall s, CPU $(python3 -c "print(f'{$user + $sys:.1f}')") s" |
    tee -a "$out/walls.txt"
}
: > "$out/walls.txt"
run p1 "1 process, 1 thread " "$x" "${args[@]}" --threads 1 "$model" out.xfq
run p2 "1 process, 2 threads" "$x" "${args[@]}" --threads 2 "$model" out.xfq
run r2 "2 ranks x 1 thread  " mpirun --oversubscribe -np 2 "$x" "${args[@]}" --threads 1 "$model" out.xfq
# p2's command line records --threads 2: not the same bytes; the same tensors (the recorded GPTQ
# "loss" statistic may differ in its last digits with the thread count, with or without MPI)
python3 "$here/xfq_same.py" --ignore-command-line "$out/p1/out.xfq" "$out/p2/out.xfq" ||
  echo "(1 and 2 threads: see above)"
cmp "$out/p1/out.xfq" "$out/r2/out.xfq" && echo "1 process and 2 ranks: byte-identical"
python3 "$here/mpi_cost.py" "$model/config.json" "$out/r2/summary.json" "$out/p1/summary.json"
echo "results in $out"
