#!/usr/bin/env bash
# club.sh — starts, shows and stops the chess club's whole stack on this machine, each "host" on
# its own loopback address, from Debian packages, configurations written into a state directory,
# nothing installed or left running:
#   nginx     127.0.0.2  TLS (a certificate made for the run), upstream keep-alive to HAProxy
#   haproxy   127.0.0.3  leastconn over the web instances, health checks on /readyz
#   web       127.0.0.4, 127.0.0.5, ...  each a supervisor (simul/supervisor.h) with N workers
#   redis     127.0.0.20
#   rabbitmq  127.0.0.21 (AMQP; its own epmd and distribution port on 127.0.0.1)
#   master    CLUB_MASTERS processes consuming the simul jobs (examples/chess_club/master.c)
# The web processes run the club's web app (examples/chess_club/web.c: club_web), or
# examples/http_hello when club_web is not built (no Redis or AMQP integration) or CLUB_RABBITMQ=0
# (the app needs its broker). Every process is started with setsid and recorded
# (role, address, pid) in $CLUB_STATE/procs; stop ends them by pid, children included, and
# waits until each is gone.
# Usage: club.sh start|status|stop, or club.sh restart redis|rabbitmq (the load tests' restart)
# Environment: CLUB_STATE (default ${TMPDIR:-/tmp}/simul-chess-club-$UID), CLUB_BUILD (the build
# dir with examples/http_hello; default <repo>/build), CLUB_WEB (instances, 2), CLUB_WORKERS
# (workers per instance, 2), CLUB_MASTERS (master processes, 2), CLUB_RABBITMQ=0 (leave RabbitMQ out: a start in 1 s instead of 6).
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${CLUB_STATE:-${TMPDIR:-/tmp}/simul-chess-club-$(id -u)}
BUILD=${CLUB_BUILD:-$ROOT/build}
NWEB=${CLUB_WEB:-2}
NWORKERS=${CLUB_WORKERS:-2}
WITH_RABBIT=${CLUB_RABBITMQ:-1}
NMASTERS=${CLUB_MASTERS:-2}
PY=/usr/bin/python3
PROCS=$STATE/procs
# How long a piece may take to come up. Only a broken one reaches it: the bound turns a hang into
# an error, it is not an expectation (RabbitMQ, 6 s on a quiet machine, took 55 s on a loaded
# 2-core one; a web worker or nginx gets there late in proportion).
UP=180

die() { echo "club: $*" >&2; exit 1; }

# ---- process bookkeeping ------------------------------------------------------------------
alive() { # PID: running (a zombie has ended: PID 1 reaps orphans a moment later)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}
descendants() { # PID: its children, recursively
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}
record() { echo "$1 $2 $3" >>"$PROCS"; } # ROLE ADDRESS PID
free_port() { # ADDRESS
    "$PY" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}
# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; the bound turns a hang into
# an error.
wait_for() {
    local what=$1 bound=$2
    shift 2
    local end=$((SECONDS + bound))
    until "$@"; do
        ((SECONDS < end)) || { echo "club: gave up waiting for $what" >&2; return 1; }
        sleep 0.05
    done
}
tcp_open() { "$PY" -c 'import socket,sys; socket.create_connection((sys.argv[1],int(sys.argv[2])),1)' "$1" "$2" 2>/dev/null; }
amqp_ready() { # ADDRESS PORT: the broker answers the protocol header with Connection.Start
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)
s.settimeout(2)
s.sendall(b"AMQP\x00\x00\x09\x01")
frame = s.recv(7)
sys.exit(0 if len(frame) == 7 and frame[0] == 1 else 1)
EOF
}
workers_ready() { # ERR_LOG: every worker of the instance said ready (each logs "gen=1 ready")
    local n
    n=$(grep -c "gen=1 ready" "$1" 2>/dev/null)
    ((${n:-0} >= NWORKERS))
}
ha_up() { # NAME: HAProxy's `show servers state` says it runs
    [[ $("$PY" "$ROOT/tests/stack/haproxy_state.py" "$STATE/haproxy/haproxy.sock" web "$1") == 2 ]]
}
club_running() {
    [[ -f $PROCS ]] || return 1
    local role addr pid
    while read -r role addr pid; do alive "$pid" && return 0; done <"$PROCS"
    return 1
}

# ---- the stateful servers, started by start and by restart ------------------------------------
start_redis() { # from $STATE/redis/addr; its line in procs replaced (or added)
    local raddr rport
    read -r raddr rport <"$STATE/redis/addr"
    setsid redis-server --port "$rport" --bind "$raddr" --save '' --appendonly yes \
        --appendfsync everysec --dir "$STATE/redis" --logfile "$STATE/redis/redis.log" \
        </dev/null >/dev/null 2>&1 &
    replace_record redis "$raddr:$rport" $!
}
# from $STATE/rabbitmq/env.sh; the node keeps its mnesia dir, so the durable queue and its
# persistent messages survive a restart
start_rabbitmq() {
    local d=$STATE/rabbitmq qaddr qport
    read -r qaddr qport <"$d/addr"
    (
        . "$d/env.sh"
        setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$d/server.log" 2>&1 &
        echo $! >"$d/server.pid"
    )
    replace_record rabbitmq "$qaddr:$qport" "$(cat "$d/server.pid")"
}
replace_record() { # ROLE ADDRESS PID: the role's line (one per role) replaced, or added
    local tmp=$PROCS.tmp
    { grep -v "^$1 " "$PROCS" || true; } >"$tmp"
    echo "$1 $2 $3" >>"$tmp"
    mv "$tmp" "$PROCS"
}

# restart redis|rabbitmq: a graceful stop (Redis flushes its append-only file, RabbitMQ keeps its
# durable queue), then the same server on the same address and port; returns once it answers.
restart() {
    local role=$1 addr pid pids
    case $role in redis | rabbitmq) ;; *) die "restart redis|rabbitmq" ;; esac
    club_running || die "no club runs from $STATE"
    read -r _ addr pid < <(grep "^$role " "$PROCS") || die "no $role in $PROCS"
    pids=("$pid" $(descendants "$pid"))
    kill -TERM "$pid"
    if ! wait_for "$role to stop" 30 all_gone "${pids[@]}"; then
        kill -KILL "${pids[@]}" 2>/dev/null
        wait_for "$role killed" 5 all_gone "${pids[@]}" || die "$role would not stop"
    fi
    case $role in
    redis)
        start_redis
        wait_for redis $UP tcp_open "${addr%:*}" "${addr#*:}"
        ;;
    rabbitmq)
        start_rabbitmq
        wait_for rabbitmq $UP amqp_ready "${addr%:*}" "${addr#*:}"
        ;;
    esac
    echo "$role restarted: $addr pid=$(awk -v r="$role" '$1 == r {print $3}' "$PROCS")"
}

# ---- start --------------------------------------------------------------------------------
start() {
    club_running && die "a club already runs from $STATE (club.sh stop first)"
    local http_hello=$BUILD/examples/http_hello
    [[ -x $http_hello ]] || die "$http_hello not built (cmake --build $BUILD --target example_http_hello)"
    local tool
    for tool in nginx haproxy redis-server openssl "$PY"; do
        command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
            die "$tool missing (make deps installs nginx-light, haproxy, redis-server, rabbitmq-server)"
    done
    if [[ $WITH_RABBIT == 1 && ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
        die "rabbitmq-server missing (make deps), or CLUB_RABBITMQ=0"
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE" || die "cannot make $STATE"
    : >"$PROCS"
    trap 'echo "club: start failed; stopping what started (logs in $STATE)" >&2; stop >/dev/null 2>&1; exit 1' ERR

    # redis: an append-only file in its dir, so a restart (club.sh restart redis) keeps the club
    local raddr=127.0.0.20 rport
    rport=$(free_port $raddr)
    mkdir -p "$STATE/redis"
    echo "$raddr $rport" >"$STATE/redis/addr"
    start_redis

    # rabbitmq, as tests/../SERVERS.md says: its own epmd, no daemons, everything under STATE
    local qaddr=127.0.0.21 qport=
    if [[ $WITH_RABBIT == 1 ]]; then
        qport=$(free_port $qaddr)
        local d=$STATE/rabbitmq dist epmdp
        dist=$(free_port 127.0.0.1)
        epmdp=$(free_port 127.0.0.1)
        mkdir -p "$d"
        : >"$d/env.conf"
        echo '[].' >"$d/enabled_plugins"
        printf 'listeners.tcp.default = %s:%s\n' $qaddr "$qport" >"$d/rabbitmq.conf"
        cat >"$d/env.sh" <<EOF
export HOME=$d RABBITMQ_NODENAME=club$qport@localhost RABBITMQ_NODE_IP_ADDRESS=$qaddr \\
    RABBITMQ_NODE_PORT=$qport RABBITMQ_DIST_PORT=$dist ERL_EPMD_PORT=$epmdp \\
    ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_CONF_ENV_FILE=$d/env.conf \\
    RABBITMQ_CONFIG_FILE=$d/rabbitmq RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config \\
    RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins RABBITMQ_MNESIA_BASE=$d/mnesia \\
    RABBITMQ_LOG_BASE=$d/log RABBITMQ_PID_FILE=$d/rabbit.pid \\
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false"
EOF
        echo "$qaddr $qport" >"$d/addr"
        (
            . "$d/env.sh"
            setsid epmd -port "$epmdp" -address 127.0.0.1 </dev/null >"$d/epmd.log" 2>&1 &
            echo $! >"$d/epmd.pid"
            wait_for epmd $UP tcp_open 127.0.0.1 "$epmdp"
        )
        record epmd "127.0.0.1:$epmdp" "$(cat "$d/epmd.pid")"
        start_rabbitmq
    fi

    # The web app and the masters need Redis and the broker up: they connect at start.
    wait_for redis $UP tcp_open $raddr "$rport"
    [[ $WITH_RABBIT == 1 ]] && wait_for rabbitmq $UP amqp_ready $qaddr "$qport"
    local club_web=$BUILD/examples/club_web club_master=$BUILD/examples/club_master app=()
    if [[ $WITH_RABBIT == 1 && -x $club_web && -x $club_master ]]; then
        app=("$club_web" --redis "$raddr:$rport" --amqp "amqp://guest:guest@$qaddr:$qport/")
        local m
        for ((m = 0; m < NMASTERS; m++)); do
            mkdir -p "$STATE/master$m"
            setsid "$club_master" --redis "$raddr:$rport" --amqp "amqp://guest:guest@$qaddr:$qport/" \
                --prefetch 4 </dev/null >"$STATE/master$m/out.log" 2>"$STATE/master$m/err.log" &
            record master "-" $!
        done
    else
        app=("$http_hello")
    fi

    # web instances: a supervisor each. HAProxy sends each connection a PROXY v2 header (the
    # client's address as HAProxy saw it: nginx's, or a client's that came to HAProxy itself),
    # and the web believes X-Forwarded-For only from nginx's address.
    local naddr=127.0.0.2 haddr=127.0.0.3 proxy_args=() sendproxy=""
    if ((${#app[@]} > 1)); then
        proxy_args=(--proxy-protocol 1 --trusted-proxies "$naddr")
        sendproxy=" send-proxy-v2"
    fi
    local i waddr wport servers=""
    for ((i = 0; i < NWEB; i++)); do
        waddr=127.0.0.$((4 + i))
        wport=$(free_port "$waddr")
        mkdir -p "$STATE/web$i"
        setsid "${app[@]}" --host "$waddr" --port "$wport" --workers "$NWORKERS" \
            --drain-delay 1 --stop-timeout 10 "${proxy_args[@]}" </dev/null >"$STATE/web$i/out.log" 2>"$STATE/web$i/err.log" &
        record web "$waddr:$wport" $!
        servers+="    server web$i $waddr:$wport check$sendproxy"$'\n'
    done

    # haproxy
    local hport
    hport=$(free_port $haddr)
    mkdir -p "$STATE/haproxy"
    cat >"$STATE/haproxy/haproxy.cfg" <<EOF
global
    stats socket $STATE/haproxy/haproxy.sock level admin
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 1h
    timeout http-keep-alive 60s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
    default-server inter 200ms fall 2 rise 1
    # The check's read gets its own timeout; without it the whole check must finish within
    # inter, and a loaded machine that leaves the web processes off the CPU for 0.4 s took both
    # servers DOWN ("Layer7 timeout, check duration: 200ms") and answered 503 meanwhile. A dead
    # process is still seen at once: its connect is refused.
    timeout check 5s
frontend fe
    bind $haddr:$hport
    default_backend web
backend web
    balance leastconn
    source $haddr
    option httpchk GET /readyz
    http-check expect status 200
$servers
EOF
    haproxy -c -f "$STATE/haproxy/haproxy.cfg" >"$STATE/haproxy/check.log" 2>&1 ||
        { cat "$STATE/haproxy/check.log" >&2; false; }
    setsid haproxy -f "$STATE/haproxy/haproxy.cfg" -db </dev/null >"$STATE/haproxy/haproxy.log" 2>&1 &
    record haproxy "$haddr:$hport" $!

    # nginx, TLS with a certificate made for this run
    local nport
    nport=$(free_port $naddr)
    local n=$STATE/nginx
    mkdir -p "$n/tmp" "$n/static" "$n/www"
    cp "$HERE"/www/* "$n/www/"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:$naddr" \
        -keyout "$n/key.pem" -out "$n/cert.pem" >/dev/null 2>&1
    echo "the chess club" >"$n/static/index.txt"
    cat >"$n/nginx.conf" <<EOF
user root;
worker_processes 2;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    upstream haproxy {
        server $haddr:$hport;
        keepalive 32;
        keepalive_timeout 30s;
    }
    server {
        listen $naddr:$nport ssl;
        ssl_certificate $n/cert.pem;
        ssl_certificate_key $n/key.pem;
        root $n/www;
        location /static/ { alias $n/static/; }
        location = / { try_files /index.html =404; }    # the club's page, a static file
        location / {
            proxy_pass http://haproxy;
            proxy_bind $naddr;                             # nginx's own "host" address
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
    setsid nginx -p "$n/" -c "$n/nginx.conf" -e stderr -g 'daemon off;' </dev/null >"$n/nginx.log" 2>&1 &
    record nginx "$naddr:$nport" $!

    # ready: every piece answers
    wait_for redis $UP tcp_open $raddr "$rport"
    for ((i = 0; i < NWEB; i++)); do
        wait_for "web$i" $UP workers_ready "$STATE/web$i/err.log"
        wait_for "haproxy sees web$i" $UP ha_up "web$i"
    done
    wait_for nginx $UP tcp_open $naddr "$nport"
    for ((i = 0; i < NMASTERS && ${#app[@]} > 1; i++)); do
        wait_for "master$i" $UP grep -q "consuming" "$STATE/master$i/err.log"
    done
    trap - ERR
    echo "https://$naddr:$nport/   (CA: $n/cert.pem; state: $STATE)"
}

# ---- status ---------------------------------------------------------------------------------
status() {
    [[ -f $PROCS ]] || { echo "club: not started ($STATE)"; return 3; }
    local role addr pid up=0 total=0 c
    while read -r role addr pid; do
        total=$((total + 1))
        if alive "$pid"; then
            up=$((up + 1))
            printf '%-9s %-22s pid=%s\n' "$role" "$addr" "$pid"
            # the processes behind it: web workers, nginx workers, the broker's beam
            for c in $(descendants "$pid"); do
                case $role in
                web) printf '%-9s %-22s pid=%s worker of %s\n' web "$addr" "$c" "$pid" ;;
                nginx) printf '%-9s %-22s pid=%s worker of %s\n' nginx "$addr" "$c" "$pid" ;;
                rabbitmq) [[ $(cat "/proc/$c/comm" 2>/dev/null) == beam.smp ]] &&
                    printf '%-9s %-22s pid=%s beam of %s\n' rabbitmq "$addr" "$c" "$pid" ;;
                esac
            done
        else
            printf '%-9s %-22s pid=%s DOWN\n' "$role" "$addr" "$pid"
        fi
    done <"$PROCS"
    ((up == total))
}

# ---- stop -------------------------------------------------------------------------------------
stop() {
    [[ -f $PROCS ]] || { echo "club: nothing to stop ($STATE)"; return 0; }
    # In front first, so nothing new reaches what stops next; each with its own graceful signal.
    local order="nginx haproxy web master rabbitmq epmd redis" role r addr pid sig all=()
    for r in $order; do
        local pids=()
        while read -r role addr pid; do
            [[ $role == "$r" ]] && alive "$pid" && pids+=("$pid" $(descendants "$pid"))
        done <"$PROCS"
        ((${#pids[@]})) || continue
        all+=("${pids[@]}")
        case $r in
        nginx) sig=QUIT ;;
        haproxy) sig=USR1 ;;
        *) sig=TERM ;;
        esac
        while read -r role addr pid; do
            [[ $role == "$r" ]] && alive "$pid" && kill -"$sig" "$pid" 2>/dev/null
        done <"$PROCS"
        # web: the supervisor's own deadline (drain 1 + stop 10 + 5 s); the others stop in ~1 s
        if ! wait_for "$r to stop" 20 all_gone "${pids[@]}"; then
            kill -KILL "${pids[@]}" 2>/dev/null
            wait_for "$r killed" 5 all_gone "${pids[@]}"
        fi
    done
    all_gone "${all[@]}" || { echo "club: processes left: ${all[*]}" >&2; return 1; }
    rm -f "$PROCS"
    echo "stopped (${#all[@]} processes)"
}
all_gone() { local p; for p in "$@"; do alive "$p" && return 1; done; return 0; }

case ${1:-} in
start) start ;;
status) status ;;
restart) restart "${2:-}" ;;
stop) stop ;;
*) echo "usage: $0 start|status|stop|restart redis|rabbitmq" >&2; exit 2 ;;
esac
