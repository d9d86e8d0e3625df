#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# launch/slurm/multinode.sbatch on a real two-node Slurm cluster on this one machine. Each node
# lives in a network namespace of its own, made here: node n1 (with slurmctld and munged) in one,
# node n2 in the other, joined by a veth pair on a private /24 and with no route anywhere else;
# each slurmd also has a hostname of its own (a UTS namespace). Then
#   (a) srun puts one task on each node: the tasks see their own node name, hostname and
#       address, and dptrain info shows 2 ranks on 2 hosts with one rank per node;
#   (b) multinode.sbatch --nodes=2 --ntasks-per-node=1 runs a short CPU job to the end, once
#       launched with srun --mpi=pmix and once with mpirun inside the allocation, with Open MPI
#       held to TCP on the /24 (no shared memory), and the veth carries its gradients;
#   (c) launch/slurm/sweep.sh runs the scaling experiments' gpt workload on 1 and 2 nodes.
# Traffic goes only between the two namespaces' addresses and over their loopback; the
# namespaces, daemons and temporary folder go when the test ends. Needs root; installs slurm-wlm
# and munge with apt-get when missing; prints SKIPPED and exits 77 when that or `ip netns` is
# impossible.
#   slurm_multinode_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: slurm_multinode_test.sh BUILD_DIR}" && pwd)
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
started=$(date +%s)

skip() { echo "SKIPPED: $*"; exit 77; }
log() { echo "slurm_multinode_test: $* ($(($(date +%s) - started)) s)"; }

# A job running inside another Slurm allocation would hand its SLURM_* variables to ours.
for v in $(compgen -v SLURM_); do unset "$v"; done

[ -x "$build/dptrain" ] || { echo "FAIL: $build/dptrain not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces, slurmd and munged"
for c in ip nsenter unshare hostname setpriv python3; do
  command -v "$c" > /dev/null 2>&1 || skip "no $c on PATH"
done

# --- Slurm and munge ----------------------------------------------------------------------
# shellcheck source=slurm_common.sh
source "$root_dir/tests/launch/slurm_common.sh"
slurm_require

# --- cleanup ------------------------------------------------------------------------------
# Namespace and folder names carry our PID, so that a run killed with SIGKILL (no trap) can be
# told from a live one and what it left behind removed by the next run.
ns_prefix=dptslurm
ns_a=$ns_prefix-$$-a
ns_b=$ns_prefix-$$-b
veth_a=dpt$$a  # interface names: at most 15 characters
veth_b=dpt$$b
tmp=""
pids=()        # daemons we started, stopped in reverse order
cluster_up=0

# Daemons and clients enter a namespace with nsenter, not `ip netns exec`: that one also mounts
# a fresh /sys, which lacks the cgroup file systems slurmd needs.
enter_a=(nsenter "--net=/var/run/netns/$ns_a")
enter_b=(nsenter "--net=/var/run/netns/$ns_b")
# shellcheck disable=SC2034  # read by slurm_common.sh's helpers
slurm_client=("${enter_a[@]}")

dump_logs() {
  local f
  for f in "$tmp"/work/*.out "$tmp"/slurm/slurmctld.log "$tmp"/slurm/slurmd-n1.log \
           "$tmp"/slurm/slurmd-n2.log "$tmp"/munge/munged.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}
fail() {
  echo "FAIL: $*" >&2
  [ -z "$tmp" ] || dump_logs
  exit 1
}

remove_namespace() {  # NAME: ends every process in it, then the namespace (and so its veth end)
  local ns=$1 pid
  ip netns list 2>/dev/null | grep -q "^$ns\( \|$\)" || return 0
  for _ in $(seq 50); do
    pid=$(ip netns pids "$ns" 2>/dev/null | xargs)
    [ -n "$pid" ] || break
    # shellcheck disable=SC2086
    kill -9 $pid 2>/dev/null || true
    sleep 0.1
  done
  ip netns delete "$ns" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [ "$cluster_up" = 1 ]; then slurm_cancel_jobs; fi
  slurm_stop_daemons
  # Whatever is left in our namespaces (steps, ranks) is ours.
  remove_namespace "$ns_a"
  remove_namespace "$ns_b"
  if [ -n "$tmp" ]; then
    for pid in $(pgrep -f "$tmp/" 2>/dev/null || true); do
      if [ "$pid" != "$$" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces of earlier runs that were killed before they could clean up.
for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
  if [[ $ns =~ ^$ns_prefix-([0-9]+)-[ab]$ ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null; then
    log "removing $ns, left behind by an earlier run"
    remove_namespace "$ns"
    rm -rf "/tmp/dpt-slurm-mn-${BASH_REMATCH[1]}".*
  fi
done

# --- two namespaces on a private /24 ------------------------------------------------------
# A 10.203.X.0/24 that overlaps nothing this machine has an address or a route for (the
# namespaces are isolated either way; this keeps their addresses unambiguous in logs).
net=$({ ip -4 -o addr show; ip -4 route show table all; } | python3 -c '
import ipaddress, re, sys
used = [ipaddress.ip_network(m, strict=False)
        for m in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", sys.stdin.read())]
start = int(sys.argv[1]) % 254  # apart from other runs of this test
for i in range(254):
    x = (start + i) % 254 + 1
    cand = ipaddress.ip_network(f"10.203.{x}.0/24")
    if not any(cand.overlaps(u) for u in used):
        print(f"10.203.{x}")
        break
' "$$") || fail "could not list this machine's addresses"
[ -n "$net" ] || skip "every 10.203.X.0/24 overlaps an address or route of this machine"
addr_a=$net.1
addr_b=$net.2

err=$(ip netns add "$ns_a" 2>&1) || skip "ip netns add refused: $err"
err=$(ip netns add "$ns_b" 2>&1) || skip "ip netns add refused: $err"
err=$(ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b" 2>&1) ||
  skip "could not make a veth pair between the namespaces: $err"
for side in "$ns_a $veth_a $addr_a" "$ns_b $veth_b $addr_b"; do
  read -r ns dev addr <<< "$side"
  # No IPv6 on the veth (its link-local autoconfiguration talks to multicast addresses); the
  # namespaces speak IPv4 to each other's one address and nothing else.
  ip netns exec "$ns" sh -c "f=/proc/sys/net/ipv6/conf/$dev/disable_ipv6; [ ! -e \$f ] || echo 1 > \$f"
  ip -n "$ns" addr add "$addr/24" dev "$dev"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$dev" up
done
for side in "$ns_a $veth_a $addr_a" "$ns_b $veth_b $addr_b"; do
  read -r ns dev addr <<< "$side"
  # Only the /24 of the veth is routed: no default route, no way out.
  routes=$(ip -n "$ns" -4 route show | sed 's/ *$//')
  [ "$routes" = "$net.0/24 dev $dev proto kernel scope link src $addr" ] ||
    fail "namespace $ns has routes other than its /24: $routes"
done
log "namespaces $ns_a ($addr_a) and $ns_b ($addr_b), joined by $veth_a-$veth_b"

# --- munged, slurmctld and two slurmds ----------------------------------------------------
tmp=$(mktemp -d "/tmp/dpt-slurm-mn-$$.XXXXXX")
chmod 755 "$tmp"  # munged (as the munge user) needs to reach its socket under here

# munged in namespace A: Slurm reaches it through a socket file, which every namespace sees.
socket=$tmp/munge/munge.socket
slurm_start_munged "$tmp/munge" "${enter_a[@]}"
munge -S "$socket" -n 2>/dev/null | "${enter_b[@]}" unmunge -S "$socket" > /dev/null 2>&1 ||
  fail "namespace $ns_b cannot reach munged"

# Each namespace has its own ports, so Slurm's default ones are free there.
mkdir -p "$tmp/slurm/state" "$tmp/work"
for n in n1 n2; do mkdir -p "$tmp/slurm/spool-$n" "$tmp/slurm/tmp-$n"; done
export SLURM_CONF=$tmp/slurm/slurm.conf
cat > "$SLURM_CONF" <<EOF
# Written by tests/launch/slurm_multinode_test.sh: two nodes in network namespaces
# $ns_a and $ns_b, everything under $tmp.
ClusterName=dptmn$$
SlurmctldHost=n1($addr_a)
SlurmctldPort=6817
SlurmdPort=6818
AuthInfo=socket=$socket
# %n: the node's name, so that the two slurmds on this one machine keep apart. TmpFS too: the
# PMIx plugin makes each step's folder there, named by job and step only.
SlurmdSpoolDir=$tmp/slurm/spool-%n
SlurmdPidFile=$tmp/slurm/slurmd-%n.pid
SlurmdLogFile=$tmp/slurm/slurmd-%n.log
TmpFS=$tmp/slurm/tmp-%n
$(slurm_conf_common)
# The nodes claim one CPU each of this machine's cores (config_overrides).
NodeName=n1 NodeAddr=$addr_a CPUs=1 State=UNKNOWN
NodeName=n2 NodeAddr=$addr_b CPUs=1 State=UNKNOWN
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
# Each daemon in its own UTS namespace too, named as its node: a job's tasks then see the
# hostname of their node, as on a real cluster (Open MPI's session folders are per hostname).
start_daemon() {  # NAMESPACE HOSTNAME LOGNAME COMMAND...
  local ns=$1 host=$2 out=$tmp/slurm/$3.out
  shift 3
  # shellcheck disable=SC2016  # expanded by that sh
  nsenter "--net=/var/run/netns/$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@" > "$out" 2>&1 &
  pids+=($!)
}
start_daemon "$ns_a" n1 slurmctld slurmctld -D
start_daemon "$ns_a" n1 slurmd-n1 slurmd -D -N n1
start_daemon "$ns_b" n2 slurmd-n2 slurmd -D -N n2
cluster_up=1
state=""
for _ in $(seq 60); do
  state=$(timeout 5 "${enter_a[@]}" sinfo -h -N -o '%N=%t' 2>/dev/null | xargs || true)
  [ "$state" = "n1=idle n2=idle" ] && break
  sleep 0.5
done
[ "$state" = "n1=idle n2=idle" ] || fail "the nodes are not idle after 30 s (sinfo: '$state')"
if [[ $(timeout 10 "${enter_a[@]}" srun --mpi=list 2>&1) =~ pmix ]]; then launcher=srun; else launcher=mpirun; fi
log "cluster up: n1 at $addr_a (with slurmctld), n2 at $addr_b; this Slurm launches with $launcher"

# --- helpers (job_field and wait_job: slurm_common.sh) ------------------------------------
veth_bytes() {  # the bytes namespace A's end of the veth has sent and received
  ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/tx_bytes" \
    "/sys/class/net/$veth_a/statistics/rx_bytes" | xargs
}

cd "$tmp/work"
export DPTRAIN=$build/dptrain
# shellcheck source=../../launch/mpi_env.sh
source "$root_dir/launch/mpi_env.sh"
# Open MPI between the ranks: TCP on the namespaces' /24 only. With shared memory off, ranks on
# the two nodes can only reach each other over the veth (sbatch and srun hand this on).
export OMPI_MCA_btl=self,tcp
export OMPI_MCA_btl_tcp_if_include=$net.0/24
export OMPI_MCA_oob_tcp_if_include=$net.0/24
# mpirun and its daemon on n2 would each bind their rank to "their" first core, the same core of
# this one machine, and the two ranks would take turns on it (30 times slower).
export OMPI_MCA_hwloc_base_binding_policy=none

# --- (a) one task on each node ------------------------------------------------------------
srun_a=(timeout 60 "${enter_a[@]}" srun --nodes=2 --ntasks-per-node=1 --time=1)
# shellcheck disable=SC2016  # expanded by the tasks
where=$("${srun_a[@]}" bash -c \
  'echo "$SLURM_PROCID $SLURMD_NODENAME $(hostname) $(ip -4 -o addr show scope global | awk "{print \$4}" | xargs)"' |
  sort) || fail "(a) srun across the two nodes failed: $where"
want=$(printf '0 n1 n1 %s/24\n1 n2 n2 %s/24' "$addr_a" "$addr_b")
[ "$where" = "$want" ] || fail "(a) the tasks ran at
$where
want
$want"
if [ "$launcher" = srun ]; then
  # stderr apart: srun notes there when the job waits for the nodes ("queued and waiting for
  # resources"), which on a loaded machine it may.
  info=$("${srun_a[@]}" --mpi=pmix "$DPTRAIN" info 2> "$tmp/info.err" | sort) ||
    fail "(a) srun dptrain info failed: $info $(cat "$tmp/info.err")"
  [ "$(cut -d' ' -f1-8 <<< "$info")" = "$(printf 'rank 0/2  local_rank 0/1  host n1\nrank 1/2  local_rank 0/1  host n2')" ] ||
    fail "(a) dptrain info under srun across two nodes:
$info
$(cat "$tmp/info.err")"
  log "(a) ok: one task per node, each in its node's namespace; dptrain info: 2 ranks, one per host"
else
  log "(a) ok: one task per node, each in its node's namespace (no PMIx: dptrain info skipped)"
fi

# --- (b) multinode.sbatch, 2 nodes x 1 task -----------------------------------------------
steps=30
b_args=(--model mlp --max-steps "$steps" --batch-size 64 --threads 1)
b_launchers=("$launcher")
[ "$launcher" = mpirun ] || b_launchers+=(mpirun)
for l in "${b_launchers[@]}"; do
  read -r tx0 rx0 < <(veth_bytes)
  j=$(DPT_LAUNCHER=$l timeout 30 "${enter_a[@]}" sbatch --parsable --nodes=2 --ntasks-per-node=1 --time=5 \
    --output="$tmp/work/b-$l-%j.out" "$root_dir/launch/slurm/multinode.sbatch" "${b_args[@]}") ||
    fail "(b) sbatch of multinode.sbatch failed: $j"
  j=${j%%;*}
  s=$(wait_job "$j" 90)
  read -r tx1 rx1 < <(veth_bytes)
  out=$tmp/work/b-$l-$j.out
  run=$tmp/work/runs/slurm-$j
  [ "$s" = COMPLETED ] || fail "(b) job $j ($l) ended $s"
  [ "$(job_field "$j" NodeList)" = "n[1-2]" ] || fail "(b) job $j ($l) ran on $(job_field "$j" NodeList)"
  [[ $(head -n 1 "$out") == "+ $l "*" $DPTRAIN train --resume auto --out $run ${b_args[*]}" ]] ||
    fail "(b) job $j: the first line is not the $l launch command: $(head -n 1 "$out")"
  grep -q "^dptrain-slurm: job $j (restart 0) on 2 node(s), 1 task(s) per node" "$out" ||
    fail "(b) job $j ($l): the script did not see 2 nodes with 1 task each"
  [ -f "$run/model.safetensors" ] || fail "(b) job $j ($l): no model.safetensors in $run"
  last=$(tail -n 1 "$run/metrics.jsonl" 2>/dev/null |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["step"], r["world_size"])') ||
    fail "(b) job $j ($l): no metrics.jsonl in $run"
  [ "$last" = "$steps 2" ] || fail "(b) job $j ($l): metrics.jsonl ends at step and world size '$last', want '$steps 2'"
  # Every step rank 0 needs all of rank 1's gradients and back: at least the size of the model
  # each way per step, minus the file's header. Slurm's own messages are a few kilobytes.
  min=$(($(stat -c %s "$run/model.safetensors") * steps * 9 / 10))
  if [ $((tx1 - tx0)) -lt "$min" ] || [ $((rx1 - rx0)) -lt "$min" ]; then
    fail "(b) job $j ($l): the veth carried $((tx1 - tx0)) bytes out and $((rx1 - rx0)) in, want $min or more each way"
  fi
  log "(b) ok: job $j ($l) ran $steps steps on n1+n2 into runs/slurm-$j;" \
    "the veth carried $((tx1 - tx0)) bytes out and $((rx1 - rx0)) in (model: $(stat -c %s "$run/model.safetensors") bytes)"
done

# --- (c) launch/slurm/sweep.sh: the gpt workload on 1 and 2 nodes -------------------------
# The scaling experiments' gpt_small (experiments/scaling_gpt.sh: the same model and per-rank
# batch, fewer steps), on token shards of this machine's licence texts: one job per node count,
# each to the end, one rank per node. Its tokens/s at each size are printed (this test measures
# nothing; a machine shared by two namespaces is no cluster).
"$DPTRAIN" prepare-text --out "$tmp/work/tokens" /usr/share/common-licenses > /dev/null ||
  fail "(c) prepare-text failed"
gpt="gpt(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)"
c_steps=20
c_args=(--model "$gpt" --train-tokens "$tmp/work/tokens/train_*.bin" --batch-size 16
        --optimizer adamw --lr 1e-3 --max-steps "$c_steps" --threads 1)
sweep_out=$(DPT_LAUNCHER=$launcher timeout 60 "${enter_a[@]}" "$root_dir/launch/slurm/sweep.sh" \
  --nodes "1 2" --tasks-per-node 1 --tag gpt --sbatch "--time=5" -- "${c_args[@]}") ||
  fail "(c) sweep.sh failed: $sweep_out"
for n in 1 2; do
  line=$(grep "^nodes=$n " <<< "$sweep_out") || fail "(c) sweep.sh printed no line for $n node(s): $sweep_out"
  [[ $line =~ ^nodes=$n\ job=([0-9]+)\ dir=$tmp/work/runs/sweep-gpt/n$n$ ]] ||
    fail "(c) sweep.sh printed '$line'"
  j=${BASH_REMATCH[1]}
  s=$(wait_job "$j" 120)
  [ "$s" = COMPLETED ] || fail "(c) sweep job $j ($n node(s)) ended $s: $(tail -n 5 "$tmp/work/runs/sweep-gpt/n$n-$j.out")"
  run=$tmp/work/runs/sweep-gpt/n$n
  got=$(tail -n 1 "$run/metrics.jsonl" 2>/dev/null | python3 -c 'import json, sys
r = json.load(sys.stdin)
print(r["step"], r["world_size"], round(r["samples_per_second"] * 128))') ||
    fail "(c) job $j ($n node(s)): no metrics.jsonl in $run"
  read -r step world tokens <<< "$got"
  [ "$step $world" = "$c_steps $n" ] ||
    fail "(c) job $j: metrics.jsonl ends at step and world size '$step $world', want '$c_steps $n'"
  [ -f "$run/model.safetensors" ] || fail "(c) job $j ($n node(s)): no model.safetensors in $run"
  log "(c) ok: sweep job $j, gpt on $n node(s) x 1 rank into runs/sweep-gpt/n$n: $tokens tokens/s"
done

echo "PASS: launch.slurm_multinode ($(($(date +%s) - started)) s)"
