#!/usr/bin/env bash
# agg-server-failover.sh: failover between two aggserver instances (issue 18): both run in agg-s, server A on
# S1:9899 and S2:9899, server B on S1:9900 and S2:9900, the same client key; aggclient in agg-c lists them as two
# server groups, A preferred (--server-group). Over deploy/netlab's two NATs (RATE1/RATE2 Mbit/s, 20 and 30 by
# default):
#   1. the association comes up on group 0 (A);
#   2. a download runs through A, A is killed (SIGKILL: it sends nothing more) in the middle of it, and a new
#      connection succeeds through B within 3 s of the kill; the download through A is cut;
#   3. the client's status names group 1 in use and one failover;
#   4. A is started again: within 35 s new connections go to A again (status: group 0, one return).
# PASS/FAIL lines, then "N passed, M failed"; non-zero exit on a failure. KEEP=1 keeps the logs. Takes the
# machine-wide lab lock (agg-common.sh): run it alone.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30}
B_PORT=9900 B_METRICS=127.0.0.1:9102

agg_checks agg-server-failover "aggserver.log, aggserver-b.log, aggclient.log, status-*.txt"
agg_build debug || exit 1
lab up --rate1 "$RATE1" --rate2 "$RATE2" >/dev/null || { echo "lab up failed" >&2; exit 1; }

mkdir -p "$AGG_WORK/www"
head -c $((200 * 1024 * 1024)) /dev/urandom >"$AGG_WORK/www/big"
head -c 1000 /dev/urandom >"$AGG_WORK/www/small"
"$AGGSERVER" keygen labclient -o "$AGG_WORK/lab.key" >/dev/null || exit 1

# server_a: aggserver A in agg-s (appends to its log: it is started twice).
server_a() {
    ip netns exec agg-s "$AGGSERVER" --listen "$S1:$AGG_PORT" --listen "$S2:$AGG_PORT" --psk-file "$AGG_WORK/lab.key" \
        --egress-allow "$S1/32" --metrics "$SERVER_METRICS" -v >>"$AGG_WORK/aggserver.log" 2>&1 &
    A_PID=$!
    AGG_PIDS+=("$A_PID")
    wait_udp_listen s "$AGG_PORT"
}
server_a || exit 1
ip netns exec agg-s "$AGGSERVER" --listen "$S1:$B_PORT" --listen "$S2:$B_PORT" --psk-file "$AGG_WORK/lab.key" \
    --egress-allow "$S1/32" --metrics "$B_METRICS" -v >"$AGG_WORK/aggserver-b.log" 2>&1 &
AGG_PIDS+=($!)
ip netns exec agg-s "$PYTHON" -m http.server "$HTTP_PORT" --bind "$S1" --directory "$AGG_WORK/www" \
    >"$AGG_WORK/http.log" 2>&1 &
AGG_PIDS+=($!)
wait_udp_listen s "$B_PORT" && wait_tcp_listen s "$HTTP_PORT" || exit 1
ip netns exec agg-c "$AGGCLIENT" --server-group "$S1:$AGG_PORT,$S2:$AGG_PORT" --server-group "$S1:$B_PORT,$S2:$B_PORT" \
    --path "$C1" --path "$C2" --socks 127.0.0.1:1080 --http 127.0.0.1:8080 --psk-file "$AGG_WORK/lab.key" \
    --metrics "$CLIENT_METRICS" -v >"$AGG_WORK/aggclient.log" 2>&1 &
AGG_PIDS+=($!)
wait_tcp_listen c 1080 || exit 1

# group_field FIELD: FIELD of the client's server_group status line.
group_field() {
    client_status | awk -v f="$1" '$1 == "server_group" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }'
}

wait_association 20
check $? "association up over both paths"
[[ $(group_field in_use) == 0 ]]
check $? "server group 0 (A, preferred) in use"
snapshot start

fetch big "$AGG_WORK/big.out" 300 >"$AGG_WORK/big.result" &
BG=$!
sleep 4
kill -9 "$A_PID"
wait "$A_PID" 2>/dev/null
killed=$(now)
# New connections until one succeeds (each may take up to 2 s).
ok=0
while [[ $(calc "$(now) - $killed < 3") == True ]]; do
    read -r _ bytes _ rc <<<"$(fetch small "$AGG_WORK/small.out" 2)"
    if [[ $rc == 0 && $bytes == 1000 ]]; then
        ok=1
        break
    fi
    sleep 0.1
done
took=$(calc "round($(now) - $killed, 2)")
check $((1 - ok)) "a new connection succeeded through server B ${took} s after A was killed (within 3 s)"
snapshot failover
[[ $(group_field in_use) == 1 && $(group_field failovers) == 1 ]]
check $? "status: server group 1 in use, 1 failover"
wait "$BG"
BG=
read -r _ big_bytes _ big_rc <"$AGG_WORK/big.result"
[[ $big_rc != 0 && $big_bytes -lt $((200 * 1024 * 1024)) ]]
check $? "the download through A was cut (curl exit $big_rc after $big_bytes bytes)"

server_a || exit 1
deadline=$(($(date +%s) + 35))
while (($(date +%s) < deadline)) && [[ $(group_field in_use) != 0 ]]; do sleep 0.5; done
[[ $(group_field in_use) == 0 && $(group_field returns) == 1 ]]
check $? "server A back: new connections return to group 0 (1 return)"
read -r _ bytes _ rc <<<"$(fetch small "$AGG_WORK/small.out" 10)"
[[ $rc == 0 && $bytes == 1000 ]]
check $? "a new connection after the return succeeds"
snapshot end
finish
