#!/usr/bin/env bash
# Subprocess benchmark: simul vs asyncio, spawn /bin/true and wait for it, in a row and with 8
# at once; one measure at a time, each in its own process, pinned to one core.
#
#   bash bench/run_subprocess.sh <build-dir>        e.g. bash bench/run_subprocess.sh build
#
# Environment:
#   BENCH_QUICK=1     tiny counts (smoke run, a few seconds)
#   BENCH_CPU=n       core to pin to (default 1). The children inherit the pinning, so the
#                     parent and its children share that core, for both implementations alike.
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line the benches print, then the ratios (>1 means simul is faster).
# A bench that crashes, fails or times out makes the script exit non-zero.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
CPU=${BENCH_CPU:-1}
QUICK=${BENCH_QUICK:-0}
TIMEOUT=${BENCH_TIMEOUT:-600}
K=8

unset SIMUL_DEBUG SIMUL_NO_PIDFD PYTHONASYNCIODEBUG PYTHONDEVMODE

die() { echo "run_subprocess.sh: $*" >&2; exit 1; }

if [ "$QUICK" = 1 ]; then
    N=100
else
    N=5000
fi

BENCH=$BUILD/bench/subprocess_bench

command -v taskset >/dev/null || die "taskset not found (util-linux)"
[ -x "$PY" ] || die "$PY not found"
taskset -c "$CPU" true 2>/dev/null || die "cannot pin to CPU $CPU (set BENCH_CPU)"

if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake --build "$BUILD" --target subprocess_bench >&2 || die "building the bench failed"
fi
[ -x "$BENCH" ] || die "$BENCH not found: configure and build $BUILD first"

PIN=(taskset -c "$CPU")
source "$HERE/lib.sh"

build_type=$(build_type_of "$BUILD")
echo "# run_subprocess.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r)"
echo "# pinned to cpu $CPU of $(nproc --all); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# build_type=$build_type quick=$QUICK n=$N k=$K python=$($PY -V 2>&1)"

run "$BENCH" seq "$N"
run "$PY" "$HERE/ref/asyncio_subprocess.py" seq "$N"
run "$BENCH" conc "$N" "$K"
run "$PY" "$HERE/ref/asyncio_subprocess.py" conc "$N" "$K"

echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "# ratios: >1 means simul is faster"
ratio subprocess_spawn_wait_vs_asyncio subprocess_spawn_wait_per_s \
    asyncio_subprocess_spawn_wait_per_s
ratio subprocess_spawn_wait_c${K}_vs_asyncio subprocess_spawn_wait_c${K}_per_s \
    asyncio_subprocess_spawn_wait_c${K}_per_s
exit 0
