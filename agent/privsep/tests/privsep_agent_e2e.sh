#!/usr/bin/env bash
# Privilege separation end to end: the real `ember agent`, started as root with --user nobody,
# against a copy of a fake sysfs tree (cpufreq knobs root-writable only, RAPL energy_uj root-only
# as on kernels since CVE-2020-8694). Checks: the agent runs as nobody with no capabilities and
# no_new_privs while its helper is the only root process; that user cannot write the cpufreq
# knobs; the governor's writes and RAPL reads still work (through the helper), also a policy
# changed over HTTP; SIGTERM restores through the helper; SIGKILL of the agent makes the helper
# restore the originals (every file of the tree as before) and exit.
# Usage: privsep_agent_e2e.sh EMBER_BINARY SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1
src=$2
shared=$3
tree="$shared/sysfs-trees/acpi-cpufreq-4c"
if [ "$(id -u)" != 0 ]; then
    echo "skip: needs root (the agent must start as root to fork its helper and drop to nobody)"
    exit 77
fi
for tool in curl python3 setpriv; do
    command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done
id nobody >/dev/null 2>&1 || { echo "no user nobody to drop to"; exit 1; }
[ -d "$tree" ] || { echo "missing $tree"; exit 1; }

tmp=$(mktemp -d /tmp/ember-privsep-e2e.XXXXXX)
agent=""
cleanup() {
    [ -n "$agent" ] && kill "$agent" 2>/dev/null
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; keep=1; }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok; else fail "$what"; fi
}
wait_for() { # wait_for SECONDS COMMAND...
    local limit=$(( $1 * 10 )); shift
    for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
cpufreq="$tmp/tree/sys/devices/system/cpu/cpufreq"
rapl="$tmp/tree/sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj"

# The tree: readable by all, writable by root only; energy_uj root-only. The database directory
# belongs to nobody (what tmpfiles does for /var/lib/ember); the saved file is the helper's.
chmod 755 "$tmp"
cp -a "$tree" "$tmp/tree"
chmod -R u+w,go-w,a+rX "$tmp/tree"
chmod 0400 "$rapl"
cp -a "$tmp/tree" "$tmp/orig"
mkdir -p "$tmp/db"
chown nobody "$tmp/db"
api_port=$(python3 "$src/tests/agent/free_port.py")
cat > "$tmp/ember.conf" <<EOF
[agent]
shutdown_timeout_ms = 500
[governor]
policy = powersave
sysfs_root = $tmp/tree
saved_path = $tmp/run/governor.saved
calibration_path = $tmp/calibration.json
tick_ms = 100
[telemetry]
database = $tmp/db/telemetry.db
sysfs_root = $tmp/tree
sample_interval_ms = 200
[mqtt]
enabled = false
[api]
port = $api_port
EOF
chmod 644 "$tmp/ember.conf"

# Every file of the tree as it was; scaling_setspeed aside: a real kernel shows <unsupported>
# there under any governor but userspace, where the fake tree keeps what was last written.
same_as_orig() {
    local bad=0 f
    while IFS= read -r f; do
        case "$f" in */scaling_setspeed) continue ;; esac
        [ "$(cat "$tmp/orig/$f")" = "$(cat "$tmp/tree/$f")" ] || { echo "  differs: $f"; bad=1; }
    done < <(cd "$tmp/orig" && find . -type f)
    return $bad
}
status_field() { # status_field PID FIELD
    sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr -s '\t ' ' '
}
helper_of() { # the agent's child process
    local p
    for p in /proc/[0-9]*; do
        [ "$(sed -n 's/^PPid:[[:space:]]*//p' "$p/status" 2>/dev/null)" = "$1" ] && { basename "$p"; return; }
    done
}
start_agent() { # each run logs to its own file, "$tmp/agent.log" being the current one
    [ -e "$tmp/agent.log" ] && mv "$tmp/agent.log" "$tmp/agent.log.prev"
    "$ember" agent --config "$tmp/ember.conf" --user nobody > "$tmp/agent.log" 2>&1 &
    agent=$!
    wait_for 10 grep -q 'ready in' "$tmp/agent.log" || { cat "$tmp/agent.log"; return 1; }
}

# --- run 1: identities, writes through the helper, SIGTERM restores
check "agent starts" start_agent
nobody_uid=$(id -u nobody)
check "agent runs as nobody: $(status_field "$agent" Uid)" \
    test "$(status_field "$agent" Uid)" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid"
check "agent has no capabilities" test "$(status_field "$agent" CapEff)/$(status_field "$agent" CapPrm)" = "0000000000000000/0000000000000000"
check "agent has no_new_privs" test "$(status_field "$agent" NoNewPrivs)" = 1
helper=$(helper_of "$agent")
check "the helper is the agent's child, root: ${helper:-none}" test -n "$helper" -a "$(status_field "${helper:-1}" Uid)" = "0 0 0 0"
check "the log says so" grep -q "privilege separation: running as nobody" "$tmp/agent.log"
# The agent's user cannot write the knobs (the e2e writes below went through the helper).
check "nobody cannot write scaling_max_freq" bash -c \
    "! setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c 'echo 1 > \"$cpufreq/policy0/scaling_max_freq\"' 2>/dev/null"
check "nobody cannot read energy_uj" bash -c \
    "! setpriv --reuid=nobody --regid=nogroup --clear-groups cat \"$rapl\" >/dev/null 2>&1"
check "the governor wrote through the helper (userspace governor set)" \
    wait_for 5 grep -qx userspace "$cpufreq/policy0/scaling_governor"
check "saved file kept by the helper (root, 0600)" \
    test "$(stat -c '%u %a' "$tmp/run/governor.saved" 2>/dev/null)" = "0 600"
check "telemetry reads RAPL through the helper" grep -q "telemetry: rapl" "$tmp/agent.log"
api="http://127.0.0.1:$api_port"
code=$(curl -s -o "$tmp/put.json" -w '%{http_code}' -X PUT "$api/v1/governor" \
    -H 'Content-Type: application/json' -d '{"policy":"performance"}')
check "PUT /v1/governor performance: $code $(cat "$tmp/put.json")" test "$code" = 200
max=$(cat "$tmp/orig/sys/devices/system/cpu/cpufreq/policy0/cpuinfo_max_freq")
check "performance reached the hardware through the helper" \
    wait_for 5 grep -qx "$max" "$cpufreq/policy0/scaling_setspeed"
kill -TERM "$agent"
wait "$agent"
rc=$?
agent=""
check "SIGTERM: exit 0 (got $rc)" test "$rc" = 0
check "SIGTERM: originals restored" same_as_orig
check "SIGTERM: saved file removed" test ! -e "$tmp/run/governor.saved"
check "SIGTERM: helper gone" bash -c "! kill -0 $helper 2>/dev/null"
check "SIGTERM: restored by the agent (orderly)" grep -q "original CPU frequency settings restored" "$tmp/agent.log"

# --- run 2: the agent killed -9; the helper restores and exits
check "agent starts again" start_agent
helper=$(helper_of "$agent")
check "the governor wrote again" wait_for 5 grep -qx userspace "$cpufreq/policy0/scaling_governor"
check "tree changed before the kill" bash -c "! grep -qx schedutil '$cpufreq/policy0/scaling_governor'"
kill -KILL "$agent"
wait "$agent" 2>/dev/null
agent=""
gone_or_zombie() { ! kill -0 "$1" 2>/dev/null || grep -q "^State:.*Z" "/proc/$1/status"; }
check "SIGKILL: helper ${helper:-none} exits" wait_for 5 gone_or_zombie "${helper:-1}"
check "SIGKILL: helper says it restored" grep -q "the agent ended without restoring; original CPU frequency settings restored" "$tmp/agent.log"
check "SIGKILL: originals restored" same_as_orig
check "SIGKILL: saved file removed" test ! -e "$tmp/run/governor.saved"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
