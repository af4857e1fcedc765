#!/bin/bash
# broker.sh — one RabbitMQ node for the amqp suite: started once (CTest FIXTURES_SETUP), stopped
# once (FIXTURES_CLEANUP), and killed / restarted / stopped with SIGSTOP by the tests that need it.
# The idea: every process runs in a session of its own (setsid), so stopping kills whole sessions
# by id and waits until /proc shows none of their processes: no epmd or beam.smp outlives the suite.
#
#   broker.sh start STATE     temp dir, free ports, own epmd, node test<P>@localhost; waits ready
#   broker.sh stop STATE      stops the node and epmd, removes the temp dir and STATE
#   broker.sh kill STATE      SIGKILLs the node's session (epmd stays); `start STATE` restarts it
#                             on the same ports and data
#   broker.sh signal STATE SIG   sends SIG (STOP, CONT) to beam.smp
#   broker.sh ctl STATE ARGS  rabbitmqctl -n NODE ARGS
#   broker.sh port STATE      prints the AMQP port
#   broker.sh tlsport STATE   prints the AMQPS port (TLS listener, certificates in `dir`/tls)
#   broker.sh dir STATE       prints the node's temp dir
# The node also listens for TLS (its own PKI made with openssl at the first start: a CA, a server
# certificate for DNS:localhost only, a client certificate CN=simul-ext for EXTERNAL, one for a
# user that does not exist, and a second CA that signed nothing the broker uses) and offers
# EXTERNAL (rabbitmq_auth_mechanism_ssl, which opens no listener).
# STATE is a directory (e.g. build/tests/amqp-broker) holding `env` (ports, temp dir, pids).
set -u
cmd=${1:?usage: broker.sh start|stop|kill|signal|ctl|port|tlsport|dir STATE ...}
S=${2:?state dir}
shift 2
RMQ=/usr/lib/rabbitmq/bin

# A port is free when nothing listens on it or holds it bound (ss lists both).
port_free() { ! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; }

pick_ports() {
    local tries=0
    while [ $tries -lt 200 ]; do
        tries=$((tries + 1))
        P=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))  # below the ephemeral range, far from 35672
        if port_free $P && port_free $((P + 1)) && port_free $((P + 2)) && port_free $((P + 3)); then
            return 0
        fi
    done
    echo "broker.sh: no free ports" >&2
    return 1
}

load() {
    [ -f "$S/env" ] || { echo "broker.sh: no broker state in $S" >&2; exit 1; }
    # shellcheck disable=SC1091
    . "$S/env"
    export HOME=$D RABBITMQ_NODENAME=$NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT=$P RABBITMQ_DIST_PORT=$((P + 1)) ERL_EPMD_PORT=$((P + 2)) \
        ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_CONF_ENV_FILE=$D/env.conf \
        RABBITMQ_CONFIG_FILE=$D/rabbitmq RABBITMQ_ADVANCED_CONFIG_FILE=$D/advanced.config \
        RABBITMQ_ENABLED_PLUGINS_FILE=$D/enabled_plugins RABBITMQ_MNESIA_BASE=$D/mnesia \
        RABBITMQ_LOG_BASE=$D/log RABBITMQ_PID_FILE=$D/rabbit.pid \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false" \
        RABBITMQ_CTL_ERL_ARGS="-start_epmd false"
}

# The processes of session $1 (its leader included), from /proc: ps is not needed.
session_pids() {
    local sid=$1 f
    for f in /proc/[0-9]*/stat; do
        local line
        read -r line 2>/dev/null <"$f" || continue # a builtin: no fork per process
        # field 6 is the session id; the comm field (2) may hold spaces, so cut after ')'
        local rest=${line##*) }
        # shellcheck disable=SC2086
        set -- $rest
        # $1 state, $2 ppid, $3 pgrp, $4 session
        [ "${4:-}" = "$sid" ] && [ "$1" != Z ] && { p=${f#/proc/}; echo "${p%/stat}"; }
    done
}

# The live descendants of the given pids (erl_child_setup and inet_gethost make sessions of
# their own, so a session alone does not hold every process the node started).
descendants() {
    local all="$*" added=1 f
    while [ $added = 1 ]; do
        added=0
        for f in /proc/[0-9]*/stat; do
            local line rest p
            read -r line 2>/dev/null <"$f" || continue
            rest=${line##*) }
            # shellcheck disable=SC2086
            set -- $rest
            p=${f#/proc/}
            p=${p%/stat}
            [ "$1" = Z ] && continue
            case " $all " in *" $p "*) continue ;; esac
            case " $all " in *" $2 "*) all="$all $p"; added=1 ;; esac
        done
    done
    echo "$all"
}

alive() { # the pids of $* that still run (not zombies)
    local p st
    for p in "$@"; do
        read -r st 2>/dev/null <"/proc/$p/stat" || continue
        st=${st##*) }
        [ "${st%% *}" = Z ] || echo "$p"
    done
}

# Kills session $1 and every descendant of its processes with signal $2, then SIGKILL after
# $3 seconds; returns once none is left. The bounds are in seconds, not in polls: on a loaded
# machine each poll took far longer than its 0.1 s sleep and `stop` overran its CTest timeout.
kill_session() {
    local sid=$1 sig=$2 grace=$3 end pids
    [ -n "$sid" ] || return 0
    pids=$(session_pids "$sid")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    pids=$(descendants $pids)
    # shellcheck disable=SC2086
    kill -"$sig" $pids 2>/dev/null
    end=$((SECONDS + grace))
    while ((SECONDS < end)); do
        # shellcheck disable=SC2086
        [ -z "$(alive $pids)" ] && return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $(alive $pids) 2>/dev/null
    end=$((SECONDS + 10))
    while ((SECONDS < end)); do
        # shellcheck disable=SC2086
        [ -z "$(alive $pids)" ] && return 0
        sleep 0.1
    done
    echo "broker.sh: processes of session $sid did not end" >&2
    return 1
}

wait_ready() {
    # Ready when the AMQP port answers the protocol header with a frame (Connection.Start: type 1).
    local end=$((SECONDS + 90)) # in seconds, not polls (a loaded machine slows each poll)
    while ((SECONDS < end)); do
        if /usr/bin/python3 - "$P" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
b = s.recv(1)
sys.exit(0 if b == b"\x01" else 1)
PY
        if [ -n "${NODE_SID:-}" ] && [ -z "$(session_pids "$NODE_SID")" ]; then
            echo "broker.sh: the node exited during boot; log:" >&2
            tail -n 30 "$D/server.out" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "broker.sh: not ready after 90 s" >&2
    return 1
}

# make_pki DIR: the TLS listener's certificates (EC P-256: quick to make).
make_pki() {
    local d=$1 n
    mkdir -p "$d" && cd "$d" || return 1
    for n in ca otherca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
            -out $n.crt -days 30 -subj "/CN=simul amqp $n" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || return 1
    done
    # leaf NAME CN EXT: NAME.crt signed by ca
    leaf() {
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
            -out "$1.csr" -subj "/CN=$2" 2>/dev/null &&
            printf '%s\n' "$3" >"$1.ext" &&
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
                -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null && rm -f "$1.csr" "$1.ext"
    }
    leaf server localhost "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth" || return 1
    leaf client simul-ext "extendedKeyUsage=clientAuth" || return 1
    leaf stranger simul-stranger "extendedKeyUsage=clientAuth" || return 1
    chmod 644 ./*.key
    cd - >/dev/null || return 1
}

start_node() {
    load
    setsid "$RMQ/rabbitmq-server" </dev/null >>"$D/server.out" 2>&1 &
    NODE_SID=$!
    sed -i '/^NODE_SID=/d' "$S/env"
    echo "NODE_SID=$NODE_SID" >>"$S/env"
    wait_ready
}

case $cmd in
start)
    if [ -f "$S/env" ]; then   # a restart after `kill`: same ports, same data
        load
        if [ -n "${NODE_SID:-}" ] && [ -n "$(session_pids "$NODE_SID")" ]; then
            wait_ready   # already running (a repeated fixture): nothing to start
            exit $?
        fi
        start_node
        exit $?
    fi
    mkdir -p "$S"
    pick_ports || exit 1
    D=$(mktemp -d /tmp/simul-amqp.XXXXXX)
    NODE="test$P-$$@localhost"
    : >"$D/env.conf"
    make_pki "$D/tls" || { rm -rf "$D"; exit 1; }
    echo '[rabbitmq_auth_mechanism_ssl].' >"$D/enabled_plugins"
    cat >"$D/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$P
listeners.ssl.default = 127.0.0.1:$((P + 3))
loopback_users = none
ssl_options.cacertfile = $D/tls/ca.crt
ssl_options.certfile = $D/tls/server.crt
ssl_options.keyfile = $D/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
CONF
    echo '[].' >"$D/advanced.config"
    printf 'D=%s\nP=%s\nNODE=%s\n' "$D" "$P" "$NODE" >"$S/env"
    load
    setsid epmd -port $((P + 2)) -address 127.0.0.1 </dev/null >"$D/epmd.out" 2>&1 &
    echo "EPMD_SID=$!" >>"$S/env"
    start_node || { "$0" stop "$S"; exit 1; }
    echo "broker up: port $P node $NODE dir $D"
    ;;
stop)
    [ -f "$S/env" ] || exit 0
    load
    # A SIGSTOPped node must run to see the TERM.
    [ -n "${NODE_SID:-}" ] && kill -CONT $(session_pids "$NODE_SID") 2>/dev/null
    kill_session "${NODE_SID:-}" TERM 15
    kill_session "${EPMD_SID:-}" TERM 5
    rm -rf "$D" "$S"
    ;;
kill)
    load
    kill_session "${NODE_SID:-}" KILL 5
    ;;
signal)
    load
    # Every process of the node's session (beam.smp and its helpers), not rabbit.pid: the pid file
    # of a node restarted by an earlier case can be stale, and a STOP that missed the node once
    # let an RPC be answered "while frozen" (frozen_broker_detected_by_heartbeats).
    pids=$(session_pids "${NODE_SID:-}")
    if [ -z "${NODE_SID:-}" ] || [ -z "$pids" ]; then
        echo "broker.sh: no running node" >&2
        exit 1
    fi
    pids=$(descendants $pids)
    kill -"$1" $pids || exit 1
    # A STOP is queued, not done, when kill returns: a thread of the node waiting for a CPU on a
    # loaded machine stops when it next runs. Return once every process shows it is stopped (T),
    # so "frozen" holds from our return on (bounded in seconds, 30: a bound, not a wait).
    if [ "$1" = STOP ]; then
        end=$((SECONDS + 30))
        for p in $pids; do
            for f in /proc/"$p"/task/*/stat; do # every thread: each stops on its own
                while read -r st 2>/dev/null <"$f"; do
                    st=${st##*) }
                    case ${st%% *} in T | t | Z | X) break ;; esac
                    if ((SECONDS >= end)); then
                        echo "broker.sh: $f did not stop (state ${st%% *})" >&2
                        exit 1
                    fi
                    sleep 0.01
                done
            done
        done
    fi
    ;;
ctl)
    load
    timeout 60 "$RMQ/rabbitmqctl" -n "$NODE" "$@"
    ;;
port)
    load
    echo "$P"
    ;;
tlsport)
    load
    echo $((P + 3))
    ;;
dir)
    load
    echo "$D"
    ;;
*)
    echo "broker.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
