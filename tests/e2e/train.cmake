foreach(case mlp_accuracy cnn_accuracy example_program config_file optimizer_options
             single_process init_weights_roundtrip info help trace bench_allreduce
             bench_allreduce_bad_sizes bench_reduce_scatter bench_allgather bench_gemm accumulate dptrun
             launch_errors)
  add_test(NAME e2e.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/train_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e.${case} PROPERTIES LABELS e2e TIMEOUT 600
                       ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
