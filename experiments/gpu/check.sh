#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and nothing to download, build for that GPU,
# run the GPU tests, train mlp and cnn, and time them beside PyTorch eager on the same GPU,
# model, batch and data, in this same run.
#
#   experiments/gpu/check.sh DATA_DIR OUT_DIR
#
# PARTS (environment) chooses what runs after the build, from "tests unit sanitize speed gpt2
# traces"; "tests gpt2" by default. CHECK_BUDGET (seconds, 560 by default) bounds the check: each
# phase's time limit is cut to what is left of it, a phase that would start with under 30 s left
# is recorded as skipped, and the table still comes out, inside a GPU machine's 10-minute limit
# per command. A second call with the skipped parts finds the first one's build in place.
#
# DATA_DIR holds the four Fashion-MNIST IDX files (.gz or not); OUT_DIR receives check.log
# (everything), results.tsv (the table) and the runs' metrics. What the machine lacks (MPI,
# CLI11 and JSON headers, GoogleTest) comes from .carry/, filled beforehand on a Debian machine
# by experiments/gpu/pack_carry.sh; without an MPI it builds a single-rank dptrain and says so.
# Each row is printed as it is recorded, and the whole table last. A device run wants
# experiments/gpu/device_run.sh, which keeps OUT_DIR off the files that come back and copies the
# logs that matter into them.
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: experiments/gpu/check.sh DATA_DIR OUT_DIR" >&2
  exit 2
fi
data=$1
out=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$out" || { echo "check.sh: error: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
[ -d "$data" ] || { echo "check.sh: error: DATA_DIR $data is not a folder" >&2; exit 2; }
data=$(cd "$data" && pwd)
log=$out/check.log
table=$out/results.tsv
: >"$log"
printf 'check\tresult\tdetail\n' >"$table"
start=$(date +%s)
budget=${CHECK_BUDGET:-560}
[[ $budget =~ ^[0-9]+$ ]] || { echo "check.sh: error: CHECK_BUDGET must be whole seconds" >&2; exit 2; }
deadline=$((start + budget))
cd "$root" || exit 2

# The table, aligned (the GPU machine has no column(1)).
show_table() {
  python3 -c '
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
' "$table"
}
say() { echo "== $*" | tee -a "$log"; }
parts=" ${PARTS:-tests gpt2} "
part() { [[ $parts == *" $1 "* ]]; }
for p in $parts; do
  case $p in
    tests | unit | sanitize | speed | gpt2 | traces) ;;
    *) echo "check.sh: error: PARTS: unknown part '$p' (tests, unit, sanitize, speed, gpt2, traces)" >&2
       exit 2 ;;
  esac
done
row() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$table"
  printf 'row: %s  %s  %s\n' "$1" "$2" "$3" | tee -a "$log"
}
# limit SECONDS: that phase limit, cut to what is left of the budget (less 15 s for the table).
limit() {
  local left=$((deadline - $(date +%s) - 15))
  left=$((left < 1 ? 1 : left))
  echo $(($1 < left ? $1 : left))
}
# time_for NAME [SECONDS]: whether a phase has at least 30 s (or SECONDS) left; if not, its row
# says it was skipped.
time_for() {
  local need=${2:-30}
  [ "$(limit "$need")" -ge "$need" ] && return 0
  row "$1" SKIP "no time left of CHECK_BUDGET=$budget s"
  return 1
}
# what RC: a command's exit status in words.
what() { case $1 in 124 | 137) echo "timed out (exit $1)" ;; *) echo "exit $1" ;; esac; }
# run NAME CMD...: runs CMD with its output in the log, records pass/fail.
run() {
  local name=$1
  shift
  say "$name: $*"
  local rc=0
  "$@" >>"$log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    row "$name" pass ""
    return 0
  fi
  row "$name" FAIL "$(what $rc) (see check.log)"
  return 1
}

# nvcc where the toolkit puts it, and the cuDNN / NCCL wheels' libraries for the loader (cuDNN
# opens its sub-libraries at run time).
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
wheel_libs=$(python3 -c '
import importlib.util as u, os
for name in ("nvidia.cudnn", "nvidia.nccl"):
    try:
        s = u.find_spec(name)
    except ImportError:
        s = None
    if s and s.submodule_search_locations:
        lib = os.path.join(list(s.submodule_search_locations)[0], "lib")
        if os.path.isdir(lib):
            print(lib)
' 2>/dev/null | paste -sd:)
[ -n "$wheel_libs" ] && export LD_LIBRARY_PATH=$wheel_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

say "machine"
{
  echo "nvcc: $(command -v nvcc || echo 'not found')"
  echo "wheel libraries: ${wheel_libs:-none}"
  date -u
  nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total --format=csv 2>&1
  nvcc --version 2>&1 | tail -1
  cmake --version | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
} | tee -a "$log"

# What the machine lacks, from .carry/ (MPI, headers, GoogleTest); sets DPT_CMAKE_ARGS.
DPT_CMAKE_ARGS=${DPT_CMAKE_ARGS:-}
if [ -f experiments/gpu/use_carry.sh ] && [ -d .carry ]; then
  # shellcheck source=/dev/null
  source experiments/gpu/use_carry.sh >"$out/use_carry.log" 2>&1 ||
    echo "check.sh: use_carry.sh failed; going on with what the machine has"
  tee -a "$log" <"$out/use_carry.log"
else
  say "no .carry/ folder: relying on what the machine has"
fi

# The build may lack zlib there: give both trainers the same uncompressed files.
if ls "$data"/*.gz >/dev/null 2>&1; then
  plain=$(mktemp -d)
  say "gunzipping $data into $plain"
  python3 -c '
import gzip, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    target = os.path.join(dst, name[:-3] if name.endswith(".gz") else name)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(os.path.join(src, name), "rb") as f, open(target, "wb") as g:
        shutil.copyfileobj(f, g)
' "$data" "$plain" || { echo "check.sh: error: cannot gunzip $data" >&2; exit 2; }
  data=$plain
fi
export DPT_DATA_DIR=$data

build="build-gpu"
say "configure and build ($build)"
arch=${CUDA_ARCH:-90}
# Only what the GPU phases run, unless the CPU unit tests are asked for too.
targets=(--target dptrain dptrain_gpu_tests)
part unit && targets=()
rc=0
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" $DPT_CMAKE_ARGS >>"$log" 2>&1 || rc=$?
[ $rc -eq 0 ] &&
  { timeout "$(limit 400)" cmake --build "$build" -j"$(nproc)" "${targets[@]}" >>"$log" 2>&1 ||
    rc=$?; }
if [ $rc -eq 0 ]; then
  row build pass "sm_$arch, $(($(date +%s) - start)) s in; $(grep -o 'dptrain: [^(]*MPI[^;]*' "$log" | tail -1)"
else
  row build FAIL "$(what $rc) (see check.log)"
  show_table
  exit 1
fi
grep -E '^-- dptrain:' "$log" | sort -u

run info "$build/dptrain" info
"$build/dptrain" info 2>&1 | tee -a "$log"

# GoogleTest parity of every CUDA op with its CPU twin, and the GPU end-to-end cases (among
# them gpt on both backends: CudaModel.GptTrainsAlike, and the transformer ops).
if part tests && time_for gpu_tests 60; then
  say "GPU tests"
  rc=0
  timeout "$(limit 300)" ctest --test-dir "$build" -L gpu --output-on-failure -j4 --timeout 180 \
    >"$out/ctest_gpu.log" 2>&1 || rc=$?
  cat "$out/ctest_gpu.log" >>"$log"
  summary=$(grep -E 'tests passed|tests failed' "$out/ctest_gpu.log" | tail -1)
  [ -n "$summary" ] || summary="ctest $(what $rc), no summary"
  skipped=$(grep -cE '\(Skipped\)|Not Run' "$out/ctest_gpu.log")
  if grep -q '100% tests passed' "$out/ctest_gpu.log" && [ "$skipped" -gt 0 ]; then
    # On a GPU machine nothing should skip: a skip here means the GPU or mpirun was not seen.
    row gpu_tests FAIL "$summary, but $skipped skipped (see ctest_gpu.log)"
  elif grep -q '100% tests passed' "$out/ctest_gpu.log"; then
    row gpu_tests pass "$summary"
  else
    row gpu_tests FAIL "$summary; $(grep -E '\*\*\*(Failed|Timeout|Exception)|Not Run' "$out/ctest_gpu.log" | awk '{print $4}' | tr '\n' ' ')"
  fi
  # NCCL's allreduce on GPU buffers, every element checked (one rank: the wiring, not the wire).
  if time_for nccl_allreduce; then
    run nccl_allreduce timeout "$(limit 60)" "$build/dptrain" bench allreduce --comm nccl \
      -b 8 -e 64M -f 8
    grep -E '^ +[0-9]' "$log" | tail -3
  fi
fi
# The CPU backend's unit tests (CI runs them; here only when asked for).
if part unit && time_for unit_tests 60; then
  run unit_tests timeout "$(limit 240)" ctest --test-dir "$build" -L unit -j8 --timeout 60
fi
# compute-sanitizer over the GPU tests, where the machine has it and it may reach the GPU (the
# device notes: yes on Firecracker machines, not on gVisor ones): memcheck for out-of-bounds and
# misaligned accesses in every kernel, racecheck for races in shared memory in the kernels that
# share it. memcheck slows kernels many times over: the cases at gpt2's full size and the whole
# models are left out.
sanitize() {
  local name=$1 tool=$2 filter=$3 rc=0 summary
  time_for "$name" 60 || return
  say "$name: compute-sanitizer --tool $tool, tests $filter"
  timeout "$(limit 300)" "$sanitizer" --tool "$tool" --error-exitcode 3 --print-limit 20 \
    "$build/tests/gpu/dptrain_gpu_tests" --gtest_filter="$filter" >"$out/$name.log" 2>&1 || rc=$?
  cat "$out/$name.log" >>"$log"
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$name.log" | tail -1 | sed 's/^=* *//')
  if [ $rc -eq 0 ]; then
    row "$name" pass "$summary"
  else
    row "$name" FAIL "$(what $rc): ${summary:-no summary} (see check.log)"
  fi
}
if part sanitize; then
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$sanitizer" ]; then
    sanitize sanitize_memcheck memcheck '-*Past2To31*:*AtGpt2Size*:CudaModel.*'
    sanitize sanitize_racecheck racecheck \
      '*Embedding*:*LayerNorm*:*SoftmaxCrossEntropy*:*Bias*:*SumSquares*-*Past2To31*:*AtGpt2Size*'
  else
    row sanitize SKIP "no compute-sanitizer on this machine"
  fi
fi

# Speed: dptrain and PyTorch eager, one GPU, same model, batch, data and number of steps.
# samples/s = batch / median step time for both (every step waits for its loss in both).
speed() {
  local model=$1 batch=$2 steps=$3 target=$4
  local name=speed_${model}_b$batch dir=$out/speed_${model}_b$batch
  local ours=() theirs=() r rc
  time_for "$name" 120 || return
  rm -rf "$dir"
  # Three rounds, alternating: one run of each can land on a slow moment of either.
  for r in 1 2 3; do
    say "speed $model batch $batch, $steps steps, round $r"
    rc=0
    timeout "$(limit 120)" "$build/dptrain" train --device cuda --dataset "$data" --model "$model" \
      --batch-size "$batch" --lr 0.05 --momentum 0.9 --max-steps "$steps" --out "$dir/run$r" \
      >>"$log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || { row "$name" FAIL "dptrain $(what $rc) (round $r)"; return; }
    ours+=("$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("%.0f" % (int(sys.argv[2]) / r["median_step_seconds"]))' "$dir/run$r/metrics.jsonl" "$batch")")
    timeout "$(limit 120)" python3 experiments/gpu/peer_pytorch_cuda.py --model "$model" \
      --batch-size "$batch" --max-steps "$steps" --lr 0.05 --momentum 0.9 --data "$data" \
      --out "$dir/peer$r.json" >>"$log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || { row "$name" FAIL "PyTorch peer $(what $rc) (round $r)"; return; }
    theirs+=("$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["samples_per_second"])' "$dir/peer$r.json")")
  done
  # The median round of each side; the ratio of the medians.
  local verdict
  verdict=$(python3 -c '
import statistics, sys
ours, theirs, target = sys.argv[1].split(), sys.argv[2].split(), float(sys.argv[3])
o, t = statistics.median(map(float, ours)), statistics.median(map(float, theirs))
ratio = o / t
print("%.2fx%s\tdptrain %.0f samples/s (%s), PyTorch eager %.0f (%s); target >= %gx" % (
    ratio, "" if ratio >= target else " (below target)", o, " ".join(ours), t, " ".join(theirs), target))
' "${ours[*]}" "${theirs[*]}" "$target")
  [ -n "$verdict" ] || verdict=$'FAIL\tthe verdict could not be computed (see check.log)'
  row "$name" "${verdict%%$'\t'*}" "${verdict#*$'\t'}"
}
if part speed; then
  speed mlp 64 937 1.5  # one epoch: 60000 // 64 steps
  speed cnn 256 234 1.0  # one epoch
fi

# gpt2 (124M) at block 1024, tokens/s beside PyTorch (nanoGPT's model with fused attention and
# fused AdamW, experiments/gpu/peer_gpt_cuda.py): the same windows of byte tokens (this
# checkout's own text), batch, AdamW and steps, rounds alternating. tokens/s = batch * 1024 /
# median step time for both. speed_gpt2 BATCH STEPS PRECISION ROUNDS:
# - bf16 (dptrain's --precision bf16; PyTorch's autocast to bf16 with fp32 weights and AdamW),
#   beside PyTorch eager, and beside torch.compile where it works, run once (in round 1: each
#   process compiles anew, for a minute or more, which its median leaves out); if it fails or
#   finds no time, the row says so and stands against eager. Issue 15's targets: at least 1.2x
#   eager, and dptrain's MFU at least 35% of the dense bf16 peak, 989 TFLOP/s on an H100 or H200
#   SXM, FLOPs per token counted as nanoGPT's estimate_mfu counts them (peer_gpt_cuda.py's mfu()).
# - fp32 (TF32 off on both sides), beside PyTorch eager. No target: issue 15's is for bf16.
gpt2_tokens=$out/gpt2_tokens
gpt2_bf16_median=""
speed_gpt2() {
  local batch=$1 steps=$2 precision=$3 rounds=$4
  local name=speed_gpt2_${precision}_b$batch
  [ "$precision" = fp32 ] && name=speed_gpt2_b$batch
  local dir=$out/$name ours=() theirs=() compiled=() compile_note="" r rc
  local peer=(python3 experiments/gpu/peer_gpt_cuda.py --model gpt2
    --train-tokens "$gpt2_tokens/train_*.bin" --batch-size "$batch" --max-steps "$steps"
    --lr 6e-4 --precision "$precision")
  local tokens_per_second='import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["tokens_per_second"])'
  time_for "$name" 90 || return
  rm -rf "$dir"
  for r in $(seq "$rounds"); do
    say "speed gpt2 $precision batch $batch, $steps steps, round $r"
    rc=0
    timeout "$(limit 150)" "$build/dptrain" train --device cuda --model gpt2 \
      --precision "$precision" --train-tokens "$gpt2_tokens/train_*.bin" --no-shuffle \
      --batch-size "$batch" --optimizer adamw --lr 6e-4 --beta2 0.95 --weight-decay 0.1 \
      --max-steps "$steps" --out "$dir/run$r" >>"$log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || { row "$name" FAIL "dptrain $(what $rc) (round $r)"; return; }
    ours+=("$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("%.0f" % (int(sys.argv[2]) * 1024 / r["median_step_seconds"]))' "$dir/run$r/metrics.jsonl" "$batch")")
    timeout "$(limit 150)" "${peer[@]}" --out "$dir/peer$r.json" >>"$log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || { row "$name" FAIL "PyTorch peer $(what $rc) (round $r)"; return; }
    theirs+=("$(python3 -c "$tokens_per_second" "$dir/peer$r.json")")
    if [ "$precision" = bf16 ] && [ "$r" = 1 ]; then
      if [ "$(limit 240)" -ge 150 ]; then
        timeout "$(limit 240)" "${peer[@]}" --compile --out "$dir/compiled.json" >>"$log" 2>&1 ||
          rc=$?
        if [ $rc -eq 0 ]; then
          compiled+=("$(python3 -c "$tokens_per_second" "$dir/compiled.json")")
        else
          compile_note="failed ($(what $rc); see check.log)"
        fi
      else
        compile_note="not run (too little of CHECK_BUDGET left)"
      fi
    fi
  done
  local verdict
  verdict=$(python3 -c '
import statistics, sys
precision, ours, theirs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
compiled, compile_note = sys.argv[4].split(), sys.argv[5]
o, t = statistics.median(map(float, ours)), statistics.median(map(float, theirs))
if precision == "fp32":
    print("%.2fx\tdptrain %.0f tokens/s (%s), PyTorch eager %.0f (%s)" % (
        o / t, o, " ".join(ours), t, " ".join(theirs)))
    sys.exit()
sys.path.insert(0, "experiments/gpu")
from peer_gpt_cuda import PRESETS, mfu, parse_model
cfg, peak = parse_model(PRESETS["gpt2"]), 989.0  # dense bf16 TFLOP/s, H100 and H200 SXM
ratio, ours_mfu = o / t, mfu(cfg, o, peak)
detail = "dptrain %.0f tokens/s (%s), MFU %.1f%%; PyTorch eager %.0f (%s), MFU %.1f%%" % (
    o, " ".join(ours), 100 * ours_mfu, t, " ".join(theirs), 100 * mfu(cfg, t, peak))
if compiled:
    c = statistics.median(map(float, compiled))
    detail += "; torch.compile %.0f (one run), MFU %.1f%%, dptrain %.2fx of it" % (
        c, 100 * mfu(cfg, c, peak), o / c)
else:
    detail += "; torch.compile " + compile_note
below = ratio < 1.2 or ours_mfu < 0.35
print("%.2fx%s\t%s; target >= 1.2x eager and MFU >= 35%% of %g TFLOP/s" % (
    ratio, " (below target)" if below else "", detail, peak))
' "$precision" "${ours[*]}" "${theirs[*]}" "${compiled[*]}" "$compile_note")
  [ -n "$verdict" ] || verdict=$'FAIL\tthe verdict could not be computed (see check.log)'
  row "$name" "${verdict%%$'\t'*}" "${verdict#*$'\t'}"
  [ "$precision" = bf16 ] &&
    gpt2_bf16_median=$(python3 -c 'import statistics,sys; print("%.0f" % statistics.median(map(float, sys.argv[1:])))' "${ours[@]}")
}
# dptrain alone with its attention unfused (DPT_CUDNN_ATTENTION=0), against the bf16 row's median:
# what cuDNN's flash attention is worth.
gpt2_unfused() {
  local batch=$1 steps=$2 name=speed_gpt2_bf16_b${1}_unfused rc=0 tps
  [ -n "$gpt2_bf16_median" ] || return
  time_for "$name" 45 || return
  say "speed gpt2 bf16 batch $batch, attention unfused"
  DPT_CUDNN_ATTENTION=0 timeout "$(limit 120)" "$build/dptrain" train --device cuda --model gpt2 \
    --precision bf16 --train-tokens "$gpt2_tokens/train_*.bin" --no-shuffle \
    --batch-size "$batch" --optimizer adamw --lr 6e-4 --beta2 0.95 --weight-decay 0.1 \
    --max-steps "$steps" --out "$out/$name" >>"$log" 2>&1 || rc=$?
  [ $rc -eq 0 ] || { row "$name" FAIL "dptrain $(what $rc)"; return; }
  tps=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("%.0f" % (int(sys.argv[2]) * 1024 / r["median_step_seconds"]))' "$out/$name/metrics.jsonl" "$batch")
  row "$name" "$(python3 -c 'import sys; print("%.2fx" % (float(sys.argv[1]) / float(sys.argv[2])))' "$tps" "$gpt2_bf16_median")" \
    "dptrain unfused $tps tokens/s against $gpt2_bf16_median fused (one run)"
}
if part gpt2 && time_for gpt2_tokens; then
  if "$build/dptrain" prepare-text --out "$gpt2_tokens" README.md src kernels comm tests \
       experiments >>"$log" 2>&1; then
    speed_gpt2 8 20 bf16 3
    # Where gpt2's bf16 step goes (steps 10 to 14, device-timed), layer by layer and, inside the
    # blocks, op by op, for NOTES.md.
    if time_for trace_gpt2_bf16_b8 60 &&
       run trace_gpt2_bf16_b8 timeout "$(limit 120)" "$build/dptrain" train --device cuda \
         --model gpt2 --precision bf16 --train-tokens "$gpt2_tokens/train_*.bin" --no-shuffle \
         --batch-size 8 --optimizer adamw --lr 6e-4 --max-steps 15 \
         --trace "$out/trace_gpt2_bf16_b8.json" --trace-steps 10:15 \
         --out "$out/trace_run_gpt2_bf16"; then
      python3 experiments/gpu/trace_summary.py "$out/trace_gpt2_bf16_b8.json" |
        tee "$out/trace_gpt2_bf16_b8.txt" | tee -a "$log"
    fi
    gpt2_unfused 8 20
    # What an unaligned row stride for the logits (50,257 bf16 elements, as PyTorch's peer lays
    # them out) costs the tied head's three GEMMs, against the 50,304 that dptrain's head uses
    # (experiments/gpu/head_gemm_bench.py, PyTorch's cuBLAS).
    if time_for head_gemm_stride; then
      rc=0
      timeout "$(limit 60)" python3 experiments/gpu/head_gemm_bench.py >"$out/head_gemm.json" \
        2>>"$log" || rc=$?
      cat "$out/head_gemm.json" >>"$log"
      if [ $rc -eq 0 ]; then
        row head_gemm_stride "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2fx" % r["ratio"])' "$out/head_gemm.json")" \
          "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); u, p = r["unaligned"], r["padded"]; f = lambda d: "%.2f+%.2f+%.2f ms" % (d["forward_ms"], d["backward_dx_ms"], d["backward_dw_ms"]); print("head GEMMs (forward+dX+dW) at ld 50257: %s, %.0f TFLOP/s; at ld 50304: %s, %.0f TFLOP/s" % (f(u), r["tflops"]["unaligned"], f(p), r["tflops"]["padded"]))' "$out/head_gemm.json")"
      else
        row head_gemm_stride FAIL "$(what $rc) (see check.log)"
      fi
    fi
    speed_gpt2 8 20 fp32 1
  else
    row gpt2_tokens FAIL "prepare-text failed (see check.log)"
  fi
fi

# Per-layer timelines on this GPU, for the performance model's forecasts (experiments/model):
# batch 64 like the CPU sweeps, steps 50 to 69 traced (the trace waits for each layer). "wide" is
# the larger model where communication matters: three 4096-wide hidden layers, 37.8M parameters.
trace() {
  local name=$1 model=$2 batch=$3
  time_for "trace_${name}_b$batch" || return
  run "trace_${name}_b$batch" timeout "$(limit 60)" "$build/dptrain" train --device cuda --dataset "$data" \
    --model "$model" --batch-size "$batch" --lr 0.05 --momentum 0.9 --max-steps 80 \
    --trace "$out/trace_${name}_b$batch.json" --trace-steps 50:70 --out "$out/trace_run_${name}_b$batch"
}
if part traces; then
  trace mlp mlp 64
  trace cnn cnn 64
  trace wide "flatten linear(4096) relu linear(4096) relu linear(4096) relu linear(10)" 64
fi

say "done in $(($(date +%s) - start)) s"
echo
show_table | tee -a "$log"
! grep -q FAIL "$table"
