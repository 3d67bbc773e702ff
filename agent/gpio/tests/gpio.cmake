# GPIO (issue 15) against the fake chip library linked in place of libgpiod (--as-needed: with
# every function the fake defines, libgpiod is not even loaded, which the tests check).
ember_add_test(NAME gpio_test
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpio_test.c ${CMAKE_CURRENT_LIST_DIR}/fake_gpiod.c
               LIBS ember_agent_gpio ${CMAKE_DL_LIBS})
target_link_options(gpio_test PRIVATE -Wl,--as-needed)
# The daemon's side: the LED and fan from the daemon's state, the button switching the policy on
# a real governor (fake sysfs tree), the power-loss input flushing a real SQLite store and
# restoring the CPU settings, all on the real event loop.
ember_add_test(NAME gpio_daemon_test
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpio_daemon_test.c
                       ${CMAKE_CURRENT_LIST_DIR}/fake_gpiod.c
               LIBS ember_agent_daemon ember_telemetry PkgConfig::SQLITE3 PkgConfig::CJSON
                    ${CMAKE_DL_LIBS})
target_link_options(gpio_daemon_test PRIVATE -Wl,--as-needed)
target_include_directories(gpio_daemon_test PRIVATE ${CMAKE_SOURCE_DIR}/governor/tests)
# `ember gpio` and the agent with [gpio] against the machine's real libgpiod (a chip that exists
# nowhere: one warning each, the agent runs on) and a fake PWM sysfs tree.
add_test(NAME gpio_cli_test
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/gpio_cli_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(gpio_cli_test PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 120)
# The line setting parser ("17", "gpiochip1:17", "gpiochip1:NAME", "NAME") under libFuzzer; its
# corpus (tests/fuzz/gpio_line/) replays in every build. Links the fake: no chip is opened.
ember_add_fuzz(NAME gpio_line SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_gpio_line.c
               ${CMAKE_CURRENT_LIST_DIR}/fake_gpiod.c LIBS ember_agent_gpio)
