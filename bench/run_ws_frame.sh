#!/usr/bin/env bash
# WebSocket frame parser benchmark: libsimul-http's parser beside wslay's frame layer (Debian's
# libwslay-dev, built into the bench only) on the same masked client frames in the same process,
# pinned to one core. The two alternate shape by shape (32-byte text, 4 KiB and 64 KiB binary);
# each figure is the best of 5.
#
#   bash bench/run_ws_frame.sh <build-dir>        e.g. bash bench/run_ws_frame.sh build
#
# Environment:
#   BENCH_QUICK=1     rounds / 20 (smoke run, a second or two)
#   BENCH_CPU=n       core to pin to (default 1)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line the bench prints, the ratios (>1 means ours parses more frames
# per second), then `target ...: PASS|MISS (measured X)` for each shape (ours checks UTF-8 on the
# text frames, wslay's frame layer does not). A miss is reported and the script still exits 0; a
# bench that crashes, fails or times out makes it exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"

ROUNDS=400
if [ "$QUICK" = 1 ]; then ROUNDS=$((ROUNDS / 20)); fi

rounds_bench ws_frame_bench libsimul-http
if [ -z "${V[wslay]:-}" ]; then
    echo "# wslay not built in (package libwslay-dev missing at configure time): no comparison"
fi
if [ "$QUICK" = 1 ]; then
    echo "# quick run: rounds / 20, the targets checked on the reduced run"
fi
echo "# ratios: >1 means our parser is faster"
for s in text32 bin4k bin64k; do
    line=$(ratio ws_${s}_vs_wslay ws_${s}_frames_per_s wslay_${s}_frames_per_s)
    echo "$line"
    v=${line#*=}
    verdict "ws_${s}_vs_wslay>=1" "$v" ">=" 1
done
exit 0
