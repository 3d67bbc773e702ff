#!/usr/bin/env bash
# `ember quantize` onto a full disk: the output directory is a 256 KiB tmpfs mounted by the test,
# too small for stories260K in F16 (about 600 KiB). The command must fail with exit 1 and an error
# naming the disk being full, and leave the directory empty (no output, no temporary file).
# Mounting needs root (CAP_SYS_ADMIN): otherwise the test skips (77) saying so.
# usage: quantize_fulldisk_test.sh EMBER SHARED_DIR
set -u
ember=$1
st="$2/models/stories260K.gguf"
dir=$(mktemp -d)
cleanup() {
    umount "$dir" 2>/dev/null
    rmdir "$dir"
}
trap cleanup EXIT
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=256k tmpfs "$dir" 2>/dev/null; then
    echo "SKIP: cannot mount a tmpfs (needs root and CAP_SYS_ADMIN) to fill a disk"
    exit 77
fi
fail=0
"$ember" quantize -q "$st" "$dir/out.gguf" --type F16 >/dev/null 2>"$dir/../fulldisk.err.$$"
rc=$?
err=$(cat "$dir/../fulldisk.err.$$")
rm -f "$dir/../fulldisk.err.$$"
if [ "$rc" = 1 ] && printf '%s' "$err" | grep -q "No space left on device"; then
    echo "ok   full disk: exit 1, '$err'"
else
    echo "FAIL full disk: exit $rc, '$err'"
    fail=1
fi
left=$(ls -A "$dir")
if [ -z "$left" ]; then echo "ok   full disk: nothing left behind"; else
    echo "FAIL full disk: left behind: $left"
    fail=1
fi
# the same command fits when the disk has room: the failure was the disk, not the command
umount "$dir" && mount -t tmpfs -o size=4m tmpfs "$dir" || exit 1
if "$ember" quantize -q "$st" "$dir/out.gguf" --type F16 && [ -s "$dir/out.gguf" ]; then
    echo "ok   with room: written"
else
    echo "FAIL with room"
    fail=1
fi
exit $fail
