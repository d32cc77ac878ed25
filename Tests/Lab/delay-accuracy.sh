#!/usr/bin/env bash
# delay-accuracy.sh: how close delayq's delay is to the one asked for, idle and with a full path, and how fast
# an unshaped but delayed path can go (delayq's packet rate is the limit there).
# For each one-way delay D in DELAYS (default "0 5 20 50 100" ms): brings path 1 up with --delay1 D at RATE Mbit/s
# (default 100; delayq runs SCHED_FIFO on a shaped path), pings C1 -> S1 100 times at 20 ms intervals and prints
# RTT min/avg/max/mdev next to 2 x D; then the same at 20 ms unshaped (delayq at nice -10). Then RTT on path 1 while
# iperf3 fills path 2 (RATE, 20 ms), and the TCP goodput of an unshaped 20 ms path 1. Tears down on exit. As root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/../../deploy/netlab" && pwd)/netlab.sh
DELAYS=${DELAYS:-"0 5 20 50 100"} RATE=${RATE:-100}
C1=10.1.0.2 C2=10.2.0.2 S1=198.51.100.1 S2=198.51.100.2
trap '"$LAB" down >/dev/null 2>&1' EXIT
(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }

rtt() { sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*|\1/\2/\3/\4|p'; }

echo "one-way delay | want RTT | ping RTT min/avg/max/mdev (ms), idle, 100 pings"
for d in $DELAYS unshaped; do
    if [[ $d == unshaped ]]; then d=20 rate=0; else rate=$RATE; fi
    "$LAB" up --delay1 "$d" --rate1 "$rate" >/dev/null || exit 1
    "$LAB" exec c ping -c 3 -i 0.2 -I "$C1" "$S1" >/dev/null 2>&1 # ARP and conntrack warm-up
    got=$("$LAB" exec c ping -q -n -c 100 -i 0.02 -I "$C1" "$S1" | rtt)
    printf "%8s ms | %5s ms | %s%s\n" "$d" "$((2 * d))" "$got" "$([[ $rate == 0 ]] && echo "  (unshaped: nice -10)")"
done

"$LAB" up --delay1 20 --delay2 20 --rate1 "$RATE" --rate2 "$RATE" >/dev/null || exit 1
"$LAB" exec s iperf3 -s -D -B "$S1" -p 5201 >/dev/null
"$LAB" exec s iperf3 -s -D -B "$S2" -p 5202 >/dev/null
sleep 0.5
"$LAB" exec c iperf3 -c "$S2" -B "$C2" -p 5202 -t 12 >/dev/null &
sleep 2
got=$("$LAB" exec c ping -q -n -c 200 -i 0.02 -I "$C1" "$S1" | rtt)
wait
echo "20 ms on path 1 while iperf3 fills path 2 ($RATE Mbit/s, 20 ms; its delayq runs beside): RTT $got ms"
"$LAB" up --delay1 20 >/dev/null || exit 1
"$LAB" exec s iperf3 -s -D -B "$S1" -p 5201 >/dev/null
sleep 0.5
"$LAB" exec c iperf3 -c "$S1" -B "$C1" -p 5201 -t 10 -O 2 | awk '/receiver/ { print "unshaped path 1 with 20 ms delay: TCP " $7 " " $8 " (delayq in both directions)" }'
