foreach(case kill_and_resume corrupt_newest resume_bad_input signal_checkpoint
             other_world_size zero_other_world_size sigterm_ranks sigint_ranks sigterm_mpirun)
  add_test(NAME e2e.resume.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/resume_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e.resume.${case} PROPERTIES LABELS e2e TIMEOUT 300
                       ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
