# lib.sh — what the run_*.sh bench scripts share. Source it after defining die(); before run(),
# set TIMEOUT (seconds per process) and PIN (an array: the command prefix that pins a bench, e.g.
# (taskset -c 1), or empty). Results go to the associative array V, key=value as printed.
declare -A V=()

# run <cmd...>: runs one bench, prints its output, records its key=value lines. A bench that
# fails or times out ends the script: a number from a broken run must not reach the table.
run() {
    local out rc=0
    out=$(timeout "$TIMEOUT" "${PIN[@]}" "$@") || rc=$?
    if [ -n "$out" ]; then printf '%s\n' "$out"; fi
    if [ "$rc" -ne 0 ]; then
        if [ "$rc" -eq 124 ]; then
            die "'$*' timed out after ${TIMEOUT}s"
        fi
        die "'$*' failed with exit status $rc"
    fi
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^([A-Za-z0-9_]+)=(.*)$ ]]; then
            V[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
        fi
    done <<<"$out"
}

# ratio <name> <numerator key> <denominator key>: prints name=num/den (n/a if missing or 0).
ratio() {
    local a=${V[$2]:-} b=${V[$3]:-}
    awk -v n="$1" -v a="$a" -v b="$b" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { printf "%s=n/a\n", n; exit }
        printf "%s=%.2f\n", n, a / b }'
}

# The CMake build type of build dir $1 ("unknown" if not a CMake build dir).
build_type_of() {
    local t
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
    echo "${t:-unknown}"
}

# check_pinning [client]: dies unless the bench can pin to $CPU (BENCH_CPU) and, when a client
# is named, to $CLIENT_CPU (BENCH_CLIENT_CPU); warns when the server and that client share a core.
check_pinning() {
    taskset -c "$CPU" true 2>/dev/null || die "cannot pin to CPU $CPU (set BENCH_CPU)"
    [ $# -gt 0 ] || return 0
    taskset -c "$CLIENT_CPU" true 2>/dev/null || die "cannot pin to CPU $CLIENT_CPU (set BENCH_CLIENT_CPU)"
    [ "$CPU" != "$CLIENT_CPU" ] || echo "# warning: server and $1 share CPU $CPU" >&2
}

# build_bench <target> <needs>: brings $BENCH up to date when $BUILD is a configured CMake build
# dir; dies when it fails or $BENCH is missing (<needs>: what the bench is built with).
build_bench() {
    if [ -f "$BUILD/CMakeCache.txt" ]; then
        cmake --build "$BUILD" --target "$1" >&2 || die "building the bench failed"
    fi
    [ -x "$BENCH" ] || die "$BENCH not found: configure and build $BUILD first ($2)"
}

# build_go_ref <dir under bench/ref> <binary>: builds a Go reference client or server with a
# cache under $BUILD (and a GOPATH there when $HOME is not writable); fails when go build does.
build_go_ref() {
    mkdir -p "$BUILD/bench"
    export GOCACHE=${GOCACHE:-$BUILD/go-cache}
    if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
        export GOPATH=${GOPATH:-$BUILD/go-path}
    fi
    (cd "$HERE/ref/$1" && GOFLAGS= GO111MODULE=on go build -o "$2" .) >&2
}

# start_lines <script> <where it runs>: the first lines of a run's output (when, where, the
# load), so a figure can be judged later; end_line the load at the end.
start_lines() {
    echo "# $1 $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r)"
    echo "# $2 of $(nproc --all); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
end_line() { echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# keep_best <key> <value> <op>: V[key] keeps the best value seen (op > keeps the highest).
keep_best() {
    if [ -z "${V[$1]:-}" ] || awk -v a="$2" -v b="${V[$1]}" -v op="$3" \
        'BEGIN { exit !(op == ">" ? a + 0 > b + 0 : a + 0 < b + 0) }'; then
        V[$1]=$2
    fi
}

# --- A server under measure, pinned to one core (run_echo.sh, run_tls.sh) ---
# These need HOST, CPU, CLIENT_CPU, TIMEOUT, PORT_WAIT (seconds a server may take to accept
# connections), PY (a python3) and fail() (reports a failed measure and goes on).
TICK=$(getconf CLK_TCK)

# Server CPU time in ns: schedstat's on-CPU ns (exact) summed over the threads, or stat's
# utime+stime in clock ticks (10 ms granularity at CLK_TCK=100).
if [ -r /proc/self/schedstat ]; then
    CPU_SOURCE="schedstat (ns on CPU, summed over the server's threads)"
    cpu_ns() {
        cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
    }
else
    CPU_SOURCE="stat utime+stime (ticks of $((1000 / TICK)) ms)"
    cpu_ns() {
        awk -v t="$TICK" '{ sub(/.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / t }' \
            /proc/"$1"/stat
    }
fi

# cpu_ns of a process and its children (nginx: the master and its worker).
tree_cpu_ns() {
    local p s=0
    for p in "$1" $(pgrep -P "$1" || true); do s=$((s + $(cpu_ns "$p"))); done
    echo "$s"
}

# Busy clock ticks (user, nice, system, irq, softirq, steal) of the server's and the client's
# cores: what is left after the two processes is other load that may have skewed the measure.
cores_busy_ticks() {
    awk -v a="cpu$CPU" -v b="cpu$CLIENT_CPU" '$1 == a || $1 == b { s += $2 + $3 + $4 + $7 + $8 + $9 }
        END { printf "%.0f\n", s }' /proc/stat
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SPID= # the server process (after taskset's exec), TPID its timeout wrapper
TPID=
stop_server() {
    if [ -n "$TPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
        # Bounded: timeout's own KILL after 5 s if the server ignores TERM.
        kill -TERM "$TPID" 2>/dev/null || true
        wait "$TPID" 2>/dev/null || true
    fi
    SPID=
    TPID=
}

# A server accepts connections: bash's /dev/tcp makes one and closes it.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# start_server <key> <port> <cmd...>: starts cmd pinned to $CPU in the background (SPID, TPID)
# and waits, bounded, until <port> accepts. On failure reports it with fail() and returns 1.
start_server() {
    local key=$1 port=$2 i rc=0
    shift 2
    # Its stdout (a "listening on" line, say) would mix with the results; stderr stays visible.
    timeout -k 5 "$TIMEOUT" taskset -c "$CPU" "$@" >/dev/null &
    TPID=$!
    # taskset execs the server, so timeout's child is the server itself.
    SPID=
    for ((i = 0; i < PORT_WAIT * 20; i++)); do
        [ -n "$SPID" ] || SPID=$(pgrep -P "$TPID" | head -n 1 || true)
        if ! kill -0 "$TPID" 2>/dev/null; then
            wait "$TPID" && rc=0 || rc=$?
            TPID=
            fail "$key: server exited with status $rc before accepting connections"
            return 1
        fi
        if [ -n "$SPID" ] && port_open "$port"; then break; fi
        sleep 0.05
    done
    if [ -z "$SPID" ] || ! port_open "$port"; then
        stop_server
        fail "$key: server did not accept connections on port $port within ${PORT_WAIT}s"
        return 1
    fi
}
