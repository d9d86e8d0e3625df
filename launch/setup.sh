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

# cuDNN's flash attention (bf16 gpt on a GPU) is called through cudnn_frontend, a header-only
# library Debian does not package. Where a CUDA toolkit is installed, its headers come from
# PyPI's nvidia-cudnn-frontend wheel (pinned), unpacked into build-deps/cudnn-frontend/include,
# once. Without them (PyPI out of reach) the build goes on and attention runs unfused.
fe_version=1.32.0
fe_dir=$root_dir/build-deps/cudnn-frontend
if { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } &&
   [ ! -f "$fe_dir/include/cudnn_frontend.h" ]; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-pip
  fi
  fe_tmp=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$fe_tmp" \
       "nvidia-cudnn-frontend==$fe_version" > "$fe_tmp/pip.log" 2>&1; then
    if python3 - "$fe_tmp" "$fe_dir" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
staging = dest + ".tmp"
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    z.extractall(staging, [n for n in z.namelist() if n.startswith("include/")])
shutil.rmtree(dest, ignore_errors=True)
os.replace(staging, dest)
PY
    then
      echo "setup: cudnn_frontend $fe_version headers -> build-deps/cudnn-frontend"
    else
      echo "setup: could not unpack nvidia-cudnn-frontend; bf16 attention will run unfused"
    fi
  else
    echo "setup: could not download nvidia-cudnn-frontend==$fe_version (see below); bf16" \
         "attention will run unfused"
    cat "$fe_tmp/pip.log"
  fi
  rm -rf "$fe_tmp"
fi

jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$root_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "$jobs"
