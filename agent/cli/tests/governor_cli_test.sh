#!/bin/sh
# `ember governor` end to end on copies of the fake trees: status (table and JSON), set and
# restore (files change and come back), usage errors, calibrate where frequencies cannot be set
# (exit 3) and where they can (a curve file, originals restored), and a non-root user (monitor
# only: set exits 3 with one clear message).
# usage: governor_cli_test.sh EMBER SOURCE_DIR SHARED_DIR
set -u
ember=$1 src=$2 shared=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cli-governor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0 pass=0
check() { # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then pass=$((pass + 1)); else echo "FAIL: $desc" >&2; fail=$((fail + 1)); fi
}
copy() { # copy TREE DIR
	mkdir -p "$2" && cp -a "$src/tests/sysfs-trees/$1/." "$2/" && chmod -R u+w "$2"
}
cpufreq() { cat "$1/sys/devices/system/cpu/cpufreq/$2"; }

# --help everywhere
for sub in status set restore calibrate sim; do
	check "$sub --help" sh -c "'$ember' governor $sub --help >/dev/null"
done
check "governor --help" sh -c "'$ember' governor --help | grep -q calibrate"
"$ember" governor nosuch >/dev/null 2>&1; check "unknown sub-command exits 2" test $? -eq 2

rk=$tmp/rk
copy rk3588-3cluster "$rk"
out=$("$ember" governor status --root "$rk")
check "status exits 0" test $? -eq 0
check "status lists policy4" sh -c "echo '$out' | grep -q '^policy4 *4-5 *cpufreq-dt'"
check "status shows the soc zone" sh -c "echo '$out' | grep -q 'soc-thermal'"
json=$("$ember" governor status --root "$rk" --json)
check "status --json names the clusters" sh -c "echo '$json' | grep -q '\"name\":\"policy6\"'"
check "status --json has the passive trip" sh -c "echo '$json' | grep -q '\"passive_trip_c\":75'"
check "status writes nothing" test ! -e "$rk/run"

saved=$tmp/rk.saved
"$ember" governor set performance --root "$rk" --saved "$saved" >/dev/null
check "set exits 0" test $? -eq 0
check "set: userspace on policy6" test "$(cpufreq "$rk" policy6/scaling_governor)" = userspace
check "set: policy0 at 1800 MHz" test "$(cpufreq "$rk" policy0/scaling_setspeed)" = 1800000
check "set: saved file" test -s "$saved"
"$ember" governor set bogus --root "$rk" --saved "$saved" >/dev/null 2>&1
check "set bogus exits 2" test $? -eq 2
"$ember" governor restore --root "$rk" --saved "$saved" >/dev/null
check "restore exits 0" test $? -eq 0
check "restore: schedutil back" test "$(cpufreq "$rk" policy6/scaling_governor)" = schedutil
check "restore: saved file removed" test ! -e "$saved"
out=$("$ember" governor restore --root "$rk" --saved "$saved")
check "restore again: nothing to do" sh -c "echo '$out' | grep -q 'nothing to restore'"

amd=$tmp/amd
copy amd-pstate-epp-8c "$amd"
"$ember" governor set powersave --root "$amd" --saved "$tmp/amd.saved" >/dev/null
check "amd: limits at 400 MHz" test "$(cpufreq "$amd" policy3/scaling_max_freq)" = 400000
check "amd: boost off" test "$(cat "$amd/sys/devices/system/cpu/cpufreq/boost")" = 0
"$ember" governor restore --root "$amd" --saved "$tmp/amd.saved" >/dev/null
check "amd: limits back" test "$(cpufreq "$amd" policy3/scaling_max_freq)" = 4700000
check "amd: boost back" test "$(cat "$amd/sys/devices/system/cpu/cpufreq/boost")" = 1

# calibrate: nothing to set -> 3, with the reason
mkdir -p "$tmp/empty"
err=$("$ember" governor calibrate -m "$shared/models/stories260K.gguf" --root "$tmp/empty" \
	--out "$tmp/none.json" 2>&1)
check "calibrate without cpufreq exits 3" test $? -eq 3
check "calibrate says why" sh -c "echo '$err' | grep -q 'cannot set CPU frequencies'"
check "calibrate wrote nothing" test ! -e "$tmp/none.json"
"$ember" governor calibrate --root "$rk" >/dev/null 2>&1
check "calibrate without -m exits 2" test $? -eq 2
if [ -r "$shared/models/stories260K.gguf" ]; then
	"$ember" governor calibrate -m "$shared/models/stories260K.gguf" --root "$rk" \
		--saved "$tmp/cal.saved" --out "$tmp/cal.json" --steps 4 --prefill 32 --decode 8 \
		--threads 1 >/dev/null 2>&1
	check "calibrate exits 0" test $? -eq 0
	check "curve names the clusters" grep -q '"policy4"' "$tmp/cal.json"
	check "curve has 4 points" test "$(grep -c '"prefill_tok_s"' "$tmp/cal.json")" -eq 4
	check "curve tops at 2400 MHz" grep -q '2400000' "$tmp/cal.json"
	check "calibrate restored" test "$(cpufreq "$rk" policy4/scaling_governor)" = schedutil
	check "calibrate left no saved file" test ! -e "$tmp/cal.saved"
	# Run as root into the agent's own directory (/var/lib/ember belongs to user ember): the
	# curve is written and handed to that user, not refused.
	if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
		mkdir -m 750 "$tmp/agent-state" && chown nobody "$tmp/agent-state"
		"$ember" governor calibrate -m "$shared/models/stories260K.gguf" --root "$rk" \
			--saved "$tmp/cal.saved" --out "$tmp/agent-state/calibration.json" --steps 2 \
			--prefill 16 --decode 4 --threads 1 >"$tmp/cal-owner.log" 2>&1
		rc=$?
		check "calibrate into the agent's directory exits 0: $(tail -1 "$tmp/cal-owner.log")" test $rc -eq 0
		check "the curve belongs to the directory's owner" \
			test "$(stat -c %U "$tmp/agent-state/calibration.json" 2>/dev/null)" = nobody
		check "the curve has 2 points" \
			test "$(grep -c '"prefill_tok_s"' "$tmp/agent-state/calibration.json")" -eq 2
	fi
fi

# not root: monitor only, one clear message, exit 3
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	chmod 755 "$tmp"
	# The checkout may be where uid 65534 cannot look (e.g. under /root): it runs a copy of the
	# binary, and of the TSan suppressions file the sanitizer options name (issue 14).
	cp "$ember" "$tmp/ember-nobody" && chmod 755 "$tmp/ember-nobody"
	ember_orig=$ember ember=$tmp/ember-nobody
	case "${TSAN_OPTIONS:-}" in
	*suppressions=*)
		supp=$(printf '%s\n' "$TSAN_OPTIONS" | sed 's/.*suppressions=\([^:]*\).*/\1/')
		cp "$supp" "$tmp/tsan.supp" && chmod 644 "$tmp/tsan.supp"
		TSAN_OPTIONS=$(printf '%s\n' "$TSAN_OPTIONS" | sed "s|suppressions=[^:]*|suppressions=$tmp/tsan.supp|")
		export TSAN_OPTIONS
		;;
	esac
	chmod -R o+rX "$rk"
	err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$ember" governor set performance \
		--root "$rk" --saved "$tmp/nobody.saved" 2>&1)
	rc=$?
	check "non-root set exits 3" test $rc -eq 3
	check "non-root message" sh -c "echo '$err' | grep -q 'run as root'"
	check "non-root changed nothing" test "$(cpufreq "$rk" policy4/scaling_governor)" = schedutil
	setpriv --reuid=65534 --regid=65534 --clear-groups "$ember" governor status --root "$rk" \
		>/dev/null 2>&1
	check "non-root status works" test $? -eq 0
	ember=$ember_orig
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
