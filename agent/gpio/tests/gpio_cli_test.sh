#!/usr/bin/env bash
# `ember gpio` and `ember agent` with [gpio] against the real libgpiod of the machine running
# the test (no chip named below exists anywhere): --help, usage errors (exit 2), status naming a
# missing chip, test refusing with exit 3 and one warning, and a real agent with GPIO enabled on
# a missing chip and a PWM fan on a fake sysfs tree: exactly one warning per missing function,
# it still becomes ready, serves, and stops with exit 0 when told to.
# Usage: gpio_cli_test.sh EMBER_BINARY SOURCE_DIR
set -uo pipefail
ember=$1
src=$2
command -v curl >/dev/null || { echo "skip: curl missing"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
tmp=$(mktemp -d /tmp/ember-gpio.XXXXXX)
agent=
cleanup() {
    [ -n "$agent" ] && kill -9 "$agent" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
check() { # check NAME COMMAND...
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
run() { out=$("$@" 2>"$tmp/err"); rc=$?; err=$(cat "$tmp/err"); }

run "$ember" gpio --help
check "gpio --help exits 0 with usage" bash -c '[ "$1" = 0 ] && grep -q "^usage: ember gpio status" <<<"$2"' _ "$rc" "$out"
check "--help lists test" grep -q "ember gpio test" <<<"$out"
run "$ember" gpio
check "no action: exit 2" test "$rc" = 2
run "$ember" gpio frobnicate
check "unknown action: exit 2 naming it" bash -c '[ "$1" = 2 ] && grep -q "unknown action .frobnicate." <<<"$2"' _ "$rc" "$err"
run "$ember" gpio test --seconds abc
check "--seconds abc: exit 2" test "$rc" = 2
run "$ember" gpio test toaster
check "unknown function: exit 2" bash -c '[ "$1" = 2 ] && grep -q "unknown function .toaster." <<<"$2"' _ "$rc" "$err"
run "$ember" gpio status extra
check "status with an argument: exit 2" test "$rc" = 2

# nothing configured
printf '[telemetry]\nenabled = false\n' > "$tmp/none.conf"
run "$ember" gpio test --config "$tmp/none.conf" --seconds 0.1
check "test with no lines: exit 3" test "$rc" = 3
check "test with no lines says so" grep -q "no \[gpio\] line configured" <<<"$err"

# a chip that exists nowhere; a PWM fan on a fake tree
mkdir -p "$tmp/root/sys/class/pwm/pwmchip0/pwm0"
: > "$tmp/root/sys/class/pwm/pwmchip0/export"
for f in period duty_cycle enable; do echo 0 > "$tmp/root/sys/class/pwm/pwmchip0/pwm0/$f"; done
port=$(python3 "$src/tests/agent/free_port.py")
cat > "$tmp/ember.conf" <<EOF2
[agent]
log_level = info
shutdown_timeout_ms = 500
state_dir = $tmp
[governor]
enabled = false
sysfs_root = $tmp/nosys
[telemetry]
enabled = false
[mqtt]
enabled = false
[api]
port = $port
[gpio]
enabled = true
chip = ember-test-no-such-chip
led = 3
button = ember-test-no-such-chip:BUTTON
fan_pwm_chip = 0
pwm_sysfs_root = $tmp/root
EOF2
run "$ember" config check "$tmp/ember.conf"
check "config check accepts [gpio]" test "$rc" = 0
run "$ember" gpio status --config "$tmp/ember.conf"
check "status exits 0" test "$rc" = 0
check "status names the missing chip for led" grep -q "^led .*missing: GPIO chip 'ember-test-no-such-chip': no such chip" <<<"$out"
check "status: fan not configured" grep -q "^fan  *not configured" <<<"$out"
check "status shows the PWM channel" grep -q "^pwm  *pwmchip0/pwm0 under $tmp/root: period 0" <<<"$out"
run "$ember" gpio test led --config "$tmp/ember.conf" --seconds 0.1
check "test led on a missing chip: exit 3" test "$rc" = 3
check "test led: one warning naming the chip" test "$(grep -c "warning: .*ember-test-no-such-chip" <<<"$err")" = 1
run "$ember" gpio test fan --config "$tmp/ember.conf" --seconds 0.1
check "test fan (PWM only): exit 0" test "$rc" = 0
check "test fan: full duty on the fake tree" grep -q "on (full duty): as at 75 C, duty 100%" <<<"$out"
check "test fan leaves duty at 100% of the period" test "$(cat "$tmp/root/sys/class/pwm/pwmchip0/pwm0/duty_cycle")" = 40000
check "test fan: enabled" test "$(cat "$tmp/root/sys/class/pwm/pwmchip0/pwm0/enable")" = 1

# the agent runs on without the missing functions
"$ember" agent --config "$tmp/ember.conf" > "$tmp/agent.log" 2>&1 &
agent=$!
ok=0
for ((i = 0; i < 150; i++)); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/health" -w '' 2>/dev/null && { ok=1; break; }
    grep -q "ready in" "$tmp/agent.log" && { ok=1; break; }
    sleep 0.1
done
check "the agent becomes ready without its GPIO chip" test "$ok" = 1
check "one warning for the led" test "$(grep -c "gpio: \[gpio\] led = 3: .*no such chip; the agent runs without its led" "$tmp/agent.log")" = 1
check "one warning for the button" test "$(grep -c "gpio: \[gpio\] button = .*no such chip; the agent runs without its button" "$tmp/agent.log")" = 1
check "no other gpio warning" test "$(grep -c "warning: gpio:" "$tmp/agent.log")" = 2
check "the PWM fan is driven" grep -q "gpio: led none; fan none; fan PWM pwmchip0/pwm0; button none; power input none" "$tmp/agent.log"
kill -TERM "$agent"
wait "$agent"
rc=$?
agent=
check "the agent stops with exit 0" test "$rc" = 0
check "stopped: the fan left at full duty" test "$(cat "$tmp/root/sys/class/pwm/pwmchip0/pwm0/duty_cycle")" = 40000
[ "$failed" = 0 ] || cat "$tmp/agent.log"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
