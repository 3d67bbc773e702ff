#!/bin/sh
# Checks a binary for the hardening the build promises: a position-independent executable, full
# RELRO (a GNU_RELRO segment and BIND_NOW), the stack protector, and, in optimised builds,
# _FORTIFY_SOURCE's checked libc calls. Prints what it found.
# usage: hardening_check.sh READELF BINARY BUILD_TYPE
set -u
readelf=$1 bin=$2 type=${3:-}
fail=0 pass=0
check() { # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; pass=$((pass + 1)); else echo "FAIL: $desc" >&2; fail=$((fail + 1)); fi
}
header=$("$readelf" -hW "$bin") || exit 1
segments=$("$readelf" -lW "$bin")
dynamic=$("$readelf" -dW "$bin")
symbols=$("$readelf" --dyn-syms -W "$bin")
check "PIE (ELF type DYN)" sh -c "printf '%s\n' \"\$1\" | grep -Eq 'Type:[[:space:]]+DYN'" _ "$header"
check "GNU_RELRO segment" sh -c "printf '%s\n' \"\$1\" | grep -q GNU_RELRO" _ "$segments"
check "BIND_NOW (full RELRO)" sh -c "printf '%s\n' \"\$1\" | grep -Eq '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW'" _ "$dynamic"
check "PIE flag" sh -c "printf '%s\n' \"\$1\" | grep -Eq '\(FLAGS_1\).*PIE'" _ "$dynamic"
check "stack protector (__stack_chk_fail)" sh -c "printf '%s\n' \"\$1\" | grep -q __stack_chk_fail" _ "$symbols"
case "$type" in
Release | RelWithDebInfo | MinSizeRel)
	check "_FORTIFY_SOURCE (__*_chk calls)" sh -c "printf '%s\n' \"\$1\" | grep -Eq '__[a-z_]+_chk(@|$| )'" _ "$symbols"
	;;
*) echo "skip: _FORTIFY_SOURCE is only checked in optimised builds (this one: ${type:-none})" ;;
esac
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
