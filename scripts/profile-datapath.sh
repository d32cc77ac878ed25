#!/usr/bin/env bash
# profile-datapath.sh: where the CPU of one bulk download through agg goes, per daemon (issue 14).
#
#   scripts/profile-datapath.sh [--proxy agg1|agg2|aggplain|ss] [--size MIB] [--out DIR] [--mallocs|--malloc-callers]
#       (defaults: agg1, a 512 MiB file, /tmp/agg-profile)
#
# --mallocs counts heap allocations instead of sampling the CPU: a uprobe on libc's malloc (perf probe), counted
# per daemon with perf stat over the download, printed per GiB and per full-size packet (1,427 bytes of data, version 5).
# --malloc-callers records every malloc with its call graph instead (perf record --call-graph dwarf on the same probe;
# use a small --size, 32-64 MiB) and prints each daemon's callers, with the Swift frames that called into malloc
# (`perf report --no-children --sort sym -G`), to DIR/NAME.callers.txt.
#
# Needs root and perf (Debian's linux-perf; installed if missing). Like bench-proxies.sh it builds the release
# daemons (or takes AGGSERVER=/AGGCLIENT=) and runs in a private network namespace with lo at MTU 1500: nginx serves
# a file from tmpfs and curl downloads it through the proxy while `perf record -e cpu-clock -F 2000` samples each
# proxy process. It prints each daemon's CPU-s per GiB and its 40 hottest symbols (perf report --sort dso,sym), and
# keeps the perf data in the output directory.
set -uo pipefail
BENCH=profile-datapath
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-common.sh
source "$BENCH_ROOT/scripts/bench-common.sh"

proxy=agg1 size_mib=512 out=/tmp/agg-profile mallocs=0 callers=0
args=("$@")
while (($#)); do
    case $1 in
    --proxy) proxy=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --mallocs) mallocs=1; shift ;;
    --malloc-callers) mallocs=1 callers=1; shift ;;
    *) bench_fail "unknown argument $1" ;;
    esac
done
if [[ ${BENCH_INSIDE:-} != 1 ]]; then
    command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
    if ((mallocs)) && ! perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc'; then
        libc=$(ldconfig -p | awk '/libc.so.6 .*x86-64/ { print $NF; exit }')
        perf probe -q -x "${libc:-/lib/x86_64-linux-gnu/libc.so.6}" malloc || bench_fail "perf probe on malloc failed"
    fi
fi
bench_enter "${args[@]}"
bench_traps
bench_workdir profile
mkdir -p "$out"
mkdir -p "$BENCH_WORK/www"
head -c $((size_mib << 20)) /dev/urandom >"$BENCH_WORK/www/file"
echo ready >"$BENCH_WORK/www/ready"
nginx_start 8080 "$BENCH_WORK/www" 1024 10s
proxy_start "$proxy"
url=http://127.0.0.1:8080/file
proxy_ready "$proxy" http://127.0.0.1:8080/ready
read -ra pids <<<"${PROXY_PIDS[$proxy]}"
read -ra daemons <<<"${PROXY_DAEMONS[$proxy]}"
records=()
for i in "${!pids[@]}"; do
    name=${daemons[i]%=*}
    if ((callers)); then
        perf record -q -e probe_libc:malloc --call-graph dwarf,8192 -o "$out/$name.data" -p "${pids[i]}" 2>/dev/null &
    elif ((mallocs)); then
        perf stat -x, -e probe_libc:malloc -o "$out/$name.mallocs" -p "${pids[i]}" 2>/dev/null &
    else
        perf record -q -e cpu-clock -F 2000 -o "$out/$name.data" -p "${pids[i]}" 2>/dev/null &
    fi
    records+=($!)
    before[i]=$(cpu_ticks "${pids[i]}")
done
sleep 0.5
curl -sS -o /dev/null -w '%{size_download} bytes in %{time_total} s\n' -x "socks5h://127.0.0.1:${PROXY_PORT[$proxy]}" "$url"
for i in "${!pids[@]}"; do after[i]=$(cpu_ticks "${pids[i]}"); done
for pid in "${records[@]}"; do kill -INT "$pid"; done
for pid in "${records[@]}"; do wait "$pid"; done
hz=$(getconf CLK_TCK)
for i in "${!pids[@]}"; do
    name=${daemons[i]%=*}
    awk -v t=$((after[i] - before[i])) -v hz="$hz" -v m="$size_mib" -v n="$name" \
        'BEGIN { printf "%s: %.2f CPU-s per GiB\n", n, t / hz * 1024 / m }'
    if ((callers)); then
        perf report -i "$out/$name.data" --stdio --no-children --sort sym -G --percent-limit 1 2>/dev/null |
            grep -v '^#' | grep -v '^$' >"$out/$name.callers.txt"
        echo "$name: $(perf report -i "$out/$name.data" --stdio --sort sym 2>/dev/null |
            awk '/^# Samples:/ { print $3 }') mallocs recorded, callers in $out/$name.callers.txt"
        continue
    fi
    if ((mallocs)); then
        count=$(awk -F, '/probe_libc:malloc/ { print $1 }' "$out/$name.mallocs")
        awk -v c="$count" -v m="$size_mib" -v n="$name" 'BEGIN {
            printf "%s: %d mallocs, %.1f M per GiB, %.2f per packet of 1,427 data bytes\n", n, c, c / m * 1024 / 1e6,
                c / (m * 1048576 / 1427) }'
        continue
    fi
    perf report -i "$out/$name.data" --stdio --no-children --sort dso,sym 2>/dev/null | grep -v '^#' | grep '%' |
        head -40 >"$out/$name.top.txt"
    cat "$out/$name.top.txt"
done
