#!/usr/bin/env bash
# seal-gather-bench.sh: instructions per sealed datagram of Benchmarks/SealGather/gather.c's three modes (copy then
# seal, BoringSSL's seal_scatter, a gather seal), under callgrind (issue 14).
#
#   scripts/seal-gather-bench.sh [PAYLOAD_BYTES]     (default 1408: a full packet's DATA payload)
#
# Links against the CCryptoBoringSSL objects of a release build in .build-release (build aggserver first); needs
# clang and valgrind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
objects=$(find "$root/.build-release" -path '*release/CCryptoBoringSSL.build/*' -name '*.o' | sort)
[[ -n $objects ]] || { echo "no CCryptoBoringSSL objects: swift build -c release --build-path .build-release first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clang -O2 -c "$root/Benchmarks/SealGather/gather.c" -o "$work/gather.o"
# shellcheck disable=SC2086
clang++ -o "$work/gather" "$work/gather.o" $objects -lpthread
strip --strip-debug "$work/gather"
"$work/gather" c "${1:-1408}" 0
for mode in c s g; do
    count() {
        valgrind --tool=callgrind --callgrind-out-file="$work/cg" "$work/gather" "$mode" "${1:-1408}" "$2" 2>&1 |
            awk '/Collected/ { print $4 }'
    }
    none=$(count "${1:-1408}" 0)
    many=$(count "${1:-1408}" 10000)
    echo "$mode: $(((many - none) / 10000)) instructions per seal"
done
