#!/usr/bin/env bash
# End-to-end runs of the CLI and the example program, as a user types them.
#   train_check.sh CASE BUILD_DIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The value of key=value on the "final ..." line (rank 0's last line on stdout).
final_value() { tail -n 1 "$1" | grep -E '^final ' | tr ' ' '\n' | sed -n "s/^$2=//p"; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# Fails unless VALUE >= BOUND; prints the measured value beside its bound either way, for
# tests/cross_cpu.sh's table.
expect_at_least() {  # what value bound
  [ -n "$2" ] || fail "$1: no value"
  echo "measure: $1 $2 >= $3"
  at_least "$2" "$3" || fail "$1 $2 < $3"
}

# metrics.jsonl: one object per epoch with the contract's keys; model.safetensors: the
# parameter names nn.Sequential gives, with PyTorch's shapes.
check_run_dir() {
  local dir=$1 epochs=$2 names=$3
  python3 - "$dir" "$epochs" "$names" <<'PY'
import json, struct, sys
d, epochs, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rows = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
assert len(rows) == epochs, f"{len(rows)} metrics lines, want {epochs}"
keys = {"epoch", "step", "train_loss", "test_loss", "test_accuracy", "samples_per_second",
        "world_size", "global_batch", "elapsed_seconds"}
for i, r in enumerate(rows):
    assert keys <= r.keys(), f"missing {keys - r.keys()}"
    assert r["epoch"] == i + 1 and r["world_size"] == 2 and r["global_batch"] == 128, r
    assert r["samples_per_second"] > 0 and 0 < r["test_accuracy"] <= 1, r
assert rows[-1]["step"] == epochs * (60000 // 128), rows[-1]
with open(f"{d}/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
tensors = {k: v for k, v in header.items() if k != "__metadata__"}
assert sorted(tensors) == sorted(names), sorted(tensors)
for k, v in tensors.items():
    assert v["dtype"] == "F32"
    b, e = v["data_offsets"]
    count = 1
    for s in v["shape"]:
        count *= s
    assert e - b == 4 * count and e <= len(data), (k, v)
print("run dir ok:", len(rows), "epochs,", len(tensors), "tensors")
PY
}

case $case_name in
  mlp_accuracy)
    # The quickstart's command (launch/quickstart.sh). Its bound is set below the lowest of 25
    # runs, 5 OpenBLAS kernels x 5 seeds, by at least 0.005, and below PyTorch DDP's lowest of
    # 5 seeds with the same recipe: experiments/README.md, "Accuracy bounds", has the spread.
    mpirun -np 2 "$build/dptrain" train --dataset fashion-mnist --model mlp --epochs 5 \
      --batch-size 64 --lr 0.02 --momentum 0.9 --out "$tmp/run" | tee "$tmp/out"
    expect_at_least "mlp test accuracy" "$(final_value "$tmp/out" test_accuracy)" 0.855
    check_run_dir "$tmp/run" 5 "0.weight 0.bias 2.weight 2.bias 4.weight 4.bias"
    ;;
  cnn_accuracy)
    # The cnn preset, 3 epochs; the bound is chosen as mlp's is (experiments/README.md).
    mpirun -np 2 "$build/dptrain" train --dataset fashion-mnist --model cnn --epochs 3 \
      --batch-size 64 --lr 0.05 --momentum 0.9 --out "$tmp/run" | tee "$tmp/out"
    expect_at_least "cnn test accuracy" "$(final_value "$tmp/out" test_accuracy)" 0.875
    check_run_dir "$tmp/run" 3 \
      "0.weight 0.bias 3.weight 3.bias 7.weight 7.bias 9.weight 9.bias"
    ;;
  example_program)
    # The README's library example, with 2 ranks and 300 steps.
    mpirun -np 2 "$build/fit_example" /usr/share/datasets/fashion-mnist 300 | tee "$tmp/out"
    # 0.7947 under each of 5 OpenBLAS kernels (the program fixes its seed).
    acc=$(sed -n 's/^test_accuracy=\([0-9.]*\).*on 10000 samples$/\1/p' "$tmp/out")
    expect_at_least "example test accuracy" "$acc" 0.75
    ;;
  config_file)
    # Options from a TOML file; a flag on the command line wins over the file.
    printf 'model = "flatten linear(10)"\nmax-steps = 7\nbatch-size = 16\nlr = 0.1\n' > "$tmp/c.toml"
    mpirun -np 2 "$build/dptrain" train --config "$tmp/c.toml" --batch-size 32 \
      --out "$tmp/run" > "$tmp/out"
    grep -q "Linear(784, 10)" "$tmp/out" || fail "model from the config file not used"
    grep -q "batch 32 per rank" "$tmp/out" || fail "command-line batch size did not win"
    python3 -c "import json,sys; r=[json.loads(l) for l in open('$tmp/run/metrics.jsonl')]; \
assert r[-1]['step']==7 and r[-1]['global_batch']==64, r" || fail "max-steps from file not used"
    ;;
  optimizer_options)
    # The optimizer's options from a TOML file as from flags: AdamW's betas, nanoGPT's schedule
    # and gradient clipping, shown in the start table, the epoch line and metrics.jsonl.
    printf '%s\n' 'model = "flatten linear(10)"' 'max-steps = 20' 'optimizer = "adamw"' \
      'lr = 0.001' 'beta2 = 0.95' 'warmup-steps = 5' 'lr-decay-steps = 15' 'min-lr = 0.0001' \
      'grad-clip = 0.05' > "$tmp/c.toml"
    mpirun -np 2 "$build/dptrain" train --config "$tmp/c.toml" --out "$tmp/run" > "$tmp/out"
    grep -q "^train  adamw(lr=0.001, betas=(0.9, 0.95), eps=1e-08, weight_decay=0.01)" "$tmp/out" \
      || fail "betas not in the start table: $(grep '^train' "$tmp/out")"
    grep -q "^optim  lr warmup 5, cosine to 0.0001 at 15, gradients clipped to norm 0.05$" "$tmp/out" \
      || fail "schedule not in the start table: $(grep '^optim' "$tmp/out")"
    grep -q "^epoch 1/1  step 20 .*  lr 0.0001  grad_norm [0-9.e+-]*  " "$tmp/out" \
      || fail "no lr and grad_norm on the epoch line: $(grep '^epoch' "$tmp/out")"
    # Step 20 is past the decay: the floor, as the float the optimizer used. The gradients of a
    # fresh linear model are far above 0.05, so every step clipped.
    python3 -c "import json; r=json.loads(open('$tmp/run/metrics.jsonl').readlines()[-1]); \
assert abs(r['lr'] - 1e-4) < 1e-11 and r['grad_norm'] > 0.05, r" || fail "lr or grad_norm in metrics.jsonl"
    # Without them: the configured rate, no norm, and the table says so.
    mpirun -np 2 "$build/dptrain" train --model "flatten linear(10)" --max-steps 3 --lr 0.25 \
      --out "$tmp/plain" > "$tmp/out2"
    grep -q "^optim  lr constant, no gradient clipping$" "$tmp/out2" || fail "$(grep '^optim' "$tmp/out2")"
    python3 -c "import json; r=json.loads(open('$tmp/plain/metrics.jsonl').readline()); \
assert r['lr'] == 0.25 and r['grad_norm'] is None, r" || fail "lr or grad_norm without the options"
    ;;
  single_process)
    # Without mpirun: one rank, and the progress is one line per epoch when not a terminal.
    "$build/dptrain" train --model "flatten linear(10)" --max-steps 20 --out "$tmp/run" \
      > "$tmp/out"
    grep -q "^final test_accuracy=" "$tmp/out" || fail "no final line"
    [ "$(grep -c '^epoch ' "$tmp/out")" -eq 1 ] || fail "expected one epoch line"
    ! grep -q $'\r' "$tmp/out" || fail "carriage returns in non-terminal output"
    ;;
  init_weights_roundtrip)
    # Weights written by one run start another: same evaluation before any step.
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 30 --out "$tmp/a" > /dev/null
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 0 \
      --init-weights "$tmp/a/model.safetensors" --out "$tmp/b" > "$tmp/out"
    grep -q "^final test_accuracy=0\.[0-9]* test_loss=[0-9.]* samples_per_second=none$" "$tmp/out" ||
      fail "final line without a step: $(grep '^final' "$tmp/out")"
    first=$(python3 -c "import json; print(json.loads(open('$tmp/a/metrics.jsonl').readline())['test_loss'])")
    second=$(python3 -c "import json; print(json.loads(open('$tmp/b/metrics.jsonl').readline())['test_loss'])")
    [ "$first" = "$second" ] || fail "test loss $second after loading, $first when saved"
    cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "weights changed"
    ;;
  info)
    mpirun -np 2 "$build/dptrain" info > "$tmp/out"
    grep -q "^rank 0/2  local_rank 0/2" "$tmp/out" || fail "no rank 0 line"
    grep -q "^rank 1/2  local_rank 1/2" "$tmp/out" || fail "no rank 1 line"
    ;;
  help)
    "$build/dptrain" --help | grep -q "train" || fail "--help lists no train"
    "$build/dptrain" train --help > "$tmp/out"
    for opt in --dataset --train-images --train-labels --test-images --test-labels --model \
               --epochs --max-steps --batch-size --lr --optimizer --momentum --weight-decay \
               --no-shuffle --seed --threads --init-weights --out --config; do
      grep -q -- "$opt" "$tmp/out" || fail "train --help does not mention $opt"
    done
    ;;
  trace)
    # A timeline of steps 2..4 from both ranks: valid JSON, all three lanes, a span per bucket,
    # and the named ranges nested: each inside the one its path names.
    mpirun -np 2 "$build/dptrain" train --model cnn --max-steps 6 --batch-size 16 \
      --trace "$tmp/t.json" --trace-steps 2:5 --out "$tmp/run" > "$tmp/out"
    python3 - "$tmp/t.json" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
spans = [e for e in events if e["ph"] == "X"]
for rank in (0, 1):
    mine = [e for e in spans if e["pid"] == rank]
    compute = [e for e in mine if e["tid"] == 0]
    comm = [e for e in mine if e["tid"] == 1]
    assert {e["args"]["step"] for e in mine} == {2, 3, 4}, "steps"
    for step in (2, 3, 4):
        names = [e["name"] for e in compute if e["args"]["step"] == step]
        assert "optimizer" in names and any(n.startswith("backward 0 Conv2d") for n in names), names
        buckets = sorted(e["name"] for e in comm if e["args"]["step"] == step)
        # cnn with the default caps has two buckets (the 1 MiB first one, then the rest).
        assert buckets == ["allreduce bucket 0", "allreduce bucket 1"], buckets
        ops = {e["name"]: e for e in mine if e["tid"] == 2 and e["args"]["step"] == step}
        for phase in ("forward", "loss", "backward", "allreduce wait", "optimizer",
                      "forward/0", "backward/0"):
            assert phase in ops, (phase, sorted(ops))
        for name, e in ops.items():
            if "/" in name:
                parent = ops[name.rsplit("/", 1)[0]]
                assert parent["ts"] <= e["ts"] + 0.5 and \
                    e["ts"] + e["dur"] <= parent["ts"] + parent["dur"] + 0.5, (name, e, parent)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in mine)
names = {(e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
assert names == {(r, lane) for r in (0, 1) for lane in ("compute", "communication", "ops")}, names
print("trace ok:", len(spans), "spans")
PY
    grep -q "^comm   mpi allreduce in 2 buckets" "$tmp/out" || fail "bucket line missing"
    python3 -c "import json; r=json.loads(open('$tmp/run/metrics.jsonl').readline()); \
assert {'compute_seconds','comm_seconds','exposed_comm_seconds','overlap_fraction'} <= r.keys(); \
assert 0 <= r['overlap_fraction'] <= 1 and r['exposed_comm_seconds'] <= r['comm_seconds'] + 1e-9, r" \
      || fail "accounting keys in metrics.jsonl"
    ;;
  bench_allreduce)
    # Every element is checked; a wrong result would make the exit status 1.
    mpirun -np 2 "$build/dptrain" bench allreduce -b 8 -e 4M -f 4 > "$tmp/out"
    cat "$tmp/out"
    [ "$(grep -cv '^#' "$tmp/out")" -eq 10 ] || fail "expected 10 sizes"
    grep -q "^# wrong elements in all: 0$" "$tmp/out" || fail "wrong elements"
    awk '!/^#/ { if ($8 != 0) exit 1 }' "$tmp/out" || fail "a size had wrong elements"
    # busbw = algbw * 2(n-1)/n, which is algbw itself for 2 ranks.
    awk '!/^#/ { if ($6 != $7) exit 1 }' "$tmp/out" || fail "busbw != algbw with 2 ranks"
    mpirun -np 3 "$build/dptrain" bench allreduce -b 1K -e 64K > "$tmp/out3"
    grep -q "^# wrong elements in all: 0$" "$tmp/out3" || fail "wrong elements with 3 ranks"
    # bfloat16 (--grad-comm bf16's wire): 2 bytes an element, summed by dptrain's own MPI op.
    for np in 2 3; do
      mpirun -np $np "$build/dptrain" bench allreduce -d bf16 -b 8 -e 64K -f 8 > "$tmp/bf16"
      cat "$tmp/bf16"
      grep -q "^# wrong elements in all: 0$" "$tmp/bf16" || fail "wrong bf16 elements, $np ranks"
      awk '!/^#/ { print $1, $2, $3; exit }' "$tmp/bf16" | grep -qx "8 4 bf16" ||
        fail "first bf16 size: not 4 elements of 2 bytes"
    done
    ;;
  bench_gemm)
    # The CPU GEMM the backend picks, and OpenBLAS's when forced, each checked on sampled elements
    # (a wrong one exits 1), at a size past the own kernel's blocks (256) and tiles (6 x 16).
    # (openblas, or builtin in a build without it)
    library='(openblas|builtin)'
    own=$(python3 -c "print('avx2' if all(f in open('/proc/cpuinfo').read().split() for f in ('avx2', 'fma')) else '')")
    [ "${DPT_CPU_VECTOR:-}" = baseline ] && own=''
    for forced in "" blas; do
      DPT_CPU_GEMM=$forced "$build/dptrain" bench gemm --size 301 --repeats 2 --threads 1 > "$tmp/gemm"
      cat "$tmp/gemm"
      want=$([ -n "$forced" ] || [ -z "$own" ] && echo "$library" || echo "$own")
      grep -Eq "sgemm 301x301x301 on cpu \($want\), 1 thread\(s\): .* wrong 0$" "$tmp/gemm" ||
        fail "bench gemm (DPT_CPU_GEMM='$forced'): not $want, or wrong elements"
    done
    # Several threads: the library's GEMM.
    "$build/dptrain" bench gemm --size 64 --repeats 1 --threads 2 > "$tmp/gemm"
    grep -Eq "on cpu \($library\), 2 thread\(s\): .* wrong 0$" "$tmp/gemm" || fail "2 threads: not the library's"
    rc=0
    DPT_CPU_GEMM=fast "$build/dptrain" bench gemm --size 64 > "$tmp/gemm" 2> "$tmp/err" || rc=$?
    [ "$rc" -eq 2 ] || fail "DPT_CPU_GEMM=fast: exit $rc, not 2"
    cat "$tmp/err"
    [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "DPT_CPU_GEMM: 'fast' is not one of auto, blas" "$tmp/err" ||
      fail "DPT_CPU_GEMM=fast: not one clear line"
    # The switch of the CUDA backend's flash attention, read where the CUDA libraries are named.
    if "$build/dptrain" info | grep -q "flash attention on"; then
      rc=0
      DPT_CUDNN_ATTENTION=yes "$build/dptrain" info > "$tmp/out" 2> "$tmp/err" || rc=$?
      [ "$rc" -eq 2 ] || fail "DPT_CUDNN_ATTENTION=yes: exit $rc, not 2"
      [ "$(wc -l < "$tmp/err")" -eq 1 ] &&
        grep -q "DPT_CUDNN_ATTENTION: 'yes' is neither 0 nor 1" "$tmp/err" ||
        fail "DPT_CUDNN_ATTENTION=yes: not one clear line"
      DPT_CUDNN_ATTENTION=0 "$build/dptrain" info | grep -q "flash attention off" ||
        fail "DPT_CUDNN_ATTENTION=0: info does not say the flash attention is off"
    fi
    ;;
  bench_reduce_scatter|bench_allgather)
    collective=${case_name#bench_}
    mpirun -np 2 "$build/dptrain" bench "$collective" -b 8 -e 4M -f 4 > "$tmp/out"
    cat "$tmp/out"
    grep -q "^# dptrain bench $collective: 2 ranks" "$tmp/out" || fail "no header"
    [ "$(grep -cv '^#' "$tmp/out")" -eq 10 ] || fail "expected 10 sizes"
    grep -q "^# wrong elements in all: 0$" "$tmp/out" || fail "wrong elements"
    awk '!/^#/ { if ($8 != 0) exit 1 }' "$tmp/out" || fail "a size had wrong elements"
    # A size is the whole buffer: one float per rank at -b 8.
    awk '!/^#/ { print $1, $2; exit }' "$tmp/out" | grep -qx "8 2" || fail "first size not 8 B"
    # busbw = algbw * (n-1)/n, half of algbw for 2 ranks (each printed to 0.01).
    awk '!/^#/ { d = $6 - 2 * $7; if (d > 0.011 || d < -0.011) exit 1 }' "$tmp/out" \
      || fail "busbw != algbw / 2 with 2 ranks"
    mpirun -np 3 "$build/dptrain" bench "$collective" -b 1K -e 64K > "$tmp/out3"
    cat "$tmp/out3"
    grep -q "^# wrong elements in all: 0$" "$tmp/out3" || fail "wrong elements with 3 ranks"
    # 1K over 3 ranks: 85 floats each, 1020 bytes.
    awk '!/^#/ { print $1, $2; exit }' "$tmp/out3" | grep -qx "1020 255" || fail "first size 3 ranks"
    set +e
    mpirun -np 2 "$build/dptrain" bench "$collective" -b 1M -e 1K > "$tmp/out" 2> "$tmp/err"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "bench $collective -b 1M -e 1K: exit $rc, want 2"
    [ "$(grep -c '^dptrain: error: option -e' "$tmp/err")" -eq 1 ] || fail "$(cat "$tmp/err")"
    ;;
  bench_allreduce_bad_sizes)
    for args in "-b 0" "-b 12Q" "-b 1M -e 1K" "-f 1" "-e 64G" "--comm nccl"; do
      set +e
      # shellcheck disable=SC2086
      mpirun -np 2 "$build/dptrain" bench allreduce $args > "$tmp/out" 2> "$tmp/err"
      rc=$?
      set -e
      [ "$rc" -eq 2 ] || fail "bench allreduce $args: exit $rc, want 2"
      [ "$(grep -c '^dptrain: error: option' "$tmp/err")" -eq 1 ] || fail "bench allreduce $args: $(cat "$tmp/err")"
    done
    ;;
  accumulate)
    # --accumulate 2 with batch 32 trains on the samples of batch 64: same steps per epoch.
    mpirun -np 2 "$build/dptrain" train --model mlp --epochs 1 --batch-size 32 --accumulate 2 \
      --out "$tmp/run" > "$tmp/out"
    python3 -c "import json; r=json.loads(open('$tmp/run/metrics.jsonl').readline()); \
assert r['step'] == 60000 // 128 and r['global_batch'] == 128, r" || fail "accumulate steps"
    ;;
  dptrun)
    # The launcher's defaults: 2 ranks without a GPU, cores shared and bound, flags as needed.
    root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    env -u CUDA_VISIBLE_DEVICES PATH="/usr/bin:/bin" DPTRAIN="$build/dptrain" \
      "$root_dir/launch/dptrun" -- info > "$tmp/out"
    head -n 1 "$tmp/out" | grep -q "^+ mpirun -np 2 .*--bind-to core $build/dptrain info$" \
      || fail "unexpected command: $(head -n 1 "$tmp/out")"
    [ "$(grep -c '^rank [01]/2' "$tmp/out")" -eq 2 ] || fail "$(cat "$tmp/out")"
    cores=$(nproc)
    DPTRAIN="$build/dptrain" "$root_dir/launch/dptrun" -np $((cores + 1)) --dry-run > "$tmp/dry"
    grep -q -- "--oversubscribe --bind-to none" "$tmp/dry" || fail "no oversubscription: $(cat "$tmp/dry")"
    CUDA_VISIBLE_DEVICES=0,1,2 DPTRAIN="$build/dptrain" "$root_dir/launch/dptrun" --dry-run \
      -- train > "$tmp/gpu"
    grep -q "^+ mpirun -np 3 " "$tmp/gpu" || fail "not one rank per visible GPU: $(cat "$tmp/gpu")"
    if DPTRAIN="$build/dptrain" "$root_dir/launch/dptrun" -np x 2> "$tmp/err"; then
      fail "-np x accepted"
    fi
    grep -q "^dptrun: error: -np 'x' is not a positive number" "$tmp/err" || fail "$(cat "$tmp/err")"
    ;;
  launch_errors)
    # Launch mistakes end quickly with a message that names the problem, never a hang:
    # a hostfile with fewer slots than ranks, and a binary missing from the path.
    echo "localhost slots=1" > "$tmp/hosts"
    set +e
    # (without the test environment's permission to oversubscribe)
    timeout 60 env -u OMPI_MCA_rmaps_base_oversubscribe -u PRTE_MCA_rmaps_default_mapping_policy \
      mpirun --hostfile "$tmp/hosts" -np 2 "$build/dptrain" info > "$tmp/out" 2> "$tmp/err"
    rc=$?
    set -e
    [ $rc -ne 124 ] || fail "mpirun with too few slots hung"
    [ $rc -ne 0 ] || fail "2 ranks on a 1-slot hostfile started"
    grep -qi "slots" "$tmp/err" "$tmp/out" || fail "no word of slots: $(cat "$tmp/err")"
    set +e
    timeout 60 mpirun -np 2 "$tmp/no-such-dir/dptrain" info > "$tmp/out" 2> "$tmp/err"
    rc=$?
    set -e
    [ $rc -ne 124 ] || fail "mpirun with a missing binary hung"
    [ $rc -ne 0 ] || fail "a missing binary started"
    grep -q "no-such-dir/dptrain" "$tmp/err" "$tmp/out" || fail "the missing path is not named: $(cat "$tmp/err")"
    # dptrun checks before mpirun starts.
    root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if DPTRAIN="$tmp/no-such-dir/dptrain" "$root_dir/launch/dptrun" -- info 2> "$tmp/err"; then
      fail "dptrun started a missing binary"
    fi
    grep -q "^dptrun: error: $tmp/no-such-dir/dptrain not found" "$tmp/err" || fail "$(cat "$tmp/err")"
    ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
