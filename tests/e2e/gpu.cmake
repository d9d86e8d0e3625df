# GPU end-to-end cases: registered in every build, so that CI lists them as skipped (exit 77)
# where there is no CUDA backend or no GPU.
foreach(case mlp_accuracy cnn_accuracy mpi_parity accumulate_parity zero_bf16_grads nccl_shared_gpu
             trace)
  add_test(NAME e2e.gpu.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e.gpu.${case} PROPERTIES LABELS "e2e;gpu" TIMEOUT 180
                       SKIP_RETURN_CODE 77 ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
