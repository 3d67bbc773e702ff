# Built-in profiles reproduce the measurements they cite (issue 12); the wall and firmware-limit
# terms of the plant.
ember_add_test(NAME gov_sim_reference_test SOURCES tests/sim_reference_test.c LIBS ember_governor
               LABELS unit TIMEOUT 300)
