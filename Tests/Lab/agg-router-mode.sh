#!/usr/bin/env bash
# agg-router-mode.sh: router mode end to end. A LAN namespace sits behind the client box and downloads from the
# server side's web server with no proxy configured anywhere: deploy/nftables/agg-router.nft (its defines set for
# the lab) redirects the LAN's TCP to aggclient's transparent listener.
#
#   agg-lan  eth0 192.168.50.2/24 ── lan0 192.168.50.1 [agg-c: aggclient --transparent [::]:12345] ── netlab
#            fd50::2/64                 fd50::1
#
# The web server listens on W (198.51.100.10, on the server box but not one of aggserver's addresses, which the
# recipe leaves alone; aggserver --egress-allow W/32). Checks:
#   - aggclient's transparent listener is up and the recipe loads;
#   - a download from agg-lan (plain curl, no proxy) has the right SHA-256, went through the association (the
#     server's and the client's successful connection counters rise, the server's stream count rises), and both
#     paths carry DATA (server's per-path bytes sent, client's per-path SACK bytes);
#   - a download during which path 1 is blackholed completes intact, path 2 carrying the rest;
#   - a connection from the LAN straight to the transparent port (a loop) is closed and counted, aggclient lives;
#   - an IPv6 connection is redirected too and its original destination read (IP6T_SO_ORIGINAL_DST): the netlab is
#     IPv4 only, so it goes to a documentation address the server refuses, and the server counts that refusal;
#   - the recipe's tproxy variant carries a download too (IP_TRANSPARENT listener, no NAT);
#   - and UDP: 1,000 datagrams from agg-lan (a plain socket connected to the echo, no proxy) to a UDP echo on W come
#     back from W itself, through the association (the server's UDP flows and both sides' datagram counters rise).
# PASS/FAIL lines, then "N passed, M failed"; non-zero exit on a failure. Tears everything down on exit.
# SIZE_MB (20) sets the test file's size. KEEP=1 keeps the logs (printed path).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RECIPE=$HERE/../../deploy/nftables/agg-router.nft
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-5} SIZE_MB=${SIZE_MB:-20}
W=198.51.100.10 LAN_GW=192.168.50.1 LAN_HOST=192.168.50.2 LAN_GW6=fd50::1 LAN_HOST6=fd50::2 TPORT=12345
# Dual-stack: IPv4 connections reach the [::] listener as IPv4-mapped addresses.
TLISTEN="[::]:$TPORT"
W6=2001:db8:50::10
UDPCLIENT=$HERE/../../scripts/socks5-udp-client.py ECHO_PORT=7777 UDP_COUNT=${UDP_COUNT:-1000}

agg_checks agg-router-mode "aggserver.log, aggclient.log, status-*.txt, *.nft"
agg_extra_cleanup() { ip netns del agg-lan 2>/dev/null; }

# metric c|s NAME LABELS: a counter's value from a status endpoint's /metrics (0 when absent).
metric() {
    local ns=agg-c address=$CLIENT_METRICS
    [[ $1 == s ]] && ns=agg-s address=$SERVER_METRICS
    ip netns exec "$ns" curl -s --max-time 3 "http://$address/metrics" |
        awk -v name="$2" -v labels="$3" '$1 == name labels { v = $2 } END { printf "%d\n", v + 0 }'
}
# server_streams_opened: streams opened on the server's association lines, summed.
server_streams_opened() {
    server_status | awk '$1 == "association" {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "opened") s += kv[2] } }
        END { print s + 0 }'
}

# lan_fetch OUT [MAX_TIME]: plain curl in agg-lan, no proxy from anywhere; prints "SECONDS BYTES TTFB EXIT".
lan_fetch() {
    local out=$1 max=${2:-90} rc
    ip netns exec agg-lan env -i PATH="$PATH" curl -sS --noproxy '*' --max-time "$max" -o "$out" \
        -w '%{time_total} %{size_download} %{time_starttransfer}\n' "http://$W:$HTTP_PORT/file.bin" \
        >"$out.curl" 2>"$out.err"
    rc=$?
    echo "$(cat "$out.curl") $rc"
}
download() { # download OUT: in the background, sets BG; result in OUT.result
    (lan_fetch "$1" 90 >"$1.result") &
    BG=$!
}
verify() { # verify OUT DESCRIPTION: curl result and SHA-256
    local out=$1 what=$2 got time size rc
    read -r time size _ rc <<<"$(cat "$out.result")"
    got=$(sha256sum <"$out" 2>/dev/null | cut -d' ' -f1)
    if [[ $rc == 0 && $got == "$want" ]]; then
        pass "$what: $size bytes in ${time}s ($(calc "'%.1f' % ($size * 8 / $time / 1e6)") Mbit/s), SHA-256 right"
    else
        fail "$what: curl exit $rc, $size bytes in ${time}s, SHA-256 ${got:0:16}... want ${want:0:16}... ($(head -c 200 "$out.err"))"
    fi
}

# The recipe with its defines set for the lab.
recipe() {
    sed -e "s|^define LAN_IF = .*|define LAN_IF = \"lan0\"|" \
        -e "s|^define LAN_V4 = .*|define LAN_V4 = 192.168.50.0/24|" \
        -e "s|^define SERVER_V4 = .*|define SERVER_V4 = { $S1, $S2 }|" \
        -e "s|^define AGG_PORT = .*|define AGG_PORT = $TPORT|" "$RECIPE"
}
# The tproxy variant the recipe describes in its comments: the redirect line out, the lan_tproxy chain in.
recipe_tproxy() {
    recipe | sed '/^        meta l4proto tcp redirect to :\$AGG_PORT$/d'
    echo "table inet agg_router {"
    awk '/^#   chain lan_tproxy/,/^#   }/' "$RECIPE" | sed 's/^#   //'
    echo "}"
}

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
if ip netns list | grep -qE '^agg-'; then
    echo "lab namespaces exist already (another lab script running?): $(ip netns list | tr '\n' ' ')" >&2
    exit 1
fi
started=$(date +%s)
agg_build debug || { fail "build aggserver and aggclient"; finish; }
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >"$AGG_WORK/lab-up.log" 2>&1 ||
    { cat "$AGG_WORK/lab-up.log"; fail "netlab up"; finish; }

# --- the LAN behind the client box -----------------------------------------------------------------------------
ip netns add agg-lan
ip link add lan0 netns agg-c type veth peer name eth0 netns agg-lan
ip netns exec agg-lan ip link set lo up
ip netns exec agg-lan ip link set eth0 up
ip netns exec agg-lan ip addr add "$LAN_HOST/24" dev eth0
ip netns exec agg-lan ip addr add "$LAN_HOST6/64" dev eth0 nodad
ip netns exec agg-lan ip route add default via "$LAN_GW"
ip netns exec agg-lan ip -6 route add default via "$LAN_GW6"
ip netns exec agg-c ip link set lan0 up
# netlab turns IPv6 off in its namespaces; the LAN side of the client box has it.
ip netns exec agg-c sysctl -qw net.ipv6.conf.lan0.disable_ipv6=0
ip netns exec agg-c ip addr add "$LAN_GW/24" dev lan0
ip netns exec agg-c ip addr add "$LAN_GW6/64" dev lan0 nodad
ip netns exec agg-c sysctl -qw net.ipv4.ip_forward=1
# The web server's address: on the server box, not one of aggserver's own addresses.
ip netns exec agg-s ip addr add "$W/32" dev lo

recipe >"$AGG_WORK/agg-router.nft"
ip netns exec agg-c nft -f "$AGG_WORK/agg-router.nft" 2>"$AGG_WORK/nft.err"
check $? "deploy/nftables/agg-router.nft loads in the client box ($(head -c 200 "$AGG_WORK/nft.err"))"

mkdir -p "$AGG_WORK/www"
head -c "${SIZE_MB}M" /dev/urandom >"$AGG_WORK/www/file.bin"
want=$(sha256sum <"$AGG_WORK/www/file.bin" | cut -d' ' -f1)

AGG_HTTP_BIND=$W
AGG_SERVER_ARGS=(--egress-allow "$W/32")
AGG_CLIENT_ARGS=(--transparent "$TLISTEN")
if ! agg_start "$AGG_WORK/www" || ! wait_tcp_listen c "$TPORT"; then
    fail "daemons start (aggserver, http.server on $W:$HTTP_PORT, aggclient with --transparent $TLISTEN)"
    tail -n 5 "$AGG_WORK"/agg*.log
    finish
fi
grep -qF "transparent listener on $TLISTEN" "$AGG_WORK/aggclient.log"
check $? "aggclient announces its transparent listener ($(grep -m1 'transparent listener' "$AGG_WORK/aggclient.log"))"
wait_association 15
check $? "association up, client paths C1 and C2 both active"

# --- 1. a plain download from the LAN goes through the association ----------------------------------------------
a1=$(server_path_bytes 1) a2=$(server_path_bytes 2)
c1=$(client_path_field 1 bytes_sent) c2=$(client_path_field 2 bytes_sent)
sc=$(metric s agg_proxy_connections_total '{outcome="success"}')
cc=$(metric c agg_proxy_connections_total '{outcome="success"}')
so=$(server_streams_opened)
download "$AGG_WORK/dl1"
wait "$BG"; BG=
snapshot download
b1=$(server_path_bytes 1) b2=$(server_path_bytes 2)
e1=$(client_path_field 1 bytes_sent) e2=$(client_path_field 2 bytes_sent)
sc2=$(metric s agg_proxy_connections_total '{outcome="success"}')
cc2=$(metric c agg_proxy_connections_total '{outcome="success"}')
so2=$(server_streams_opened)
verify "$AGG_WORK/dl1" "LAN download of ${SIZE_MB} MB with no proxy configured"
((sc2 > sc && cc2 > cc && so2 > so))
check $? "it went through the association: server connections $sc -> $sc2, client connections $cc -> $cc2," \
    "server streams opened $so -> $so2"
d1=$((b1 - a1)) d2=$((b2 - a2))
((d1 > 1000000 && d2 > 1000000))
check $? "both paths carried DATA during the download (server sent $d1 bytes on path 1, $d2 on path 2)"
((${e1:-0} - ${c1:-0} > 10000 && ${e2:-0} - ${c2:-0} > 10000))
check $? "client's status page: both paths carried its SACKs ($((${e1:-0} - ${c1:-0})) and $((${e2:-0} - ${c2:-0})) bytes)"

# --- 2. path 1 dies mid-download ---------------------------------------------------------------------------------
download "$AGG_WORK/dl2"
sleep 2
lab blackhole 1 >/dev/null
a2=$(server_path_bytes 2)
wait "$BG"; BG=
snapshot blackhole
b2=$(server_path_bytes 2)
verify "$AGG_WORK/dl2" "LAN download with path 1 blackholed after 2 s"
((b2 - a2 > 1000000))
check $? "path 2 carried the rest ($((b2 - a2)) bytes after the blackhole; client path 1 is $(client_path_field 1 state))"
lab restore 1 >/dev/null

# --- 3. a loop: the LAN connects straight to the transparent port ------------------------------------------------
loops=$(metric c agg_refusals_total '{reason="transparent_loop"}')
ip netns exec agg-lan curl -s --noproxy '*' --max-time 5 -o /dev/null "http://$LAN_GW:$TPORT/" 2>/dev/null
loops2=$(metric c agg_refusals_total '{reason="transparent_loop"}')
alive=0
kill -0 "${AGG_PIDS[2]}" 2>/dev/null && client_status | grep -q '^association .* ready' && alive=1
((loops2 == loops + 1 && alive == 1))
check $? "a connection to the transparent port itself is closed as a loop and counted ($loops -> $loops2)," \
    "aggclient still serving"
grep -q "is aggclient's own listener" "$AGG_WORK/aggclient.log"
check $? "the loop is logged ($(grep -m1 -o "transparent connection closed: [^(]*" "$AGG_WORK/aggclient.log"))"

# --- 4. IPv6 ------------------------------------------------------------------------------------------------------
refused=$(metric s agg_refusals_total '{reason="egress_address"}')
notallowed=$(metric c agg_proxy_connections_total '{outcome="not_allowed"}')
ip netns exec agg-lan curl -s --noproxy '*' --max-time 10 -o /dev/null "http://[$W6]:$HTTP_PORT/" 2>/dev/null
refused2=$(metric s agg_refusals_total '{reason="egress_address"}')
notallowed2=$(metric c agg_proxy_connections_total '{outcome="not_allowed"}')
grep -qF "[$W6]:$HTTP_PORT" "$AGG_WORK/aggserver.log"
logged=$?
((refused2 == refused + 1 && notallowed2 == notallowed + 1 && logged == 0))
check $? "an IPv6 connection is redirected with its destination [$W6]:$HTTP_PORT read back: the server refused" \
    "that target (egress_address $refused -> $refused2, client not_allowed $notallowed -> $notallowed2," \
    "named in its log: $((logged == 0)))"

# --- 5. the tproxy variant ---------------------------------------------------------------------------------------
recipe_tproxy >"$AGG_WORK/agg-router-tproxy.nft"
ip netns exec agg-c ip rule add fwmark 0x4147 lookup 4147
ip netns exec agg-c ip route add local 0.0.0.0/0 dev lo table 4147
ip netns exec agg-c ip -6 rule add fwmark 0x4147 lookup 4147
ip netns exec agg-c ip -6 route add local ::/0 dev lo table 4147
ip netns exec agg-c nft -f "$AGG_WORK/agg-router-tproxy.nft" 2>"$AGG_WORK/nft-tproxy.err"
check $? "the recipe's tproxy variant loads ($(head -c 200 "$AGG_WORK/nft-tproxy.err"))"
grep -qF "transparent listener on $TLISTEN (nftables redirect or tproxy)" "$AGG_WORK/aggclient.log"
check $? "the listener has IP_TRANSPARENT (aggclient runs as root here)"
sc=$(metric s agg_proxy_connections_total '{outcome="success"}')
download "$AGG_WORK/dl3"
wait "$BG"; BG=
sc2=$(metric s agg_proxy_connections_total '{outcome="success"}')
snapshot tproxy
verify "$AGG_WORK/dl3" "LAN download through tproxy"
((sc2 > sc))
check $? "the tproxy download went through the association (server connections $sc -> $sc2)"

# --- 6. UDP through tproxy --------------------------------------------------------------------------------------
grep -qF "transparent UDP on" "$AGG_WORK/aggclient.log"
check $? "aggclient binds its tproxy UDP socket ($(grep -m1 -o 'transparent UDP on.*' "$AGG_WORK/aggclient.log"))"
ip netns exec agg-s "$PYTHON" "$UDPCLIENT" echo-server "$W" "$ECHO_PORT" >"$AGG_WORK/echo.log" 2>&1 &
AGG_PIDS+=($!)
wait_udp_listen s "$ECHO_PORT" || fail "UDP echo on $W:$ECHO_PORT starts"
sf=$(metric s agg_udp_relay_flows_total '') sd=$(metric s agg_udp_relay_datagrams_total '{direction="up"}')
cd=$(metric c agg_udp_relay_datagrams_total '{direction="down"}')
ip netns exec agg-lan "$PYTHON" "$UDPCLIENT" load 0 "$W" "$ECHO_PORT" "$UDP_COUNT" 200 --direct \
    >"$AGG_WORK/load-tproxy.json" 2>"$AGG_WORK/load-tproxy.err"
got=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['received'])" "$AGG_WORK/load-tproxy.json" \
    2>/dev/null || echo 0)
rtt=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['rtt_ms'])" "$AGG_WORK/load-tproxy.json" \
    2>/dev/null)
((got * 1000 >= UDP_COUNT * 995))
check $? "UDP from the LAN with no proxy: $got of $UDP_COUNT datagrams came back from $W:$ECHO_PORT itself" \
    "(round trip $rtt ms; $(head -c 200 "$AGG_WORK/load-tproxy.err"))"
sf2=$(metric s agg_udp_relay_flows_total '') sd2=$(metric s agg_udp_relay_datagrams_total '{direction="up"}')
cd2=$(metric c agg_udp_relay_datagrams_total '{direction="down"}')
((sf2 > sf && sd2 - sd >= UDP_COUNT && cd2 - cd >= got))
check $? "the UDP went through the association (server flows $sf -> $sf2, server datagrams up $sd -> $sd2," \
    "client datagrams down $cd -> $cd2)"
snapshot udp

echo "client status at the end:"
client_status | sed 's/^/    /'
grep -ciE 'error|fail' "$AGG_WORK/aggclient.log" "$AGG_WORK/aggserver.log" | sed 's/^/    log lines with error|fail: /'
echo "took $(($(date +%s) - started)) s"
finish
