#!/usr/bin/env bash
# RESP parser benchmark: libsimul-redis' parser beside hiredis' reader (libhiredis-dev) on the
# same RESP2 replies, in the same process, one case at a time, pinned to one core.
#
#   bash bench/run_resp.sh <build-dir>        e.g. bash bench/run_resp.sh build
#
# Environment:
#   BENCH_QUICK=1     8 MB of replies per run instead of 64 (smoke run)
#   BENCH_CPU=n       core to pin to (default 1)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line of resp_bench, then one `target ...: PASS|MISS (measured X)` line
# per case: resp_<case>_vs_hiredis >= 1 (simul's replies per second over hiredis', same run).
# A missed target is reported and the script still exits 0; a bench that crashes, fails or
# times out makes it exit non-zero.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CPU=${BENCH_CPU:-1}
QUICK=${BENCH_QUICK:-0}
TIMEOUT=${BENCH_TIMEOUT:-600}

die() { echo "run_resp.sh: $*" >&2; exit 1; }

if [ "$QUICK" = 1 ]; then MB=8; else MB=64; fi
BENCH=$BUILD/bench/resp_bench

command -v taskset >/dev/null || die "taskset not found (util-linux)"
taskset -c "$CPU" true 2>/dev/null || die "cannot pin to CPU $CPU (set BENCH_CPU)"

# Bring the bench up to date if this is a configured CMake build dir.
if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake --build "$BUILD" --target resp_bench >&2 ||
        die "building resp_bench failed (is libhiredis-dev installed? make deps)"
fi
[ -x "$BENCH" ] || die "$BENCH not found: configure and build $BUILD first (needs libhiredis-dev)"

PIN=(taskset -c "$CPU")
source "$HERE/lib.sh"

build_type=$(build_type_of "$BUILD")
echo "# run_resp.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r)"
echo "# pinned to cpu $CPU of $(nproc --all); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# build_type=$build_type quick=$QUICK mb_per_run=$MB hiredis=$(pkg-config --modversion hiredis 2>/dev/null || echo '?')"

CASES=(ok int bulk lrange nested)
for c in "${CASES[@]}"; do
    run "$BENCH" "$c" "$MB"
done

echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$QUICK" = 1 ]; then
    echo "# quick run: $MB MB per run, targets checked on it"
fi
for c in "${CASES[@]}"; do
    v=${V[resp_${c}_vs_hiredis]:-}
    if [ -z "$v" ]; then
        echo "target resp_${c}_vs_hiredis>=1: MISS (not measured)"
    elif awk -v v="$v" 'BEGIN { exit !(v + 0 >= 1) }'; then
        echo "target resp_${c}_vs_hiredis>=1: PASS (measured $v)"
    else
        echo "target resp_${c}_vs_hiredis>=1: MISS (measured $v)"
    fi
done
exit 0
