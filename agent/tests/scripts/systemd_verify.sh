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
out=$(systemd-analyze verify "$tmp/ember.service" 2>&1 || true)
# Messages about the host (no running systemd in a container) are not the unit's fault.
problems=$(printf '%s\n' "$out" | grep -v -e '^$' -e 'Failed to connect' -e 'System has not been booted' \
    -e 'Cannot determine' -e 'ignoring' -e 'Failed to load' -e 'dbus' || true)
if [ -n "$problems" ]; then
    printf 'systemd-analyze verify reported:\n%s\n' "$problems"
    exit 1
fi
grep -q '^Type=notify' "$unit_src"
grep -q '^WatchdogSec=' "$unit_src"
grep -q '^ExecStopPost=/usr/bin/ember governor restore' "$unit_src"
grep -q '^ProtectSystem=strict' "$unit_src"
echo "1 passed, 0 failed"
