#!/usr/bin/env bash
# Installs what dptrain needs on Debian 12 (only what is missing), then configures and builds
# it with CMake into build/. Safe to run again: it installs nothing twice and rebuilds only
# what changed. Uses sudo only when not root.
#   launch/setup.sh            install + build
#   DPT_BUILD_DIR=dir          build somewhere else
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DPT_BUILD_DIR:-$root_dir/build}

packages=(build-essential cmake ninja-build pkg-config openmpi-bin libopenmpi-dev
          libopenblas-dev zlib1g-dev libcli11-dev nlohmann-json3-dev libgtest-dev
          dataset-fashion-mnist python3 clang libclang-rt-14-dev gnuplot-nox slurm-wlm munge)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$root_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "$jobs"
