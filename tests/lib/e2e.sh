# Shared start of the end-to-end shell tests (agent_e2e, plugins_e2e, privsep_agent_e2e): source
# it after `set -uo pipefail`. It gives
#   e2e_need TOOL...        exit 77 (skip), naming the first TOOL missing from PATH
#   e2e_tmpdir NAME         $tmp = a new /tmp/ember-NAME.XXXXXX, removed on exit unless a check
#                           failed (then kept and named); every pid in pids[] is killed on exit,
#                           and a test may define e2e_on_exit for more of its own
#   ok, fail, check DESCRIPTION COMMAND..., wait_for SECONDS COMMAND...: $passed, $failed
#   e2e_mosquitto PORT      a real broker on 127.0.0.1:PORT (anonymous, no persistence), its log
#                           in $tmp/mosquitto.log, waited for (exit 1 when it does not listen)
#   e2e_finish              prints "N passed, N failed"; its status is the test's
# shellcheck shell=bash

e2e_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
    done
}

pids=()
passed=0
failed=0

e2e_cleanup() {
    if declare -F e2e_on_exit >/dev/null; then e2e_on_exit; fi
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}

e2e_tmpdir() {
    tmp=$(mktemp -d "/tmp/ember-$1.XXXXXX") || { echo "mktemp failed"; exit 1; }
    trap e2e_cleanup EXIT
}

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; keep=1; }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok; else fail "$what"; fi
}
wait_for() { # wait_for SECONDS COMMAND...
    local limit=$(( $1 * 10 )) i; shift
    for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

e2e_mosquitto() {
    cat > "$tmp/mosquitto.conf" <<CONF
listener $1 127.0.0.1
allow_anonymous true
persistence false
CONF
    mosquitto -c "$tmp/mosquitto.conf" > "$tmp/mosquitto.log" 2>&1 &
    pids+=($!)
    wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" || { echo "mosquitto did not start"; exit 1; }
}

e2e_finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
