#!/usr/bin/env bash
# Stack benchmark: what each hop of the deployment costs, in one run. Requests per second for a
# JSON endpoint (examples/http_hello GET /json, keep-alive, wrk) straight to one supervised web
# process, through HAProxy to 1 and to 2 processes, and through nginx -> HAProxy -> 2 processes.
#
#   bash bench/run_stack.sh <build-dir>        e.g. bash bench/run_stack.sh build
#
# Environment:
#   BENCH_QUICK=1          one round of 1 s per measure instead of three of 5 s (smoke run)
#   BENCH_STACK_SECONDS=t  seconds per measure; BENCH_STACK_ROUNDS=n rounds (best kept)
#   BENCH_STACK_CONNS=k    wrk connections (default 64); BENCH_TIMEOUT=s per process (600)
#
# Every server is started here on loopback from a temp dir on free ports (the configurations of
# docs/guide/deploy.md, minus health-check churn: `inter 2s`), wrk runs with one thread per
# measure. On a 2-core machine wrk, the proxies and the workers share the cores, so the
# 2-process figures say how much the second process helps when nothing else is free: run it on
# a machine with >= 4 cores for the scale-out figure. Moves per second to 1,000 SSE subscribers
# needs the chess club's web app (not built yet): not measured.
#
# Output: key=value lines (rps_<path>), ratios, then one `target ...: PASS|MISS` line per target.
# A missed target is reported and the script exits 0; a server that fails makes it exit 1.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then secs=1 rounds=1; else secs=5 rounds=3; fi
SECS=${BENCH_STACK_SECONDS:-$secs}
ROUNDS=${BENCH_STACK_ROUNDS:-$rounds}
CONNS=${BENCH_STACK_CONNS:-64}
TIMEOUT=${BENCH_TIMEOUT:-600}
PIN=()
unset SIMUL_DEBUG

die() { echo "run_stack.sh: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

SERVER=$BUILD/examples/http_hello
[ -x "$SERVER" ] || die "$SERVER not built"
for t in wrk haproxy nginx; do command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || die "$t missing (make deps)"; done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/run_stack.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for i in $(seq 1 400); do
        "$PY" -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0
        sleep 0.05
    done
    die "port $1 never opened"
}
start_web() { # NAME WORKERS -> PORT in $PORT
    "$SERVER" --host 127.0.0.1 --port 0 --workers "$2" >/dev/null 2>"$WORK/$1.err" &
    PIDS+=($!)
    local i
    for i in $(seq 1 400); do
        [ "$(grep -c "gen=1 ready" "$WORK/$1.err" || true)" -ge "$2" ] && break
        sleep 0.05
    done
    PORT=$(sed -n 's/.*workers on port \([0-9]*\).*/\1/p' "$WORK/$1.err" | head -1)
    [ -n "$PORT" ] || die "$1 did not start"
}

start_web one 1
P1=$PORT
start_web two 2
P2=$PORT
H1=$(free_port)
H2=$(free_port)
N2=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
    retries 3
    option redispatch
    default-server inter 2s fall 2 rise 1
frontend one
    bind 127.0.0.1:$H1
    default_backend one
frontend two
    bind 127.0.0.1:$H2
    default_backend two
backend one
    balance leastconn
    option httpchk GET /readyz
    server w 127.0.0.1:$P1 check
backend two
    balance leastconn
    option httpchk GET /readyz
    server w 127.0.0.1:$P2 check
EOF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    upstream haproxy { server 127.0.0.1:$H2; keepalive 64; keepalive_timeout 30s; }
    server {
        listen 127.0.0.1:$N2;
        location / { proxy_pass http://haproxy; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
nginx -p "$WORK/" -c "$WORK/nginx.conf" -e stderr -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
wait_port "$H1"
wait_port "$H2"
wait_port "$N2"

# measure NAME PORT: the best of ROUNDS wrk runs, as rps_NAME (errors or non-2xx fail the run)
measure() {
    local best=0 r out rps errs
    for r in $(seq 1 "$ROUNDS"); do
        out=$(timeout "$TIMEOUT" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$2/json") ||
            die "wrk on $1 failed"
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print int($2)}')
        errs=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
        [ -z "$errs" ] || die "$1: $errs"
        echo "# round $r $1: $rps req/s"
        [ "$rps" -gt "$best" ] && best=$rps
    done
    echo "rps_$1=$best"
    V[rps_$1]=$best
}
echo "# stack bench: wrk -t1 -c$CONNS, ${SECS}s x $ROUNDS rounds, GET /json; $(nproc) cores"
measure direct_1 "$P1"
measure haproxy_1 "$H1"
measure haproxy_2 "$H2"
measure nginx_haproxy_2 "$N2"
ratio haproxy_hop_ratio rps_haproxy_1 rps_direct_1
ratio scale_2_over_1 rps_haproxy_2 rps_haproxy_1
ratio nginx_hop_ratio rps_nginx_haproxy_2 rps_haproxy_2

# target NAME KEY MIN: PASS when the ratio is at least MIN
target() {
    local v
    v=$(ratio x "$2" "$3" | cut -d= -f2)
    awk -v n="$1" -v v="$v" -v m="$4" 'BEGIN {
        if (v == "n/a") { printf "target %s >= %s: MISS (not measured)\n", n, m; exit }
        printf "target %s >= %s: %s (measured %s)\n", n, m, (v + 0 >= m ? "PASS" : "MISS"), v }'
}
# One HAProxy hop should keep at least half the direct rate; a second process through HAProxy
# should add at least 30% (with the cores to run it); nginx in front keeps at least 40%.
target "haproxy hop (rps_haproxy_1 / rps_direct_1)" rps_haproxy_1 rps_direct_1 0.5
target "scale-out (rps_haproxy_2 / rps_haproxy_1)" rps_haproxy_2 rps_haproxy_1 1.3
target "nginx hop (rps_nginx_haproxy_2 / rps_haproxy_2)" rps_nginx_haproxy_2 rps_haproxy_2 0.4
