#!/usr/bin/env bash
# bench-udp-latency.sh: the latency a UDP datagram gains through agg's SOCKS5 UDP relay on loopback, against the
# same datagrams sent directly and through shadowsocks-libev's UDP relay, in one run.
#
#   scripts/bench-udp-latency.sh [--count N] [--rate PER_SECOND] [--size BYTES] [--rounds N] [--proxies "ss agg1"]
#
# Inside a private network namespace (scripts/bench-common.sh: lo at MTU 1500, release daemons), a UDP echo runs on
# 127.0.0.1 and scripts/socks5-udp-client.py's `load` mode (PySocks) sends N numbered datagrams at a fixed rate
# (paced, not windowed) directly and through each proxy, in alternating rounds, and takes every round trip. It
# prints, per proxy, the median over the rounds of the round trip's p50 / p90 / p99 / max and of what the proxy
# adds to the direct round trip at p50 and p99; half of that is the one-way latency added (the pair is crossed
# once each way). Defaults: 3,000 datagrams of 200 bytes at 500 a second, 3 rounds, proxies ss agg1 agg2.
set -uo pipefail
BENCH=bench-udp-latency
arguments=("$@")
# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"
BENCH_PACKAGES+=(python3-pip)

count=3000 rate=500 size=200 rounds=3 proxies="ss agg1 agg2"
while (($# > 0)); do
    case $1 in
    --count) count=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --proxies) proxies=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_fail "unknown argument $1 (see --help)" ;;
    esac
done
for p in $proxies; do
    [[ $p == ss || $p == agg1 || $p == agg2 ]] || bench_fail "$p has no UDP relay here (ss, agg1, agg2)"
done

if [[ "${BENCH_INSIDE:-}" != 1 ]]; then
    "$PYTHON" -c 'import socks' 2>/dev/null || "$PYTHON" -m pip install --quiet --break-system-packages PySocks ||
        bench_fail "cannot install PySocks"
fi
bench_enter "${arguments[@]}"
bench_traps
bench_workdir "$BENCH"

CLIENT="$BENCH_ROOT/scripts/socks5-udp-client.py"
ECHO_PORT=7007 HTTP_PORT=8000
mkdir -p "$BENCH_WORK/www"
head -c 1024 /dev/urandom >"$BENCH_WORK/www/small.bin"
nginx_start "$HTTP_PORT" "$BENCH_WORK/www" 64 10s # only for proxy_ready
"$PYTHON" "$CLIENT" echo-server 127.0.0.1 "$ECHO_PORT" >"$BENCH_WORK/echo.log" 2>&1 &
BENCH_PIDS+=($!)
for p in $proxies; do proxy_start "$p"; done
for p in $proxies; do proxy_ready "$p" "http://127.0.0.1:$HTTP_PORT/small.bin"; done

results=$BENCH_WORK/results
for round in $(seq "$rounds"); do
    for p in direct $proxies; do
        if [[ $p == direct ]]; then
            via=(0 --direct)
        else
            via=("${PROXY_PORT[$p]}")
        fi
        out=$("$PYTHON" "$CLIENT" load "${via[0]}" 127.0.0.1 "$ECHO_PORT" "$count" "$rate" "$size" "${via[@]:1}" \
            2>"$BENCH_WORK/load-$p-$round.err")
        echo "$p $round $out" >>"$results"
        bench_log "round $round $p: $(cut -c1-160 <<<"$out")"
    done
done

"$PYTHON" - "$results" "$count" "$rate" "$size" "$rounds" "$proxies" <<'EOF'
import json, statistics, sys
path, count, rate, size, rounds, proxies = sys.argv[1:]
runs = {}
for line in open(path):
    name, _, data = line.split(" ", 2)
    runs.setdefault(name, []).append(json.loads(data))
labels = {"direct": "direct (no proxy)", "ss": "shadowsocks-libev (ss-local -u + ss-server -u)",
          "agg1": "agg, encrypted, one path", "agg2": "agg, encrypted, two paths"}
def med(name, key):
    return statistics.median(r["rtt_ms"][key] for r in runs[name])
print(f"\n{count} datagrams of {size} bytes at {rate}/s to a UDP echo on loopback, median of {rounds} rounds; "
      "round trip in ms")
print("\n| path | received | p50 | p90 | p99 | max | added at p50 | added at p99 | one way added at p99 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in ["direct"] + proxies.split():
    got = min(r["received"] for r in runs[name])
    row = [labels[name], f"{got} of {count} (worst round)"] + [f"{med(name, k):.3f}" for k in ("p50", "p90", "p99", "max")]
    if name == "direct":
        row += ["", "", ""]
    else:
        a50 = med(name, "p50") - med("direct", "p50")
        a99 = med(name, "p99") - med("direct", "p99")
        row += [f"{a50:+.3f}", f"{a99:+.3f}", f"{a99 / 2:+.3f}"]
    print("| " + " | ".join(row) + " |")
EOF
