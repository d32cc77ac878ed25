#!/usr/bin/env bash
# profile-connections.sh: the instructions one new connection costs each agg daemon, counted (issue 21).
#
#   scripts/profile-connections.sh [--count N] [--keep-alive] [--top T] [--out DIR]
#       (defaults: 1,000 connections, nginx closing each one, the 25 heaviest functions, /tmp/agg-connections)
#
# Runs scripts/bench-connections.sh twice through agg2 alone (two paths, encrypted) with both daemons under
# `valgrind --tool=callgrind` (each a `strip --strip-debug` copy of the release build, or of AGGSERVER=/AGGCLIENT=):
# a burst of 10 connections, then one of N. Each daemon's count in the second run less the first, over N - 10, is
# what one connection costs it (start-up, the readiness checks and exit are in both and cancel out): printed per
# daemon as instructions per connection, split by where they run (the Swift runtime, BoringSSL, libc, each Swift
# module by its mangled name), then the T functions with the most instructions of their own per connection, and
# agg's T functions with the most inclusive of what they call. Instruction counts do not move with the load of a
# shared machine as times do; callgrind's own spread between runs is about 2 %. --keep-alive passes on to
# bench-connections.sh (nginx keeps each connection open, the client closes it). The callgrind files stay in DIR
# (callgrind_annotate reads them).
#
# Needs root and valgrind (installed if missing). A burst of 1,000 takes about a minute under valgrind.
set -uo pipefail
BENCH=profile-connections
# shellcheck source=bench-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

count=1000 keep_alive=() top=25 out=/tmp/agg-connections
while (($# > 0)); do
    case $1 in
    --count) count=$2; shift 2 ;;
    --keep-alive) keep_alive=(--keep-alive); shift ;;
    --top) top=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_fail "unknown argument $1 (see --help)" ;;
    esac
done
[[ $count =~ ^[0-9]+$ ]] && ((count > 10)) || bench_fail "--count must be a number above 10"
(($(id -u) == 0)) || bench_fail "must run as root"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null ||
    bench_fail "cannot install valgrind"
bench_build
mkdir -p "$out" && rm -f "$out"/*.out.* "$out"/*.bin
# The wrappers: the daemon under callgrind, except `keygen` (a short command of its own).
for daemon in aggserver aggclient; do
    binary=$AGGSERVER
    [[ $daemon == aggclient ]] && binary=$AGGCLIENT
    strip --strip-debug -o "$out/$daemon.bin" "$binary" || bench_fail "cannot copy $binary"
    cat >"$out/$daemon" <<EOF
#!/bin/sh
[ "\$1" = keygen ] && exec "$out/$daemon.bin" "\$@"
exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$out/$daemon.out.\$\$" "$out/$daemon.bin" "\$@"
EOF
    chmod +x "$out/$daemon"
done

for n in 10 "$count"; do
    bench_log "a burst of $n under callgrind..."
    BENCH_START_WAIT=90 AGGSERVER=$out/aggserver AGGCLIENT=$out/aggclient \
        "$BENCH_ROOT/scripts/bench-connections.sh" --counts "$n" --rounds 1 --idle 0 --proxies agg2 \
        "${keep_alive[@]}" 2>"$out/burst-$n.log" | grep '^| [0-9]' >&2
    sleep 3 # callgrind writes its file as the daemon exits
    for daemon in aggserver aggclient; do
        file=$(ls -t "$out/$daemon".out.* 2>/dev/null | head -n 1)
        [[ -n $file ]] || bench_fail "no callgrind output of $daemon (log: $out/burst-$n.log)"
        mv "$file" "$out/$daemon.$n.callgrind"
    done
done

"$PYTHON" - "$out" "$count" "$top" <<'EOF'
import collections, re, subprocess, sys

out, count, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def costs(path, inclusive):
    """The file's total, and the instructions of each function (name [object]) in it."""
    text = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    total, result = 0, collections.Counter()
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
        if not match:
            continue
        value = int(match.group(1).replace(",", ""))
        if match.group(2).strip() == "PROGRAM TOTALS":
            total = value
        else:
            result[match.group(2)] += value
    return total, result

def where(name):
    function, _, obj = name.rpartition(" [")
    obj = obj.rstrip("]").rsplit("/", 1)[-1]
    function = function.removeprefix("???:")
    if obj.startswith("libswiftCore"):
        return "Swift runtime (retain/release, allocation, metadata, casts, exclusivity)"
    if obj.startswith(("libc.", "ld-linux")):
        return "libc (memcpy, malloc, formatting)"
    if "CCryptoBoringSSL" in function or "chacha" in function.lower() or "poly1305" in function.lower():
        return "BoringSSL (ChaCha20-Poly1305)"
    mangled = re.match(r"\$s(\d+)(\w+)", function)
    if mangled:
        return "Swift module " + mangled.group(2)[: int(mangled.group(1))]
    return "other (closures, thunks, C)"

def demangle(names):
    text = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(names), capture_output=True,
                          text=True).stdout
    return text.split("\n")

n = count - 10
OURS = {"SCTPEngine", "AggProtocol", "AggTransport", "AggEgress", "AggIngress", "Proxy", "AggObservability"}
for daemon in ("aggserver", "aggclient"):
    small, large = f"{out}/{daemon}.10.callgrind", f"{out}/{daemon}.{count}.callgrind"
    (total_before, before), (total_after, after) = costs(small, False), costs(large, False)
    per = (total_after - total_before) / n
    print(f"\n{daemon}: {per:,.0f} instructions per connection ({n:,} connections)\n")
    by_place = collections.Counter()
    for name in set(before) | set(after):
        by_place[where(name)] += (after[name] - before[name]) / n
    print("| where | instructions per connection | share |\n| --- | ---: | ---: |")
    for place, value in by_place.most_common():
        if abs(value) >= 0.005 * per:
            print(f"| {place} | {value:,.0f} | {100 * value / per:.0f} % |")
    heaviest = sorted(((after[k] - before[k]) / n, k) for k in set(before) | set(after))[::-1][:top]
    names = demangle([k.rpartition(" [")[0].removeprefix("???:") for _, k in heaviest])
    print(f"\nHeaviest functions by their own instructions, per connection:\n")
    for (value, _), name in zip(heaviest, names):
        print(f"{value:10,.0f}  {name[:150]}")
    # agg's own functions with what they call: where the connection's work enters NIO, the engine, the runtime.
    (_, before), (_, after) = costs(small, True), costs(large, True)
    ours = [k for k in set(before) | set(after) if where(k).removeprefix("Swift module ") in OURS]
    heaviest = sorted(((after[k] - before[k]) / n, k) for k in ours)[::-1][:top]
    names = demangle([k.rpartition(" [")[0].removeprefix("???:") for _, k in heaviest])
    print(f"\nagg's heaviest functions, inclusive of what they call, per connection:\n")
    for (value, _), name in zip(heaviest, names):
        print(f"{value:10,.0f}  {name[:150]}")
EOF
