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
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
K=8

unset SIMUL_NO_PIDFD

if [ "$QUICK" = 1 ]; then
    N=100
else
    N=5000
fi

BENCH=$BUILD/bench/subprocess_bench

need "$PY"
check_pinning

bench_build subprocess_bench
need_built "$BENCH"

PIN=(taskset -c "$CPU")

build_type=$(build_type_of "$BUILD")
start_lines "pinned to cpu $CPU"
echo "# build_type=$build_type quick=$QUICK n=$N k=$K python=$($PY -V 2>&1)"

run "$BENCH" seq "$N"
run "$PY" "$HERE/ref/asyncio_subprocess.py" seq "$N"
run "$BENCH" conc "$N" "$K"
run "$PY" "$HERE/ref/asyncio_subprocess.py" conc "$N" "$K"

end_line

echo "# ratios: >1 means simul is faster"
ratio subprocess_spawn_wait_vs_asyncio subprocess_spawn_wait_per_s \
    asyncio_subprocess_spawn_wait_per_s
ratio subprocess_spawn_wait_c${K}_vs_asyncio subprocess_spawn_wait_c${K}_per_s \
    asyncio_subprocess_spawn_wait_c${K}_per_s
exit 0
