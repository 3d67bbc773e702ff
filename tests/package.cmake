# The Debian package (scripts/package, packaging/deb/): install, upgrade, remove and purge with
# dpkg -i in a fresh Debian chroot (tests/package/deb_chroot_test.sh), and `ember run` in it prints
# the stories260K reference text. Packages this build tree, so only the plain native build runs it
# (a sanitizer runtime or an arm64 binary does not belong in a package; the arm64 package is
# installed in an arm64 chroot under qemu by .ci/run, see docs/deploy.md). Slow the first time:
# debootstrap takes about a minute and a half, then the chroot comes from <build>/chroot-cache
# (about 25 s a run).
if(NOT EMBER_SANITIZE AND NOT CMAKE_CROSSCOMPILING)
    add_test(NAME deb_chroot
             COMMAND ${CMAKE_SOURCE_DIR}/tests/package/deb_chroot_test.sh ${CMAKE_BINARY_DIR})
    set_tests_properties(deb_chroot PROPERTIES LABELS "integration;slow;package" TIMEOUT 900
                         SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
                         ENVIRONMENT "EMBER_SHARED_DIR=${EMBER_SHARED_DIR}")
endif()
