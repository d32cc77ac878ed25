#!/usr/bin/env bash
# The Debian package, built and checked the way a user installs it:
#   Tests/Package/package-test.sh [DEB]       (as root; builds the package with scripts/package.sh unless given one)
# 1. Lists the package and checks that every file it must hold is there, with the right modes and conffiles.
# 2. Extracts it into a scratch directory and runs aggserver --version, aggserver keygen and both check-configs
#    from there in a clean environment (PATH=/usr/bin:/bin, no LD_LIBRARY_PATH): ldd shows no libswift*, no
#    libsystemd and nothing missing, so the binaries need no Swift toolchain.
# 3. Boots a container with systemd as PID 1 (systemd-nspawn on an overlay of this machine's root directory, so
#    nothing changes on the host; private network), and in it: dpkg -i, systemd-analyze verify of the installed
#    units, systemctl enable --now aggserver (Type=notify: it returns once the server sent READY=1), the metrics
#    endpoint, a client added with keygen --append and reload, aggclient started from its units with the installed
#    config, and dpkg --purge.
# Needs root, dpkg-dev (dpkg-shlibdeps), systemd-container (systemd-nspawn), curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

fail() {
    echo "package-test: FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || fail "run as root (dpkg-deb --root-owner-group is fine as anyone, but the container is not)"
for tool in dpkg-deb systemd-nspawn curl ldd; do
    command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install dpkg-dev systemd-container curl)"
done

work=$(mktemp -d /tmp/agg-package-test-XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

if [ $# -ge 1 ]; then
    deb=$1
else
    start=$SECONDS
    deb=$(scripts/package.sh --output "$work/out")
    echo "package-test: built $deb in $((SECONDS - start)) s"
fi
version=$(dpkg-deb --field "$deb" Version)
echo "package-test: agg $version, $(du -h "$deb" | cut -f1)"

# --- 1. What the package holds ---
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb" | tee "$work/contents"
for path in ./usr/bin/aggserver ./usr/bin/aggclient ./usr/bin/sctpcat \
    ./usr/lib/systemd/system/aggserver.service ./usr/lib/systemd/system/aggclient.service \
    ./usr/lib/systemd/system/aggclient.socket ./usr/lib/systemd/system/aggclient-http.socket \
    ./etc/agg/aggserver.toml ./etc/agg/aggclient.toml ./usr/lib/sysctl.d/30-agg.conf \
    ./usr/share/man/man1/aggserver.1.gz ./usr/share/man/man1/aggclient.1.gz ./usr/share/man/man1/sctpcat.1.gz \
    ./usr/share/doc/agg/DEPLOY.md.gz ./usr/share/doc/agg/examples/agg-router.nft; do
    grep -q " $path\$" "$work/contents" || fail "the package lacks $path"
done
grep -q '^-rwxr-xr-x root/root .* ./usr/bin/aggserver$' "$work/contents" || fail "aggserver is not root:root 755"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
[ "$(cat "$work/conffiles")" = "$(printf '/etc/agg/aggserver.toml\n/etc/agg/aggclient.toml')" ] \
    || fail "conffiles: $(cat "$work/conffiles")"
dpkg-deb --field "$deb" Depends | grep -q libc6 || fail "Depends does not name libc6"

# --- 2. The binaries alone, from a scratch directory ---
root=$work/root
dpkg-deb -x "$deb" "$root"
for binary in aggserver aggclient sctpcat; do
    libraries=$(ldd "$root/usr/bin/$binary")
    echo "$binary: $(awk '{print $1}' <<<"$libraries" | tr '\n' ' ')"
    ! grep -q 'libswift\|libFoundation\|lib_FoundationICU\|libdispatch' <<<"$libraries" \
        || fail "$binary needs the Swift runtime: $libraries"
    ! grep -q libsystemd <<<"$libraries" || fail "$binary links libsystemd: $libraries"
    ! grep -q 'not found' <<<"$libraries" || fail "$binary misses a library: $libraries"
done
clean=(env -i PATH=/usr/bin:/bin HOME=/nonexistent)
[ "$("${clean[@]}" "$root/usr/bin/aggserver" --version)" = "$version" ] || fail "aggserver --version is not $version"
[ "$("${clean[@]}" "$root/usr/bin/aggclient" --version)" = "$version" ] || fail "aggclient --version is not $version"
[ "$("${clean[@]}" "$root/usr/bin/sctpcat" --version)" = "$version" ] || fail "sctpcat --version is not $version"
"${clean[@]}" "$root/usr/bin/aggserver" keygen box -o "$work/client.key" 2>/dev/null
(umask 077 && : >"$work/server.keys")
"${clean[@]}" "$root/usr/bin/aggserver" check-config --config "$root/etc/agg/aggserver.toml" \
    --psk-file "$work/server.keys" | tee "$work/server-check" >/dev/null
grep -q '^# 0 client keys' "$work/server-check" || fail "aggserver check-config: $(cat "$work/server-check")"
"${clean[@]}" "$root/usr/bin/aggclient" check-config --config "$root/etc/agg/aggclient.toml" \
    --server 127.0.0.1:9899 --psk-file "$work/client.key" | tee "$work/client-check" >/dev/null
grep -q '^# key "box" from' "$work/client-check" || fail "aggclient check-config: $(cat "$work/client-check")"
# As installed, the client names no server: check-config says so and fails.
if "${clean[@]}" "$root/usr/bin/aggclient" check-config --config "$root/etc/agg/aggclient.toml" \
    --psk-file "$work/client.key" 2>"$work/no-server"; then
    fail "aggclient check-config accepted a config without a server"
fi
grep -q 'no server address' "$work/no-server" || fail "no-server error: $(cat "$work/no-server")"
echo "package-test: binaries run from the extracted package without the toolchain"

# --- 3. dpkg -i and systemctl enable --now aggserver under systemd ---
cp "$deb" "$work/agg.deb"
cat >"$work/inside.sh" <<'INSIDE'
#!/bin/sh
# Runs as a unit of the container's systemd; every step must work, the last line says PASS.
set -eux
export SYSTEMD_PAGER=
# Whatever fails, the daemons' own words end the log.
trap 'status=$?; if [ $status != 0 ]; then systemctl status --no-pager aggserver aggclient || true;
    journalctl --no-pager -o cat -u aggserver -u aggclient || true; fi' EXIT
dpkg -i /agg-test/agg.deb
test "$(stat -c '%a %U:%G' /etc/agg/server.keys)" = "640 root:aggserver"
systemd-analyze verify --man=no /usr/lib/systemd/system/aggserver.service /usr/lib/systemd/system/aggclient.service \
    /usr/lib/systemd/system/aggclient.socket /usr/lib/systemd/system/aggclient-http.socket
if systemctl is-enabled --quiet aggserver.service; then exit 1; fi  # installed, not enabled: the user does that
systemctl enable --now aggserver.service
systemctl is-active aggserver.service
systemctl show -p StatusText --value aggserver.service | grep -E 'listening on UDP|clients'
test "$(systemctl show -p Type --value aggserver.service)" = notify
main=$(systemctl show -p MainPID --value aggserver.service)
test "$(stat -c %U /proc/$main)" = aggserver
for i in $(seq 50); do curl -sf http://127.0.0.1:9100/metrics >/agg-test/metrics && break; sleep 0.2; done
grep '^agg_build_info{role="aggserver",version="'"$(aggserver --version)"'"} 1' /agg-test/metrics
journalctl -u aggserver.service --no-pager | grep 'no client keys'

# A client on the same box, from the installed units and config: added with keygen --append (as root, on the
# root:aggserver file) and a reload, no restart.
aggserver keygen box --append /etc/agg/server.keys -o /etc/agg/client.key
aggserver check-config | grep '^# 1 client key from /etc/agg/server.keys'
systemctl reload aggserver.service
sed -i 's|^#server = .*|server = ["127.0.0.1:9899"]|' /etc/agg/aggclient.toml
aggclient check-config
systemctl enable --now aggclient.socket aggclient-http.socket aggclient.service
systemctl is-active aggclient.service
up() {
    for i in $(seq 100); do
        systemctl show -p StatusText --value aggclient.service | grep -q "$1" && return 0
        sleep 0.2
    done
    return 1
}
up 'association up'
# The server may relay to loopback for the rest of the test: a config change, so a restart; the client follows.
sed -i 's|^#egress-allow = .*|egress-allow = ["127.0.0.0/8"]|' /etc/agg/aggserver.toml
systemctl restart aggserver.service
up 'association up'
aggclient status --once | tee /agg-test/status
grep '^association .* ready, key box' /agg-test/status
curl -sf http://127.0.0.1:9100/metrics | grep 'agg_association_streams{.*client="box"'
# Through both socket units' listeners, the client and the server, to the server's own metrics endpoint.
curl -sSf --max-time 10 -x socks5h://127.0.0.1:1080 -o /agg-test/via-socks http://127.0.0.1:9100/metrics
grep '^agg_build_info' /agg-test/via-socks
curl -sSf --max-time 10 -x http://127.0.0.1:8080 -o /agg-test/via-http http://127.0.0.1:9100/metrics
grep '^agg_build_info' /agg-test/via-http
# Revocation: the client's line deleted and a reload end its association at once (the server reads the file).
sed -i '/^box /d' /etc/agg/server.keys
systemctl reload aggserver.service
up 'association down'

dpkg --purge agg
test ! -e /usr/lib/systemd/system/aggserver.service && test ! -e /etc/agg
if systemctl is-active --quiet aggserver.service; then exit 1; fi
echo PASS
INSIDE
chmod 755 "$work/inside.sh"

container=$work/container
mkdir "$container"
cat >"$work/boot.sh" <<BOOT
#!/bin/sh
# In a private mount namespace: the overlay and everything under it vanish with it.
set -eu
mount -t tmpfs tmpfs "$container"
mkdir "$container/upper" "$container/work" "$container/merged"
mount -t overlay overlay -o lowerdir=/,upperdir="$container/upper",workdir="$container/work" "$container/merged"
m="$container/merged"
# This machine's own agg, if any, must not be what the test finds.
rm -rf "\$m/etc/agg" "\$m/usr/bin/aggserver" "\$m/usr/bin/aggclient" "\$m/usr/local/bin/aggserver" \
    "\$m/usr/local/bin/aggclient" "\$m/etc/systemd/system/aggserver.service" "\$m/etc/systemd/system/aggclient.service"
mkdir -p "\$m/agg-test"
cat >"\$m/etc/systemd/system/agg-test.target" <<'UNIT'
[Unit]
Description=agg package test
Requires=agg-test.service
After=agg-test.service
UNIT
cat >"\$m/etc/systemd/system/agg-test.service" <<'UNIT'
[Unit]
Description=agg package test: dpkg -i, systemctl enable --now aggserver, a client, dpkg --purge
After=basic.target
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/sh -c '/agg-test/inside.sh >/agg-test/log 2>&1'
UNIT
exec systemd-nspawn --quiet --directory="\$m" --private-network --register=no --keep-unit --link-journal=no \
    --bind="$work:/agg-test" --boot -- systemd.unit=agg-test.target systemd.show_status=false
BOOT
chmod 755 "$work/boot.sh"
echo "package-test: booting a container with systemd"
timeout --kill-after=10 300 unshare --mount --propagation private "$work/boot.sh" >"$work/console" 2>&1 \
    || echo "package-test: the container exited with $?"
if ! grep -qx PASS "$work/log" 2>/dev/null; then
    echo "--- container console (tail) ---" >&2
    tail -40 "$work/console" >&2 || true
    echo "--- test log ---" >&2
    cat "$work/log" >&2 || true
    fail "the package did not install, start and purge under systemd"
fi
grep -E '^\+ (systemctl|dpkg|aggserver|aggclient)' "$work/log"
cat "$work/status"
echo "package-test: PASS: agg $version installs, starts under systemd, serves a client and purges"
