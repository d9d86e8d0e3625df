#!/usr/bin/env bash
# End-to-end runs on a GPU: accuracy of the presets, parity of 2 ranks on one GPU (--comm mpi)
# with the CPU, and the error for 2 ranks on one GPU with NCCL. Each case exits 77 (ctest
# shows it as skipped) when this build has no CUDA backend or no GPU is visible.
#   gpu_check.sh CASE BUILD_DIR [DATA_DIR]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
data=${3:-${DPT_DATA_DIR:-fashion-mnist}}

info=$("$build/dptrain" info 2>&1) || fail "dptrain info failed: $info"
case $info in
  *"built without CUDA"*) echo "SKIPPED: this build has no CUDA backend"; exit 77 ;;
  *"no CUDA device visible"*) echo "SKIPPED: no CUDA device visible"; exit 77 ;;
esac
echo "$info"

final_value() { tail -n 1 "$1" | grep -E '^final ' | tr ' ' '\n' | sed -n "s/^$2=//p"; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# mpirun, or nothing when this build has no MPI (then the 2-rank cases skip).
have_mpirun() { command -v mpirun >/dev/null && ! grep -q "built without MPI" <<<"$info"; }

case $case_name in
  mlp_accuracy | cnn_accuracy)
    # The CPU runs' recipes and bounds (train_check.sh), on one GPU with the same global batch
    # of 128: the same training as 2 ranks of 64 but for rounding, and the bounds leave room
    # for rounding (every OpenBLAS kernel and 5 seeds clear them by 0.005; experiments/README.md).
    model=${case_name%_accuracy}
    if [ "$model" = mlp ]; then epochs=5 lr=0.02 bound=0.855; else epochs=3 lr=0.05 bound=0.875; fi
    "$build/dptrain" train --device cuda --dataset "$data" --model "$model" --epochs $epochs \
      --batch-size 128 --lr $lr --momentum 0.9 --out "$tmp/run" | tee "$tmp/out"
    grep -q "rank 0 on cuda:" "$tmp/out" || fail "the run did not say it ran on cuda"
    acc=$(final_value "$tmp/out" test_accuracy)
    at_least "$acc" $bound || fail "$model test accuracy $acc < $bound on the GPU"
    ;;
  mpi_parity)
    # 2 ranks sharing one GPU, gradients averaged by MPI through host memory, against 2 CPU
    # ranks with the same seed: same samples, same updates, so the same parameters up to float
    # rounding (the GPU sums in another order).
    have_mpirun || { echo "SKIPPED: no mpirun"; exit 77; }
    for dev in cuda cpu; do
      mpirun -np 2 "$build/dptrain" train --device $dev --comm mpi --dataset "$data" \
        --model mlp --batch-size 32 --lr 0.05 --momentum 0.9 --max-steps 30 --seed 7 \
        --out "$tmp/$dev" > "$tmp/$dev.out" || { cat "$tmp/$dev.out"; fail "the $dev run failed"; }
    done
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" \
      "$tmp/cuda/model.safetensors" "$tmp/cpu/model.safetensors" 1e-4
    ;;
  accumulate_parity)
    # --accumulate 3 on the GPU against the CPU with the same seed: the same samples in each
    # micro-batch, so the same parameters up to float rounding. The host queues a step's
    # micro-batches without waiting, so a host buffer rewritten while its copy is still queued
    # would train on another micro-batch's samples, far beyond the bound.
    for dev in cuda cpu; do
      "$build/dptrain" train --device $dev --dataset "$data" --model mlp --batch-size 16 \
        --accumulate 3 --lr 0.05 --momentum 0.9 --max-steps 30 --seed 11 --out "$tmp/$dev" \
        > "$tmp/$dev.out" || { cat "$tmp/$dev.out"; fail "the $dev run failed"; }
    done
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" \
      "$tmp/cuda/model.safetensors" "$tmp/cpu/model.safetensors" 1e-4
    ;;
  zero_bf16_grads)
    # ZeRO-1 and bf16 gradients on a GPU. One rank with NCCL: the sharded optimizer and the
    # conversions on the device (no collective crosses ranks). Two ranks sharing the GPU
    # through --comm mpi: the reduce-scatter and allgather of device buffers, staged. Each
    # against the same run without them: --zero 1 within float rounding of plain data
    # parallelism, --grad-comm bf16 within 2% of its final test loss, and so --precision bf16
    # (bf16 compute, with bf16 gradients and ZeRO-1).
    common=(train --device cuda --dataset "$data" --model mlp --batch-size 32 --optimizer adamw
            --lr 1e-3 --max-steps 60 --seed 3 --bucket-mb 0.1 --first-bucket-mb 0.05)
    "$build/dptrain" "${common[@]}" --out "$tmp/one_plain" > "$tmp/one_plain.out" ||
      fail "one rank, plain: $(tail -n 3 "$tmp/one_plain.out")"
    "$build/dptrain" "${common[@]}" --zero 1 --out "$tmp/one_zero" > "$tmp/one_zero.out" ||
      fail "one rank, --zero 1: $(tail -n 3 "$tmp/one_zero.out")"
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" \
      "$tmp/one_zero/model.safetensors" "$tmp/one_plain/model.safetensors" 0 ||
      fail "one rank: --zero 1 changed the result"
    have_mpirun || { echo "SKIPPED: the 2-rank half needs mpirun"; exit 77; }
    for v in plain zero bf16 mixed; do
      extra=()
      [ $v = zero ] && extra=(--zero 1)
      [ $v = bf16 ] && extra=(--zero 1 --grad-comm bf16)
      [ $v = mixed ] && extra=(--zero 1 --grad-comm bf16 --precision bf16)
      mpirun -np 2 "$build/dptrain" "${common[@]}" --comm mpi "${extra[@]}" --out "$tmp/$v" \
        > "$tmp/$v.out" || fail "2 ranks, $v: $(tail -n 3 "$tmp/$v.out")"
    done
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" \
      "$tmp/zero/model.safetensors" "$tmp/plain/model.safetensors" 1e-5 ||
      fail "2 ranks: --zero 1 differs from plain data parallelism"
    python3 - "$tmp/plain/metrics.jsonl" "$tmp/bf16/metrics.jsonl" "$tmp/mixed/metrics.jsonl" <<'PY' ||
import json, sys
plain, bf16, mixed = (json.loads(open(p).read().splitlines()[-1])["test_loss"]
                      for p in sys.argv[1:])
print(f"test loss: float32 {plain:.4f}, bf16 gradients {bf16:.4f}, bf16 compute {mixed:.4f}")
assert abs(bf16 - plain) <= 0.02 * plain
assert abs(mixed - plain) <= 0.02 * plain
PY
      fail "bf16 gradients or bf16 compute ended more than 2% from float32"
    ;;
  nccl_shared_gpu)
    # Two ranks on one GPU with NCCL: one clear line naming --comm nccl, exit 2, no hang.
    have_mpirun || { echo "SKIPPED: no mpirun"; exit 77; }
    gpus=$(grep -o 'of [0-9]* visible' <<<"$info" | head -1 | grep -o '[0-9]*')
    [ "${gpus:-0}" -eq 1 ] || { echo "SKIPPED: needs exactly one visible GPU"; exit 77; }
    set +e
    timeout 120 mpirun -np 2 "$build/dptrain" train --device cuda --comm nccl --dataset "$data" \
      --max-steps 5 --out "$tmp/run" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    set -e
    cat "$tmp/err"
    [ $rc -ne 124 ] || fail "hung"
    [ $rc -ne 0 ] || fail "2 ranks on one GPU with nccl succeeded"
    # The rank that finds the clash names itself ("rank 1: ") when there are several.
    grep -Eq "^dptrain: error: (rank [0-9]+: )?option --comm nccl: ranks 0 and 1 would share GPU" \
      "$tmp/err" ||
      fail "no clear error line"
    ;;
  trace)
    # A GPU timeline from device markers: every layer once per traced step in each direction, in
    # the order the stream ran them (each span starts where the one before ended, or later), and
    # the optimizer after backward.
    "$build/dptrain" train --device cuda --dataset "$data" --model cnn --batch-size 64 \
      --max-steps 12 --trace "$tmp/t.json" --trace-steps 5:10 --out "$tmp/run" > "$tmp/out"
    python3 - "$tmp/t.json" <<'PY' || fail "the GPU trace is not a timeline of the steps"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
compute = [e for e in events if e["ph"] == "X" and e["tid"] == 0]
assert {e["args"]["step"] for e in compute} == {5, 6, 7, 8, 9}, "steps"
for step in range(5, 10):
    mine = sorted((e for e in compute if e["args"]["step"] == step and e["name"] != "step"),
                  key=lambda e: e["ts"])
    whole = [e for e in compute if e["args"]["step"] == step and e["name"] == "step"]
    assert len(whole) == 1, whole
    names = [e["name"].split(" ")[0] + " " + e["name"].split(" ")[1] if e["name"] != "optimizer"
             else "optimizer" for e in mine]
    # cnn: 10 layers, of which Flatten (6) aliases its input and runs nothing either way.
    assert names[:9] == ["forward %d" % i for i in (0, 1, 2, 3, 4, 5, 7, 8, 9)], names
    assert names[9:18] == ["backward %d" % i for i in (9, 8, 7, 5, 4, 3, 2, 1, 0)], names
    assert names[18:] == ["optimizer"], names
    for a, b in zip(mine, mine[1:]):
        assert b["ts"] >= a["ts"] + a["dur"] - 1.0, (a, b)  # microseconds; 1 us of rounding
    assert all(e["dur"] > 0 for e in mine), mine
print("GPU trace ok:", len(compute), "compute spans")
PY
    ;;
  *) fail "unknown case $case_name" ;;
esac
