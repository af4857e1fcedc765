#!/usr/bin/env bash
# The stack, end to end: supervised http_hello instances (simul/supervisor.h) alone and behind
# real HAProxy and nginx, all on loopback, from a temp dir, on free ports, under steady load
# (tests/stack/load.py: keep-alive clients that count failures). Checks:
#   direct   kill -9 one worker: the supervisor restarts it; failed requests <= those that can be
#            in flight on it (one per client connection);  SIGHUP reload: zero failed requests.
#   proxied  (load -> nginx -> HAProxy -> instances a, b) kill -9 a worker: <= in flight;
#            SIGHUP reload of both instances: zero failed, zero retried;
#            SIGTERM instance a: HAProxy's /readyz checks mark it DOWN while it still runs (its
#            workers fail /readyz for --drain-delay before they stop accepting), zero failed;
#            a stops within its deadline and leaves no process; SIGTERM b likewise.
#   reuseport SIGHUP reload of a --reuseport instance one worker at a time: zero failed requests.
# Every wait is for a state (a log line, HAProxy's `show servers state`, a request count, a
# process gone), polled with an upper bound; never a sleep standing for an event.
# Usage: stack_proxy_test.sh <build-dir>. Prints PASS/FAIL per check and the counts.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
STACK=$HERE/../stack
SERVER=$BUILD/examples/http_hello
PY=/usr/bin/python3
if [[ ! -x $SERVER ]]; then
    echo "SKIP: $SERVER not built (libsimul-http needs libjansson-dev)"
    exit 0
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$HAPROXY" "$NGINX" "$PY"; do
    if [[ ! -x $tool ]]; then
        echo "FAIL: $tool not found (make deps installs haproxy and nginx-light)"
        exit 1
    fi
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stack_proxy_test.XXXXXX") || exit 1
CONNS=8
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

# Every process this test starts, by pid; workers are found through their master's log.
declare -A MASTER
HAPROXY_PID=
NGINX_PID=
LOAD_PID=
all_worker_pids() { cat "$WORK"/*.err 2>/dev/null | sed -n 's/.* pid=\([0-9]*\) .*started$/\1/p' | sort -u; }
cleanup() {
    [[ -n $LOAD_PID ]] && { touch "$WORK/load.stop"; kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
    for n in "${!MASTER[@]}"; do
        kill -KILL "${MASTER[$n]}" 2>/dev/null && wait "${MASTER[$n]}" 2>/dev/null
    done
    for p in $(all_worker_pids); do kill -KILL "$p" 2>/dev/null; done
    [[ -n $HAPROXY_PID ]] && { kill -KILL "$HAPROXY_PID" 2>/dev/null; wait "$HAPROXY_PID" 2>/dev/null; }
    [[ -n $NGINX_PID ]] && { kill -KILL "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; }
    [[ -f $WORK/nginx.pid ]] && kill -KILL "$(cat "$WORK/nginx.pid")" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds; the bound only
# turns a hang into a failure.
wait_until() {
    local what=$1 bound=$2
    shift 2
    local end=$((SECONDS + bound))
    while ! "$@"; do
        if ((SECONDS >= end)); then
            echo "  (gave up waiting for: $what)"
            return 1
        fi
        sleep 0.05
    done
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lines() { local n; n=$(grep -c -- "$2" "$WORK/$1.err" 2>/dev/null); echo "${n:-0}"; }
at_least() { (($(lines "$1" "$2") >= $3)); }
gone() { ! kill -0 "$1" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
all_gone() { local p; for p in "$@"; do gone "$p" || return 1; done; }

# start_instance NAME DRAIN_DELAY: a supervisor with 2 workers on a free port.
start_instance() {
    local name=$1 drain=$2
    "$SERVER" --host 127.0.0.1 --workers 2 --port 0 --drain-delay "$drain" --stop-timeout 10 \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    MASTER[$name]=$!
    wait_until "$name ready" 30 at_least "$name" "gen=1 ready" 2 || return 1
    PORT=$(sed -n 's/.*workers on port \([0-9]*\).*/\1/p' "$WORK/$name.err" | head -1)
}
workers_of() { pgrep -P "${MASTER[$1]}"; }

# ---- load ----
load_start() { # HOST PORT
    rm -f "$WORK/load.stop" "$WORK/load.json"
    "$PY" "$STACK/load.py" "$1" "$2" / "$CONNS" "$WORK/load.json" "$WORK/load.stop" \
        --max-seconds 240 >"$WORK/load.final" 2>"$WORK/load.log" &
    LOAD_PID=$!
    wait_until "first requests" 30 load_done_at_least 100
}
load_field() { "$PY" -c "import json,sys; d=json.load(open('$WORK/load.json')); print(d['$1'])" 2>/dev/null || echo 0; }
load_total() { "$PY" -c "import json; d=json.load(open('$WORK/load.json')); print(d['ok']+d['failed'])" 2>/dev/null || echo 0; }
load_done_at_least() { (($(load_total) >= $1)); }
load_more() { # N: wait until N more requests are done
    local base
    base=$(load_total)
    wait_until "$1 more requests" 60 load_done_at_least $((base + $1))
}
load_stop() {
    touch "$WORK/load.stop"
    wait "$LOAD_PID" 2>/dev/null
    LOAD_PID=
    cat "$WORK/load.final"
}
# Counters of one scenario: the load is restarted per scenario, so the totals are its own.
report() { # NAME
    echo "  $1: ok=$(load_field ok) failed=$(load_field failed) retried=$(load_field retried) reasons=$(load_field reasons)"
}

# =========================== direct: clients -> supervisor ===========================
start_instance a 1.5 || { fail "instance a did not start"; cat "$WORK/a.err"; exit 1; }
PA=$PORT
pass "instance a: 2 workers ready on port $PA"

# kill -9 one worker under load
load_start 127.0.0.1 "$PA" || fail "load did not start"
victim=$(workers_of a | head -1)
kill -KILL "$victim"
if wait_until "restart of $victim" 30 at_least a "gen=1 ready" 3 &&
    grep -q "pid=$victim gen=1 killed by signal 9 (SIGKILL) unexpectedly" "$WORK/a.err"; then
    pass "direct kill: worker $victim reported killed by SIGKILL and restarted"
else
    fail "direct kill: no restart"
fi
load_more 300
load_stop >/dev/null
report "direct kill"
lost=$(($(load_field failed) + $(load_field retried)))
if ((lost <= CONNS)); then
    pass "direct kill: $lost requests failed or retried, <= $CONNS that can be in flight on it"
else
    fail "direct kill: $lost requests lost, more than the $CONNS in flight"
fi
((${#MASTER[@]})) && [[ $(workers_of a | wc -l) -eq 2 ]] && pass "direct kill: 2 workers again" ||
    fail "direct kill: $(workers_of a | wc -l) workers"

# SIGHUP reload under load
load_start 127.0.0.1 "$PA" || fail "load did not start"
old=$(workers_of a)
kill -HUP "${MASTER[a]}"
wait_until "reload of a" 60 at_least a "reloaded: generation 2" 1 || fail "direct reload: not reloaded"
wait_until "old workers of a exit" 60 all_gone $old || fail "direct reload: old workers still there"
load_more 300
load_stop >/dev/null
report "direct reload"
if (($(load_field failed) == 0)); then
    pass "direct reload: zero failed requests (retried on closed idle keep-alive: $(load_field retried))"
else
    fail "direct reload: $(load_field failed) failed requests"
fi

# SIGHUP reload of a --reuseport instance under load, one worker at a time: each slot's socket
# stays in the master, so nothing queued on an old worker's socket is lost
"$SERVER" --host 127.0.0.1 --workers 2 --reuseport --reload-batch 1 --port 0 --stop-timeout 10 \
    >"$WORK/r.out" 2>"$WORK/r.err" &
MASTER[r]=$!
if wait_until "r ready" 30 at_least r "gen=1 ready" 2; then
    PR=$(sed -n 's/.*workers on port \([0-9]*\) (reuseport).*/\1/p' "$WORK/r.err" | head -1)
    load_start 127.0.0.1 "$PR" || fail "load did not start"
    old=$(workers_of r)
    kill -HUP "${MASTER[r]}"
    wait_until "reload of r" 60 at_least r "reloaded: generation 2" 1 || fail "reuseport reload"
    wait_until "old workers of r exit" 60 all_gone $old || fail "reuseport: old workers left"
    load_more 300
    load_stop >/dev/null
    report "reuseport reload"
    (($(load_field failed) == 0)) && pass "reuseport reload: zero failed requests" ||
        fail "reuseport reload: $(load_field failed) failed"
    kill -TERM "${MASTER[r]}"
    wait "${MASTER[r]}" && pass "reuseport instance stopped (exit 0)" || fail "r: exit $?"
    unset 'MASTER[r]'
else
    fail "reuseport instance did not start"; cat "$WORK/r.err"
fi

# =========================== proxied: load -> nginx -> HAProxy -> a, b ===========================
start_instance b 1.5 || { fail "instance b did not start"; cat "$WORK/b.err"; exit 1; }
PB=$PORT
pass "instance b: 2 workers ready on port $PB"
PH=$(free_port)
PN=$(free_port)
# Keep-alive timings, each hop's idle timeout longer than the one in front of it closing first:
# nginx keeps upstream connections 30 s < HAProxy's client-side http-keep-alive 60 s; HAProxy's
# idle server connections are purged well within http_hello's 75 s.
cat >"$WORK/haproxy.cfg" <<EOF
global
    stats socket $WORK/haproxy.sock level admin
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
    default-server inter 200ms fall 2 rise 1
    # The check's read has its own timeout (without it the whole check must finish within inter:
    # on a loaded machine a 0.4 s stall of the instances took both DOWN and HAProxy answered 503).
    timeout check 5s
frontend fe
    bind 127.0.0.1:$PH
    default_backend web
backend web
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    server a 127.0.0.1:$PA check
    server b 127.0.0.1:$PB check
EOF
mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    upstream haproxy {
        server 127.0.0.1:$PH;
        keepalive 32;
        keepalive_timeout 30s;
    }
    server {
        listen 127.0.0.1:$PN;
        location / {
            proxy_pass http://haproxy;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
if ! "$HAPROXY" -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy.check" 2>&1; then
    fail "haproxy -c"; cat "$WORK/haproxy.check"; exit 1
fi
"$HAPROXY" -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
"$NGINX" -p "$WORK/" -c "$WORK/nginx.conf" -e stderr -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
state() { "$PY" "$STACK/haproxy_state.py" "$WORK/haproxy.sock" web "$1"; }
is_state() { [[ $(state "$1") == "$2" ]]; }
nginx_up() { "$PY" -c "import socket; socket.create_connection(('127.0.0.1',$PN),1)" 2>/dev/null; }
if wait_until "haproxy: a UP" 30 is_state a 2 && wait_until "haproxy: b UP" 30 is_state b 2 &&
    wait_until "nginx" 30 nginx_up; then
    pass "haproxy sees a and b UP (show servers state), nginx listens"
else
    fail "proxies did not come up"; cat "$WORK/haproxy.log" "$WORK/nginx.log"; exit 1
fi

# kill -9 a worker of b under load through nginx and HAProxy
load_start 127.0.0.1 "$PN" || fail "load did not start"
victim=$(workers_of b | head -1)
kill -KILL "$victim"
wait_until "restart in b" 30 at_least b "gen=1 ready" 3 || fail "proxied kill: no restart"
load_more 300
load_stop >/dev/null
report "proxied kill"
lost=$(($(load_field failed) + $(load_field retried)))
((lost <= CONNS)) && pass "proxied kill: $lost failed, <= $CONNS in flight" ||
    fail "proxied kill: $lost failed"

# SIGHUP both instances under load
load_start 127.0.0.1 "$PN" || fail "load did not start"
olda=$(workers_of a)
oldb=$(workers_of b)
kill -HUP "${MASTER[a]}" "${MASTER[b]}"
wait_until "reload of a" 60 at_least a "reloaded: generation 3" 1 || fail "proxied reload: a"
wait_until "reload of b" 60 at_least b "reloaded: generation 2" 1 || fail "proxied reload: b"
wait_until "old workers exit" 60 all_gone $olda $oldb || fail "proxied reload: old workers left"
load_more 300
load_stop >/dev/null
report "proxied reload"
if (($(load_field failed) == 0 && $(load_field retried) == 0)); then
    pass "proxied rolling reload of both instances: zero failed requests"
else
    fail "proxied reload: $(load_field failed) failed, $(load_field retried) retried"
fi

# SIGTERM a: HAProxy routes around it before it stops accepting
load_start 127.0.0.1 "$PN" || fail "load did not start"
wa=$(workers_of a)
t0=$SECONDS
kill -TERM "${MASTER[a]}"
if wait_until "haproxy: a DOWN" 30 is_state a 0; then
    if kill -0 "${MASTER[a]}" 2>/dev/null && ! at_least a "stopped: every worker reaped" 1; then
        pass "haproxy marked a DOWN from /readyz while a was still draining"
    else
        fail "a had already stopped when haproxy marked it DOWN"
    fi
else
    fail "haproxy never marked a DOWN"
fi
# a's deadline: drain 1.5 + 10 + 5 s in the master (http_hello's --stop-timeout + margin)
wait_until "a exits" 20 gone "${MASTER[a]}"
wait "${MASTER[a]}"
rc=$?
unset 'MASTER[a]'
((rc == 0 && SECONDS - t0 <= 17)) && pass "a stopped (exit 0) in $((SECONDS - t0)) s, within its deadline" ||
    fail "a: exit $rc after $((SECONDS - t0)) s"
all_gone $wa && pass "a left no worker behind" || fail "a's workers still there"
load_more 300
load_stop >/dev/null
report "proxied stop of a"
if (($(load_field failed) == 0)); then
    pass "stopping a behind haproxy: zero failed requests"
else
    fail "stopping a: $(load_field failed) failed"
fi

# SIGTERM b: everything stops within the deadline, nothing left
wb=$(workers_of b)
t0=$SECONDS
kill -TERM "${MASTER[b]}"
wait_until "b exits" 20 gone "${MASTER[b]}"
wait "${MASTER[b]}"
rc=$?
unset 'MASTER[b]'
((rc == 0)) && pass "b stopped (exit 0) in $((SECONDS - t0)) s" || fail "b: exit $rc"
kill -TERM "$HAPROXY_PID"
wait "$HAPROXY_PID" 2>/dev/null
HAPROXY_PID=
kill -QUIT "$NGINX_PID"
wait "$NGINX_PID" 2>/dev/null
NGINX_PID=
# shellcheck disable=SC2046
if all_gone $(all_worker_pids) && ! pgrep -f "$WORK" >/dev/null; then
    pass "no process left: $(all_worker_pids | wc -l) workers over the test, all reaped"
else
    fail "processes left behind"
fi

# Every worker that was asked to go exited 0 (a drain that completed; under ASan, no leak report)
bad=$(cat "$WORK"/a.err "$WORK"/b.err "$WORK"/r.err | grep -E "exited with status [1-9]|Sanitizer|runtime error" | head -5)
[[ -z $bad ]] && pass "every drained worker exited 0, no sanitizer report" || fail "workers: $bad"

echo "stack_proxy: $FAILURES failure(s)"
((FAILURES == 0))
