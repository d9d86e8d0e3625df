# shellcheck shell=bash
# The one place that decides how dptrain's scripts and tests start Open MPI:
#   - run as root: allowed exactly when the user is root (containers, CI), never otherwise;
#   - oversubscription: allowed, so that a fixed number of ranks (the tests' 3 on a 2-core
#     machine) starts anywhere; Open MPI still places one rank per core while there are cores.
# Sourced, it exports that policy as environment variables (Open MPI 4's, then Open MPI 5's). As a
# program, `mpi_env.sh --cmake` prints them as a CMake list for tests/CMakeLists.txt's DPT_MPI_ENV.
# launch/dptrun spells the same policy as mpirun flags, with dpt_mpirun_flags.

# The variables, one NAME=VALUE a line.
dpt_mpi_env() {
  if [ "$(id -u)" -eq 0 ]; then
    echo OMPI_ALLOW_RUN_AS_ROOT=1
    echo OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  echo OMPI_MCA_rmaps_base_oversubscribe=1
  echo PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
}

# dpt_mpirun_flags NP CORES: the policy as flags for a printed mpirun command line, one a line:
# --allow-run-as-root when root; with no more ranks than cores, each rank bound to an equal share
# of them; with more, --oversubscribe and no binding.
dpt_mpirun_flags() {
  [ "$(id -u)" -ne 0 ] || echo --allow-run-as-root
  if [ "$1" -le "$2" ]; then
    printf '%s\n' --map-by "slot:PE=$(($2 / $1))" --bind-to core
  else
    printf '%s\n' --oversubscribe --bind-to none
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ "${1:-}" = --cmake ] || { echo "usage: source mpi_env.sh, or mpi_env.sh --cmake" >&2; exit 2; }
  dpt_mpi_env | paste -sd ';'
else
  while IFS= read -r dpt_mpi_var; do export "${dpt_mpi_var?}"; done < <(dpt_mpi_env)
  unset dpt_mpi_var
fi
