#!/usr/bin/env bash
# Installs, upgrades, removes and purges the ember .deb with dpkg -i in a fresh Debian chroot and
# checks after each step: the files, the conffile (a local change survives the upgrade), the
# system group/user of systemd/ember.sysusers, the unit enabled, /var/lib/ember, that the
# installed binary finds its profiles in /usr/share/ember and that `ember config check` passes.
#
# usage: deb_chroot_test.sh BUILD_DIR [CACHE_DIR]
#   Packages BUILD_DIR (scripts/package --build-dir) twice, as versions 0.0.0+t1-1 and 0.0.0+t2-1.
#   The chroot is debootstrapped once (minbase + the package's dependencies) into
#   CACHE_DIR/base.tar (default BUILD_DIR/chroot-cache) and unpacked afresh on every run; it is made
#   again when the dependencies change. Needs root, debootstrap and the Debian mirror (first run).
#   Prints the time of each step.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [CACHE_DIR]" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
cache=${2:-$build/chroot-cache}
suite=${EMBER_CHROOT_SUITE:-bookworm}
mirror=${EMBER_CHROOT_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: deb_chroot needs root (chroot, mount, dpkg)"
    exit 77
fi
for tool in debootstrap dpkg-deb lintian help2man; do
    command -v "$tool" >/dev/null || { echo "deb_chroot: $tool is missing (run scripts/setup)" >&2; exit 1; }
done

t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }
fail() { echo "deb_chroot: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ember-deb-chroot.XXXXXX")
root="$work/root"
cleanup() {
    for m in proc dev/pts dev; do
        mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT

step "package $build as two versions"
for v in 0.0.0+t1-1 0.0.0+t2-1; do
    "$top/scripts/package" amd64 --build-dir "$build" --version "$v" --out "$work/debs" >"$work/package-$v.log" 2>&1 ||
        { cat "$work/package-$v.log" >&2; fail "scripts/package (version $v) failed"; }
done
deb1="$work/debs/ember_0.0.0+t1-1_amd64.deb"
deb2="$work/debs/ember_0.0.0+t2-1_amd64.deb"
grep -F 'lintian' "$work/package-0.0.0+t1-1.log" >/dev/null || fail "scripts/package did not run lintian"

# The package's dependencies, first alternative of each, without versions: the base has them so
# that dpkg -i (which resolves nothing) can configure the package.
deps=$(dpkg-deb -f "$deb1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | sort -u | paste -sd, -)
key=$(printf '%s %s %s' "$suite" "$mirror" "$deps" | sha256sum | cut -c1-16)
mkdir -p "$cache"
if [ ! -f "$cache/base-$key.tar" ]; then
    step "debootstrap $suite (minbase + $deps) into the cache"
    rm -f "$cache"/base-*.tar
    mkdir -p "$work/boot"
    debootstrap --variant=minbase --include="$deps" "$suite" "$work/boot" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    rm -rf "$work/boot/var/cache/apt/archives/"*.deb
    tar -C "$work/boot" -cf "$cache/base-$key.tar.tmp" .
    mv "$cache/base-$key.tar.tmp" "$cache/base-$key.tar"
    rm -rf "$work/boot"
fi

step "unpack a fresh chroot from $cache/base-$key.tar"
mkdir -p "$root"
tar -C "$root" -xf "$cache/base-$key.tar"
mount -t proc proc "$root/proc"
mkdir -p "$work/debs-in" && cp "$deb1" "$deb2" "$root/tmp/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

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
    echo "   $what: files, conffile, sysusers entries, unit enabled, config check, profiles: ok"
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

echo "deb_chroot: install, upgrade, remove, purge, reinstall passed in $((SECONDS - t0)) s"
