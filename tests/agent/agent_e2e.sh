#!/usr/bin/env bash
# End to end: the real `ember agent` with the stories260K model, a real mosquitto on a random
# loopback port, a fake acpi-cpufreq sysfs tree, a real SQLite file and sd_notify over a unix
# socket. Checks chat completions over HTTP, telemetry and sessions over MQTT, policy changes
# from MQTT and from PUT /v1/governor reaching governor/state and /metrics, MQTT `ask`, SIGHUP
# reload (bad file kept out, good file applied), then SIGTERM during a streaming generation:
# exit 0, governor restored, `offline` published, database consistent.
# Usage: agent_e2e.sh EMBER_BINARY SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1
src=$2
shared=$3
model="$shared/models/stories260K.gguf"
tree="$shared/sysfs-trees/acpi-cpufreq-4c"
. "$src/tests/lib/e2e.sh"
e2e_need mosquitto mosquitto_sub mosquitto_pub curl sqlite3 python3
[ -f "$model" ] || { echo "missing $model"; exit 1; }

e2e_tmpdir e2e

cp -a "$tree" "$tmp/tree"
orig_gov=$(cat "$tmp/tree/sys/devices/system/cpu/cpufreq/policy0/scaling_governor")
orig_max=$(cat "$tmp/tree/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq")
mqtt_port=$(python3 "$src/tests/agent/free_port.py")
api_port=$(python3 "$src/tests/agent/free_port.py")
dev=e2e

e2e_mosquitto "$mqtt_port"

mosquitto_sub -p "$mqtt_port" -V 5 -v -t "ember/$dev/#" > "$tmp/mqtt.log" 2>&1 &
pids+=($!)

write_conf() { # write_conf POLICY [EXTRA_LINE]
    cat > "$tmp/ember.conf" <<EOF
[agent]
log_level = info
shutdown_timeout_ms = 500
[engine]
model = $model
threads = 1
context_length = 2048
context_shift = true
max_tokens = 100000
[governor]
policy = $1
sysfs_root = $tmp/tree
saved_path = $tmp/run/governor.saved
calibration_path = $tmp/calibration.json
$2
[telemetry]
database = $tmp/db/telemetry.db
sysfs_root = $tmp/tree
sample_interval_ms = 200
commit_interval_ms = 500
[mqtt]
port = $mqtt_port
device_id = $dev
reconnect_min_ms = 200
ask = true
ask_response_prefix = e2e
[api]
port = $api_port
EOF
}
write_conf balanced ""

python3 "$src/tests/agent/notify_listen.py" "$tmp/notify.sock" "$tmp/notify.log" &
pids+=($!)
wait_for 5 test -S "$tmp/notify.sock" || { echo "notify listener did not start"; exit 1; }

NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=2000000 \
    "$ember" agent --config "$tmp/ember.conf" > "$tmp/agent.log" 2>&1 &
agent=$!
pids+=($agent)
check "READY=1 sent over NOTIFY_SOCKET" wait_for 15 grep -q 'READY=1' "$tmp/notify.log"
check "STATUS= sent" grep -q 'STATUS=' "$tmp/notify.log"
api="http://127.0.0.1:$api_port"

# --- HTTP
health=$(curl -s "$api/health")
check "/health ok: $health" grep -q '"ok"' <<<"$health"
resp=$(curl -s "$api/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt":"Once upon a time","max_tokens":12,"temperature":0}')
check "completion text: $resp" grep -q 'there was a little girl named Lily' <<<"$resp"
check "usage in completion" grep -q '"completion_tokens":12' <<<"$resp"
check "energy object in completion" grep -q '"energy":{"joules"' <<<"$resp"
resp=$(curl -s "$api/v1/chat/completions" -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5}')
check "chat completion: $resp" grep -q '"chat.completion"' <<<"$resp"

# --- telemetry and sessions over MQTT
check "status online (retained)" wait_for 10 grep -q "^ember/$dev/status online" "$tmp/mqtt.log"
check "telemetry samples published" wait_for 10 grep -q "^ember/$dev/telemetry {\"v\":1,\"seq\"" "$tmp/mqtt.log"
check "session published" wait_for 10 grep -q "^ember/$dev/session " "$tmp/mqtt.log"
check "HA discovery" wait_for 10 grep -q '"unique_id"' <(mosquitto_sub -p "$mqtt_port" -t 'homeassistant/#' -v -W 2 2>/dev/null)
check "state for Home Assistant published" wait_for 10 grep -q "^ember/$dev/state {\"v\":1,\"seq\"" "$tmp/mqtt.log"
check "loaded model published" wait_for 10 grep -q "^ember/$dev/model {\"name\":" "$tmp/mqtt.log"
check "governor controls available" wait_for 10 grep -q "^ember/$dev/governor/available online" "$tmp/mqtt.log"
check "last session retained" wait_for 10 grep -q "^ember/$dev/session/last " "$tmp/mqtt.log"

# --- policy from MQTT
mosquitto_pub -p "$mqtt_port" -t "ember/$dev/governor/set" -m powersave
check "governor/state powersave after MQTT set" wait_for 10 grep -q "^ember/$dev/governor/state powersave" "$tmp/mqtt.log"
check "/metrics shows powersave" wait_for 5 bash -c "curl -s $api/metrics | grep -q 'ember_governor_policy{policy=\"powersave\"} 1'"
mosquitto_pub -p "$mqtt_port" -t "ember/$dev/governor/set" -m turbo-mode
check "bad MQTT policy → error event" wait_for 10 grep -q "^ember/$dev/event .*turbo" "$tmp/mqtt.log"
check "bad MQTT policy leaves state" bash -c "curl -s $api/metrics | grep -q 'ember_governor_policy{policy=\"powersave\"} 1'"

# --- policy from HTTP
code=$(curl -s -o "$tmp/put.json" -w '%{http_code}' -X PUT "$api/v1/governor" -H 'Content-Type: application/json' -d '{"policy":"ondemand"}')
check "PUT /v1/governor 200 (got $code: $(cat "$tmp/put.json"))" test "$code" = 200
check "governor/state ondemand after PUT" wait_for 10 grep -q "^ember/$dev/governor/state ondemand" "$tmp/mqtt.log"
check "/metrics shows ondemand" bash -c "curl -s $api/metrics | grep -q 'ember_governor_policy{policy=\"ondemand\"} 1'"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$api/v1/governor" -H 'Content-Type: application/json' -d '{"policy":"nope"}')
check "PUT unknown policy → 400 (got $code)" test "$code" = 400

# --- MQTT ask (v5 request/response)
mosquitto_sub -p "$mqtt_port" -V 5 -t "e2e/answers" -C 1 -W 20 > "$tmp/answer.json" 2>&1 &
sub=$!
sleep 0.3
mosquitto_pub -p "$mqtt_port" -V 5 -t "ember/$dev/ask" -D PUBLISH response-topic e2e/answers \
    -D PUBLISH correlation-data c42 -m '{"prompt":"Once upon a time","max_tokens":8}'
wait $sub
check "ask answered: $(cat "$tmp/answer.json")" grep -q '"usage":{"prompt_tokens"' "$tmp/answer.json"
# an answer may not be aimed at the agent's own command topics
mosquitto_pub -p "$mqtt_port" -V 5 -t "ember/$dev/ask" -D PUBLISH response-topic "ember/$dev/governor/set" \
    -m 'performance'
check "ask with a foreign response topic refused" \
    wait_for 5 grep -q "^ember/$dev/event .*response topic outside the allowed prefix" "$tmp/mqtt.log"

# --- SIGHUP: a broken file is refused, a good one applied
write_conf quiet "tick_ms = 1"
kill -HUP "$agent"
check "bad reload logged with file:line" wait_for 5 grep -q "ember.conf:.*tick_ms" "$tmp/agent.log"
check "agent alive after bad reload" kill -0 "$agent"
write_conf quiet ""
kill -HUP "$agent"
check "good reload applied (quiet)" wait_for 10 grep -q "^ember/$dev/governor/state quiet" "$tmp/mqtt.log"

# --- SIGTERM during a streaming generation
curl -sN "$api/v1/completions" -H 'Content-Type: application/json' -d '{"prompt":"Once upon a time","max_tokens":100000,"stream":true}' \
    > "$tmp/stream.txt" 2>&1 &
curl_pid=$!
check "stream started before SIGTERM" wait_for 10 grep -q '^data: ' "$tmp/stream.txt"
kill -TERM "$agent"
wait_for 10 bash -c "! kill -0 $agent 2>/dev/null"
wait "$agent"
rc=$?
check "agent exit code 0 after SIGTERM (got $rc)" test "$rc" = 0
wait "$curl_pid" 2>/dev/null
check "stream was cut by the stop, not finished ($(grep -c '^data: ' "$tmp/stream.txt") events)" \
    bash -c "! grep -q '\"finish_reason\":\"length\"' '$tmp/stream.txt'"
check "STOPPING=1 sent" grep -q 'STOPPING=1' "$tmp/notify.log"
check "WATCHDOG=1 kept alive (WATCHDOG_USEC=2 s)" grep -q '^WATCHDOG=1$' "$tmp/notify.log"
check "governor restored: scaling_governor back to $orig_gov" \
    test "$(cat "$tmp/tree/sys/devices/system/cpu/cpufreq/policy0/scaling_governor")" = "$orig_gov"
check "governor restored: scaling_max_freq back to $orig_max" \
    test "$(cat "$tmp/tree/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq")" = "$orig_max"
check "saved file removed after restore" test ! -e "$tmp/run/governor.saved"
check "offline published" wait_for 5 grep -q "^ember/$dev/status offline" "$tmp/mqtt.log"
retained=$(mosquitto_sub -p "$mqtt_port" -t "ember/$dev/status" -C 1 -W 3 2>/dev/null)
check "status retained as offline (got $retained)" test "$retained" = offline
integrity=$(sqlite3 "$tmp/db/telemetry.db" 'PRAGMA integrity_check;')
check "database integrity ($integrity)" test "$integrity" = ok
sessions=$(sqlite3 "$tmp/db/telemetry.db" 'SELECT count(*) FROM sessions;')
check "sessions stored ($sessions)" test "$sessions" -ge 3
samples=$(sqlite3 "$tmp/db/telemetry.db" 'SELECT count(*) FROM samples;')
check "samples stored ($samples)" test "$samples" -ge 5

[ "$failed" = 0 ] || { echo "--- agent log"; tail -40 "$tmp/agent.log"; }
e2e_finish
