#!/usr/bin/env bash
# Checks that the working tree trains bit for bit as BASE_REV does: for a change that should not
# move a single bit (a restructuring, a rename), not a test of tests/run.sh.
#
# Builds BASE_REV in a temporary git worktree (its own build folder, Release, as
# launch/setup.sh configures it) and the working tree in build/ (DPT_BUILD_DIR), runs the same
# short CLI trainings with both dptrain binaries, and compares each final model.safetensors with
# cmp. Prints one line per run (identical or DIFFERENT) and exits 1 on any difference or failure.
#   tests/bitwise_check.sh BASE_REV
#   OPENBLAS_CORETYPE=...    OpenBLAS kernel for both (default Haswell: the same kernel every run)
#   BITWISE_CMAKE_ARGS=...   extra configure arguments for both builds, e.g. -DDPT_CUDA=OFF
#   BITWISE_KEEP=1           keep the scratch folder (worktree, builds, runs) and print it
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 BASE_REV" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base_rev=$(git -C "$root" rev-parse --verify "$1^{commit}")
build_dir=${DPT_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
read -r -a cmake_args <<<"${BITWISE_CMAKE_ARGS:-}"
# shellcheck source=../launch/mpi_env.sh
source "$root/launch/mpi_env.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dptrain-bitwise.XXXXXX")
cleanup() {
  if [ "${BITWISE_KEEP:-0}" = 1 ]; then
    echo "bitwise_check: kept $tmp"
    return
  fi
  git -C "$root" worktree remove --force "$tmp/base" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Configures (when not yet configured) and builds dptrain in $2 from the sources in $1.
build() {
  if [ ! -f "$2/CMakeCache.txt" ]; then
    local log
    log=$tmp/configure-$(basename "$2").log
    cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}" >"$log" 2>&1 ||
      { cat "$log" >&2; exit 1; }
  fi
  if ! grep -q "^CMAKE_BUILD_TYPE:STRING=Release$" "$2/CMakeCache.txt"; then
    echo "bitwise_check: $2 is not a Release build; point DPT_BUILD_DIR at one" >&2
    exit 1
  fi
  cmake --build "$2" -j "$jobs" --target dptrain
}

echo "bitwise_check: base $base_rev in $tmp/base"
git -C "$root" worktree add --detach --quiet "$tmp/base" "$base_rev"
build "$tmp/base" "$tmp/base-build"
echo "bitwise_check: working tree in $build_dir"
build "$root" "$build_dir"

# name | ranks | arguments
runs=(
  "mlp-sgd-np1|1|--model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --max-steps 200"
  "mlp-sgd-np2|2|--model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --max-steps 200"
  "mlp-sgd-bucket0-np1|1|--model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --max-steps 200 --bucket-mb 0"
  "mlp-sgd-bucket0-np2|2|--model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --max-steps 200 --bucket-mb 0"
  "cnn-adamw-np1|1|--model cnn --optimizer adamw --lr 1e-3 --max-steps 40"
  "cnn-adamw-np2|2|--model cnn --optimizer adamw --lr 1e-3 --max-steps 40"
  "mlp-sgd-accumulate2-np2|2|--model mlp --optimizer sgd --lr 0.05 --momentum 0.9 --max-steps 200 --accumulate 2"
)

failed=0
results=()
for run in "${runs[@]}"; do
  IFS='|' read -r name ranks args <<<"$run"
  read -r -a argv <<<"$args"
  for side in base current; do
    if [ $side = base ]; then binary=$tmp/base-build/dptrain; else binary=$build_dir/dptrain; fi
    out=$tmp/runs/$side/$name
    mkdir -p "$(dirname "$out")"
    echo "bitwise_check: $name ($side)"
    if ! mpirun -np "$ranks" -x OPENBLAS_CORETYPE "$binary" train "${argv[@]}" --batch-size 64 \
        --out "$out" >"$out.log" 2>&1; then
      echo "bitwise_check: $name ($side) failed; its last lines:" >&2
      tail -n 5 "$out.log" >&2
    fi
  done
  a=$tmp/runs/base/$name/model.safetensors
  b=$tmp/runs/current/$name/model.safetensors
  if [ ! -f "$a" ] || [ ! -f "$b" ]; then
    verdict="FAILED (no model.safetensors)"
    failed=1
  elif cmp -s "$a" "$b"; then
    verdict=identical
  else
    verdict=DIFFERENT
    failed=1
  fi
  results+=("$(printf '%-26s %-4s %s' "$name" "$ranks" "$verdict")")
done

echo
echo "base:    $(git -C "$root" log -1 --format='%h %s' "$base_rev")"
echo "current: the working tree at $(git -C "$root" log -1 --format=%h HEAD)$(
  git -C "$root" diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, batch 64 per rank"
printf '%-26s %-4s %s\n' run np model.safetensors
for line in "${results[@]}"; do echo "$line"; done
exit $failed
