# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by launch/slurm/train.sbatch and launch/slurm/multinode.sbatch: what both do inside
# the allocation. It starts `dptrain train --resume auto --out RUNDIR ARGS...` with one task per
# GPU (or, without GPUs, the tasks of the allocation), passes the scheduler's warning signal on
# to the ranks, and requeues the job when dptrain stopped on it (exit 75).
#
# Environment (all optional; sbatch passes the submitting shell's environment on):
#   DPT_ROOT      the dptrain checkout (default: the one this file is in)
#   DPTRAIN       the dptrain binary (default: $DPT_ROOT/build/dptrain)
#   DPT_RUN_DIR   the run directory (default: $SLURM_SUBMIT_DIR/runs/slurm-$SLURM_JOB_ID). The
#                 job id survives a requeue, so the requeued job finds its own checkpoints
#   DPT_LAUNCHER  srun or mpirun (default: srun --mpi=pmix when this Slurm has PMIx)

dpt_log() { echo "dptrain-slurm: $*"; }
dpt_die() { echo "dptrain-slurm: error: $*" >&2; exit 2; }

# The checkout this file belongs to (the sbatch scripts find this file from the job's Command).
dpt_root=${DPT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# GPUs allocated to this job on this node. Slurm sets SLURM_GPUS_ON_NODE (20.11 and later) and
# CUDA_VISIBLE_DEVICES when the job asked for GPUs; a job that asked for none gets the CPU path
# even on a GPU node.
dpt_gpus_on_node() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then
    echo "$SLURM_GPUS_ON_NODE"
  elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    local ids
    IFS=, read -r -a ids <<< "$CUDA_VISIBLE_DEVICES"
    echo "${#ids[@]}"
  else
    echo 0
  fi
}

# Tasks per node that the allocation holds: --ntasks-per-node if given, else the first entry of
# SLURM_TASKS_PER_NODE ("2" or "8(x4)"), else tasks / nodes.
dpt_alloc_tasks_per_node() {
  if [ -n "${SLURM_NTASKS_PER_NODE:-}" ]; then
    echo "$SLURM_NTASKS_PER_NODE"
  elif [ -n "${SLURM_TASKS_PER_NODE:-}" ]; then
    echo "${SLURM_TASKS_PER_NODE%%[(,]*}"
  else
    echo $(( ${SLURM_NTASKS:-1} / ${SLURM_JOB_NUM_NODES:-1} ))
  fi
}

dpt_launcher_pid=""
dpt_got_term=0
dpt_forward_signal() {  # SIGNAL
  # bash runs a trap only between commands, which is why the launcher runs in the background
  # and the script waits for it: the signal reaches the launcher at once, and srun and mpirun
  # both pass it on to every rank.
  [ "$1" != TERM ] || dpt_got_term=1
  if [ -n "$dpt_launcher_pid" ] && kill -0 "$dpt_launcher_pid" 2>/dev/null; then
    dpt_log "got SIG$1, passing it to the ranks"
    kill -s "$1" "$dpt_launcher_pid" 2>/dev/null || true
  fi
}

# dpt_slurm_train DPTRAIN_ARGS...: the whole job. Exits.
dpt_slurm_train() {
  [ -n "${SLURM_JOB_ID:-}" ] || dpt_die "run this with sbatch (SLURM_JOB_ID is not set)"
  local root=$dpt_root binary run_dir nodes gpus alloc_tpn tpn total
  binary=${DPTRAIN:-$root/build/dptrain}
  [ -x "$binary" ] || dpt_die "$binary not found or not executable (build with launch/setup.sh, or set DPTRAIN)"
  run_dir=${DPT_RUN_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/runs/slurm-$SLURM_JOB_ID}
  mkdir -p "$(dirname "$run_dir")"

  nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
  gpus=$(dpt_gpus_on_node)
  alloc_tpn=$(dpt_alloc_tasks_per_node)
  if [ "$gpus" -gt 0 ]; then
    # One rank per GPU; every rank sees all of the node's GPUs and picks its own by local rank
    # (no --gpus-per-task), so that NCCL can use peer-to-peer between them.
    tpn=$gpus
    [ "$alloc_tpn" -ge "$gpus" ] || dpt_die "$gpus GPUs per node but only $alloc_tpn tasks per node;" \
      "submit with --ntasks-per-node=$gpus (one task per GPU)"
  else
    tpn=$alloc_tpn
  fi
  total=$((nodes * tpn))

  local launcher=${DPT_LAUNCHER:-}
  if [ -z "$launcher" ]; then
    # `srun --mpi=list` names the MPI plugins this Slurm was built with ("pmix", "pmix_v4").
    if [[ $(srun --mpi=list 2>&1) =~ pmix ]]; then launcher=srun; else launcher=mpirun; fi
  fi
  local cmd
  case $launcher in
    srun)
      # --kill-on-bad-exit: a rank that dies ends the step at once, as mpirun does. dptrain's
      # own exit 75 comes after MPI_Finalize, which no rank leaves before rank 0 has written
      # the checkpoint and arrived there too, so it never cuts a checkpoint short.
      cmd=(srun --mpi=pmix --nodes="$nodes" --ntasks="$total" --ntasks-per-node="$tpn"
           --kill-on-bad-exit=1)
      ;;
    mpirun)
      # Open MPI reads the allocation from Slurm's environment and starts its daemons on the
      # other nodes with srun. mpi_env.sh adds what running as root needs.
      # shellcheck source=../mpi_env.sh
      [ -f "$root/launch/mpi_env.sh" ] && source "$root/launch/mpi_env.sh"
      cmd=(mpirun -np "$total" --map-by "ppr:$tpn:node")
      ;;
    *) dpt_die "DPT_LAUNCHER='$launcher': use srun or mpirun" ;;
  esac
  cmd+=("$binary" train --resume auto --out "$run_dir" "$@")

  echo "+ ${cmd[*]}"
  dpt_log "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $nodes node(s), $tpn task(s) per node, $gpus GPU(s) per node"
  trap 'dpt_forward_signal USR1' USR1
  trap 'dpt_forward_signal TERM' TERM
  "${cmd[@]}" &
  dpt_launcher_pid=$!
  # wait returns early (status > 128) whenever a trapped signal arrives; keep waiting until the
  # launcher itself has ended (127: it is no child of ours any more, its pid was reused), then
  # ask once more: bash keeps an ended child's status, so this last wait gives the launcher's
  # own status even when the loop ended on an interrupted wait.
  local rc
  while kill -0 "$dpt_launcher_pid" 2>/dev/null; do
    rc=0
    wait "$dpt_launcher_pid" || rc=$?
    [ "$rc" -ne 127 ] || break
  done
  rc=0
  wait "$dpt_launcher_pid" || rc=$?
  dpt_launcher_pid=""

  if { [ "$rc" -eq 75 ] || [ "$rc" -eq 143 ]; } && [ "$dpt_got_term" -eq 1 ]; then
    # SIGTERM is scancel, the time limit itself or preemption: the job is ending, and Slurm
    # would requeue even a cancelled job. The checkpoint is there to continue from by hand.
    # dptrain exits with 143 after SIGTERM (75 when the warning came first).
    dpt_log "stopped by SIGTERM with a checkpoint in $run_dir; not requeueing (cancelled or out" \
      "of time); continue with DPT_RUN_DIR=$run_dir sbatch ... (same arguments)"
    exit 75
  fi
  if [ "$rc" -eq 75 ]; then
    # dptrain stopped on the warning signal after writing a checkpoint. Put the job back in the
    # queue under the same id (so the same run directory); it resumes with --resume auto.
    dpt_log "stopped with a checkpoint in $run_dir; requeueing job $SLURM_JOB_ID"
    if scontrol requeue "$SLURM_JOB_ID"; then
      exit 0
    fi
    dpt_log "requeue failed; resume by submitting again with DPT_RUN_DIR=$run_dir"
    exit 75
  fi
  dpt_log "dptrain exited with status $rc"
  exit "$rc"
}
