# shellcheck shell=bash
# Shared by the redis e2e scripts (sourced, not run): the PASS/FAIL counters and a private
# redis-server on a free loopback port and a Unix socket in a temp dir, stopped on exit.
# Idea: bind port 0 for a port, and retry when redis loses the race for it (it exits).

FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

# A free port: bind port 0 and read what the kernel gave (the window until redis binds it is
# small; a taken port shows as redis exiting, and we try another).
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# redis_e2e_start <example-binary> <temp-name>: prints SKIP and exits 0 when the example or
# redis-server is missing; otherwise makes WORK (a temp dir removed on exit), starts
# redis-server there and sets PORT and PID (the server, killed and reaped on exit); the socket
# is $WORK/redis.sock. Exits 1 when redis-server does not start.
redis_e2e_start() {
    local bin=$1 name=$2
    if [[ ! -x $bin ]] || ! command -v redis-server >/dev/null; then
        echo "SKIP: needs $bin and redis-server (package redis-server)"
        exit 0
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || exit 1
    PID=
    trap redis_e2e_cleanup EXIT
    for _ in 1 2 3 4 5; do
        PORT=$(free_port)
        redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
            --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --logfile "$WORK/redis.log" &
        PID=$!
        for _ in $(seq 1 1000); do # ready when it accepts (redis-server starts in milliseconds)
            if ! kill -0 "$PID" 2>/dev/null; then break; fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break 2; fi
            sleep 0.01
        done
        wait "$PID" 2>/dev/null
        PID=
    done
    if [[ -z $PID ]]; then
        echo "FAIL: redis-server did not start"
        exit 1
    fi
}

redis_e2e_cleanup() {
    if [[ -n $PID ]]; then
        kill -TERM "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
