#!/usr/bin/env bash
# The unit's exposure as `systemd-analyze security --offline=true` rates it (0 = locked down, 10
# = exposed) must be at most LIMIT. The number is parsed from the "Overall exposure level" line;
# the unit is checked as installed (nothing rewritten). Also proves the parse can fail: a copy
# with the sandboxing stripped must score above the limit.
# Usage: systemd_security.sh UNIT LIMIT
set -euo pipefail
unit=$1
limit=$2
command -v systemd-analyze >/dev/null || { echo "skip: systemd-analyze missing"; exit 77; }
score() { # score UNIT: prints the exposure number
    local out
    out=$(systemd-analyze security --no-pager --offline=true "$1" 2>&1 || true)
    printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p' |
        head -1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
got=$(score "$unit")
[ -n "$got" ] || { echo "no exposure level in systemd-analyze's output"; exit 1; }
echo "systemd-analyze security: $unit scores $got (limit $limit)"
failed=0
if ! awk -v s="$got" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
    echo "FAIL: exposure $got > $limit"
    systemd-analyze security --no-pager --offline=true "$unit" 2>&1 | grep '✗' || true
    failed=$((failed + 1))
fi
# The check can fail: without the sandboxing lines the same service scores worse than the limit.
grep -v -E '^(Protect|Private|Restrict|SystemCall|Capability|IPAddress|NoNew|Lock|Memory|UMask|RemoveIPC)' \
    "$unit" > "$tmp/ember.service"
loose=$(score "$tmp/ember.service")
echo "without its sandboxing: $loose"
if [ -z "$loose" ] || awk -v s="$loose" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
    echo "FAIL: the stripped unit did not score above $limit (got '${loose}')"
    failed=$((failed + 1))
fi
echo "$((2 - failed)) passed, $failed failed"
exit "$failed"
