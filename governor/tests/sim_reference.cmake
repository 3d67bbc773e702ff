# Built-in profiles reproduce the measurements they cite (issue 12); the wall and firmware-limit
# terms of the plant.
ember_add_test(NAME gov_sim_reference_test SOURCES tests/sim_reference_test.c LIBS ember_governor
               LABELS unit TIMEOUT 300)
# The oracle (static clocks per phase) and --sweep (issue 12).
ember_add_test(NAME gov_sim_oracle_test SOURCES tests/sim_oracle_test.c LIBS ember_governor
               LABELS unit TIMEOUT 900)
# The memory lever in the plant: the board's devfreq governor, the lever's saving, the oracle.
ember_add_test(NAME gov_sim_levers_test SOURCES tests/sim_levers_test.c LIBS ember_governor
               LABELS unit TIMEOUT 300)
# The thread lever: the plant (decode saturates with cores, prefill scales, little cores), the
# policies' choice and the controller's targets.
ember_add_test(NAME gov_sim_threads_test SOURCES tests/sim_threads_test.c LIBS ember_governor
               LABELS unit TIMEOUT 300)
