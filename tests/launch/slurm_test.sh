#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# launch/slurm against a real Slurm: starts a private one-node cluster (its own munged, slurmctld
# and slurmd, with all their state in a temporary folder and their ports on loopback), then
#   (a) train.sbatch with 2 tasks on the CPU path runs a short job to the end;
#   (b) a job that gets the warning signal mid-run (as --signal=B:USR1@120 sends it) checkpoints,
#       requeues itself, resumes from its checkpoint and ends where an uninterrupted run ends,
#       launched with srun --mpi=pmix and with mpirun inside the allocation;
#   (c) sweep.sh submits multinode.sbatch into runs/sweep-<tag>/n1;
#   (d) a job cancelled with scancel checkpoints on SIGTERM and is not requeued.
# Needs root (slurmd and munged run as root and as munge). Installs slurm-wlm and munge with
# apt-get when they are missing; when that is impossible it prints SKIPPED and exits 77.
#   slurm_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: slurm_test.sh BUILD_DIR}" && pwd)
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
started=$(date +%s)

skip() { echo "SKIPPED: $*"; exit 77; }
log() { echo "slurm_test: $* ($(($(date +%s) - started)) s)"; }

# A job running inside another Slurm allocation would hand its SLURM_* variables to ours.
for v in $(compgen -v SLURM_); do unset "$v"; done

[ -x "$build/dptrain" ] || { echo "FAIL: $build/dptrain not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmd and munged"

# --- Slurm and munge ----------------------------------------------------------------------
# shellcheck source=slurm_common.sh
source "$root_dir/tests/launch/slurm_common.sh"
slurm_require

# --- a private cluster --------------------------------------------------------------------
tmp=$(mktemp -d /tmp/dpt-slurm.XXXXXX)
# munged (as the munge user) needs to reach its socket under here.
chmod 755 "$tmp"
pids=()  # daemons we started, stopped in reverse order

dump_logs() {
  local f
  for f in "$tmp"/work/*.out "$tmp"/slurm/slurmctld.log "$tmp"/slurm/slurmd.log "$tmp"/munge/munged.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}
fail() {
  echo "FAIL: $*" >&2
  dump_logs
  exit 1
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [ -n "${SLURM_CONF:-}" ] && [ ${#pids[@]} -ge 3 ]; then slurm_cancel_jobs; fi
  slurm_stop_daemons
  # Ranks of a job that did not end with it: their command lines hold our unique folder.
  for pid in $(pgrep -f "$tmp/" 2>/dev/null || true); do
    if [ "$pid" != "$$" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

socket=$tmp/munge/munge.socket
slurm_start_munged "$tmp/munge"

# Two free TCP ports on loopback, for slurmctld and slurmd.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

node=$(hostname -s)
cpus=$(nproc)
[ "$cpus" -ge 2 ] || cpus=2  # the tests run 2 tasks; config_overrides lets the node claim 2
mkdir -p "$tmp/slurm/state" "$tmp/slurm/spool" "$tmp/work"
export SLURM_CONF=$tmp/slurm/slurm.conf
cat > "$SLURM_CONF" <<EOF
# Written by tests/launch/slurm_test.sh: one node, everything under $tmp.
ClusterName=dpttest$$
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# cred_expire: a requeued job waits this long (+1 s) before it may start again (default 120).
AuthInfo=socket=$socket,cred_expire=5
SlurmdSpoolDir=$tmp/slurm/spool
SlurmdPidFile=$tmp/slurm/slurmd.pid
SlurmdLogFile=$tmp/slurm/slurmd.log
$(slurm_conf_common)
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
slurmctld -D > "$tmp/slurm/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D > "$tmp/slurm/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 60); do
  state=$(timeout 5 sinfo -h -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "the node is not idle after 30 s (sinfo: '$state')"
log "cluster up: node $node, $cpus CPUs, slurmctld port $ctld_port, slurmd port $slurmd_port"
if [[ $(srun --mpi=list 2>&1) =~ pmix ]]; then launcher=srun; else launcher=mpirun; fi
log "this Slurm launches with $launcher ($(srun --mpi=list 2>&1 | tr -s '\n\t ' ' '))"

# --- helpers (job_field and wait_job: slurm_common.sh) --------------------------------------
metric_steps() {  # METRICS_FILE: the "step" of every line
  python3 -c 'import json, sys; print(*[json.loads(l)["step"] for l in open(sys.argv[1])])' "$1"
}
steps_increase() {  # STEPS...: step counts never go back (nor repeat)
  python3 -c 'import sys; s = [int(x) for x in sys.argv[1:]]; sys.exit(0 if s and all(a < b for a, b in zip(s, s[1:])) else 1)' "$@"
}

cd "$tmp/work"
export DPTRAIN=$build/dptrain
# shellcheck source=../../launch/mpi_env.sh
source "$root_dir/launch/mpi_env.sh"
# Open MPI's shared-memory segments go to /dev/shm, where a rank that is killed (case d) leaves
# them behind; under $tmp they go with it. sbatch hands this on to the jobs.
mkdir -p "$tmp/shm"
export OMPI_MCA_btl_vader_backing_directory=$tmp/shm

# --- (a) and (c): a short job, and a sweep of one size, side by side ------------------------
a_args=(--model mlp --max-steps 60 --batch-size 64)
job_a=$(sbatch --parsable -n 2 --output="$tmp/work/a-%j.out" "$root_dir/launch/slurm/train.sbatch" "${a_args[@]}") ||
  fail "sbatch of train.sbatch failed"
job_a=${job_a%%;*}
sweep_out=$("$root_dir/launch/slurm/sweep.sh" --nodes 1 --tasks-per-node 2 --tag t1 -- \
  --model mlp --max-steps 30 --batch-size 32) || fail "sweep.sh failed: $sweep_out"
echo "$sweep_out"
[[ $sweep_out =~ ^nodes=1\ job=([0-9]+)\ dir=$tmp/work/runs/sweep-t1/n1$ ]] ||
  fail "sweep.sh printed '$sweep_out'"
job_c=${BASH_REMATCH[1]}
log "(a) submitted job $job_a, (c) sweep job $job_c"

s=$(wait_job "$job_a" 60)
[ "$s" = COMPLETED ] || fail "(a) job $job_a ended $s"
out_a=$tmp/work/a-$job_a.out
run_a=$tmp/work/runs/slurm-$job_a
[[ $(head -n 1 "$out_a") == "+ $launcher "*" $DPTRAIN train --resume auto --out $run_a ${a_args[*]}" ]] ||
  fail "(a) the first line is not the launch command: $(head -n 1 "$out_a")"
grep -q "^resume: no usable checkpoint in $run_a/checkpoints, starting fresh" "$out_a" ||
  fail "(a) dptrain did not start in $run_a"
[ -f "$run_a/model.safetensors" ] || fail "(a) no model.safetensors in $run_a"
read -r step world < <(tail -n 1 "$run_a/metrics.jsonl" |
  python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["step"], r["world_size"])')
[ "$step $world" = "60 2" ] || fail "(a) metrics.jsonl ends at step $step with $world ranks, want 60 and 2"
log "(a) ok: job $job_a ran 60 steps on 2 ranks into runs/slurm-$job_a"

s=$(wait_job "$job_c" 60)
[ "$s" = COMPLETED ] || fail "(c) sweep job $job_c ended $s"
run_c=$tmp/work/runs/sweep-t1/n1
[ -f "$run_c/model.safetensors" ] || fail "(c) no model.safetensors in $run_c"
[ "$(tail -n 1 "$run_c/metrics.jsonl" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["step"], r["world_size"])')" = "30 2" ] ||
  fail "(c) $run_c/metrics.jsonl: $(tail -n 1 "$run_c/metrics.jsonl")"
log "(c) ok: sweep job $job_c (multinode.sbatch, 1 node x 2 tasks) into runs/sweep-t1/n1"

# --- (b) the warning signal: checkpoint, requeue, resume ------------------------------------
# Once with this Slurm's launcher and once with mpirun inside the allocation (the fallback where
# srun has no PMIx), side by side. The signal goes out once a job has a checkpoint (every 100
# steps) on disk, so its ranks are training; the run is long enough (about 6 epochs, 3 s or more)
# that the signal lands well before its end.
target=3000
b_args=(--model mlp --epochs 10 --max-steps "$target" --batch-size 64 --threads 1
        --checkpoint-every 100)
b_launchers=("$launcher")
[ "$launcher" = mpirun ] || b_launchers+=(mpirun)
declare -A job_b stop_b
for l in "${b_launchers[@]}"; do
  j=$(DPT_LAUNCHER=$l sbatch --parsable -n 2 --output="$tmp/work/b-$l-%j.out" \
    "$root_dir/launch/slurm/train.sbatch" "${b_args[@]}") || fail "(b) sbatch of train.sbatch failed"
  job_b[$l]=${j%%;*}
done
for l in "${b_launchers[@]}"; do
  j=${job_b[$l]}
  for _ in $(seq 600); do  # 60 s for the job to start and reach step 100
    compgen -G "$tmp/work/runs/slurm-$j/checkpoints/step-*.safetensors" > /dev/null && break
    sleep 0.1
  done
  compgen -G "$tmp/work/runs/slurm-$j/checkpoints/step-*.safetensors" > /dev/null ||
    fail "(b) job $j ($l) wrote no checkpoint within 60 s"
  # What --signal=B:USR1@120 does at the time limit: SIGUSR1 to the batch shell only.
  scancel --signal=USR1 --batch "$j" || fail "(b) scancel --signal=USR1 --batch $j failed"
  log "(b) job $j ($l): sent USR1 to the batch shell"
done

# Until the ranks have stopped, leave them the cores. The checkpoint of the step they stopped at
# must be on disk; the resumed run prunes it later (--keep-checkpoints 3).
for l in "${b_launchers[@]}"; do
  j=${job_b[$l]}
  stop=""
  for _ in $(seq 300); do
    stop=$(sed -n 's/^stopped by SIGUSR1 after step \([0-9]*\); checkpoint .*/\1/p' \
      "$tmp/work/b-$l-$j.out" 2>/dev/null)
    [ -n "$stop" ] && break
    sleep 0.1
  done
  [ -n "$stop" ] || fail "(b) job $j ($l): dptrain did not stop on the signal with a checkpoint within 30 s"
  [ -f "$(printf '%s/runs/slurm-%s/checkpoints/step-%09d.safetensors' "$tmp/work" "$j" "$stop")" ] ||
    fail "(b) job $j ($l): no checkpoint of step $stop"
  stop_b[$l]=$stop
done
# An uninterrupted reference while the requeued jobs wait out cred_expire (same ranks,
# threads and batch, so the parameters must agree bit for bit).
mpirun -np 2 "$DPTRAIN" train "${b_args[@]}" --out "$tmp/work/reference" > "$tmp/work/reference.out" 2>&1 ||
  fail "(b) the reference run failed: $(tail -n 5 "$tmp/work/reference.out")"

for l in "${b_launchers[@]}"; do
  j=${job_b[$l]}
  run_b=$tmp/work/runs/slurm-$j
  out_b=$tmp/work/b-$l-$j.out
  s=$(wait_job "$j" 150 1)
  [ "$s" = COMPLETED ] || fail "(b) job $j ($l) ended $s"
  [[ $(head -n 1 "$out_b") == "+ $l "* ]] || fail "(b) job $j did not launch with $l: $(head -n 1 "$out_b")"
  grep -q "^dptrain-slurm: got SIGUSR1, passing it to the ranks" "$out_b" ||
    fail "(b) job $j ($l): the batch shell did not pass the signal on"
  stop=${stop_b[$l]}
  [ "$stop" -lt "$target" ] || fail "(b) job $j ($l) stopped at step $stop, not before $target"
  grep -q "^dptrain-slurm: stopped with a checkpoint in $run_b; requeueing job $j" "$out_b" ||
    fail "(b) job $j ($l): the script did not requeue the job"
  [ "$(job_field "$j" Restarts)" = 1 ] || fail "(b) job $j ($l) restarted $(job_field "$j" Restarts) times, want 1"
  grep -q "^resume: from step $stop " "$out_b" || fail "(b) job $j ($l) did not resume from step $stop"
  [ -f "$run_b/model.safetensors" ] || fail "(b) job $j ($l): no model.safetensors in $run_b"
  [ "$(job_field "$j" ExitCode)" = 0:0 ] || fail "(b) job $j ($l): exit code $(job_field "$j" ExitCode)"
  read -r -a steps <<< "$(metric_steps "$run_b/metrics.jsonl")"
  steps_increase "${steps[@]}" || fail "(b) job $j ($l): metrics.jsonl steps go back: ${steps[*]}"
  [ "${steps[-1]}" = "$target" ] || fail "(b) job $j ($l): the last step is ${steps[-1]}, want $target"
  cmp -s "$run_b/model.safetensors" "$tmp/work/reference/model.safetensors" ||
    fail "(b) job $j ($l): the resumed parameters differ from an uninterrupted run's"
  log "(b) ok: job $j ($l) stopped at step $stop, requeued, resumed, ended at step $target" \
    "(metrics steps ${steps[*]}), parameters equal to an uninterrupted run"
done

# --- (d) scancel: the job is not requeued; under srun dptrain checkpoints on SIGTERM ---------
# slurmstepd sends SIGTERM to every process of the job. mpirun takes it as an abort, exits with 1
# and kills its ranks two seconds later (they may checkpoint in between), so only under srun,
# where the exit code (143) is the ranks' own, is the checkpoint checked.
declare -A job_d
for l in "${b_launchers[@]}"; do
  j=$(DPT_LAUNCHER=$l sbatch --parsable -n 2 --output="$tmp/work/d-$l-%j.out" \
    "$root_dir/launch/slurm/train.sbatch" "${b_args[@]}") || fail "(d) sbatch of train.sbatch failed"
  job_d[$l]=${j%%;*}
done
for l in "${b_launchers[@]}"; do
  j=${job_d[$l]}
  for _ in $(seq 600); do
    compgen -G "$tmp/work/runs/slurm-$j/checkpoints/step-*.safetensors" > /dev/null && break
    sleep 0.1
  done
  compgen -G "$tmp/work/runs/slurm-$j/checkpoints/step-*.safetensors" > /dev/null ||
    fail "(d) job $j ($l) wrote no checkpoint within 60 s"
  scancel "$j" || fail "(d) scancel $j failed"
done
for l in "${b_launchers[@]}"; do
  j=${job_d[$l]}
  out_d=$tmp/work/d-$l-$j.out
  s=$(wait_job "$j" 30)
  [ "$s" = CANCELLED ] || fail "(d) job $j ($l) ended $s after scancel, want CANCELLED"
  [ "$(job_field "$j" Restarts)" = 0 ] || fail "(d) a cancelled job $j ($l) was requeued"
  if [ "$l" = srun ]; then
    grep -q "^stopped by SIGTERM after step [0-9]*; checkpoint " "$out_d" ||
      fail "(d) job $j ($l): dptrain did not checkpoint on SIGTERM"
    grep -q "^dptrain-slurm: stopped by SIGTERM with a checkpoint in .*; not requeueing" "$out_d" ||
      fail "(d) job $j ($l): the script did not say it leaves the job cancelled"
    log "(d) ok: job $j ($l) cancelled: checkpointed on SIGTERM, not requeued"
  else
    log "(d) ok: job $j ($l) cancelled, not requeued"
  fi
done

echo "PASS: launch.slurm ($(($(date +%s) - started)) s)"
