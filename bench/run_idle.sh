#!/usr/bin/env bash
# Idle connections: what one more open, idle TCP connection costs an echo server in user-space
# memory. simul's stream echo server (examples/echo_streams.c; also under SIMUL_TASKS=compact)
# beside an asyncio streams server (bench/ref/echo_asyncio_streams.py) and a Go server with a
# goroutine per connection (bench/idle_echo.go), all measured in the same run.
#
#   bash bench/run_idle.sh <build-dir>        e.g. bash bench/run_idle.sh build
#
# Environment:
#   BENCH_QUICK=1          1,000 connections instead of 10,000 (smoke run)
#   BENCH_IDLE_CONNS=n     connection count (overrides BENCH_QUICK's choice; at most ~19,000:
#                          the hard limit is 20,000 descriptors per process)
#   BENCH_CPU=n            core for the server (default 1)
#   BENCH_TIMEOUT=s        per-process time limit in seconds (default 600)
#   BENCH_NO_BUILD=1       use the binaries in <build-dir> as they are
#
# Method, per server: start it on a fresh loopback port; read its RSS (VmRSS of
# /proc/<pid>/status: the process's resident user-space pages; the kernel's socket buffers are not
# in it); start bench/idle_client.py in its own process, which opens N connections, has each
# echo one 64-byte message (so every handler has run and read once) and then holds them idle; wait
# until the client has its N echoes AND the server process holds N more sockets (counted in
# /proc/<pid>/fd, not slept for); read the RSS again. <key>=(RSS with N - RSS before) / N bytes.
# Each server is its runtime's idiomatic echo: simul's borrows up to 16 KiB at a time from its
# stream's own buffer (simul_stream_read_borrow: no buffer while idle), Go's reads into a 16 KiB
# heap buffer per goroutine, asyncio's awaits reader.read(65536) on its StreamReader buffer.
#
# Output: idle_conn_bytes (simul), idle_conn_bytes_compact (simul under SIMUL_TASKS=compact),
# asyncio_idle_conn_bytes, go_idle_conn_bytes, the ratios (>1: simul holds less), and
# `target ...: PASS|MISS (measured X)` for the target: at or below Go's.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
if [ "$QUICK" = 1 ]; then n=1000; else n=10000; fi
N=${BENCH_IDLE_CONNS:-$n}
PORT_WAIT=20

unset SIMUL_TASKS

need taskset timeout "$PY"
# Each side holds N descriptors: raise the soft limit (inherited by the servers and the client).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((N + 200)) ]; then
    die "the hard descriptor limit ($hard) is below $N connections + 200"
fi
ulimit -Sn "$hard"

bench_build example_echo_streams
SIMUL_SERVER=$BUILD/examples/echo_streams
need_built "$SIMUL_SERVER"
GO_SERVER=$BUILD/bench/idle_echo
GO_WHY=
if command -v go >/dev/null; then
    go_env
    GOFLAGS= GO111MODULE=off go build -o "$GO_SERVER" "$HERE/idle_echo.go" >&2 ||
        { fail "building bench/idle_echo.go failed"; GO_WHY="its build failed"; }
else
    GO_WHY="go not installed (package golang-go)"
fi

trap 'stop_client; stop_server' EXIT
trap 'stop_client; stop_server; exit 130' INT TERM

CPID=
stop_client() {
    if [ -n "$CPID" ]; then
        kill -TERM "$CPID" 2>/dev/null || true
        wait "$CPID" 2>/dev/null || true
    fi
    CPID=
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
sockets_of() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }

# measure <key> <cmd...>: one server, N idle connections; records V[key] in bytes per connection.
measure() {
    local key=$1 port i line rss0 rss1 s0 s1 held=0
    shift
    port=$(free_port)
    start_server "$key" "$port" "$@" --host "$HOST" --port "$port" || return 0
    # port_open's probe connection may still be closing in the server: let the socket count settle.
    for ((i = 0; i < 200; i++)); do
        s0=$(sockets_of "$SPID")
        [ "$s0" -le 2 ] && break
        sleep 0.01
    done
    rss0=$(rss_kb "$SPID")
    local out=$BUILD/bench/idle_client.$$.out
    : >"$out"
    # stdin from a pipe nobody writes: the client holds until it is killed.
    timeout -k 5 "$TIMEOUT" "$PY" "$HERE/idle_client.py" --host "$HOST" --port "$port" \
        --connections "$N" >"$out" < <(sleep "$TIMEOUT") &
    CPID=$!
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        if grep -q "^held $N\$" "$out"; then held=1; fi
        s1=$(sockets_of "$SPID")
        if [ "$held" = 1 ] && [ "$s1" -ge $((s0 + N)) ]; then break; fi
        if ! kill -0 "$CPID" 2>/dev/null; then break; fi
        if ! kill -0 "$SPID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if ! kill -0 "$SPID" 2>/dev/null; then
        fail "$key: the server died with $s1 sockets open"
        stop_client; stop_server; rm -f "$out"; return 0
    fi
    if [ "$held" != 1 ] || [ "$s1" -lt $((s0 + N)) ]; then
        fail "$key: the client did not hold $N echoed connections (held=$held, server sockets $s0 -> $s1)"
        stop_client; stop_server; rm -f "$out"; return 0
    fi
    rss1=$(rss_kb "$SPID")
    stop_client
    stop_server
    rm -f "$out"
    V[$key]=$(awk -v a="$rss0" -v b="$rss1" -v n="$N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    echo "# $key: rss ${rss0} kB -> ${rss1} kB with $N connections (server sockets $s0 -> $s1)"
    echo "$key=${V[$key]}"
}

start_lines "servers on cpu $CPU"
echo "# connections=$N quick=$QUICK build_type=$(build_type_of "$BUILD" 2>/dev/null || echo unknown) python=$($PY -V 2>&1 | cut -d' ' -f2) go=$(go version 2>/dev/null | cut -d' ' -f3 || echo none)"
measure idle_conn_bytes "$SIMUL_SERVER"
measure idle_conn_bytes_compact env SIMUL_TASKS=compact "$SIMUL_SERVER"
measure asyncio_idle_conn_bytes "$PY" "$HERE/ref/echo_asyncio_streams.py"
if [ -z "$GO_WHY" ]; then
    measure go_idle_conn_bytes "$GO_SERVER"
else
    echo "go_idle_conn_bytes: skipped: $GO_WHY"
fi
end_line
echo "# idle_conn_bytes_compact runs the same server with SIMUL_TASKS=compact in its environment;"
echo "# a build without compact tasks ignores it (the figure then equals the default mode's)"

echo "# ratios: the reference's bytes per idle connection over simul's (>1: simul holds less)"
ratio idle_conn_vs_go go_idle_conn_bytes idle_conn_bytes
ratio idle_conn_vs_asyncio asyncio_idle_conn_bytes idle_conn_bytes
ratio idle_conn_compact_vs_go go_idle_conn_bytes idle_conn_bytes_compact

target() {
    local v=${V[$1]:-} b=${V[$3]:-}
    if [ -z "$v" ] || [ -z "$b" ]; then
        echo "target $1 $2 $3: MISS (not measured)"
    elif awk -v v="$v" -v b="$b" 'BEGIN { exit !(v + 0 <= b + 0) }'; then
        echo "target $1 $2 $3: PASS (measured $v against $b)"
    else
        echo "target $1 $2 $3: MISS (measured $v against $b)"
    fi
}
target idle_conn_bytes '<=' go_idle_conn_bytes

if [ "$FAILED" -gt 0 ]; then
    echo "run_idle.sh: $FAILED measure(s) failed" >&2
    exit 1
fi
exit 0
