#!/usr/bin/env bash
# agg-integration.sh: aggserver and aggclient end to end through deploy/netlab's two NATs.
#
# Brings the lab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 5 ms by default), builds the
# daemons (debug; or AGGSERVER=/AGGCLIENT= binaries), makes a key with `aggserver keygen`, runs aggserver in agg-s on
# S1 and S2 (egress allowed to S1/32 only, where a python http.server listens on port 8000), aggclient in agg-c
# with --path C1 --path C2, and checks:
#   - the association comes up with both paths active on both ends (client and server status pages);
#   - a download through socks5h has the right SHA-256, and both paths carry DATA during it;
#   - a download during which path 1 is blackholed completes intact; after restore, path 1 carries DATA again;
#   - a download during which NAT 2 forgets its bindings (rebind) completes intact, and path 2 carries DATA on
#     its new NAT port afterwards.
# PASS/FAIL lines, then "N passed, M failed"; non-zero exit on a failure. Tears everything down on exit.
# SIZE_MB (30) sets the test file's size. KEEP=1 keeps the logs (printed path).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-5} SIZE_MB=${SIZE_MB:-30}

agg_checks agg-integration

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
started=$(date +%s)
agg_build debug || { fail "build aggserver and aggclient"; finish; }
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >"$AGG_WORK/lab-up.log" 2>&1 ||
    { cat "$AGG_WORK/lab-up.log"; fail "netlab up"; finish; }

mkdir -p "$AGG_WORK/www"
head -c "${SIZE_MB}M" /dev/urandom >"$AGG_WORK/www/file.bin"
want=$(sha256sum <"$AGG_WORK/www/file.bin" | cut -d' ' -f1)

agg_start "$AGG_WORK/www"
rc=$?
mode=$(stat -c %a "$AGG_WORK/lab.key" 2>/dev/null)
[[ $mode == 600 ]]
check $? "aggserver keygen wrote a mode-600 key file (mode ${mode:-missing})"
if ((rc != 0)); then
    fail "daemons start (aggserver in agg-s, http.server on $S1:$HTTP_PORT, aggclient in agg-c)"
    tail -n 5 "$AGG_WORK"/agg*.log
    finish
fi

# --- 1. association, both paths ---------------------------------------------------------------------------------
wait_association 15
check $? "association up, client paths C1 and C2 both active"
snapshot up
p1_state=$(server_status | awk -v n="remote=$N1:" '$1 == "path" && index($0, n) { print $4; exit }')
p2_state=$(server_status | awk -v n="remote=$N2:" '$1 == "path" && index($0, n) { print $4; exit }')
[[ $p1_state == state=active && $p2_state == state=active ]]
check $? "server sees path 1 from NAT 1 ($N1) and path 2 from NAT 2 ($N2), both active ($p1_state, $p2_state)"

# --- 2. plain download, both paths carry DATA ---------------------------------------------------------------------
verify() { # verify OUT DESCRIPTION: curl result and SHA-256
    local out=$1 what=$2 result got
    read -r time size _ rc <<<"$(cat "$out.result")"
    got=$(sha256sum <"$out" 2>/dev/null | cut -d' ' -f1)
    if [[ $rc == 0 && $got == "$want" ]]; then
        pass "$what: $size bytes in ${time}s ($(calc "'%.1f' % ($size * 8 / $time / 1e6)") Mbit/s), SHA-256 right"
    else
        fail "$what: curl exit $rc, $size bytes in ${time}s, SHA-256 ${got:0:16}... want ${want:0:16}... ($(head -c 200 "$out.err"))"
    fi
}
download() { # download OUT: in the background, sets BG; result in OUT.result
    (fetch file.bin "$1" 90 >"$1.result") &
    BG=$!
}

a1=$(server_path_bytes 1) a2=$(server_path_bytes 2)
c1=$(client_path_field 1 bytes_sent) c2=$(client_path_field 2 bytes_sent)
u1=$(udp_field client datagrams_sent) s1=$(udp_field server datagrams_sent)
download "$AGG_WORK/dl1"
wait "$BG"; BG=
b1=$(server_path_bytes 1) b2=$(server_path_bytes 2)
e1=$(client_path_field 1 bytes_sent) e2=$(client_path_field 2 bytes_sent)
u2=$(udp_field client datagrams_sent) s2=$(udp_field server datagrams_sent)
snapshot download
verify "$AGG_WORK/dl1" "download of ${SIZE_MB} MB through socks5h"
d1=$((b1 - a1)) d2=$((b2 - a2))
((d1 > 1000000 && d2 > 1000000))
check $? "both paths carried DATA during the download (server sent $d1 bytes on path 1, $d2 on path 2)"
# The client's own counters count what it sends: in a download, its SACKs, so both paths must show some.
((${e1:-0} - ${c1:-0} > 10000 && ${e2:-0} - ${c2:-0} > 10000))
check $? "client's status page: both paths carried its SACKs during the download ($((${e1:-0} - ${c1:-0})) and $((${e2:-0} - ${c2:-0})) bytes)"
# The daemons acknowledge every fourth packet (docs/PROTOCOL.md): the client sends about one datagram per four the
# server sends in a download (every second packet would be one per two).
up=$((${u2:-0} - ${u1:-0})) down=$((${s2:-0} - ${s1:-0}))
((down > 1000 && up * 3 < down))
check $? "a SACK per about four packets: the client sent $up datagrams while the server sent $down"

# --- 3. blackhole path 1 mid-transfer, then restore ---------------------------------------------------------------
download "$AGG_WORK/dl2"
sleep 2
lab blackhole 1 >/dev/null
t_bh=$(now)
a2=$(server_path_bytes 2)
wait "$BG"; BG=
snapshot blackhole
b2=$(server_path_bytes 2)
verify "$AGG_WORK/dl2" "download with path 1 blackholed after 2 s"
echo "    path states during the blackhole: client path 1 $(client_path_field 1 state), server path 1" \
    "$(server_status | awk -v n="remote=$N1:" '$1 == "path" && index($0, n) { print $4; exit }');" \
    "path 2 carried $((b2 - a2)) bytes after the blackhole"
lab restore 1 >/dev/null
# Path 1 comes back when a heartbeat (or a retransmission probing it) gets through: wait for it to be active
# on the server and for DATA to flow on it again, with downloads running meanwhile.
t_restore=$(now) back=0
deadline=$(($(date +%s) + 60))
while (($(date +%s) < deadline)); do
    a1=$(server_path_bytes 1)
    download "$AGG_WORK/dl3"
    wait "$BG"; BG=
    b1=$(server_path_bytes 1)
    if ((b1 - a1 > 1000000)); then back=1; break; fi
    sleep 1
done
snapshot restore
if ((back)); then
    pass "path 1 carries DATA again after restore ($((b1 - a1)) bytes in a download finished" \
        "$(calc "'%.1f' % ($(now) - $t_restore)") s after restore)"
    verify "$AGG_WORK/dl3" "download after restore"
else
    fail "path 1 carries DATA again within 60 s of restore (last download: $((b1 - a1)) bytes on path 1)"
fi

# --- 4. rebind NAT 2 mid-transfer -------------------------------------------------------------------------------------
port_before=$(server_status | awk -v n="remote=$N2:" '$1 == "path" && index($0, n) { sub(".*remote=", ""); sub(" .*", ""); print; exit }')
download "$AGG_WORK/dl4"
sleep 2
a2=$(server_path_bytes 2)
lab rebind 2 >/dev/null
wait "$BG"; BG=
b2=$(server_path_bytes 2)
snapshot rebind
port_after=$(server_status | awk -v n="remote=$N2:" '$1 == "path" && index($0, n) { sub(".*remote=", ""); sub(" .*", ""); print; exit }')
verify "$AGG_WORK/dl4" "download with NAT 2 rebound after 2 s"
[[ -n $port_after && $port_after != "$port_before" ]] && ((b2 - a2 > 1000000))
check $? "server follows NAT 2's new binding ($port_before -> $port_after) and path 2 carried $((b2 - a2)) bytes after the rebind"

echo "client status at the end:"
client_status | sed 's/^/    /'
grep -ciE 'error|fail' "$AGG_WORK/aggclient.log" "$AGG_WORK/aggserver.log" | sed 's/^/    log lines with error|fail: /'
echo "took $(($(date +%s) - started)) s"
finish
