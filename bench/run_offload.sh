#!/usr/bin/env bash
# Offload benchmarks: simul_to_thread and the process pool beside asyncio.to_thread and
# run_in_executor(ProcessPoolExecutor), one measure at a time, each in its own process.
#
#   bash bench/run_offload.sh <build-dir>        e.g. bash bench/run_offload.sh build
#
# Environment:
#   BENCH_QUICK=1     every count / 20 (smoke run)
#   BENCH_CPU=list    taskset CPU list to confine each bench to (default: none). Round trips
#                     cross between the loop and a worker thread or process, so the default
#                     leaves both cores to them; BENCH_CPU=1 measures them sharing one core.
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line the benches print, then the ratios (>1 always means simul is
# faster). A bench that crashes, fails or times out makes the script exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
CPU=${BENCH_CPU:-} # empty: not pinned

if [ "$QUICK" = 1 ]; then div=20; else div=1; fi
N_THREAD=$((20000 / div))   # to_thread round trips per run (best of 3), both sides
N_PROCESS=$((5000 / div))   # process pool round trips per run (best of 3), both sides

BENCH=$BUILD/bench/offload_bench

need "$PY"
if [ -n "$CPU" ]; then
    check_pinning
    PIN=(taskset -c "$CPU")
fi

bench_build offload_bench
need_built "$BENCH"

build_type=$(build_type_of "$BUILD")
start_lines "cpus=${CPU:-all}"
echo "# build_type=$build_type quick=$QUICK python=$($PY -V 2>&1)"

run "$BENCH" thread "$N_THREAD"
run "$PY" "$HERE/ref/asyncio_offload.py" thread "$N_THREAD"
run "$BENCH" process "$N_PROCESS"
run "$PY" "$HERE/ref/asyncio_offload.py" process "$N_PROCESS"

end_line

echo "# ratios: >1 means simul is faster"
ratio to_thread_vs_asyncio asyncio_to_thread_roundtrip_us to_thread_roundtrip_us
ratio procpool_vs_asyncio asyncio_procpool_roundtrip_us procpool_roundtrip_us
if [ "$QUICK" = 1 ]; then
    echo "# quick run: counts / 20"
fi
exit 0
