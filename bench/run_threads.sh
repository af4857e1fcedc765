#!/usr/bin/env bash
# Many-cores benchmark: echo throughput of `echo_streams --threads 2` (two loops on two threads,
# SO_REUSEPORT) over `echo_streams --threads 1` (one loop on one worker thread), 64-byte messages,
# one in flight per connection.
#
#   bash bench/run_threads.sh <build-dir>        e.g. bash bench/run_threads.sh build
#
# The load: examples/echo_client is one thread with one loop, so a single client process cannot
# keep two server threads busy. Two client processes run at once, each with half the connections,
# and their msgs_per_s are summed.
#
# Nothing is pinned: the machine this was written for has 2 cores, and the server's threads and
# the two client processes share them. So this measures how the work of one machine is split, not
# how a server scales on cores of its own: with 1 server thread the server can use at most one
# core while the clients take the rest; with 2 it can use both, but every cycle it takes is one
# the clients do not get. On 2 cores expect a ratio near 1 (the client side is as expensive as
# the server side); a clear gain needs more cores than server threads + client processes.
#
# Environment:
#   BENCH_QUICK=1           one round of 1 s per measure instead of three of 3 s (smoke run)
#   BENCH_THREADS_SECONDS=t seconds per measure (overrides BENCH_QUICK's choice)
#   BENCH_THREADS_ROUNDS=n  rounds; each figure is reported from its best round
#   BENCH_THREADS_CONNS=n   total connections, split over the two clients (default 100)
#   BENCH_TIMEOUT=s         per-process time limit in seconds (default 300); a hang fails the run
#   BENCH_NO_BUILD=1        use the binaries in <build-dir> as they are (no cmake --build)
#
# Output: `# round ...` comments (each client's msgs/s, the server's CPU share, each server
# thread's connection count), then echo_threads1_msgs_per_s, echo_threads2_msgs_per_s (best
# rounds) and echo_threads2_vs_1 (their ratio: > 1 means two threads served more). A server or
# client that crashes, fails (an echo mismatch, a connection error) or hangs makes it exit non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
TIMEOUT=${BENCH_TIMEOUT:-300}
seconds_rounds THREADS 3 3 1 1
CONNS=${BENCH_THREADS_CONNS:-100}
SIZE=64
PORT_WAIT=20 # seconds the server may take to say "listening on"

[[ $CONNS =~ ^[0-9]+$ ]] && [ "$CONNS" -ge 2 ] || die "BENCH_THREADS_CONNS must be >= 2"
need timeout pgrep

bench_build -r example_echo_streams example_echo_client
SERVER=$BUILD/examples/echo_streams
CLIENT=$BUILD/examples/echo_client
need_built "$SERVER"
need_built "$CLIENT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run_threads.XXXXXX")
# SPID: the server, TPID its timeout wrapper; lib.sh's stop_server signals the server itself
# (timeout would re-raise a forwarded SIGTERM on itself and hide the server's exit status).
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

declare -A BEST=()

# measure <threads>: one server, two clients at once. Records the summed msgs/s.
measure() {
    local threads=$1 key="echo_threads$1" port= i rc
    # Emptied now: the redirection below happens in the child, maybe after the first read of it.
    : >"$WORK/server.out"
    timeout -k 5 "$TIMEOUT" "$SERVER" --host "$HOST" --port 0 --threads "$threads" \
        >"$WORK/server.out" 2>"$WORK/server.err" &
    TPID=$!
    SPID=
    for ((i = 0; i < PORT_WAIT * 20; i++)); do
        [ -n "$SPID" ] || SPID=$(pgrep -P "$TPID" | head -n 1 || true)
        port=$(sed -n 's/^listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$WORK/server.out")
        [ -n "$port" ] && [ -n "$SPID" ] && break
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ] || [ -z "$SPID" ]; then
        stop_server
        fail "$key: the server did not say 'listening on' (stderr: $(head -c 300 "$WORK/server.err"))"
        return 0
    fi
    local half=$((CONNS / 2)) cpu0 cpu1 t0 t1 pids=()
    cpu0=$(cpu_ns "$SPID")
    t0=$EPOCHREALTIME
    for c in 1 2; do
        local n=$half
        [ "$c" = 2 ] && n=$((CONNS - half))
        timeout -k 5 "$TIMEOUT" "$CLIENT" --host "$HOST" --port "$port" --connections "$n" \
            --size "$SIZE" --seconds "$SECS" >"$WORK/client$c.out" 2>"$WORK/client$c.err" &
        pids+=($!)
    done
    local crc=0
    for c in 1 2; do
        wait "${pids[$((c - 1))]}" || { rc=$?; crc=$rc; fail "$key: client $c exited with status $rc: $(head -c 300 "$WORK/client$c.err")"; }
    done
    t1=$EPOCHREALTIME
    cpu1=$(cpu_ns "$SPID")
    if ! kill -0 "$SPID" 2>/dev/null; then
        fail "$key: the server died during the run"
        stop_server
        return 0
    fi
    kill -TERM "$SPID"
    rc=0
    wait "$TPID" || rc=$? # timeout's status is the server's (124 if it hung)
    SPID=
    TPID=
    [ "$rc" -eq 0 ] || fail "$key: the server exited with status $rc on SIGTERM"
    [ "$crc" -eq 0 ] || return 0
    local m1 m2 e1 e2 u1 u2
    m1=$(sed -n 's/^msgs_per_s=//p' "$WORK/client1.out")
    m2=$(sed -n 's/^msgs_per_s=//p' "$WORK/client2.out")
    e1=$(sed -n 's/^errors=//p' "$WORK/client1.out")
    e2=$(sed -n 's/^errors=//p' "$WORK/client2.out")
    u1=$(sed -n 's/^client_cpu_pct=//p' "$WORK/client1.out")
    u2=$(sed -n 's/^client_cpu_pct=//p' "$WORK/client2.out")
    if [ -z "$m1" ] || [ -z "$m2" ] || [ "${e1:-1}" != 0 ] || [ "${e2:-1}" != 0 ]; then
        fail "$key: a client reported errors or no rate (errors=${e1:-?}/${e2:-?})"
        return 0
    fi
    local sum srv_pct spread
    sum=$(awk -v a="$m1" -v b="$m2" 'BEGIN { printf "%.0f", a + b }')
    srv_pct=$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.0f", (b - a) / 1e7 / (t1 - t0) }')
    spread=$(sed -n 's/^thread \([0-9]*\): \([0-9]*\) connections$/t\1=\2/p' "$WORK/server.out" | tr '\n' ' ')
    echo "# round $ROUND/$ROUNDS $key: msgs_per_s=$sum (clients $m1 + $m2) server_cpu_pct=$srv_pct client_cpu_pct=$u1+$u2 connections_per_thread: ${spread% }"
    if [ -z "${BEST[$key]:-}" ] || awk -v a="$sum" -v b="${BEST[$key]}" 'BEGIN { exit !(a > b) }'; then
        BEST[$key]=$sum
        BEST[${key}_srv]=$srv_pct
    fi
}

build_type=$(build_type_of "$BUILD")
echo "# run_threads.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) cpus=$(nproc)"
echo "# build_type=${build_type:-unknown} quick=$QUICK rounds=$ROUNDS seconds_per_measure=$SECS size=$SIZE connections=$CONNS (two echo_client processes)"
echo "# nothing pinned: the server threads and both clients share the machine's $(nproc) core(s); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Alternate 1 and 2 threads within each round, so a drift of the machine touches both alike.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    measure 1
    measure 2
done
echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# results: best of $ROUNDS round(s)"
for t in 1 2; do
    echo "echo_threads${t}_msgs_per_s=${BEST[echo_threads$t]:-n/a}"
    echo "echo_threads${t}_server_cpu_pct=${BEST[echo_threads${t}_srv]:-n/a}"
done
ratio=$(awk -v a="${BEST[echo_threads2]:-}" -v b="${BEST[echo_threads1]:-}" 'BEGIN {
    if (a == "" || b == "" || b + 0 == 0) { print "n/a"; exit }
    printf "%.2f\n", a / b }')
echo "echo_threads2_vs_1=$ratio"
if [ "$QUICK" = 1 ]; then
    echo "# quick run: ${SECS} s per measure, one round: a smoke test, not a measure"
fi
if [ "$FAILED" -gt 0 ]; then
    echo "run_threads.sh: $FAILED measure(s) failed" >&2
    exit 1
fi
exit 0
