#!/usr/bin/env bash
# Scaling sweep: submits one launch/slurm/multinode.sbatch job per node count, each into its own
# run directory runs/sweep-<tag>/n<nodes> (logs next to it, n<nodes>-<job id>.out), and prints
# one line per job: "nodes=N job=ID dir=DIR".
#   launch/slurm/sweep.sh --nodes "1 2 4" --tasks-per-node 8 -- --model cnn --max-steps 200
# Options:
#   --nodes "N..."        node counts (default "1")
#   --tasks-per-node K    ranks per node on CPU-only nodes (default: Slurm's default, 1)
#   --gpus-per-node G     GPUs per node; one rank per GPU (also sets --ntasks-per-node G)
#   --tag TAG             names runs/sweep-TAG (default: the date and time)
#   --sbatch "ARGS"       more sbatch options for every job, split on spaces (e.g. "-p gpu -t 30")
#   --dry-run             print the sbatch commands instead of running them
# Everything after -- goes to `dptrain train`. --batch-size is per rank, so the same arguments
# at every size make a weak-scaling sweep; give each size its own --batch-size for strong
# scaling. Run it from the directory the runs should go under (usually the checkout).
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script=$root_dir/launch/slurm/multinode.sbatch

die() { echo "sweep: error: $*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

nodes_list="1"
tasks_per_node=""
gpus_per_node=""
tag=$(date +%Y%m%d-%H%M%S)
extra_sbatch=""
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes_list=${2?"sweep: error: --nodes needs a list"}; shift 2 ;;
    --tasks-per-node) tasks_per_node=${2?"sweep: error: $1 needs a number"}; shift 2 ;;
    --gpus-per-node) gpus_per_node=${2?"sweep: error: $1 needs a number"}; shift 2 ;;
    --tag) tag=${2?"sweep: error: --tag needs a name"}; shift 2 ;;
    --sbatch) extra_sbatch=${2?"sweep: error: --sbatch needs options"}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (dptrain's arguments go after --)" ;;
  esac
done

read -r -a node_counts <<< "$nodes_list"
[ ${#node_counts[@]} -gt 0 ] || die "--nodes is empty"
for n in "${node_counts[@]}"; do is_count "$n" || die "--nodes: '$n' is not a positive number"; done
[ -z "$tasks_per_node" ] || is_count "$tasks_per_node" || die "--tasks-per-node '$tasks_per_node' is not a positive number"
[ -z "$gpus_per_node" ] || is_count "$gpus_per_node" || die "--gpus-per-node '$gpus_per_node' is not a positive number"
[[ $tag =~ ^[A-Za-z0-9._-]+$ ]] || die "--tag '$tag': use letters, digits, '.', '_' and '-'"
read -r -a sbatch_extra <<< "$extra_sbatch"

sweep_dir=$PWD/runs/sweep-$tag
# A run directory that exists would be resumed (--resume auto), not measured afresh.
for n in "${node_counts[@]}"; do
  [ ! -e "$sweep_dir/n$n" ] || die "$sweep_dir/n$n exists; pick another --tag"
done
[ "$dry_run" -eq 1 ] || mkdir -p "$sweep_dir"

for n in "${node_counts[@]}"; do
  cmd=(sbatch --parsable --nodes="$n" --job-name="dpt-sweep-$tag-n$n" --output="$sweep_dir/n$n-%j.out")
  if [ -n "$gpus_per_node" ]; then
    cmd+=(--gpus-per-node="$gpus_per_node" --ntasks-per-node="${tasks_per_node:-$gpus_per_node}")
  elif [ -n "$tasks_per_node" ]; then
    cmd+=(--ntasks-per-node="$tasks_per_node")
  fi
  cmd+=(${sbatch_extra[@]+"${sbatch_extra[@]}"} "$script" "$@")
  if [ "$dry_run" -eq 1 ]; then
    echo "+ DPT_RUN_DIR=$sweep_dir/n$n ${cmd[*]}"
    continue
  fi
  # sbatch hands the environment to the job, so DPT_RUN_DIR names this size's directory.
  out=$(DPT_RUN_DIR=$sweep_dir/n$n "${cmd[@]}") || die "sbatch failed for $n node(s)"
  echo "nodes=$n job=${out%%;*} dir=$sweep_dir/n$n"
done
