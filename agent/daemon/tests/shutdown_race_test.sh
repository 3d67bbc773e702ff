#!/usr/bin/env bash
# PUT /v1/governor racing SIGTERM, repeated: a real `ember agent` (no model, so it starts in a
# moment; the governor on a copy of a fake acpi-cpufreq tree) is hammered by curl clients
# changing the policy while it gets SIGTERM. Every round the agent must exit 0 within a few
# seconds (a governor change that reaches a stopped loop used to leave its HTTP thread waiting
# for ever, and the shutdown joining it: a hang until systemd's kill), every client must get an
# answer or a closed connection (200, or 503 shutting_down; never a hang), and the tree's
# original settings must be back.
# Usage: shutdown_race_test.sh EMBER_BINARY SOURCE_DIR SHARED_DIR [ROUNDS]
set -uo pipefail
ember=$1
src=$2
shared=$3
rounds=${4:-12}
tree="$shared/sysfs-trees/acpi-cpufreq-4c"
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done
[ -d "$tree" ] || { echo "missing $tree"; exit 1; }

tmp=$(mktemp -d /tmp/ember-race.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

failed=0
total_oks=0
total_refused=0
fail() { failed=$((failed + 1)); echo "FAIL: $*"; keep=1; }
wait_for() { # wait_for SECONDS COMMAND...
    local limit=$(( $1 * 10 )); shift
    for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

policy0=sys/devices/system/cpu/cpufreq/policy0
cp -a "$tree" "$tmp/orig"
# A client: PUTs alternating policies until the agent stops answering; records every status.
hammer() { # hammer API OUT
    local api=$1 out=$2 n=0 policy code
    while :; do
        policy=$([ $((n % 2)) = 0 ] && echo powersave || echo performance)
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X PUT "$api/v1/governor" \
            -H 'Content-Type: application/json' -d "{\"policy\":\"$policy\"}")
        echo "$code" >> "$out"
        case "$code" in 200 | 503) ;; *) break ;; esac # 000: the agent has gone
        n=$((n + 1))
    done
}

for ((round = 1; round <= rounds; round++)); do
    rm -rf "$tmp/tree" "$tmp/run" "$tmp"/codes.*
    cp -a "$tree" "$tmp/tree"
    port=$(python3 "$src/tests/agent/free_port.py")
    cat > "$tmp/ember.conf" <<EOF
[agent]
log_level = info
shutdown_timeout_ms = 500
[governor]
policy = balanced
sysfs_root = $tmp/tree
saved_path = $tmp/run/governor.saved
calibration_path = $tmp/calibration.json
[telemetry]
enabled = false
[mqtt]
enabled = false
[api]
port = $port
EOF
    "$ember" agent --config "$tmp/ember.conf" > "$tmp/agent.log" 2>&1 &
    agent=$!
    pids+=($agent)
    api="http://127.0.0.1:$port"
    if ! wait_for 15 curl -sf -o /dev/null "$api/v1/governor"; then
        fail "round $round: the agent did not answer GET /v1/governor"
        cat "$tmp/agent.log"
        break
    fi
    clients=()
    for c in 1 2 3 4 5 6; do
        hammer "$api" "$tmp/codes.$c" &
        clients+=($!)
    done
    # let the clients get going, then stop the agent at a different moment each round
    delay_ms=$((round * 137 % 600))
    sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
    kill -TERM "$agent"
    if ! wait_for 10 bash -c "! kill -0 $agent 2>/dev/null"; then
        fail "round $round: the agent still runs 10 s after SIGTERM (hung shutdown)"
        tail -5 "$tmp/agent.log"
        kill -9 "$agent" 2>/dev/null
    fi
    wait "$agent"
    rc=$?
    [ "$rc" = 0 ] || { fail "round $round: exit code $rc"; tail -5 "$tmp/agent.log"; }
    for p in "${clients[@]}"; do
        if ! wait_for 25 bash -c "! kill -0 $p 2>/dev/null"; then
            fail "round $round: a client still waits for an answer"
            kill "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
    done
    oks=$(cat "$tmp"/codes.* | grep -c '^200$')
    refused=$(cat "$tmp"/codes.* | grep -c '^503$')
    bad=$(cat "$tmp"/codes.* | grep -vcE '^(200|503|000)$')
    total_oks=$((total_oks + oks))
    total_refused=$((total_refused + refused))
    [ "$bad" = 0 ] || fail "round $round: unexpected statuses: $(sort "$tmp"/codes.* | uniq -c | tr '\n' ' ')"
    for f in scaling_governor scaling_max_freq scaling_min_freq; do
        [ "$(cat "$tmp/orig/$policy0/$f")" = "$(cat "$tmp/tree/$policy0/$f")" ] ||
            fail "round $round: $f not restored ($(cat "$tmp/tree/$policy0/$f"))"
    done
    echo "round $round: exit $rc, $oks PUTs answered 200, $refused answered 503"
done
[ "$total_oks" -gt 0 ] || fail "no PUT succeeded in any round: the race was not run"
if [ "$failed" -gt 0 ]; then
    echo "shutdown_race_test: $failed failure(s)"
    exit 1
fi
echo "shutdown_race_test: $rounds rounds, every shutdown clean ($total_oks PUTs answered 200, $total_refused 503 shutting_down)"
