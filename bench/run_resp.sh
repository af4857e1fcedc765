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
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"

if [ "$QUICK" = 1 ]; then MB=8; else MB=64; fi
BENCH=$BUILD/bench/resp_bench

check_pinning

bench_build resp_bench # needs libhiredis-dev (make deps)
need_built "$BENCH" libhiredis-dev

PIN=(taskset -c "$CPU")

build_type=$(build_type_of "$BUILD")
start_lines "pinned to cpu $CPU"
echo "# build_type=$build_type quick=$QUICK mb_per_run=$MB hiredis=$(pkg-config --modversion hiredis 2>/dev/null || echo '?')"

CASES=(ok int bulk lrange nested)
for c in "${CASES[@]}"; do
    run "$BENCH" "$c" "$MB"
done

end_line
if [ "$QUICK" = 1 ]; then
    echo "# quick run: $MB MB per run, targets checked on it"
fi
for c in "${CASES[@]}"; do
    v=${V[resp_${c}_vs_hiredis]:-}
    verdict "resp_${c}_vs_hiredis>=1" "$v" ">=" 1
done
exit 0
