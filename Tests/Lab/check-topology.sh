#!/usr/bin/env bash
# check-topology.sh: brings deploy/netlab up and checks that it is the lab it claims to be: both paths connect,
# the server sees NATed sources with rewritten ports, each NAT drops new inbound flows, delay, rate and loss are
# what was configured, blackhole/restore and rebind work, and a dead delayq fails closed. Tears down on exit.
# Run as root. Prints PASS/FAIL lines; exits non-zero on any failure. About 60 s.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/../../deploy/netlab" && pwd)/netlab.sh
PROBE=$HERE/udpprobe.py
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-20} DELAY2=${DELAY2:-40}
C1=10.1.0.2 C2=10.2.0.2 N1=203.0.113.2 N2=203.0.113.6 S1=198.51.100.1 S2=198.51.100.2

WORK=$(mktemp -d)
failures=0 passes=0
pass() { echo "PASS $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { # check "what" CONDITION...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
cleanup() {
    [[ -n ${RECV_PID:-} ]] && kill "$RECV_PID" 2>/dev/null
    "$LAB" down >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
lab() { "$LAB" "$@"; }
float_between() { "$PYTHON" -c "import sys; sys.exit(0 if $2 <= $1 <= $3 else 1)"; }

(($(id -u) == 0)) || { echo "FAIL must run as root"; exit 1; }
"$LAB" up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" || { echo "FAIL netlab up"; exit 1; }

# --- connectivity, and delay as ping RTT: 2 x delay + a little ----------------------------------------------------
lab exec c ping -q -n -c 20 -i 0.2 -I "$C1" "$S1" >"$WORK/ping1" 2>&1 &
lab exec c ping -q -n -c 20 -i 0.2 -I "$C2" "$S2" >"$WORK/ping2" 2>&1 &
wait
for n in 1 2; do
    delay=$([[ $n == 1 ]] && echo "$DELAY1" || echo "$DELAY2")
    check "path $n connects (ping C$n -> S$n, no loss)" grep -q " 0% packet loss" "$WORK/ping$n"
    rtt=$(sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\1 \2 \3|p' "$WORK/ping$n")
    read -r rmin ravg rmax <<<"$rtt"
    want=$((2 * delay))
    # RTT = 2 x delay plus the lab's own sub-millisecond forwarding; allow 0.5 ms early, 3 ms or 5 % late.
    hi=$("$PYTHON" -c "print($want + max(3, 0.05 * $want))")
    if float_between "${ravg:-0}" "$want - 0.5" "$hi"; then
        pass "path $n delay: RTT min/avg/max $rmin/$ravg/$rmax ms for 2 x $delay ms"
    else
        fail "path $n delay: RTT min/avg/max ${rmin:-?}/${ravg:-?}/${rmax:-?} ms, want $want..$hi ms"
    fi
done

# --- NAT: the server sees N1/N2 with rewritten ports; each source address leaves by its own path ------------------
lab exec s "$PYTHON" "$PROBE" recv "$S1:9000" "$S2:9000" >"$WORK/udp" 2>&1 &
RECV_PID=$!
for _ in $(seq 50); do grep -q ready "$WORK/udp" && break; sleep 0.1; done
lab exec c "$PYTHON" "$PROBE" send "$C1:40001" "$S1:9000" c1-s1
lab exec c "$PYTHON" "$PROBE" send "$C2:40001" "$S2:9000" c2-s2
lab exec c "$PYTHON" "$PROBE" send "$C2:40002" "$S1:9000" c2-s1
lab exec c "$PYTHON" "$PROBE" send "$C1:40002" "$S2:9000" c1-s2
lab exec c "$PYTHON" "$PROBE" send "$C1:40001" "$S2:9000" c1-s2-same-port
sleep $(((DELAY2 * 2 + 500) / 1000 + 1))
seen() { awk -v p="$1" '$3 == p { print $2 }' "$WORK/udp" | head -1; }
for flow in "c1-s1 $N1 40001" "c2-s2 $N2 40001" "c2-s1 $N2 40002" "c1-s2 $N1 40002"; do
    read -r tag nat cport <<<"$flow"
    src=$(seen "$tag")
    if [[ ${src%:*} == "$nat" && -n ${src#*:} && ${src#*:} != "$cport" ]]; then
        pass "NAT $tag: server sees $src (client port $cport rewritten, address $nat)"
    else
        fail "NAT $tag: server sees '${src:-nothing}', want $nat with a port other than $cport"
    fi
done
a=$(seen c1-s1) b=$(seen c1-s2-same-port)
check "symmetric NAT: C1:40001 gets another port towards S2 ($a vs $b)" test -n "$a" -a -n "$b" -a "${a#*:}" != "${b#*:}"

# A home router drops new inbound flows: the server cannot open one towards the client.
lab exec c "$PYTHON" "$PROBE" recv "$C1:40100" >"$WORK/inbound" 2>&1 &
inbound_pid=$!
sleep 0.3
lab exec s "$PYTHON" "$PROBE" send "$S1:9001" "$N1:40100" unsolicited
sleep $(((DELAY1 * 2) / 1000 + 1))
kill "$inbound_pid" 2>/dev/null
check "NAT 1 drops a new inbound flow (S1 -> N1:40100 never reaches C1)" bash -c "! grep -q unsolicited '$WORK/inbound'"

# The NATs filter by address and port: an answer from S2 to the binding C1:40004 made towards S1 is dropped,
# the answer from S1 gets through.
lab exec c "$PYTHON" "$PROBE" ask "$C1:40004" "$S1:9000" ask-1 3 >"$WORK/ask" 2>&1 &
ask_pid=$!
for _ in $(seq 30); do [[ -n $(seen ask-1) ]] && break; sleep 0.1; done
binding=$(seen ask-1)
lab exec s "$PYTHON" "$PROBE" send "$S2:9000" "${binding:-$N1:1}" from-s2
lab exec s "$PYTHON" "$PROBE" send "$S1:9000" "${binding:-$N1:1}" from-s1
wait "$ask_pid"
check "NAT 1 passes the answer from S1:9000 to its binding ${binding:-?}" grep -q from-s1 "$WORK/ask"
check "NAT 1 drops an answer from S2:9000 to the same binding (address-dependent filtering)" \
    bash -c "! grep -q from-s2 '$WORK/ask'"

# --- rebind: after the router forgets its bindings, the same client socket appears on a new port -----------------
lab exec c "$PYTHON" "$PROBE" send "$C1:40003" "$S1:9000" before-1
lab exec c "$PYTHON" "$PROBE" send "$C1:40003" "$S1:9000" again-1
sleep 0.5
lab rebind 1 >/dev/null
lab exec c "$PYTHON" "$PROBE" send "$C1:40003" "$S1:9000" after-1
sleep 0.5
p0=$(seen before-1) p1=$(seen again-1) p2=$(seen after-1)
check "NAT 1 keeps a binding while it lives ($p0 then $p1)" test -n "$p0" -a "$p0" == "$p1"
check "rebind 1: new source port after the flush ($p0 -> $p2)" test -n "$p2" -a "${p2%:*}" == "$N1" -a "$p0" != "$p2"
kill "$RECV_PID" 2>/dev/null
RECV_PID=

# --- rate: TCP goodput about 95.6 % of the tbf rate (tbf counts Ethernet bytes: 1448 / 1514) ----------------------
lab exec s iperf3 -s -D -B "$S1" -p 5201 >/dev/null
lab exec s iperf3 -s -D -B "$S2" -p 5202 >/dev/null
sleep 0.5
for n in 1 2; do
    if [[ $n == 1 ]]; then rate=$RATE1 src=$C1 dst=$S1 port=5201; else rate=$RATE2 src=$C2 dst=$S2 port=5202; fi
    lab exec c iperf3 -c "$dst" -B "$src" -p "$port" -t 8 -O 2 -J >"$WORK/iperf$n.json" 2>&1
    got=$("$PYTHON" -c "import json,sys; print('%.2f' % (json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second']/1e6))" "$WORK/iperf$n.json" 2>/dev/null || echo 0)
    share=$("$PYTHON" -c "print('%.1f' % (100 * $got / $rate))")
    if float_between "$got" "0.90 * $rate" "1.0 * $rate"; then
        pass "path $n rate: TCP goodput $got Mbit/s = $share % of $rate Mbit/s"
    else
        fail "path $n rate: TCP goodput $got Mbit/s = $share % of $rate Mbit/s, want 90..100 %"
    fi
done

# --- blackhole and restore ----------------------------------------------------------------------------------------
lab blackhole 1 >/dev/null
check "blackhole 1: path 1 drops everything" bash -c "! '$LAB' exec c ping -q -c 3 -i 0.2 -W 1 -I $C1 $S1 >/dev/null"
check "blackhole 1: path 2 still works" "$LAB" exec c ping -q -c 2 -i 0.2 -W 1 -I "$C2" "$S2"
lab restore 1 >/dev/null
check "restore 1: path 1 works again" "$LAB" exec c ping -q -c 2 -i 0.2 -W 1 -I "$C1" "$S1"
lab blackhole 2 >/dev/null
check "blackhole 2: path 2 drops everything" bash -c "! '$LAB' exec c ping -q -c 3 -i 0.2 -W 1 -I $C2 $S2 >/dev/null"
lab restore 2 >/dev/null
check "restore 2: path 2 works again" "$LAB" exec c ping -q -c 2 -i 0.2 -W 1 -I "$C2" "$S2"

# --- delayq fails closed: without it path 1 is dead, not undelayed -----------------------------------------------
kill "$(cat /run/agg-netlab/delayq-r1.pid)"
sleep 0.3
check "delayq gone: path 1 fails closed" bash -c "! '$LAB' exec c ping -q -c 3 -i 0.2 -W 1 -I $C1 $S1 >/dev/null"

# --- loss: 20 % each way on path 1, so about 36 % of pings are lost ------------------------------------------------
"$LAB" up --loss1 20 >/dev/null
lab exec c ping -q -n -c 400 -i 0.005 -W 1 -I "$C1" "$S1" >"$WORK/loss" 2>&1
lost=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/loss")
check "loss1 20 %: ${lost:-?} % of pings lost (want 26..46 %, 1 - 0.8^2 = 36 %)" float_between "${lost:-0}" 26 46
lab exec c ping -q -n -c 100 -i 0.005 -W 1 -I "$C2" "$S2" >"$WORK/loss2" 2>&1
check "loss2 0 %: path 2 loses nothing" grep -q " 0% packet loss" "$WORK/loss2"

echo "check-topology: $passes passed, $failures failed"
((failures == 0))
