#!/usr/bin/env bash
# HTTP request parser benchmark: libsimul-http's parser beside llhttp (Debian's node-llhttp,
# built into the bench only) on the same pipelined requests in the same process, pinned to one
# core. The two alternate shape by shape (get, post, chunked, mix); each figure is the best of 5.
#
#   bash bench/run_http_parser.sh <build-dir>        e.g. bash bench/run_http_parser.sh build
#
# Environment:
#   BENCH_QUICK=1     rounds / 20 (smoke run, a second or two)
#   BENCH_CPU=n       core to pin to (default 1)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line the bench prints, the ratios (>1 means ours parses more requests
# per second), then `target ...: PASS|MISS (measured X)`. A miss is reported and the script still
# exits 0; a bench that crashes, fails or times out makes it exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"

ROUNDS=20000 # passes over 64 pipelined requests, per run
if [ "$QUICK" = 1 ]; then ROUNDS=$((ROUNDS / 20)); fi

rounds_bench http_parser_bench libsimul-http
if [ -z "${V[llhttp_version]:-}" ]; then
    echo "# llhttp not built in (package node-llhttp missing at configure time): no comparison"
fi

echo "# ratios: >1 means our parser is faster"
for s in get post chunked mix; do
    ratio http_parser_${s}_vs_llhttp http_parser_${s}_req_per_s llhttp_${s}_req_per_s
done

line=$(ratio http_parser_mix_vs_llhttp http_parser_mix_req_per_s llhttp_mix_req_per_s)
v=${line#*=}
if [ "$QUICK" = 1 ]; then
    echo "# quick run: rounds / 20, the target checked on the reduced run"
fi
verdict "http_parser_mix_vs_llhttp>=1" "$v" ">=" 1
exit 0
