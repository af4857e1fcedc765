#!/usr/bin/env bash
# Core benchmarks: simul vs asyncio vs Go, one measure at a time, each in its own process,
# pinned to one core.
#
#   bash bench/run_core.sh <build-dir>        e.g. bash bench/run_core.sh build
#
# Environment:
#   BENCH_QUICK=1     every count / 10 (smoke run)
#   BENCH_CPU=n       core to pin to (default 1; put any load generator on core 0)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 900); a hang fails the run
#   GOCACHE           Go build cache (default <build-dir>/go-cache)
#
# Output: every key=value line the benches print, then the ratios (>1 always means simul is
# better: faster, smaller or less late), then one `target ...: PASS|MISS (measured X)` line per
# target. A missed target is reported and the script still exits 0; a bench that crashes, fails
# or times out makes it exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
TIMEOUT=${BENCH_TIMEOUT:-900}

if [ "$QUICK" = 1 ]; then div=10; else div=1; fi
# Full counts; BENCH_QUICK divides every one by 10.
N_SWITCH=$((10000000 / div))       # simul, Go: switches (best of 5)
N_SWITCH_PY=$((200000 / div))      # asyncio: switches (best of 5)
N_SPAWN=$((2000000 / div))         # simul, Go: spawn+join pairs (best of 3)
N_SPAWN_PY=$((200000 / div))       # asyncio: spawn+join pairs (best of 3)
N_RSS=$((1000000 / div))           # concurrent sleeping tasks (all three)
N_TIMER=$((1000000 / div))         # call_later / AfterFunc timers (all three)
N_SYNC=$((5000000 / div))          # simul: queue items / lock hand-overs (best of 5)
N_SYNC_PY=$((200000 / div))        # asyncio: queue items / lock hand-overs (best of 5)

CORE=$BUILD/bench/core_bench
SYNC=$BUILD/bench/sync_bench
GOBIN=$BUILD/bench/go_core

need go "$PY"
check_pinning

bench_build core_bench sync_bench
need_built "$CORE"
need_built "$SYNC"

# Build the Go reference into the build dir.
build_go_ref go_core "$GOBIN" || die "building the Go reference failed"

PIN=(taskset -c "$CPU")

build_type=$(build_type_of "$BUILD")
start_lines "pinned to cpu $CPU"
echo "# build_type=$build_type quick=$QUICK python=$($PY -V 2>&1) go=$(go version | cut -d' ' -f3)"

# One measure at a time, never in parallel; the three implementations back to back per measure.
run "$CORE" switch "$N_SWITCH"
run "$CORE" switch-compact "$N_SWITCH"   # compact tasks: each switch copies both stacks' frames
run "$PY" "$HERE/ref/asyncio_core.py" switch "$N_SWITCH_PY"
run "$GOBIN" switch "$N_SWITCH"

run "$CORE" spawn "$N_SPAWN"
run "$PY" "$HERE/ref/asyncio_core.py" spawn "$N_SPAWN_PY"
run "$GOBIN" spawn "$N_SPAWN"

run "$CORE" rss "$N_RSS"
run "$CORE" rss-compact "$N_RSS"         # compact_rss_per_task_bytes, compact_spawn_1m_us_per_task
run "$PY" "$HERE/ref/asyncio_core.py" rss "$N_RSS"
run "$GOBIN" rss "$N_RSS"

run "$CORE" timer "$N_TIMER"
run "$PY" "$HERE/ref/asyncio_core.py" timer "$N_TIMER"
run "$GOBIN" timer "$N_TIMER"

run "$SYNC" queue "$N_SYNC"
run "$PY" "$HERE/ref/asyncio_sync.py" queue "$N_SYNC_PY"
run "$SYNC" lock "$N_SYNC"
run "$PY" "$HERE/ref/asyncio_sync.py" lock "$N_SYNC_PY"

end_line

echo "# ratios: >1 means simul is better"
ratio switch_vs_asyncio asyncio_switch_ns switch_ns
ratio switch_vs_go go_switch_ns switch_ns
ratio spawn_join_vs_asyncio spawn_join_per_s asyncio_spawn_join_per_s
ratio spawn_join_vs_go spawn_join_per_s go_spawn_join_per_s
ratio rss_vs_asyncio asyncio_rss_per_task_bytes rss_per_task_bytes
ratio rss_vs_go go_rss_per_task_bytes rss_per_task_bytes
ratio compact_switch_vs_default switch_ns compact_switch_ns
ratio compact_switch_vs_go go_switch_ns compact_switch_ns
ratio compact_rss_vs_asyncio asyncio_rss_per_task_bytes compact_rss_per_task_bytes
ratio compact_rss_vs_go go_rss_per_task_bytes compact_rss_per_task_bytes
ratio spawn_1m_vs_go go_spawn_1m_us_per_task spawn_1m_us_per_task
ratio spawn_1m_vs_asyncio asyncio_spawn_1m_us_per_task spawn_1m_us_per_task
ratio timer_late_vs_asyncio asyncio_timer_worst_late_ms timer_worst_late_ms
ratio timer_late_vs_go go_timer_worst_late_ms timer_worst_late_ms
ratio timer_ns_vs_asyncio asyncio_timer_ns timer_ns

# keep_ratio: like ratio, and records the value so that a target can check it.
keep_ratio() {
    local line
    line=$(ratio "$@")
    echo "$line"
    V[$1]=${line#*=}
}
keep_ratio queue_roundtrip_vs_asyncio asyncio_queue_roundtrip_ns queue_roundtrip_ns
keep_ratio lock_handoff_vs_asyncio asyncio_lock_handoff_ns lock_handoff_ns
keep_ratio compact_spawn_1m_vs_go go_spawn_1m_us_per_task compact_spawn_1m_us_per_task
keep_ratio compact_spawn_1m_vs_asyncio asyncio_spawn_1m_us_per_task compact_spawn_1m_us_per_task

# target <key> <op> <bound>: op is <= or >=.
target() { verdict "$1$2$3" "${V[$1]:-}" "$2" "$3"; }

if [ "$QUICK" = 1 ]; then
    echo "# quick run: counts / 10, targets checked on the reduced counts"
fi
target switch_ns '<=' 10
target spawn_join_per_s '>=' 5000000
target rss_per_task_bytes '<=' 4096
target compact_rss_per_task_bytes '<=' 1024
target compact_spawn_1m_vs_go '>=' 1      # compact spawn with 1M alive at or below Go's
target timer_worst_late_ms '<=' 100
target queue_roundtrip_vs_asyncio '>=' 50
target lock_handoff_vs_asyncio '>=' 50
exit 0
