#!/usr/bin/env bash
# HTTP server benchmark: examples/http_hello (libsimul-http, one loop) beside nginx (one worker,
# `return 200`), aiohttp on uvloop and Flask under gunicorn, all in the same run: wrk -t1 -c100
# against GET / ("Hello, World!") and GET /json (a small JSON object), requests per second and
# server CPU per request. Each server is pinned to one core, wrk to another.
#
#   bash bench/run_http.sh <build-dir>        e.g. bash bench/run_http.sh build
#
# Environment:
#   BENCH_QUICK=1          one round of 2 s per measure (a smoke run) instead of three of 10 s
#   BENCH_CPU=n            core for the server (default 1)
#   BENCH_CLIENT_CPU=n     core for wrk (default 0)
#   BENCH_TIMEOUT=s        per-process time limit in seconds (default 900)
#   BENCH_HTTP_SECONDS=t   seconds per measure; BENCH_HTTP_ROUNDS=n rounds (the best is kept)
#   BENCH_NO_BUILD=1       use the binaries in <build-dir> as they are
#
# Same ground (and where it is not): /json is built and encoded per request by simul (jansson),
# aiohttp and Flask (their JSON helpers), while nginx returns a constant string.
# Keep-alive everywhere (wrk's default), no access logs, one process serving on one
# core (nginx: worker_processes 1, its master idle; gunicorn: one gthread worker with 16 threads,
# since its sync worker has no keep-alive). Server CPU from /proc schedstat over the server's
# process tree (bench/lib.sh), so CPU per request = server CPU / requests wrk counted. Answers
# are checked once per server with curl (status and body) so a fast wrong answer cannot win; a
# run where wrk reports errors or non-2xx answers fails.
#
# Targets (issue 13): requests per second at or above nginx's, with at most nginx's CPU per
# request, for / and /json. Output: key=value lines (http_<server>_<path>_rps, _cpu_ns_per_req),
# ratios (rps: simul/other, >1 better; cpu: other/simul, >1 better), then one
# `target ...: PASS|MISS (measured X)` line each. A missed target or a reference that cannot
# run is reported and the script exits 0; a server or wrk that fails makes it exit 1.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
TIMEOUT=${BENCH_TIMEOUT:-900}
seconds_rounds HTTP 10 3 2 1
CONNS=100
PORT_WAIT=20
SERVERS="simul nginx aiohttp flask"
PATHS="root json"

need timeout pgrep wrk curl "$PY"
check_pinning wrk

HELLO=$BUILD/examples/http_hello
bench_build -r example_http_hello
need_built "$HELLO"

trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM
WORK=$BUILD/bench/http
mkdir -p "$WORK"

# server_cmd <name> <port>: CMD, or SKIP_WHY.
server_cmd() {
    local port=$2
    SKIP_WHY=
    CMD=()
    case $1 in
    simul) CMD=("$HELLO" --host "$HOST" --port "$port") ;;
    nginx)
        command -v nginx >/dev/null || { SKIP_WHY="nginx not found (package nginx-light)"; return; }
        # Keep-alive as wrk uses it (a high keepalive_requests, so nginx does not close every
        # 1000th connection mid-run while the others keep theirs).
        nginx_conf "$WORK/nginx" stderr "    keepalive_requests 1000000;
    server {
        listen $HOST:$port;
        location = / { default_type \"text/plain; charset=utf-8\"; return 200 \"Hello, World!\"; }
        location = /json { default_type application/json; return 200 '{\"message\":\"Hello, World!\"}'; }
    }"
        CMD=("${NGINX[@]}") ;;
    aiohttp)
        "$PY" -c 'import aiohttp, uvloop' 2>/dev/null ||
            { SKIP_WHY="python3-aiohttp or python3-uvloop not installed"; return; }
        CMD=("$PY" "$HERE/ref/http_aiohttp.py" --host "$HOST" --port "$port") ;;
    flask)
        command -v gunicorn >/dev/null && "$PY" -c 'import flask' 2>/dev/null ||
            { SKIP_WHY="gunicorn or python3-flask not installed"; return; }
        CMD=(gunicorn -w 1 -k gthread --threads 16 -b "$HOST:$port" --chdir "$HERE/ref"
            --log-level warning http_flask:app) ;;
    *) die "unknown server '$1'" ;;
    esac
}

url_of() { if [ "$1" = root ]; then echo /; else echo /json; fi; }

# check_answers <server> <port>: the server answers both paths right (curl).
check_answers() {
    local b
    b=$(curl -sf --max-time 10 "http://$HOST:$2/") || { fail "$1: GET / failed"; return 1; }
    [ "$b" = "Hello, World!" ] || { fail "$1: GET / answered '$b'"; return 1; }
    b=$(curl -sf --max-time 10 "http://$HOST:$2/json" | tr -d ' \n') ||
        { fail "$1: GET /json failed"; return 1; }
    [ "$b" = '{"message":"Hello,World!"}' ] || { fail "$1: GET /json answered '$b'"; return 1; }
}

# measure <server>: one server process, wrk on each path.
measure() {
    local name=$1 port path out cpu0 cpu1 reqs rps
    port=$(free_port)
    server_cmd "$name" "$port"
    if [ ${#CMD[@]} -eq 0 ]; then
        echo "# $name: skipped: $SKIP_WHY"
        V[http_${name}_skipped]=$SKIP_WHY
        return 0
    fi
    start_server "http_$name" "$port" "${CMD[@]}" || return 0
    if ! check_answers "$name" "$port"; then
        stop_server
        return 0
    fi
    for path in $PATHS; do
        # a short warm-up (caches, lazy imports), not measured
        timeout 30 taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d1s "http://$HOST:$port$(url_of $path)" >/dev/null 2>&1 || true
        cpu0=$(tree_cpu_ns "$SPID")
        out=$(timeout -k 5 "$TIMEOUT" taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" \
            "http://$HOST:$port$(url_of $path)" 2>&1) || { fail "$name $path: wrk failed: $out"; continue; }
        cpu1=$(tree_cpu_ns "$SPID")
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
            fail "$name $path: wrk saw errors: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
            continue
        fi
        reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' <<<"$out")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
        [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || { fail "$name $path: no requests counted"; continue; }
        echo "# round $R: $name $path: $rps req/s, $(( (cpu1 - cpu0) / reqs )) server ns/req"
        keep_best "http_${name}_${path}_rps" "$rps" ">"
        keep_best "http_${name}_${path}_cpu_ns_per_req" "$(( (cpu1 - cpu0) / reqs ))" "<"
    done
    stop_server
}

echo "# run_http.sh: wrk -t1 -c$CONNS, ${SECS}s per measure, $ROUNDS round(s); server on CPU $CPU, wrk on CPU $CLIENT_CPU"
echo "# server CPU: $CPU_SOURCE"
for ((R = 1; R <= ROUNDS; R++)); do
    for s in $SERVERS; do measure "$s"; done
done

echo "# results (best round of each)"
for s in $SERVERS; do
    for p in $PATHS; do
        for k in rps cpu_ns_per_req; do
            key=http_${s}_${p}_$k
            [ -n "${V[$key]:-}" ] && echo "$key=${V[$key]}"
        done
    done
done
echo "# ratios: rps = simul/other (>1: simul serves more); cpu = other/simul (>1: simul spends less)"
for o in nginx aiohttp flask; do
    for p in $PATHS; do
        ratio "rps_simul_vs_${o}_$p" "http_simul_${p}_rps" "http_${o}_${p}_rps"
        ratio "cpu_simul_vs_${o}_$p" "http_${o}_${p}_cpu_ns_per_req" "http_simul_${p}_cpu_ns_per_req"
    done
done

# Targets: at or above nginx's requests per second, at most nginx's CPU per request. A miss
# names the likely reason from the figures of the same run.
target() { # target <description> <value> <reason if missed>
    if [ "$2" = n/a ] || [ -z "$2" ]; then
        echo "target $1: MISS (not measured: a server was skipped or failed)"
    elif awk -v a="$2" 'BEGIN { exit !(a + 0 >= 1) }'; then
        echo "target $1: PASS (measured $2)"
    else
        echo "target $1: MISS (measured $2: $3)"
    fi
}
r() { ratio x "$1" "$2" | cut -d= -f2; }
for p in $PATHS; do
    rr=$(r "http_simul_${p}_rps" "http_nginx_${p}_rps")
    cr=$(r "http_nginx_${p}_cpu_ns_per_req" "http_simul_${p}_cpu_ns_per_req")
    if awk -v c="$cr" 'BEGIN { exit !(c + 0 >= 1) }'; then
        why="simul spends no more CPU per request, so its core was not the limit: wrk's core or other load capped the rate (rerun on a quiet machine)"
    else
        why="simul spends more server CPU per request than nginx"
    fi
    target "$p: requests/s >= nginx's (ratio >= 1.00)" "$rr" "$why"
    if [ "$p" = json ]; then
        cwhy="simul builds and encodes a jansson object per request (~5,000 user-space instructions by callgrind: allocations, hashing, encoding) where nginx returns a constant string"
    else
        cwhy="simul's server CPU per request is above nginx's (see http_*_cpu_ns_per_req)"
    fi
    target "$p: CPU per request <= nginx's (ratio >= 1.00)" "$cr" "$cwhy"
done
if [ "$FAILED" -gt 0 ]; then
    echo "run_http.sh: $FAILED measure(s) failed" >&2
    exit 1
fi
