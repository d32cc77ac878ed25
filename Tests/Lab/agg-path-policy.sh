#!/usr/bin/env bash
# agg-path-policy.sh: a backup path through deploy/netlab's two NATs (issue 16, per-path policy).
#
# Brings the lab up (RATE1/RATE2 Mbit/s, DELAY1/DELAY2 ms one way; 20 and 30 Mbit/s, 5 ms by default), builds the
# daemons (debug; or AGGSERVER=/AGGCLIENT= binaries), runs them as agg-integration.sh does but with
# --path C2,backup, and checks:
#   - the association comes up with both paths active, and the server shows path 2 as the client's backup;
#   - a download carries under 1% of its bytes on path 2 (the server was asked over ASCONF);
#   - a download during which path 1 is blackholed completes intact, carried by path 2;
#   - after path 1 is restored, downloads go back to path 1 (path 2 under 1% again);
#   - `aggclient path one --rate 8mbit` at run time (CAP_MBIT): over 10 s of a download the server sends on path 1
#     within 5% of the cap (the client asked it over ASCONF; path 2, a backup, stays idle), and `--rate off` lifts it
#     without a new association.
# PASS/FAIL lines, then "N passed, M failed"; non-zero exit on a failure. Tears everything down on exit.
# SIZE_MB (20) sets the test file's size. KEEP=1 keeps the logs (printed path). Only one lab script may run at a
# time on a machine: check that `ip netns list` shows no agg-* namespaces first.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=agg-common.sh
. "$HERE/agg-common.sh"
RATE1=${RATE1:-20} RATE2=${RATE2:-30} DELAY1=${DELAY1:-5} DELAY2=${DELAY2:-5} SIZE_MB=${SIZE_MB:-20}
AGG_PATH2_OPTIONS=",backup" AGG_PATH1_NAME=one CAP_MBIT=${CAP_MBIT:-8}

agg_checks agg-path-policy
# under_one_percent PART TOTAL
under_one_percent() { (($1 * 100 < $2)); }

(($(id -u) == 0)) || { echo "must run as root" >&2; exit 1; }
if ip netns list | grep -q '^agg-'; then echo "another lab is running (ip netns list shows agg-*)" >&2; exit 1; fi
started=$(date +%s)
agg_build debug || { fail "build aggserver and aggclient"; finish; }
lab up --rate1 "$RATE1" --rate2 "$RATE2" --delay1 "$DELAY1" --delay2 "$DELAY2" >"$AGG_WORK/lab-up.log" 2>&1 ||
    { cat "$AGG_WORK/lab-up.log"; fail "netlab up"; finish; }
mkdir -p "$AGG_WORK/www"
head -c "${SIZE_MB}M" /dev/urandom >"$AGG_WORK/www/file.bin"
want=$(sha256sum <"$AGG_WORK/www/file.bin" | cut -d' ' -f1)
if ! agg_start "$AGG_WORK/www"; then
    fail "daemons start"
    tail -n 5 "$AGG_WORK"/agg*.log
    finish
fi

verify() { # verify OUT DESCRIPTION
    local out=$1 what=$2 got
    read -r time size _ rc <<<"$(cat "$out.result")"
    got=$(sha256sum <"$out" 2>/dev/null | cut -d' ' -f1)
    if [[ $rc == 0 && $got == "$want" ]]; then
        pass "$what: $size bytes in ${time}s ($(calc "'%.1f' % ($size * 8 / $time / 1e6)") Mbit/s), SHA-256 right"
    else
        fail "$what: curl exit $rc, $size bytes in ${time}s, SHA-256 ${got:0:16}... ($(head -c 200 "$out.err"))"
    fi
}
download() { (fetch file.bin "$1" 120 >"$1.result") & BG=$!; }

# --- 1. association; the server knows path 2 is a backup -----------------------------------------------------------
wait_association 15
check $? "association up, client paths C1 and C2 both active"
sleep 1
snapshot up
server_json() { ip netns exec agg-s curl -s --max-time 3 "http://$SERVER_METRICS/status.json?history=0"; }
modes=$(server_json | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join(sorted(p["remote"].split(":")[0] + "=" + str(p.get("mode")) for p in s["associations"][0]["paths"])))')
[[ $modes == *"$N2=backup"* && $modes == *"$N1=active"* ]]
check $? "the server sends to path 1 (NAT 1) as active and to path 2 (NAT 2) as a backup ($modes)"

# --- 2. a download keeps off path 2 -------------------------------------------------------------------------------
a1=$(server_path_bytes 1) a2=$(server_path_bytes 2)
download "$AGG_WORK/dl1"
wait "$BG"; BG=
b1=$(server_path_bytes 1) b2=$(server_path_bytes 2)
snapshot download
verify "$AGG_WORK/dl1" "download of ${SIZE_MB} MB with path 2 as backup"
d1=$((b1 - a1)) d2=$((b2 - a2))
under_one_percent "$d2" $((d1 + d2))
check $? "path 2 carried under 1% of the download (server sent $d1 bytes on path 1, $d2 on path 2)"

# --- 3. blackhole path 1 mid-transfer: path 2 takes over -----------------------------------------------------------
download "$AGG_WORK/dl2"
sleep 2
a2=$(server_path_bytes 2)
lab blackhole 1 >/dev/null
t_bh=$(now)
took_over=""
while kill -0 "$BG" 2>/dev/null; do
    if [[ -z $took_over ]] && (($(server_path_bytes 2) - a2 > 262144)); then took_over=$(calc "'%.2f' % ($(now) - $t_bh)"); fi
    sleep 0.1
done
wait "$BG"; BG=
b2=$(server_path_bytes 2)
snapshot blackhole
verify "$AGG_WORK/dl2" "download with path 1 blackholed after 2 s"
[[ -n $took_over ]] && (($(calc "int($took_over <= 2.0)") == 1))
check $? "path 2 carried 256 KiB within 2 s of the blackhole (after ${took_over:-never} s; $((b2 - a2)) bytes in all)"

# --- 4. restore path 1: downloads go back to it -------------------------------------------------------------------
lab restore 1 >/dev/null
t_restore=$(now) back=0
deadline=$(($(date +%s) + 30))
while (($(date +%s) < deadline)); do
    [[ $(client_path_field 1 state) == active ]] && { back=1; break; }
    sleep 0.2
done
check $((1 - back)) "path 1 active again $(calc "'%.1f' % ($(now) - $t_restore)") s after restore"
sleep 1
a1=$(server_path_bytes 1) a2=$(server_path_bytes 2)
download "$AGG_WORK/dl3"
wait "$BG"; BG=
b1=$(server_path_bytes 1) b2=$(server_path_bytes 2)
snapshot restore
verify "$AGG_WORK/dl3" "download after restore"
d1=$((b1 - a1)) d2=$((b2 - a2))
under_one_percent "$d2" $((d1 + d2))
check $? "back on path 1 after restore (server sent $d1 bytes on path 1, $d2 on path 2)"

# --- 5. a send-rate cap set at run time ----------------------------------------------------------------------------
answer=$(ip netns exec agg-c "$AGGCLIENT" path one --rate "${CAP_MBIT}mbit" --metrics "$CLIENT_METRICS" 2>&1)
[[ $answer == "path one is now active, $((CAP_MBIT * 125000)) B/s" ]]
check $? "aggclient path one --rate ${CAP_MBIT}mbit at run time: \"$answer\""
established=$(client_status | awk '$1 == "association" { print $2 }')
download "$AGG_WORK/dl4"
sleep 3
a1=$(server_path_bytes 1) a2=$(server_path_bytes 2) t1=$(now)
sleep 10
b1=$(server_path_bytes 1) b2=$(server_path_bytes 2) t2=$(now)
rate=$(calc "'%.2f' % (($b1 - $a1) * 8 / ($t2 - $t1) / 1e6)")
wait "$BG"; BG=
snapshot cap
verify "$AGG_WORK/dl4" "download with path 1 capped at ${CAP_MBIT} Mbit/s"
(($(calc "int(abs($rate - $CAP_MBIT) <= 0.05 * $CAP_MBIT)") == 1))
check $? "path 1 sent at $rate Mbit/s over $(calc "'%.1f' % ($t2 - $t1)") s of it: within 5% of the ${CAP_MBIT} Mbit/s cap" \
    "(path 2, a backup, sent $((b2 - a2)) bytes meanwhile)"
answer=$(ip netns exec agg-c "$AGGCLIENT" path one --rate off --metrics "$CLIENT_METRICS" 2>&1)
a1=$(server_path_bytes 1) t1=$(now)
download "$AGG_WORK/dl5"
wait "$BG"; BG=
b1=$(server_path_bytes 1) t2=$(now)
rate=$(calc "'%.2f' % (($b1 - $a1) * 8 / ($t2 - $t1) / 1e6)")
verify "$AGG_WORK/dl5" "download with the cap lifted"
[[ $answer == "path one is now active" && $(client_status | awk '$1 == "association" { print $2 }') == "$established" ]] &&
    (($(calc "int($rate > 1.5 * $CAP_MBIT)") == 1))
check $? "--rate off lifts it (\"$answer\"): path 1 at $rate Mbit/s, same association ($established)"

echo "client status at the end:"
client_status | sed 's/^/    /'
echo "took $(($(date +%s) - started)) s"
finish
