#!/usr/bin/env bash
# Energy as Home Assistant sees it, with the real `ember agent` (issue 20): the agent killed -9
# in the middle of a commit batch (twice), the broker killed -9 during an outage backlog's replay,
# a replay/req for the whole history; a subscriber reads the energy entity's state topic from its
# discovery config and checks that no energy value it receives is lower than one before it, and
# none above what the database kept. The `telemetry` topics, which keep each sample's own total,
# must go down in the same run (else the scenario proved nothing); the live `telemetry` topic
# alone never goes back in seq, the backlog and history arrive on telemetry/replay.
# The wall channel rides along (issue 12): a Tasmota plug publishes on tele/plug1/SENSOR all the
# while (one hostile payload too); the wall energy entity must never decrease either, and its
# figures must be labelled measured by the plug.
# Usage: agent_ha_energy.sh EMBER_BINARY SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1 src=$2 shared=$3
model="$shared/models/stories260K.gguf"
tree="$shared/sysfs-trees/acpi-cpufreq-4c"
for tool in mosquitto mosquitto_sub mosquitto_pub sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done
[ -f "$model" ] || { echo "missing $model"; exit 1; }
[ -d "$tree" ] || { echo "missing $tree"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-ha-energy.XXXXXX")
pids=()
pass=0 fail=0
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$fail" != 0 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi; }
wait_for() { local n=$(($1 * 10)); shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }

cp -a "$tree" "$tmp/tree"
chmod -R u+w "$tmp/tree"
# The package's RAPL counter moves on as a real one does (10 W), replaced by rename so that a
# reader never sees a half-written number.
rapl="$tmp/tree/sys/devices/virtual/powercap/intel-rapl/intel-rapl:0"
(
    e=$(cat "$rapl/energy_uj")
    while :; do
        e=$((e + 500000))
        echo "$e" >"$rapl/.energy_uj" && mv -f "$rapl/.energy_uj" "$rapl/energy_uj"
        sleep 0.05
    done
) &
pids+=($!)
port=$(python3 "$src/tests/agent/free_port.py")
dev=ha
cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
EOF
broker=
start_broker() {
    mosquitto -c "$tmp/mosquitto.conf" >>"$tmp/mosquitto.log" 2>&1 &
    broker=$!
    pids+=($broker)
    wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}
kill_broker() { kill -9 "$broker"; wait "$broker" 2>/dev/null; }
start_broker || { echo "mosquitto did not start"; exit 1; }

# The subscriber reconnects by itself after a broker restart (it subscribes on every connect);
# each line: topic, then the payload.
mosquitto_sub -p "$port" -V 5 -v -t "ember/$dev/#" -t "homeassistant/#" >"$tmp/mqtt.log" 2>&1 &
pids+=($!)

cat >"$tmp/ember.conf" <<EOF
[agent]
log_level = info
[engine]
model = $model
threads = 1
[governor]
sysfs_root = $tmp/tree
saved_path = $tmp/run/governor.saved
[telemetry]
database = $tmp/telemetry.db
sysfs_root = $tmp/tree
sample_interval_ms = 100
commit_interval_ms = 5000
wall_meter = mqtt
wall_meter_topic = tele/plug1/SENSOR
wall_meter_format = tasmota
wall_meter_stale_s = 5
[mqtt]
port = $port
device_id = $dev
reconnect_min_ms = 100
reconnect_max_ms = 1000
replay_rate_per_s = 20
[api]
port = $(python3 "$src/tests/agent/free_port.py")
EOF
agent=
start_agent() {
    "$ember" agent --config "$tmp/ember.conf" >>"$tmp/agent.log" 2>&1 &
    agent=$!
    pids+=($agent)
}
kill_agent() { kill -9 "$agent"; wait "$agent" 2>/dev/null; }
committed() { sqlite3 "$tmp/telemetry.db" "SELECT coalesce(max(seq), 0) FROM samples" 2>/dev/null; }
# kill_mid_batch: kill -9 3.5 s after a commit (one every 5 s): ~35 samples, published live,
# are lost with their batch
kill_mid_batch() {
    local c0
    c0=$(committed)
    wait_for 8 bash -c "[ \"\$(sqlite3 '$tmp/telemetry.db' 'SELECT coalesce(max(seq), 0) FROM samples' 2>/dev/null)\" != '$c0' ]"
    sleep 3.5
    kill_agent
}
live_seqs() { grep -c "^ember/$dev/state " "$tmp/mqtt.log"; }
# mid_batch: the kill lost samples that had been published live but not yet committed
mid_batch() {
    local sent kept
    sent=$(sed -n "s/^ember\/$dev\/state {\"v\":1,\"seq\":\([0-9]*\).*/\1/p" "$tmp/mqtt.log" | sort -n | tail -1)
    kept=$(sqlite3 "$tmp/telemetry.db" "SELECT max(seq) FROM samples")
    echo "killed with seq $sent published, $kept committed"
    [ -n "$sent" ] && [ -n "$kept" ] && [ "$sent" -gt "$kept" ]
}

# The plug: a Tasmota SENSOR message every 0.2 s (through the broker outages too).
(
    while :; do
        mosquitto_pub -p "$port" -t tele/plug1/SENSOR \
            -m '{"Time":"2026-12-03T20:00:00","ENERGY":{"Total":1.956,"Power":12.5,"Voltage":231}}' \
            2>/dev/null
        sleep 0.2
    done
) &
pids+=($!)

# A: asks for all history once, killed -9 in the middle of a batch.
start_agent
check "agent A publishes state" wait_for 15 bash -c "[ \$(grep -c '^ember/$dev/state ' '$tmp/mqtt.log') -ge 5 ]"
mosquitto_pub -p "$port" -t "ember/$dev/replay/req" -m 1
mosquitto_pub -p "$port" -t tele/plug1/SENSOR -m '{"ENERGY":{"Power":"lots"}}'
check "a hostile plug payload is logged with its topic and problem" wait_for 5 \
    grep -q "wall meter topic tele/plug1/SENSOR: payload refused: power is not a number" "$tmp/agent.log"
kill_mid_batch
check "agent A killed inside a batch" mid_batch
# B: the broker killed -9 for 3 s (a backlog of ~30 samples, replayed at 20/s), killed -9 again
# one second into the replay, then B itself killed -9 in the middle of a batch.
start_agent
check "agent B publishes state" wait_for 15 bash -c "[ \$(grep -c '^ember/$dev/state ' '$tmp/mqtt.log') -ge $(($(live_seqs) + 5)) ]"
kill_broker
sleep 3
start_broker
check "replay started" wait_for 10 grep -q "^ember/$dev/telemetry/replay " "$tmp/mqtt.log"
sleep 1
kill_broker
sleep 1
start_broker
kill_mid_batch
check "agent B killed inside a batch" mid_batch
# C: a last run, stopped cleanly.
start_agent
n=$(live_seqs)
check "agent C publishes state" wait_for 15 bash -c "[ \$(grep -c '^ember/$dev/state ' '$tmp/mqtt.log') -ge $((n + 10)) ]"
kill "$agent"
wait "$agent" 2>/dev/null
sleep 0.3

python3 - "$tmp/mqtt.log" "$tmp/telemetry.db" "$dev" <<'EOF' >"$tmp/check.out" 2>&1
import json, sqlite3, sys
log, db, dev = sys.argv[1:]
cfg, msgs = None, []
for line in open(log, encoding="utf-8", errors="replace"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if topic == f"homeassistant/sensor/ember_{dev}/energy/config" and payload:
        cfg = json.loads(payload)
    msgs.append((topic, payload))
assert cfg, "no discovery config for the energy entity"
assert cfg["value_template"] == "{{ value_json.energy_wh }}", cfg["value_template"]
assert cfg["state_class"] == "total_increasing", cfg
state = cfg["state_topic"]
last, seen, max_seen, down = None, 0, 0.0, []
old_last, old_down = None, 0
live_seq, live_back, n_replay = 0, 0, 0
for topic, payload in msgs:
    if topic == state:
        e = json.loads(payload).get("energy_wh")
        if e is None:
            continue
        seen += 1
        if last is not None and e < last:
            down.append((last, e))
        last = e if last is None else max(last, e)
        max_seen = max(max_seen, e)
    elif topic in (f"ember/{dev}/telemetry", f"ember/{dev}/telemetry/replay"):
        if topic.endswith("/telemetry"):  # live only: its seqs only ever increase
            seq = json.loads(payload)["seq"]
            live_back += seq <= live_seq
            live_seq = max(live_seq, seq)
        else:
            n_replay += 1
        e = json.loads(payload).get("energy_wh")
        if e is not None:
            old_down += old_last is not None and e < old_last
            old_last = e
total = sqlite3.connect(db).execute(
    "SELECT max(energy_j) FROM samples").fetchone()[0] / 3600.0
print(f"state {state}: {seen} energy values, {len(down)} decreases {down[:5]}, max {max_seen:.6f} "
      f"Wh, database {total:.6f} Wh; telemetry topics went down {old_down} times; "
      f"{n_replay} samples on telemetry/replay, `telemetry` went back in seq {live_back} times")
wcfg = None
for topic, payload in msgs:
    if topic == f"homeassistant/sensor/ember_{dev}/wall_energy/config" and payload:
        wcfg = json.loads(payload)
assert wcfg, "no discovery config for the wall energy entity"
assert wcfg["device_class"] == "energy" and wcfg["state_class"] == "total_increasing", wcfg
wlast, wseen, wmax, wdown, wmeasured = None, 0, 0.0, [], 0
for topic, payload in msgs:
    if topic != state:
        continue
    j = json.loads(payload)
    w = j.get("wall_energy_wh")
    if w is None:
        continue
    wseen += 1
    if wlast is not None and w < wlast:
        wdown.append((wlast, w))
    wlast = w if wlast is None else max(wlast, w)
    wmax = max(wmax, w)
    wmeasured += j.get("wall_measured") is True and j.get("wall_source") == "mqtt:tele/plug1/SENSOR"
wtotal = (sqlite3.connect(db).execute(
    "SELECT max(wall_energy_j) FROM samples").fetchone()[0] or 0) / 3600.0
print(f"wall: {wseen} values, {len(wdown)} decreases {wdown[:5]}, {wmeasured} measured by the plug, "
      f"max {wmax:.6f} Wh, database {wtotal:.6f} Wh")
ok = (not wdown and wseen > 50 and wmeasured > 20 and wmax <= wtotal + 1e-9)
ok = ok and (not down and seen > 50 and old_down > 0 and max_seen <= total + 1e-9 and n_replay > 0
      and live_back == 0)
sys.exit(0 if ok else 1)
EOF
rc=$?
cat "$tmp/check.out"
check "HA energy never decreases, never above the database, telemetry did go down" test "$rc" = 0
# Each broker outage is logged when it starts and when it ends, not at every retry (issue 21
# item 21): B lived through two.
# The two lines are alike from one outage to the next and bypass the log's rate limiter: each
# outage reads as one "lost" line then one "connected again" line, in that order.
n_down=$(grep -c "mqtt: not connected: .*retrying with back-off" "$tmp/agent.log")
n_up=$(grep -c "mqtt: connected again after [0-9]* failed attempt" "$tmp/agent.log")
check "two outages logged twice each ($n_down down, $n_up up): $(grep 'mqtt:' "$tmp/agent.log")" \
    test "$n_down $n_up" = "2 2"
order=$(sed -n 's/.*mqtt: not connected: .*/down/p; s/.*mqtt: connected again after .*/up/p' "$tmp/agent.log" | tr '\n' ' ')
check "each outage: lost, then connected again ($order)" test "$order" = "down up down up "
check "no outage line merged by the rate limiter" bash -c "! grep 'mqtt:.*identical messages suppressed' '$tmp/agent.log'"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
