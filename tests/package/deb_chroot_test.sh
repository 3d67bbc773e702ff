#!/usr/bin/env bash
# Installs, upgrades, removes and purges the ember .deb with dpkg -i in a fresh Debian chroot and
# checks after each step: the files, the conffile (a local change survives the upgrade), the
# system group/user of systemd/ember.sysusers, the unit enabled, /var/lib/ember, that the
# installed binary finds its profiles in /usr/share/ember, that `ember config check` passes and
# that `ember run` on stories260K prints the reference text (../shared/vectors).
#
# usage: deb_chroot_test.sh [--arch ARCH] BUILD_DIR [CACHE_DIR]
#   Packages BUILD_DIR (scripts/package ARCH --build-dir) twice, as versions 0.0.0+t1-1 and
#   0.0.0+t2-1. ARCH is this machine's (amd64, the default) or arm64: then BUILD_DIR is a
#   cross-built tree (scripts/package arm64 leaves one in build/package/arm64-build) and the
#   chroot is an arm64 Debian whose programs (dpkg, the maintainer scripts, ember) run through
#   qemu-aarch64-static, which binfmt_misc starts for every aarch64 ELF executed. The test uses
#   an enabled aarch64 handler with the F flag if there is one, else registers its own for its
#   lifetime (mounting binfmt_misc if needed); it skips (77) only where binfmt_misc cannot be
#   mounted or written.
#   The chroot is debootstrapped once (minbase + the package's dependencies; for arm64 the
#   first stage here, the second stage under qemu) into CACHE_DIR/base-ARCH-KEY.tar (default
#   BUILD_DIR/chroot-cache; EMBER_CHROOT_CACHE overrides) and unpacked afresh on every run; it is
#   made again when the dependencies, suite or mirror change. Needs root, debootstrap and the
#   Debian mirror (first run). Prints the time of each step.
set -euo pipefail
native=$(dpkg --print-architecture)
arch=$native
if [ "${1:-}" = --arch ]; then
    arch=${2:-}
    shift 2 || true
fi
[ $# -ge 1 ] || { echo "usage: $0 [--arch amd64|arm64] BUILD_DIR [CACHE_DIR]" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
cache=${2:-${EMBER_CHROOT_CACHE:-$build/chroot-cache}}
suite=${EMBER_CHROOT_SUITE:-bookworm}
mirror=${EMBER_CHROOT_MIRROR:-http://deb.debian.org/debian}
shared=${EMBER_SHARED_DIR:-$top/../shared}
model="$shared/models/stories260K.gguf"
vectors="$shared/vectors/stories260K.json"
foreign=0
case "$arch" in
"$native") ;;
arm64) foreign=1; qemu_static=/usr/bin/qemu-aarch64-static ;;
*) echo "deb_chroot: architecture '$arch' is neither this machine's ($native) nor arm64" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: deb_chroot needs root (chroot, mount, dpkg)"
    exit 77
fi
for tool in debootstrap dpkg-deb lintian help2man python3; do
    command -v "$tool" >/dev/null || { echo "deb_chroot: $tool is missing (run scripts/setup)" >&2; exit 1; }
done
if [ "$foreign" = 1 ] && [ ! -x "$qemu_static" ]; then
    echo "deb_chroot: $qemu_static is missing (qemu-user-static; run scripts/setup --arm64)" >&2
    exit 1
fi
[ -f "$model" ] && [ -f "$vectors" ] || { echo "deb_chroot: $model or $vectors missing" >&2; exit 1; }

t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }
fail() { echo "deb_chroot: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ember-deb-chroot.XXXXXX")
root="$work/root"
binfmt=/proc/sys/fs/binfmt_misc
binfmt_ours="" # the binfmt_misc entry this run registered, removed on exit
cleanup() {
    local r m
    for r in "$root" "$work/boot"; do
        for m in sys proc dev/pts dev; do
            if mountpoint -q "$r/$m" 2>/dev/null; then umount -l "$r/$m"; fi
        done
    done
    if [ -n "$binfmt_ours" ] && [ -e "$binfmt/$binfmt_ours" ]; then
        echo -1 >"$binfmt/$binfmt_ours"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# binfmt_misc runs every aarch64 ELF that the chroot's programs execute through qemu. The
# handler needs the F flag (binfmt_misc opens the interpreter when it is registered), as the
# chroot holds no qemu of its own. Debian's qemu-user-static describes the handler in
# /usr/lib/binfmt.d/qemu-aarch64.conf (magic and mask); systemd-binfmt or binfmt-support
# register it at boot where they run. If no enabled one with F is registered, this run
# registers its own, named after its pid, and removes it on exit (and ones left by runs that
# were killed).
setup_binfmt() {
    local e conf line magic mask
    if ! mountpoint -q "$binfmt"; then
        if ! mount -t binfmt_misc binfmt_misc "$binfmt" 2>"$work/binfmt.err"; then
            echo "SKIP: binfmt_misc is not mounted and cannot be mounted here ($(cat "$work/binfmt.err")):" \
                "the arm64 chroot's programs cannot run through qemu"
            exit 77
        fi
    fi
    grep -qx enabled "$binfmt/status" || { echo "SKIP: binfmt_misc is disabled ($binfmt/status)"; exit 77; }
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || fail "$conf missing (qemu-user-static)"
    line=$(grep -v '^#' "$conf" | head -n 1)
    IFS=: read -r _ _ _ _ magic mask _ <<<"$line"
    # (the file writes magic and mask as \xNN escapes; /proc shows them as plain hex)
    local hex_magic hex_mask
    hex_magic=$(printf '%s' "$magic" | sed 's/\\x//g')
    hex_mask=$(printf '%s' "$mask" | sed 's/\\x//g')
    for e in "$binfmt"/*; do
        case "${e##*/}" in register | status) continue ;; esac
        if grep -qx enabled "$e" 2>/dev/null && grep -q '^flags: .*F' "$e" &&
            grep -qx "magic $hex_magic" "$e" && grep -qx "mask $hex_mask" "$e"; then
            echo "   binfmt_misc: using the registered handler ${e##*/} ($(sed -n 's/^interpreter //p' "$e"))"
            return 0
        fi
    done
    for e in "$binfmt"/ember-aarch64-*; do
        [ -e "$e" ] || continue
        kill -0 "${e##*-}" 2>/dev/null || echo -1 >"$e"
    done
    binfmt_ours="ember-aarch64-$$"
    if ! printf ':%s:M::%s:%s:%s:F' "$binfmt_ours" "$magic" "$mask" "$qemu_static" >"$binfmt/register" 2>"$work/binfmt.err"; then
        binfmt_ours=""
        echo "SKIP: cannot register a binfmt_misc handler ($(cat "$work/binfmt.err")):" \
            "the arm64 chroot's programs cannot run through qemu"
        exit 77
    fi
    echo "   binfmt_misc: registered $binfmt_ours -> $qemu_static (removed on exit)"
}
if [ "$foreign" = 1 ]; then
    step "binfmt_misc handler for aarch64"
    setup_binfmt
fi

step "package $build ($arch) as two versions"
# (lintian checks the first; the second differs only in its version)
lint=()
for v in 0.0.0+t1-1 0.0.0+t2-1; do
    "$top/scripts/package" "$arch" --build-dir "$build" --version "$v" --out "$work/debs" "${lint[@]}" >"$work/package-$v.log" 2>&1 ||
        { cat "$work/package-$v.log" >&2; fail "scripts/package (version $v) failed"; }
    lint=(--no-lintian)
done
deb1="$work/debs/ember_0.0.0+t1-1_$arch.deb"
deb2="$work/debs/ember_0.0.0+t2-1_$arch.deb"
grep -F 'lintian' "$work/package-0.0.0+t1-1.log" >/dev/null || fail "scripts/package did not run lintian"
[ "$(dpkg-deb -f "$deb1" Architecture)" = "$arch" ] || fail "$deb1 is not Architecture: $arch"

# The package's dependencies, first alternative of each, without versions: the base has them so
# that dpkg -i (which resolves nothing) can configure the package.
deps=$(dpkg-deb -f "$deb1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | sort -u | paste -sd, -)
key=$(printf '%s %s %s %s' "$arch" "$suite" "$mirror" "$deps" | sha256sum | cut -c1-16)
base="$cache/base-$arch-$key.tar"
mkdir -p "$cache"
if [ ! -f "$base" ]; then
    # (older runs named the tar base-KEY.tar, without the architecture)
    hex16=$(printf '[0-9a-f]%.0s' {1..16})
    rm -f "$cache/base-$arch-"*.tar "$cache"/base-$hex16.tar
    mkdir -p "$work/boot"
    if [ "$foreign" = 0 ]; then
        step "debootstrap $suite (minbase + $deps) into the cache"
        debootstrap --variant=minbase --include="$deps" "$suite" "$work/boot" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    else
        step "debootstrap --foreign --arch $arch $suite (minbase + $deps), first stage"
        debootstrap --foreign --arch="$arch" --variant=minbase --include="$deps" "$suite" "$work/boot" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap (first stage) failed"; }
        step "debootstrap second stage, under qemu"
        chroot "$work/boot" /debootstrap/debootstrap --second-stage >"$work/debootstrap2.log" 2>&1 ||
            { tail -30 "$work/debootstrap2.log" >&2; tail -30 "$work/boot/debootstrap/debootstrap.log" >&2 2>/dev/null
              fail "debootstrap (second stage, under qemu) failed"; }
        [ "$(chroot "$work/boot" dpkg --print-architecture)" = "$arch" ] || fail "the chroot's dpkg is not $arch"
    fi
    for m in sys proc; do
        if mountpoint -q "$work/boot/$m"; then umount -l "$work/boot/$m"; fi
    done
    rm -rf "$work/boot/var/cache/apt/archives/"*.deb
    tar -C "$work/boot" -cf "$base.tmp" .
    mv "$base.tmp" "$base"
    rm -rf "${work:?}/boot"
fi

step "unpack a fresh chroot from $base"
mkdir -p "$root"
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
cp "$deb1" "$deb2" "$model" "$root/tmp/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
if [ "$foreign" = 1 ]; then
    # Proof that the chroot runs arm64 code: its own uname answers aarch64 (qemu's view).
    [ "$(in_root uname -m)" = aarch64 ] || fail "the chroot's uname -m is not aarch64"
fi

# The first 50 greedy tokens from BOS: a prefix of the reference text of 200 tokens (one newline
# after it), and exactly 50 tokens generated.
check_run() {
    local what=$1
    in_root ember run -m /tmp/stories260K.gguf -n 50 --temp 0 --repeat-penalty 1 >"$work/run.out" 2>"$work/run.err" ||
        { cat "$work/run.err" >&2; fail "$what: ember run failed"; }
    grep -q 'generation: 50 tokens' "$work/run.err" || { cat "$work/run.err" >&2; fail "$what: ember run did not generate 50 tokens"; }
    python3 - "$vectors" "$work/run.out" <<'PY' || fail "$what: ember run did not print the reference text"
import json, sys
ref = json.load(open(sys.argv[1]))["models"]["F32"]["bos_greedy"]["text"]
out = open(sys.argv[2], encoding="utf-8").read()
ok = out.endswith("\n") and len(out) > 100 and ref.startswith(out[:-1])
print(("   " if ok else "got:  ") + repr(out[:90]) + ("..." if len(out) > 90 else ""))
if not ok:
    print("want: " + repr(ref[:90]) + "...")
sys.exit(0 if ok else 1)
PY
}

check_installed() {
    local what=$1 f
    for f in /usr/bin/ember /etc/ember/ember.conf /lib/systemd/system/ember.service \
        /usr/lib/sysusers.d/ember.conf /usr/lib/tmpfiles.d/ember.conf \
        /usr/share/ember/profiles/rk3588.json /usr/share/ember/profiles/n100.json \
        /usr/share/ember/profiles/ryzen.json /usr/share/man/man1/ember.1.gz \
        /usr/share/doc/ember/copyright; do
        [ -f "$root$f" ] || fail "$what: $f missing"
    done
    [ -d "$root/var/lib/ember" ] || fail "$what: /var/lib/ember missing"
    [ "$(stat -c %a "$root/var/lib/ember")" = 750 ] || fail "$what: /var/lib/ember is not 0750"
    in_root dpkg-query -W -f='${Conffiles}\n' ember | grep -q '^ /etc/ember/ember.conf ' ||
        fail "$what: /etc/ember/ember.conf is not a conffile"
    # Every user and group systemd/ember.sysusers names exists.
    local type name
    while read -r type name _; do
        case "$type" in
        u) in_root getent passwd "$name" >/dev/null || fail "$what: user $name missing" ;;
        g) in_root getent group "$name" >/dev/null || fail "$what: group $name missing" ;;
        '' | '#'*) ;;
        esac
    done <"$top/systemd/ember.sysusers"
    [ -L "$root/etc/systemd/system/multi-user.target.wants/ember.service" ] ||
        fail "$what: ember.service is not enabled"
    in_root ember config check /etc/ember/ember.conf >"$work/check.out" 2>&1 ||
        { cat "$work/check.out" >&2; fail "$what: ember config check failed"; }
    # The installed binary finds the built-in profiles in /usr/share/ember, not in a source tree.
    in_root ember governor sim --help | grep -q 'read from /usr/share/ember/profiles' ||
        fail "$what: ember governor sim does not read its profiles from /usr/share/ember/profiles"
    in_root ember governor sim --profile n100 --policy performance --duration 20 >"$work/sim.out" 2>&1 ||
        { cat "$work/sim.out" >&2; fail "$what: ember governor sim --profile n100 failed"; }
    check_run "$what"
    echo "   $what: files, conffile, sysusers entries, unit enabled, config check, profiles, ember run: ok"
}

step "dpkg -i $(basename "$deb1") (install)"
in_root dpkg -i "/tmp/$(basename "$deb1")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
check_installed install
[ "$(in_root dpkg-query -W -f='${Version}' ember)" = 0.0.0+t1-1 ] || fail "version after install"

# A local change to the conffile and some state: the upgrade keeps both.
sed -i 's/^log_level = info$/log_level = debug/' "$root/etc/ember/ember.conf"
grep -q '^log_level = debug$' "$root/etc/ember/ember.conf" || fail "could not edit the conffile"
echo state >"$root/var/lib/ember/marker"

step "dpkg -i $(basename "$deb2") (upgrade)"
in_root dpkg -i --force-confold "/tmp/$(basename "$deb2")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "upgrade failed"; }
check_installed upgrade
[ "$(in_root dpkg-query -W -f='${Version}' ember)" = 0.0.0+t2-1 ] || fail "version after upgrade"
grep -q '^log_level = debug$' "$root/etc/ember/ember.conf" || fail "upgrade lost the local conffile change"
[ -f "$root/var/lib/ember/marker" ] || fail "upgrade lost /var/lib/ember"
in_root ember config dump --config /etc/ember/ember.conf 2>/dev/null | grep -q '^log_level = debug' ||
    fail "the upgraded binary does not read the kept conffile"

step "dpkg -r ember (remove)"
in_root dpkg -r ember >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r failed"; }
[ ! -e "$root/usr/bin/ember" ] || fail "remove left /usr/bin/ember"
[ -f "$root/etc/ember/ember.conf" ] || fail "remove deleted the conffile (only purge may)"
[ "$(in_root dpkg-query -W -f='${Status}' ember)" = "deinstall ok config-files" ] || fail "status after remove"

step "dpkg -P ember (purge)"
in_root dpkg -P ember >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P failed"; }
for f in /etc/ember /var/lib/ember /lib/systemd/system/ember.service /usr/share/ember \
    /etc/systemd/system/multi-user.target.wants/ember.service; do
    [ ! -e "$root$f" ] || fail "purge left $f"
done
if in_root dpkg-query -W ember >/dev/null 2>&1; then fail "dpkg still knows ember after purge"; fi

step "reinstall after purge"
in_root dpkg -i "/tmp/$(basename "$deb2")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "reinstall failed"; }
check_installed reinstall

echo "deb_chroot: $arch: install, upgrade, remove, purge, reinstall passed in $((SECONDS - t0)) s"
