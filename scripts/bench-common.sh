# bench-common.sh: shared by scripts/bench-proxies.sh and scripts/bench-connections.sh (source it, do not run it).
#
# Installs what the benchmarks need, builds the daemons, re-runs the calling script inside a private network
# namespace (unshare -n, lo up at MTU 1500), and starts nginx and the proxies there, each proxy on its own SOCKS5
# port on 127.0.0.1:
#   ss         shadowsocks-libev, chacha20-ietf-poly1305, TCP and UDP (-u): ss-local on 1081 -> ss-server on 8388
#   microsocks microsocks on 1082 (one process, no encryption)
#   agg1       agg, encrypted (the default), one path: aggclient on 1083 -> aggserver on 127.0.0.1:9901
#   agg2       agg, encrypted, two paths: aggclient --path 127.0.0.1 --path 127.0.0.2 on 1084 -> aggserver on
#              127.0.0.1:9902 and 127.0.0.2:9902
#   aggplain   agg, aggclient --plaintext, aggserver --allow-plaintext, one path: 1085 -> 127.0.0.1:9903
# PROXY_PIDS[name] holds the proxy's process ids (never nginx's or the client's), PROXY_PORT[name] its SOCKS5 port,
# PROXY_DAEMONS[name] "NAME=PID ..." for each process. The caller sets BENCH (its name, for messages), calls
# bench_enter "$@" first and bench_cleanup from its EXIT trap.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
BENCH_PACKAGES=(nginx-light shadowsocks-libev microsocks curl python3 iproute2 procps)
BENCH_PIDS=()
BENCH_CGROUPS=()
declare -A PROXY_PIDS PROXY_PORT PROXY_DAEMONS PROXY_LABEL
PROXY_LABEL=(
    [direct]="direct (curl to nginx, no proxy)"
    [ss]="shadowsocks-libev, chacha20-ietf-poly1305 (ss-local + ss-server)"
    [microsocks]="microsocks (one process, no encryption)"
    [agg1]="agg, encrypted (default), one path"
    [agg2]="agg, encrypted, two paths (127.0.0.1 and 127.0.0.2)"
    [aggplain]="agg, \`--plaintext\`, one path"
)
SS_PASSWORD=bench-proxies-password

bench_fail() { echo "$BENCH: $*" >&2; exit 1; }
bench_log() { echo "$BENCH: $*" >&2; }

# bench_deps: apt-get install whatever of BENCH_PACKAGES is missing. Debian starts nginx and shadowsocks-libev as
# system services when they are installed; a temporary policy-rc.d keeps them stopped (the benchmarks run their
# own instances in a private namespace).
bench_deps() {
    local p missing=()
    for p in "${BENCH_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    bench_log "installing ${missing[*]}"
    local policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    local rc=$?
    [[ -n $policy ]] && rm -f "$policy"
    ((rc == 0)) || bench_fail "apt-get install ${missing[*]} failed"
}

# bench_build: sets AGGSERVER and AGGCLIENT to a release build in .build-release unless both are given.
bench_build() {
    if [[ -n ${AGGSERVER:-} && -n ${AGGCLIENT:-} ]]; then return 0; fi
    local scratch=(-c release --scratch-path "$BENCH_ROOT/.build-release") bin
    bench_log "building aggserver and aggclient (release, .build-release)..."
    (cd "$BENCH_ROOT" && swift build "${scratch[@]}" --product aggserver >&2 &&
        swift build "${scratch[@]}" --product aggclient >&2) || bench_fail "release build failed"
    bin=$(cd "$BENCH_ROOT" && swift build "${scratch[@]}" --show-bin-path)
    AGGSERVER=${AGGSERVER:-$bin/aggserver} AGGCLIENT=${AGGCLIENT:-$bin/aggclient}
}

# bench_enter SCRIPT_ARGS...: outside the namespace, checks root and the tools, installs, builds and re-runs the
# script under unshare -n (it does not return); inside, brings lo up at MTU 1500 and returns.
bench_enter() {
    if [[ "${BENCH_INSIDE:-}" != 1 ]]; then
        (($(id -u) == 0)) || bench_fail "must run as root (unshare -n, cgroups, apt-get)"
        bench_deps
        bench_build
        [[ -x $AGGSERVER && -x $AGGCLIENT ]] || bench_fail "no aggserver/aggclient at $AGGSERVER, $AGGCLIENT"
        exec env BENCH_INSIDE=1 AGGSERVER="$AGGSERVER" AGGCLIENT="$AGGCLIENT" unshare -n "$0" "$@"
    fi
    ip link set lo up && ip link set lo mtu 1500 || bench_fail "cannot set up lo in the namespace"
    # The namespace's own settings: room for tens of thousands of connections to one address.
    sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
}

# bench_workdir NAME: a scratch directory on tmpfs (/dev/shm), so nginx serves its file from memory.
bench_workdir() {
    [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] || bench_fail "/dev/shm is not a tmpfs"
    BENCH_WORK=$(mktemp -d "/dev/shm/$1.XXXXXX") || bench_fail "mktemp failed"
    printf '' >"$BENCH_WORK/empty.toml" # agg's --config, so no /etc/agg file changes what is measured
}

bench_cleanup() {
    local pid dir i
    for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for i in $(seq $((${BENCH_STOP_WAIT:-5} * 10))); do
        for pid in "${BENCH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
        [[ -z ${pid:-} ]] && break
        sleep 0.1
    done
    for pid in "${BENCH_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    BENCH_PIDS=()
    for ((i = ${#BENCH_CGROUPS[@]} - 1; i >= 0; i--)); do
        dir=${BENCH_CGROUPS[i]}
        [[ -d $dir ]] && ! rmdir "$dir" 2>/dev/null && echo "$BENCH: could not remove cgroup $dir" >&2
    done
    BENCH_CGROUPS=()
    if [[ -n ${BENCH_WORK:-} ]]; then
        if [[ -n ${KEEP:-} ]]; then
            rm -f "$BENCH_WORK"/www/*
            echo "$BENCH: logs kept in $BENCH_WORK" >&2
        else
            rm -rf "$BENCH_WORK"
        fi
    fi
}

# bench_traps: cleanup on exit, and Ctrl-C, SIGTERM or SIGHUP turned into an exit that runs it.
bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

wait_tcp() { # wait_tcp PORT [SECONDS] (default BENCH_START_WAIT or 10)
    local i
    for i in $(seq $((${2:-${BENCH_START_WAIT:-10}} * 20))); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    bench_fail "nothing listens on TCP port $1"
}

# nginx_start PORT ROOT CONNECTIONS HEADER_TIMEOUT: nginx (as root, two workers, sendfile) serving ROOT. It closes
# each connection after its response unless NGINX_KEEPALIVE names a keep-alive timeout (e.g. 120s).
nginx_start() {
    local port=$1 root=$2 connections=$3 header_timeout=$4
    mkdir -p "$BENCH_WORK/nginx"
    cat >"$BENCH_WORK/nginx/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 2;
worker_rlimit_nofile $(ulimit -n);
pid $BENCH_WORK/nginx/nginx.pid;
error_log $BENCH_WORK/nginx/error.log warn;
events { worker_connections $connections; multi_accept on; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout ${NGINX_KEEPALIVE:-0};
    client_header_timeout $header_timeout;
    client_body_temp_path $BENCH_WORK/nginx/body;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$port backlog=4096; root $root; }
}
EOF
    nginx -p "$BENCH_WORK/nginx" -c "$BENCH_WORK/nginx/nginx.conf" -e "$BENCH_WORK/nginx/error.log" \
        >"$BENCH_WORK/nginx/stdout.log" 2>&1 &
    BENCH_PIDS+=($!)
    wait_tcp "$port"
}

# proxy_start NAME: starts one proxy (see the top of this file); logs in $BENCH_WORK/NAME-*.log.
# SS_TIMEOUT sets ss-local's and ss-server's idle timeout (-t, seconds; their default is 60).
proxy_start() {
    local name=$1 w=$BENCH_WORK pids=() daemons=() port
    local ss=(-m chacha20-ietf-poly1305 -k "$SS_PASSWORD" -t "${SS_TIMEOUT:-60}" -u)
    case $name in
    ss)
        port=1081
        ss-server -s 127.0.0.1 -p 8388 "${ss[@]}" >"$w/ss-server.log" 2>&1 &
        pids+=($!) daemons+=("ss-server=$!")
        wait_tcp 8388
        ss-local -s 127.0.0.1 -p 8388 -b 127.0.0.1 -l "$port" "${ss[@]}" >"$w/ss-local.log" 2>&1 &
        pids+=($!) daemons+=("ss-local=$!")
        ;;
    microsocks)
        port=1082
        microsocks -i 127.0.0.1 -p "$port" >"$w/microsocks.log" 2>&1 &
        pids+=($!) daemons+=("microsocks=$!")
        ;;
    agg1 | agg2 | aggplain)
        local n listens=() servers=() paths=() server_mode=() client_mode=() address
        case $name in
        agg1) n=1 port=1083 addresses=(127.0.0.1) ;;
        agg2) n=2 port=1084 addresses=(127.0.0.1 127.0.0.2) ;;
        aggplain) n=3 port=1085 addresses=(127.0.0.1) server_mode=(--allow-plaintext) client_mode=(--plaintext) ;;
        esac
        for address in "${addresses[@]}"; do
            listens+=(--listen "$address:990$n") servers+=(--server "$address:990$n") paths+=(--path "$address")
        done
        rm -f "$w/$name.key"
        "$AGGSERVER" keygen "bench$n" -o "$w/$name.key" >/dev/null 2>&1 || bench_fail "aggserver keygen failed"
        "$AGGSERVER" --config "$w/empty.toml" "${listens[@]}" --psk-file "$w/$name.key" --egress-allow 127.0.0.0/8 \
            --metrics "127.0.0.1:920$n" --shutdown-timeout 1 "${server_mode[@]}" >"$w/$name-server.log" 2>&1 &
        pids+=($!) daemons+=("aggserver=$!")
        wait_tcp "920$n"
        "$AGGCLIENT" --config "$w/empty.toml" "${servers[@]}" "${paths[@]}" --socks "127.0.0.1:$port" --http off \
            --psk-file "$w/$name.key" --metrics "127.0.0.1:910$n" --shutdown-timeout 1 "${client_mode[@]}" \
            >"$w/$name-client.log" 2>&1 &
        pids+=($!) daemons+=("aggclient=$!")
        ;;
    *) bench_fail "unknown proxy $name" ;;
    esac
    BENCH_PIDS+=("${pids[@]}")
    PROXY_PIDS[$name]="${pids[*]}" PROXY_PORT[$name]=$port PROXY_DAEMONS[$name]="${daemons[*]}"
    wait_tcp "$port"
}

# proxy_ready NAME URL: waits (up to 20 s) until a fetch of URL through the proxy works and, for agg2, both paths
# of the client are active.
proxy_ready() {
    local name=$1 url=$2 i
    for i in $(seq 100); do
        if curl -s --max-time 2 -o /dev/null -x "socks5h://127.0.0.1:${PROXY_PORT[$name]}" "$url"; then
            [[ $name != agg2 ]] && return 0
            (($(curl -s --max-time 2 http://127.0.0.1:9102/ | grep -c '^path .*state=active') >= 2)) && return 0
        fi
        sleep 0.2
    done
    bench_fail "$name is not ready (logs: $BENCH_WORK/$name*.log)"
}

# cpu_ticks PID...: user + system clock ticks of all the processes' threads so far (/proc/PID/stat fields 14, 15).
cpu_ticks() {
    local pid total=0 fields
    for pid in "$@"; do
        fields=$(sed 's/^.*) //' "/proc/$pid/stat") || return 1
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$fields")))
    done
    echo "$total"
}
CLOCK_TICKS=$(getconf CLK_TCK)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; } # rss_kib PID
