#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Bad input to `dptrain train` under mpirun -np 2: every case must end with exit code 2, exactly
# one "dptrain: error: " line that names the file or option and the problem, no run directory,
# and no hang (an end within 50 s, under ctest's TIMEOUT).
#
# Usage: bad_input.sh CASE BUILD_DIR          a case below; its fixtures are tiny IDX / .npy
#                                             files made here, so each run takes about a second
#        bad_input.sh folder/CASE BUILD_DIR   a line of tests/data/bad_inputs/expected.tsv (the
#                                             folder's files, made by make_bad_inputs.py)
set -u
usage="usage: bad_input.sh [folder/]CASE BUILD_DIR"
case_name=${1:?$usage}
build=$(realpath "${2:?$usage}")
dptrain=$build/dptrain
here=$(dirname "$(realpath "$0")")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=../../launch/mpi_env.sh
source "$here/../../launch/mpi_env.sh"
failures=0

# --- fixtures ---------------------------------------------------------------------------------

byte() { printf '%b' "\\x$(printf '%02x' "$1")"; }
be32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
# idx_header TYPE DIM...: magic 00 00 TYPE NDIM (TYPE in hex), then each dim as big-endian uint32.
idx_header() {
  local type=$1
  shift
  byte 0
  byte 0
  byte $((16#$type))
  byte $#
  for d; do be32 "$d"; done
}
# idx_images FILE N: N blank 28x28 uint8 images (pixel values do not matter here).
idx_images() { { idx_header 08 "$2" 28 28; head -c $(($2 * 784)) /dev/zero; } >"$1"; }
# idx_labels FILE N MOD: N uint8 labels 0, 1, ..., MOD-1, 0, 1, ...
idx_labels() {
  local i
  { idx_header 08 "$2"; for ((i = 0; i < $2; i++)); do byte $((i % $3)); done; } >"$1"
}
# npy_header DESCR FORTRAN SHAPE: a version 1.0 header padded with spaces and ended by '\n' so
# that the data starts at a multiple of 64 bytes, as numpy writes it.
npy_header() {
  local dict="{'descr': '$1', 'fortran_order': $2, 'shape': $3, }"
  local pad=$(((64 - (10 + ${#dict} + 1) % 64) % 64))
  local len=$((${#dict} + pad + 1))
  printf '\x93NUMPY\x01\x00'
  byte $((len & 255))
  byte $((len >> 8))
  printf '%s%*s\n' "$dict" "$pad" ''
}

# 40 training samples (2 ranks x batch 4 fit, batch 30 does not) and 10 test samples.
idx_images "$tmp/train-images" 40
idx_labels "$tmp/train-labels" 40 10
idx_images "$tmp/test-images" 10
idx_labels "$tmp/test-labels" 10 10

# set_args [TRAIN_IMAGES [TRAIN_LABELS [TEST_IMAGES [TEST_LABELS]]]]: sets `args` to the data
# files (an empty or missing one is the valid fixture) and short training settings; batch=B
# before the call changes the batch size.
set_args() {
  args=(--train-images "${1:-$tmp/train-images}" --train-labels "${2:-$tmp/train-labels}"
        --test-images "${3:-$tmp/test-images}" --test-labels "${4:-$tmp/test-labels}"
        --batch-size "${batch:-4}" --max-steps 1)
}

# --- checks -----------------------------------------------------------------------------------

# run_dptrain OUT ARGS...: mpirun -np 2 dptrain train ARGS --out OUT, output in $tmp/std{out,err};
# sets rc. A timeout (124, or 137 after the kill) means a hang. subcommand=S before the call runs
# another subcommand that writes to --out (prepare-text).
run_dptrain() {
  local out=$1
  shift
  rc=0
  timeout -k 5 50 mpirun -np 2 "$dptrain" "${subcommand:-train}" "$@" --out "$out" \
    </dev/null >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
}

# expect_error WHAT PHRASE ARGS...: the run must fail cleanly, its one error line containing both
# WHAT (the file, option or spec) and PHRASE (the problem).
expect_error() {
  local what=$1 phrase=$2
  shift 2
  rm -rf "$tmp/run"
  run_dptrain "$tmp/run" "$@"
  local problems=() lines
  # mpirun adds its own banner about ranks that exited non-zero; only our lines count.
  lines=$(grep '^dptrain: error: ' "$tmp/stderr")
  if ((rc == 124 || rc == 137)); then
    problems+=("no exit within 50 s (hang)")
  elif ((rc != 2)); then
    problems+=("exit code $rc, expected 2")
  fi
  local n
  n=$(grep -c '^dptrain: error: ' "$tmp/stderr")
  if ((n != 1)); then
    problems+=("$n 'dptrain: error: ' lines, expected 1")
  else
    grep -qF -- "$what" <<<"$lines" || problems+=("error line does not name '$what'")
    grep -qF -- "$phrase" <<<"$lines" || problems+=("error line does not say '$phrase'")
  fi
  [[ -e $tmp/run ]] && problems+=("run directory $tmp/run was created")
  if ((${#problems[@]})); then
    failures=$((failures + 1))
    echo "FAIL: (cd $PWD && mpirun -np 2 $dptrain train $* --out $tmp/run)"
    printf '  - %s\n' "${problems[@]}"
    echo "  --- stderr:"
    sed 's/^/  | /' "$tmp/stderr"
    echo "  --- stdout (tail):"
    tail -n 5 "$tmp/stdout" | sed 's/^/  | /'
  else
    echo "ok: $lines"
  fi
}

# expect_ok OUT ARGS...: a control run that must succeed (so fixtures are broken only on purpose).
expect_ok() {
  local out=$1
  shift
  run_dptrain "$out" "$@"
  if ((rc != 0)); then
    failures=$((failures + 1))
    echo "FAIL: control run exited $rc: dptrain train $* --out $out"
    sed 's/^/  | /' "$tmp/stderr"
  fi
}

# listed_case CASE: the line CASE of tests/data/bad_inputs/expected.tsv. The bad file goes to
# the option its role names and the folder's good fixtures to the other data options, so the bad
# file is the only thing wrong. Run from the folder with bare names: the path in the message is
# then exactly the one in expected.tsv, wherever the checkout lives.
listed_case() {
  local data role file expected train_images=good_images.idx.gz train_labels=good_labels.idx
  local extra=()
  data=$(realpath "$here/../data/bad_inputs")
  # Fields are tab-separated; the message may hold anything else, so compare the case exactly.
  IFS=$'\t' read -r _ role file expected < <(awk -F'\t' -v c="$1" '$1 == c' "$data/expected.tsv")
  if [[ -z ${role:-} || -z ${expected:-} ]]; then
    echo "bad_input.sh: no case '$1' in $data/expected.tsv" >&2
    exit 2
  fi
  case $role in
    train-images) train_images=${file%%+*}; [[ $file == *+* ]] && train_labels=${file#*+} ;;
    train-labels) train_labels=$file ;;
    init-weights) extra=(--init-weights "$file") ;;
    *) echo "bad_input.sh: unknown role '$role'" >&2; exit 2 ;;
  esac
  cd "$data" || exit 2
  # The message must name the bad file (for a pair, the images file it leads with).
  expect_error "${file%%+*}" "$expected" --model mlp --max-steps 1 --batch-size 4 \
    --train-images "$train_images" --train-labels "$train_labels" \
    --test-images good_test_images.idx.gz --test-labels good_test_labels.idx "${extra[@]}"
}

# --- cases ------------------------------------------------------------------------------------

case $case_name in
  folder/*)
    listed_case "${case_name#folder/}"
    ;;
  missing_file)
    set_args "$tmp/no-such-images.gz"
    expect_error "$tmp/no-such-images.gz" "cannot open" "${args[@]}"
    set_args "" "" "" "$tmp/no-such-labels"
    expect_error "$tmp/no-such-labels" "cannot open" "${args[@]}"
    ;;
  wrong_idx_magic)
    # Type code 0x09 is no IDX type; 01 02 ... is neither IDX nor .npy.
    { idx_header 09 40 28 28; head -c $((40 * 784)) /dev/zero; } >"$tmp/bad-type"
    set_args "$tmp/bad-type"
    expect_error "$tmp/bad-type" "unsupported IDX data type code 0x09" "${args[@]}"
    { printf '\x01\x02\x08\x01'; be32 40; head -c 40 /dev/zero; } >"$tmp/bad-magic"
    set_args "" "$tmp/bad-magic"
    expect_error "$tmp/bad-magic" "unrecognised magic bytes 01 02 08 01" "${args[@]}"
    # Inside gzip: the message names the .gz file the user gave.
    gzip -c "$tmp/bad-type" >"$tmp/bad-type.gz"
    set_args "$tmp/bad-type.gz"
    expect_error "$tmp/bad-type.gz" "unsupported IDX data type code 0x09" "${args[@]}"
    ;;
  truncated_idx)
    # Data cut short by half an image; a header cut inside the dims; a gzip stream cut short.
    head -c $((16 + 39 * 784 + 392)) "$tmp/train-images" >"$tmp/short-data"
    set_args "$tmp/short-data"
    expect_error "$tmp/short-data" "truncated" "${args[@]}"
    head -c 10 "$tmp/train-images" >"$tmp/short-header"
    set_args "$tmp/short-header"
    expect_error "$tmp/short-header" "truncated: the IDX header needs 16 bytes" "${args[@]}"
    gzip -c "$tmp/train-images" | head -c 60 >"$tmp/short.gz"
    set_args "$tmp/short.gz"
    expect_error "$tmp/short.gz" "gzip" "${args[@]}"
    ;;
  truncated_npy)
    { npy_header '|u1' False '(40, 28, 28)'; head -c $((40 * 784)) /dev/zero; } >"$tmp/images.npy"
    set_args "$tmp/images.npy"
    expect_ok "$tmp/control" "${args[@]}"
    head -c $((64 + 40 * 784 - 100)) "$tmp/images.npy" >"$tmp/short.npy"
    set_args "$tmp/short.npy"
    expect_error "$tmp/short.npy" "truncated" "${args[@]}"
    head -c 40 "$tmp/images.npy" >"$tmp/short-header.npy"
    set_args "$tmp/short-header.npy"
    expect_error "$tmp/short-header.npy" "truncated: header length" "${args[@]}"
    ;;
  count_mismatch)
    idx_labels "$tmp/39-labels" 39 10
    set_args "" "$tmp/39-labels"
    expect_error "$tmp/39-labels" "40 images but" "${args[@]}"
    idx_images "$tmp/9-images" 9
    set_args "" "" "$tmp/9-images"
    expect_error "$tmp/9-images" "9 images but" "${args[@]}"
    ;;
  label_out_of_range)
    idx_labels "$tmp/labels-0-10" 40 11
    set_args "" "$tmp/labels-0-10"
    expect_error "$tmp/labels-0-10" "label 10 is out of range" "${args[@]}"
    # A 5-output model: training labels 0..4 fit, a test label 7 does not.
    idx_labels "$tmp/labels-0-4" 40 5
    idx_labels "$tmp/labels-0-7" 10 8
    set_args "" "$tmp/labels-0-4" "" "$tmp/labels-0-7"
    expect_error "$tmp/labels-0-7" "label 7 is out of range" "${args[@]}" --model "flatten linear(5)"
    ;;
  npy_unsupported_dtype)
    { npy_header '<f8' False '(40, 28, 28)'; head -c $((40 * 784 * 8)) /dev/zero; } >"$tmp/f8.npy"
    set_args "$tmp/f8.npy"
    expect_error "$tmp/f8.npy" "unsupported dtype '<f8'" "${args[@]}"
    ;;
  npy_fortran_order)
    { npy_header '<f4' False '(40, 784)'; head -c $((40 * 784 * 4)) /dev/zero; } >"$tmp/c.npy"
    # Flat (N, 784) samples: the test set must be flat too.
    set_args "$tmp/c.npy" "" "$tmp/c.npy" "$tmp/train-labels"
    expect_ok "$tmp/control" "${args[@]}" --model "linear(10)"
    { npy_header '<f4' True '(40, 784)'; head -c $((40 * 784 * 4)) /dev/zero; } >"$tmp/f.npy"
    set_args "$tmp/f.npy"
    expect_error "$tmp/f.npy" "Fortran order is not supported" "${args[@]}"
    ;;
  unknown_option)
    set_args
    expect_error "--no-such-option" "not expected" "${args[@]}" --no-such-option
    ;;
  unknown_preset)
    set_args
    expect_error '"foo"' "unknown layer 'foo'" "${args[@]}" --model foo
    ;;
  malformed_spec)
    set_args
    expect_error '"linear(256"' "missing ')'" "${args[@]}" --model "linear(256"
    expect_error '"conv2d(0,3)"' "out of range" "${args[@]}" --model "conv2d(0,3)"
    expect_error '"linear(x)"' "is not an integer" "${args[@]}" --model "linear(x)"
    expect_error '"residual() linear(10)"' "residual() has an empty body" "${args[@]}" \
      --model "residual() linear(10)"
    ;;
  spec_not_fitting_input)
    # Parses, but the layers do not fit 1x28x28 samples: the line must still name the spec.
    set_args
    expect_error '"conv2d(4,3)"' "flat outputs" "${args[@]}" --model "conv2d(4,3)"
    expect_error '"flatten conv2d(4,3)"' "conv2d needs [channels, height, width]" "${args[@]}" \
      --model "flatten conv2d(4,3)"
    # A 29x29 window on 28x28 samples must be refused, not read past the image.
    expect_error '"maxpool2d(29) flatten linear(10)"' "does not fit" "${args[@]}" \
      --model "maxpool2d(29) flatten linear(10)"
    expect_error '"flatten residual(linear(32)) linear(10)"' \
      "residual(linear(32)): body maps [784] to [32]; a residual block must keep the shape" \
      "${args[@]}" --model "flatten residual(linear(32)) linear(10)"
    ;;
  precision_options)
    # bf16 compute needs layers whose ops take bf16: a convolution does not (yet).
    set_args
    expect_error "conv2d" "does not take bfloat16" "${args[@]}" --precision bf16 \
      --model "conv2d(4,3) flatten linear(10)"
    expect_error "--precision" "not in {fp32,bf16}" "${args[@]}" --precision fp16
    expect_error "--stochastic-rounding" "needs --precision bf16" "${args[@]}" --stochastic-rounding
    ;;
  batch_size_zero)
    batch=0 set_args
    expect_error "--batch-size" "not in range" "${args[@]}"
    ;;
  batch_larger_than_shard)
    batch=30 set_args
    expect_error "--batch-size" "larger than a rank's shard" "${args[@]}"
    ;;
  safetensors_wrong_names)
    set_args
    expect_ok "$tmp/ok" "${args[@]}" --model "flatten linear(10)"
    # flatten linear(10) saved 1.weight, 1.bias; mlp wants 0.weight first.
    expect_error "$tmp/ok/model.safetensors" "no tensor '0.weight'" "${args[@]}" \
      --model mlp --init-weights "$tmp/ok/model.safetensors"
    ;;
  safetensors_wrong_shapes)
    set_args
    expect_ok "$tmp/ok" "${args[@]}" --model "linear(12) relu linear(10)"
    # Same names (0.weight, 0.bias, 2.weight, 2.bias), 12 hidden units where 16 are wanted.
    expect_error "$tmp/ok/model.safetensors" "has shape [12, 784], the model needs [16, 784]" \
      "${args[@]}" --model "linear(16) relu linear(10)" --init-weights "$tmp/ok/model.safetensors"
    ;;
  init_weights_missing)
    set_args
    expect_error "$tmp/none.safetensors" "cannot open" "${args[@]}" \
      --init-weights "$tmp/none.safetensors"
    ;;
  prepare_text_bad_input)
    mkdir -p "$tmp/text" "$tmp/binary"
    printf 'some text\nand more\n' >"$tmp/text/a.txt"
    head -c 100 /dev/zero >"$tmp/binary/x.dat"
    subcommand=prepare-text expect_error "$tmp/no-such-text" "no such file or folder" \
      "$tmp/no-such-text"
    subcommand=prepare-text expect_error "--val-fraction" "is not in [0, 1)" "$tmp/text" \
      --val-fraction 1.5
    subcommand=prepare-text expect_error "prepare-text" "no text in 1 file(s)" "$tmp/binary"
    ;;
  token_shards)
    gpt="gpt(n_layer=1, n_head=2, n_embd=8, block_size=8, vocab_size=256)"
    "$dptrain" prepare-text "$here/../../README.md" --out "$tmp/tokens" >/dev/null
    # Magic 12345: a file of the right size that is no token shard.
    { printf '\x39\x30\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00'; head -c 1012 /dev/zero
      head -c 8 /dev/zero; } >"$tmp/magic.bin"
    expect_error "$tmp/magic.bin" "is not a token shard's" --model "$gpt" --max-steps 1 \
      --train-tokens "$tmp/magic.bin"
    head -c 1100 "$tmp/tokens/train_000000.bin" >"$tmp/short.bin"
    expect_error "$tmp/short.bin" "but its header says" --model "$gpt" --max-steps 1 \
      --train-tokens "$tmp/short.bin"
    expect_error "--train-tokens" "matches no file" --model "$gpt" --max-steps 1 \
      --train-tokens "$tmp/tokens/nothing_*.bin"
    expect_error "--train-tokens" "is not a language model" --max-steps 1 \
      --train-tokens "$tmp/tokens/train_*.bin"
    expect_error "--val-tokens" "needs --train-tokens" --max-steps 1 \
      --val-tokens "$tmp/tokens/val_*.bin"
    expect_error "--val-steps" "0 batches would validate nothing" --model "$gpt" --max-steps 1 \
      --train-tokens "$tmp/tokens/train_*.bin" --val-tokens "$tmp/tokens/val_*.bin" --val-steps 0
    ;;
  generate_bad_input)
    gpt="gpt(n_layer=1, n_head=2, n_embd=8, block_size=8, vocab_size=256)"
    "$dptrain" prepare-text "$here/../../README.md" --out "$tmp/tokens" >/dev/null
    expect_ok "$tmp/lm" --model "$gpt" --max-steps 1 --batch-size 2 \
      --train-tokens "$tmp/tokens/train_*.bin"
    w=$tmp/lm/model.safetensors
    # generate writes no run folder: only its exit code and its one error line are checked.
    gen_error() {
      local what=$1 phrase=$2
      shift 2
      rc=0
      timeout -k 5 50 mpirun -np 2 "$dptrain" generate "$@" </dev/null >"$tmp/stdout" \
        2>"$tmp/stderr" || rc=$?
      local lines
      lines=$(grep '^dptrain: error: ' "$tmp/stderr" || true)
      if ((rc != 2)) || (($(grep -c '^dptrain: error: ' "$tmp/stderr") != 1)) ||
        ! grep -qF -- "$what" <<<"$lines" || ! grep -qF -- "$phrase" <<<"$lines"; then
        failures=$((failures + 1))
        echo "FAIL: dptrain generate $* (exit $rc; want 2 and one line naming '$what': '$phrase')"
        sed 's/^/  | /' "$tmp/stderr"
      else
        echo "ok: $lines"
      fi
    }
    gen_error "$tmp/nothing.safetensors" "cannot open" --weights "$tmp/nothing.safetensors" \
      --prompt "The "
    gen_error "--prompt or --prompt-tokens" "is required" --weights "$w"
    gen_error "--prompt" "excludes --prompt-tokens" --weights "$w" --prompt a --prompt-tokens 1
    gen_error "--prompt-tokens" "'x' is not a token id" --weights "$w" --prompt-tokens "84, x"
    gen_error "--prompt-tokens" "token 256 is not below the model's vocabulary of 256" \
      --weights "$w" --prompt-tokens "84 256"
    gen_error "--prompt-tokens" "no token ids" --weights "$w" --prompt-tokens " , "
    gen_error "--temperature" "must be a positive number (--top-k 1 takes the likeliest token)" \
      --weights "$w" --prompt a --temperature 0
    ;;
  optimizer_options)
    set_args
    expect_ok "$tmp/control" "${args[@]}" --optimizer adamw --beta1 0 --beta2 0.95 --grad-clip 1
    expect_error "--beta1" "must be in [0, 1)" "${args[@]}" --optimizer adamw --beta1 1
    expect_error "--beta2" "must be in [0, 1)" "${args[@]}" --optimizer adamw --beta2 nan
    expect_error "--grad-clip" "must be a number >= 0" "${args[@]}" --grad-clip -1
    ;;
  lr_schedule_options)
    set_args
    expect_ok "$tmp/control" "${args[@]}" --warmup-steps 2 --lr-decay-steps 5 --min-lr 0.001
    expect_error "--warmup-steps" "must be at least 0" "${args[@]}" --warmup-steps -1
    expect_error "--lr-decay-steps" "10 must be larger than --warmup-steps (10)" "${args[@]}" \
      --warmup-steps 10 --lr-decay-steps 10
    expect_error "--min-lr" "larger than --lr" "${args[@]}" --lr 0.01 --lr-decay-steps 100 \
      --min-lr 0.5
    expect_error "--min-lr" "needs --lr-decay-steps" "${args[@]}" --min-lr 0.001
    ;;
  *)
    echo "bad_input.sh: unknown case '$case_name'" >&2
    exit 2
    ;;
esac

if ((failures)); then
  echo "$case_name: $failures check(s) failed"
  exit 1
fi
echo "$case_name: passed"
