#!/usr/bin/env bash
# Checkpoint and resume through the CLI: a killed run resumed with --resume auto ends bit for
# bit where an uninterrupted run ends, also when its newest checkpoint is corrupt, and a run
# stopped by a signal checkpoints, says so, exits with its code and resumes bit for bit.
#   resume_check.sh CASE BUILD_DIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

train() {  # out-dir extra-args...
  local dir=$1
  shift
  mpirun -np 2 "$build/dptrain" train --model mlp --epochs 3 --batch-size 64 --lr 0.05 \
    --momentum 0.9 --threads 1 --checkpoint-every 100 --keep-checkpoints 3 --out "$dir" "$@"
}

# Starts a run, kills one of its ranks with SIGKILL once the checkpoint of step $1 exists, and
# checks that the job ended with an error.
train_and_kill() {
  local after=$1
  train "$tmp/b" > "$tmp/b.log" 2>&1 &
  local job=$!
  local target
  target=$(printf '%s/b/checkpoints/step-%09d.safetensors' "$tmp" "$after")
  wait_for_file "$target" 600 0.05 || fail "no checkpoint of step $after appeared"
  local rank_pid
  # A rank, not mpirun (whose command line holds the same words after "mpirun").
  rank_pid=$(rank_pids "$tmp/b" | tail -n 1)
  [ -n "$rank_pid" ] || fail "no rank process to kill"
  kill -9 "$rank_pid"
  if wait "$job"; then fail "the job survived a killed rank"; fi
  for _ in $(seq 100); do
    rank_pids "$tmp/b" > /dev/null || break
    sleep 0.1
  done
  ! rank_pids "$tmp/b" > /dev/null || fail "ranks outlived the job"
  [ -f "$tmp/b/model.safetensors" ] && fail "a killed run wrote its final model"
  ls "$tmp/b/checkpoints"
}

# stop_and_resume SIGNAL TARGET STATUS EPOCHS: a run of EPOCHS (468 steps each) with a
# learning-rate schedule and gradient clipping gets SIGNAL, sent to TARGET (mpirun, or the ranks
# themselves as srun and scancel deliver it) once its first checkpoint is on disk. It must exit
# with STATUS, name the signal, the step and the checkpoint it wrote, leave no rank behind, and,
# resumed with --resume auto, end bit for bit where an uninterrupted run ends (so the schedule
# carried on at the right step).
stop_and_resume() {
  local signal=$1 target=$2 want=$3 epochs=$4
  local steps=$((epochs * 468))
  run() {  # out-dir extra-args...
    local dir=$1
    shift
    mpirun -np 2 "$build/dptrain" train --model mlp --epochs "$epochs" --batch-size 64 \
      --lr 0.05 --momentum 0.9 --threads 1 --checkpoint-every 100 --out "$dir" \
      --warmup-steps $((steps / 8)) --lr-decay-steps $((steps * 3 / 4)) --min-lr 0.005 \
      --grad-clip 1 "$@"
  }
  run "$tmp/a" > /dev/null
  run "$tmp/b" > "$tmp/b.log" 2>&1 &
  local job=$!
  local first
  first=$(printf '%s/b/checkpoints/step-%09d.safetensors' "$tmp" 100)
  wait_for_file "$first" 600 0.02 || fail "no first checkpoint appeared"
  if [ "$target" = mpirun ]; then
    local launcher
    launcher=$(pgrep -f "^mpirun -np 2 $build/dptrain train .*--out $tmp/b" | head -n 1)
    [ -n "$launcher" ] || fail "no mpirun to signal"
    kill -s "$signal" "$launcher"
  else
    local ranks
    ranks=$(rank_pids "$tmp/b") || fail "no ranks to signal"
    # shellcheck disable=SC2086  # one pid a word
    kill -s "$signal" $ranks
  fi
  local rc=0
  wait "$job" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit status $rc after SIG$signal to $target, want $want: $(tail -n 5 "$tmp/b.log")"
  local line step
  line=$(grep "^stopped by " "$tmp/b.log") || fail "no stop line: $(tail -n 5 "$tmp/b.log")"
  step=$(sed -n 's/^stopped by SIG[A-Z]* after step \([0-9]*\);.*/\1/p' <<< "$line")
  [ -n "$step" ] || fail "stop line without a step: $line"
  local checkpoint
  checkpoint=$(printf '%s/b/checkpoints/step-%09d.safetensors' "$tmp" "$step")
  [ "$line" = "stopped by SIG$signal after step $step; checkpoint $checkpoint; resume with --resume auto --out $tmp/b" ] \
    || fail "stop line: $line"
  [ -f "$checkpoint" ] || fail "no checkpoint of step $step"
  [ "$step" -lt "$steps" ] || fail "stopped at step $step, not before the end"
  [ ! -e "$tmp/b/model.safetensors" ] || fail "a stopped run wrote its final model"
  ! rank_pids "$tmp/b" > /dev/null || fail "ranks outlived the job"
  run "$tmp/b" --resume auto > "$tmp/resumed.log"
  grep -q "^resume: from step $step " "$tmp/resumed.log" || fail "did not resume from step $step"
  cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed parameters differ"
  # The last epoch's line, learning rate and gradient norm included, is the uninterrupted run's.
  local metric='import json,sys; r=json.loads(sys.stdin.readlines()[-1]); print(r["step"], r["train_loss"], r["lr"], r["grad_norm"])'
  [ "$(python3 -c "$metric" < "$tmp/a/metrics.jsonl")" = "$(python3 -c "$metric" < "$tmp/b/metrics.jsonl")" ] \
    || fail "final metrics differ"
}

# Open MPI 4's mpirun takes SIGTERM and SIGINT as an order to abort: it passes SIGTERM on to the
# ranks a second later (odls_base_sigkill_timeout) and exits with 1 whatever they return.
mpirun_signal_status() {
  if mpirun --version 2>/dev/null | grep -q "Open MPI) 4\."; then echo 1; else echo "$1"; fi
}

case $case_name in
  sigterm_ranks) stop_and_resume TERM ranks 143 1 ;;
  sigint_ranks) stop_and_resume INT ranks 130 1 ;;
  # Three epochs: the ranks hear of it a second after mpirun.
  sigterm_mpirun) stop_and_resume TERM mpirun "$(mpirun_signal_status 143)" 3 ;;
  kill_and_resume)
    train "$tmp/a" > /dev/null
    train_and_kill 300
    train "$tmp/b" --resume auto > "$tmp/resumed.log"
    grep -q "^resume: from step" "$tmp/resumed.log" || fail "did not resume"
    cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed parameters differ"
    # The metrics of the final epoch match those of the uninterrupted run.
    [ "$(tail -n 1 "$tmp/a/metrics.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["step"], r["train_loss"], r["test_loss"])')" = \
      "$(tail -n 1 "$tmp/b/metrics.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["step"], r["train_loss"], r["test_loss"])')" ] \
      || fail "final metrics differ"
    ;;
  corrupt_newest)
    train "$tmp/a" > /dev/null
    train_and_kill 500
    newest=$(ls "$tmp/b/checkpoints"/step-*.safetensors | sort | tail -n 1)
    # Flip one byte in the tensor data, well past the header.
    size=$(stat -c %s "$newest")
    offset=$((size - 1000))
    byte=$(dd if="$newest" bs=1 skip="$offset" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" |
      dd of="$newest" bs=1 seek="$offset" count=1 conv=notrunc 2>/dev/null
    train "$tmp/b" --resume auto > "$tmp/resumed.log" 2> "$tmp/resumed.err"
    grep -q "checksum mismatch" "$tmp/resumed.err" || fail "corruption not reported: $(cat "$tmp/resumed.err")"
    grep -qF "$(basename "$newest")" "$tmp/resumed.err" || fail "warning does not name the file"
    grep -q "^resume: from step" "$tmp/resumed.log" || fail "did not fall back"
    cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed parameters differ"
    ;;
  resume_bad_input)
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 3 --resume "$tmp/nope.safetensors" \
      --out "$tmp/c" > /dev/null 2> "$tmp/err" && fail "missing checkpoint accepted"
    grep -q "^dptrain: error: $tmp/nope.safetensors: cannot open" "$tmp/err" || fail "$(cat "$tmp/err")"
    [ ! -e "$tmp/c" ] || fail "run directory created"
    # --resume auto without checkpoints starts fresh and says so.
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 3 --resume auto --out "$tmp/d" > "$tmp/out"
    grep -q "^resume: no usable checkpoint in $tmp/d/checkpoints, starting fresh" "$tmp/out" || fail "$(cat "$tmp/out")"
    # A checkpoint of another global batch is refused.
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 3 --checkpoint-every 3 --out "$tmp/e" > /dev/null
    mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 6 --batch-size 32 \
      --resume "$tmp/e/checkpoints/step-000000003.safetensors" --out "$tmp/e" > /dev/null 2> "$tmp/err2" \
      && fail "another global batch accepted"
    grep -q "global_batch" "$tmp/err2" || fail "$(cat "$tmp/err2")"
    ;;
  signal_checkpoint)
    # A scheduler's warning signal to mpirun: the ranks finish the step, checkpoint, exit 75;
    # resumed, the run ends bit for bit where an uninterrupted one does.
    train "$tmp/a" > /dev/null
    train "$tmp/b" > "$tmp/b.log" 2>&1 &
    job=$!
    for _ in $(seq 300); do
      [ -s "$tmp/b/metrics.jsonl" ] && break  # the first epoch is done
      sleep 0.05
    done
    launcher=$(pgrep -f "^mpirun -np 2 $build/dptrain train .*--out $tmp/b" | head -n 1)
    [ -n "$launcher" ] || fail "no mpirun to signal"
    kill -USR1 "$launcher"
    set +e
    wait "$job"
    rc=$?
    set -e
    [ "$rc" -eq 75 ] || fail "exit status $rc after USR1, want 75: $(tail -n 5 "$tmp/b.log")"
    grep -q "^stopped by SIGUSR1 after step [0-9]*; checkpoint .*; resume with --resume auto" \
      "$tmp/b.log" || fail "no stop line: $(tail -n 5 "$tmp/b.log")"
    train "$tmp/b" --resume auto > "$tmp/resumed.log"
    cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed parameters differ"
    # Step counts in metrics.jsonl never go back.
    python3 -c "import json; s=[json.loads(l)['step'] for l in open('$tmp/b/metrics.jsonl')]; \
assert s == sorted(s) and len(set(s)) == len(s), s" || fail "steps not continuous"
    ;;
  other_world_size)
    # Checkpointed with 2 ranks x 64, resumed with 1 rank x 128: the same global batch, the same
    # samples each step, so the parameters agree up to float rounding (not bit for bit).
    common=(train --model mlp --lr 0.05 --momentum 0.9 --threads 1 --checkpoint-every 30)
    mpirun -np 2 "$build/dptrain" "${common[@]}" --batch-size 64 --max-steps 60 --out "$tmp/a" > /dev/null
    mpirun -np 2 "$build/dptrain" "${common[@]}" --batch-size 64 --max-steps 30 --out "$tmp/b" > /dev/null
    mpirun -np 1 "$build/dptrain" "${common[@]}" --batch-size 128 --max-steps 60 --resume auto \
      --out "$tmp/b" > "$tmp/resumed.log"
    grep -q "^resume: from step 30" "$tmp/resumed.log" || fail "did not resume: $(cat "$tmp/resumed.log")"
    python3 - "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" <<'PY'
import json, struct, sys
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: struct.unpack(f"<{(v['data_offsets'][1] - v['data_offsets'][0]) // 4}f",
                             data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys()
worst = max(max(abs(x - y) for x, y in zip(a[k], b[k])) / max(abs(x) for x in a[k]) for k in a)
# (printed beside its bound for tests/cross_cpu.sh: the largest difference relative to each
# tensor's largest magnitude)
print(f"measure: 2 ranks then 1 vs 2 ranks throughout {worst:.2e} < 1e-4")
assert worst < 1e-4, worst
PY
    # A resume with another global batch is refused (with auto, every checkpoint would be
    # refused in turn and the run would start fresh, saying so).
    if mpirun -np 1 "$build/dptrain" "${common[@]}" --batch-size 64 --max-steps 90 \
      --resume "$tmp/b/checkpoints/step-000000060.safetensors" --out "$tmp/b" > /dev/null 2> "$tmp/err"; then
      fail "another global batch accepted"
    fi
    grep -q "global_batch 128, this run has 64" "$tmp/err" || fail "$(cat "$tmp/err")"
    ;;
  zero_other_world_size)
    # ZeRO-1 checkpoints hold the whole optimizer state: checkpointed by 2 ranks with --zero 1,
    # resumed by 1 rank without it, and by 3 ranks with it (oversubscribed here), each with the
    # same global batch, ends where 2 ranks without ZeRO end, up to float rounding.
    common=(train --model mlp --optimizer adamw --lr 1e-3 --threads 1 --checkpoint-every 30)
    mpirun -np 2 "$build/dptrain" "${common[@]}" --batch-size 48 --max-steps 60 --out "$tmp/a" > /dev/null
    mpirun -np 2 "$build/dptrain" "${common[@]}" --batch-size 48 --max-steps 30 --zero 1 \
      --out "$tmp/b" > "$tmp/first.log"
    grep -q "^comm .*reduce-scatter.*ZeRO-1" "$tmp/first.log" || fail "no ZeRO in: $(cat "$tmp/first.log")"
    cp -r "$tmp/b" "$tmp/c"
    mpirun -np 1 "$build/dptrain" "${common[@]}" --batch-size 96 --max-steps 60 --resume auto \
      --out "$tmp/b" > "$tmp/resumed.log"
    grep -q "^resume: from step 30" "$tmp/resumed.log" || fail "did not resume: $(cat "$tmp/resumed.log")"
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" "$tmp/b/model.safetensors" "$tmp/a/model.safetensors" 1e-5 \
      || fail "1 rank resumed from a ZeRO checkpoint ended elsewhere"
    mpirun -np 3 "$build/dptrain" "${common[@]}" --batch-size 32 --max-steps 60 --resume auto \
      --zero 1 --out "$tmp/c" > "$tmp/resumed3.log"
    grep -q "^resume: from step 30" "$tmp/resumed3.log" || fail "did not resume: $(cat "$tmp/resumed3.log")"
    python3 "$(dirname "${BASH_SOURCE[0]}")/compare_safetensors.py" "$tmp/c/model.safetensors" "$tmp/a/model.safetensors" 1e-5 \
      || fail "3 ranks resumed from a ZeRO checkpoint ended elsewhere"
    ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
