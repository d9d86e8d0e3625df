#!/usr/bin/env bash
# Weak-scaling benchmark on CPUs: the mlp and cnn presets, one epoch of Fashion-MNIST, batch 64
# per rank, one BLAS thread per rank, with 1 and 2 ranks; prints samples/s (training time only,
# evaluation excluded) and the 2-rank / 1-rank ratio, as a Markdown table.
#   experiments/bench_cpu.sh [models...]        default: mlp cnn
# Needs a built tree (launch/setup.sh). Run it on a quiet machine: other load skews the figures.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mlp cnn)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

rate() {  # model ranks -> samples/s of the epoch
  mpirun -np "$2" --bind-to core "$root_dir/build/dptrain" train --model "$1" --epochs 1 \
    --batch-size 64 --threads 1 --lr 0.05 --momentum 0.9 --out "$out/$1-$2" > /dev/null
  python3 -c "import json; print(round(json.loads(open('$out/$1-$2/metrics.jsonl').readline())['samples_per_second']))"
}

echo "| model | 1 rank samples/s | 2 ranks samples/s | 2 ranks / 1 rank |"
echo "|---|---|---|---|"
for m in "${models[@]}"; do
  one=$(rate "$m" 1)
  two=$(rate "$m" 2)
  echo "| $m | $one | $two | $(python3 -c "print(f'{$two / $one:.2f}')") |"
done
