#!/usr/bin/env bash
# End-to-end test of examples/echo_protocol (the callback echo server): echoes checked byte for
# byte from python3 sockets (many messages on one connection, pipelined bursts, messages over
# 1 MB, concurrent connections, half-close, a client that resets, a client that stops reading for
# a while), echo_client against it if built, then SIGTERM / SIGINT end it cleanly (exit 0,
# nothing on stderr), and bad arguments exit 2.
# Usage: echo_protocol_test.sh <build-dir>
# Prints one PASS/FAIL line per check; exits 1 if any failed, 0 with a SKIP line if the example
# was not built.
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$1
SERVER=$BUILD/examples/echo_protocol
CLIENT=$BUILD/examples/echo_client
PY=/usr/bin/python3
if [[ ! -x $SERVER ]]; then
    echo "SKIP: $SERVER not built"
    exit 0
fi
if [[ ! -x $PY ]]; then
    echo "SKIP: $PY not found"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/echo_protocol_test.XXXXXX") || exit 1
SPID=
stop_server() {
    if [[ -n $SPID ]]; then
        kill -KILL "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
    fi
    SPID=
}
trap 'stop_server; rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# start_server: runs the server (bounded to 120 s) on port 0 (the kernel picks a free one: a port
# bound, released and passed on could be taken by another suite in between), waits up to 30 s for
# its "listening on" line. Sets PORT and SPID; returns 1 if it never comes. --foreground: a signal
# sent to timeout reaches the server once (without it timeout also signals its process group, so
# the server gets two).
start_server() {
    # Emptied here, not only by the redirection below: that one runs in the forked child, maybe
    # after the first sed, which would then read the previous server's port.
    : >"$WORK/server_out"
    timeout --foreground -k 2 120 "$SERVER" --host 127.0.0.1 --port 0 >"$WORK/server_out" \
        2>"$WORK/server_err" &
    SPID=$!
    PORT=
    local end=$((SECONDS + 30))
    while ((SECONDS < end)); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/server_out")
        [[ -n $PORT ]] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    echo "--- server did not come up; stdout / stderr:"
    cat "$WORK/server_out" "$WORK/server_err"
    return 1
}

# stop_with SIGNAL: sends it and waits (bounded) for the server to exit; sets RC (124 if it
# had to be killed).
stop_with() {
    kill -"$1" "$SPID" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SPID" 2>/dev/null; then
        kill -KILL "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
        RC=124
    else
        wait "$SPID"
        RC=$?
    fi
    SPID=
}

cat >"$WORK/checks.py" <<'EOF'
# Each check prints "ok NAME" or "bad NAME: why"; the script runs them all.
import os, socket, struct, sys, threading, time

PORT = int(sys.argv[1])
ADDR = ("127.0.0.1", PORT)

def conn():
    s = socket.create_connection(ADDR, timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        b = s.recv(min(1 << 20, n - len(out)))
        if not b:
            raise RuntimeError("EOF after %d of %d bytes" % (len(out), n))
        out += b
    return bytes(out)

def pattern(n, seed):
    return bytes((i * 7 + seed + (i >> 8)) & 0xFF for i in range(n)) if n < 4096 else \
        (os.urandom(4096) * (n // 4096 + 1))[:n]

def echo_round_trips():
    with conn() as s:
        for i in range(1000):
            msg = pattern(1 + (i * 131) % 3000, i)
            s.sendall(msg)
            if recv_exact(s, len(msg)) != msg:
                return "message %d differs" % i
    return None

def pipelined_burst():
    with conn() as s:
        msgs = [struct.pack("!I", i) + pattern(i % 200, i) for i in range(20000)]
        blob = b"".join(msgs)
        t = threading.Thread(target=s.sendall, args=(blob,))
        t.start()
        back = recv_exact(s, len(blob))
        t.join()
        if back != blob:
            return "burst of %d bytes differs" % len(blob)
    return None

def big_messages():
    with conn() as s:
        for size in (1 << 20, 3 * (1 << 20) + 17, 5 * (1 << 20)):
            msg = pattern(size, size)
            t = threading.Thread(target=s.sendall, args=(msg,))
            t.start()
            back = recv_exact(s, len(msg))
            t.join()
            if back != msg:
                return "%d-byte message differs" % size
    return None

def concurrent_connections():
    errors = []
    def one(k):
        try:
            with conn() as s:
                for i in range(50):
                    msg = ("conn %d msg %d;" % (k, i)).encode() * (1 + i % 7)
                    s.sendall(msg)
                    if recv_exact(s, len(msg)) != msg:
                        errors.append("conn %d msg %d differs" % (k, i))
                        return
        except Exception as e:
            errors.append("conn %d: %r" % (k, e))
    threads = [threading.Thread(target=one, args=(k,)) for k in range(100)]
    for t in threads: t.start()
    for t in threads: t.join()
    return errors[0] if errors else None

def half_close():
    with conn() as s:
        msg = pattern(100000, 3)
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        back = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            back += b
        if bytes(back) != msg:
            return "got %d bytes back, wanted %d" % (len(back), len(msg))
    return None

def reset_then_serve():
    s = conn()
    s.sendall(b"x" * 100000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST with data in flight both ways
    time.sleep(0.05)
    with conn() as s2:
        s2.sendall(b"still alive")
        if recv_exact(s2, 11) != b"still alive":
            return "echo after a reset differs"
    return None

def slow_reader():
    # 8 MB sent while not reading: the server stops reading us instead of buffering it all.
    with conn() as s:
        msg = pattern(8 << 20, 9)
        t = threading.Thread(target=s.sendall, args=(msg,))
        t.start()
        time.sleep(0.5)
        back = recv_exact(s, len(msg))
        t.join()
        if back != msg:
            return "8 MB after a pause differs"
    return None

failed = 0
for check in (echo_round_trips, pipelined_burst, big_messages, concurrent_connections,
              half_close, reset_then_serve, slow_reader):
    try:
        why = check()
    except Exception as e:
        why = repr(e)
    if why:
        failed += 1
        print("bad %s: %s" % (check.__name__, why))
    else:
        print("ok %s" % check.__name__)
sys.exit(1 if failed else 0)
EOF

# --- 1. --help and bad arguments ---------------------------------------------------------------
"$SERVER" --help >"$WORK/out" 2>"$WORK/err"
RC=$?
check "--help: exit 0 (got $RC)" test "$RC" -eq 0
check "--help: usage on stdout" grep -q "usage:" "$WORK/out"
for args in "--bogus" "--port" "extra"; do
    # shellcheck disable=SC2086 # word splitting of $args is the point
    timeout 10 "$SERVER" $args >"$WORK/out" 2>"$WORK/err"
    RC=$?
    check "bad arguments '$args': exit 2 (got $RC)" test "$RC" -eq 2
    check "bad arguments '$args': message on stderr" test -s "$WORK/err"
done

# --- 2. echoes from python3, then SIGTERM ------------------------------------------------------
if start_server; then
    pass "listening on 127.0.0.1:$PORT"
    timeout -k 2 120 "$PY" "$WORK/checks.py" "$PORT" >"$WORK/py_out" 2>&1
    RC=$?
    while read -r status name rest; do
        if [[ $status == ok ]]; then pass "$name"; else fail "${name%:} $rest"; fi
    done <"$WORK/py_out"
    check "python checks: exit 0 (got $RC)" test "$RC" -eq 0
    if [[ $RC -ne 0 ]]; then cat "$WORK/py_out"; fi
    if [[ -x $CLIENT ]]; then
        timeout -k 2 60 "$CLIENT" --host 127.0.0.1 --port "$PORT" --connections 50 --size 64 \
            --seconds 1 >"$WORK/client_out" 2>"$WORK/client_err"
        RC=$?
        check "echo_client 50 connections: exit 0 (got $RC)" test "$RC" -eq 0
        check "echo_client: errors=0" grep -q -x "errors=0" "$WORK/client_out"
    else
        echo "SKIP: $CLIENT not built"
    fi
    check "server still running" kill -0 "$SPID"
    stop_with TERM
    check "SIGTERM: exit 0 (got $RC)" test "$RC" -eq 0
    check "stderr empty" test ! -s "$WORK/server_err"
    if [[ -s $WORK/server_err ]]; then head -n 30 "$WORK/server_err"; fi
else
    fail "server came up"
fi

# --- 3. SIGINT with connections open -----------------------------------------------------------
if start_server; then
    "$PY" - "$PORT" >"$WORK/py_out" 2>&1 <<'EOF' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) for _ in range(20)]
for s in socks:
    s.sendall(b"hold")
    assert s.recv(4) == b"hold"
print("connected", flush=True)
time.sleep(60)  # holds them open until the test kills it (3 s could pass before the SIGINT)
EOF
    PYPID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q connected "$WORK/py_out" && break
        sleep 0.05
    done
    check "20 connections open" grep -q connected "$WORK/py_out"
    stop_with INT
    check "SIGINT with open connections: exit 0 (got $RC)" test "$RC" -eq 0
    check "stderr empty" test ! -s "$WORK/server_err"
    kill "$PYPID" 2>/dev/null
    wait "$PYPID" 2>/dev/null
else
    fail "server came up (second run)"
fi

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: echo_protocol_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: echo_protocol_test.sh: $FAILURES check(s) failed"
exit 1
