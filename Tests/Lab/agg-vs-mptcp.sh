#!/usr/bin/env bash
# agg-vs-mptcp.sh: agg's goodput over deploy/netlab's two NATed paths against single-path TCP and Linux MPTCP.
#
# Run 1 (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 10 ms each by default):
#   single-path TCP goodput on each path (iperf3 C1 -> S1, C2 -> S2, -t DURATION -O 2), Linux MPTCP over both
#   (iperf3 under mptcpize, server bound to S1, client "subflow" endpoint C2: variant A of mptcp-baseline.sh),
#   then one download of SIZE_MB (150) through aggclient/aggserver: curl through socks5h in agg-c from a python
#   http.server on S1:8000 in agg-s. agg's goodput = bytes / (time_total - time_starttransfer), i.e. from the first
#   byte of the body to the last (the association is already up; the stream's OPEN and the HTTP request excluded).
# Run 2 (UNEQUAL_RATE1/UNEQUAL_RATE2, 100 and 5 Mbit/s by default, same delays): single-path TCP on each path and
#   one agg download of UNEQUAL_SIZE_MB (200), against the best single path. UNEQUAL=0 skips it.
# Prints every figure and ratio, the server's per-path bytes for each agg download and both status pages after it;
# a SUMMARY line per run at the end. AGGSERVER=/AGGCLIENT= choose the binaries (default: release build in
# .build-release). Tears down on exit. Run as root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-10} DELAY2=${DELAY2:-10} T=${DURATION:-15}
SIZE_MB=${SIZE_MB:-150} UNEQUAL=${UNEQUAL:-1} UNEQUAL_RATE1=${UNEQUAL_RATE1:-100} UNEQUAL_RATE2=${UNEQUAL_RATE2:-5}
UNEQUAL_SIZE_MB=${UNEQUAL_SIZE_MB:-200}

agg_workdir agg-vs-mptcp
cleanup() {
    agg_stop
    lab down >/dev/null 2>&1
    rm -rf "$AGG_WORK/www"
    [[ -n ${KEEP:-} ]] && echo "logs kept in $AGG_WORK" || rm -rf "$AGG_WORK"
}
trap cleanup EXIT

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
command -v mptcpize >/dev/null || { echo "mptcpize missing: deploy/netlab/install-deps.sh" >&2; exit 1; }
agg_build release || exit 1
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"
mkdir -p "$AGG_WORK/www"
size=$((SIZE_MB > UNEQUAL_SIZE_MB ? SIZE_MB : UNEQUAL_SIZE_MB))
head -c "${size}M" /dev/urandom >"$AGG_WORK/www/big.bin"
head -c "${SIZE_MB}M" "$AGG_WORK/www/big.bin" >"$AGG_WORK/www/run1.bin"
head -c "${UNEQUAL_SIZE_MB}M" "$AGG_WORK/www/big.bin" >"$AGG_WORK/www/run2.bin"
rm "$AGG_WORK/www/big.bin"

# mptcp: variant A of mptcp-baseline.sh; sets mptcp.
mptcp() {
    mptcp_endpoints
    ip netns exec agg-s mptcpize run iperf3 -s -1 -B "$S1" -p 5301 >"$AGG_WORK/mptcp-server.log" 2>&1 &
    local server=$!
    wait_tcp_listen s 5301 || exit 1
    ip netns exec agg-c mptcpize run iperf3 -c "$S1" -B "$C1" -p 5301 -t "$T" -O 2 -J >"$AGG_WORK/mptcp.json"
    wait "$server"
    mptcp=$(mbit "$AGG_WORK/mptcp.json")
    echo "Linux MPTCP (subflows C1->S1, C2->S1): $mptcp Mbit/s, $(calc "'%.1f' % (100 * $mptcp / $sum)") % of the sum"
}

# agg_download FILE: one download through agg (daemons started and stopped here); sets agg, agg_split.
agg_download() {
    local file=$1
    agg_start "$AGG_WORK/www" || { tail -n 5 "$AGG_WORK"/agg*.log; exit 1; }
    wait_association 15 || { echo "agg association did not come up"; client_status; exit 1; }
    local a1 a2 b1 b2 time size start rc got want
    a1=$(server_path_bytes 1) a2=$(server_path_bytes 2)
    read -r time size start rc <<<"$(fetch "$file" "$AGG_WORK/out.bin" 300)"
    b1=$(server_path_bytes 1) b2=$(server_path_bytes 2)
    want=$(sha256sum <"$AGG_WORK/www/$file" | cut -d' ' -f1)
    got=$(sha256sum <"$AGG_WORK/out.bin" | cut -d' ' -f1)
    rm -f "$AGG_WORK/out.bin"
    if [[ $rc != 0 || $got != "$want" ]]; then
        echo "agg download FAILED: curl exit $rc, $size bytes, SHA-256 ${got:0:16} want ${want:0:16} ($(cat "$AGG_WORK/out.bin.err"))"
        agg=0
    else
        agg=$(calc "'%.2f' % ($size * 8 / ($time - $start) / 1e6)")
        echo "agg download: $size bytes, first byte after ${start}s, done after ${time}s: $agg Mbit/s" \
            "(whole request $(calc "'%.2f' % ($size * 8 / $time / 1e6)") Mbit/s), SHA-256 right"
    fi
    local d1=$((b1 - a1)) d2=$((b2 - a2))
    agg_split="path1=$d1 path2=$d2"
    echo "    server sent $d1 bytes on path 1 ($(calc "'%.1f' % (100 * $d1 / max(1, $d1 + $d2))") %)," \
        "$d2 on path 2 (including retransmissions and chunk/packet headers)"
    echo "    status pages after the download:"
    { client_status | sed 's/^/    client: /'; server_status | sed 's/^/    server: /'; }
    agg_stop
}

# --- run 1: equal delays, 20 and 30 Mbit/s ---------------------------------------------------------------------
echo "=== run 1: rates $RATE1 / $RATE2 Mbit/s, delays $DELAY1 / $DELAY2 ms one way"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >/dev/null || exit 1
single_paths
mptcp
agg_download run1.bin
run1="SUMMARY run1 rate1=$RATE1 rate2=$RATE2 delay1=$DELAY1 delay2=$DELAY2 single1=$single1 single2=$single2 sum=$sum"
run1+=" mptcp=$mptcp mptcp_ratio=$(calc "'%.3f' % ($mptcp / $sum)") agg=$agg agg_ratio=$(calc "'%.3f' % ($agg / $sum)")"
run1+=" agg_bytes($agg_split)"
echo "agg: $(calc "'%.1f' % (100 * $agg / $sum)") % of the single-path sum (target >= 98 %);" \
    "MPTCP: $(calc "'%.1f' % (100 * $mptcp / $sum)") %"

# --- run 2: very unequal paths -----------------------------------------------------------------------------------
if [[ $UNEQUAL != 0 ]]; then
    echo
    echo "=== run 2: rates $UNEQUAL_RATE1 / $UNEQUAL_RATE2 Mbit/s, delays $DELAY1 / $DELAY2 ms one way"
    lab up --rate1 "$UNEQUAL_RATE1" --rate2 "$UNEQUAL_RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >/dev/null || exit 1
    single_paths
    agg_download run2.bin
    best=$(calc "max($single1, $single2)")
    run2="SUMMARY run2 rate1=$UNEQUAL_RATE1 rate2=$UNEQUAL_RATE2 delay1=$DELAY1 delay2=$DELAY2 single1=$single1"
    run2+=" single2=$single2 sum=$sum best=$best agg=$agg agg_vs_best=$(calc "'%.3f' % ($agg / $best)")"
    run2+=" agg_vs_sum=$(calc "'%.3f' % ($agg / $sum)") agg_bytes($agg_split)"
    echo "agg: $(calc "'%.1f' % (100 * $agg / $best)") % of the best single path," \
        "$(calc "'%.1f' % (100 * $agg / $sum)") % of the sum"
fi
echo
echo "$run1"
[[ -n ${run2:-} ]] && echo "$run2"
exit 0
