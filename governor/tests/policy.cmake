# Policies, constraints, anti-flap, tunables and the calibration file, through the real controller.
ember_add_test(NAME gov_policy_test SOURCES tests/policy_test.c LIBS ember_governor LABELS unit)
