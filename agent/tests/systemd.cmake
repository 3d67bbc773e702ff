add_test(NAME agent_systemd_verify
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/scripts/systemd_verify.sh
                 ${CMAKE_SOURCE_DIR}/systemd/ember.service $<TARGET_FILE:ember>)
set_tests_properties(agent_systemd_verify PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
