# agg-common.sh: shared by the lab scripts that run the daemons (agg-*.sh, latency-under-load.sh). Source it,
# do not run it.
#
# Runs aggserver in agg-s (S1:9899 and S2:9899, status page on the server's 127.0.0.1:9101), a test HTTP server
# in agg-s on S1:8000 serving $AGG_WWW, and aggclient in agg-c (paths C1 and C2, SOCKS on 127.0.0.1:1080, HTTP
# proxy on 127.0.0.1:8080, status page on the client's 127.0.0.1:9100). The caller sets AGG_WORK (a scratch
# directory), AGGSERVER and AGGCLIENT (binaries), and calls agg_stop from its EXIT trap. A script that checks and
# prints PASS/FAIL lines calls agg_checks NAME instead, which sets up the work directory, the trap and the counters.

# One lab at a time on this machine: every lab script uses the same namespaces (agg-c, agg-s, agg-r1, agg-r2), so a
# second one waits here for the first to finish. A caller that already holds the lock sets AGG_LAB_LOCKED=1 (e.g.
# `AGG_LAB_LOCKED=1 flock /run/lock/agg-lab.lock Tests/Lab/mptcp-baseline.sh` for scripts that do not source this).
if [[ -z ${AGG_LAB_LOCKED:-} ]]; then
    mkdir -p /run/lock
    exec {AGG_LAB_LOCK_FD}>/run/lock/agg-lab.lock
    flock -w 1800 "$AGG_LAB_LOCK_FD" || { echo "another lab run has held /run/lock/agg-lab.lock for 30 min" >&2; exit 1; }
    export AGG_LAB_LOCKED=1
fi

LAB=${LAB:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../deploy/netlab" && pwd)/netlab.sh}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
C1=10.1.0.2 C2=10.2.0.2 S1=198.51.100.1 S2=198.51.100.2 N1=203.0.113.2 N2=203.0.113.6
AGG_PORT=9899 HTTP_PORT=8000 CLIENT_METRICS=127.0.0.1:9100 SERVER_METRICS=127.0.0.1:9101
AGG_PIDS=() AGG_SERVER_ARGS=() AGG_CLIENT_ARGS=()

lab() { "$LAB" "$@"; }
now() { date +%s.%N; }

# agg_workdir NAME: AGG_WORK, a fresh /tmp/NAME.XXXXXX that the daemons (another user under ip netns) can read.
agg_workdir() {
    AGG_WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    chmod 755 "$AGG_WORK"
}

# agg_checks NAME [KEPT]: the scaffolding of a script that checks: agg_workdir NAME, the counters behind pass, fail,
# check and finish, and an EXIT trap that kills $BG (a background download, if one is running), runs the script's
# agg_extra_cleanup if it defines one, stops the daemons, takes the lab down, and removes AGG_WORK unless a check
# failed or KEEP is set (then it says where the logs are: KEPT names them).
agg_checks() {
    agg_workdir "$1"
    AGG_KEPT=${2:-aggserver.log, aggclient.log, status-*.txt}
    passed=0 failed=0
    trap agg_checks_cleanup EXIT
}
agg_checks_cleanup() {
    [[ -n ${BG:-} ]] && kill "$BG" 2>/dev/null
    agg_stop
    declare -F agg_extra_cleanup >/dev/null && agg_extra_cleanup
    lab down >/dev/null 2>&1
    if ((failed > 0)) || [[ -n ${KEEP:-} ]]; then
        echo "logs kept in $AGG_WORK ($AGG_KEPT)"
        rm -rf "$AGG_WORK/www"
    else
        rm -rf "$AGG_WORK"
    fi
}
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { # check CONDITION_EXIT_STATUS DESCRIPTION...
    local status=$1
    shift
    if [[ $status == 0 ]]; then pass "$*"; else fail "$*"; fi
}
# finish: the totals line, then exit non-zero if a check failed.
finish() {
    echo "$passed passed, $failed failed"
    ((failed == 0))
    exit
}
# snapshot NAME: both status pages into the work directory, for the logs.
snapshot() { { echo "== client"; client_status; echo "== server"; server_status; } >"$AGG_WORK/status-$1.txt" 2>&1; }
calc() { "$PYTHON" -c "print($1)"; }

# agg_build [debug|release]: sets AGGSERVER/AGGCLIENT unless given in the environment.
agg_build() {
    local config=${1:-debug} root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if [[ -n ${AGGSERVER:-} && -n ${AGGCLIENT:-} ]]; then return 0; fi
    local scratch=(--scratch-path "$root/.build")
    [[ $config == release ]] && scratch=(-c release --scratch-path "$root/.build-release")
    echo "building aggserver and aggclient ($config)..."
    (cd "$root" && swift build "${scratch[@]}" --product aggserver >/dev/null && swift build "${scratch[@]}" --product aggclient >/dev/null) ||
        { echo "build failed" >&2; return 1; }
    local bin
    bin=$(cd "$root" && swift build "${scratch[@]}" --show-bin-path)
    AGGSERVER=${AGGSERVER:-$bin/aggserver} AGGCLIENT=${AGGCLIENT:-$bin/aggclient}
}

# agg_start FILE_DIR: key pair, aggserver, HTTP server (serving FILE_DIR), aggclient. Logs in $AGG_WORK.
# AGG_PLAINTEXT=1 runs the pair in plain RFC 6951 mode (client --plaintext, server --allow-plaintext) instead of
# the default datagram encryption, e.g. to measure what the encryption's 25 bytes per packet (33 in version 3) cost.
# AGG_HTTP_BIND moves the HTTP server off S1; the arrays AGG_SERVER_ARGS and AGG_CLIENT_ARGS add flags.
# AGG_PATH2_OPTIONS (e.g. ",backup") is appended to the client's second --path; AGG_PATH1_NAME names the first
# (`--path NAME=C1`, so that `aggclient path NAME ...` can change it).
agg_start() {
    local www=$1
    local server_mode=() client_mode=()
    if [[ "${AGG_PLAINTEXT:-0}" == 1 ]]; then server_mode=(--allow-plaintext); client_mode=(--plaintext); fi
    rm -f "$AGG_WORK/lab.key"
    "$AGGSERVER" keygen labclient -o "$AGG_WORK/lab.key" >/dev/null || return 1
    ip netns exec agg-s "$AGGSERVER" --listen "$S1:$AGG_PORT" --listen "$S2:$AGG_PORT" --psk-file "$AGG_WORK/lab.key" \
        --egress-allow "$S1/32" --metrics "$SERVER_METRICS" "${server_mode[@]}" "${AGG_SERVER_ARGS[@]}" -v \
        >"$AGG_WORK/aggserver.log" 2>&1 &
    AGG_PIDS+=($!)
    ip netns exec agg-s "$PYTHON" -m http.server "$HTTP_PORT" --bind "${AGG_HTTP_BIND:-$S1}" --directory "$www" \
        >"$AGG_WORK/http.log" 2>&1 &
    AGG_PIDS+=($!)
    wait_udp_listen s "$AGG_PORT" && wait_tcp_listen s "$HTTP_PORT" || return 1
    ip netns exec agg-c "$AGGCLIENT" --server "$S1:$AGG_PORT" --server "$S2:$AGG_PORT" --path "${AGG_PATH1_NAME:+$AGG_PATH1_NAME=}$C1" --path "$C2${AGG_PATH2_OPTIONS:-}" \
        --socks 127.0.0.1:1080 --http 127.0.0.1:8080 --psk-file "$AGG_WORK/lab.key" --metrics "$CLIENT_METRICS" \
        "${client_mode[@]}" "${AGG_CLIENT_ARGS[@]}" -v >"$AGG_WORK/aggclient.log" 2>&1 &
    AGG_PIDS+=($!)
    wait_tcp_listen c 1080 || return 1
}

agg_stop() {
    local pid
    for pid in "${AGG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${AGG_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    AGG_PIDS=()
}

wait_tcp_listen() { # wait_tcp_listen c|s PORT
    for _ in $(seq 100); do
        lab exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
        sleep 0.1
    done
    echo "nothing listens on TCP port $2 in agg-$1" >&2
    return 1
}
wait_udp_listen() {
    for _ in $(seq 100); do
        lab exec "$1" ss -Hlun "sport = :$2" | grep -q . && return 0
        sleep 0.1
    done
    echo "nothing listens on UDP port $2 in agg-$1" >&2
    return 1
}

# Status pages: client_status / server_status print the plain-text page.
client_status() { ip netns exec agg-c curl -s --max-time 3 "http://$CLIENT_METRICS/"; }
server_status() { ip netns exec agg-s curl -s --max-time 3 "http://$SERVER_METRICS/"; }

# server_path_bytes N: DATA bytes the server has sent towards path N (summed over its path lines whose remote is
# NAT N's public address, whatever the port: a rebind changes it).
server_path_bytes() {
    local nat=$N1
    [[ $1 == 2 ]] && nat=$N2
    server_status | awk -v nat="$nat" '
        $1 == "path" { r = ""; b = 0
            for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "remote") r = kv[2]; if (kv[1] == "bytes_sent") b = kv[2] }
            split(r, hp, ":"); if (hp[1] == nat) sum += b }
        END { print sum + 0 }'
}
# client_path_field N FIELD: FIELD of the client's path line(s) whose local address is CN (first match).
# udp_field client|server FIELD: a field of the status page's udp line (datagrams_sent, datagrams_received, ...).
udp_field() {
    "${1}_status" | awk -v f="$2" '$1 == "udp" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }'
}

client_path_field() {
    local addr=$C1
    [[ $1 == 2 ]] && addr=$C2
    client_status | awk -v a="$addr" -v f="$2" '
        $1 == "path" { l = ""; v = ""
            for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "local") l = kv[2]; if (kv[1] == f) v = kv[2] }
            split(l, hp, ":"); if (hp[1] == a && !done) { print v; done = 1 } }'
}

# wait_association SECONDS: until the client's page says "ready" and both paths are active.
wait_association() {
    local deadline=$(($(date +%s) + $1))
    while (($(date +%s) < deadline)); do
        if client_status | grep -q '^association .* ready' &&
            [[ $(client_path_field 1 state) == active && $(client_path_field 2 state) == active ]]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# fetch NAME OUT [MAX_TIME]: curl through SOCKS5 (remote name resolution) in agg-c; prints "SECONDS BYTES EXIT".
fetch() {
    local name=$1 out=$2 max=${3:-120} rc
    ip netns exec agg-c curl -sS --max-time "$max" -x "socks5h://127.0.0.1:1080" -o "$out" \
        -w '%{time_total} %{size_download} %{time_starttransfer}\n' "http://$S1:$HTTP_PORT/$name" \
        >"$out.curl" 2>"$out.err"
    rc=$?
    echo "$(cat "$out.curl") $rc"
}

# mbit FILE: the receiver's goodput in Mbit/s from an iperf3 -J result (0 when unreadable).
mbit() { "$PYTHON" -c "import json,sys; print('%.2f' % (json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second']/1e6))" "$1" 2>/dev/null || echo 0; }

# single_paths: iperf3 on each path for $T seconds (results in $AGG_WORK); sets single1 single2 sum.
single_paths() {
    local s1 s2
    ip netns exec agg-s iperf3 -s -1 -B "$S1" -p 5201 >/dev/null 2>&1 &
    s1=$!
    ip netns exec agg-s iperf3 -s -1 -B "$S2" -p 5202 >/dev/null 2>&1 &
    s2=$!
    wait_tcp_listen s 5201 && wait_tcp_listen s 5202 || exit 1
    lab exec c iperf3 -c "$S1" -B "$C1" -p 5201 -t "$T" -O 2 -J >"$AGG_WORK/single1.json"
    lab exec c iperf3 -c "$S2" -B "$C2" -p 5202 -t "$T" -O 2 -J >"$AGG_WORK/single2.json"
    wait "$s1" "$s2"
    single1=$(mbit "$AGG_WORK/single1.json") single2=$(mbit "$AGG_WORK/single2.json")
    sum=$(calc "'%.2f' % ($single1 + $single2)")
    echo "single path 1 (C1 -> S1): $single1 Mbit/s"
    echo "single path 2 (C2 -> S2): $single2 Mbit/s"
    echo "sum of single paths:      $sum Mbit/s"
}

# mptcp_endpoints: the path managers of variant A of mptcp-baseline.sh: the client adds a subflow from C2, the
# server announces S2 (a server bound to S1 refuses the C1->S2 join).
mptcp_endpoints() {
    for ns in c s; do lab exec "$ns" ip mptcp limits set subflow 2 add_addr_accepted 2; done
    lab exec c ip mptcp endpoint add "$C2" dev c2 subflow
    lab exec s ip mptcp endpoint add "$S2" dev s2 signal
}
