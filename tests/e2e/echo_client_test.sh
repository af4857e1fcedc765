#!/usr/bin/env bash
# End-to-end test of examples/echo_client against bench/echo_epoll (the raw epoll reference
# server): clean runs at 1 and 50 connections, then servers that corrupt, drop or refuse, each of
# which echo_client must report by exiting non-zero.
# Usage: echo_client_test.sh <build-dir>
# Prints one PASS/FAIL line per check; exits 1 if any failed, 0 with a SKIP line if the bench or
# examples were not built (e.g. sanitizer builds configure with SIMUL_BUILD_BENCH=OFF).
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$1
SERVER=$BUILD/bench/echo_epoll
CLIENT=$BUILD/examples/echo_client
PY=/usr/bin/python3
for f in "$SERVER" "$CLIENT"; do
    if [[ ! -x $f ]]; then
        echo "SKIP: $f not built"
        exit 0
    fi
done
if [[ ! -x $PY ]]; then
    echo "SKIP: $PY not found"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/echo_client_test.XXXXXX") || exit 1
SPID=
stop_server() {
    if [[ -n $SPID ]]; then
        kill "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
    fi
    SPID=
}
trap 'stop_server; rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server CMD...: runs a server (bounded to 60 s) on a free $PORT and waits up to 30 s until
# the port accepts connections. The port was bound and released to find it, so another suite may
# take it before the server binds it: the server then exits, and another port is tried (5 times).
# Returns 1 if it never comes up.
start_server() {
    local end
    for _ in 1 2 3 4 5; do
        PORT=$(free_port)
        timeout --foreground -k 2 60 "$@" --host 127.0.0.1 --port "$PORT" 2>"$WORK/server_err" &
        SPID=$!
        end=$((SECONDS + 30))
        while ((SECONDS < end)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
                kill -0 "$SPID" 2>/dev/null && return 0
                break # another process's listener: ours has exited
            fi
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$SPID" 2>/dev/null && break # running but never accepting: not a lost port
        wait "$SPID" 2>/dev/null
        SPID=
    done
    echo "--- server did not come up on port $PORT; its stderr:"
    cat "$WORK/server_err"
    return 1
}

# client ARGS...: runs echo_client (bounded to 30 s); stdout in $WORK/out, stderr in $WORK/err,
# exit status in RC.
client() {
    timeout -k 2 30 "$CLIENT" --host 127.0.0.1 "$@" >"$WORK/out" 2>"$WORK/err"
    RC=$?
}

value() { sed -n "s/^$1=//p" "$WORK/out"; }
positive() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }
show_output() {
    echo "--- echo_client stdout:"
    cat "$WORK/out"
    echo "--- stderr:"
    head -n 20 "$WORK/err"
    echo "---"
}

# --- 1. clean runs against the raw epoll server ----------------------------------------------
if start_server "$SERVER"; then
    for conns in 1 50; do
        before=$FAILURES
        client --port "$PORT" --connections "$conns" --size 64 --seconds 1
        check "c$conns: exit status 0 (got $RC)" test "$RC" -eq 0
        check "c$conns: msgs > 0 (got '$(value msgs)')" positive "$(value msgs)"
        check "c$conns: msgs_per_s > 0 (got '$(value msgs_per_s)')" positive "$(value msgs_per_s)"
        check "c$conns: errors=0 (got '$(value errors)')" test "$(value errors)" = 0
        check "c$conns: connections=$conns (got '$(value connections)')" \
            test "$(value connections)" = "$conns"
        check "c$conns: p50_us and p99_us reported, p50 <= p99" awk \
            -v a="$(value p50_us)" -v b="$(value p99_us)" 'BEGIN { exit !(a > 0 && a <= b) }'
        check "c$conns: stderr is empty" test ! -s "$WORK/err"
        if [[ $FAILURES -gt $before ]]; then show_output; fi
    done
    # A message bigger than a socket buffer round trip: sendall and the reassembly loop.
    before=$FAILURES
    client --port "$PORT" --connections 4 --size 300000 --seconds 0.5
    check "4 x 300000-byte messages: exit status 0 (got $RC)" test "$RC" -eq 0
    check "4 x 300000-byte messages: msgs > 0 and errors=0" \
        test "$(value errors)" = 0 -a "$(value msgs)" -gt 0
    if [[ $FAILURES -gt $before ]]; then show_output; fi
    stop_server
else
    fail "echo_epoll came up"
fi

# --- 2. broken servers: echo_client must exit non-zero ---------------------------------------
# A one-connection blocking echo server misbehaving in the way argv[1] says.
cat >"$WORK/broken.py" <<'EOF'
import argparse, socket
ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["flip", "close"])
ap.add_argument("--host")
ap.add_argument("--port", type=int)
a = ap.parse_args()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((a.host, a.port))
ls.listen(16)
while True:
    c, _ = ls.accept()
    n = 0
    while data := c.recv(65536):
        n += 1
        if a.mode == "close":  # the seed's server: one echo, then hang up
            c.sendall(data)
            break
        if n == 5:  # flip one bit of the 5th chunk, after four good echoes
            data = data[:3] + bytes([data[3] ^ 1]) + data[4:]
        c.sendall(data)
    c.close()
EOF

before=$FAILURES
if start_server "$PY" "$WORK/broken.py" flip; then
    client --port "$PORT" --connections 1 --size 64 --seconds 1
    check "corrupting server: exit status non-zero (got $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
    check "corrupting server: errors > 0 (got '$(value errors)')" positive "$(value errors)"
    check "corrupting server: the mismatch is named on stderr" grep -q "differs at byte 3" "$WORK/err"
    stop_server
else
    fail "corrupting server came up"
fi
if [[ $FAILURES -gt $before ]]; then show_output; fi

before=$FAILURES
if start_server "$PY" "$WORK/broken.py" close; then
    client --port "$PORT" --connections 1 --size 64 --seconds 1
    check "server closing after one echo: exit status non-zero (got $RC)" \
        test "$RC" -ne 0 -a "$RC" -ne 124
    # A FIN if the close beat the next message, an RST if that message was unread.
    check "server closing after one echo: closed or reset named on stderr" \
        grep -q -e "peer closed" -e "reset by peer" "$WORK/err"
    stop_server
else
    fail "closing server came up"
fi
if [[ $FAILURES -gt $before ]]; then show_output; fi

# Nothing listening: a port just bound and released.
before=$FAILURES
client --port "$(free_port)" --connections 3 --size 64 --seconds 1
check "nothing listening: exit status non-zero (got $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check "nothing listening: the connect error is named on stderr" grep -q "connect to" "$WORK/err"
if [[ $FAILURES -gt $before ]]; then show_output; fi

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: echo_client_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: echo_client_test.sh: $FAILURES check(s) failed"
exit 1
