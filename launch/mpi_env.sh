# Sourced by the launch and test scripts: lets Open MPI run as root (as in containers and CI)
# and start more ranks than there are cores (Open MPI 4's variable, then Open MPI 5's).
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
