#!/usr/bin/env bash
# Runs the Ember container image for real: the agent with stories260K mounted read-only, its API
# and MQTT on the host's loopback (a mosquitto started here stands for the broker outside the
# container). Checks: /health answers 200 and a completion the golden text, the process runs as
# uid 10001 (not root), the image's HEALTHCHECK reports healthy, the agent's status reaches the
# outside broker, and SIGTERM stops it with exit code 0.
#
# Where podman's default runtime (crun) cannot start containers on this machine (crun 1.8 refuses
# the cgroup v1/v2 hybrid layout and setrlimit beyond the hard limits), runc is used with explicit
# ulimits; the container shares the host's network so that no CNI/netavark setup is needed.
# usage: container_run_test.sh IMAGE [SHARED_DIR]
set -uo pipefail
image=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
shared=${2:-${EMBER_SHARED_DIR:-$top/../shared}}
model_dir="$shared/models"
[ -f "$model_dir/stories260K.gguf" ] || { echo "container_run: $model_dir/stories260K.gguf missing"; exit 1; }
for tool in podman mosquitto mosquitto_sub curl python3; do
    command -v "$tool" >/dev/null || { echo "container_run: $tool missing"; exit 1; }
done
runtime=()
command -v runc >/dev/null && runtime=(--runtime runc)
tmp=$(mktemp -d /tmp/ember-container.XXXXXX)
chmod 755 "$tmp"
name="ember-test-$$"
pids=()
cleanup() {
    podman "${runtime[@]}" rm -f "$name" >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
wait_for() {
    local limit=$(($1 * 10)); shift
    for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

api_port=$(python3 "$top/tests/agent/free_port.py")
mqtt_port=$(python3 "$top/tests/agent/free_port.py")
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" >"$tmp/mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$mqtt_port" 2>/dev/null || { echo "mosquitto did not start"; exit 1; }
mosquitto_sub -p "$mqtt_port" -v -t 'ember/ctr/#' >"$tmp/mqtt.log" 2>&1 &
pids+=($!)

# The image's own config with this test's ports and broker.
cat >"$tmp/container.conf" <<EOF
[engine]
model = /models/stories260K.gguf
threads = 1
[governor]
enabled = false
[telemetry]
database = /var/lib/ember/telemetry.db
[mqtt]
host = 127.0.0.1
port = $mqtt_port
device_id = ctr
[api]
listen = 127.0.0.1
port = $api_port
EOF
chmod 644 "$tmp/container.conf"

echo "== podman run $image"
podman "${runtime[@]}" run -d --name "$name" --network host -e EMBER_API_PORT="$api_port" \
    --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
    -v "$model_dir:/models:ro" -v "$tmp/container.conf:/etc/ember/container.conf:ro" \
    "$image" >"$tmp/run.out" 2>&1 || { cat "$tmp/run.out"; echo "container_run: podman run failed"; exit 1; }
api="http://127.0.0.1:$api_port"
wait_for 30 curl -sf "$api/health" -o /dev/null ||
    { podman "${runtime[@]}" logs "$name" | tail -20; fail "/health never answered 200"; }
resp=$(curl -s "$api/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt":"Once upon a time","max_tokens":12,"temperature":0}')
grep -q 'there was a little girl named Lily' <<<"$resp" || fail "completion: $resp"
uid=$(podman "${runtime[@]}" exec "$name" id -u 2>&1)
[ "$uid" = 10001 ] || fail "runs as uid '$uid', not 10001"
[ "$(podman "${runtime[@]}" top "$name" user 2>/dev/null | sed -n 2p | tr -d ' ')" != root ] || fail "ember runs as root"
podman "${runtime[@]}" healthcheck run "$name" >"$tmp/health.out" 2>&1 || fail "healthcheck: $(cat "$tmp/health.out")"
wait_for 10 grep -q '^ember/ctr/status online' "$tmp/mqtt.log" || fail "no status on the outside broker"
wait_for 10 grep -q '^ember/ctr/telemetry ' "$tmp/mqtt.log" || fail "no telemetry on the outside broker"
podman "${runtime[@]}" stop -t 20 "$name" >/dev/null 2>&1
code=$(podman "${runtime[@]}" inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
echo "container_run: health 200, golden completion, uid $uid, healthcheck healthy, MQTT outside, stop exit $code: $failed failure(s)"
[ "$failed" = 0 ]
