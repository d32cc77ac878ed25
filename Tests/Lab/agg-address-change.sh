#!/usr/bin/env bash
# agg-address-change.sh: aggclient with --path c1 --path c2 (interface names) through deploy/netlab's two NATs,
# path 2's address changing in the middle of a download, as an LTE reconnect does.
#
# The client's policy routing is replaced by what DHCP on two uplinks gives: two default routes, by c1 (metric 0)
# and by c2 (metric 200), no rules. A socket bound to C2 alone would then leave by c1 and NAT 1; bound to c2 as
# well (SO_BINDTODEVICE) it leaves by c2. Checks:
#   - the association comes up and the server sees path 2 from NAT 2's address (so path 2 left by c2);
#   - during a download C2 (10.2.0.2) goes away and C2b (10.2.0.3) appears on c2: the download completes with the
#     right SHA-256; the server ends with exactly two paths, path 2 from a new NAT 2 port (the old one deleted
#     through the NAT, not left to be probed), and path 2 carries DATA again after the change;
#   - the client's paths leave from C1 and C2b, none from C2;
#   - when both paths lose their addresses for 3 s, the client sets the association up again once they return.
# PASS/FAIL lines, then "N passed, M failed"; non-zero exit on a failure. Tears everything down on exit.
# SIZE_MB (40) sets the download's size. KEEP=1 keeps the logs. AGGSERVER=/AGGCLIENT= use those binaries.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-5} SIZE_MB=${SIZE_MB:-40}
C2B=10.2.0.3 R2I=10.2.0.1

agg_checks agg-address-change
# server_paths: "REMOTE STATE" for each of the server's path lines.
server_paths() {
    server_status | awk '$1 == "path" { r = ""; s = ""
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "remote") r = kv[2]; if (kv[1] == "state") s = kv[2] }
        print r, s }'
}
# client_paths: "LOCAL STATE" for each of the client's path lines that has a local address.
client_paths() {
    client_status | awk '$1 == "path" { l = ""; s = ""
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "local") l = kv[2]; if (kv[1] == "state") s = kv[2] }
        if (l != "-" && l != "") print l, s }'
}

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
started=$(date +%s)
agg_build debug || { fail "build aggserver and aggclient"; finish; }
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >"$AGG_WORK/lab-up.log" 2>&1 ||
    { cat "$AGG_WORK/lab-up.log"; fail "netlab up"; finish; }

# Two default routes and no source rules: only SO_BINDTODEVICE sends path 2 by c2.
ip netns exec agg-c ip rule del priority 101
ip netns exec agg-c ip rule del priority 102
ip netns exec agg-c ip route add default via "$R2I" dev c2 metric 200

mkdir -p "$AGG_WORK/www"
head -c "${SIZE_MB}M" /dev/urandom >"$AGG_WORK/www/file.bin"
want=$(sha256sum <"$AGG_WORK/www/file.bin" | cut -d' ' -f1)

"$AGGSERVER" keygen labclient -o "$AGG_WORK/lab.key" >/dev/null || { fail "aggserver keygen"; finish; }
ip netns exec agg-s "$AGGSERVER" --listen "$S1:$AGG_PORT" --listen "$S2:$AGG_PORT" --psk-file "$AGG_WORK/lab.key" \
    --egress-allow "$S1/32" --metrics "$SERVER_METRICS" -v >"$AGG_WORK/aggserver.log" 2>&1 &
AGG_PIDS+=($!)
ip netns exec agg-s "$PYTHON" -m http.server "$HTTP_PORT" --bind "$S1" --directory "$AGG_WORK/www" \
    >"$AGG_WORK/http.log" 2>&1 &
AGG_PIDS+=($!)
wait_udp_listen s "$AGG_PORT" && wait_tcp_listen s "$HTTP_PORT" || { fail "aggserver and http.server start"; finish; }
ip netns exec agg-c "$AGGCLIENT" --server "$S1:$AGG_PORT" --server "$S2:$AGG_PORT" --path c1 --path c2 \
    --socks 127.0.0.1:1080 --http 127.0.0.1:8080 --psk-file "$AGG_WORK/lab.key" --metrics "$CLIENT_METRICS" -v \
    >"$AGG_WORK/aggclient.log" 2>&1 &
AGG_PIDS+=($!)
wait_tcp_listen c 1080 || { fail "aggclient starts"; finish; }

# --- 1. association; path 2 reaches the server through NAT 2 -----------------------------------------------------
deadline=$(($(date +%s) + 15)) up=1
until server_paths | grep -q "^$N2:[0-9]* active" && server_paths | grep -q "^$N1:[0-9]* active"; do
    (($(date +%s) < deadline)) || { up=0; break; }
    sleep 0.2
done
snapshot up
check $((1 - up)) "server sees path 1 from NAT 1 and path 2 from NAT 2, both active, although the route sends C2 by c1: $(server_paths | tr '\n' ' ')"
old2=$(server_paths | awk -v n="$N2:" 'index($1, n) == 1 { print $1; exit }')

# --- 2. C2 -> C2b in the middle of a download --------------------------------------------------------------------
(fetch file.bin "$AGG_WORK/dl" 90 >"$AGG_WORK/dl.result") &
BG=$!
sleep 2
t_change=$(now)
ip netns exec agg-c ip addr del "$C2/24" dev c2
sleep 0.5
ip netns exec agg-c ip addr add "$C2B/24" dev c2
ip netns exec agg-c ip route replace default via "$R2I" dev c2 metric 200
a2=$(server_path_bytes 2)
# The server: two paths, path 2 from a new NAT 2 port, the old one gone (watched while the download runs).
moved_paths() {
    local paths new2
    paths=$(server_paths)
    new2=$(awk -v n="$N2:" 'index($1, n) == 1 && $2 == "active" { print $1; exit }' <<<"$paths")
    [[ $(wc -l <<<"$paths") == 2 && -n $new2 && $new2 != "$old2" ]] && ! grep -q "^$old2 " <<<"$paths"
}
deadline=$(($(date +%s) + 20)) moved=0
while (($(date +%s) < deadline)); do
    if moved_paths; then moved=1; break; fi
    sleep 0.1
done
t_moved=$(now)
snapshot moved
wait "$BG"
BG=
snapshot after
read -r time size _ rc <<<"$(cat "$AGG_WORK/dl.result")"
got=$(sha256sum <"$AGG_WORK/dl" 2>/dev/null | cut -d' ' -f1)
[[ $rc == 0 && $got == "$want" ]]
check $? "download of $SIZE_MB MB with path 2's address changed after 2 s: curl exit $rc, $size bytes in ${time}s, SHA-256 ${got:0:16}... (want ${want:0:16}...)"

new2=$(server_paths | awk -v n="$N2:" 'index($1, n) == 1 && $2 == "active" { print $1; exit }')
((moved)) && moved_paths
check $? "server ends with two active paths, path 2 moved from $old2 to ${new2:-nothing} $(calc "'%.1f' % ($t_moved - $t_change)") s after the address change, $old2 deleted ($(server_paths | tr '\n' ' '))"

cpaths=$(client_paths)
grep -q "^$C1:[0-9]* active" <<<"$cpaths" && grep -q "^$C2B:[0-9]* active" <<<"$cpaths" && ! grep -q "^$C2:" <<<"$cpaths"
check $? "client's paths leave from C1 and C2b, none from C2 ($(tr '\n' ' ' <<<"$cpaths"))"

# Path 2 carries DATA on its new address.
(fetch file.bin "$AGG_WORK/dl2" 90 >"$AGG_WORK/dl2.result") &
BG=$!
wait "$BG"
BG=
b2=$(server_path_bytes 2)
read -r time size _ rc <<<"$(cat "$AGG_WORK/dl2.result")"
got=$(sha256sum <"$AGG_WORK/dl2" 2>/dev/null | cut -d' ' -f1)
[[ $rc == 0 && $got == "$want" ]] && ((b2 - a2 > 1000000))
check $? "a second download is intact and path 2 carried $((b2 - a2)) bytes since the change"

# --- 3. every path loses its address, then both come back ---------------------------------------------------------
before=$(grep -c '\[Proxy\] authenticated' "$AGG_WORK/aggclient.log")
ip netns exec agg-c ip addr del "$C1/24" dev c1
ip netns exec agg-c ip addr del "$C2B/24" dev c2
sleep 3
t_back=$(now)
ip netns exec agg-c ip addr add "$C1/24" dev c1
ip netns exec agg-c ip addr add "$C2B/24" dev c2
ip netns exec agg-c ip route replace default via 10.1.0.1 dev c1
ip netns exec agg-c ip route replace default via "$R2I" dev c2 metric 200
deadline=$(($(date +%s) + 20)) again=0
while (($(date +%s) < deadline)); do
    if (($(grep -c '\[Proxy\] authenticated' "$AGG_WORK/aggclient.log") > before)); then again=1; break; fi
    sleep 0.1
done
t_again=$(now)
snapshot again
(fetch file.bin "$AGG_WORK/dl3" 90 >"$AGG_WORK/dl3.result") &
BG=$!
wait "$BG"
BG=
read -r time size _ rc <<<"$(cat "$AGG_WORK/dl3.result")"
got=$(sha256sum <"$AGG_WORK/dl3" 2>/dev/null | cut -d' ' -f1)
((again)) && [[ $rc == 0 && $got == "$want" ]]
check $? "with every address gone for 3 s the client sets the association up again $(calc "'%.1f' % ($t_again - $t_back)") s after they return, and a download is intact (curl exit $rc, $size bytes)"

grep -E 'path address changed|path moves|adding path|every path' "$AGG_WORK/aggclient.log" | sed 's/^/    /' | head -8
echo "took $(($(date +%s) - started)) s"
finish
