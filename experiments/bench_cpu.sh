#!/usr/bin/env bash
# Weak-scaling benchmark on CPUs: the mlp and cnn presets, one epoch of Fashion-MNIST, batch 64
# per rank, one BLAS thread per rank, with 1 and 2 ranks; prints samples/s (training time only,
# evaluation excluded) and the 2-rank / 1-rank ratio, as a Markdown table. Each point is the
# median of REPEATS runs (default 3), the 1- and 2-rank runs alternating.
#   [REPEATS=n] experiments/bench_cpu.sh [models...]        default: mlp cnn
# Needs a built tree (launch/setup.sh). Run it on a quiet machine: other load skews the figures.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mlp cnn)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

repeats=${REPEATS:-3}

rate() {  # model ranks run -> samples/s of the epoch
  mpirun -np "$2" "$root_dir/build/dptrain" train --model "$1" --epochs 1 \
    --batch-size 64 --threads 1 --lr 0.05 --momentum 0.9 --out "$out/$1-$2-$3" > /dev/null
  python3 -c "import json; print(json.loads(open('$out/$1-$2-$3/metrics.jsonl').readline())['samples_per_second'])"
}
median() { python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:]))))" "$@"; }

echo "| model | 1 rank samples/s | 2 ranks samples/s | 2 ranks / 1 rank |"
echo "|---|---|---|---|"
for m in "${models[@]}"; do
  ones=() twos=()
  for i in $(seq "$repeats"); do
    ones+=("$(rate "$m" 1 "$i")")
    twos+=("$(rate "$m" 2 "$i")")
  done
  one=$(median "${ones[@]}")
  two=$(median "${twos[@]}")
  echo "| $m | $one | $two | $(python3 -c "print(f'{$two / $one:.2f}')") |"
done
