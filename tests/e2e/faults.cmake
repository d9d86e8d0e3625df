foreach(case nan_stops nan_skips replica_drift rank_killed rank_hangs)
  add_test(NAME e2e.faults.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e.faults.${case} PROPERTIES LABELS e2e TIMEOUT 120
                       ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
