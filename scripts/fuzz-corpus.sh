#!/usr/bin/env bash
# Rebuilds the wire fuzzer's seed corpus, Fuzz/Corpus/wire/, from real and encoder-made packets:
#   - the usrsctp capture (Tests/SCTPEngineTests/Resources/usrsctp-echo.pcap), one packet per distinct chunk list;
#   - every packet of the encoder catalog (Tests/SCTPEngineTests/Interop/EncoderCatalog.swift), which the tshark
#     interop test writes to a capture when AGG_ENCODER_CATALOG_PCAP names one.
# Each seed is the SCTP packet alone (the UDP payload). Needs tshark and xxd.
#
#   scripts/fuzz-corpus.sh            (SCRATCH=dir uses another SwiftPM scratch path than .build)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=$repo/Fuzz/Corpus/wire
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# extract <pcap> <prefix> <udp port to decode as SCTP> <dedupe: 1 or 0>
extract() {
    local pcap=$1 prefix=$2 port=$3 dedupe=$4
    declare -A seen=()
    while IFS=$'\t' read -r number types payload; do
        [[ -n "$payload" ]] || continue
        if [[ $dedupe == 1 ]]; then
            [[ -z "${seen[$types]:-}" ]] || continue
            seen[$types]=1
        fi
        # Named after the frame and its distinct chunk types, in order: usrsctp-14-3-0 is a SACK bundled with DATA.
        name=$(tr ',' '\n' <<<"$types" | awk '!seen[$0]++' | paste -sd-)
        printf '%s' "$payload" | xxd -r -p >"$corpus/$prefix-$(printf '%02d' "$number")-$name"
    done < <(tshark -r "$pcap" -d "udp.port==$port,sctp" -T fields -E occurrence=a -E aggregator=, \
        -e frame.number -e sctp.chunk_type -e udp.payload 2>/dev/null)
}

mkdir -p "$corpus"
rm -f "$corpus"/usrsctp-* "$corpus"/encoder-*
extract "$repo/Tests/SCTPEngineTests/Resources/usrsctp-echo.pcap" usrsctp 9899 1

(cd "$repo" && AGG_ENCODER_CATALOG_PCAP="$work/catalog.pcap" swift test ${SCRATCH:+--scratch-path "$SCRATCH"} --filter TsharkEncoderTests >"$work/test.log" 2>&1) ||
    { echo "fuzz-corpus: the tshark interop test failed:" >&2; tail -30 "$work/test.log" >&2; exit 1; }
extract "$work/catalog.pcap" encoder 19899 0

echo "fuzz-corpus: $(ls "$corpus" | wc -l) seeds, $(du -sk "$corpus" | cut -f1) KiB in $corpus"
