#!/usr/bin/env bash
# bench-proxies.sh: goodput and CPU per GiB of one bulk download through agg and through the proxies it is compared
# with (issue 14), on loopback with a 1500-byte MTU, all in the same run.
#
#   scripts/bench-proxies.sh [--size MIB] [--rounds N] [--proxies "ss agg1 ..."] [--no-limit]
#       (defaults: a 256 MiB file, 3 rounds, every proxy, both tables)
#
# Needs root. Installs nginx-light, shadowsocks-libev, microsocks and curl with apt-get if they are missing, builds
# aggserver and aggclient (release, .build-release; AGGSERVER=/AGGCLIENT= skip the build) and re-runs itself in a
# private network namespace (unshare -n, lo at MTU 1500). There nginx (sendfile) serves a file of random bytes from
# tmpfs, and curl downloads it directly and through each proxy of scripts/bench-common.sh (ss, microsocks, agg1,
# agg2, aggplain), in alternating rounds (direct, ss, microsocks, agg1, agg2, aggplain, direct, ss, ...).
# Goodput is the file's bits over curl's time_total (connect and request included). CPU is the user + system time
# of every proxy process involved (both daemons of a pair; not curl, not nginx), from /proc/PID/stat before and
# after the download, per GiB of the file. Each table row is the median of the rounds; agg rows add their ratio to
# shadowsocks-libev's medians (CPU: below 1 is cheaper; goodput: above 1 is faster). /proc counts CPU in 10 ms
# ticks, so small files give coarse CPU figures (shadowsocks-libev spends about 0.04 s on 8 MiB).
# The second table repeats the rounds with each proxy process in its own cgroup limited to half of one core
# (cgroup v2 cpu.max "50000 100000"; where the cpu controller is only on a cgroup v1 hierarchy, as on hybrid
# hosts, cpu.cfs_quota_us 50000 per cpu.cfs_period_us 100000, the same CFS bandwidth limit, and it says so).
# Every measurement is printed as it is taken, then both tables as Markdown. Daemons, the namespace and the
# cgroups go on exit, Ctrl-C included. KEEP=1 keeps the logs.
set -uo pipefail

BENCH=bench-proxies
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

arguments=("$@")
size_mib=256 rounds=3 proxies="ss microsocks agg1 agg2 aggplain" limit=1
while (($# > 0)); do
    case $1 in
    --size) size_mib=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --proxies) proxies=$2; shift 2 ;;
    --no-limit) limit=0; shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_fail "unknown argument $1 (see --help)" ;;
    esac
done
[[ $size_mib =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || bench_fail "--size and --rounds take positive integers"
((rounds >= 3)) || bench_log "fewer than 3 rounds: the medians are not worth much"
for p in $proxies; do [[ -n ${PROXY_LABEL[$p]:-} && $p != direct ]] || bench_fail "unknown proxy $p"; done

bench_enter "${arguments[@]}"
bench_traps
bench_workdir bench-proxies
ulimit -n 4096

HTTP_PORT=8000
bytes=$((size_mib * 1024 * 1024))
url="http://127.0.0.1:$HTTP_PORT/file.bin"
results=$BENCH_WORK/results
mkdir -p "$BENCH_WORK/www"
head -c "$bytes" /dev/urandom >"$BENCH_WORK/www/file.bin"
head -c 10240 /dev/urandom >"$BENCH_WORK/www/small.bin"
nginx_start "$HTTP_PORT" "$BENCH_WORK/www" 1024 60s
for p in $proxies; do proxy_start "$p"; done
for p in $proxies; do proxy_ready "$p" "http://127.0.0.1:$HTTP_PORT/small.bin"; done

# --- cgroups ---------------------------------------------------------------------------------------------------
# cgroup_limit: one cgroup per proxy process, each limited to half of one core; sets limit_note.
cgroup_limit() {
    local v2 v1 base p pid daemon name dir
    v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ { print $2; exit }' /proc/mounts)
    if [[ -n $v2 ]] && grep -qw cpu "$v2/cgroup.controllers" 2>/dev/null; then
        grep -qw cpu "$v2/cgroup.subtree_control" || echo +cpu >"$v2/cgroup.subtree_control" ||
            bench_fail "cannot enable the cpu controller in $v2"
        base=$v2/bench-proxies.$$
        mkdir "$base" && BENCH_CGROUPS+=("$base") && echo +cpu >"$base/cgroup.subtree_control" ||
            bench_fail "cannot create cgroup $base"
        limit_note="cgroup v2 ($v2), one cgroup per proxy process, cpu.max \"50000 100000\""
    elif [[ -n $v1 ]]; then
        base=$v1/bench-proxies.$$
        mkdir "$base" && BENCH_CGROUPS+=("$base") || bench_fail "cannot create cgroup $base"
        limit_note="cgroup v2 has no cpu controller here (${v2:-no cgroup2 mount}$([[ -n $v2 ]] &&
            echo ": controllers \"$(cat "$v2/cgroup.controllers")\"")), so cgroup v1's ($v1): one cgroup per"
        limit_note+=" proxy process, cpu.cfs_quota_us 50000 per cpu.cfs_period_us 100000"
    else
        bench_log "no cgroup hierarchy with the cpu controller is mounted: no half-core table"
        return 1
    fi
    for p in $proxies; do
        for daemon in ${PROXY_DAEMONS[$p]}; do
            name=${daemon%=*} pid=${daemon#*=}
            dir=$base/$p.$name
            mkdir "$dir" && BENCH_CGROUPS+=("$dir") || bench_fail "cannot create cgroup $dir"
            if [[ -e $dir/cpu.max ]]; then
                echo "50000 100000" >"$dir/cpu.max"
            else
                echo 100000 >"$dir/cpu.cfs_period_us" && echo 50000 >"$dir/cpu.cfs_quota_us"
            fi || bench_fail "cannot set the CPU limit of $dir"
            echo "$pid" >"$dir/cgroup.procs" || bench_fail "cannot move $name ($pid) into $dir"
        done
    done
    bench_log "limit: $limit_note"
}

# --- measuring -------------------------------------------------------------------------------------------------
# download TABLE ROUND PROXY: one download; appends "TABLE PROXY ROUND MBITS CPU_PER_GIB PER_PROCESS" to $results
# (CPU "-" for direct; MBITS "FAILED" when curl failed or the size is wrong).
download() {
    local table=$1 round=$2 p=$3 via=(--noproxy '*') pids=() before=() after=() out rc got seconds
    local mbits cpu=- split="" i daemon
    if [[ $p != direct ]]; then
        via=(-x "socks5h://127.0.0.1:${PROXY_PORT[$p]}")
        read -ra pids <<<"${PROXY_PIDS[$p]}"
        for i in "${!pids[@]}"; do before[i]=$(cpu_ticks "${pids[i]}"); done
    fi
    out=$(curl -sS --max-time 900 -o /dev/null -w '%{size_download} %{time_total}' "${via[@]}" "$url" 2>&1)
    rc=$?
    for i in "${!pids[@]}"; do after[i]=$(cpu_ticks "${pids[i]}"); done
    read -r got seconds <<<"$out"
    if ((rc != 0)) || [[ $got != "$bytes" ]]; then
        echo "$table $p $round FAILED"
        bench_log "$table round $round $p: FAILED: curl exit $rc, $out"
        return
    fi
    mbits=$(awk -v b="$bytes" -v t="$seconds" 'BEGIN { printf "%.1f", b * 8 / t / 1e6 }')
    if [[ $p != direct ]]; then
        local total=0 daemons
        read -ra daemons <<<"${PROXY_DAEMONS[$p]}"
        for i in "${!pids[@]}"; do
            total=$((total + after[i] - before[i]))
            split+="${split:+,}${daemons[i]%=*}:$(awk -v t=$((after[i] - before[i])) -v hz="$CLOCK_TICKS" \
                -v b="$bytes" 'BEGIN { printf "%.2f", t / hz * 1073741824 / b }')"
        done
        cpu=$(awk -v t="$total" -v hz="$CLOCK_TICKS" -v b="$bytes" 'BEGIN { printf "%.2f", t / hz * 1073741824 / b }')
    fi
    echo "$table $p $round $mbits $cpu $split"
    bench_log "$table round $round $p: $seconds s, $mbits Mbit/s, ${cpu} CPU-s per GiB ${split:+($split)}"
}

run_rounds() { # run_rounds TABLE
    local round p
    for round in $(seq "$rounds"); do
        for p in direct $proxies; do download "$1" "$round" "$p" >>"$results"; done
    done
}

# --- the run ---------------------------------------------------------------------------------------------------
machine="$(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
bench_log "$size_mib MiB, $rounds rounds, proxies: $proxies; $machine; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run_rounds unlimited
limit_note="" throttled=""
if ((limit)) && cgroup_limit; then
    run_rounds half-core
    # The limit at work: CFS periods in which each process was throttled (cpu.stat nr_throttled).
    for dir in "${BENCH_CGROUPS[@]}"; do
        [[ -e $dir/cgroup.procs && $dir != */bench-proxies.$$ ]] || continue
        throttled+="${throttled:+, }${dir##*/} $(awk '$1 == "nr_throttled" { print $2 }' "$dir/cpu.stat")"
    done
    bench_log "throttled periods: $throttled"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

rows=()
for p in direct $proxies; do rows+=("$p=${PROXY_LABEL[$p]}"); done
"$PYTHON" - "$results" "$size_mib" "$rounds" "$machine" "$load_end" "$limit_note" "${rows[@]}" <<'EOF'
import statistics, sys

path, size_mib, rounds, machine, load, limit_note, *specs = sys.argv[1:]
labels = dict(spec.split("=", 1) for spec in specs)
order = list(labels)
rows = {}
for line in open(path):
    table, proxy, _, *figures = line.split()
    entry = rows.setdefault((table, proxy), {"mbits": [], "cpu": [], "split": {}, "failed": 0})
    if figures[0] == "FAILED":
        entry["failed"] += 1
        continue
    entry["mbits"].append(float(figures[0]))
    if figures[1] != "-":
        entry["cpu"].append(float(figures[1]))
        for part in figures[2].split(","):
            name, value = part.split(":")
            entry["split"].setdefault(name, []).append(float(value))

def median(values):
    return statistics.median(values) if values else None

def number(value, digits):
    return "-" if value is None else f"{value:,.{digits}f}"

titles = {
    "unlimited": "no CPU limit",
    "half-core": "each proxy process limited to half of one core (" + limit_note + ")",
}
print(f"\n{size_mib} MiB download, median of {rounds} alternating rounds; {machine}; load average at the end {load}")
for table in ("unlimited", "half-core"):
    if not any(key[0] == table for key in rows):
        continue
    print(f"\n{titles[table]}:\n")
    print("| proxy | Mbit/s | CPU-s per GiB | CPU per process | CPU vs shadowsocks-libev |"
          " Mbit/s vs shadowsocks-libev |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    ss = rows.get((table, "ss"), {"mbits": [], "cpu": []})
    ss_mbits, ss_cpu = median(ss["mbits"]), median(ss["cpu"])
    for proxy in order:
        entry = rows.get((table, proxy))
        if entry is None:
            continue
        mbits, cpu = median(entry["mbits"]), median(entry["cpu"])
        split = ", ".join(f"{name} {median(values):.2f}" for name, values in entry["split"].items()) or "-"
        cpu_ratio = mbits_ratio = "-"
        if proxy.startswith("agg") and ss_cpu and cpu is not None:
            cpu_ratio = f"{cpu / ss_cpu:.2f}"
        if proxy.startswith("agg") and ss_mbits and mbits is not None:
            mbits_ratio = f"{mbits / ss_mbits:.2f}"
        failed = f" ({entry['failed']} of {rounds} rounds FAILED)" if entry["failed"] else ""
        print(f"| {labels[proxy]}{failed} | {number(mbits, 0)} | {number(cpu, 1)} | {split} | {cpu_ratio} |"
              f" {mbits_ratio} |")
EOF
