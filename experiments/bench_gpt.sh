#!/usr/bin/env bash
# The gpt benchmark on CPUs: dptrain beside PyTorch DDP (gloo, CPU; experiments/peer_pytorch_gpt.py)
# in the same run, at 1 and 2 ranks, with the same model, data, per-rank batch, recipe and one
# BLAS thread per rank. Each point is the median of REPEATS runs of STEPS steps, the four
# configurations alternating; a run's tokens/s is its global batch tokens over its median step
# time on rank 0 (both programs compute it so). Then utilization: achieved FLOP/s per rank over
# the single-core sgemm peak (`dptrain bench gemm`, the best of n = 1024 and 2048, measured
# before and after the runs), counting FLOPs as nanoGPT's estimate_mfu does, 6N + 12 L C T per
# token, with N the parameters less the position embedding.
#   [REPEATS=3] [STEPS=60] [MODEL=gpt(...)] [BATCH=16] experiments/bench_gpt.sh [TEXT...]
# TEXT: the files or folders to train on (default: /usr/share/games/fortunes from Debian's
# fortunes package, else /usr/share/common-licenses). Needs a built tree (launch/setup.sh) and
# Debian's python3-torch. Run it on a quiet machine: other load skews the figures.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
dptrain="$root_dir/build/dptrain"
peer="$root_dir/experiments/peer_pytorch_gpt.py"
repeats=${REPEATS:-3}
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

peak() {  # the best single-thread sgemm GFLOP/s over two sizes
  local best=0 g
  for n in 1024 2048; do
    g=$("$dptrain" bench gemm --size "$n" --threads 1 | sed -n 's/.*: \([0-9.]*\) GFLOP\/s.*/\1/p')
    best=$(python3 -c "print(max($best, $g))")
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

peak_before=$(peak)
declare -A rates
for i in $(seq "$repeats"); do
  for p in 1 2; do
    rates[dptrain-$p]+=" $(dptrain_rate "$p" "$i" "$block")"
    rates[peer-$p]+=" $(peer_rate "$p" "$i")"
  done
done
peak_after=$(peak)

python3 - "$peak_before" "$peak_after" "$flops_per_token" "$repeats" "$steps" "$model" "$batch" \
  "${rates[dptrain-1]}" "${rates[peer-1]}" "${rates[dptrain-2]}" "${rates[peer-2]}" <<'EOF'
import statistics, sys
peak = max(float(sys.argv[1]), float(sys.argv[2])) * 1e9
fpt = float(sys.argv[3])
repeats, steps, model, batch = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
d1, p1, d2, p2 = (statistics.median(map(float, a.split())) for a in sys.argv[8:12])
print(f"{model}, batch {batch} per rank, {steps} steps, median of {repeats} runs, 1 thread per rank")
print(f"single-core sgemm peak: {peak / 1e9:.1f} GFLOP/s (before {sys.argv[1]}, after {sys.argv[2]});"
      f" {fpt / 1e6:.3f} MFLOP per token")
print()
print("| ranks | dptrain tokens/s | PyTorch DDP tokens/s | dptrain / PyTorch | dptrain MFU per rank | PyTorch MFU per rank |")
print("|---|---|---|---|---|---|")
for p, d, t in ((1, d1, p1), (2, d2, p2)):
    print(f"| {p} | {d:.0f} | {t:.0f} | {d / t:.2f} | {d / p * fpt / peak:.0%} | {t / p * fpt / peak:.0%} |")
EOF
