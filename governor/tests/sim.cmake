# The simulator's targets (issue 5) on every built-in profile, one ctest per profile.
ember_add_test(NAME gov_sim_test SOURCES tests/sim_test.c LIBS ember_governor LABELS unit
               ARGS rk3588 TIMEOUT 900)
foreach(profile n100 ryzen)
    add_test(NAME gov_sim_test_${profile} COMMAND gov_sim_test ${profile})
    set_tests_properties(gov_sim_test_${profile} PROPERTIES LABELS unit SKIP_RETURN_CODE 77
                         TIMEOUT 900)
endforeach()
