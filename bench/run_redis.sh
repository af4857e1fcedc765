#!/usr/bin/env bash
# Redis client benchmark: GET/SET operations per second of libsimul-redis against one
# redis-server, beside redis-benchmark and redis-py's asyncio client (python3-redis) on the same
# server in the same run. The server is pinned to one core, every client to the other.
#
#   bash bench/run_redis.sh <build-dir>        e.g. bash bench/run_redis.sh build
#
# Shapes (each client does the same work: OPS commands in all, SET and GET alternating on
# 3-byte values, redis-benchmark's default):
#   c50       simul: 50 tasks, each on its own connection  | redis-benchmark -c 50
#   autopipe  simul: 1,000 tasks on ONE connection, automatic pipelining
#                                                          | redis-benchmark -c 50 -P 16
#   redis-py asyncio: 50 tasks over a pool of 50 connections (its usual shape), for scale.
# redis-benchmark's figure is the rate of its SET and GET runs combined (2n / (n/set + n/get)).
#
# Environment:
#   BENCH_QUICK=1      20,000 commands per client, one round (smoke run); else 1,000,000, best
#                      of 3 rounds
#   BENCH_CPU=n        the clients' core (default 1); BENCH_SERVER_CPU=n the server's (default 0)
#   BENCH_TIMEOUT=s    per-process limit in seconds (default 600); a hang fails the run
#
# Output: every key=value line, then
#   redis_c50_vs_redis_benchmark=X            simul c50 / redis-benchmark -c 50
#   redis_autopipe_vs_redis_benchmark_p16=X   simul autopipe / redis-benchmark -c 50 -P 16
#   redis_c50_vs_redis_py=X                   simul c50 / redis-py asyncio
# and one `target ...: PASS|MISS (measured X ...)` line for each of the first two (target >= 1.0).
# A miss is reported with its figure and exits 0; a client that fails or hangs exits non-zero.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
SERVER_CPU=${BENCH_SERVER_CPU:-0}

if [ "$QUICK" = 1 ]; then OPS=20000; ROUNDS=1; else OPS=1000000; ROUNDS=3; fi
BENCH=$BUILD/bench/redis_bench

need redis-server redis-benchmark
need_py redis.asyncio python3-redis
check_pinning
can_pin "$SERVER_CPU" BENCH_SERVER_CPU

bench_build redis_bench
need_built "$BENCH"

PIN=(taskset -c "$CPU")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run_redis.XXXXXX")
SPID=
cleanup() {
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
    SPID=$!
    for _ in $(seq 1 500); do
        kill -0 "$SPID" 2>/dev/null || break
        redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG && break 2
        sleep 0.01
    done
    wait "$SPID" 2>/dev/null || true
    SPID=
done
[ -n "$SPID" ] || die "redis-server did not start"

build_type=$(build_type_of "$BUILD")
start_lines "server on cpu $SERVER_CPU, clients on cpu $CPU"
echo "# build_type=$build_type quick=$QUICK ops_per_client=$OPS rounds=$ROUNDS" \
    "$(redis-server --version | cut -d' ' -f1-3) redis-py=$("$PY" -c 'import redis; print(redis.__version__)')"

declare -A BEST=()
keep() { # keep <name> <value>: the best (highest) of the rounds
    local cur=${BEST[$1]:-0}
    if awk -v a="$2" -v b="$cur" 'BEGIN { exit !(a + 0 > b + 0) }'; then BEST[$1]=$2; fi
}
# redis-benchmark's SET and GET rates combined: the same n of each, so 2 / (1/set + 1/get).
rb() { # rb <name> <redis-benchmark args...>
    local name=$1 out
    shift
    out=$(timeout "$TIMEOUT" "${PIN[@]}" redis-benchmark -h 127.0.0.1 -p "$PORT" \
        -n $((OPS / 2)) -t set,get --csv "$@") || die "redis-benchmark $* failed"
    printf '%s\n' "$out" | sed 's/^/# /'
    local v
    v=$(printf '%s\n' "$out" | awk -F'"' '$2 == "SET" { s = $4 } $2 == "GET" { g = $4 }
        END { if (s > 0 && g > 0) printf "%.0f", 2 / (1 / s + 1 / g) }')
    [ -n "$v" ] || die "could not read redis-benchmark's output"
    echo "${name}_ops_per_sec=$v"
    keep "$name" "$v"
}
ours() { # ours <name> <mode>
    run "$BENCH" "$2" 127.0.0.1 "$PORT" "$OPS"
    [ "${V[errors]:-1}" = 0 ] || die "redis_bench $2 reported errors"
    echo "${1}_ops_per_sec=${V[ops_per_sec]}"
    keep "$1" "${V[ops_per_sec]}"
}
py() {
    run "$PY" "$HERE/redis_py_bench.py" 127.0.0.1 "$PORT" "$OPS" 50
    [ "${V[errors]:-1}" = 0 ] || die "redis_py_bench reported errors"
    echo "redis_py_c50_ops_per_sec=${V[ops_per_sec]}"
    keep redis_py_c50 "${V[ops_per_sec]}"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "# round $round"
    ours simul_c50 c50
    rb redis_benchmark_c50 -c 50
    ours simul_autopipe autopipe
    rb redis_benchmark_p16 -c 50 -P 16
    py
done

end_line
[ "$QUICK" = 1 ] && echo "# quick run: $OPS commands per client, one round; targets checked on it"
for k in simul_c50 redis_benchmark_c50 simul_autopipe redis_benchmark_p16 redis_py_c50; do
    echo "best_${k}_ops_per_sec=${BEST[$k]:-n/a}"
    V[best_$k]=${BEST[$k]:-}
done
ratio redis_c50_vs_redis_benchmark best_simul_c50 best_redis_benchmark_c50
ratio redis_autopipe_vs_redis_benchmark_p16 best_simul_autopipe best_redis_benchmark_p16
ratio redis_c50_vs_redis_py best_simul_c50 best_redis_py_c50

target() { # target <name> <num> <den> <why when missed>
    local v
    v=$(awk -v a="${V[$2]:-}" -v b="${V[$3]:-}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b }')
    verdict "$1>=1.0" "$v" ">=" 1.0 "$4"
}
target redis_c50_vs_redis_benchmark best_simul_c50 best_redis_benchmark_c50 \
    "per command, simul's loop pass and task switch cost more client CPU than redis-benchmark's bare event loop on the same core"
target redis_autopipe_vs_redis_benchmark_p16 best_simul_autopipe best_redis_benchmark_p16 \
    "one connection's batches against 50 connections of 16: the server's one core serves both; see writes= for the batch size"
exit 0
