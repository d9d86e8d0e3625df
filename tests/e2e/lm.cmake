# A language model through the CLI: prepare-text, training with step logs, generation, resume.
foreach(case train_and_generate kill_and_resume bf16_kill_and_resume memory_report)
  add_test(NAME e2e.lm.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/lm_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e.lm.${case} PROPERTIES LABELS e2e TIMEOUT 300
                       ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
