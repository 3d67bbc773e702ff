#!/usr/bin/env bash
# Plugins in the real agent, through the real HTTP API (see plugins.cmake):
#  1. the knowledge plugin on the example knowledge base, the probe, the docs' example plugin
#     (session_csv) and three plugins that must be refused: the agent starts and serves; a chat
#     response names the knowledge entries it used in "sources" (plain and streamed); "!ping" is
#     answered by the probe without the model; every hook is called; the CSV gets its lines.
#  2. the probe with crash = before_request: a chat request kills the agent, and its log names the
#     plugin, its file and the hook.
# Usage: plugins_e2e.sh EMBER SOURCE_DIR SHARED_DIR BUILD_DIR [EMULATOR]
set -uo pipefail
emulator=${5:-}
ember=$1
src=$(cd "$2" && pwd)
shared=$3
build=$4
model="$shared/models/stories260K.gguf"
. "$src/tests/lib/e2e.sh"
e2e_need curl python3
[ -f "$model" ] || { echo "missing $model"; exit 1; }
kb="$build/share/ember/knowledge/ember-docs.db"
for f in "$kb" "$build/lib/ember/plugins/knowledge.so" "$build/test-plugins/probe.so" \
    "$build/example-plugins/session_csv.so"; do
    [ -f "$f" ] || { echo "missing $f (build the tree first)"; exit 1; }
done

e2e_tmpdir plugins

# The example in docs/plugins.md is the file that is built and loaded here, word for word.
python3 - "$src/docs/plugins.md" "$src/plugins/example/session_csv.c" <<'EOF' ||
import sys
doc = open(sys.argv[1]).read()
start = doc.index("```c\n/* session_csv:") + len("```c\n")
code = doc[start:doc.index("```", start)]
sys.exit(0 if code == open(sys.argv[2]).read() else 1)
EOF
    fail "docs/plugins.md's example differs from plugins/example/session_csv.c"

mkdir -p "$tmp/plugins" "$tmp/state"
cp "$build/lib/ember/plugins/knowledge.so" "$build/test-plugins/"{probe,wrong_abi,no_symbol,init_fails}.so \
    "$build/example-plugins/session_csv.so" "$tmp/plugins/"
port=$(python3 "$src/tests/agent/free_port.py")
api="http://127.0.0.1:$port"

write_conf() { # write_conf EXTRA_PROBE_LINE
    cat > "$tmp/ember.conf" <<EOF
[agent]
log_level = info
shutdown_timeout_ms = 500
state_dir = $tmp/state
[engine]
model = $model
threads = 1
temperature = 0
max_tokens = 8
[governor]
enabled = false
[telemetry]
enabled = false
sample_interval_ms = 200
[mqtt]
enabled = false
[api]
port = $port
[plugins]
dir = $tmp/plugins
enable = knowledge probe wrong_abi no_symbol init_fails session_csv
[plugin.knowledge]
database = $kb
top_k = 2
max_passage_bytes = 64
[plugin.probe]
log = $tmp/probe.log
$1
[plugin.session_csv]
file = $tmp/sessions.csv
EOF
}

# ---- 1. plugins at work ----
write_conf ""
"$ember" agent --config "$tmp/ember.conf" > "$tmp/agent.log" 2>&1 &
agent=$!
pids+=($agent)
check "the agent serves with refused plugins" wait_for 30 curl -sf -o /dev/null "$api/health"
log=$(cat "$tmp/agent.log")
for want in "plugins: $tmp/plugins/wrong_abi.so refused: it was built for plugin ABI version" \
    "plugins: $tmp/plugins/no_symbol.so refused: it exports no 'ember_plugin' symbol" \
    "plugins: $tmp/plugins/init_fails.so (init_fails) refused: init failed: the probe needs a widget" \
    "plugins: loaded knowledge 1.0 from $tmp/plugins/knowledge.so" \
    "plugins: loaded session_csv 1 from $tmp/plugins/session_csv.so" \
    "plugins: 3 loaded from $tmp/plugins"; do
    check "log: $want" grep -qF -- "$want" <<<"$log"
done

model_runs=2 # requests that run the model (and so become sessions)
body='{"messages":[{"role":"user","content":"How do I cap power at 10 W?"}]}'
resp=$(curl -s --max-time 60 "$api/v1/chat/completions" -H 'Content-Type: application/json' -d "$body")
echo "chat: ${resp:0:600}"
python3 - "$resp" <<'EOF' || fail "a chat response names the knowledge entries it used"
import json, sys
r = json.loads(sys.argv[1])
assert r["object"] == "chat.completion", r
src = r["sources"]
kb = [s for s in src if s["plugin"] == "knowledge"]
assert 1 <= len(kb) <= 2, src
assert all(s["id"] and s["title"] and s["score"] > 0 for s in kb), src
assert any(s["id"] == "probe:1" for s in src), src
assert "usage" in r and r["usage"]["prompt_tokens"] > 0
EOF
stream=$(curl -sN --max-time 60 "$api/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"stream":true,"messages":[{"role":"user","content":"What does ember kb import do?"}]}')
check "the streamed finish chunk carries sources" grep -q '"finish_reason":"[a-z]*"}\],"energy":{[^}]*},"sources":\[{"id":' <<<"$stream"

# The official openai npm client reads such a response as usual (the extra field is ignored, and
# still there for a client that wants it), when tests/node has it installed (scripts/setup).
if command -v node >/dev/null && [ -d "$src/tests/node/node_modules/openai" ]; then
    cat > "$tmp/client.js" <<'EOF'
const mod = require(process.env.OPENAI_MODULE);
const OpenAI = mod.default || mod.OpenAI || mod;
const client = new OpenAI({ baseURL: process.env.API + '/v1', apiKey: 'none', maxRetries: 0 });
client.chat.completions
  .create({ model: 'stories260K', messages: [{ role: 'user', content: 'How do I cap power at 10 W?' }] })
  .then((r) => {
    if (typeof r.choices[0].message.content !== 'string') throw new Error('no content');
    if (!Array.isArray(r.sources) || !r.sources.some((s) => s.plugin === 'knowledge'))
      throw new Error('no sources: ' + JSON.stringify(r));
    console.log('openai client: ok, ' + r.sources.length + ' sources');
  })
  .catch((e) => { console.error(e); process.exit(1); });
EOF
    model_runs=$((model_runs + 1))
    check "the openai npm client reads a response with sources" \
        env API="$api" OPENAI_MODULE="$src/tests/node/node_modules/openai" node "$tmp/client.js"
else
    echo "(the openai npm client check needs node and tests/node/node_modules: not run)"
fi

ping=$(curl -s --max-time 60 "$api/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"!ping"}]}')
echo "ping: $ping"
python3 - "$ping" <<'EOF' || fail "a plugin answers directly, without the model"
import json, sys
r = json.loads(sys.argv[1])
assert r["choices"][0]["message"]["content"] == "pong", r
assert r["choices"][0]["finish_reason"] == "stop", r
assert r["usage"]["completion_tokens"] == 0 and r["usage"]["prompt_tokens"] == 0, r
EOF
check "the probe saw the question" grep -q '^before_request chat=1 n=1 query=How do I cap power at 10 W?$' "$tmp/probe.log"
check "the probe saw tokens" grep -q '^token first$' "$tmp/probe.log"
check "the probe saw sessions" wait_for 5 grep -q '^session prompt=[1-9][0-9]* gen=[1-9]' "$tmp/probe.log"
kill -TERM "$agent"
wait "$agent"
rc=$?
check "the agent stops cleanly (exit $rc)" test "$rc" = 0
check "plugins are shut down" grep -q '^shutdown tokens=[1-9]' "$tmp/probe.log"
check "session_csv wrote one line per model-run request" \
    test "$(grep -cE '^[0-9]+,[1-9][0-9]*,[1-9][0-9]*,[0-9.]+,(nan|-?[0-9.]+),' "$tmp/sessions.csv")" = "$model_runs"

# ---- 2. a plugin that crashes in a hook ----
write_conf "crash = before_request"
: > "$tmp/probe.log"
"$ember" agent --config "$tmp/ember.conf" > "$tmp/crash.log" 2>&1 &
agent=$!
pids+=($agent)
check "the agent serves before the crash" wait_for 30 curl -sf -o /dev/null "$api/health"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$api/v1/chat/completions" \
    -H 'Content-Type: application/json' -d "$body")
wait "$agent"
rc=$?
echo "the crashing agent: HTTP $code, exit status $rc"
check "the client gets no answer from the crashed agent (HTTP $code)" test "$code" = 000
check "the agent died (exit status $rc)" test "$rc" -ne 0
check "the crash is reported with the plugin, its file and the hook" \
    grep -qF "ember: fatal: plugin 'probe' ($tmp/plugins/probe.so) crashed with SIGSEGV in its before_request hook" "$tmp/crash.log"
check "the plugin did crash there" grep -q '^crashing in before_request$' "$tmp/probe.log"
marker="$tmp/state/plugin-crashed.probe"
check "the report says how to load it again" grep -qF "it is not loaded again until $marker is removed" "$tmp/crash.log"
check "the crash is remembered in $marker" grep -qx 'SIGSEGV in before_request' "$marker"

# ---- 2b. restarted (as systemd would), the agent serves without the plugin that crashed ----
"$ember" agent --config "$tmp/ember.conf" > "$tmp/after.log" 2>&1 &
agent=$!
pids+=($agent)
check "the restarted agent serves" wait_for 30 curl -sf -o /dev/null "$api/health"
check "... refusing the plugin that crashed, saying why and how to undo it" \
    grep -qF "plugins: $tmp/plugins/probe.so (probe) refused: it crashed (SIGSEGV in before_request) when it last ran; remove $marker to load it again" "$tmp/after.log"
resp=$(curl -s --max-time 60 "$api/v1/chat/completions" -H 'Content-Type: application/json' -d "$body")
check "... and answers the request that crashed it before" grep -q '"finish_reason":"length"' <<<"$resp"
kill -TERM "$agent"
wait "$agent"
check "the restarted agent stops cleanly" test $? = 0
rm -f "$marker"

# ---- 3. plugins load after the privilege drop (root only: [agent] user needs it) ----
if [ -n "$emulator" ]; then
    # as privsep_agent_e2e: qemu-user refuses to install the helper's seccomp filter
    echo "(phase 3, plugins after the privilege drop, does not run under $emulator)"
elif [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    # nobody must reach the plugins, the knowledge base and the probe's log
    chmod 755 "$tmp" "$tmp/plugins"
    cp "$kb" "$tmp/kb.db" && chmod 644 "$tmp/kb.db" "$tmp"/plugins/*.so
    kb="$tmp/kb.db"
    write_conf ""
    sed -i "s|^\[agent\]$|[agent]\nuser = nobody|" "$tmp/ember.conf"
    : > "$tmp/probe.log"
    : > "$tmp/sessions.csv"
    chmod 666 "$tmp/probe.log" "$tmp/sessions.csv"
    mkdir -p "$tmp/state" && chmod 777 "$tmp/state"
    "$ember" agent --config "$tmp/ember.conf" > "$tmp/drop.log" 2>&1 &
    agent=$!
    pids+=($agent)
    check "the agent serves as nobody with plugins" wait_for 30 curl -sf -o /dev/null "$api/health"
    nobody=$(id -u nobody)
    check "plugins run their init as nobody (uid $nobody), never as root" \
        grep -q "^init probe plugin.probe uid=$nobody\$" "$tmp/probe.log"
    check "the agent dropped to nobody before" grep -q "privilege separation: running as nobody" "$tmp/drop.log"
    check "the knowledge plugin loaded as nobody" grep -q "plugins: loaded knowledge" "$tmp/drop.log"
    kill -TERM "$agent"
    wait "$agent"
    check "the unprivileged agent stops cleanly" test $? = 0
else
    echo "(phase 3, plugins after the privilege drop, needs root and a 'nobody' user: not run)"
fi

e2e_finish
