#!/usr/bin/env bash
# The GPU machine's build, rehearsed on a Debian machine without a GPU: what check.sh's build
# phase does there, with only what travels in .carry/. CLI11, nlohmann-json and GoogleTest come
# from .carry/deps (the Debian packages are not looked for), MPI from the carried Open MPI wheel,
# and zlib and OpenBLAS are left out, as that machine lacks them. Then it runs the CPU unit
# tests, the GPU tests (which skip here, visibly), `dptrain info` and two ranks under the wheel's
# mpirun. It catches a build that would fail there before device time is spent on it.
#   experiments/gpu/pack_carry.sh               first: fills .carry/
#   [CUDA_ARCH=90] experiments/gpu/rehearse.sh [BUILD_DIR]   (default /tmp/dptrain-rehearse)
# The GPU machine has CMake 4.4; put a CMake 4 first on PATH to rehearse with it too (PyPI's
# `cmake` package in a virtual environment has one). Exit 0 when every step passed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-/tmp/dptrain-rehearse}
arch=${CUDA_ARCH:-90}
cd "$root" || exit 2
[ -d .carry ] || { echo "rehearse: error: no .carry/ (run experiments/gpu/pack_carry.sh)" >&2; exit 2; }
if ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
export DPT_CARRY_TMP=${DPT_CARRY_TMP:-$build-carry}
# shellcheck source=/dev/null
source experiments/gpu/use_carry.sh || exit 1
echo "rehearse: $(cmake --version | head -1), nvcc $(nvcc --version | tail -1)"

failed=0
step() {  # name command...: runs it, says pass or FAIL
  local name=$1 start
  shift
  start=$(date +%s)
  if "$@" > "$build.$name.log" 2>&1; then
    echo "rehearse: $name pass ($(($(date +%s) - start)) s)"
  else
    echo "rehearse: $name FAIL ($(($(date +%s) - start)) s): last lines of $build.$name.log:"
    tail -n 15 "$build.$name.log"
    failed=1
  fi
}

rm -rf "$build"
# shellcheck disable=SC2086
step configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DDPT_ZLIB=OFF -DDPT_OPENBLAS=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON $DPT_CMAKE_ARGS
[ $failed -eq 0 ] && grep "^-- dptrain:" "$build.configure.log"
[ $failed -eq 0 ] && step build cmake --build "$build" -j "$(nproc)"
if [ $failed -eq 0 ]; then
  # Warnings from dptrain's own files (GoogleTest's CMake deprecation notes are not ours).
  if grep -E "/(src|kernels|comm|tests)/[^ :(]*(:[0-9]+(:[0-9]+)?|\([0-9]+\)): warning" "$build.build.log"; then
    echo "rehearse: the build warns (above)"
    failed=1
  fi
  step unit_tests ctest --test-dir "$build" -L unit --output-on-failure -j "$(nproc)"
  step gpu_tests_skip "$build/tests/gpu/dptrain_gpu_tests"
  step info "$build/dptrain" info
  step two_ranks mpirun -np 2 "$build/dptrain" train --model mlp --dataset "$DPT_DATA_DIR" \
    --max-steps 20 --out "$build-run"
fi
if [ $failed -eq 0 ]; then echo "rehearse: every step passed"; else echo "rehearse: some step FAILED"; fi
exit $failed
