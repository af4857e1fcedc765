# lib.sh — what the run_*.sh bench scripts share: the preamble (the build-dir argument, the
# BENCH_* settings, tools, core pinning, bringing the binaries up to date) and the measuring
# helpers, so that every script reads its settings and builds its binaries the same way.
# A script sources it first thing, then takes its argument:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"; bench_args "$@"
# and overrides the settings below whose default differs for it (TIMEOUT=${BENCH_TIMEOUT:-900}).
# Every script reads BENCH_QUICK, BENCH_CPU, BENCH_CLIENT_CPU, BENCH_TIMEOUT and BENCH_NO_BUILD=1
# (use the binaries in the build dir as they are: an older commit's build, say).
# Before run(), set PIN (an array: the command prefix that pins a bench, e.g. (taskset -c 1), or
# empty). Results go to the associative array V, key=value as printed.
declare -A V=()

# --- The preamble every run_*.sh shares ---
ME=${0##*/} # the script, for its messages
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
HOST=127.0.0.1
QUICK=${BENCH_QUICK:-0}       # 1: a smoke run (shorter measures, fewer rounds)
CPU=${BENCH_CPU:-1}           # the core of what is measured
CLIENT_CPU=${BENCH_CLIENT_CPU:-0} # the load generator's core
TIMEOUT=${BENCH_TIMEOUT:-600} # seconds per process; a hang fails the run
PIN=()
# Debug modes would measure something else.
unset SIMUL_DEBUG PYTHONASYNCIODEBUG PYTHONDEVMODE

die() { echo "$ME: $*" >&2; exit 1; }
FAILED=0 # fail(): a measure that failed; the script goes on and reports the count at its end
fail() { echo "$ME: FAILED: $*" >&2; FAILED=$((FAILED + 1)); }

# bench_args "$@": the one argument, a build dir (BUILD, absolute); usage and exit 2 otherwise.
bench_args() {
    if [ $# -ne 1 ]; then
        echo "usage: $0 <build-dir>" >&2
        exit 2
    fi
    BUILD=$(cd "$1" && pwd)
    # `make bench` configures a Release build; a debug, sanitizer or untyped (unoptimized) CMake
    # build measures something else.
    [ -f "$BUILD/CMakeCache.txt" ] || return 0
    case $(build_type_of "$BUILD") in
    Release | RelWithDebInfo) ;;
    *) echo "# warning: $BUILD is a '$(build_type_of "$BUILD")' build: figures are not representative" >&2 ;;
    esac
}

# seconds_rounds <NAME> <seconds> <rounds> <quick seconds> <quick rounds>: SECS (per measure)
# and ROUNDS (the best round is kept) from BENCH_<NAME>_SECONDS and BENCH_<NAME>_ROUNDS, else
# the defaults (BENCH_QUICK's when it is 1).
seconds_rounds() {
    local s=$2 r=$3 sv=BENCH_$1_SECONDS rv=BENCH_$1_ROUNDS
    if [ "$QUICK" = 1 ]; then s=$4 r=$5; fi
    SECS=${!sv:-$s}
    ROUNDS=${!rv:-$r}
}

# need <command...>: dies naming the Debian package of the first one missing.
declare -A PKG_OF=([taskset]=util-linux [timeout]=coreutils [pgrep]=procps [go]=golang-go
    [valgrind]=valgrind [wrk]=wrk [curl]=curl [nginx]=nginx [haproxy]=haproxy [openssl]=openssl
    [redis-server]=redis-server [redis-benchmark]=redis-tools [$PY]=python3)
need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || die "$c not found (package ${PKG_OF[$c]:-$c}: make deps)"
    done
}
# need_py <module> <package>: dies unless python3 imports the module.
need_py() { "$PY" -c "import $1" 2>/dev/null || die "$2 is not installed (make deps)"; }

# can_pin <cpu> <variable>: dies unless a process can be pinned to that core.
can_pin() { taskset -c "$1" true 2>/dev/null || die "cannot pin to CPU $1 (set $2)"; }

# check_pinning [client]: dies unless taskset can pin the bench to $CPU (BENCH_CPU) and, when a
# client is named, to $CLIENT_CPU (BENCH_CLIENT_CPU); warns when the server and that client share
# a core.
check_pinning() {
    need taskset
    can_pin "$CPU" BENCH_CPU
    [ $# -gt 0 ] || return 0
    can_pin "$CLIENT_CPU" BENCH_CLIENT_CPU
    [ "$CPU" != "$CLIENT_CPU" ] || echo "# warning: server and $1 share CPU $CPU" >&2
}

# build_wanted: $BUILD is a configured CMake build dir and BENCH_NO_BUILD is not 1 (with it the
# binaries are used as they are: an older commit's build, say).
build_wanted() { [ -f "$BUILD/CMakeCache.txt" ] && [ "${BENCH_NO_BUILD:-0}" != 1 ]; }

# bench_build [-r] <target...>: brings the targets up to date when build_wanted; -r reconfigures
# first (an example is only defined once its source exists, which may be newer than the configure).
bench_build() {
    local reconfigure=0
    if [ "${1:-}" = -r ]; then reconfigure=1; shift; fi
    build_wanted || return 0
    if [ $reconfigure = 1 ]; then
        cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "reconfiguring $BUILD failed"
    fi
    cmake --build "$BUILD" --target "$@" >&2 || die "building $* failed"
}

# need_built <binary> [what building it needs]: dies unless the binary is there.
need_built() { [ -x "$1" ] || die "$1 not found: configure and build $BUILD first${2:+ (needs $2)}"; }

# rounds_bench <target> <needs>: the whole measure of a one-binary bench (the parsers' and the
# JSON encoder's): bench/<target> brought up to date, pinned to $CPU, run once with $ROUNDS
# between the start and end lines.
rounds_bench() {
    local bench=$BUILD/bench/$1
    check_pinning
    bench_build "$1"
    need_built "$bench" "$2"
    PIN=(taskset -c "$CPU")
    start_lines "pinned to cpu $CPU"
    echo "# build_type=$(build_type_of "$BUILD") quick=$QUICK rounds=$ROUNDS"
    run "$bench" "$ROUNDS"
    end_line
}

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
    kv_lines V "$out"
}

# kv_lines <array> <text>: records the key=value lines of text in the associative array named
# (not one named `into` or `line`).
kv_lines() {
    local -n into=$1
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^([A-Za-z0-9_]+)=(.*)$ ]]; then into[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}; fi
    done <<<"$2"
}

# ratio <name> <numerator key> <denominator key>: prints name=num/den (n/a if missing or 0).
ratio() {
    local a=${V[$2]:-} b=${V[$3]:-}
    awk -v n="$1" -v a="$a" -v b="$b" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { printf "%s=n/a\n", n; exit }
        printf "%s=%.2f\n", n, a / b }'
}

# verdict <target> <value> <op> <limit> [why when missed]: prints `target <target>: PASS|MISS
# (measured <value>)`, PASS when value <op> limit (op >=, <= or <); `MISS (not measured)` when the
# value is empty or n/a.
verdict() {
    if [ -z "$2" ] || [ "$2" = n/a ]; then
        echo "target $1: MISS (not measured)"
    elif awk -v v="$2" -v op="$3" -v m="$4" 'BEGIN {
        if (op == "<=") ok = v + 0 <= m + 0; else if (op == "<") ok = v + 0 < m + 0
        else ok = v + 0 >= m + 0
        exit !ok }'; then
        echo "target $1: PASS (measured $2)"
    else
        echo "target $1: MISS (measured $2${5:+: $5})"
    fi
}

# The CMake build type of build dir $1 ("unknown" if not a CMake build dir).
build_type_of() {
    local t
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
    echo "${t:-unknown}"
}

# go_env: Go builds keep their cache under $BUILD (and a GOPATH there when $HOME is not writable).
go_env() {
    mkdir -p "$BUILD/bench"
    export GOCACHE=${GOCACHE:-$BUILD/go-cache}
    if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
        export GOPATH=${GOPATH:-$BUILD/go-path}
    fi
}

# build_go_ref <dir under bench/ref> <binary>: builds a Go reference client or server (go_env);
# fails when go build does.
build_go_ref() {
    go_env
    (cd "$HERE/ref/$1" && GOFLAGS= GO111MODULE=on go build -o "$2" .) >&2
}

# start_lines <where it runs>: the first lines of a run's output (when, where, the load), so a
# figure can be judged later; end_line the load at the end.
start_lines() {
    echo "# $ME $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r)"
    echo "# $1 of $(nproc --all); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
end_line() { echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# nginx_conf <dir> <error_log> <inside http {}>: writes <dir>/nginx.conf for an nginx that the
# bench starts and stops itself: one worker (so "pinned to one core" holds), no access log, its
# pid and temp files under <dir>; NGINX is its command line (in the foreground).
nginx_conf() {
    mkdir -p "$1/tmp" "$1/logs"
    cat >"$1/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $1/nginx.pid;
error_log $2;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
$3
}
EOF
    NGINX=(nginx -p "$1/" -c "$1/nginx.conf" -e stderr -g 'daemon off;')
}

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
# wait_port <port>: returns once <port> accepts; dies when it does not within 20 s.
wait_port() {
    local i
    for ((i = 0; i < 400; i++)); do
        port_open "$1" && return 0
        sleep 0.05
    done
    port_open "$1" || die "port $1 never opened"
}

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
