# Bad input through the CLI, one harness (bad_input.sh): dptrain refuses bad files, options, specs
# and weights with exit code 2, one "dptrain: error: " line and no run directory.
#
# cli.bad_input.<case>: the cases written in bad_input.sh, with fixtures it makes.
foreach(case
    missing_file wrong_idx_magic truncated_idx truncated_npy count_mismatch label_out_of_range
    npy_unsupported_dtype npy_fortran_order unknown_option unknown_preset malformed_spec
    spec_not_fitting_input batch_size_zero batch_larger_than_shard safetensors_wrong_names
    safetensors_wrong_shapes init_weights_missing prepare_text_bad_input optimizer_options
    lr_schedule_options token_shards generate_bad_input precision_options)
  add_test(NAME cli.bad_input.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bad_input.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(cli.bad_input.${case} PROPERTIES
                       LABELS e2e TIMEOUT 120 ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()

# cli.bad_inputs_folder.<case>: one test per line of tests/data/bad_inputs/expected.tsv, run as
# bad_input.sh folder/<case>. Adding a line there adds a test (re-run cmake).
set(DPT_BAD_INPUTS_TSV ${CMAKE_CURRENT_SOURCE_DIR}/../data/bad_inputs/expected.tsv)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${DPT_BAD_INPUTS_TSV})
file(STRINGS ${DPT_BAD_INPUTS_TSV} dpt_bad_input_lines REGEX "^[^#]")
# Messages may hold ';' and unbalanced '[' ']', which are list syntax: without the brackets, a
# ';' only splits a line into fragments, and only the item that starts with "case<TAB>role<TAB>"
# names a test.
string(REGEX REPLACE "[][]" "_" dpt_bad_input_lines "${dpt_bad_input_lines}")
foreach(line IN LISTS dpt_bad_input_lines)
  if(NOT line MATCHES "^([A-Za-z0-9_]+)\t(train-images|train-labels|init-weights)\t")
    continue()
  endif()
  set(name cli.bad_inputs_folder.${CMAKE_MATCH_1})
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bad_input.sh folder/${CMAKE_MATCH_1}
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES LABELS e2e TIMEOUT 60 ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
