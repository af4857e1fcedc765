#!/usr/bin/env bash
# End-to-end test of examples/broadcast_chat: three clients on a free loopback port; a line from
# one reaches the two others, named; a client that never reads is dropped once its queue passes
# --max-queued while the reader keeps getting every line; a client that leaves is announced; the
# server exits 0 on SIGTERM.
# Usage: broadcast_chat_test.sh <build-dir>
set -u -o pipefail
if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SERVER=$BUILD/examples/broadcast_chat
[[ -x $SERVER ]] || { echo "FAIL: $SERVER not built"; exit 1; }
PY=$(command -v python3) || { echo "FAIL: python3 not found"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/broadcast_chat_test.XXXXXX") || exit 1
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$SERVER" --port 0 --max-queued 65536 > "$WORK/out" 2> "$WORK/err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 500); do
    PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/out")
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.01
done
[[ -n $PORT ]] || { echo "FAIL: the server never said where it listens"; cat "$WORK/err"; exit 1; }

"$PY" - "$PORT" "$WORK/out" <<'PYEOF'
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]

def wait_for(words, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        if words in open(out).read():
            return
        time.sleep(0.01)
    sys.exit("FAIL: the server never printed %r:\n%s" % (words, open(out).read()))

def connect(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    wait_for("client %d joined" % n)
    return s

def read_line(f):
    line = f.readline()
    if not line:
        sys.exit("FAIL: connection closed while a line was expected")
    return line

a, b, c = connect(1), connect(2), connect(3)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # c never reads
fa, fb = a.makefile("rb"), b.makefile("rb")
a.sendall(b"hello everyone\n")
assert read_line(fb) == b"client 1: hello everyone\n", "b did not get a's line"
b.sendall(b"hi a\n")
assert read_line(fa) == b"client 2: hi a\n", "a did not get b's line"
print("PASS: a line reaches the other clients, named")

# a floods; b reads everything; c never reads and is dropped; a and b go on.
line = b"x" * 1000 + b"\n"
sent = 0
dropped = False
while not dropped and sent < 5000:
    a.sendall(line)
    sent += 1
    got = read_line(fb)
    assert got == b"client 1: " + line, "b got %r" % got[:40]
    dropped = "client 3 dropped" in open(out).read()
if not dropped:
    sys.exit("FAIL: the client that never reads was not dropped after %d lines" % sent)
print("PASS: a client that never reads is dropped (after %d KB), the reader got every line" % sent)
a.sendall(b"still here\n")
assert read_line(fb) == b"client 1: still here\n"
print("PASS: the others go on")
# c's connection was aborted by the server: reading it ends (reset or EOF) once its data is drained.
c.settimeout(20)
try:
    while c.recv(65536):
        pass
except ConnectionResetError:
    pass
print("PASS: the dropped client's connection is closed")
fb.close()
b.close()
wait_for("client 2 left")
a.sendall(b"alone\n")
print("PASS: a client that leaves is announced")
fa.close()
a.close()
PYEOF
PY_RC=$?
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
RC=$?
SERVER_PID=
if [[ $PY_RC -ne 0 ]]; then
    echo "FAIL: the client script failed"; cat "$WORK/out" "$WORK/err"; exit 1
fi
if [[ $RC -ne 0 ]]; then
    echo "FAIL: the server exited $RC on SIGTERM"; cat "$WORK/err"; exit 1
fi
echo "PASS: the server exits 0 on SIGTERM"
if [[ -s $WORK/err ]]; then
    echo "FAIL: the server wrote to stderr:"; cat "$WORK/err"; exit 1
fi
echo "1 passed, 0 failed"
