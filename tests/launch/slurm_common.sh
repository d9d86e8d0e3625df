# shellcheck shell=bash
# Sourced by slurm_test.sh and slurm_multinode_test.sh: what both need to run a private Slurm
# cluster and follow its jobs. The caller defines skip (prints SKIPPED, exits 77), log, fail,
# tmp (the cluster's state folder) and the array pids, where the daemons it starts go. slurm_client is the command the Slurm
# clients run under (nsenter into a network namespace); empty, they run as they are.
slurm_client=()

# slurm_require: Slurm's and munge's commands, from Debian's slurm-wlm (slurmctld, slurmd,
# slurm-client and the plugins, mpi/pmix among them) and munge, installed with apt-get when
# missing. Skips the test when that is impossible.
slurm_require() {
  local commands=(slurmctld slurmd sbatch srun scontrol squeue scancel sinfo munged munge)
  local missing=() p c absent apt_log reason
  absent=$(for c in "${commands[@]}"; do command -v "$c" > /dev/null 2>&1 || echo "$c"; done)
  if [ -n "$absent" ]; then
    command -v apt-get > /dev/null 2>&1 || skip "slurm and munge are not installed and there is no apt-get"
    for p in slurm-wlm munge; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || skip "slurm-wlm and munge are installed, but not on PATH: $(xargs <<< "$absent")"
    log "installing ${missing[*]}"
    apt_log=$(mktemp)
    # The package lists may be missing or stale on a fresh machine: update once and retry.
    if ! slurm_apt_install "$apt_log" "${missing[@]}" &&
       ! { timeout 120 apt-get update -q > /dev/null 2>&1 && slurm_apt_install "$apt_log" "${missing[@]}"; }; then
      reason=$(tail -n 1 "$apt_log")
      rm -f "$apt_log"
      skip "could not install ${missing[*]}: $reason"
    fi
    rm -f "$apt_log"
    absent=$(for c in "${commands[@]}"; do command -v "$c" > /dev/null 2>&1 || echo "$c"; done)
    [ -z "$absent" ] || skip "installed ${missing[*]}, but these are missing: $(xargs <<< "$absent")"
  fi
  id munge > /dev/null 2>&1 || skip "no munge user (the munge package creates it)"
}
slurm_apt_install() {  # LOG PACKAGES...
  local log_file=$1
  shift
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=60 "$@" > "$log_file" 2>&1
}

# slurm_start_munged DIR [PREFIX...]: munged with its own key and its socket DIR/munge.socket,
# run as the munge user as the Debian service runs it, under PREFIX (nsenter).
# It checks permissions: the key's folder is private to munge, the socket's folder open to all,
# and so is every folder above it.
slurm_start_munged() {
  local dir=$1 socket=$1/munge.socket
  shift
  mkdir -p "$dir/etc"
  dd if=/dev/urandom of="$dir/etc/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$dir"
  chmod 700 "$dir/etc"
  chmod 400 "$dir/etc/munge.key"
  "$@" setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    --key-file="$dir/etc/munge.key" --socket="$socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" > "$dir/munged.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
  munge -S "$socket" -n 2>/dev/null | unmunge -S "$socket" > /dev/null 2>&1 ||
    fail "munged did not start: $(cat "$dir/munged.out")"
}

# The settings both test clusters share: root daemons signed by munge, no accounting or
# cgroups, state and the controller's files under $tmp/slurm, and a scheduler that runs every
# second (defaults: backfill 30 s, the whole queue 60 s) so that jobs start at once.
# shellcheck disable=SC2154  # tmp: the caller's
slurm_conf_common() {
  cat <<EOF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$tmp/slurm/state
SlurmctldPidFile=$tmp/slurm/slurmctld.pid
SlurmctldLogFile=$tmp/slurm/slurmctld.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
EOF
}

# For cleanup, these two never fail. slurm_cancel_jobs cancels the jobs still in the queue and
# waits (15 s at most) until they are gone: their steps run under slurmstepd, which outlives a
# stopped slurmd. Only once slurmctld was started: without a slurm.conf the clients look for a
# controller in DNS.
slurm_cancel_jobs() {
  local jobs
  jobs=$(timeout 10 "${slurm_client[@]}" squeue -h -o %i 2>/dev/null || true)
  [ -n "$jobs" ] || return 0
  # shellcheck disable=SC2086
  timeout 10 "${slurm_client[@]}" scancel $jobs 2>/dev/null || true
  for _ in $(seq 30); do
    [ -z "$(timeout 5 "${slurm_client[@]}" squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.5
  done
}
slurm_stop_daemons() {  # the daemons in pids, last started first
  local pid i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

job_field() {  # JOB FIELD
  timeout 10 "${slurm_client[@]}" scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}
wait_job() {  # JOB SECONDS [RESTARTS]: waits until the job has ended (after being requeued
  # RESTARTS times, so that the moment of a requeue does not count as the end), prints its state
  local deadline=$(($(date +%s) + $2)) s
  while :; do
    s=$(job_field "$1" JobState)
    case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
      if [ "$(job_field "$1" Restarts)" -ge "${3:-0}" ]; then echo "$s"; return; fi ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT_WAITING($s)"; return; }
    sleep 0.5
  done
}
