# Policies, constraints, anti-flap, tunables and the calibration file, through the real controller.
ember_add_test(NAME gov_policy_test SOURCES tests/policy_test.c LIBS ember_governor LABELS unit)
# The two file formats people write by hand: calibration curves and simulator profiles.
ember_add_fuzz(NAME gov_calibration SOURCES tests/fuzz_calibration.c LIBS ember_governor)
ember_add_fuzz(NAME gov_sim_profile SOURCES tests/fuzz_sim_profile.c LIBS ember_governor)
ember_add_fuzz(NAME saved_settings SOURCES tests/fuzz_saved.c LIBS ember_governor)
