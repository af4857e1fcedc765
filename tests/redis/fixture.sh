#!/bin/bash
# fixture.sh setup|cleanup STATE — the redis suite's shared server (CTest FIXTURES_SETUP/CLEANUP).
# setup starts one redis-server for the whole suite on a free loopback port and a Unix socket in
# a fresh temp dir, waits until both accept, and writes STATE (shell lines: port=, sock=, dir=,
# pid=) that the test cases read (SIMUL_REDIS_FIXTURE=STATE); cleanup stops it by its pid, waits
# for it to go, and removes the dir. The server is detached from CTest's pipes so setup can exit.
set -euo pipefail
cmd=${1:?usage: fixture.sh setup|cleanup STATE}
state=${2:?usage: fixture.sh setup|cleanup STATE}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
    [ -f "$state" ] || return 0
    local pid="" dir=""
    # shellcheck disable=SC1090
    . "$state"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        # Not our child (setup's shell has exited): poll until it is gone, then force.
        # A zombie (exited, not yet reaped by init) counts as gone: kill -0 still succeeds on it.
        for _ in $(seq 1 250); do
            st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
            [ -z "$st" ] || [ "$st" = Z ] && break
            sleep 0.02
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [ -n "$dir" ] && case "$dir" in /tmp/simul-redis-fixture-*) rm -rf "$dir" ;; esac
    rm -f "$state"
}

case "$cmd" in
setup)
    command -v redis-server >/dev/null || { echo "redis-server missing: cases will skip"; rm -f "$state"; exit 0; }
    stop # a state left by an interrupted run
    dir=$(mktemp -d /tmp/simul-redis-fixture-XXXXXX)
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        # databases 128: every case of every binary gets its own (see redis_server.h).
        setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$dir" --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
            --logfile "$dir/redis.log" --databases 128 --enable-debug-command yes \
            </dev/null >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 500); do
            kill -0 "$pid" 2>/dev/null || break
            if [ -S "$dir/redis.sock" ] && redis-cli -s "$dir/redis.sock" PING 2>/dev/null | grep -q PONG &&
                redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; then
                printf 'port=%s\nsock=%s\ndir=%s\npid=%s\n' "$port" "$dir/redis.sock" "$dir" "$pid" > "$state.tmp"
                mv "$state.tmp" "$state"
                echo "redis fixture: pid $pid port $port sock $dir/redis.sock"
                exit 0
            fi
            sleep 0.01
        done
        kill -KILL "$pid" 2>/dev/null || true
        echo "attempt $attempt: redis-server did not come up on $port"
        tail -5 "$dir/redis.log" 2>/dev/null || true
    done
    rm -rf "$dir"
    exit 1
    ;;
cleanup)
    stop
    ;;
*)
    echo "usage: fixture.sh setup|cleanup STATE" >&2
    exit 2
    ;;
esac
