#!/usr/bin/env bash
# Installs what the tests need on Debian 12 (as root) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libsystemd-dev tshark libusrsctp-examples libusrsctp-dev curl nftables iproute2)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

swift build --build-tests
swift test --skip-build --parallel
