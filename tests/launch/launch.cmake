# The launch scripts against real schedulers. launch.slurm starts a private one-node Slurm
# cluster; launch.slurm_multinode starts a two-node one, each node in a network namespace of its
# own. Both need root (and install slurm-wlm and munge when missing) and exit 77, shown as
# skipped, when they cannot. They take the lock "slurm" so that they never run side by side.
if(NOT DPT_HAVE_MPI)
  return()  # the scripts launch dptrain with srun and mpirun
endif()
add_test(NAME launch.slurm
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm_test.sh ${CMAKE_BINARY_DIR})
add_test(NAME launch.slurm_multinode
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm_multinode_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(launch.slurm launch.slurm_multinode PROPERTIES
                     LABELS launch TIMEOUT 600 SKIP_RETURN_CODE 77 RESOURCE_LOCK slurm
                     ENVIRONMENT "${DPT_MPI_ENV}")
