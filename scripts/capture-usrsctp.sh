#!/usr/bin/env bash
# Captures a complete usrsctp association over UDP encapsulation on loopback: handshake, echoed data, graceful
# shutdown. The result is a golden file for the wire decoder's interop test.
#
#   scripts/capture-usrsctp.sh [output.pcap]
#
# Needs root (for `unshare -n`), dumpcap (Debian: wireshark-common or tshark) and the usrsctp example programs
# (Debian: libusrsctp-examples). Everything runs in a fresh network namespace, so only 127.0.0.1 is advertised in
# INIT and the capture holds nothing but the association.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
output=${1:-$repo/Tests/SCTPEngineTests/Resources/usrsctp-echo.pcap}
usrsctp=${USRSCTP_EXAMPLES:-/usr/lib/usrsctp}
server_udp=9899   # tshark decodes UDP 9899 as SCTP without being told
client_udp=9900   # usrsctp_init binds its UDP port, so the two processes need different ones

for tool in unshare dumpcap "$usrsctp/echo_server" "$usrsctp/client"; do
    command -v "$tool" >/dev/null || { echo "capture-usrsctp: $tool is missing" >&2; exit 1; }
done

if [[ "${1:-}" != "--inside" && "${CAPTURE_USRSCTP_INSIDE:-}" != 1 ]]; then
    # Re-run this script inside a new network namespace.
    exec env CAPTURE_USRSCTP_INSIDE=1 unshare -n "$0" "$output"
fi

ip link set lo up
work=$(mktemp -d)
cleanup() {
    for pid in ${client_pid:-} ${server_pid:-} ${capture_pid:-}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Capture UDP on loopback. -q: no packet counts on stderr; -P: classic pcap, not pcapng.
dumpcap -q -P -i lo -f "udp port $server_udp or udp port $client_udp" -w "$work/capture.pcap" 2>"$work/dumpcap.log" &
capture_pid=$!
for _ in $(seq 50); do
    grep -q "Capturing on" "$work/dumpcap.log" 2>/dev/null && break
    sleep 0.1
done
sleep 0.3

# The echo server listens on SCTP port 7 and answers on whichever UDP port an INIT came from.
"$usrsctp/echo_server" "$server_udp" "$client_udp" >"$work/server.log" 2>&1 &
server_pid=$!
sleep 0.5

# The client sends each stdin line as one message, and at stdin's EOF shuts the association down and waits for
# the peer to complete the shutdown. Pauses between lines let the echoes and SACKs interleave as they do in use.
{
    for line in "hello from usrsctp" "the quick brown fox jumps over the lazy dog" \
        "$(printf 'x%.0s' $(seq 1 1200))" "last line"; do
        echo "$line"
        sleep 0.3
    done
    sleep 0.5
} | timeout 20 "$usrsctp/client" 127.0.0.1 7 0 "$client_udp" "$server_udp" >"$work/client.log" 2>&1 &
client_pid=$!
wait "$client_pid" || { echo "capture-usrsctp: client failed" >&2; cat "$work/client.log" >&2; exit 1; }
client_pid=

# Give the last SHUTDOWN-COMPLETE time to reach the capture, then stop dumpcap cleanly so it flushes the file.
sleep 0.5
kill -INT "$capture_pid"
wait "$capture_pid" || true
capture_pid=

mkdir -p "$(dirname "$output")"
cp "$work/capture.pcap" "$output"
echo "capture-usrsctp: wrote $output ($(stat -c %s "$output") bytes)"
echo "--- client output"; cat "$work/client.log"
