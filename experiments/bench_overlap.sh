#!/usr/bin/env bash
# Overlap benchmark: 2 ranks, one epoch of Fashion-MNIST, batch 64 per rank, one BLAS thread per
# rank, with bucketed allreduces started during backward (--bucket-mb 25, the default) and with
# one allreduce after backward (--bucket-mb 0). Prints, per model, the median samples/s of each
# over REPEATS runs (default 3, alternating), their ratio, and the median compute time, total and
# exposed communication time per epoch and overlap fraction of the bucketed runs.
#   [REPEATS=n] experiments/bench_overlap.sh [models...]        default: mlp cnn
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mlp cnn)
repeats=${REPEATS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() {  # model bucket_mb index
  mpirun -np 2 "$root_dir/build/dptrain" train --model "$1" --epochs 1 --batch-size 64 \
    --threads 1 --lr 0.05 --momentum 0.9 --bucket-mb "$2" --out "$out/$1-$2-$3" > /dev/null
}

echo "| model | bucketed samples/s | one allreduce samples/s | ratio | compute s | comm s | exposed comm s | overlap |"
echo "|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  for i in $(seq "$repeats"); do
    run "$m" 25 "$i"
    run "$m" 0 "$i"
  done
  python3 - "$out" "$m" "$repeats" <<'PY'
import json, statistics, sys
out, model, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(bucket):
    return [json.loads(open(f"{out}/{model}-{bucket}-{i}/metrics.jsonl").readline())
            for i in range(1, repeats + 1)]
med = lambda rs, k: statistics.median(r[k] for r in rs)
b, one = rows(25), rows(0)
sb, so = med(b, "samples_per_second"), med(one, "samples_per_second")
print(f"| {model} | {sb:.0f} | {so:.0f} | {sb / so:.2f} | {med(b, 'compute_seconds'):.2f} | "
      f"{med(b, 'comm_seconds'):.3f} | {med(b, 'exposed_comm_seconds'):.3f} | "
      f"{med(b, 'overlap_fraction'):.0%} |")
PY
done
