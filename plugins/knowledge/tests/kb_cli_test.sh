#!/usr/bin/env bash
# `ember kb` as a user runs it: --help on every sub-command; import of Markdown and JSONL into a
# new database; a malformed JSONL line fails the whole command (exit 2) with FILE:LINE and
# nothing imported, from any of the files; query, eval and stats on what was imported; the
# database taken from [plugin.knowledge] database of --config.
# Usage: kb_cli_test.sh EMBER SOURCE_DIR
set -uo pipefail
ember=$1
src=$2
tmp=$(mktemp -d /tmp/ember-kb-cli.XXXXXX)
trap 'if [ "${keep:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi' EXIT
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; keep=1; fi
}

for sub in "" import query eval stats; do
    out=$("$ember" kb $sub --help 2>&1)
    check "ember kb $sub --help exits 0" test $? = 0
    check "ember kb $sub --help prints usage" grep -q "^usage: ember kb" <<<"$out"
done
"$ember" kb frobnicate > "$tmp/out" 2>&1
check "an unknown action is a usage error" test $? = 2
check "... named" grep -q "unknown action 'frobnicate'" "$tmp/out"

db="$tmp/kb.db"
cat > "$tmp/box.md" <<'EOF'
# Box

## Power cap

Set `power_cap_w` to keep the package under a number of watts.

## Fan

The fan turns on above `fan_on_c`.
EOF
cat > "$tmp/good.jsonl" <<'EOF'
{"type":"qa","id":"qa-reset","question":"How do I reset the box?","answer":"Hold the button for five seconds.","entities":["button"]}
{"type":"relation","subject":"button","predicate":"toggles","object":"power_cap_w"}
EOF
"$ember" kb import --db "$db" "$tmp/box.md" "$tmp/good.jsonl" > "$tmp/out" 2>&1
check "import of Markdown and JSONL succeeds" test $? = 0
check "import reports what it added" grep -q "^imported 3 passages, 1 Q&A pairs, 1 relations" "$tmp/out"
"$ember" kb stats --db "$db" > "$tmp/stats" 2>&1
check "stats: passages" grep -q "^passages   3$" "$tmp/stats"
check "stats: qa" grep -q "^qa         1$" "$tmp/stats"

# a bad line in the second file: nothing of either file is imported
cat > "$tmp/more.md" <<'EOF'
# More

## Extra

An extra section that must not arrive.
EOF
printf '%s\n%s\n%s\n' '{"type":"doc","id":"ok","text":"fine"}' '' '{"type":"doc","id":"bad","text":}' > "$tmp/bad.jsonl"
"$ember" kb import --db "$db" "$tmp/more.md" "$tmp/bad.jsonl" > "$tmp/out" 2>&1
check "a malformed JSONL line fails the import with exit 2" test $? = 2
check "... naming file and line" grep -qF "$tmp/bad.jsonl:3: not valid JSON" "$tmp/out"
check "... and saying nothing was imported" grep -q "nothing was imported" "$tmp/out"
"$ember" kb stats --db "$db" > "$tmp/stats2" 2>&1
check "nothing of either file arrived" cmp -s "$tmp/stats" "$tmp/stats2"
"$ember" kb import --db "$db" "$tmp/notes.txt" > "$tmp/out" 2>&1
check "an unknown format is refused" test $? = 2
check "... naming the extensions" grep -q "must end in .jsonl, .md or .markdown" "$tmp/out"

"$ember" kb query --db "$db" -k 1 "how do I cap power?" > "$tmp/q" 2>/dev/null
check "query finds the power cap section" grep -q "^1 .* box.md#power-cap  Box: Power cap" "$tmp/q"
"$ember" kb query --db "$db" -k 3 "what does the button do" > "$tmp/q" 2>/dev/null
check "query: the Q&A pair" grep -q "qa-reset" "$tmp/q"
check "query: the graph hop (button toggles power_cap_w)" grep -q "box.md#power-cap .*+graph" "$tmp/q"

printf '%s\n' '{"question":"how to cap power","expect":["box.md#power-cap"]}' \
    '{"question":"when does the fan run","expect":["box.md#fan"]}' \
    '{"question":"reset","expect":["nowhere.md"]}' > "$tmp/eval.jsonl"
"$ember" kb eval --db "$db" "$tmp/eval.jsonl" > "$tmp/e" 2>&1
check "eval passes without --min" test $? = 0
check "eval prints the hit rate" grep -q "^hit rate@3: 2/3 = 66.7%" "$tmp/e"
check "eval prints the miss" grep -q "^miss .*eval.jsonl:3  reset" "$tmp/e"
"$ember" kb eval --db "$db" --min 0.9 "$tmp/eval.jsonl" > "$tmp/e" 2>&1
check "eval --min 0.9 fails at 66.7%" test $? = 1

# the database from the configuration
printf '[plugin.knowledge]\ndatabase = %s\n' "$db" > "$tmp/ember.conf"
"$ember" kb stats --config "$tmp/ember.conf" > "$tmp/stats3" 2>&1
check "the database comes from [plugin.knowledge] database" cmp -s "$tmp/stats" "$tmp/stats3"
"$ember" kb stats --db "$tmp/none.db" > "$tmp/out" 2>&1
check "a missing database is a usage error" test $? = 2
check "... with a hint" grep -q "ember kb import --db" "$tmp/out"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
