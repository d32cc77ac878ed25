#!/usr/bin/env bash
# bench-connections.sh: many connections at once through agg and, in the same run, through shadowsocks-libev and
# microsocks (issue 21).
#
#   scripts/bench-connections.sh [--counts "100 1000 10000"] [--rounds R] [--idle N] [--idle-seconds S]
#                                [--proxies "agg2 ss ..."] [--keep-alive]
#       (defaults: bursts of 100, 1,000 and 10,000, one round; 10,000 idle connections held for 60 s
#        (IDLE_SECONDS=); direct agg2 ss microsocks)
#
# Needs root. Installs and builds like scripts/bench-proxies.sh and runs in the same kind of private network
# namespace (unshare -n, lo at MTU 1500), with the proxies of scripts/bench-common.sh at their default settings
# (agg2: encrypted, two paths, 127.0.0.1 and 127.0.0.2), except shadowsocks-libev's idle timeout (-t), raised above
# the idle test's hold so it does not close the held connections (its default is 60 s). nginx serves a 10 KB file.
# The file limit of the shell (ulimit -n, which the proxies, nginx and the client inherit) is raised to NOFILE
# (65536, as the systemd units' LimitNOFILE) or, where the hard limit is lower, to the hard limit, and printed.
#
# Burst: for each N, for each proxy in turn, scripts/socks-load.py opens N connections to the proxy at once; each
# does the SOCKS5 exchange, fetches the file (HTTP/1.1, Connection: close) and reads to EOF. Printed: successes,
# failures by cause (SOCKS5 reply code, timeout, reset, ...), wall time of the whole burst, p50 and p99 of one
# connection's time (connect() to its last byte), the peak VmRSS of each proxy process during the burst (sampled
# every 50 ms), their CPU seconds and the client's. The "direct" row makes the same connections straight to nginx:
# what the client and nginx cost on their own (the client is one Python process: at 10,000 connections its own CPU
# is seconds, so compare the proxies with each other and with this floor, not with zero).
# Idle (every proxy but direct): IDLE_N connections opened at once through each proxy (SOCKS5 done, connected to
# nginx), held without a byte for IDLE_SECONDS while each proxy process's CPU (% of one core) is measured, VmRSS
# while held, then one GET on every held connection: how many complete.
# --rounds R runs every burst R times, the proxies in turn within a round and in the reverse order in every second
# round (so neither goes first each time), and adds a table of medians over the rounds: each proxy's wall time and
# CPU, and, for each proxy other than ss, the median over the rounds of its wall time and CPU over ss's in the same
# round. A single burst of 1,000 moves by a quarter from run to run on a shared machine; judge by the medians.
# --keep-alive: the bursts' GETs keep their connections open (no "Connection: close"): nginx sends no FIN after its
# response, as to a browser, each connection ends when its body is complete and the client closes it. A proxy then
# reads each response as the data comes, not in one drain at the server's FIN.
# Each test prints one JSON line as it ends, then both tables as Markdown. Connections not done CONNECT_TIMEOUT
# (60 s) after a test's start count as timeouts. Daemons and the namespace go on exit, Ctrl-C included. KEEP=1 keeps
# the logs.
set -uo pipefail

BENCH=bench-connections
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
LOAD=$BENCH_ROOT/scripts/socks-load.py
PROXY_LABEL[direct]="direct to nginx, no proxy (the client's own floor)"

arguments=("$@")
keep_alive=() counts="100 1000 10000" rounds=1 idle_n=10000 idle_seconds=${IDLE_SECONDS:-60} proxies="direct agg2 ss microsocks"
while (($# > 0)); do
    case $1 in
    --counts) counts=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --idle) idle_n=$2; shift 2 ;;
    --idle-seconds) idle_seconds=$2; shift 2 ;;
    --proxies) proxies=$2; shift 2 ;;
    --keep-alive) keep_alive=(--keep-alive); shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_fail "unknown argument $1 (see --help)" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || bench_fail "not a number of rounds: $rounds"
for n in $counts $idle_n $idle_seconds; do [[ $n =~ ^[0-9]+$ ]] || bench_fail "not a count: $n"; done
for p in $proxies; do [[ -n ${PROXY_LABEL[$p]:-} ]] || bench_fail "unknown proxy $p"; done

bench_enter "${arguments[@]}"
bench_traps
bench_workdir bench-connections

nofile=${NOFILE:-65536}
if ! ulimit -n "$nofile" 2>/dev/null; then
    nofile=$(ulimit -Hn)
    ulimit -n "$nofile" || bench_fail "cannot raise the file limit to $nofile"
fi
largest=$idle_n
for n in $counts; do ((n > largest)) && largest=$n; done
if ((nofile < 2 * largest + 100)); then
    bench_log "file limit $nofile (the hard limit here): a proxy process that holds two sockets per connection" \
        "(ss-local, ss-server, microsocks) runs out of descriptors before $largest connections"
fi

HTTP_PORT=8000 SIZE=10240
mkdir -p "$BENCH_WORK/www"
head -c "$SIZE" /dev/urandom >"$BENCH_WORK/www/small.bin"
((${#keep_alive[@]} > 0)) && export NGINX_KEEPALIVE=$((idle_seconds + 120))s
nginx_start "$HTTP_PORT" "$BENCH_WORK/www" "$nofile" "$((idle_seconds + 120))s"
export SS_TIMEOUT=$((idle_seconds + 120))
for p in ${proxies//direct/}; do proxy_start "$p"; done
for p in ${proxies//direct/}; do proxy_ready "$p" "http://127.0.0.1:$HTTP_PORT/small.bin"; done
results=$BENCH_WORK/results
: >"$results"

# load TEST N PROXY [ROUND]: one run of socks-load.py; appends {"proxy": ..., "round": ..., "rss_start_kib": ...,
# result} to $results.
load() {
    local test=$1 n=$2 p=$3 round=${4:-1} daemons=() daemon rss=() out
    for daemon in ${PROXY_DAEMONS[$p]:-}; do
        daemons+=(--daemon "$daemon")
        rss+=("\"${daemon%=*}\": $(rss_kib "${daemon#*=}")")
    done
    local via=127.0.0.1:${PROXY_PORT[$p]:-}
    [[ $p == direct ]] && via=none
    out=$("$PYTHON" "$LOAD" "$test" --proxy "$via" --target "127.0.0.1:$HTTP_PORT" \
        --path /small.bin --size "$SIZE" -n "$n" --hold "$idle_seconds" --timeout "${CONNECT_TIMEOUT:-60}" \
        "${daemons[@]}" "${keep_alive[@]}" 2>"$BENCH_WORK/load.err")
    if [[ $out != "{"* ]]; then
        bench_log "$test $n $p: socks-load.py failed: $(tail -n 3 "$BENCH_WORK/load.err")"
        out="{\"test\": \"$test\", \"n\": $n, \"error\": \"socks-load.py failed\"}"
    fi
    local died=""
    for daemon in ${PROXY_DAEMONS[$p]:-}; do
        kill -0 "${daemon#*=}" 2>/dev/null && continue
        died+="${died:+ }${daemon%=*}" DEAD[$p]=1
        bench_log "$test $n $p: ${daemon%=*} died (its log is in $BENCH_WORK/); no more tests through $p"
    done
    echo "{\"proxy\": \"$p\", \"round\": $round, \"died\": \"$died\", \"rss_start_kib\": {$(IFS=,; echo "${rss[*]}")}, ${out:1}" |
        tee -a "$results" >&2
}
declare -A DEAD

machine="$(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
bench_log "bursts: $counts; idle: $idle_n for $idle_seconds s; proxies: $proxies; file limit $nofile; $machine;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
reversed=$(printf '%s\n' $proxies | tac | tr '\n' ' ')
for n in $counts; do
    for ((round = 1; round <= rounds; round++)); do
        order=$proxies
        ((round % 2 == 0)) && order=$reversed
        for p in $order; do
            [[ -n ${DEAD[$p]:-} ]] && continue
            load burst "$n" "$p" "$round"
            sleep 2 # the closed connections' last packets, before the next proxy's burst
        done
    done
done
if ((idle_n > 0)); then
    for p in ${proxies//direct/}; do
        [[ -n ${DEAD[$p]:-} ]] && continue
        load idle "$idle_n" "$p"
        sleep 2
    done
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

rows=()
for p in $proxies; do rows+=("$p=${PROXY_LABEL[$p]}"); done
"$PYTHON" - "$results" "$machine" "$load_end" "$nofile" "$rounds" "${rows[@]}" <<'EOF'
import json, statistics, sys

path, machine, load, nofile, rounds, *specs = sys.argv[1:]
rounds = int(rounds)
labels = dict(spec.split("=", 1) for spec in specs)
results = [json.loads(line) for line in open(path)]

def causes(counter):
    return ", ".join(f"{count:,} {cause}" for cause, count in sorted(counter.items(), key=lambda kv: -kv[1]))

def per_daemon(values, form):
    return ", ".join(f"{name} {form(value)}" for name, value in values.items()) or "-"

def label(r):
    return labels[r["proxy"]] + (f" (**{r['died']} died**)" if r.get("died") else "")

def mb(kib):
    return f"{kib / 1024:.1f} MB"

def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"

print(f"\n{machine}; file limit {nofile}; load average at the end {load}")
bursts = [r for r in results if r["test"] == "burst"]
if bursts:
    print("\nBurst: N SOCKS5 connections at once, each fetching 10 KB from nginx:\n")
    print("| N at once | proxy | ok | failed | wall | p50 | p99 | peak RSS during the burst | CPU | client CPU |")
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: | --- | --- | ---: |")
    for r in bursts:
        if "error" in r:
            print(f"| {r['n']:,} | {label(r)} | - | {r['error']} | | | | | | |")
            continue
        failed = f"{r['failed']:,}" + (f" ({causes(r['causes'])})" if r["failed"] else "")
        print(f"| {r['n']:,} | {label(r)} | {r['ok']:,} | {failed} | {r['wall_s']:.2f} s | "
              f"{ms(r['p50_s'])} | {ms(r['p99_s'])} | {per_daemon(r['rss_peak_kib'], mb)} | "
              f"{per_daemon(r['cpu_s'], lambda s: f'{s:.2f} s')} | {r['client_cpu_s']:.2f} s |")
complete = [r for r in bursts if "error" not in r and not r.get("died")]
if rounds > 1 and complete:
    print(f"\nMedians over {rounds} rounds (a ratio is taken within each round, then the median of the ratios):\n")
    print("| N at once | proxy | rounds | wall | CPU of its daemons | wall / ss's | CPU / ss's |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n in sorted({r["n"] for r in complete}):
        by_round = {}
        for r in complete:
            if r["n"] == n:
                by_round.setdefault(r["round"], {})[r["proxy"]] = r
        for p in labels:
            mine = [group[p] for group in by_round.values() if p in group]
            if not mine:
                continue
            wall = statistics.median(r["wall_s"] for r in mine)
            cpu = statistics.median(sum(r["cpu_s"].values()) for r in mine)
            pairs = [(group[p], group["ss"]) for group in by_round.values() if p in group and "ss" in group]
            wall_ratio = cpu_ratio = "-"
            if p != "ss" and pairs:
                wall_ratio = f"{statistics.median(a['wall_s'] / b['wall_s'] for a, b in pairs):.2f}"
                if all(sum(b["cpu_s"].values()) > 0 for _, b in pairs):
                    cpu_ratio = f"{statistics.median(sum(a['cpu_s'].values()) / sum(b['cpu_s'].values()) for a, b in pairs):.2f}"
            print(f"| {n:,} | {labels[p]} | {len(mine)} | {wall:.2f} s | {cpu:.2f} s | {wall_ratio} | {cpu_ratio} |")
idles = [r for r in results if r["test"] == "idle"]
if idles:
    held_for = next((r["idle_s"] for r in idles if "idle_s" in r), 0)
    print(f"\nIdle: N connections opened at once, held idle for {held_for:.0f} s, then each used once:\n")
    print("| N | proxy | held (open failures) | RSS before / while held | CPU while idle, % of a core |"
          " used once: ok | failed |")
    print("| ---: | --- | --- | --- | --- | ---: | --- |")
    for r in idles:
        if "error" in r:
            print(f"| {r['n']:,} | {label(r)} | {r['error']} | | | | |")
            continue
        held = f"{r['held']:,}" + (f" ({r['open_failed']:,}: {causes(r['open_causes'])})" if r["open_failed"] else "")
        rss = ", ".join(f"{name} {mb(r['rss_start_kib'][name])} / {mb(kib)}" for name, kib in r["rss_held_kib"].items())
        failed = f"{r['use_failed']:,}" + (f" ({causes(r['use_causes'])})" if r["use_failed"] else "")
        print(f"| {r['n']:,} | {label(r)} | {held} | {rss} | "
              f"{per_daemon(r['idle_cpu_percent'], lambda p: f'{p:.2f} %')} | {r['used_ok']:,} | {failed} |")
EOF
