#!/usr/bin/env bash
# netlab.sh: two paths, each behind its own port-randomising NAT, between a client and a server namespace.
#
#   agg-c  c1 10.1.0.2/24 ── r1i 10.1.0.1 [agg-r1 NAT] r1o 203.0.113.2/30 ── s1 203.0.113.1/30 + S1 198.51.100.1/32
#          c2 10.2.0.2/24 ── r2i 10.2.0.1 [agg-r2 NAT] r2o 203.0.113.6/30 ── s2 203.0.113.5/30 + S2 198.51.100.2/32  agg-s
#
# See README.md beside this file. Run as root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=/run/agg-netlab
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

C1=10.1.0.2 R1I=10.1.0.1 N1=203.0.113.2 T1=203.0.113.1 S1=198.51.100.1
C2=10.2.0.2 R2I=10.2.0.1 N2=203.0.113.6 T2=203.0.113.5 S2=198.51.100.2
NAMESPACES=(agg-c agg-r1 agg-r2 agg-s)

usage() {
    cat <<EOF
usage: netlab.sh up [--rate1 MBIT] [--rate2 MBIT] [--delay1 MS] [--delay2 MS] [--loss1 PCT] [--loss2 PCT]
       netlab.sh down | status
       netlab.sh exec c|s|r1|r2 CMD...
       netlab.sh blackhole 1|2 | restore 1|2 | rebind 1|2
       netlab.sh rate 1|2 MBIT
rates in Mbit/s (0 = unshaped), delays one way in ms (so RTT = 2 x delay), loss in percent each way.
addresses: C1=$C1 C2=$C2  N1=$N1 N2=$N2  S1=$S1 S2=$S2
EOF
}

die() { echo "netlab: $*" >&2; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_of() {
    case $1 in
        c | s | r1 | r2) echo "agg-$1" ;;
        agg-c | agg-s | agg-r1 | agg-r2) echo "$1" ;;
        *) die "unknown namespace '$1' (c, s, r1 or r2)" ;;
    esac
}
path_arg() { [[ ${1:-} == 1 || ${1:-} == 2 ]] || die "path must be 1 or 2"; echo "$1"; }
is_up() { ip netns list | grep -qw agg-c; }

# ---------------------------------------------------------------------------------------------------------------------
# up

veth() { # veth NS_A IF_A NS_B IF_B
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    local end
    for end in "$1/$2" "$3/$4"; do
        in_ns "${end%/*}" ip link set "${end#*/}" up
        # Every packet a real MTU-sized packet: no TSO/GSO super-packets on send, no GRO merging on receive.
        in_ns "${end%/*}" ethtool -K "${end#*/}" tso off gso off gro off >/dev/null
    done
}

ns_sysctls() { # common per-namespace settings
    local ns=$1
    in_ns "$ns" ip link set lo up
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    # net.core.rmem_max/wmem_max are global (a namespace may not write them): raised once in cmd_up.
    in_ns "$ns" sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432" net.ipv4.tcp_wmem="4096 65536 33554432"
    in_ns "$ns" sysctl -qw net.ipv4.udp_rmem_min=16384 2>/dev/null || true
    # The same congestion control everywhere (this kernel defaults to bbr); NETLAB_CC=bbr to change it.
    in_ns "$ns" sysctl -qw net.ipv4.tcp_congestion_control="${NETLAB_CC:-cubic}"
}

shape() { # shape NS IFACE MBIT DELAY_MS: tbf, queue of one bandwidth-delay product (at least 50 ms)
    local ns=$1 dev=$2 mbit=$3 delay=$4
    [[ $mbit == 0 ]] && return 0
    "$PYTHON" - "$mbit" "$delay" <<'EOF' >"$STATE/tbf.$dev"
import sys
mbit, delay = float(sys.argv[1]), float(sys.argv[2])
rate_bytes = mbit * 1e6 / 8
burst = max(16 * 1514, int(rate_bytes * 0.002))           # 2 ms of tokens, at least 16 packets
limit = max(int(rate_bytes * max(0.05, 2 * delay / 1000)), 4 * burst)
print(f"rate {mbit}mbit burst {burst} limit {limit}")
EOF
    # shellcheck disable=SC2046
    in_ns "$ns" tc qdisc replace dev "$dev" root tbf $(cat "$STATE/tbf.$dev")
}

router() { # router N INSIDE_IF OUTSIDE_IF INSIDE_ADDR OUTSIDE_ADDR GATEWAY LOSS DELAY RATE
    local n=$1 in=$2 out=$3 inaddr=$4 outaddr=$5 gw=$6 loss=$7 delay=$8 rate=$9 ns=agg-r$1
    in_ns "$ns" ip addr add "$inaddr/24" dev "$in"
    in_ns "$ns" ip addr add "$outaddr/30" dev "$out"
    in_ns "$ns" ip route add default via "$gw" dev "$out"
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
    local lossrule=""
    [[ $loss != 0 ]] && lossrule="numgen random mod 100 < $loss drop comment \"loss\""
    in_ns "$ns" nft -f - <<EOF
table ip agglab {
    # Symmetric NAT as a carrier-grade NAT does it: every new flow gets a random source port.
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$out" masquerade random,fully-random
    }
    # A home router: nothing new comes in from outside, to the router or through it.
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "$out" ct state new,invalid icmp type != echo-request drop
        iifname "$out" ct state new,invalid ip protocol != icmp drop
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        jump blackhole
        iifname "$out" ct state new,invalid drop
        $lossrule
    }
    # netlab.sh blackhole N puts one drop rule here; restore N flushes it.
    chain blackhole {
    }
}
EOF
    if [[ $delay != 0 ]]; then
        # raw PREROUTING (priority -300) runs before conntrack and NAT. No --queue-bypass: without delayq the
        # packets are dropped, never passed undelayed.
        in_ns "$ns" iptables -t raw -A PREROUTING -i "$in" -j NFQUEUE --queue-num "$n"
        in_ns "$ns" iptables -t raw -A PREROUTING -i "$out" -j NFQUEUE --queue-num "$n"
        # On a shaped path delayq runs SCHED_FIFO: on a busy machine it keeps the delay within ~0.3 ms instead of
        # ~2 ms. Unshaped (hundreds of thousands of packets/s) a real-time delayq starves the softirqs that feed
        # it, so there it stays at nice -10. NETLAB_DELAYQ_ARGS overrides either.
        local dqargs="--realtime 10"
        [[ $rate == 0 ]] && dqargs=""
        dqargs=${NETLAB_DELAYQ_ARGS-$dqargs}
        # shellcheck disable=SC2086 # $dqargs is zero or more words
        ip netns exec "$ns" setsid "$PYTHON" "$HERE/delayq.py" --queue "$n" --delay-ms "$delay" $dqargs \
            >"$STATE/delayq-r$n.log" 2>&1 </dev/null &
        echo $! >"$STATE/delayq-r$n.pid"
        for _ in $(seq 50); do
            grep -q bound "$STATE/delayq-r$n.log" 2>/dev/null && break
            kill -0 "$(cat "$STATE/delayq-r$n.pid")" 2>/dev/null || die "delayq r$n died: $(cat "$STATE/delayq-r$n.log")"
            sleep 0.1
        done
        grep -q bound "$STATE/delayq-r$n.log" || die "delayq r$n did not bind queue $n"
    fi
}

cmd_up() {
    local rate1=0 rate2=0 delay1=0 delay2=0 loss1=0 loss2=0
    while (($#)); do
        case $1 in
            --rate1) rate1=$2 ;; --rate2) rate2=$2 ;;
            --delay1) delay1=$2 ;; --delay2) delay2=$2 ;;
            --loss1) loss1=$2 ;; --loss2) loss2=$2 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift 2 || die "missing value for $1"
    done
    for v in "$rate1" "$rate2" "$delay1" "$delay2"; do
        [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "not a number: $v"
    done
    for v in "$loss1" "$loss2"; do
        if ! [[ $v =~ ^[0-9]+$ ]] || ((v > 100)); then die "loss must be a whole percentage: $v"; fi
    done
    is_up && cmd_down
    mkdir -p "$STATE"
    trap 'echo "netlab: up failed, tearing down" >&2; cmd_down' EXIT
    # A namespace may only pick a congestion control that the host allows: append ours (never removes one).
    local cc=${NETLAB_CC:-cubic} allowed
    allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
    [[ " $allowed " == *" $cc "* ]] || sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed $cc"
    # Socket buffer ceilings are global and only the host may set them: raise them to 64 MiB, never lower them.
    local key
    for key in net.core.rmem_max net.core.wmem_max; do
        (($(sysctl -n "$key") >= 67108864)) || sysctl -qw "$key=67108864"
    done
    for ns in "${NAMESPACES[@]}"; do
        ip netns add "$ns"
        ns_sysctls "$ns"
    done
    veth agg-c c1 agg-r1 r1i
    veth agg-c c2 agg-r2 r2i
    veth agg-r1 r1o agg-s s1
    veth agg-r2 r2o agg-s s2

    # Client: C1 and C2, each source address routed out of its own path whatever the destination.
    in_ns agg-c ip addr add "$C1/24" dev c1
    in_ns agg-c ip addr add "$C2/24" dev c2
    in_ns agg-c ip route add 10.1.0.0/24 dev c1 src "$C1" table 101
    in_ns agg-c ip route add default via "$R1I" dev c1 src "$C1" table 101
    in_ns agg-c ip route add 10.2.0.0/24 dev c2 src "$C2" table 102
    in_ns agg-c ip route add default via "$R2I" dev c2 src "$C2" table 102
    in_ns agg-c ip rule add from "$C1" lookup 101 priority 101
    in_ns agg-c ip rule add from "$C2" lookup 102 priority 102
    in_ns agg-c ip route add default via "$R1I" dev c1 src "$C1" # unbound sockets take path 1

    # Server: S1 and S2 as /32s, the transit links answered from them.
    in_ns agg-s ip addr add "$T1/30" dev s1
    in_ns agg-s ip addr add "$S1/32" dev s1
    in_ns agg-s ip addr add "$T2/30" dev s2
    in_ns agg-s ip addr add "$S2/32" dev s2
    in_ns agg-s ip route replace 203.0.113.0/30 dev s1 scope link src "$S1"
    in_ns agg-s ip route replace 203.0.113.4/30 dev s2 scope link src "$S2"

    router 1 r1i r1o "$R1I" "$N1" "$T1" "$loss1" "$delay1" "$rate1"
    router 2 r2i r2o "$R2I" "$N2" "$T2" "$loss2" "$delay2" "$rate2"
    shape agg-r1 r1i "$rate1" "$delay1"
    shape agg-r1 r1o "$rate1" "$delay1"
    shape agg-r2 r2i "$rate2" "$delay2"
    shape agg-r2 r2o "$rate2" "$delay2"
    cat >"$STATE/config" <<EOF
rate1=$rate1 rate2=$rate2 delay1=$delay1 delay2=$delay2 loss1=$loss1 loss2=$loss2
EOF
    trap - EXIT
    echo "netlab up: path 1 C1 $C1 -> N1 $N1 -> S1 $S1 (${rate1} Mbit/s, ${delay1} ms, ${loss1}% loss)"
    echo "           path 2 C2 $C2 -> N2 $N2 -> S2 $S2 (${rate2} Mbit/s, ${delay2} ms, ${loss2}% loss)"
}

# ---------------------------------------------------------------------------------------------------------------------
# down, status, exec, blackhole, restore, rebind, rate

cmd_down() {
    local f pid
    for f in "$STATE"/delayq-r*.pid; do
        [[ -e $f ]] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list | grep -qw "$ns"; then
            # End whatever still runs in the namespace (iperf3, agg binaries) before deleting it.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
            ip netns del "$ns"
        fi
    done
    rm -rf "$STATE"
}

cmd_status() {
    if ! is_up; then
        echo "netlab: down"
        return 1
    fi
    cat "$STATE/config" 2>/dev/null || true
    for ns in "${NAMESPACES[@]}"; do
        echo "== $ns"
        in_ns "$ns" ip -br addr show | grep -v '^lo'
    done
    for n in 1 2; do
        echo "== agg-r$n"
        in_ns "agg-r$n" tc -s qdisc show | grep -A2 tbf || true
        local bh="off"
        in_ns "agg-r$n" nft list chain ip agglab blackhole | grep -q drop && bh="ON"
        echo "blackhole: $bh"
        if [[ -e $STATE/delayq-r$n.pid ]]; then
            local pid
            pid=$(cat "$STATE/delayq-r$n.pid")
            if kill -0 "$pid" 2>/dev/null; then echo "delayq: pid $pid running"; else echo "delayq: DEAD (path fails closed)"; fi
        fi
        echo "conntrack entries: $(in_ns "agg-r$n" conntrack -C 2>/dev/null || echo '?')"
    done
}

cmd_exec() {
    (($# >= 2)) || die "usage: netlab.sh exec c|s|r1|r2 CMD..."
    local ns
    ns=$(ns_of "$1")
    shift
    exec ip netns exec "$ns" "$@"
}

cmd_blackhole() {
    local n
    n=$(path_arg "${1:-}")
    in_ns "agg-r$n" nft flush chain ip agglab blackhole
    in_ns "agg-r$n" nft add rule ip agglab blackhole drop
    echo "netlab: path $n blackholed"
}

cmd_restore() {
    local n
    n=$(path_arg "${1:-}")
    in_ns "agg-r$n" nft flush chain ip agglab blackhole
    echo "netlab: path $n restored"
}

cmd_rebind() {
    local n
    n=$(path_arg "${1:-}")
    # Forget every NAT binding: the next packet of each flow is new and gets a new random port.
    in_ns "agg-r$n" conntrack -F 2>/dev/null || true
    echo "netlab: path $n NAT bindings flushed"
}

cmd_rate() { # rate N MBIT: path N shaped to MBIT both ways from now on, its queue sized as by up
    local n mbit=${2:-} delay
    n=$(path_arg "${1:-}")
    [[ $mbit =~ ^[0-9]+([.][0-9]+)?$ && $mbit != 0 ]] || die "rate must be a positive number of Mbit/s, not '$mbit'"
    is_up || die "the lab is down"
    delay=$(sed -n "s/.*delay$n=\([0-9.]*\).*/\1/p" "$STATE/config")
    shape "agg-r$n" "r${n}i" "$mbit" "${delay:-0}"
    shape "agg-r$n" "r${n}o" "$mbit" "${delay:-0}"
    sed -i "s/rate$n=[0-9.]*/rate$n=$mbit/" "$STATE/config"
}

(($(id -u) == 0)) || die "run as root"
case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec) shift; cmd_exec "$@" ;;
    blackhole) shift; cmd_blackhole "$@" ;;
    restore) shift; cmd_restore "$@" ;;
    rebind) shift; cmd_rebind "$@" ;;
    rate) shift; cmd_rate "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
