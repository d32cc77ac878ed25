#!/usr/bin/env bash
# Builds the Debian package of agg (a .deb for dpkg -i) and prints its path.
#   scripts/package.sh [--output DIR]
# Environment:
#   AGG_VERSION       the version (default: from `git describe --tags`, else 0.0~git<date>.<commit>)
#   SWIFT_SDK         cross-compile with this Swift SDK (e.g. aarch64-swift-linux-musl); see docs/DEPLOY.md
#   DEB_ARCH          the package's architecture (default: dpkg --print-architecture, or arm64 for an aarch64 SDK)
#   AGG_MAINTAINER    the Maintainer field (default: agg maintainers <agg-maintainers@users.noreply.github.com>)
#   SCRATCH           SwiftPM's build directory (default: .build-package)
#
# The package holds the release binaries with the Swift runtime linked in (--static-swift-stdlib: they need glibc
# and libstdc++, not the toolchain), the systemd units from deploy/systemd (ExecStart= pointing at /usr/bin), the
# commented example configs as /etc/agg/*.toml (conffiles), a sysctl.d drop-in for the 8 MiB socket buffers the
# daemons ask for, and a man page per command. The postinst creates the system user aggserver (the server's unit
# runs as it) and an empty /etc/agg/server.keys (root:aggserver 640) if there is none, so
# `dpkg -i agg_*.deb && systemctl enable --now aggserver` is a whole server install.
set -euo pipefail
cd "$(dirname "$0")/.."

output=artifacts
while [ $# -gt 0 ]; do
    case "$1" in
        --output) output=$2; shift 2 ;;
        *) echo "usage: $0 [--output DIR]" >&2; exit 2 ;;
    esac
done
scratch=${SCRATCH:-.build-package}
maintainer=${AGG_MAINTAINER:-agg maintainers <agg-maintainers@users.noreply.github.com>}

# A Debian version: v1.2.0 -> 1.2.0; v1.2.0-5-gabc1234 -> 1.2.0+5.gabc1234; no tag -> 0.0~git20261204.abc1234.
version=${AGG_VERSION:-}
if [ -z "$version" ]; then
    if described=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
        version=$(sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/' <<<"$described")
    elif commit=$(git rev-parse --short=7 HEAD 2>/dev/null); then
        version="0.0~git$(git show -s --format=%cd --date=format:%Y%m%d HEAD).$commit"
    else
        version="0.0~unknown"
    fi
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then version="$version+dirty"; fi
fi
if ! grep -Eq '^[0-9][A-Za-z0-9.+~]*$' <<<"$version"; then
    echo "package.sh: $version is not a Debian version (digits first, then letters, digits, . + ~)" >&2
    exit 2
fi

sdk_flags=()
if [ -n "${SWIFT_SDK:-}" ]; then
    sdk_flags=(--swift-sdk "$SWIFT_SDK")
    case "$SWIFT_SDK" in
        aarch64*) arch=${DEB_ARCH:-arm64} ;;
        x86_64*) arch=${DEB_ARCH:-amd64} ;;
        *) arch=${DEB_ARCH:?set DEB_ARCH for the SDK $SWIFT_SDK} ;;
    esac
else
    arch=${DEB_ARCH:-$(dpkg --print-architecture)}
fi

commands=(aggserver aggclient sctpcat)
echo "package.sh: building agg $version for $arch in $scratch" >&2
for product in "${commands[@]}"; do
    swift build -c release --static-swift-stdlib --scratch-path "$scratch" "${sdk_flags[@]}" \
        -Xcc "-DAGG_VERSION=\"$version\"" --product "$product" >&2
done
bin=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" "${sdk_flags[@]}" --show-bin-path)

root=$(mktemp -d "${TMPDIR:-/tmp}/agg-package-XXXXXX")
trap 'rm -rf "$root"' EXIT
pkg=$root/agg

# --- Files ---
install -d -m 755 "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" "$pkg/usr/lib/sysctl.d" "$pkg/etc/agg" \
    "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/agg" "$pkg/DEBIAN"
for command in "${commands[@]}"; do
    install -m 755 "$bin/$command" "$pkg/usr/bin/$command"
    # Symbols only: Swift's reflection metadata stays, so the binaries behave the same.
    if [ -z "${SWIFT_SDK:-}" ]; then strip --strip-unneeded "$pkg/usr/bin/$command"; fi
done
for unit in deploy/systemd/*.service deploy/systemd/*.socket; do
    sed 's|/usr/local/bin/|/usr/bin/|g' "$unit" >"$pkg/usr/lib/systemd/system/$(basename "$unit")"
    chmod 644 "$pkg/usr/lib/systemd/system/$(basename "$unit")"
done
install -m 644 deploy/config/aggserver.toml.example "$pkg/etc/agg/aggserver.toml"
install -m 644 deploy/config/aggclient.toml.example "$pkg/etc/agg/aggclient.toml"
cat >"$pkg/usr/lib/sysctl.d/30-agg.conf" <<'EOF'
# aggserver and aggclient ask for 8 MiB receive and send buffers on their UDP sockets (SCTPDriver's
# socketBufferSize); an unprivileged process gets at most these limits, 208 KiB on a stock kernel, which drops
# bursts on a fast path. A file of the same name in /etc/sysctl.d/ replaces this one; a later one (90-*.conf)
# overrides these values.
net.core.rmem_max = 8388608
net.core.wmem_max = 8388608
EOF
chmod 644 "$pkg/usr/lib/sysctl.d/30-agg.conf"
install -m 644 README.md docs/DEPLOY.md docs/OBSERVABILITY.md docs/SECURITY.md docs/PROTOCOL.md "$pkg/usr/share/doc/agg/"
gzip -9n "$pkg"/usr/share/doc/agg/*.md
# Router mode's nftables recipe (docs/DEPLOY.md, "Router mode"): an example to copy and edit, never loaded as is.
install -d -m 755 "$pkg/usr/share/doc/agg/examples"
install -m 644 deploy/nftables/agg-router.nft "$pkg/usr/share/doc/agg/examples/agg-router.nft"

# Man pages from the commands' own --help (swift-argument-parser's generate-manual, built from the checkout this
# build already fetched). Cross builds cannot run the binaries: they get the pages of a native build, if any.
if [ -z "${SWIFT_SDK:-}" ]; then
    swift build --package-path "$scratch/checkouts/swift-argument-parser" --scratch-path "$scratch/manual-tool" \
        --product generate-manual >&2
    for command in "${commands[@]}"; do
        "$scratch/manual-tool/debug/generate-manual" "$pkg/usr/bin/$command" \
            --date "$(git show -s --format=%cs HEAD 2>/dev/null || date +%F)" --section 1 \
            --authors "agg maintainers" --output-directory "$pkg/usr/share/man/man1" >&2
    done
    gzip -9n "$pkg"/usr/share/man/man1/*
fi

# --- Control ---
cat >"$pkg/DEBIAN/conffiles" <<'EOF'
/etc/agg/aggserver.toml
/etc/agg/aggclient.toml
EOF
# A musl SDK links everything in; a glibc cross build names the usual three without versions.
case "${SWIFT_SDK:-}" in
    *musl*) depends="" ;;
    *) depends="libc6, libgcc-s1, libstdc++6" ;;
esac
if [ -z "${SWIFT_SDK:-}" ] && command -v dpkg-shlibdeps >/dev/null; then
    # dpkg-shlibdeps wants a debian/control to read; it only needs the package's name.
    mkdir -p "$root/shlibs/debian"
    printf 'Source: agg\n\nPackage: agg\nArchitecture: any\n' >"$root/shlibs/debian/control"
    depends=$(cd "$root/shlibs" && dpkg-shlibdeps -O "${commands[@]/#/$pkg/usr/bin/}" 2>/dev/null \
        | sed -n 's/^shlibs:Depends=//p')
fi
{
    echo "Package: agg"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
    if [ -n "$depends" ]; then echo "Depends: $depends"; fi
    # Quoted: nothing in the description is expanded.
    cat <<'EOF'
Section: net
Priority: optional
Description: bonds several uplinks into one connection (SCTP over UDP, multipath)
 agg is a pair of proxies. aggclient runs on a box with two or more uplinks
 (LTE and Wi-Fi, two DSL lines), each behind its own NAT, and offers a SOCKS5
 and HTTP proxy; every connection becomes a stream of one SCTP association
 over UDP with Concurrent Multipath Transfer, so every uplink carries data at
 once. aggserver runs on a server with one or two public addresses and relays
 each stream to the internet. Datagrams are encrypted and authenticated with a
 per-client key.
 .
 A server install is this package, then "systemctl enable --now aggserver";
 add clients with "aggserver keygen NAME --append /etc/agg/server.keys
 -o NAME.key" and "systemctl reload aggserver".
 See /usr/share/doc/agg/DEPLOY.md.gz.
EOF
} >"$pkg/DEBIAN/control"
cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The system user aggserver.service runs as, the server's key file (root:aggserver 640, so that user reads it in
# place and re-reads it on reload; no key yet: every client is refused until one is added), the sysctl limits,
# and systemd told about the units. Nothing is enabled or started: `systemctl enable --now aggserver` does that.
set -e
if [ "$1" = configure ]; then
    if ! getent passwd aggserver >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "agg multipath aggregation server" aggserver
    fi
    if [ ! -e /etc/agg/server.keys ]; then
        (umask 077 && printf '%s\n' \
            '# aggserver key file: one "NAME HEX" line per client, root:aggserver mode 640. Add a client with' \
            '#   aggserver keygen NAME --append /etc/agg/server.keys -o NAME.key' \
            '# and copy NAME.key to the client as /etc/agg/client.key; then: systemctl reload aggserver' \
            >/etc/agg/server.keys)
        chgrp aggserver /etc/agg/server.keys
        chmod 640 /etc/agg/server.keys
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        systemctl restart systemd-sysctl.service || true
        # An upgrade restarts what was running, so the new binaries serve.
        if [ -n "$2" ]; then systemctl try-restart aggserver.service aggclient.service || true; fi
    else
        sysctl -q -p /usr/lib/sysctl.d/30-agg.conf 2>/dev/null || true
    fi
fi
exit 0
EOF
cat >"$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# On removal, stop and disable the services (their units are about to go).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now aggserver.service aggclient.service aggclient.socket aggclient-http.socket \
        >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# systemd forgets the removed units; a purge also deletes the keys the postinst or the user put in /etc/agg. The
# system user stays (Debian's habit: files it owned elsewhere would otherwise pass to a later user of its id).
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ]; then
    rm -f /etc/agg/server.keys /etc/agg/client.key
    rmdir /etc/agg 2>/dev/null || true
fi
exit 0
EOF
chmod 755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$output"
deb="$output/agg_${version}_${arch}.deb"
# zstd (dpkg 1.21.18 and later: Debian 12) packs the 200 MB of binaries in seconds; xz takes minutes.
dpkg-deb --root-owner-group -Zzstd --build "$pkg" "$deb" >&2
echo "$deb"
