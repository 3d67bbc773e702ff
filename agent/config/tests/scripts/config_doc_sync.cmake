# Compares etc/ember.conf with the documentation generated from the key table, then validates it.
execute_process(COMMAND ${EMBER} config dump --docs --defaults OUTPUT_VARIABLE generated
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ember config dump failed (${rc})")
endif()
file(READ ${CONF} committed)
if(NOT generated STREQUAL committed)
    message(FATAL_ERROR "${CONF} is out of date: run `ember config dump --docs --defaults > etc/ember.conf`")
endif()
execute_process(COMMAND ${EMBER} config check ${CONF} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ember config check ${CONF} failed (${rc})")
endif()
