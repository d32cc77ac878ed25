#!/usr/bin/env bash
# Interop of sctpcat with usrsctp over UDP encapsulation (RFC 6951), in a fresh network namespace:
#   (a) sctpcat --connect against usrsctp's echo_server: 10 MiB of random bytes must come back byte-exact;
#   (b) usrsctp's client against sctpcat --listen: every line the client sends must arrive, in order;
#   (c) PR-SCTP, our FORWARD-TSN: sctpcat --connect sends timed unordered messages to usrsctp's discard_server
#       while 20% of the packets reaching discard_server are dropped (iptables statistic match); sctpcat must
#       abandon some, send FORWARD-TSN, and still shut down gracefully, which it can only do once usrsctp has
#       moved its cumulative TSN past the abandoned TSNs;
#   (d) PR-SCTP, usrsctp's FORWARD-TSN: usrsctp's tsctp sends timed unordered messages (-P 1 -t 50 -u) to
#       sctpcat --listen while 10% of the packets reaching sctpcat are dropped; sctpcat must receive FORWARD-TSNs
#       and the association must end with a graceful shutdown.
#
#   scripts/interop-usrsctp.sh [path/to/sctpcat]      (default: .build/debug/sctpcat, or $SCTPCAT)
#
# Needs root (unshare -n) and Debian's libusrsctp-examples. Exits non-zero, with the reason, on any failure.
#
# Two quirks of the usrsctp example programs shape the test:
# - echo_server echoes only the piece of a message its receive callback gets with MSG_EOR; messages over 10240
#   bytes reach it in several pieces, so sctpcat sends 8 KiB messages here.
# - client drops stdin lines silently when its send buffer is full, so its input is paced.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
sctpcat=${1:-${SCTPCAT:-$repo/.build/debug/sctpcat}}
usrsctp=${USRSCTP_EXAMPLES:-/usr/lib/usrsctp}
megabytes=${INTEROP_MEGABYTES:-10}

fail() { echo "interop-usrsctp: $*" >&2; exit 1; }
for tool in unshare ip iptables sha256sum timeout split awk "$usrsctp/echo_server" "$usrsctp/client" \
    "$usrsctp/discard_server" "$usrsctp/tsctp"; do
    command -v "$tool" >/dev/null || fail "$tool is missing (Debian: libusrsctp-examples, iproute2)"
done
[[ -x "$sctpcat" ]] || fail "sctpcat not found at $sctpcat (swift build --product sctpcat)"

if [[ "${INTEROP_USRSCTP_INSIDE:-}" != 1 ]]; then
    # Only loopback exists in the new namespace, so usrsctp advertises nothing else in INIT.
    exec env INTEROP_USRSCTP_INSIDE=1 unshare -n "$0" "$sctpcat"
fi

ip link set lo up
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Waits until something listens on a UDP port (usrsctp binds its port in usrsctp_init).
wait_udp() {
    for _ in $(seq 100); do
        if command -v ss >/dev/null; then
            ss -Huln "sport = :$1" | grep -q . && return 0
        else
            sleep 0.5 && return 0
        fi
        sleep 0.05
    done
    fail "nothing bound UDP port $1"
}

# (a) sctpcat --connect -> usrsctp echo_server (SCTP port 7, UDP 9899); sctpcat on UDP 9900.
head -c $((megabytes * 1024 * 1024)) /dev/urandom >"$work/in.bin"
"$usrsctp/echo_server" 9899 9900 >"$work/echo_server.log" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
wait_udp 9899
start=$(date +%s.%N)
timeout 120 "$sctpcat" --connect 127.0.0.1:7 --udp-port 9900 --peer-udp-port 9899 --message-size 8192 \
    --linger 1 <"$work/in.bin" >"$work/out.bin" 2>"$work/connect.err" ||
    fail "(a) sctpcat --connect failed: $(cat "$work/connect.err")"
end=$(date +%s.%N)
kill -9 "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true
sent=$(sha256sum <"$work/in.bin" | cut -d' ' -f1)
echoed=$(sha256sum <"$work/out.bin" | cut -d' ' -f1)
[[ "$sent" == "$echoed" ]] ||
    fail "(a) echo differs: sent $(stat -c %s "$work/in.bin") bytes ($sent), got $(stat -c %s "$work/out.bin") ($echoed)"
echo "interop-usrsctp: (a) ${megabytes} MiB echoed byte-exact by usrsctp echo_server" \
    "in $(awk "BEGIN { printf \"%.2f\", $end - $start }") s (sha256 $sent)"

# (b) usrsctp client (UDP 9900) -> sctpcat --listen 127.0.0.1:5001 (UDP 9899).
timeout 60 "$sctpcat" --listen 127.0.0.1:5001 --udp-port 9899 >"$work/listen.out" 2>"$work/listen.err" &
listen_pid=$!
pids+=("$listen_pid")
wait_udp 9899
{
    for i in $(seq 1 2000); do
        echo "line $i: the quick brown fox jumps over the lazy dog"
        if ((i % 100 == 0)); then
            printf 'long %.0s' $(seq 1 200)
            echo
        fi
    done
} >"$work/lines.txt"
# Paced: 100 lines at a time.
{
    split -l 101 --filter='cat; sleep 0.02' "$work/lines.txt"
    sleep 0.2
} | timeout 60 "$usrsctp/client" 127.0.0.1 5001 0 9900 9899 >"$work/client.log" 2>&1 ||
    fail "(b) usrsctp client failed: $(tail -3 "$work/client.log")"
wait "$listen_pid" || fail "(b) sctpcat --listen failed: $(cat "$work/listen.err")"
cmp -s "$work/lines.txt" "$work/listen.out" ||
    fail "(b) sctpcat --listen received $(stat -c %s "$work/listen.out") bytes, client sent $(stat -c %s "$work/lines.txt"): $(cmp "$work/lines.txt" "$work/listen.out" 2>&1 | head -1)"
echo "interop-usrsctp: (b) $(wc -l <"$work/lines.txt") lines from usrsctp client arrived intact at sctpcat --listen"

# The counters sctpcat --pr-stats prints: pr_stat <stderr file> <name>.
pr_stat() { grep -o "$2=[0-9a-z]*" "$1" | tail -1 | cut -d= -f2; }

# (c) sctpcat --connect -> usrsctp discard_server (SCTP port 9, UDP 9899), 20% of its input dropped.
iptables -A INPUT -p udp --dport 9899 -m statistic --mode random --probability 0.20 -j DROP
"$usrsctp/discard_server" 9899 9900 >"$work/discard_server.log" 2>&1 &
discard_pid=$!
pids+=("$discard_pid")
wait_udp 9899
head -c $((1024 * 1024)) /dev/urandom >"$work/pr.bin"
timeout 120 "$sctpcat" --connect 127.0.0.1:9 --udp-port 9900 --peer-udp-port 9899 --message-size 1000 \
    --unordered --lifetime-ms 100 --pr-stats <"$work/pr.bin" >/dev/null 2>"$work/pr-connect.err" ||
    fail "(c) sctpcat --connect with PR-SCTP failed: $(cat "$work/pr-connect.err")"
kill -9 "$discard_pid" 2>/dev/null || true
wait "$discard_pid" 2>/dev/null || true
iptables -F INPUT
[[ "$(pr_stat "$work/pr-connect.err" negotiated)" == yes ]] || fail "(c) PR-SCTP not negotiated with usrsctp"
abandoned=$(pr_stat "$work/pr-connect.err" abandoned-sent)
forwards=$(pr_stat "$work/pr-connect.err" forward-tsn-sent)
((abandoned > 0 && forwards > 0)) || fail "(c) nothing abandoned after sending: $(cat "$work/pr-connect.err")"
echo "interop-usrsctp: (c) usrsctp discard_server accepted our FORWARD-TSN: $abandoned messages abandoned," \
    "$forwards FORWARD-TSNs, graceful shutdown"

# (d) usrsctp tsctp (UDP 9900) -> sctpcat --listen 127.0.0.1:5001 (UDP 9899), 10% of sctpcat's input dropped.
iptables -A INPUT -p udp --dport 9899 -m statistic --mode random --probability 0.10 -j DROP
timeout 60 "$sctpcat" --listen 127.0.0.1:5001 --udp-port 9899 --pr-stats >"$work/pr-listen.out" \
    2>"$work/pr-listen.err" &
listen_pid=$!
pids+=("$listen_pid")
wait_udp 9899
timeout 60 "$usrsctp/tsctp" -U 9899 -E 9900 -p 5001 -l 1000 -n 3000 -P 1 -t 50 -u 127.0.0.1 \
    >"$work/tsctp.log" 2>&1 || fail "(d) usrsctp tsctp failed: $(tail -3 "$work/tsctp.log")"
wait "$listen_pid" || fail "(d) sctpcat --listen failed: $(cat "$work/pr-listen.err")"
iptables -F INPUT
received=$(pr_stat "$work/pr-listen.err" forward-tsn-received)
((received > 0)) || fail "(d) no FORWARD-TSN from usrsctp: $(cat "$work/pr-listen.err")"
echo "interop-usrsctp: (d) sctpcat accepted $received FORWARD-TSNs from usrsctp tsctp;" \
    "$(stat -c %s "$work/pr-listen.out") of 3000000 bytes delivered, graceful shutdown"
