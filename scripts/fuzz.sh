#!/usr/bin/env bash
# Builds the fuzzers (Fuzz/, libFuzzer through swiftc -sanitize=fuzzer) and runs each on its committed seed corpus.
#
#   scripts/fuzz.sh [seconds]            total time, split evenly between the fuzzers (default 60)
#   FUZZERS="SOCKS HTTP" scripts/fuzz.sh  only these (names without the "Fuzzer" suffix)
#   RUNS=10000000 scripts/fuzz.sh        stop each after this many executions instead
#   SANITIZE=fuzzer,address ...          add AddressSanitizer (slower; default: fuzzer only, Swift's own checks trap)
#   FUZZ_ARGS="-jobs=1" ...              more libFuzzer flags for every run
#
# Fuzzers: Wire (SCTP wire format), Association (an established association fed packet sequences), Stream (agg's
# stream protocol decoder and authentication), SOCKS and HTTP (the ingress parsers and handlers), Status (the
# daemons' status endpoint) and Decrypt (the datagram decryption layer) once it exists. New inputs go to Fuzz/.build/corpus-<name> (not committed); crashes
# to Fuzz/.build/artifacts/<name>/, which the run prints. Replay one with: Fuzz/.build/release/<Name>Fuzzer <file>
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
sanitize=${SANITIZE:-fuzzer}
fuzz=$repo/Fuzz
cd "$fuzz"

# name, corpus folder, largest input (bytes)
all=(Wire:wire:9000 Association:association:9000 Stream:stream:4096 SOCKS:socks:1024 HTTP:http:8192
    Status:status:24576)
[[ -d Sources/DecryptFuzzer ]] && all+=(Decrypt:decrypt:2048)
selected=()
for entry in "${all[@]}"; do
    name=${entry%%:*}
    if [[ -z "${FUZZERS:-}" || " $FUZZERS " == *" $name "* ]]; then selected+=("$entry"); fi
done
[[ ${#selected[@]} -gt 0 ]] || { echo "fuzz.sh: no fuzzer matches FUZZERS=$FUZZERS" >&2; exit 2; }

# -parse-as-library: libFuzzer supplies main(); the Swift modules must not have top-level code of their own.
swift build -c release -Xswiftc "-sanitize=$sanitize" -Xswiftc -parse-as-library >&2

# Swift's own backtracer would take the trap's signal first and exit before libFuzzer saves the crashing input.
export SWIFT_BACKTRACE=enable=no
share=$((seconds / ${#selected[@]}))
((share > 0)) || share=1
status=0
for entry in "${selected[@]}"; do
    IFS=: read -r name corpus maxlen <<<"$entry"
    mkdir -p ".build/corpus-$corpus" ".build/artifacts/$corpus"
    limit=(-max_total_time="$share")
    [[ -n "${RUNS:-}" ]] && limit=(-runs="$RUNS")
    echo "fuzz.sh: ${name}Fuzzer ${limit[*]}" >&2
    .build/release/"${name}Fuzzer" ".build/corpus-$corpus" "Corpus/$corpus" \
        "${limit[@]}" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=".build/artifacts/$corpus/" ${FUZZ_ARGS:-} || status=$?
    ((status == 0)) || { echo "fuzz.sh: ${name}Fuzzer found a crash (artifacts in Fuzz/.build/artifacts/$corpus)" >&2; exit $status; }
done
