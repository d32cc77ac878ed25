#!/usr/bin/env bash
# Builds the wire fuzzer (Fuzz/, libFuzzer through swiftc -sanitize=fuzzer) and runs it on the seed corpus.
#
#   scripts/fuzz.sh [seconds]         run for this long (default 60)
#   RUNS=1000000 scripts/fuzz.sh      stop after this many executions instead
#   SANITIZE=fuzzer,address ...       add AddressSanitizer (slower; default: fuzzer only, Swift's own checks trap)
#
# New inputs go to Fuzz/.build/corpus-wire (not committed); crashes to Fuzz/.build/artifacts/wire/, which the run prints.
# Replay a crash with: Fuzz/.build/release/WireFuzzer <file>
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
sanitize=${SANITIZE:-fuzzer}
fuzz=$repo/Fuzz
cd "$fuzz"

# -parse-as-library: libFuzzer supplies main(); the Swift module must not have top-level code of its own.
swift build -c release -Xswiftc "-sanitize=$sanitize" -Xswiftc -parse-as-library --product WireFuzzer >&2

mkdir -p .build/corpus-wire .build/artifacts/wire
limit=(-max_total_time="$seconds")
[[ -n "${RUNS:-}" ]] && limit=(-runs="$RUNS")
# Inputs larger than a jumbo frame's SCTP packet say nothing more about the parser.
exec .build/release/WireFuzzer .build/corpus-wire Corpus/wire \
    "${limit[@]}" -max_len=9000 -print_final_stats=1 -artifact_prefix=.build/artifacts/wire/ ${FUZZ_ARGS:-}
