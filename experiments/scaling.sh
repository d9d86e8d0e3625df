#!/usr/bin/env bash
# Scaling sweep: runs dptrain at each world size, several times, and reports one CSV row per run
# (experiments/scaling/report.py) with plots.
#   experiments/scaling.sh [--model mlp] [--label NAME] [--sizes "1 2 3 4"] [--mode weak|strong]
#                          [--batch 64] [--steps 200] [--repeats 3] [--peer] [--tokens DIR]
#                          [--out DIR] [-- dptrain args]
# weak: --batch is per rank at every size; strong: --batch is the global batch, split over ranks.
# Each run trains --steps optimizer steps with one BLAS thread per rank; its median step time
# (warm-up steps fall outside the median) gives samples/s. World sizes above the core count are
# run oversubscribed and marked so. --peer also runs experiments/peer_pytorch_ddp.py at each point,
# alternating with dptrain (it needs Debian's python3-torch; PYTHON_TORCH names another Python).
# Inside a Slurm allocation mpirun takes its hosts from Slurm.
# A gpt model ("gpt(...)" or a preset) trains on token shards: --tokens DIR holds train_*.bin
# (dptrain prepare-text), else the sweep prepares them from Debian's fortunes (or the licence
# texts) into OUT/data. It trains with nanoGPT's AdamW (lr 1e-3, beta2 0.95, weight decay 0.1 on
# matrices, clipping at 1.0), and its peer is experiments/peer_pytorch_gpt.py with that recipe.
# --label names the runs (default: the model; needed for a spec with parentheses): runs of
# several labels (a variant's dptrain args after --) can share one OUT and one report.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
model=mlp label="" sizes="1 2 3 4" mode=weak batch=64 steps=200 repeats=3 peer=0 tokens=""
out=$root_dir/runs/scaling-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --peer) peer=1; shift ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "scaling.sh: error: unknown option '$1'" >&2; exit 2 ;;
  esac
done
case $mode in weak | strong) ;; *) echo "scaling.sh: error: --mode must be weak or strong" >&2; exit 2 ;; esac
[ -n "$label" ] || label=$model
[[ $label =~ ^[A-Za-z0-9_.]+$ ]] ||
  { echo "scaling.sh: error: --label '$label': use letters, digits, '_' and '.' (a model spec needs --label)" >&2; exit 2; }
lm=0
[[ $model == gpt* ]] && lm=1
if [ -n "$tokens" ] && ! compgen -G "$tokens/train_*.bin" > /dev/null; then
  echo "scaling.sh: error: --tokens $tokens: no train_*.bin there (dptrain prepare-text)" >&2
  exit 2
fi
for p in $sizes; do
  case $p in '' | *[!0-9]* | 0) echo "scaling.sh: error: world size '$p' is not a positive number" >&2; exit 2 ;; esac
  if [ "$mode" = strong ] && [ $((batch % p)) -ne 0 ]; then
    echo "scaling.sh: error: global batch $batch does not split over $p ranks" >&2
    exit 2
  fi
done
[ -x "$root_dir/build/dptrain" ] || { echo "scaling.sh: error: build dptrain first (launch/setup.sh)" >&2; exit 2; }
mkdir -p "$out/runs"
echo "scaling: $model, $mode, sizes $sizes, batch $batch, $steps steps, $repeats repeats -> $out"

data_args=() peer_args=() tokens_per_sample=0
if [ "$lm" -eq 1 ]; then
  if [ -z "$tokens" ]; then
    tokens=$out/data
    if ! compgen -G "$tokens/train_*.bin" > /dev/null; then
      text=/usr/share/games/fortunes
      [ -d "$text" ] || text=/usr/share/common-licenses
      "$root_dir/build/dptrain" prepare-text --out "$tokens" "$text" | tail -n 1
    fi
  fi
  recipe=(--lr 1e-3 --beta2 0.95 --weight-decay 0.1 --grad-clip 1.0)
  data_args=(--train-tokens "$tokens/train_*.bin" --optimizer adamw "${recipe[@]}")
  peer_args=(--train-tokens "$tokens/train_*.bin" "${recipe[@]}")
  tokens_per_sample=$(python3 -c "import re, sys
m = re.search(r'block_size\s*=\s*(\d+)', sys.argv[1])
print(m.group(1) if m else {'gpt2': 1024, 'gpt2-medium': 1024}.get(sys.argv[1], 0))" "$model")
  [ "$tokens_per_sample" -gt 0 ] ||
    { echo "scaling.sh: error: --model $model: give block_size=N" >&2; exit 2; }
fi

for r in $(seq "$repeats"); do
  for p in $sizes; do
    per_rank=$batch
    [ "$mode" = strong ] && per_rank=$((batch / p))
    dir=$out/runs/$label-$mode-p$p-r$r
    mpirun -np "$p" "$root_dir/build/dptrain" train --model "$model" --batch-size "$per_rank" \
      --max-steps "$steps" --threads 1 --eval-batch-size 1000 --out "$dir" "${data_args[@]}" "$@" \
      > "$dir.log"
    [ "$lm" -eq 0 ] || echo "{\"tokens_per_sample\": $tokens_per_sample}" > "$dir/sweep.json"
    if [ "$peer" -eq 1 ] && [ "$lm" -eq 1 ]; then
      "${PYTHON_TORCH:-/usr/bin/python3}" "$root_dir/experiments/peer_pytorch_gpt.py" --nproc "$p" \
        --model "$model" --batch-size "$per_rank" --max-steps "$steps" --threads 1 \
        "${peer_args[@]}" --out "$dir/peer.json" > "$dir.peer.log" 2>&1
    elif [ "$peer" -eq 1 ]; then
      "${PYTHON_TORCH:-/usr/bin/python3}" "$root_dir/experiments/peer_pytorch_ddp.py" --nproc "$p" --model "$model" \
        --batch-size "$per_rank" --max-steps "$steps" --threads 1 --out "$dir/peer.json" \
        > "$dir.peer.log" 2>&1
    fi
    echo "  p=$p repeat $r done"
  done
done
python3 "$root_dir/experiments/scaling/report.py" "$out/runs" "$out"
echo "scaling: $out/scaling.csv, $out/summary.csv and plots in $out"
