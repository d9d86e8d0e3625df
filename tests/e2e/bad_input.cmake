# cli.bad_input.<case>: dptrain refuses bad files, options, specs and weights with exit code 2,
# one "dptrain: error:" line and no run directory (see bad_input.sh).
foreach(case
    missing_file wrong_idx_magic truncated_idx truncated_npy count_mismatch label_out_of_range
    npy_unsupported_dtype npy_fortran_order unknown_option unknown_preset malformed_spec
    spec_not_fitting_input batch_size_zero batch_larger_than_shard safetensors_wrong_names
    safetensors_wrong_shapes init_weights_missing)
  add_test(NAME cli.bad_input.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bad_input.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(cli.bad_input.${case} PROPERTIES
                       LABELS e2e TIMEOUT 120 ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
