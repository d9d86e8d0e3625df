#!/usr/bin/env bash
# The gpt benchmark on CPUs: dptrain beside PyTorch DDP (gloo, CPU; experiments/peer_pytorch_gpt.py)
# in the same run, at 1 and 2 ranks, with the same model, data, per-rank batch, recipe and one
# BLAS thread per rank. Each point is the median of REPEATS runs of STEPS steps, the four
# configurations alternating; a run's tokens/s is its global batch tokens over its median step
# time on rank 0 (both programs compute it so). Then utilization: achieved FLOP/s per rank over
# the single-core sgemm peak (`dptrain bench gemm`, the best of n = 1024 and 2048 under either
# GEMM, dptrain's own and OpenBLAS's (DPT_CPU_GEMM=blas), measured before and after each
# repeat), counting FLOPs as nanoGPT's estimate_mfu does, 6N + 12 L C T per token, with N the
# parameters less the position embedding. (That count includes the masked half of attention,
# which dptrain's own GEMM skips and PyTorch 1.13's eager attention computes.) Each repeat's figures are printed
# under the table, since a shared machine's speed drifts from minute to minute.
#   [REPEATS=5] [STEPS=60] [MODEL=gpt(...)] [BATCH=16] experiments/bench_gpt.sh [TEXT...]
# TEXT: the files or folders to train on (default: /usr/share/games/fortunes from Debian's
# fortunes package, else /usr/share/common-licenses). Needs a built tree (launch/setup.sh) and
# Debian's python3-torch. Run it on a quiet machine: other load skews the figures.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
dptrain="$root_dir/build/dptrain"
peer="$root_dir/experiments/peer_pytorch_gpt.py"
repeats=${REPEATS:-5}
steps=${STEPS:-60}
batch=${BATCH:-16}
model=${MODEL:-"gpt(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)"}
text=("$@")
if [ ${#text[@]} -eq 0 ]; then
  if [ -d /usr/share/games/fortunes ]; then text=(/usr/share/games/fortunes); else text=(/usr/share/common-licenses); fi
fi
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "bench_gpt.sh: error: /usr/bin/python3 has no torch (apt-get install python3-torch)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$dptrain" prepare-text --out "$out/data" "${text[@]}" | tail -1 >&2

# The same recipe for both: nanoGPT's AdamW, warmup and cosine decay, clipping.
recipe=(--batch-size "$batch" --lr 1e-3 --beta2 0.95 --weight-decay 0.1 --warmup-steps 10
        --lr-decay-steps "$steps" --min-lr 1e-4 --grad-clip 1.0 --max-steps "$steps")

peak() {  # the best single-thread sgemm GFLOP/s over two sizes and both GEMMs (dptrain's, OpenBLAS's)
  local best=0 g n gemm
  for gemm in auto blas; do
    for n in 1024 2048; do
      g=$(DPT_CPU_GEMM=$gemm "$dptrain" bench gemm --size "$n" --threads 1 |
        sed -n 's/.*: \([0-9.]*\) GFLOP\/s.*/\1/p')
      best=$(python3 -c "print(max($best, $g))")
    done
  done
  echo "$best"
}

dptrain_rate() {  # ranks run -> tokens/s
  local dir="$out/dptrain-$1-$2"
  mpirun -np "$1" "$dptrain" train --model "$model" --train-tokens "$out/data/train_*.bin" \
    --optimizer adamw "${recipe[@]}" --threads 1 --no-shuffle --out "$dir" > /dev/null
  python3 -c "import json; m=[json.loads(l) for l in open('$dir/metrics.jsonl')][-1]; print(m['global_batch'] * $3 / m['median_step_seconds'])"
}

peer_rate() {  # ranks run -> tokens/s
  /usr/bin/python3 "$peer" --nproc "$1" --model "$model" --train-tokens "$out/data/train_*.bin" \
    "${recipe[@]}" --threads 1 --no-shuffle --out "$out/peer-$1-$2.json" > /dev/null
  python3 -c "import json; print(json.load(open('$out/peer-$1-$2.json'))['tokens_per_second'])"
}

read -r block flops_per_token < <(/usr/bin/python3 - "$model" <<'EOF'
import re
import sys
kw = {k.strip(): int(v) for k, v in (p.split("=") for p in re.search(r"\((.*)\)", sys.argv[1]).group(1).split(","))}
L, C, T, V = kw["n_layer"], kw["n_embd"], kw["block_size"], kw["vocab_size"]
n = V * C + L * (12 * C * C + 13 * C) + 2 * C  # wte (tied head), blocks, ln_f; wpe left out
print(T, 6 * n + 12 * L * C * T)
EOF
)

# One row per repeat: the peak, the four rates, the peak again. This machine's speed can drift
# within a run, so each repeat's utilization is over the higher of its own two peaks.
for i in $(seq "$repeats"); do
  row="$(peak)"
  for p in 1 2; do
    row+=" $(dptrain_rate "$p" "$i" "$block") $(peer_rate "$p" "$i")"
  done
  echo "$row $(peak)" >> "$out/rows"
done

python3 - "$out/rows" "$flops_per_token" "$repeats" "$steps" "$model" "$batch" <<'EOF'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
fpt = float(sys.argv[2])
repeats, steps, model, batch = sys.argv[3:7]
med = statistics.median
print(f"{model}, batch {batch} per rank, {steps} steps, {repeats} repeats, 1 thread per rank")
print(f"{fpt / 1e6:.3f} MFLOP per token; single-core sgemm peak per repeat (GFLOP/s): "
      + ", ".join(f"{max(r[0], r[5]):.1f}" for r in rows))
print()
print("| ranks | dptrain tokens/s | PyTorch DDP tokens/s | dptrain / PyTorch | dptrain MFU per rank | PyTorch MFU per rank |")
print("|---|---|---|---|---|---|")
for p, col in ((1, 1), (2, 3)):
    ours = [r[col] for r in rows]
    peer = [r[col + 1] for r in rows]
    ratio = [r[col] / r[col + 1] for r in rows]
    mfu = lambda c: med(r[c] / p * fpt / (max(r[0], r[5]) * 1e9) for r in rows)
    print(f"| {p} | {med(ours):.0f} | {med(peer):.0f} | {med(ratio):.2f} (range {min(ratio):.2f}-{max(ratio):.2f})"
          f" | {mfu(col):.0%} | {mfu(col + 1):.0%} |")
print()
print("Medians over the repeats; a ratio is the median of the repeats' ratios, and a utilization")
print("the median of (tokens/s per rank x FLOPs per token) / that repeat's peak. Each repeat,")
print("tokens/s (dptrain and PyTorch at 1 rank, then at 2) and its peaks:")
for i, r in enumerate(rows):
    print(f"  {i + 1}: {r[1]:.0f} {r[2]:.0f}, {r[3]:.0f} {r[4]:.0f}; peak {r[0]:.1f} / {r[5]:.1f} GFLOP/s")
EOF
