foreach(part scaling model)
  add_test(NAME experiments.${part}_unit
           COMMAND python3 -m unittest discover -s ${CMAKE_SOURCE_DIR}/experiments/${part}
                   -p "test_*.py" -v)
  set_tests_properties(experiments.${part}_unit PROPERTIES LABELS unit TIMEOUT 60)
endforeach()
if(NOT DPT_HAVE_MPI)
  return()  # the rest run dptrain under mpirun
endif()
foreach(case scaling_smoke scaling_bad_options perf_model_smoke perf_model_synthetic trace_summary)
  add_test(NAME experiments.${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/experiments_check.sh ${case} ${CMAKE_BINARY_DIR})
  set_tests_properties(experiments.${case} PROPERTIES LABELS e2e TIMEOUT 300
                       ENVIRONMENT "${DPT_MPI_ENV}")
endforeach()
