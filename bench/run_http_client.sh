#!/usr/bin/env bash
# HTTP client benchmark: requests per second with 100 concurrent tasks against nginx's
# `return 200` (one worker, pinned to one core), for libsimul-http's client beside Go's net/http
# (the bar: bench/ref/go_http_client), aiohttp's ClientSession (bench/ref/http_client_aiohttp.py)
# and wrk (the ceiling: what nginx can serve at all), each client pinned to the other core, all in
# the same run, alternating round by round; each figure is the best of the rounds. Beside the
# rate, each client's CPU time per request (its user+system time over every request it made,
# warm-up included): when nginx is the bottleneck the rates converge and this tells the clients
# apart.
#
#   bash bench/run_http_client.sh <build-dir>        e.g. bash bench/run_http_client.sh build-rel
#
# Environment:
#   BENCH_QUICK=1          1 round of 1 s per client (smoke run)
#   BENCH_ROUNDS=n         rounds (default 3)   BENCH_SECONDS=s  seconds per measure (default 5)
#   BENCH_CONC=n           concurrent tasks / connections (default 100)
#   BENCH_CPU=n            nginx's core (default 0)   BENCH_CLIENT_CPU=n  the clients' (default 1)
#   BENCH_TIMEOUT=s        per-process time limit (default 300)
#
# Output: key=value lines, the ratios, then `target http_client_vs_go>=1: PASS|MISS (measured X)`.
# A client that is missing (Go, aiohttp, wrk not installed) is reported and left out; a miss
# still exits 0; a bench that crashes or hangs makes the script exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER=${BENCH_SECONDS:-5}
CONC=${BENCH_CONC:-100}
CPU=${BENCH_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
TIMEOUT=${BENCH_TIMEOUT:-300}
PORT_WAIT=10
if [ "$QUICK" = 1 ]; then
    ROUNDS=1
    SECONDS_PER=1
fi

need timeout pgrep nginx
check_pinning client

SIMUL=$BUILD/bench/http_client_bench
GOBIN=$BUILD/bench/go_http_client
bench_build http_client_bench
need_built "$SIMUL" libsimul-http
if command -v go >/dev/null; then
    build_go_ref go_http_client "$GOBIN" || fail "building the Go reference failed"
fi

PIN=(taskset -c "$CLIENT_CPU")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run_http_client.XXXXXX")
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# nginx: one worker (so "pinned to one core" holds), keep-alive without a request cap, no log.
PORT=$(free_port)
nginx_conf "$WORK" "$WORK/logs/error.log" "    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen $HOST:$PORT backlog=4096;
        location = / { return 200 \"hello\"; }
    }"
start_server nginx "$PORT" "${NGINX[@]}" ||
    die "nginx did not start"
URL=http://$HOST:$PORT/

# cpu <key> <cmd...>: runs cmd (pinned by run) and prints <key>_cpu_s, its children's
# user+system seconds.
CPUWRAP=(
    "$PY" -c 'import resource, subprocess, sys
p = subprocess.run(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{sys.argv[1]}_cpu_s={ru.ru_utime + ru.ru_stime:.3f}")
sys.exit(p.returncode)'
)

build_type=$(build_type_of "$BUILD")
start_lines "nginx $(nginx -v 2>&1 | sed 's/.*\///') on cpu $CPU, clients on cpu $CLIENT_CPU"
echo "# build_type=$build_type quick=$QUICK rounds=$ROUNDS seconds=$SECONDS_PER concurrency=$CONC url=$URL"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { exit !(l + 0 > 1.5) }'; then
    # Seen on a shared machine: the scheduler shares a contended core per thread, so Go (its
    # runtime's extra threads) gets more of it than the single-threaded clients and beats even
    # wrk. The figures of such a run do not compare the clients.
    echo "# warning: the machine is busy (loadavg $(cut -d' ' -f1 /proc/loadavg)): figures not comparable"
fi

declare -A BEST=() CPUREQ=()
# measure <key> <cmd...>: one measure; keeps the best rate of <key> and its CPU per request.
measure() {
    local key=$1
    shift
    V=()
    run "${CPUWRAP[@]}" "$key" "$@" || return 1
    local rate=${V[${key}_req_per_s]:-0} cpu=${V[${key}_cpu_s]:-0}
    # Requests made in all (the warm-up fifth included), for the CPU per request.
    local cpu_ns
    local span=1.2
    [ "$key" != wrk ] || span=1
    cpu_ns=$(awk -v c="$cpu" -v r="$rate" -v s="$SECONDS_PER" -v f="$span" \
        'BEGIN { n = r * s * f; if (n > 0) printf "%.0f", c * 1e9 / n; else print "" }')
    if awk -v a="$rate" -v b="${BEST[$key]:-0}" 'BEGIN { exit !(a + 0 > b + 0) }'; then
        BEST[$key]=$rate
        CPUREQ[$key]=$cpu_ns
    fi
}

have_go=0
have_aiohttp=0
have_wrk=0
[ -x "$GOBIN" ] && have_go=1
"$PY" -c 'import aiohttp' 2>/dev/null && have_aiohttp=1
command -v wrk >/dev/null && have_wrk=1
[ $have_go = 1 ] || fail "Go reference missing (golang-go): no bar to compare with"
[ $have_aiohttp = 1 ] || fail "aiohttp missing (python3-aiohttp)"
[ $have_wrk = 1 ] || fail "wrk missing (wrk)"

# wrk's figure through a parser of its summary line.
wrk_rate() {
    local out
    # (wrk takes whole seconds and counts from its start: no warm-up fifth for it)
    out=$(wrk -t1 -c"$CONC" -d"${SECONDS_PER}s" "$URL") || return 1
    printf '%s\n' "$out" >&2
    awk '/^Requests\/sec:/ { printf "wrk_req_per_s=%.0f\n", $2 }' <<<"$out"
}
export -f wrk_rate
export CONC SECONDS_PER URL

for ((round = 1; round <= ROUNDS; round++)); do
    echo "# round $round"
    measure simul "$SIMUL" "$URL" "$CONC" "$SECONDS_PER"
    if [ $have_go = 1 ]; then measure go "$GOBIN" "$URL" "$CONC" "$SECONDS_PER"; fi
    if [ $have_aiohttp = 1 ]; then
        measure aiohttp "$PY" "$HERE/ref/http_client_aiohttp.py" "$URL" "$CONC" "$SECONDS_PER"
    fi
    if [ $have_wrk = 1 ]; then measure wrk bash -c wrk_rate; fi
done

end_line
echo "# best of $ROUNDS rounds (requests per second), and client CPU ns per request"
for k in simul go aiohttp wrk; do
    if [ -n "${BEST[$k]:-}" ]; then
        echo "${k}_best_req_per_s=${BEST[$k]}"
        echo "${k}_cpu_ns_per_req=${CPUREQ[$k]:-n/a}"
    fi
done
V=()
for k in simul go aiohttp wrk; do V[$k]=${BEST[$k]:-}; done
echo "# ratios: >1 means simul's client made more requests per second"
ratio http_client_vs_go simul go
ratio http_client_vs_aiohttp simul aiohttp
ratio http_client_vs_wrk simul wrk
line=$(ratio http_client_vs_go simul go)
v=${line#*=}
if [ "$QUICK" = 1 ]; then
    echo "# quick run: 1 round of ${SECONDS_PER}s, the target checked on the reduced run"
fi
verdict "http_client_vs_go>=1" "$v" ">=" 1
[ "$FAILED" = 0 ] || echo "# $FAILED problem(s) reported above"
exit 0
