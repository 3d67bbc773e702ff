#!/usr/bin/env bash
# The Grafana dashboard against Grafana's dashboard model and a real agent's /metrics: starts
# `ember agent` with stories260K on a fake acpi-cpufreq tree (RAPL, hwmon and thermal zones in it),
# runs one completion so that the token and request counters exist, saves /metrics, and runs
# grafana_validate.mjs on deploy/grafana/ember-fleet.json.
# usage: grafana_test.sh EMBER SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1
src=$2
shared=$3
model="$shared/models/stories260K.gguf"
tree="$shared/sysfs-trees/acpi-cpufreq-4c"
for tool in node curl python3; do
    command -v "$tool" >/dev/null || { echo "grafana_test: $tool is missing (run scripts/setup)"; exit 1; }
done
[ -d "$src/tests/deploy/node_modules/@grafana/schema" ] ||
    { echo "grafana_test: tests/deploy/node_modules is missing (run scripts/setup)"; exit 1; }
tmp=$(mktemp -d /tmp/ember-grafana.XXXXXX)
agent=""
cleanup() {
    [ -z "$agent" ] || { kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; }
    rm -rf "$tmp"
}
trap cleanup EXIT
cp -a "$tree" "$tmp/tree"
# A package thermal zone, so that the temperature gauge exists (the tree's own zones are links
# that lead out of it).
rm -rf "$tmp/tree/sys/class/thermal"
mkdir -p "$tmp/tree/sys/class/thermal/thermal_zone0"
echo x86_pkg_temp >"$tmp/tree/sys/class/thermal/thermal_zone0/type"
echo 47000 >"$tmp/tree/sys/class/thermal/thermal_zone0/temp"
port=$(python3 "$src/tests/agent/free_port.py")
cat >"$tmp/ember.conf" <<CONF
[engine]
model = $model
threads = 1
[governor]
# a cap, so that the power cap gauge exists (it is absent while there is none)
power_cap_w = 50
sysfs_root = $tmp/tree
saved_path = $tmp/run/governor.saved
calibration_path = $tmp/calibration.json
[telemetry]
database = $tmp/telemetry.db
sysfs_root = $tmp/tree
sample_interval_ms = 200
[mqtt]
enabled = false
[api]
port = $port
CONF
"$ember" agent --config "$tmp/ember.conf" >"$tmp/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}' >/dev/null ||
    { cat "$tmp/agent.log"; echo "grafana_test: the agent did not answer"; exit 1; }
sleep 1 # a power and temperature sample after the request
curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/metrics.txt" || { echo "grafana_test: no /metrics"; exit 1; }
node "$src/tests/deploy/grafana_validate.mjs" "$src/deploy/grafana/ember-fleet.json" "$tmp/metrics.txt"
