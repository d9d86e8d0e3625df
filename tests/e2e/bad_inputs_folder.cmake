# cli.bad_inputs_folder.<case>: one test per line of tests/data/bad_inputs/expected.tsv, each run
# through the CLI by bad_inputs_folder.sh. Adding a line there adds a test (re-run cmake).
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
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bad_inputs_folder.sh ${CMAKE_MATCH_1}
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES LABELS e2e TIMEOUT 60 ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
