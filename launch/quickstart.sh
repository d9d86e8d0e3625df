#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained model: installs what is missing, builds, and
# trains the mlp preset on Fashion-MNIST with two MPI ranks. Safe to run twice.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root_dir/launch/setup.sh"
source "$root_dir/launch/mpi_env.sh"
cd "$root_dir"
echo "+ mpirun -np 2 build/dptrain train --dataset fashion-mnist --model mlp --epochs 5 --batch-size 64 --lr 0.02 --momentum 0.9 $*"
exec mpirun -np 2 build/dptrain train --dataset fashion-mnist --model mlp --epochs 5 \
  --batch-size 64 --lr 0.02 --momentum 0.9 "$@"
