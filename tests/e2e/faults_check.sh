#!/usr/bin/env bash
# Faults through the CLI: non-finite values, replica drift, a rank killed mid-epoch.
#   faults_check.sh CASE BUILD_DIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Runs a command that must fail, with stdout and stderr in $tmp/out and $tmp/err; prints the
# one error line it gave.
failing_run_error() {
  if "$@" > "$tmp/out" 2> "$tmp/err"; then fail "exit status 0: $*"; fi
  one_error_line "$tmp/err"
}
one_error_line() {  # file -> the single "dptrain: error:" line, or fail
  [ "$(grep -c '^dptrain: error:' "$1")" -eq 1 ] || fail "want one error line, got: $(cat "$1")"
  grep '^dptrain: error:' "$1"
}

case $case_name in
  nan_stops)
    # A NaN in one input at step 7: the job stops there, naming the step and the layer. The
    # check runs on the device (the step gate), with clipping too, and on the host under
    # --zero 1, where the ranks hold blocks of the gradients.
    for extra in "" "--grad-clip 1.0" "--zero 1" "--zero 1 --grad-clip 1.0"; do
      rm -rf "$tmp/run"
      # shellcheck disable=SC2086  # $extra is options, split on purpose
      line=$(failing_run_error mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 20 \
        --inject-nan-step 7 $extra --out "$tmp/run")
      echo "$line" | grep -q "non-finite loss or gradients at step 7: first in backward at layer 4 Linear(256, 10)" \
        || fail "[$extra] $line"
      [ ! -e "$tmp/run/model.safetensors" ] || fail "[$extra] a stopped run wrote its model"
    done
    ;;
  nan_skips)
    for extra in "" "--grad-clip 1.0" "--zero 1" "--zero 1 --grad-clip 1.0"; do
      rm -rf "$tmp/run"
      # shellcheck disable=SC2086
      mpirun -np 2 "$build/dptrain" train --model mlp --max-steps 20 --inject-nan-step 7 \
        --on-nonfinite skip $extra --out "$tmp/run" > "$tmp/out" || fail "[$extra] exit $?"
      echo "[$extra]"
      python3 - "$tmp/run" <<'PY' || fail "[$extra] see above"

import json, math, struct, sys
r = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")][-1]
assert r["nonfinite_skips"] == 1 and r["step"] == 20, r
assert math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]), r
with open(sys.argv[1] + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    f.read(n)
    data = f.read()
values = struct.unpack(f"<{len(data) // 4}f", data)
assert all(math.isfinite(v) for v in values), "non-finite parameters"
print("one skip, finite parameters")
PY
    done
    ;;
  replica_drift)
    # Rank 2 drifts after step 7; the check every 5 steps catches it at step 10.
    line=$(failing_run_error mpirun -np 3 "$build/dptrain" train --model mlp --max-steps 20 \
      --check-replicas 5 --inject-drift 2:7 --out "$tmp/run")
    echo "$line" | grep -q "replicas differ after step 10: rank 2 holds other parameters than rank 0" \
      || fail "$line"
    # Without drift the same check passes.
    mpirun -np 3 "$build/dptrain" train --model mlp --max-steps 20 --check-replicas 5 \
      --out "$tmp/ok" > /dev/null
    ;;
  rank_killed)
    # SIGKILL one of 3 ranks mid-epoch: the job ends with an error that names the lost rank,
    # well within the test's time limit (Open MPI's launcher sees the dead process).
    mpirun -np 3 "$build/dptrain" train --model cnn --epochs 1 --batch-size 32 \
      --out "$tmp/run" > "$tmp/out" 2> "$tmp/err" &
    job=$!
    for _ in $(seq 300); do
      [ "$(rank_pids "$tmp/run" | wc -l)" -eq 3 ] && break
      sleep 0.1
    done
    sleep 3  # mid-epoch
    victim=$(rank_pids "$tmp/run" | sed -n 2p)
    [ -n "$victim" ] || fail "no rank to kill"
    victim_rank=$(tr '\0' '\n' < "/proc/$victim/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    killed_at=$(date +%s)
    kill -9 "$victim"
    if wait "$job"; then fail "the job exited 0 after a rank was killed"; fi
    took=$(($(date +%s) - killed_at))
    [ "$took" -le 30 ] || fail "the other ranks took ${took}s to end"
    grep -q "process rank $victim_rank .*exited on signal 9" "$tmp/err" "$tmp/out" \
      || fail "lost rank not named: $(cat "$tmp/err")"
    cat "$tmp/err"
    ! rank_pids "$tmp/run" > /dev/null || fail "ranks outlived the job"
    echo "job ended ${took}s after rank $victim_rank was killed"
    ;;
  rank_hangs)
    # SIGSTOP one of 3 ranks: the others give up after --comm-timeout, name it, end the job.
    mpirun -np 3 "$build/dptrain" train --model mlp --epochs 5 --comm-timeout 3 \
      --out "$tmp/run" > "$tmp/out" 2> "$tmp/err" &
    job=$!
    for _ in $(seq 300); do
      [ -f "$tmp/run/metrics.jsonl" ] && break  # training has started
      sleep 0.1
    done
    sleep 1
    victim=$(rank_pids "$tmp/run" | sed -n 2p)
    [ -n "$victim" ] || fail "no rank to stop"
    victim_rank=$(tr '\0' '\n' < "/proc/$victim/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    stopped_at=$(date +%s)
    kill -STOP "$victim"
    if wait "$job"; then fail "the job exited 0 with a hung rank"; fi
    took=$(($(date +%s) - stopped_at))
    [ "$took" -le 20 ] || fail "the other ranks took ${took}s to end"
    grep -q "^dptrain: error: .*did not complete within 3 s (--comm-timeout).*no answer from rank $victim_rank " \
      "$tmp/err" || fail "hung rank not named: $(cat "$tmp/err")"
    ! rank_pids "$tmp/run" > /dev/null || fail "ranks outlived the job"
    echo "job ended ${took}s after rank $victim_rank was stopped"
    ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
