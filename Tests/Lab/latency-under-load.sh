#!/usr/bin/env bash
# latency-under-load.sh: an interactive echo's round trip through agg and through MPTCP + shadowsocks-libev, idle
# and while one bulk transfer through the same proxy fills both of deploy/netlab's NATed paths (issue 20).
#
# Brings the lab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 10 ms by default), measures
# single-path TCP goodput on each path (iperf3 C1 -> S1, C2 -> S2, -t DURATION -O 2; the tbf shaping is the same
# both ways, so the sum stands for downloads and uploads alike), then for each proxy in turn:
#   agg        aggclient/aggserver at their default settings (release build, as agg-vs-mptcp.sh; AGGSERVER=/AGGCLIENT=
#              choose the binaries), SOCKS5 on the client's 127.0.0.1:1080
#   mptcp-*    ss-local -> ss-server (shadowsocks-libev, chacha20-ietf-poly1305, --no-delay), both under mptcpize,
#              kernel MPTCP over both paths as variant A of mptcp-baseline.sh (server on S1, client subflow from C2),
#              SOCKS5 on the client's 127.0.0.1:1081; first with cubic, then with bbr as the TCP congestion control
#              of the client and server namespaces
# and for each of them latency-echo.py (beside this script) measures SAMPLES (240) round trips of a 64-byte echo
# sent every 50 ms (TCP_NODELAY) to a server on S1: idle, then for each of CASES (default "download upload lte
# compete") beside one bulk transfer through the same proxy, started WARMUP (3) seconds before the samples:
#   download   a download filling both paths          upload   an upload filling both paths
#   lte        a download while path 2's rate changes every 2 s (LTE_RATES, Mbit/s, in turn; netlab.sh rate)
#   compete    a download beside one plain TCP download on path 1 outside the proxy (iperf3 -R, cubic, S1 -> C1);
#              the proxy's share of path 1 is 1 - that download's goodput / single path 1
# Prints p50/p95/p99 in ms, the bulk goodput while the samples ran and its fraction of the single-path sum (for lte
# of single 1 + single 2 x mean(LTE_RATES) / RATE2), then a Markdown table.
# To measure only some of it: PROXIES="agg" (or any of agg mptcp-cubic mptcp-bbr) and CASES="compete" (any of the
# four, in the order given; a case named twice is measured twice, each line printed, the table showing the last);
# SINGLE="19.13 28.69" takes the two single-path goodputs as given instead of measuring them (saves 35 s a run).
# PATH_TRACE=1 samples both daemons' per-path series (srtt, bbr's estimates and phase, cwnd, flight) every half
# second during each agg measurement into paths-CASE.log in the work directory (KEEP=1 keeps it).
# Waits while another lab holds the namespaces; tears everything down on exit, failure or Ctrl-C. Run as root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-10} DELAY2=${DELAY2:-10} T=${DURATION:-15}
SAMPLES=${SAMPLES:-240} WARMUP=${WARMUP:-3} CASES=${CASES:-download upload lte compete} PROXIES=${PROXIES:-agg mptcp-cubic mptcp-bbr}
ECHO_PORT=7000 BULK_PORT=7001 SS_PORT=8388 SS_SOCKS=127.0.0.1:1081 SS_PASSWORD=latency-under-load
ECHO=$HERE/latency-echo.py LTE_RATES=${LTE_RATES:-30 5 20 10 25 5 15 30}
OWN_PIDS=()

agg_workdir latency-under-load
cleanup() {
    local pid
    agg_stop
    for pid in "${OWN_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${OWN_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    OWN_PIDS=()
    [[ -n ${LAB_OURS:-} ]] && lab down >/dev/null 2>&1
    [[ -n ${KEEP:-} ]] && echo "logs kept in $AGG_WORK" || rm -rf "$AGG_WORK"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
command -v mptcpize >/dev/null || { echo "mptcpize missing: deploy/netlab/install-deps.sh" >&2; exit 1; }
command -v ss-local >/dev/null && command -v ss-server >/dev/null ||
    { echo "shadowsocks-libev missing: apt-get install shadowsocks-libev" >&2; exit 1; }
agg_build release || exit 1
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"

# Only one lab at a time on a machine: wait while another script holds the namespaces.
if ip netns list | grep -qE '^agg-'; then
    echo "another lab is up ($(ip netns list | grep -oE '^agg-[a-z0-9]+' | tr '\n' ' ')); waiting for it to finish..."
    while ip netns list | grep -qE '^agg-'; do sleep 5; done
fi
LAB_OURS=1
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "=== rates $RATE1 / $RATE2 Mbit/s, delays $DELAY1 / $DELAY2 ms one way; $SAMPLES samples per measurement"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >/dev/null || exit 1
# Another lab script that tears the namespaces down and builds its own would kill our processes: detect it.
LAB_ID=$(stat -c %i /run/netns/agg-c)
lab_is_ours() { [[ $(stat -c %i /run/netns/agg-c 2>/dev/null) == "$LAB_ID" ]]; }
if [[ -n ${SINGLE:-} ]]; then
    read -r single1 single2 <<<"$SINGLE"
    sum=$(calc "'%.2f' % ($single1 + $single2)")
    echo "single paths taken as given (SINGLE): $single1 + $single2 = $sum Mbit/s"
else
    single_paths
fi

ip netns exec agg-s "$PYTHON" "$ECHO" serve "$S1" "$ECHO_PORT" "$BULK_PORT" >"$AGG_WORK/echo-server.log" 2>&1 &
OWN_PIDS+=($!)
wait_tcp_listen s "$ECHO_PORT" && wait_tcp_listen s "$BULK_PORT" || exit 1

declare -A RESULT
# lte_rates: path 2's rate through LTE_RATES in turn, 2 s each, until $AGG_WORK/lte.stop exists.
lte_rates() {
    while true; do
        for r in $LTE_RATES; do
            [[ -e $AGG_WORK/lte.stop ]] && return 0
            lab rate 2 "$r" >/dev/null
            sleep 2
        done
    done
}
# measure PROXY SOCKS CASE: one latency-echo.py run; stores its line in RESULT[PROXY.CASE] and prints it.
measure() {
    local proxy=$1 socks=$2 case=$3 mode=$3 line competitor= lte= seconds
    lab_is_ours || { echo "the lab's namespaces were replaced by another script: results void" >&2; LAB_OURS=; exit 1; }
    seconds=$(calc "int($WARMUP + $SAMPLES * 0.05 + 1)")
    case $case in
        lte)
            mode=download
            rm -f "$AGG_WORK/lte.stop"
            lte_rates &
            lte=$!
            OWN_PIDS+=($lte)
            ;;
        compete)
            mode=download
            ip netns exec agg-s iperf3 -s -1 -B "$S1" -p 5203 >/dev/null 2>&1 &
            OWN_PIDS+=($!)
            wait_tcp_listen s 5203 || exit 1
            lab exec c iperf3 -c "$S1" -B "$C1" -p 5203 -R -t "$((seconds - WARMUP))" -O "$WARMUP" -J \
                >"$AGG_WORK/compete-$proxy.json" 2>&1 &
            competitor=$!
            OWN_PIDS+=($competitor)
            ;;
    esac
    local tracer=
    if [[ -n ${PATH_TRACE:-} && $proxy == agg ]]; then
        # Both daemons' per-path series every half second, for KEEP=1 to look at (which path queues, and why).
        (
            while true; do
                echo "t $(date +%s.%N)"
                ip netns exec agg-s curl -s --max-time 1 "http://$SERVER_METRICS/metrics" | sed -n 's/^agg_path_\(srtt\|min_rtt\|bandwidth_estimate\|pacing_rate\|cwnd\|flight_size\|bbr_phase\)/server \1/p'
                ip netns exec agg-c curl -s --max-time 1 "http://$CLIENT_METRICS/metrics" | sed -n 's/^agg_path_\(srtt\|min_rtt\|bandwidth_estimate\|pacing_rate\|cwnd\|flight_size\|bbr_phase\)/client \1/p'
                sleep 0.5
            done
        ) >"$AGG_WORK/paths-$case.log" 2>&1 &
        tracer=$!
        OWN_PIDS+=($tracer)
    fi
    line=$(ip netns exec agg-c "$PYTHON" "$ECHO" measure "$socks" "$S1" "$ECHO_PORT" "$BULK_PORT" "$mode" \
        "$SAMPLES" "$WARMUP" 2>"$AGG_WORK/measure-$proxy-$case.err") ||
        line="FAILED: $(tail -n 1 "$AGG_WORK/measure-$proxy-$case.err")"
    [[ -n $tracer ]] && kill "$tracer" 2>/dev/null
    if [[ -n $lte ]]; then
        touch "$AGG_WORK/lte.stop"
        wait "$lte" 2>/dev/null
        lab rate 2 "$RATE2" >/dev/null
    fi
    if [[ -n $competitor ]]; then
        wait "$competitor"
        local other
        other=$(mbit "$AGG_WORK/compete-$proxy.json")
        line+=" competitor_mbit=$other path1_share=$(calc "'%.3f' % (1 - $other / $single1)")"
    fi
    lab_is_ours || { echo "the lab's namespaces were replaced by another script: results void" >&2; LAB_OURS=; exit 1; }
    RESULT[$proxy.$case]=$line
    echo "$proxy $case: $line"
    # Let the bulk connection's queues drain before the next measurement.
    sleep 2
}
# field LINE NAME: the value of NAME=... in a latency-echo.py line (empty if absent).
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

run_agg() {
    mkdir -p "$AGG_WORK/www"
    agg_start "$AGG_WORK/www" || { tail -n 5 "$AGG_WORK"/agg*.log; exit 1; }
    wait_association 15 || { echo "agg association did not come up"; client_status; exit 1; }
    local case
    for case in idle $CASES; do measure agg 127.0.0.1:1080 "$case"; done
    { client_status | sed 's/^/    client: /'; server_status | sed 's/^/    server: /'; } | grep -E ' (path|association) '
    agg_stop
}

# run_mptcp CC: ss-server and ss-local under mptcpize with CC as the end hosts' TCP congestion control.
run_mptcp() {
    local cc=$1 name=mptcp-$1 ss=(-m chacha20-ietf-poly1305 -k "$SS_PASSWORD" --no-delay) pids=() pid case
    lab exec c sysctl -qw net.ipv4.tcp_congestion_control="$cc" && lab exec s sysctl -qw net.ipv4.tcp_congestion_control="$cc" ||
        exit 1
    ip netns exec agg-s mptcpize run ss-server -s "$S1" -p "$SS_PORT" "${ss[@]}" >"$AGG_WORK/ss-server-$cc.log" 2>&1 &
    pids+=($!)
    OWN_PIDS+=($!)
    wait_tcp_listen s "$SS_PORT" || exit 1
    ip netns exec agg-c mptcpize run ss-local -s "$S1" -p "$SS_PORT" -b "${SS_SOCKS%:*}" -l "${SS_SOCKS#*:}" "${ss[@]}" \
        >"$AGG_WORK/ss-local-$cc.log" 2>&1 &
    pids+=($!)
    OWN_PIDS+=($!)
    wait_tcp_listen c "${SS_SOCKS#*:}" || exit 1
    for case in idle $CASES; do measure "$name" "$SS_SOCKS" "$case"; done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}

for proxy in $PROXIES; do
    echo "--- $proxy"
    case $proxy in
        agg) run_agg ;;
        mptcp-*)
            [[ -n ${MPTCP_READY:-} ]] || { mptcp_endpoints; MPTCP_READY=1; }
            run_mptcp "${proxy#mptcp-}"
            ;;
        *) echo "unknown proxy '$proxy' (agg, mptcp-cubic, mptcp-bbr)" >&2; exit 1 ;;
    esac
done

# --- the table ---------------------------------------------------------------------------------------------------
lte_mean=$(calc "sum([$(tr ' ' ',' <<<"$LTE_RATES")]) / len('$LTE_RATES'.split())")
triple() { echo "$(field "$1" p50) / $(field "$1" p95) / $(field "$1" p99)"; }
echo
head="| proxy | idle p50 / p95 / p99 |"
rule="| --- | --- |"
for case in $CASES; do
    head+=" $case: loaded p50 / p95 / p99 | $case: p99 added | $case: bulk goodput |"
    rule+=" --- | --- | --- |"
done
echo "$head"
echo "$rule"
for proxy in $PROXIES; do
    idle=${RESULT[$proxy.idle]:-}
    row="| $proxy | $(triple "$idle") |"
    for case in $CASES; do
        r=${RESULT[$proxy.$case]:-}
        if [[ -z $(field "$r" p99) || -z $(field "$idle" p99) ]]; then
            row+=" ${r:-not run} | | |"
            continue
        fi
        g=$(field "$r" bulk_mbit)
        row+=" $(triple "$r") | +$(calc "'%.1f' % ($(field "$r" p99) - $(field "$idle" p99))") |"
        case $case in
            lte) row+=" $g Mbit/s ($(calc "'%.1f' % (100 * $g / ($single1 + $single2 * $lte_mean / $RATE2))") %) |" ;;
            compete) row+=" $g Mbit/s, $(calc "'%.0f' % (100 * $(field "$r" path1_share))") % of path 1 |" ;;
            *) row+=" $g Mbit/s ($(calc "'%.1f' % (100 * $g / $sum)") %) |" ;;
        esac
    done
    echo "$row"
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "SUMMARY rate1=$RATE1 rate2=$RATE2 delay1=$DELAY1 delay2=$DELAY2 samples=$SAMPLES single1=$single1 single2=$single2" \
    "sum=$sum $(for k in "${!RESULT[@]}"; do echo -n "[$k ${RESULT[$k]}] "; done)"
exit 0
