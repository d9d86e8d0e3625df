#!/usr/bin/env bash
# The gpt sweep of experiments/README.md: weak scaling of two gpt sizes at 1 to 4 ranks, each
# beside PyTorch DDP (experiments/peer_pytorch_gpt.py, run alternately at each point), and three
# variants of the larger one's communication: one allreduce after backward instead of buckets,
# bf16 gradients, and ZeRO-1. All through experiments/scaling.sh, into one report.
#   [SIZES="1 2 3 4"] [REPEATS=1] [STEPS_SMALL=60] [STEPS_LARGE=20] experiments/scaling_gpt.sh OUT
# small: the transformer issue's test gpt (0.8M parameters), batch 16 per rank;
# large: 25.4M parameters (100 MB of gradients per step), batch 8 per rank. Both at block 128 on
# Debian's fortunes. Run it on a quiet machine: other load skews the figures.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: scaling_gpt.sh OUT" >&2; exit 2; }
out=$1
sizes=${SIZES:-"1 2 3 4"}
repeats=${REPEATS:-1}
small="gpt(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)"
large="gpt(n_layer=8, n_head=8, n_embd=512, block_size=128, vocab_size=256)"
sweep() { "$root_dir/experiments/scaling.sh" --sizes "$sizes" --repeats "$repeats" --out "$out" "$@"; }

sweep --model "$small" --label gpt_small --batch 16 --steps "${STEPS_SMALL:-60}" --peer
tokens=(--tokens "$out/data")  # prepared by the first sweep
steps=(--batch 8 --steps "${STEPS_LARGE:-20}")
sweep --model "$large" --label gpt_large "${tokens[@]}" "${steps[@]}" --peer
sweep --model "$large" --label gpt_large.one_allreduce "${tokens[@]}" "${steps[@]}" -- --bucket-mb 0
sweep --model "$large" --label gpt_large.bf16_grads "${tokens[@]}" "${steps[@]}" -- --grad-comm bf16
sweep --model "$large" --label gpt_large.zero1 "${tokens[@]}" "${steps[@]}" -- --zero 1

# For the performance model: the allreduce table at 2 ranks, and one-rank traces of each size
# (steps after the first few), which experiments/model/perf_model.py turns into predictions at
# every point above.
source "$root_dir/launch/mpi_env.sh"
mpirun -np 2 "$root_dir/build/dptrain" bench allreduce -b 1K -e 128M -f 4 > "$out/allreduce.txt"
trace() {  # label model batch steps first:last
  mpirun -np 1 "$root_dir/build/dptrain" train --model "$2" --batch-size "$3" --max-steps "$4" \
    --threads 1 --train-tokens "$out/data/train_*.bin" --optimizer adamw --lr 1e-3 --beta2 0.95 \
    --weight-decay 0.1 --grad-clip 1.0 --trace "$out/trace-$1.json" --trace-steps "$5" \
    --out "$out/trace-$1" > "$out/trace-$1.log"
}
trace gpt_small "$small" 16 60 20:60
trace gpt_large "$large" 8 20 5:20
echo "scaling_gpt: traces in $out/trace-*.json, the allreduce table in $out/allreduce.txt"
