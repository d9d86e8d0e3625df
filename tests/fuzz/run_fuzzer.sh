#!/usr/bin/env bash
# Builds one libFuzzer target (clang, with AddressSanitizer and UndefinedBehaviorSanitizer) and
# runs it for a fixed time from its seed corpus. Any crash, leak, sanitizer report or input that
# takes longer than 5 s fails the run; libFuzzer saves the input under build-fuzz/artifacts/.
#   run_fuzzer.sh TARGET SECONDS        TARGET: idx, npy, safetensors, model_spec
set -euo pipefail
target=$1
seconds=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/build-fuzz
mkdir -p "$out/artifacts" "$out/corpus-$target"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root")
case $target in
  idx | npy) sources=(-DDPT_WITH_ZLIB=1 "$root/src/data/dataset.cpp"
                      "$root/src/data/idx_reader.cpp" "$root/src/data/npy_reader.cpp" -lz) ;;
  safetensors) sources=("$root/src/io/safetensors.cpp") ;;
  model_spec) sources=("$root"/src/model/*.cpp "$root/kernels/ops.cpp") ;;
  *) echo "unknown fuzz target $target" >&2; exit 2 ;;
esac
binary=$out/fuzz_$target
sources_newer=$(find "$root/tests/fuzz/fuzz_$target.cpp" "$root/src" "$root/kernels" -newer "$binary" \
  \( -name '*.cpp' -o -name '*.hpp' \) 2>/dev/null | head -n 1 || true)
if [ ! -x "$binary" ] || [ -n "$sources_newer" ]; then
  clang++ "${flags[@]}" "$root/tests/fuzz/fuzz_$target.cpp" "$root"/src/core/*.cpp \
    "${sources[@]}" -o "$binary"
fi
# New inputs go to a scratch corpus in build-fuzz; the committed seeds stay as they are.
"$binary" "$out/corpus-$target" "$root/tests/fuzz/corpus/$target" -max_total_time="$seconds" \
  -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-"
