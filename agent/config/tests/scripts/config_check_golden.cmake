# `ember config check` on a file with a bad value for every key the engine and telemetry describe
# (and one governor key) must print exactly the committed messages: composing the key table from
# the modules' descriptor rows (issue 13) changed where the rows live, not one character of what
# users read. The expected text was made by the binary before that change; FILE stands for the
# path.
execute_process(COMMAND ${EMBER} config check ${BAD} OUTPUT_VARIABLE out ERROR_VARIABLE err
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 2)
    message(FATAL_ERROR "ember config check ${BAD}: exit ${rc}, expected 2 (configuration error)")
endif()
string(REPLACE "${BAD}" "FILE" got "${out}${err}")
file(READ ${EXPECTED} want)
if(NOT got STREQUAL want)
    message(FATAL_ERROR "ember config check output changed:\n--- got\n${got}--- want\n${want}")
endif()
