#!/usr/bin/env bash
# Privilege separation end to end: the real `ember agent`, started as root with --user nobody,
# against a copy of a fake sysfs tree (cpufreq knobs root-writable only, RAPL energy_uj root-only
# as on kernels since CVE-2020-8694). Checks: the agent runs as nobody with no capabilities and
# no_new_privs while its helper is the only root process; that user cannot write the cpufreq
# knobs; the governor's writes and RAPL reads still work (through the helper), also a policy
# changed over HTTP; SIGTERM restores through the helper; SIGKILL of the agent makes the helper
# restore the originals (every file of the tree as before) and exit; SIGKILL of the helper makes
# the agent report it and stop with exit code 4, leaving the saved file to `ember governor
# restore`. Then the same with the
# libcpupower backend (sysfs_root /, in a private mount namespace over a fake
# /sys/devices/system/cpu), whose writing calls run inside the helper.
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
. "$src/tests/lib/e2e.sh"
e2e_need curl python3 setpriv
id nobody >/dev/null 2>&1 || { echo "no user nobody to drop to"; exit 1; }
[ -d "$tree" ] || { echo "missing $tree"; exit 1; }

e2e_tmpdir privsep-e2e
agent=""
e2e_on_exit() { [ -z "$agent" ] || kill "$agent" 2>/dev/null; }
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
same_as_orig() { # same_as_orig [ORIG_DIR TREE_DIR]
    local orig=${1:-$tmp/orig} now=${2:-$tmp/tree} bad=0 f
    while IFS= read -r f; do
        case "$f" in */scaling_setspeed) continue ;; esac
        [ "$(cat "$orig/$f")" = "$(cat "$now/$f")" ] || { echo "  differs: $f"; bad=1; }
    done < <(cd "$orig" && find . -type f)
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
    wait_for 10 grep -qs 'ready in' "$tmp/agent.log" || { cat "$tmp/agent.log"; return 1; }
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
check "SIGTERM: the helper ended cleanly" bash -c "! grep -q 'the helper ended with status' '$tmp/agent.log'"

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

# --- run 2b: agent and helper both killed -9 (the saved file stays); the next start restores it
# through the helper (CRASH_RESTORE), then SIGTERM leaves the tree as it was
check "agent starts for the crash" start_agent
helper=$(helper_of "$agent")
check "the governor wrote (crash run)" wait_for 5 grep -qx userspace "$cpufreq/policy0/scaling_governor"
check "helper ${helper:-none} under a seccomp filter" test "$(status_field "${helper:-1}" Seccomp)" = 2
kill -KILL "${helper:-1}"
kill -KILL "$agent"
wait "$agent" 2>/dev/null
agent=""
check "crash: saved file left behind" test -e "$tmp/run/governor.saved"
check "agent starts after the crash" start_agent
check "crash: the helper restored what the dead run left" \
    grep -q "settings left by pid [0-9]* restored" "$tmp/agent.log"
kill -TERM "$agent"
wait "$agent"
rc=$?
agent=""
check "after the crash: SIGTERM exit 0 (got $rc)" test "$rc" = 0
check "after the crash: originals restored" same_as_orig
check "after the crash: saved file removed" test ! -e "$tmp/run/governor.saved"

# --- run 2c: the helper killed -9 under a live agent. Nothing can write cpufreq or restore any
# more, and the agent (nobody now) cannot fork another root helper: it must say so once, report
# it (systemd STATUS, an event), stop cleanly with exit code 4 (EMBER_EXIT_HELPER_LOST) for
# systemd to restart both, and leave the saved file for `ember governor restore` (ExecStopPost).
python3 "$src/tests/agent/notify_listen.py" "$tmp/notify.sock" "$tmp/notify.log" &
listener=$!
wait_for 5 test -S "$tmp/notify.sock"
chmod 666 "$tmp/notify.sock" # the agent sends its later STATUS lines as nobody
NOTIFY_SOCKET="$tmp/notify.sock" start_agent
check "agent starts for the helper's death" test -n "$agent"
helper=$(helper_of "$agent")
check "the governor wrote (helper death run)" wait_for 5 grep -qx userspace "$cpufreq/policy0/scaling_governor"
kill -KILL "${helper:-1}"
if wait_for 10 gone_or_zombie "$agent"; then
    wait "$agent"
    rc=$?
else
    rc="still running 10 s after its helper died"
    kill -KILL "$agent"
    wait "$agent" 2>/dev/null
fi
agent=""
check "helper killed: the agent stopped with exit code 4 (got $rc)" test "$rc" = 4
n_err=$(grep -c "the privileged helper (pid ${helper:-1}) was killed by signal 9" "$tmp/agent.log")
check "helper killed: one error says so (got $n_err)" test "$n_err" = 1
check "helper killed: the log says how to restore" grep -q "stay saved in $tmp/run/governor.saved until \`ember governor restore\`" "$tmp/agent.log"
check "helper killed: no restore attempted through the dead helper" bash -c "! grep -q 'governor: restore:' '$tmp/agent.log'"
check "helper killed: the shutdown was orderly" grep -q "stopped in" "$tmp/agent.log"
check "helper killed: systemd status says so" grep -q "STATUS=privileged helper lost" "$tmp/notify.log"
check "helper killed: an error event was stored" python3 -c "
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(\"select detail from events where kind = 'error'\").fetchall()
sys.exit(0 if any('privileged helper lost' in r[0] for r in rows) else 1)" "$tmp/db/telemetry.db"
check "helper killed: saved file left for the restore" test -e "$tmp/run/governor.saved"
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
"$ember" governor restore --config "$tmp/ember.conf" > "$tmp/restore.log" 2>&1
rc=$?
check "ExecStopPost's restore: exit 0 (got $rc: $(cat "$tmp/restore.log"))" test "$rc" = 0
check "ExecStopPost's restore: originals back" same_as_orig
check "ExecStopPost's restore: saved file removed" test ! -e "$tmp/run/governor.saved"

# --- run 3: the libcpupower backend (sysfs_root /), whose writing calls run inside the helper,
# in a private mount namespace where /sys/devices/system/cpu is a copy of the fake tree's.
fake_cpu="$shared/sysfs-trees/with-fake-cpu.sh"
# libcpupower follows cpuN/cpufreq -> ../cpufreq/policyN; copies of the shared tree may hold
# those links flattened into files with the link text: make them links again.
cp -a "$tree" "$tmp/tree3"
for f in "$tmp"/tree3/sys/devices/system/cpu/cpu*/cpufreq; do
    [ -f "$f" ] && t=$(cat "$f") && case "$t" in ../*) rm "$f" && ln -s "$t" "$f" ;; esac
done
if ! "$fake_cpu" "$tmp/tree3" -- true 2>/dev/null; then
    echo "run 3 (libcpupower) not run: with-fake-cpu.sh cannot bind-mount here"
else
    sed -e "s|^sysfs_root = $tmp/tree$|sysfs_root = /|" -e "s|$tmp/run/|$tmp/run3/|" \
        -e "s|telemetry.db|telemetry3.db|" -e 's|^\[governor\]$|[governor]\nbackend = libcpupower|' \
        "$tmp/ember.conf" > "$tmp/ember3.conf"
    chmod 644 "$tmp/ember3.conf"
    "$fake_cpu" -d "$tmp/fake" "$tmp/tree3" -- sh -c 'echo $$ > "$0"; exec "$@"' "$tmp/agent3.pid" \
        "$ember" agent --config "$tmp/ember3.conf" --user nobody > "$tmp/agent3.log" 2>&1 &
    wrapper=$!
    check "libcpupower: agent starts" wait_for 10 grep -q 'ready in' "$tmp/agent3.log"
    agent=$(cat "$tmp/agent3.pid" 2>/dev/null)
    helper=$(helper_of "${agent:-1}")
    check "libcpupower: backend used" grep -q "backend libcpupower" "$tmp/agent3.log"
    check "libcpupower: agent runs as nobody" test "$(status_field "${agent:-1}" Uid)" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid"
    fcpu="$tmp/fake/sys/devices/system/cpu/cpufreq"
    check "libcpupower: cpufreq_set_frequency ran in the helper (userspace governor set)" \
        wait_for 5 grep -qx userspace "$fcpu/policy0/scaling_governor"
    check "libcpupower: no write failed" bash -c "! grep -qi 'write failed\|cannot' '$tmp/agent3.log'"
    kill -KILL "${agent:-1}"
    wait "$wrapper" 2>/dev/null
    agent=""
    check "libcpupower: helper ${helper:-none} exits" wait_for 5 gone_or_zombie "${helper:-1}"
    check "libcpupower: helper restored through libcpupower" grep -q "the agent ended without restoring; original" "$tmp/agent3.log"
    check "libcpupower: originals restored" same_as_orig "$tmp/tree3/sys/devices/system/cpu" "$tmp/fake/sys/devices/system/cpu"
fi

# --- run 4: the calibration curve is parsed by the agent's user after the drop, never as root.
# A root-only file cannot be read then (as root it could); an unparsable one the user owns is
# named in one error, and the governor runs on without a curve either way.
echo 'not json' > "$tmp/calibration.json"
chmod 600 "$tmp/calibration.json"
check "run 4: agent starts" start_agent
check "run 4: a root-only curve is read as nobody (permission denied)" \
    grep -q "calibration.json: Permission denied; running without a calibration curve" "$tmp/agent.log"
check "run 4: the governor runs without the curve" grep -q "governor: policy powersave" "$tmp/agent.log"
kill -TERM "$agent"; wait "$agent"; agent=""
chown nobody "$tmp/calibration.json"
check "run 4b: agent starts" start_agent
check "run 4b: an unparsable curve is named, once" \
    test "$(grep -c "governor: .*calibration.json.*running without a calibration curve" "$tmp/agent.log")" = 1
kill -TERM "$agent"; wait "$agent"; agent=""
rm -f "$tmp/calibration.json"
check "run 4: originals restored" same_as_orig

e2e_finish
