#!/usr/bin/env bash
# End-to-end test of examples/echo_streams: started on a free loopback port, it must echo byte
# for byte (small messages, one over 1 MB, many messages on one connection kept open, several
# connections at once), survive clients that vanish, and exit 0 on SIGTERM and on SIGINT; the same
# with --threads 2 (two loops on two threads, SO_REUSEPORT), which must also spread connections
# over both threads and report each thread's count at exit.
# Usage: echo_streams_test.sh <build-dir>
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SERVER=$BUILD/examples/echo_streams
CLIENT=$BUILD/examples/echo_client
PY=$(command -v python3 || true)
if [[ ! -x $SERVER ]]; then
    echo "FAIL: $SERVER not built"
    exit 1
fi
if [[ -z $PY ]]; then
    echo "FAIL: python3 not found (the test's client)"
    exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/echo_streams_test.XXXXXX") || exit 1
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# start_server [ARGS...]: runs the server on 127.0.0.1, port 0 (plus ARGS), and sets PORT from its
# "listening on" line (bounded wait). Returns 1 if it never said so.
start_server() {
    # Emptied here, not only by the redirection below: that one runs in the forked child, maybe
    # after the first sed, which would then read the previous server's port.
    : >"$WORK/out"
    "$SERVER" --host 127.0.0.1 --port 0 "$@" >"$WORK/out" 2>"$WORK/err" &
    SERVER_PID=$!
    PORT=
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/out")
        [[ -n $PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_server SIGNAL: sends it and waits (bounded) for the exit; sets RC (124 on a hang).
stop_server() {
    kill "-$1" "$SERVER_PID"
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            RC=$?
            SERVER_PID=
            return
        fi
        sleep 0.05
    done
    RC=124
}

cat >"$WORK/client.py" <<'EOF'
import os, socket, sys, threading

port = int(sys.argv[1])
errors = []

def exchange(sock, payload):
    sock.sendall(payload)
    got = bytearray()
    while len(got) < len(payload):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("EOF after %d of %d bytes" % (len(got), len(payload)))
        got += chunk
    if bytes(got) != payload:
        raise RuntimeError("echo differs (%d bytes)" % len(payload))

def check(name, fn):
    try:
        fn()
        print("ok", name)
    except Exception as e:
        errors.append("%s: %s" % (name, e))
        print("error", name, e)

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def small():
    with connect() as s:
        exchange(s, b"hello, simul\n")

def many_on_one():
    with connect() as s:
        for i in range(500):
            exchange(s, ("message %d %s\n" % (i, "x" * (i % 97))).encode())

def large():
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with connect() as s:
        # Send and receive at once (the server drains while the client reads).
        t = threading.Thread(target=s.sendall, args=(payload,))
        t.start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        t.join()
        if bytes(got) != payload:
            raise RuntimeError("large echo differs: %d of %d bytes" % (len(got), len(payload)))

def concurrent():
    results = []
    def one(k):
        try:
            with connect() as s:
                for i in range(50):
                    exchange(s, ("conn %d msg %d\n" % (k, i)).encode() * (1 + k % 5))
            results.append(True)
        except Exception as e:
            results.append(e)
    ts = [threading.Thread(target=one, args=(k,)) for k in range(20)]
    for t in ts: t.start()
    for t in ts: t.join()
    bad = [r for r in results if r is not True]
    if bad or len(results) != 20:
        raise RuntimeError("%d of 20 connections failed: %s" % (len(bad), bad[:3]))

def vanishing():
    # A client that sends and resets without reading, then a normal one.
    s = connect()
    s.sendall(b"y" * 200000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    small()

def binary():
    with connect() as s:
        exchange(s, bytes(range(256)) * 64)

for name, fn in [("small", small), ("many_on_one", many_on_one), ("large", large),
                 ("concurrent", concurrent), ("vanishing", vanishing), ("binary", binary)]:
    check(name, fn)
sys.exit(1 if errors else 0)
EOF

# --- 1. --help and bad arguments -------------------------------------------------------------
timeout 10 "$SERVER" --help >"$WORK/help" 2>&1
rc=$?
check "--help exits 0 (got $rc)" test "$rc" -eq 0
check "--help prints usage" grep -q "usage:" "$WORK/help"
timeout 10 "$SERVER" --bogus >"$WORK/bad" 2>&1
rc=$?
check "a bad argument exits 2 (got $rc)" test "$rc" -eq 2
for bad in -1 x 2x 99999; do
    timeout 10 "$SERVER" --threads "$bad" >"$WORK/bad" 2>&1
    rc=$?
    check "--threads $bad exits 2 (got $rc)" test "$rc" -eq 2
done

# echo_round LABEL CONNECTIONS: with the server up, the python client's echo checks, echo_client
# with CONNECTIONS connections, then SIGTERM while a connection is held open (it must not stop
# the exit: status 0, nothing on stderr).
echo_round() {
    local label=$1 conns=$2 rc name holder
    timeout 120 "$PY" "$WORK/client.py" "$PORT" >"$WORK/client.out" 2>&1
    rc=$?
    for name in small many_on_one large concurrent vanishing binary; do
        check "${label}echo: $name" grep -q -x "ok $name" "$WORK/client.out"
    done
    check "${label}python client exit status 0 (got $rc)" test "$rc" -eq 0
    [[ $rc -eq 0 ]] || sed 's/^/    /' "$WORK/client.out" | head -20
    if [[ -x $CLIENT ]]; then
        timeout 60 "$CLIENT" --host 127.0.0.1 --port "$PORT" --connections "$conns" --seconds 1 \
            --size 64 >"$WORK/ec.out" 2>&1
        rc=$?
        check "${label}echo_client: exit status 0 (got $rc)" test "$rc" -eq 0
        check "${label}echo_client: errors=0" grep -q -x "errors=0" "$WORK/ec.out"
        check "${label}echo_client: messages went through" \
            grep -q -E "^msgs=[1-9][0-9]*$" "$WORK/ec.out"
    else
        echo "SKIP: echo_client not built"
    fi
    # The holder says "held" once its echo came back: SIGTERM then, not after a fixed 0.3 s
    # that might pass before it connected. (Emptied first: the last round's "held" is there.)
    : >"$WORK/holder.out"
    "$PY" -c "
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'hold\n'); s.recv(5); print('held', flush=True); time.sleep(30)" "$PORT" \
        >"$WORK/holder.out" &
    holder=$!
    held() {
        local end=$((SECONDS + 30))
        while ((SECONDS < end)); do
            grep -q '^held$' "$WORK/holder.out" && return 0
            kill -0 "$holder" 2>/dev/null || return 1
            sleep 0.02
        done
        return 1
    }
    check "${label}a connection is held open" held
    stop_server TERM
    check "${label}SIGTERM with a connection open: exit status 0 (got $RC)" test "$RC" -eq 0
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    check "${label}stderr is empty" test ! -s "$WORK/err"
    [[ -s $WORK/err ]] && head -5 "$WORK/err"
}

# --- 2. echoes, byte for byte ----------------------------------------------------------------
if start_server; then
    pass "server says 'listening on 127.0.0.1:$PORT'"
    echo_round "" 20
else
    fail "server did not start (stderr: $(head -c 300 "$WORK/err"))"
fi

# --- 3. SIGINT stops it too ----------------------------------------------------------------
if start_server; then
    stop_server INT
    check "SIGINT: exit status 0 (got $RC)" test "$RC" -eq 0
else
    fail "server did not start the second time"
fi

# --- 4. --threads 2: the same echo from two loops on two threads ------------------------------
if start_server --threads 2; then
    pass "--threads 2: server says 'listening on 127.0.0.1:$PORT'"
    # 64 connections: all on one of two threads by SO_REUSEPORT's hash has probability 2^-63.
    echo_round "--threads 2: " 64
    check "--threads 2: reports two threads at exit" \
        test "$(grep -c -E '^thread [01]: [0-9]+ connections$' "$WORK/out")" -eq 2
    check "--threads 2: both threads took connections" \
        test "$(grep -c -E '^thread [01]: [1-9][0-9]* connections$' "$WORK/out")" -eq 2
    sed -n 's/^\(thread .*\)/    \1/p' "$WORK/out"
else
    fail "--threads 2: server did not start (stderr: $(head -c 300 "$WORK/err"))"
fi
if start_server --threads 2; then
    timeout 20 "$PY" -c "
import socket, sys
for i in range(8):
    with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10) as s:
        s.sendall(b'ping'); assert s.recv(4) == b'ping'" "$PORT"
    check "--threads 2: echoes before SIGINT" test $? -eq 0
    stop_server INT
    check "--threads 2: SIGINT: exit status 0 (got $RC)" test "$RC" -eq 0
    check "--threads 2: SIGINT: per-thread counts printed" \
        test "$(grep -c -E '^thread [01]: [0-9]+ connections$' "$WORK/out")" -eq 2
else
    fail "--threads 2: server did not start the second time"
fi

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: echo_streams_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: echo_streams_test.sh: $FAILURES check(s) failed"
exit 1
