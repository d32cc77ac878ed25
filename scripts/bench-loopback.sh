#!/usr/bin/env bash
# Goodput of one bulk transfer over real UDP on loopback with a 1500-byte MTU (SCTP packets of at most 1472 bytes):
# sctpcat to sctpcat, then usrsctp to usrsctp (scripts/usrsctp-bulk.c) as the baseline, in the same run.
#
#   scripts/bench-loopback.sh [MEGABYTES] [MESSAGE_SIZE]       (defaults: 200 MiB in 64 KiB messages, one stream)
#
# Needs root (unshare -n, so the namespace's loopback can take MTU 1500), cc and libusrsctp-dev, /usr/bin/time.
# SCTPCAT=path skips the release build. Prints goodput (payload bytes over the sender's wall time, handshake and
# shutdown included), the ratio, and user+system CPU seconds of each side.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
megabytes=${1:-200}
message_size=${2:-65536}
bytes=$((megabytes * 1024 * 1024))

fail() { echo "bench-loopback: $*" >&2; exit 1; }

if [[ "${BENCH_LOOPBACK_INSIDE:-}" != 1 ]]; then
    for tool in unshare ip cc /usr/bin/time; do command -v "$tool" >/dev/null || fail "$tool is missing"; done
    if [[ -z "${SCTPCAT:-}" ]]; then
        (cd "$repo" && swift build -c release --product sctpcat --scratch-path .build-release >&2) ||
            fail "release build failed"
        SCTPCAT=$(cd "$repo" && swift build -c release --product sctpcat --scratch-path .build-release \
            --show-bin-path)/sctpcat
    fi
    bulk=$(mktemp -d)/usrsctp-bulk
    cc -O2 -Wall -o "$bulk" "$repo/scripts/usrsctp-bulk.c" -lusrsctp || fail "cannot build usrsctp-bulk.c"
    exec env BENCH_LOOPBACK_INSIDE=1 SCTPCAT="$SCTPCAT" USRSCTP_BULK="$bulk" unshare -n "$0" "$megabytes" \
        "$message_size"
fi

ip link set lo up
ip link set lo mtu 1500
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work" "$(dirname "$USRSCTP_BULK")"' EXIT
timefmt="%e %U %S"

wait_udp() {
    for _ in $(seq 100); do
        ss -Huln "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    fail "nothing bound UDP port $1"
}

# Reads "wall user system" from a /usr/bin/time -o file (its last line).
cpu() { tail -1 "$1" | awk '{ printf "%.2f", $2 + $3 }'; }
wall() { tail -1 "$1" | awk '{ print $1 }'; }

# sctpcat -> sctpcat
/usr/bin/time -f "$timefmt" -o "$work/sctpcat-recv.time" \
    "$SCTPCAT" --listen 127.0.0.1:5001 --udp-port 9899 2>"$work/sctpcat-recv.err" | wc -c >"$work/sctpcat-recv.count" &
wait_udp 9899
head -c "$bytes" /dev/zero | /usr/bin/time -f "$timefmt" -o "$work/sctpcat-send.time" \
    "$SCTPCAT" --connect 127.0.0.1:5001 --udp-port 9900 --peer-udp-port 9899 --message-size "$message_size" \
    2>"$work/sctpcat-send.err" || fail "sctpcat sender failed: $(cat "$work/sctpcat-send.err")"
wait
received=$(cat "$work/sctpcat-recv.count")
[[ "$received" == "$bytes" ]] || fail "sctpcat receiver got $received of $bytes bytes: $(cat "$work/sctpcat-recv.err")"

# usrsctp -> usrsctp
/usr/bin/time -f "$timefmt" -o "$work/usrsctp-recv.time" "$USRSCTP_BULK" recv 9899 5001 >"$work/usrsctp-recv.out" &
wait_udp 9899
/usr/bin/time -f "$timefmt" -o "$work/usrsctp-send.time" \
    "$USRSCTP_BULK" send 9900 9899 127.0.0.1 5001 "$bytes" "$message_size" >"$work/usrsctp-send.out" ||
    fail "usrsctp sender failed"
wait
received=$(cut -d' ' -f1 "$work/usrsctp-recv.out")
[[ "$received" == "$bytes" ]] || fail "usrsctp receiver got $received of $bytes bytes"

mbps() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", b * 8 / t / 1e6 }'; }
ours=$(mbps "$(wall "$work/sctpcat-send.time")")
theirs=$(mbps "$(wall "$work/usrsctp-send.time")")
echo "bulk transfer: $megabytes MiB in $message_size-byte messages, one stream, loopback MTU 1500, $(date -u +%F)"
printf '%-8s %10s %8s %14s %14s\n' "" "Mbit/s" "wall s" "sender CPU s" "receiver CPU s"
printf '%-8s %10s %8s %14s %14s\n' sctpcat "$ours" "$(wall "$work/sctpcat-send.time")" \
    "$(cpu "$work/sctpcat-send.time")" "$(cpu "$work/sctpcat-recv.time")"
printf '%-8s %10s %8s %14s %14s\n' usrsctp "$theirs" "$(wall "$work/usrsctp-send.time")" \
    "$(cpu "$work/usrsctp-send.time")" "$(cpu "$work/usrsctp-recv.time")"
awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "ratio sctpcat/usrsctp: %.2f\n", a / b }'
