# The launch scripts against real schedulers. launch.slurm starts a private one-node Slurm
# cluster (needs root; installs slurm-wlm and munge when missing) and exits 77, shown as
# skipped, when it cannot.
if(NOT DPT_HAVE_MPI)
  return()  # the scripts launch dptrain with srun and mpirun
endif()
add_test(NAME launch.slurm
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(launch.slurm PROPERTIES LABELS launch TIMEOUT 600 SKIP_RETURN_CODE 77
                     ENVIRONMENT "${DPT_MPI_ENV}")
