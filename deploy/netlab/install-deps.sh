#!/usr/bin/env bash
# Installs what the network-namespace lab needs (Debian 12, as root).
#   iproute2  ip netns, veth, tc tbf, ip mptcp
#   nftables  NAT (masquerade random,fully-random), loss, blackhole
#   iptables  NFQUEUE in the raw table (this kernel has xt_NFQUEUE but no nft queue)
#   conntrack flush a router's NAT bindings (netlab.sh rebind)
#   ethtool   turn off TSO/GSO/GRO on the veths
#   python3   delayq.py (standard library only)
#   iperf3    rate checks; mptcpize (its own package in Debian 12, not in mptcpd) for MPTCP
#   iputils-ping, procps (sysctl)
set -euo pipefail

need=(iproute2 nftables iptables conntrack ethtool python3 iperf3 mptcpize iputils-ping procps)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: all present (${need[*]})"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iperf3's postinst asks whether to start a daemon; the answer is no.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}"
