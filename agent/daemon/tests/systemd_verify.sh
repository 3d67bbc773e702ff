#!/usr/bin/env bash
# Runs systemd-analyze verify on systemd/ember.service with /usr/bin/ember pointed at the built
# binary (the unit is otherwise checked exactly as installed).
set -euo pipefail
unit_src=$1
ember=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/ember|$ember|g" "$unit_src" > "$tmp/ember.service"
# Messages about the host (no running systemd in a container) are not the unit's fault; anything
# else is, "Unknown key name ... ignoring" above all (issue 14: that used to be filtered away).
host_noise() {
    grep -v -e '^$' -e 'Failed to connect to bus' -e 'System has not been booted' \
        -e 'Cannot determine cgroup' -e 'org.freedesktop.DBus' || true
}
out=$(systemd-analyze verify "$tmp/ember.service" 2>&1 || true)
problems=$(printf '%s\n' "$out" | host_noise)
if [ -n "$problems" ]; then
    printf 'systemd-analyze verify reported:\n%s\n' "$problems"
    exit 1
fi
# The check can see a bad unit: an unknown key must come through the filter.
sed 's/^\[Service\]$/[Service]\nNoSuchKey=1/' "$tmp/ember.service" > "$tmp/bad.service"
bad=$(systemd-analyze verify "$tmp/bad.service" 2>&1 | host_noise)
if ! printf '%s\n' "$bad" | grep -q 'NoSuchKey'; then
    printf 'systemd-analyze verify did not report an unknown key through the filter:\n%s\n' "$bad"
    exit 1
fi
grep -q '^Type=notify' "$unit_src"
grep -q '^WatchdogSec=' "$unit_src"
grep -q '^ExecStopPost=/usr/bin/ember governor restore' "$unit_src"
grep -q '^ProtectSystem=strict' "$unit_src"
echo "2 passed, 0 failed"
