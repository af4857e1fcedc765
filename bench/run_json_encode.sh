#!/usr/bin/env bash
# JSON answer encoder benchmark: libsimul-http's encoder (src/http/json_encode.c, used by
# simul_http_response_json) beside jansson's json_dumpb, the dump it replaces, on the same values
# in the same process, pinned to one core: the hello object of examples/http_hello, a 1 KiB mixed
# document, a 4 KiB string-heavy one. Each figure is the best of 5; the outputs are compared byte
# for byte before timing.
#
#   bash bench/run_json_encode.sh <build-dir>        e.g. bash bench/run_json_encode.sh build
#
# Environment:
#   BENCH_QUICK=1     rounds / 20 (smoke run, a second or two)
#   BENCH_CPU=n       core to pin to (default 1)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line the bench prints, the ratios (>1 means ours encodes more values
# per second), then `target ...: PASS|MISS (measured X)` per shape: hand-writing what jansson
# offers is worth it only where it is faster. The roomy lines price the growth path (the answer
# outgrows the first 512 bytes: a malloc'd buffer, then one copy into the arena). A miss is
# reported and the script still exits 0; a bench that crashes, fails or times out makes it exit
# non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"

ROUNDS=20000 # hello x100, mixed1k x10, strings4k x4 encodes per timed run
if [ "$QUICK" = 1 ]; then ROUNDS=$((ROUNDS / 20)); fi

rounds_bench json_encode_bench "libsimul-http, jansson"
if [ "$QUICK" = 1 ]; then
    echo "# quick run: rounds / 20, the targets checked on the reduced run"
fi
echo "# ratios: >1 means our encoder is faster (growth: <1 is what outgrowing 512 bytes costs)"
for s in hello mixed1k strings4k; do
    ratio json_${s}_growth_vs_roomy json_enc_${s}_per_s json_enc_roomy_${s}_per_s
done
for s in hello mixed1k strings4k; do
    line=$(ratio json_${s}_vs_jansson json_enc_${s}_per_s json_dumpb_${s}_per_s)
    echo "$line"
    v=${line#*=}
    verdict "json_${s}_vs_jansson>=1" "$v" ">=" 1
done
exit 0
