#!/usr/bin/env bash
# The spread of each accuracy test's recipe over OpenBLAS kernels and seeds, beside PyTorch DDP
# with the same recipe over the same seeds: what the bounds in tests/e2e are chosen from.
# OpenBLAS picks its GEMM kernel by CPU and each kernel adds in its own order, so a bound must
# clear the lowest run of every kernel, with margin; and it must not sit inside the recipe's
# own seed-to-seed noise.
#   experiments/accuracy_spread.sh [recipes...]     default: mlp cnn example peer-mlp peer-cnn
#   KERNELS="Cooperlake Haswell ..." SEEDS="0 1 2 3 4" OUT=file.csv
# Prints one CSV row per run (recipe,kernel,seed,test_accuracy) and then, per recipe, the lowest
# and highest run. Needs a built tree (launch/setup.sh) and, for the peer-* recipes,
# python3-torch (PYTHON_TORCH names another Python). A kernel that this OpenBLAS cannot run on
# this CPU is reported and left out.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(mlp cnn example peer-mlp peer-cnn)
for r in "${recipes[@]}"; do
  case $r in
    mlp | cnn | example | peer-mlp | peer-cnn) ;;
    *) echo "accuracy_spread.sh: error: unknown recipe '$r' (known: mlp cnn example peer-mlp peer-cnn)" >&2; exit 2 ;;
  esac
done
read -r -a kernels <<< "${KERNELS:-Cooperlake SkylakeX Haswell Zen Sandybridge}"
read -r -a seeds <<< "${SEEDS:-0 1 2 3 4}"
out_csv=${OUT:-$root_dir/experiments/results/accuracy-spread.csv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=../tests/openblas_kernels.sh
source "$root_dir/tests/openblas_kernels.sh"
mapfile -t usable < <(openblas_usable_kernels "${kernels[@]}")

final_accuracy() { tail -n 1 "$1" | tr ' ' '\n' | sed -n 's/^test_accuracy=//p'; }

# The recipes exactly as tests/e2e/train_check.sh runs them (seed 0 is the tests' default): 2
# ranks, batch 64 per rank, SGD with momentum 0.9, and these epochs and learning rates.
declare -A epochs=([mlp]=5 [cnn]=3) lr=([mlp]=0.02 [cnn]=0.05)
run() {  # recipe kernel seed -> test accuracy
  local r=$1 k=$2 s=$3
  rm -rf "$tmp/run"
  openblas_select "$k"
  case $r in
    mlp | cnn)
      mpirun -np 2 "$root_dir/build/dptrain" train --model "$r" --epochs "${epochs[$r]}" \
        --batch-size 64 --lr "${lr[$r]}" --momentum 0.9 --seed "$s" --out "$tmp/run" > "$tmp/out"
      final_accuracy "$tmp/out" ;;
    example)
      mpirun -np 2 "$root_dir/build/fit_example" /usr/share/datasets/fashion-mnist 300 \
        "$((s + 1))" > "$tmp/out"  # the program's own seed is 1
      sed -n 's/^test_accuracy=\([0-9.]*\).*/\1/p' "$tmp/out" ;;
    peer-mlp | peer-cnn)
      "${PYTHON_TORCH:-/usr/bin/python3}" "$root_dir/experiments/peer_pytorch_ddp.py" --nproc 2 \
        --model "${r#peer-}" --batch-size 64 --max-steps $((${epochs[${r#peer-}]} * (60000 / 128))) \
        --lr "${lr[${r#peer-}]}" --momentum 0.9 --seed "$s" --out "$tmp/peer.json" > /dev/null
      python3 -c "import json; print(round(json.load(open('$tmp/peer.json'))['test_accuracy'], 4))" ;;
  esac
}

echo "recipe,kernel,seed,test_accuracy" | tee "$tmp/rows.csv"
for r in "${recipes[@]}"; do
  ks=("${usable[@]}") ss=("${seeds[@]}")
  case $r in
    peer-*) ks=(default) ;;           # PyTorch: the recipe's noise over seeds
  esac
  for k in "${ks[@]}"; do
    for s in "${ss[@]}"; do
      acc=$(run "$r" "$k" "$s")
      [ -n "$acc" ] || { echo "accuracy_spread.sh: error: $r, kernel $k, seed $s: no accuracy" >&2; exit 1; }
      echo "$r,$k,$s,$acc" | tee -a "$tmp/rows.csv"
    done
  done
done
cp "$tmp/rows.csv" "$out_csv"
python3 - "$out_csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("\n| recipe | runs | lowest | highest | lowest run |")
print("|---|---|---|---|---|")
for r in dict.fromkeys(x["recipe"] for x in rows):
    mine = [x for x in rows if x["recipe"] == r]
    lo = min(mine, key=lambda x: float(x["test_accuracy"]))
    hi = max(float(x["test_accuracy"]) for x in mine)
    print(f"| {r} | {len(mine)} | {float(lo['test_accuracy']):.4f} | {hi:.4f} "
          f"| {lo['kernel']}, seed {lo['seed']} |")
PY
