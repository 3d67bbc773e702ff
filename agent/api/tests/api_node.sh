#!/usr/bin/env bash
# Starts a real `ember agent` (stories260K, MQTT off, the governor on a copy of a fake sysfs tree,
# telemetry in a temp dir, a bearer token, a free loopback port) and runs the official openai npm
# client tests of tests/node against it; then stops it with SIGTERM and expects exit 0.
#   api_node.sh EMBER_BINARY SOURCE_DIR
# Exit 77 (skip) when node or tests/node/node_modules/openai is missing.
set -euo pipefail
ember=$1
src=$2
shared=${EMBER_SHARED_DIR:-$src/../shared}
model=$shared/models/stories260K.gguf
tree=$shared/sysfs-trees/acpi-cpufreq-4c

if ! command -v node >/dev/null || [ ! -d "$src/tests/node/node_modules/openai" ]; then
    echo "skip: node or tests/node/node_modules/openai missing (run scripts/setup)"
    exit 77
fi
for f in "$model" "$tree"; do
    [ -e "$f" ] || { echo "skip: $f missing"; exit 77; }
done

tmp=$(mktemp -d /tmp/ember-api-node.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cp -a "$tree" "$tmp/sysfs"
mkdir -p "$tmp/state"
token="node-test-$RANDOM$RANDOM"

free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

start_agent() {
    port=$(free_port)
    cat >"$tmp/ember.conf" <<EOF
[agent]
state_dir = $tmp/state
shutdown_timeout_ms = 2000
[engine]
model = $model
threads = 1
[governor]
sysfs_root = $tmp/sysfs
saved_path = $tmp/state/saved.json
[telemetry]
database = $tmp/telemetry.db
sysfs_root = $tmp/sysfs
[mqtt]
enabled = false
[api]
listen = 127.0.0.1
port = $port
bearer_token = $token
EOF
    "$ember" agent --config "$tmp/ember.conf" >"$tmp/agent.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# The port is free when picked but could be taken before the agent binds it: try a few.
started=0
for _ in 1 2 3; do
    if start_agent; then
        started=1
        break
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
done
if [ "$started" != 1 ]; then
    echo "ember agent did not become healthy:"
    cat "$tmp/agent.log"
    exit 1
fi

status=0
EMBER_API_BASE="http://127.0.0.1:$port/v1" EMBER_API_KEY="$token" \
    node --test --test-reporter=spec "$src/tests/node/openai_client.test.mjs" \
        "$src/tests/node/openai_tools.test.mjs" || status=$?

kill -TERM "$pid"
agent_status=0
wait "$pid" || agent_status=$?
pid=
if [ "$agent_status" != 0 ]; then
    echo "ember agent exited with $agent_status after SIGTERM"
    status=1
fi
if [ "$status" != 0 ]; then
    echo "---- agent log ----"
    cat "$tmp/agent.log"
fi
exit "$status"
