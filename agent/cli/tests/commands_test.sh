#!/usr/bin/env bash
# Every sub-command as a new user meets it (issue 21): one error style and the README's exit
# codes for bad arguments, round trips that must hold (a printed seed reused, a relative --root
# restored from elsewhere, a second `governor set`), unknown energy shown as unknown, what --help
# and docs/ promise (defaults, JSON shapes, HTTP status codes) checked against what the binary
# does, and the daemon without a model, without cpufreq and across a SIGHUP.
# Usage: cli_test.sh EMBER SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1 src=$2 shared=$3
model="$shared/models/stories260K.gguf"
[ -f "$model" ] || { echo "skip: no $model"; exit 77; }
for tool in curl python3; do command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }; done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-cli.XXXXXX")
pids=()
pass=0 fail=0
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$fail" != 0 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
# run CMD...: stdout in $out, stderr in $err, exit status in $rc
run() { "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
runin() { local input=$1; shift; printf '%b' "$input" | "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
wait_for() { local n=$(($1 * 10)); shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
: >"$tmp/empty.conf"
conf="--config $tmp/empty.conf"   # built-in defaults, whatever /etc/ember holds
copy_tree() { mkdir -p "$2" && cp -a "$src/tests/sysfs-trees/$1/." "$2/" && chmod -R u+w "$2"; }

# usage_error CMD...: exit 2, exactly "ember <cmd>: error: ..." and one hint line, no help dump
usage_error() {
    local name=$1; shift
    run "$ember" "$@"
    check "$name: exit 2 (got $rc)" test "$rc" = 2
    local lines
    lines=$(printf '%s\n' "$err" | wc -l)
    check "$name: error + at most one hint line, got: $err" test "$lines" -le 2
    check "$name: 'ember CMD: error:' first, got: $err" \
        bash -c "printf '%s\n' \"\$1\" | head -1 | grep -Eq '^ember( [a-z]+( [a-z]+)?)?: error: '" _ "$err"
    if [ "$lines" = 2 ]; then
        check "$name: hint line, got: $err" \
            bash -c "printf '%s\n' \"\$1\" | tail -1 | grep -Eq '^ember( [a-z]+( [a-z]+)?)?: hint: '" _ "$err"
    fi
    check "$name: no help text on stdout" test -z "$out"
}

# --- item 16: one error style, exit codes as the README says
usage_error "no command" 
usage_error "unknown command" nosuch
usage_error "run unknown option" run --bogus
usage_error "run missing value" run -m "$model" --seed
usage_error "run bad number" run -m "$model" --temp abc
usage_error "tokenize unknown option" tokenize --bogus
usage_error "tokenize stray argument" tokenize -m "$model" text
usage_error "config no action" config
usage_error "config unknown action" config bogus
usage_error "config unknown option" config check --bogus
usage_error "report bad --since" report --since yesterday --db "$tmp/none.db"
usage_error "report unknown option" report --bogus
usage_error "agent bad port" agent --port 0
usage_error "governor no sub-command" governor
usage_error "governor unknown sub-command" governor nosuch
usage_error "governor set unknown policy" governor set turbo --root "$tmp"
usage_error "governor status unknown option" governor status --bogus
usage_error "governor sim unknown option" governor sim --bogus
usage_error "bench unknown option" bench --bogus
usage_error "bench missing value" bench -m "$model" -p
usage_error "bench bad number" bench -m "$model" -r x
usage_error "bench stray argument" bench -m "$model" extra
usage_error "quantize unknown option" quantize --bogus
usage_error "quantize no files" quantize --type Q8_0
usage_error "eval unknown option" eval --bogus
usage_error "eval no text" eval -m "$model"
# bench, run, eval and quantize read integer options through one parser: one message shape
while IFS='|' read -r want args; do
    usage_error "$args: out of range" $args
    check "$args: says '$want', got: $err" grep -qF -- "error: $want" <<<"$err"
done <<RANGES
-p: 'x' is not an integer in [0, 65536]|bench -m $model -p x
--threads: '5000' is not an integer in [0, 1024]|run -m $model -t 5000
--ctx: '3' is not an integer in [8, 65536]|eval -m $model -c 3
--threads: '0' is not an integer in [1, 256]|quantize -j 0 a b
--calib-tokens: '7' is not an integer in [8, 1000000]|quantize --calib-tokens 7 a b
RANGES
usage_error "fleet no sub-command" fleet
usage_error "fleet unknown option" fleet status --bogus
for cmd in agent run tokenize config report "governor status" "governor set" "governor restore" \
    "governor calibrate" "governor sim" governor bench quantize eval "fleet status"; do
    run "$ember" $cmd --help
    check "$cmd --help exits 0 with usage on stdout" bash -c "[ $rc = 0 ] && grep -q '^usage: ember' <<<\"\$1\"" _ "$out"
done

# --- item 1: a printed random seed can be given back to --seed and reproduces the text
for k in 1 2 3 4 5 6; do
    run "$ember" run -m "$model" -p "Once" -n 12 -t 1 $conf
    seed=$(sed -n 's/.*seed \([0-9]*\)$/\1/p' <<<"$err")
    first=$out
    run "$ember" run -m "$model" -p "Once" -n 12 -t 1 $conf --seed "$seed"
    check "printed seed $seed accepted by --seed (exit $rc: $err)" test "$rc" = 0
    check "seed $seed reproduces the text" test "$out" = "$first"
done
# ... and as [engine] seed in a configuration file
printf '[engine]\nseed = %s\n' "$seed" >"$tmp/seed.conf"
run "$ember" config check "$tmp/seed.conf"
check "printed seed $seed accepted by config check ($err)" test "$rc" = 0
run "$ember" run -m "$model" -p "Once" -n 12 -t 1 --config "$tmp/seed.conf"
check "[engine] seed $seed reproduces the text" test "$out" = "$first"

# --- item 9: -c beyond what the engine takes is a usage error, not a failure after loading
usage_error "run -c 2000000" run -m "$model" -c 2000000 -n 1 $conf
# --- item 17: the text ends with a newline on a pipe
run "$ember" run -m "$model" -p "Once upon a time" -n 30 --temp 0 -t 1 $conf
check "run output ends with a newline" bash -c "[ \"\$(tail -c 1 '$tmp/out' | od -An -c | tr -d ' ')\" = '\\n' ]"
# --- item 6: re-processing after a context shift is not prompt time
run "$ember" run -m "$model" -p "Once" -n 150 -c 64 --context-shift --temp 0 -t 1 $conf
check "context shift: exit 0 ($err)" test "$rc" = 0
check "context shift: re-processing reported apart from the prompt: $err" \
    grep -Eq '^generation: .*re-processing after [0-9]+ context shift' <<<"$err"
check "context shift: prompt is 2 tokens" grep -q '^prompt: 2 tokens' <<<"$err"
# --- chat (issue 14): stdin turns, the answers on stdout (it printed nothing: no text
# callback), and the second turn decodes only the new part of the conversation: the KV cache
# still holds turn 1's prompt and answer, so turn 2 reuses exactly those tokens and processes
# only what follows them, which is tokenized here on its own to count it.
runin 'Hello\nOnce upon a time\n' "$ember" run -m "$model" --chat -n 8 --temp 0 -t 1 \
    --chat-template chatml --ignore-eos $conf
check "chat: exit 0" test "$rc" = 0
check "chat: answers on stdout, got '$out'" test "$(tr -d ' \n' <<<"$out" | wc -c)" -gt 4
check "chat: two answers, one per line" test "$(wc -l <"$tmp/out")" = 2
turn_field() { # turn_field N FIELD: prompt|reused|gen of the stderr line "turn N: ..."
    sed -n "s/^turn $1: prompt: \([0-9]*\) tokens in [0-9.]* ms, \([0-9]*\) reused from the cache; generation: \([0-9]*\) tokens in .*/\1 \2 \3/p" <<<"$err" |
        awk -v f="$2" '{ print (f == "prompt" ? $1 : f == "reused" ? $2 : $3) }'
}
p1=$(turn_field 1 prompt) r1=$(turn_field 1 reused) g1=$(turn_field 1 gen)
p2=$(turn_field 2 prompt) r2=$(turn_field 2 reused) g2=$(turn_field 2 gen)
check "chat: a stats line per turn: $err" test -n "$p1" -a -n "$p2"
check "chat: turn 1 starts from an empty cache ($r1 reused)" test "${r1:-x}" = 0
check "chat: 8 tokens per answer ($g1, $g2)" test "${g1:-x} ${g2:-x}" = "8 8"
check "chat: turn 2 reuses turn 1's prompt and answer ($r2 = $p1 + $g1)" \
    test "${r2:-x}" = "$((${p1:-0} + ${g1:-0}))"
suffix=$(printf '<|im_end|>\n<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n_')
suffix=${suffix%_}
n_new=$(printf '%s' "$suffix" | "$ember" tokenize -m "$model" --no-bos $conf 2>/dev/null | wc -w)
check "chat: turn 2 processes only the new tokens ($p2 = $n_new)" test "${p2:-x}" = "$n_new"
runin 'Hello\n/reset\nOnce upon a time\n' "$ember" run -m "$model" --chat -n 8 --temp 0 -t 1 \
    --chat-template chatml --ignore-eos $conf
check "chat: after /reset nothing is reused" test "$(turn_field 2 reused)" = 0
# a conversation that outgrows the context starts over with the message that did not fit (it
# was dropped: no answer); a message too long on its own is refused with a clear error
runin 'Hello\nOnce upon a time\n' "$ember" run -m "$model" --chat -n 8 -c 64 --temp 0 -t 1 \
    --chat-template chatml --ignore-eos $conf
check "chat -c 64: exit 0 ($err)" test "$rc" = 0
check "chat -c 64: the second message answered in a fresh conversation: $out" \
    test "$(wc -l <"$tmp/out")" = 2
check "chat -c 64: says it started over" grep -q "does not fit: context 64.*starting over with this message" <<<"$err"
check "chat -c 64: turn 2 from an empty cache" test "$(turn_field 2 reused)" = 0
runin 'Hello\nOnce upon a time, in a land far away, there lived a very long sentence\n' \
    "$ember" run -m "$model" --chat -n 8 -c 64 --temp 0 -t 1 --chat-template chatml $conf
check "chat: a message longer than the context: exit 0, an error naming the sizes: $err" \
    bash -c "[ $rc = 0 ] && grep -q '^ember run: error: generate: prompt of [0-9]* tokens does not fit: context 64, 0 in use' <<<\"\$1\"" _ "$err"
# --- smaller: chat-only flags without --chat are refused
usage_error "--system without --chat" run -m "$model" -p x --system "be brief" $conf
usage_error "--chat-template without --chat" run -m "$model" -p x --chat-template chatml $conf
# --- item 10 and smaller: --help states the defaults `config dump --defaults` has
run "$ember" config dump --defaults
dump=$out
run "$ember" run --help
help=$out
for pair in "temp:temperature" "top-k:top_k" "top-p:top_p" "min-p:min_p" "repeat-penalty:repeat_penalty" \
    "repeat-last-n:repeat_last_n" "presence-penalty:presence_penalty" "batch:batch_size" \
    "ctx:context_length" "threads:threads"; do
    flag=${pair%%:*} key=${pair#*:}
    want=$(sed -n "s/^$key = //p" <<<"$dump")
    got=$(python3 -c '
import re, sys
h = sys.argv[1]
i = h.index("--" + sys.argv[2] + " ")
nxt = re.search(r"\n {2,6}-", h[i:])
m = re.search(r"default ([-0-9.]+)\)", h[i:i + nxt.start()] if nxt else h[i:])
print(m.group(1) if m else "")' "$help" "$flag")
    check "run --help: --$flag default '$got' = [engine] $key '$want'" test "$got" = "$want"
done
# item 10 in behaviour: without a configuration file run uses the batch config dump shows
want=$(sed -n 's/^batch_size = //p' <<<"$dump")
run "$ember" run -m "$model" -p "Once" -n 2 -t 1 $conf
check "run without a config uses batch_size $want: $err" grep -q "^load: .*, batch $want)" <<<"$err"
run "$ember" run -m "$model" -p "Once" -n 2 -t 1 -b 7 $conf
check "run -b 7 uses batch 7" grep -q "^load: .*, batch 7)" <<<"$err"

# --- item 11: a missing --config is an error for tokenize too
run "$ember" tokenize -m "$model" --config "$tmp/nope.conf"
check "tokenize --config missing: exit 2 (got $rc)" test "$rc" = 2
check "tokenize --config missing: says which file" grep -q "nope.conf" <<<"$err"
# --- smaller: non-UTF-8 input is tokenized with a warning
runin 'ab\xffcd' "$ember" tokenize -m "$model" $conf
check "tokenize non-UTF-8: exit 0" test "$rc" = 0
check "tokenize non-UTF-8: warning with the offset: $err" grep -q "not valid UTF-8 (byte 2)" <<<"$err"

# --- item 7: the checker and the sampler agree on top_p
printf '[engine]\ntop_p = 0\n' >"$tmp/topp.conf"
run "$ember" config check "$tmp/topp.conf"
check "config check top_p = 0: exit 2" test "$rc" = 2
check "config check top_p = 0: file:line: $err" grep -q "topp.conf:2: \[engine\] top_p" <<<"$err"
# ... and at every bound of every sampler key: what config check accepts, run accepts too
# (the ranges documented by `config dump --docs`), and a value past a bound is refused with
# file:line
run "$ember" config dump --docs --defaults
python3 - "$ember" "$model" "$tmp" "$out" >"$tmp/ranges.out" 2>&1 <<'PY'
import re, subprocess, sys
ember, model, tmp, docs = sys.argv[1:]
keys = ["temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
        "presence_penalty", "frequency_penalty"]
bad = 0
def conf(key, value):
    path = f"{tmp}/range.conf"
    with open(path, "w") as f:
        f.write(f"[engine]\n{key} = {value}\n")
    return path
for key in keys:
    m = re.search(r"^# ([\[(]?)(-?[0-9.]+)(?:\.\.|, )(-?[0-9.]+)([\])]?)\. Default: .*\n" + key + " = ",
                  docs, re.M)
    if not m:
        print(f"{key}: no documented range"); bad += 1; continue
    lo_open, lo, hi, hi_open = m.group(1) == "(", m.group(2), m.group(3), m.group(4) == ")"
    step = 1 if "." not in lo + hi and key in ("top_k", "repeat_last_n") else 0.001
    cases = [(lo, not lo_open), (hi, not hi_open),
             (repr(round(float(lo) - step, 3)) if step < 1 else str(int(lo) - 1), False),
             (repr(round(float(hi) + step, 3)) if step < 1 else str(int(hi) + 1), False)]
    for value, ok in cases:
        path = conf(key, value)
        chk = subprocess.run([ember, "config", "check", path], capture_output=True, text=True)
        if (chk.returncode == 0) != ok or (not ok and f"range.conf:2: [engine] {key}" not in chk.stderr):
            print(f"{key} = {value}: config check exit {chk.returncode}: {chk.stderr.strip()}"); bad += 1
        if ok:
            r = subprocess.run([ember, "run", "-m", model, "-p", "Once", "-n", "2", "-t", "1",
                                "--config", path], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{key} = {value}: config check accepts it, run exits {r.returncode}: "
                      f"{r.stderr.strip()}"); bad += 1
print(f"{len(keys)} sampler keys checked at their bounds, {bad} disagreements")
sys.exit(1 if bad else 0)
PY
rc=$?
check "sampler ranges: checker and engine agree at every bound: $(cat "$tmp/ranges.out")" test "$rc" = 0
# --- item 18: directories are named as such
run "$ember" config check "$tmp"
check "config check DIR: exit 2" test "$rc" = 2
check "config check DIR: is a directory: $err" grep -q "is a directory" <<<"$err"
run "$ember" report --db "$tmp" $conf
check "report --db DIR: exit 2" test "$rc" = 2
check "report --db DIR: is a directory: $err" grep -q "is a directory" <<<"$err"
# --- smaller: config dump does not start with a blank line
run "$ember" config dump $conf
check "config dump starts with [agent]" test "$(head -1 "$tmp/out")" = "[agent]"

# --- item 12: a --root that does not exist is a usage error that says so
run "$ember" governor status --root "$tmp/nonexistent" $conf
check "status --root missing: exit 2 (got $rc)" test "$rc" = 2
check "status --root missing: no such directory: $err" grep -q "no such directory" <<<"$err"
# --- item 2: a relative --root is stored absolute; the saved file lives under the root
copy_tree rk3588-3cluster "$tmp/rk"
(cd "$tmp" && "$ember" governor set performance --root rk $conf >/dev/null 2>"$tmp/err1")
check "set --root rk (relative): exit 0 ($(cat "$tmp/err1"))" test $? = 0
saved="$tmp/rk/run/ember/governor.saved"
check "saved file under the root, not /run/ember" test -s "$saved"
check "saved file records the absolute root" python3 -c '
import json, sys; assert json.load(open(sys.argv[1]))["sysfs_root"] == sys.argv[2]' "$saved" "$tmp/rk"
# --- item 5: a second set is normal use, not a crash
run "$ember" governor set powersave --root "$tmp/rk" $conf
check "second set: exit 0" test "$rc" = 0
check "second set: no crash message: $err" bash -c "! grep -qi crash <<<\"\$1\"" _ "$err"
(cd / && "$ember" governor restore --root "$tmp/rk" $conf >/dev/null 2>&1)
check "restore from another directory: exit 0" test $? = 0
check "restore: the originals of before the first set" test \
    "$(cat "$tmp/rk/sys/devices/system/cpu/cpufreq/policy6/scaling_governor")" = schedutil
# --- item 8: a power source that has measured nothing is unknown, not 0 W
copy_tree rk3588-3cluster "$tmp/rapl"
rapl="$tmp/rapl/sys/class/powercap/intel-rapl:0"
mkdir -p "$rapl" && echo package-0 >"$rapl/name" && echo 1000 >"$rapl/energy_uj" &&
    echo 262143328850 >"$rapl/max_energy_range_uj" && echo 1 >"$rapl/enabled"
run "$ember" governor calibrate -m "$model" --root "$tmp/rapl" --out "$tmp/cal.json" --steps 2 \
    --prefill 8 --decode 4 --threads 1 $conf
check "calibrate on a frozen counter: exit 0 ($err)" test "$rc" = 0
check "calibrate: no 0.00 watts: $out" bash -c "! grep -Eq ' 0\.00\$' <<<\"\$1\"" _ "$out"
check "calibrate: curve has null watts" bash -c "! grep -q '\"watts\":0[,}]' '$tmp/cal.json'"

# --- items 13-15: the simulator
usage_error "sim --duration 0" governor sim --duration 0
check "sim --duration 0 says the range" grep -q "more than 0" <<<"$err"
run "$ember" governor sim --policy performance,balanced --duration 30 --json
check "sim --json: one line" test "$(wc -l <"$tmp/out")" = 1
check "sim --json: an array with one object per policy" python3 -c '
import json,sys; a=json.load(open(sys.argv[1])); assert isinstance(a,list) and len(a)==2 and all(isinstance(o,dict) for o in a)' "$tmp/out"
run "$ember" governor sim --help
check "sim --help says array" grep -q "JSON array with one object per" <<<"$out"
check "docs/governor-sim.md says array" grep -q -- "--json. an array with one object per policy" "$src/docs/governor-sim.md"
run "$ember" governor sim --policy performance,powersave --duration 120 --svg "$tmp/sim.svg"
check "sim table: arrivals over 120 s" grep -q "arrivals over 120 s" <<<"$out"
check "sim table: simulated s row" grep -q "^simulated s" <<<"$out"
check "sim svg: title says the same 120 s" grep -q "arrivals over 120 s" "$tmp/sim.svg"
check "sim svg: time labels" grep -q ">60 s</text>" "$tmp/sim.svg"

# --- the daemon
port() { python3 "$src/tests/agent/free_port.py"; }
start_agent() { # start_agent NAME: runs ember agent --config $tmp/NAME.conf, log in $tmp/NAME.log
    "$ember" agent --config "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
    agent=$!
    pids+=($agent)
}
# A: no model, no cpufreq, a broker that is down (items 3, 4, 21)
mkdir -p "$tmp/nocpufreq"
pa=$(port) dead=$(port)
cat >"$tmp/a.conf" <<CONF
[agent]
log_level = info
[engine]
model =
[governor]
sysfs_root = $tmp/nocpufreq
[telemetry]
enabled = false
[mqtt]
port = $dead
reconnect_min_ms = 100
reconnect_max_ms = 1000
[api]
port = $pa
CONF
start_agent a
api="http://127.0.0.1:$pa"
check "agent A answers /health" wait_for 10 curl -s -o /dev/null "$api/health"
health_doc=$(grep -o '503 {"status":"no_model"}' "$src/docs/api.md")
check "docs/api.md promises 503 no_model" test -n "$health_doc"
code=$(curl -s -o "$tmp/h.json" -w '%{http_code}' "$api/health")
check "no model: /health $code $(cat "$tmp/h.json") = $health_doc" test "$code $(cat "$tmp/h.json")" = "$health_doc"
code=$(curl -s -o "$tmp/c.json" -w '%{http_code}' "$api/v1/completions" -H 'Content-Type: application/json' -d '{"prompt":"x"}')
check "no model: completion 503 ($code)" test "$code" = 503
check "no model: completion says none is configured: $(cat "$tmp/c.json")" grep -q "no model is configured" "$tmp/c.json"
check "docs/api.md: 503 model_not_loaded" grep -q '^| 503 | `model_not_loaded`' "$src/docs/api.md"
check "no model: code model_not_loaded" grep -q '"code":"model_not_loaded"' "$tmp/c.json"
check "docs/api.md promises 404 governor_disabled" grep -q '| 404 | `governor_disabled`' "$src/docs/api.md"
code=$(curl -s -o "$tmp/g.json" -w '%{http_code}' "$api/v1/governor")
check "no cpufreq: GET /v1/governor 404 ($code $(cat "$tmp/g.json"))" test "$code" = 404
check "no cpufreq: code governor_disabled" grep -q '"code":"governor_disabled"' "$tmp/g.json"
code=$(curl -s -o "$tmp/g.json" -w '%{http_code}' -X PUT "$api/v1/governor" -H 'Content-Type: application/json' -d '{"policy":"powersave"}')
check "no cpufreq: PUT /v1/governor 404 ($code)" test "$code" = 404
sleep 2.5
n=$(grep -c "mqtt:.*" "$tmp/a.log")
check "broker down: the outage is logged once, not per retry ($n lines)" test "$n" -le 2
kill "$agent"; wait "$agent" 2>/dev/null

# B: a model and a fake tree, telemetry off (item 8: energy unknown; item 19: SIGHUP)
copy_tree rk3588-3cluster "$tmp/rkb"
pb=$(port)
write_b() {
    cat >"$tmp/b.conf" <<CONF
[agent]
log_level = $1
[engine]
model = $model
threads = 1
[governor]
policy = balanced
sysfs_root = $tmp/rkb
[telemetry]
enabled = false
[mqtt]
enabled = false
[api]
port = $pb
CONF
}
write_b info
start_agent b
api="http://127.0.0.1:$pb"
check "agent B up" wait_for 15 bash -c "curl -s '$api/health' | grep -q '\"ok\"'"
resp=$(curl -s "$api/v1/completions" -H 'Content-Type: application/json' -d '{"prompt":"Once upon a time","max_tokens":4,"temperature":0}')
check "unmeasured energy is null, not 0: $resp" grep -q '"energy":{"joules":null,"joules_per_token":null,"avg_watts":null' <<<"$resp"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$api/v1/governor" -H 'Content-Type: application/json' -d '{"policy":"powersave"}')
check "PUT powersave 200 ($code)" test "$code" = 200
write_b debug
kill -HUP "$agent"
check "reload applied" wait_for 5 grep -q "reload: .* applied" "$tmp/b.log"
check "a reload of log_level keeps the policy set over the API" \
    bash -c "curl -s '$api/v1/governor' | grep -q '\"policy\":\"powersave\"'"
check "saved file of B under its root" test -e "$tmp/rkb/run/ember/governor.saved"
kill "$agent"; wait "$agent" 2>/dev/null

# C: telemetry on (item 20): tokens land in the phase that produced them, J/token is per
# generated token
copy_tree rk3588-3cluster "$tmp/rkc"
pc=$(port)
cat >"$tmp/c.conf" <<CONF
[engine]
model = $model
threads = 1
[governor]
sysfs_root = $tmp/rkc
[telemetry]
database = $tmp/c.db
sysfs_root = $tmp/rkc
sample_interval_ms = 100
commit_interval_ms = 100
[mqtt]
enabled = false
[api]
port = $pc
CONF
start_agent c
api="http://127.0.0.1:$pc"
check "agent C up" wait_for 15 bash -c "curl -s '$api/health' | grep -q '\"ok\"'"
for k in 1 2 3; do
    curl -s "$api/v1/completions" -H 'Content-Type: application/json' -d '{"prompt":"Once upon a time","max_tokens":40,"temperature":0}' >/dev/null
done
sleep 1
kill "$agent"; wait "$agent" 2>/dev/null
run "$ember" report --db "$tmp/c.db" --json $conf
check "report --json: exit 0 ($err)" test "$rc" = 0
check "report: generated tokens under prefill/decode, none under idle: $out" python3 -c '
import json, sys
r = json.loads(sys.argv[1])
ph = {g["phase"]: g["tokens"] for g in r["phases"]}
assert ph.get("idle", 0) == 0 and ph.get("decode", 0) + ph.get("prefill", 0) == 120, ph
assert r["tokens"] == 120 and r["sessions"]["gen_tokens"] == 120, r["tokens"]' "$out"
run "$ember" report --db "$tmp/c.db" $conf
check "report text: J/token labelled per generated token" grep -q "J/token (joules per generated token)" <<<"$out"
# smaller: one number of decimals for each quantity in every text output (W 2, J/token 4; the
# fleet table's are checked by fleet_view_test, Home Assistant's precision by telmqtt_unit)
check "report text: W to 2 decimals, J/token to 4: $out" bash -c \
    "grep -Eq 'mean [0-9]+\.[0-9]{2} W, peak [0-9]+\.[0-9]{2} W' <<<\"\$1\" &&
     grep -Eq ' [0-9]+\.[0-9]{4} J/token \(joules per generated token\)' <<<\"\$1\"" _ "$out"
run "$ember" governor sim --policy performance --duration 30
check "sim table: W to 2 decimals, J/token to 4: $out" bash -c \
    "grep -Eq '^avg power W +[0-9]+\.[0-9]{2}\$' <<<\"\$1\" &&
     grep -Eq '^J/token total +[0-9]+\.[0-9]{4}\$' <<<\"\$1\"" _ "$out"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
