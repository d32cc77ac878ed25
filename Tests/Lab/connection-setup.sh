#!/usr/bin/env bash
# connection-setup.sh: how long a new connection takes to its first byte through agg, with aggclient's early-reply
# at each setting, and through shadowsocks-libev on path 1, over deploy/netlab's two NATed paths (issue 21).
#
# Brings the lab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 10 ms by default), serves a
# 1 KiB file from S1 (python http.server), and for each entry of MODES (default "never known shadowsocks"):
#   never, known, always   aggserver and aggclient (release build; AGGSERVER=/AGGCLIENT= choose the binaries) with
#                          `--early-reply MODE`, SOCKS5 on the client's 127.0.0.1:1080
#   shadowsocks            ss-local -> ss-server (shadowsocks-libev, chacha20-ietf-poly1305) over path 1 (C1 -> S1),
#                          SOCKS5 on the client's 127.0.0.1:1081: it answers the SOCKS5 request at once by design
# one fetch first (it makes the target known), then SAMPLES (20) fetches one after another, 0.2 s apart, each a new
# connection: `curl -x socks5h://...`. Prints the medians of the SOCKS5 exchange (curl's time_pretransfer minus
# time_connect: the greeting and the CONNECT request until the proxy's reply), of the time to the first byte of the
# response (time_starttransfer) and of the whole fetch, then a Markdown table. Waits while another lab holds the
# namespaces; tears everything down on exit. Run as root.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-10} DELAY2=${DELAY2:-10}
SAMPLES=${SAMPLES:-20} MODES=${MODES:-never known shadowsocks}
SS_PORT=8388 SS_SOCKS=127.0.0.1:1081 SS_PASSWORD=connection-setup
OWN_PIDS=()

agg_workdir connection-setup
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
for mode in $MODES; do
    case $mode in
    never | known | always) ;;
    shadowsocks)
        command -v ss-local >/dev/null && command -v ss-server >/dev/null ||
            { echo "shadowsocks-libev missing: apt-get install shadowsocks-libev" >&2; exit 1; }
        ;;
    *) echo "unknown mode $mode (never, known, always, shadowsocks)" >&2; exit 1 ;;
    esac
done
agg_build release || exit 1
echo "aggserver: $AGGSERVER"
echo "aggclient: $AGGCLIENT"

if ip netns list | grep -qE '^agg-'; then
    echo "another lab is up; waiting for it to finish..."
    while ip netns list | grep -qE '^agg-'; do sleep 5; done
fi
LAB_OURS=1
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "=== rates $RATE1 / $RATE2 Mbit/s, delays $DELAY1 / $DELAY2 ms one way; $SAMPLES fetches per mode"
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >/dev/null || exit 1

mkdir -p "$AGG_WORK/www"
head -c 1024 /dev/urandom >"$AGG_WORK/www/small.bin"

# samples SOCKS: one warm-up fetch, then SAMPLES fetches; prints "exchange_ms first_byte_ms total_ms" medians.
samples() {
    local socks=$1 i
    ip netns exec agg-c curl -s -o /dev/null --max-time 10 -x "socks5h://$socks" "http://$S1:$HTTP_PORT/small.bin" ||
        { echo "warm-up fetch through $socks failed" >&2; return 1; }
    for ((i = 0; i < SAMPLES; i++)); do
        sleep 0.2
        ip netns exec agg-c curl -s -o /dev/null --max-time 10 -x "socks5h://$socks" \
            -w '%{time_connect} %{time_pretransfer} %{time_starttransfer} %{time_total} %{http_code}\n' \
            "http://$S1:$HTTP_PORT/small.bin"
    done | "$PYTHON" -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
ok = [[float(v) * 1000 for v in r[:4]] for r in rows if r[4] == "200"]
if len(ok) < len(rows) or not ok:
    sys.exit("%d of %d fetches failed" % (len(rows) - len(ok), len(rows)))
median = lambda xs: statistics.median(xs)
print("%.1f %.1f %.1f" % (median([p - c for c, p, s, t in ok]), median([s for c, p, s, t in ok]), median([t for c, p, s, t in ok])))
'
}

declare -A RESULT
for mode in $MODES; do
    if [[ $mode == shadowsocks ]]; then
        ss=(-m chacha20-ietf-poly1305 -k "$SS_PASSWORD")
        ip netns exec agg-s "$PYTHON" -m http.server "$HTTP_PORT" --bind "$S1" --directory "$AGG_WORK/www" \
            >"$AGG_WORK/http-ss.log" 2>&1 &
        OWN_PIDS+=($!)
        ip netns exec agg-s ss-server -s "$S1" -p "$SS_PORT" "${ss[@]}" >"$AGG_WORK/ss-server.log" 2>&1 &
        OWN_PIDS+=($!)
        wait_tcp_listen s "$SS_PORT" && wait_tcp_listen s "$HTTP_PORT" || exit 1
        ip netns exec agg-c ss-local -s "$S1" -p "$SS_PORT" -b "${SS_SOCKS%:*}" -l "${SS_SOCKS#*:}" "${ss[@]}" \
            >"$AGG_WORK/ss-local.log" 2>&1 &
        OWN_PIDS+=($!)
        wait_tcp_listen c "${SS_SOCKS#*:}" || exit 1
        RESULT[$mode]=$(samples "$SS_SOCKS") || exit 1
        for pid in "${OWN_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
        OWN_PIDS=()
    else
        AGG_CLIENT_ARGS=(--early-reply "$mode")
        agg_start "$AGG_WORK/www" || exit 1
        wait_association 20 || { echo "no association with both paths active" >&2; exit 1; }
        RESULT[$mode]=$(samples 127.0.0.1:1080) || exit 1
        agg_stop
    fi
    read -r exchange first total <<<"${RESULT[$mode]}"
    echo "$mode: SOCKS5 exchange $exchange ms, first byte $first ms, whole fetch $total ms (medians of $SAMPLES)"
done

echo
echo "| proxy | SOCKS5 exchange | first byte | whole fetch |"
echo "| --- | ---: | ---: | ---: |"
for mode in $MODES; do
    read -r exchange first total <<<"${RESULT[$mode]}"
    label="agg, early-reply = \"$mode\""
    [[ $mode == shadowsocks ]] && label="shadowsocks-libev, path 1 only"
    echo "| $label | $exchange ms | $first ms | $total ms |"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
