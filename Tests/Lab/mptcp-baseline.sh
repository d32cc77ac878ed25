#!/usr/bin/env bash
# mptcp-baseline.sh: what Linux MPTCP gets out of the lab's two NATed paths, as the figure agg has to beat.
#
# Brings deploy/netlab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way, LOSS1/LOSS2 % each way; 20 and 30 Mbit/s,
# 10 ms, no loss by default),
# measures single-path TCP goodput on each path (iperf3 bound to C1 -> S1, then C2 -> S2), then MPTCP over both
# paths (iperf3 under mptcpize) in two variants:
#   A  server listens on S1 only: subflows C1->S1 (path 1) and C2->S1 (path 2, the client's "subflow" endpoint);
#      the server's ADD_ADDR of S2 arrives but the client's C1->S2 join is refused (nothing listens on S2).
#   B  server listens on every address: the ADD_ADDR of S2 also yields C1->S2, so path 1 carries two subflows.
# Prints the sum of single-path goodputs, each MPTCP goodput and the ratio, the subflows the kernel made, how the
# bytes split between them, and the NAT bindings each subflow got. Tears down on exit. Run as root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/../../deploy/netlab" && pwd)/netlab.sh
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-10} DELAY2=${DELAY2:-10} T=${DURATION:-15}
LOSS1=${LOSS1:-0} LOSS2=${LOSS2:-0}
C1=10.1.0.2 C2=10.2.0.2 S1=198.51.100.1 S2=198.51.100.2

WORK=$(mktemp -d)
cleanup() {
    [[ -n ${MONITOR_PID:-} ]] && kill "$MONITOR_PID" 2>/dev/null
    "$LAB" down >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
lab() { "$LAB" "$@"; }
mbit() { "$PYTHON" -c "import json,sys; print('%.2f' % (json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second']/1e6))" "$1" 2>/dev/null || echo 0; }
calc() { "$PYTHON" -c "print($1)"; }
wait_listen() { # wait_listen PORT
    for _ in $(seq 50); do
        lab exec s ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    return 1
}

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
command -v mptcpize >/dev/null || { echo "mptcpize missing: deploy/netlab/install-deps.sh" >&2; exit 1; }
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" --loss1 "$LOSS1" --loss2 "$LOSS2" || exit 1
echo "congestion control: client $(lab exec c sysctl -n net.ipv4.tcp_congestion_control)," \
    "server $(lab exec s sysctl -n net.ipv4.tcp_congestion_control); iperf3 -t $T -O 2"

# --- single-path TCP ---------------------------------------------------------------------------------------------
lab exec s iperf3 -s -D -B "$S1" -p 5201
lab exec s iperf3 -s -D -B "$S2" -p 5202
wait_listen 5201 && wait_listen 5202 || exit 1
lab exec c iperf3 -c "$S1" -B "$C1" -p 5201 -t "$T" -O 2 -J >"$WORK/single1.json"
lab exec c iperf3 -c "$S2" -B "$C2" -p 5202 -t "$T" -O 2 -J >"$WORK/single2.json"
single1=$(mbit "$WORK/single1.json") single2=$(mbit "$WORK/single2.json")
sum=$(calc "'%.2f' % ($single1 + $single2)")
echo "single path 1 (C1 -> S1): $single1 Mbit/s ($(calc "'%.1f' % (100 * $single1 / $RATE1)") % of $RATE1)"
echo "single path 2 (C2 -> S2): $single2 Mbit/s ($(calc "'%.1f' % (100 * $single2 / $RATE2)") % of $RATE2)"
echo "sum of single paths:      $sum Mbit/s"

# --- MPTCP: path managers on both ends ---------------------------------------------------------------------------
for ns in c s; do lab exec "$ns" ip mptcp limits set subflow 2 add_addr_accepted 2; done
lab exec c ip mptcp endpoint add "$C2" dev c2 subflow
lab exec s ip mptcp endpoint add "$S2" dev s2 signal
ip netns exec agg-c ip mptcp monitor >"$WORK/monitor" 2>&1 &
MONITOR_PID=$!

mptcp_run() { # mptcp_run NAME PORT BIND_ADDRESS
    local name=$1 port=$2 bind=$3
    ip netns exec agg-s mptcpize run iperf3 -s -1 -B "$bind" -p "$port" >"$WORK/server-$name.log" 2>&1 &
    local server=$!
    wait_listen "$port" || return 1
    ip netns exec agg-c mptcpize run iperf3 -c "$S1" -B "$C1" -p "$port" -t "$T" -O 2 -J >"$WORK/mptcp-$name.json" &
    local client=$!
    # Near the end of the run, how much each subflow has carried.
    sleep "$(calc "$T + 1.2")"
    lab exec c ss -Htni state established "( dport = :$port )" >"$WORK/ss-$name"
    wait "$client" "$server"
    local got
    got=$(mbit "$WORK/mptcp-$name.json")
    echo "MPTCP $name: $got Mbit/s, ratio to the sum of single paths $(calc "'%.3f' % ($got / $sum)")"
    "$PYTHON" - "$WORK/ss-$name" <<'EOF'
import re, sys
flows, total = [], 0
lines = open(sys.argv[1]).read().split("\n")
for head, info in zip(lines[::2], lines[1::2]):
    fields = head.split()
    acked = re.search(r"bytes_acked:(\d+)", info)
    acked = int(acked.group(1)) if acked else 0
    flows.append((fields[2].replace("%c2", "").replace("%c1", ""), fields[3], acked))
    total += acked
for local, peer, acked in flows:
    path = "path 1" if local.startswith("10.1.") else "path 2"
    share = 100 * acked / total if total else 0
    note = "  (iperf3's control connection)" if acked < 100000 else ""
    print("    subflow %-18s -> %-18s %s  %7.1f MB  %5.1f %%%s" % (local, peer, path, acked / 1e6, share, note))
EOF
}
mptcp_run "A (server on S1 only)" 5301 "$S1"
mptcp_a=$(mbit "$WORK/mptcp-A (server on S1 only).json")
mptcp_run "B (server on every address)" 5302 0.0.0.0
mptcp_b=$(mbit "$WORK/mptcp-B (server on every address).json")
sleep 0.5
kill "$MONITOR_PID" 2>/dev/null
MONITOR_PID=

echo "path manager events on the client (ip mptcp monitor):"
grep -E 'ANNOUNCED|SF_ESTABLISHED|SF_CLOSED' "$WORK/monitor" | sed 's/^/    /'
echo "NAT bindings of the subflows (conntrack on each router: original tuple, then reply tuple with the NAT port):"
for n in 1 2; do
    lab exec "r$n" conntrack -L -p tcp 2>/dev/null | grep -E 'dport=530[12] ' |
        sed -E 's/^tcp +[0-9]+ +[0-9]+ +//; s/ \[ASSURED\].*//; s/^/    r'"$n"': /'
done
echo
echo "SUMMARY rate1=$RATE1 rate2=$RATE2 delay1=$DELAY1 delay2=$DELAY2 loss1=$LOSS1 loss2=$LOSS2 single1=$single1 single2=$single2 sum=$sum" \
    "mptcpA=$mptcp_a ratioA=$(calc "'%.3f' % ($mptcp_a / $sum)") mptcpB=$mptcp_b ratioB=$(calc "'%.3f' % ($mptcp_b / $sum)")"
