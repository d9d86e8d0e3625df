#!/usr/bin/env bash
# Builds one libFuzzer target (clang, with AddressSanitizer and UndefinedBehaviorSanitizer) and
# runs it for a fixed time from its seed corpus. Any crash, leak, sanitizer report or input that
# takes longer than 5 s fails the run; libFuzzer saves the input under build-fuzz/artifacts/.
#   run_fuzzer.sh TARGET SECONDS        TARGET: idx, npy, safetensors, model_spec
# Each source compiles to its own object under build-fuzz/obj, on every core, and the targets
# share them: an object is rebuilt when its source, or any header of the project, is newer.
set -euo pipefail
target=$1
seconds=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/build-fuzz
mkdir -p "$out/artifacts" "$out/corpus-$target" "$out/obj"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root" -DDPT_WITH_ZLIB=1)
libs=()
cd "$root"  # the sources below are relative to it
case $target in
  idx | npy) sources=(src/data/dataset.cpp src/data/idx_reader.cpp src/data/npy_reader.cpp)
             libs=(-lz) ;;
  safetensors) sources=(src/io/safetensors.cpp) ;;
  model_spec) sources=(src/model/*.cpp kernels/ops.cpp kernels/backend.cpp) ;;
  *) echo "unknown fuzz target $target" >&2; exit 2 ;;
esac
sources=(tests/fuzz/fuzz_$target.cpp src/core/*.cpp "${sources[@]}")

# The newest header decides for every object (a header change may touch any of them).
newest_header=$(find src kernels -name '*.hpp' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
stale=()
objects=()
for s in "${sources[@]}"; do
  o=$out/obj/${s//\//_}.o
  objects+=("$o")
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then stale+=("$s"); fi
done
if [ ${#stale[@]} -gt 0 ]; then
  export DPT_FUZZ_FLAGS="${flags[*]}" DPT_FUZZ_OBJ=$out/obj
  # Written to a temporary name and renamed, so that a stopped build leaves no half object.
  printf '%s\n' "${stale[@]}" | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} bash -c \
    'o=$DPT_FUZZ_OBJ/$(echo "$1" | tr / _).o; clang++ $DPT_FUZZ_FLAGS -c "$1" -o "$o.tmp.$$" && mv "$o.tmp.$$" "$o"' _ {}
fi
binary=$out/fuzz_$target
clang++ "${flags[@]}" "${objects[@]}" "${libs[@]}" -o "$binary.tmp.$$"
mv "$binary.tmp.$$" "$binary"
# New inputs go to a scratch corpus in build-fuzz; the committed seeds stay as they are.
"$binary" "$out/corpus-$target" "tests/fuzz/corpus/$target" -max_total_time="$seconds" \
  -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-"
