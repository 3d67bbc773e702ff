# Cross-compiling for 64-bit ARM Linux with Debian's cross toolchain (crossbuild-essential-arm64)
# and arm64 multiarch -dev packages (dpkg --add-architecture arm64; libfoo-dev:arm64), as
# scripts/cross arm64 sets them up. Tests run under qemu-user: QEMU_CPU in the environment picks
# the CPU model (cortex-a53, cortex-a76, max; qemu's default is max).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Headers and libraries of the target come from the multiarch folders of / (the same /usr/include,
# /usr/lib/aarch64-linux-gnu); programs run at build time are the host's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# pkg-config must read the arm64 .pc files only, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest starts test executables through qemu-user; the arm64 dynamic loader and libraries are the
# multiarch ones (libc6:arm64), so no sysroot (-L) is needed.
find_program(EMBER_QEMU_AARCH64 qemu-aarch64)
if(EMBER_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${EMBER_QEMU_AARCH64})
endif()
