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

if [ $# -ne 1 ]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CPU=${BENCH_CPU:-1}
QUICK=${BENCH_QUICK:-0}
TIMEOUT=${BENCH_TIMEOUT:-600}

die() { echo "run_json_encode.sh: $*" >&2; exit 1; }
source "$HERE/lib.sh" # run, ratio, check_pinning, build_bench, ...

ROUNDS=20000 # hello x100, mixed1k x10, strings4k x4 encodes per timed run
if [ "$QUICK" = 1 ]; then ROUNDS=$((ROUNDS / 20)); fi

BENCH=$BUILD/bench/json_encode_bench

command -v taskset >/dev/null || die "taskset not found (util-linux)"
check_pinning

build_bench json_encode_bench "libsimul-http, jansson"

PIN=(taskset -c "$CPU")

build_type=$(build_type_of "$BUILD")
start_lines run_json_encode.sh "pinned to cpu $CPU"
echo "# build_type=$build_type quick=$QUICK rounds=$ROUNDS"

run "$BENCH" "$ROUNDS"

end_line
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
    if [ "$v" = n/a ]; then
        echo "target json_${s}_vs_jansson>=1: MISS (not measured)"
    elif awk -v v="$v" 'BEGIN { exit !(v + 0 >= 1) }'; then
        echo "target json_${s}_vs_jansson>=1: PASS (measured $v)"
    else
        echo "target json_${s}_vs_jansson>=1: MISS (measured $v)"
    fi
done
exit 0
