#!/usr/bin/env bash
# agg-udp.sh: UDP through the pair over deploy/netlab's two NATs (issue 15): SOCKS5 UDP ASSOCIATE in agg-c, a UDP
# echo in agg-s on S1.
#
# Brings the lab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 5 ms by default), builds the
# daemons (debug; or AGGSERVER=/AGGCLIENT= binaries), runs them as agg-integration.sh does, and sends COUNT (10,000)
# numbered datagrams of 200 bytes at RATE (1,000) a second through scripts/socks5-udp-client.py (PySocks) to the
# echo, three times, after a DNS query through the pair (dnspython over PySocks, against dnsmasq in agg-s):
#   1. clean paths: at least 99.5% come back, both paths carry them (each direction's per-path byte counters);
#   2. 2% random loss each way on path 1 (an nftables `numgen random mod 50 == 0 drop` on router 1): at least 99%
#      come back, 99% of round trips within twice the datagram lifetime and the paths, no silence over 1 s;
#   3. path 1 blackholed halfway: every lost datagram was sent within 1 s of the blackhole (the flow goes on over
#      path 2 within 1 s), and no more are lost than path 1 had in flight in that second;
#   4. beside a download: a 100 MiB download through SOCKS5 fills both paths (the association's send queue over its
#      watermark much of the time) and the echo starts 3 s into it: at least 99.9% come back (a relay that judged
#      the echo's stream by the scheduler's lists dropped 0.3-0.4% as congested), and the download is whole.
# Then, with GOODPUT=1 (the default), a paced one-way sender through SOCKS5 at each rate of MBITS (Mbit/s of
# payload; MBIT, 60, above the paths' sum, by default) with 1,200-byte datagrams for T (10) s into a sink on S1: the
# delivered rates are printed (BENCHMARKS.md) and the best must be at least 90% of the single paths' sum as iperf3
# measures it here. PASS/FAIL lines, then "N passed, M failed";
# non-zero exit on a failure. KEEP=1 keeps the logs. Takes the machine-wide lab lock (agg-common.sh).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-5}
COUNT=${COUNT:-10000} RATE=${RATE:-1000} GOODPUT=${GOODPUT:-1} MBIT=${MBIT:-60} T=${T:-10}
ECHO_PORT=7777 SINK_PORT=7778
UDPCLIENT="$ROOT/scripts/socks5-udp-client.py"

agg_checks agg-udp "aggserver.log, aggclient.log, load-*.json, status-*.txt"
# snapshot NAME: the common one, plus both JSON snapshots without history.
snapshot() {
    { echo "== client"; client_status; echo "== server"; server_status; } >"$AGG_WORK/status-$1.txt" 2>&1
    ip netns exec agg-c curl -s --max-time 3 "http://$CLIENT_METRICS/status.json?history=0" >"$AGG_WORK/client-$1.json"
    ip netns exec agg-s curl -s --max-time 3 "http://$SERVER_METRICS/status.json?history=0" >"$AGG_WORK/server-$1.json"
}
# udp_counters NAME: the relay's counters on both sides after step NAME (drops by reason, datagrams expired).
udp_counters() {
    local side
    for side in client server; do
        "$PYTHON" -c "import json,sys; print(sys.argv[2], json.load(open(sys.argv[1]))['counters'].get('udp'))" \
            "$AGG_WORK/$side-$1.json" "$side" 2>/dev/null
    done | sed 's/^/    /'
}
field() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
# The SOCKS5 client needs PySocks: the first Python that has it (delayq needs the system one, which may not).
UDPPYTHON=
for candidate in ${UDPPYTHON_CANDIDATES:-python3 "$PYTHON"}; do
    if "$candidate" -c 'import socks' 2>/dev/null; then UDPPYTHON=$(command -v "$candidate"); break; fi
done
[[ -n $UDPPYTHON ]] || { echo "PySocks is missing (python3 -m pip install PySocks)" >&2; exit 1; }
if ip netns list | grep -q '^agg-'; then echo "another lab is running (ip netns list shows agg-*)" >&2; exit 1; fi
started=$(date +%s)
agg_build debug || { fail "build aggserver and aggclient"; finish; }
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >"$AGG_WORK/lab-up.log" 2>&1 ||
    { cat "$AGG_WORK/lab-up.log"; fail "netlab up"; finish; }
mkdir -p "$AGG_WORK/www"
head -c 100M /dev/urandom >"$AGG_WORK/www/download.bin"
if ! agg_start "$AGG_WORK/www"; then
    fail "daemons start"
    tail -n 5 "$AGG_WORK"/agg*.log
    finish
fi
ip netns exec agg-s "$PYTHON" "$UDPCLIENT" echo-server "$S1" "$ECHO_PORT" >"$AGG_WORK/echo.log" 2>&1 &
AGG_PIDS+=($!)
wait_udp_listen s "$ECHO_PORT" || { fail "UDP echo starts"; finish; }
wait_association 15
check $? "association up, client paths C1 and C2 both active"

# --- 0. DNS: dnspython through the SOCKS5 UDP relay against dnsmasq on the server side ------------------------------
DNS_PORT=5353
ip netns exec agg-s dnsmasq --no-daemon --no-resolv --no-hosts --port="$DNS_PORT" --listen-address="$S1" \
    --bind-interfaces --address=/agg.test/192.0.2.77 --user=root --pid-file= >"$AGG_WORK/dnsmasq.log" 2>&1 &
AGG_PIDS+=($!)
wait_udp_listen s "$DNS_PORT" || fail "dnsmasq starts"
answer=$(ip netns exec agg-c "$UDPPYTHON" "$UDPCLIENT" dns 1080 "$S1" "$DNS_PORT" agg.test 2>&1)
[[ $answer == 192.0.2.77 ]]
check $? "dnspython through the pair resolves agg.test against dnsmasq on the server side: \"$answer\""

# load NAME: COUNT datagrams at RATE to the echo, summary in $AGG_WORK/load-NAME.json; per-path DATA bytes each way
# before and after in up1/up2 (client to server) and down1/down2.
load() {
    local name=$1 c1 c2 s1 s2
    c1=$(client_path_field 1 bytes_sent) c2=$(client_path_field 2 bytes_sent)
    s1=$(server_path_bytes 1) s2=$(server_path_bytes 2)
    ip netns exec agg-c "$UDPPYTHON" "$UDPCLIENT" load 1080 "$S1" "$ECHO_PORT" "$COUNT" "$RATE" \
        >"$AGG_WORK/load-$name.json" 2>"$AGG_WORK/load-$name.err"
    up1=$(($(client_path_field 1 bytes_sent) - c1)) up2=$(($(client_path_field 2 bytes_sent) - c2))
    down1=$(($(server_path_bytes 1) - s1)) down2=$(($(server_path_bytes 2) - s2))
    snapshot "$name"
    udp_counters "$name"
}
received() { field "$AGG_WORK/load-$1.json" received 2>/dev/null || echo 0; }
percent() { calc "'%.2f' % ($1 * 100 / $COUNT)"; }

# --- 1. clean paths -------------------------------------------------------------------------------------------------
load clean
got=$(received clean)
(($(calc "int($got * 1000 >= $COUNT * 995)") == 1))
check $? "clean paths: $got of $COUNT datagrams came back ($(percent "$got")%; round trip $(field "$AGG_WORK/load-clean.json" rtt_ms 2>/dev/null) ms)"
# A light flow's datagrams are sparse messages; they keep to the lowest-RTT path only when it is measurably faster,
# so on these two equal paths they take turns (once they all went on whichever path measured a hair faster).
((up1 > 100000 && up2 > 100000 && down1 > 100000 && down2 > 100000))
check $? "both paths carried them: up $up1 + $up2 bytes, down $down1 + $down2 bytes (paths 1 + 2)"

# --- 2. 2% loss each way on path 1 ----------------------------------------------------------------------------------
lab exec r1 nft add rule ip agglab blackhole numgen random mod 50 == 0 drop
load loss
lab restore 1 >/dev/null
got=$(received loss)
(($(calc "int($got * 100 >= $COUNT * 99)") == 1))
check $? "2% loss on path 1: $got of $COUNT came back ($(percent "$got")%)"
# The association never delivers a datagram after its lifetime (it abandons it unsent); what the sender sees is
# the round trip, two lifetimes and the paths at most, plus whatever the host's scheduler adds in socket buffers
# before a daemon reads them: the 99th percentile is checked, the longest printed.
p99=$(field "$AGG_WORK/load-loss.json" "rtt_ms['p99']" 2>/dev/null || echo 99999)
max=$(field "$AGG_WORK/load-loss.json" "rtt_ms['max']" 2>/dev/null || echo 99999)
silence=$(field "$AGG_WORK/load-loss.json" longest_silence_ms 2>/dev/null || echo 99999)
(($(calc "int($p99 <= 700 and $silence <= 1000)") == 1))
check $? "2% loss: round trip p99 $p99 ms, longest $max ms (two 300 ms lifetimes and the paths), longest silence $silence ms"
((up1 > 100000 && up2 > 100000))
check $? "2% loss: both paths still carried them: up $up1 + $up2 bytes, down $down1 + $down2 bytes"

# --- 3. path 1 blackholed halfway -----------------------------------------------------------------------------------
wait_association 30 || true
half=$(calc "$COUNT / $RATE / 2")
(
    sleep "$half"
    now >"$AGG_WORK/blackhole-at"
    lab blackhole 1 >/dev/null
) &
BG=$!
load blackhole
wait "$BG"; BG=
lab restore 1 >/dev/null
t_bh=$(cat "$AGG_WORK/blackhole-at")
got=$(received blackhole)
read -r lost early late <<<"$("$PYTHON" -c "
import json, sys
d = json.load(open(sys.argv[1])); t = float(sys.argv[2])
lost = d['lost_sent_at']
print(len(lost), sum(1 for x in lost if x < t - 0.2), sum(1 for x in lost if x > t + 1.0))" \
    "$AGG_WORK/load-blackhole.json" "$t_bh" 2>/dev/null || echo "99999 0 99999")"
((late == 0 && early == 0))
check $? "blackhole: every one of the $lost lost datagrams was sent within 1 s of the blackhole ($early before, $late after)"
# Path 1 takes about half the datagrams: in the second after the blackhole at most RATE / 2 of them were on it.
((lost <= RATE / 2))
check $? "blackhole: $lost lost, no more than path 1 had in flight in that second ($((RATE / 2))); $got of $COUNT came back"
((down2 > 100000))
check $? "blackhole: path 2 carried the rest (down $down1 + $down2 bytes)"

# --- 4. beside a download -------------------------------------------------------------------------------------------
wait_association 30 || true
fetch download.bin "$AGG_WORK/download.out" 120 >"$AGG_WORK/download.result" &
BG=$!
sleep 3
load download
wait "$BG"; BG=
got=$(received download)
read -r _ bytes _ rc <"$AGG_WORK/download.result"
(($(calc "int($got * 1000 >= $COUNT * 999)") == 1 && rc == 0 && bytes == 104857600))
check $? "beside a download: $got of $COUNT came back ($(percent "$got")%; round trip $(field "$AGG_WORK/load-download.json" rtt_ms 2>/dev/null) ms); the download $bytes bytes, curl exit $rc"
rm -f "$AGG_WORK/download.out"

# --- 5. goodput -----------------------------------------------------------------------------------------------------
# For each offered rate in MBITS (Mbit/s of payload, 1,200-byte datagrams, T seconds), what the sink on S1 got.
if [[ $GOODPUT == 1 ]]; then
    best=0
    for offered in ${MBITS:-$MBIT}; do
        wait_association 30 || true
        ip netns exec agg-s "$PYTHON" "$UDPCLIENT" sink "$S1" "$SINK_PORT" >"$AGG_WORK/sink-$offered.txt" 2>&1 &
        sinkpid=$!
        wait_udp_listen s "$SINK_PORT" || fail "UDP sink starts"
        ip netns exec agg-c "$UDPPYTHON" "$UDPCLIENT" blast 1080 "$S1" "$SINK_PORT" "$T" "$offered" 1200 \
            >"$AGG_WORK/blast-$offered.txt" 2>&1
        wait "$sinkpid"
        snapshot "goodput-$offered"
        read -r _ n _ bytes _ seconds _ delivered <<<"$(tail -n 1 "$AGG_WORK/sink-$offered.txt")"
        echo "UDP goodput: offered $offered Mbit/s of 1200-byte datagrams for $T s ($(cat "$AGG_WORK/blast-$offered.txt"));" \
            "delivered $n datagrams, $bytes bytes in $seconds s: ${delivered:-0} Mbit/s"
        udp_counters "goodput-$offered"
        (($(calc "int(${delivered:-0} > $best)") == 1)) && best=${delivered:-0}
    done
    agg_stop
    single_paths
    (($(calc "int($best >= 0.9 * $sum)") == 1))
    check $? "UDP goodput $best Mbit/s, $(calc "'%.1f' % ($best * 100 / $sum)")% of the single paths' sum $sum Mbit/s"
fi

echo "took $(($(date +%s) - started)) s"
finish
