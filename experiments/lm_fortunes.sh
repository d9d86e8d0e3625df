#!/usr/bin/env bash
# The language-model run of the README, beside PyTorch: a byte-level gpt trained on Debian's
# fortunes (apt-get install fortunes) by dptrain and by PyTorch DDP (experiments/peer_pytorch_gpt.py,
# gloo, CPU) with the same model, data, per-rank batch, recipe and ranks; prints each one's val
# loss through the run and at the end, their relative difference, and a sample of dptrain's model.
#   [SEEDS="0"] [NP=2] [STEPS=3000] experiments/lm_fortunes.sh OUT_DIR [TEXT...]
# TEXT defaults to /usr/share/games/fortunes. OUT_DIR keeps the runs (dptrain's run folders,
# the peer's JSON, the samples). Needs a built tree and Debian's python3-torch. About 40 minutes
# per seed on 2 cores.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
dptrain="$root_dir/build/dptrain"
[ $# -ge 1 ] || { echo "usage: lm_fortunes.sh OUT_DIR [TEXT...]" >&2; exit 2; }
out=$1
shift
text=("$@")
[ ${#text[@]} -gt 0 ] || text=(/usr/share/games/fortunes)
[ -e "${text[0]}" ] || { echo "lm_fortunes.sh: error: ${text[0]}: not found (apt-get install fortunes)" >&2; exit 2; }
np=${NP:-2}
steps=${STEPS:-3000}
warmup=$((steps < 1000 ? steps / 30 : 100))  # the README's 100, shorter for a quick look
mkdir -p "$out"
[ -e "$out/data/train_000000.bin" ] || "$dptrain" prepare-text --out "$out/data" "${text[@]}" | tail -1

model="gpt(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)"
# The README's recipe: nanoGPT's AdamW, warmup and cosine decay, clipping.
recipe=(--batch-size 16 --lr 1e-3 --beta2 0.95 --weight-decay 0.1 --warmup-steps "$warmup"
        --lr-decay-steps "$steps" --min-lr 1e-4 --grad-clip 1.0 --max-steps "$steps"
        --threads 1 --eval-every 250)

for seed in ${SEEDS:-0}; do
  run="$out/dptrain-seed$seed"
  if [ ! -e "$run/model.safetensors" ]; then
    mpirun -np "$np" "$dptrain" train --model "$model" --optimizer adamw \
      --train-tokens "$out/data/train_*.bin" --val-tokens "$out/data/val_*.bin" \
      "${recipe[@]}" --log-every 250 --seed "$seed" --out "$run" > "$run.log"
  fi
  peer="$out/pytorch-seed$seed.json"
  [ -e "$peer" ] || /usr/bin/python3 "$root_dir/experiments/peer_pytorch_gpt.py" --nproc "$np" \
    --model "$model" --train-tokens "$out/data/train_*.bin" --val-tokens "$out/data/val_*.bin" \
    "${recipe[@]}" --seed "$seed" --out "$peer" > "$out/pytorch-seed$seed.log"
  "$dptrain" generate --weights "$run/model.safetensors" --prompt "The " --max-new-tokens 300 \
    --seed 1 > "$out/sample-seed$seed.txt"
  python3 - "$run/metrics.jsonl" "$peer" "$seed" <<'EOF'
import json, sys
ours = {m["step"]: m["val_loss"] for m in map(json.loads, open(sys.argv[1])) if "val_loss" in m}
peer = {m["step"]: m["val_loss"] for m in json.load(open(sys.argv[2]))["log"]}
print(f"seed {sys.argv[3]}")
print("| step | dptrain val loss | PyTorch val loss | difference |")
print("|---|---|---|---|")
for step in sorted(set(ours) & set(peer)):
    print(f"| {step} | {ours[step]:.4f} | {peer[step]:.4f} | {(ours[step] - peer[step]) / peer[step]:+.2%} |")
EOF
done
