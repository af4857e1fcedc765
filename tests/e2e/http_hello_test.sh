#!/usr/bin/env bash
# End-to-end test of examples/http_hello (libsimul-http's benchmark app) with real clients:
# curl (GET /, /json, HEAD, 404, 405 with Allow, two URLs on one reused connection), python3's
# http.client (keep-alive reuse over many requests), wrk (many keep-alive connections at once,
# every answer a 2xx), and a raw socket (pipelining in order; a
# malformed request gets 400 and the close); SIGTERM shuts it down gracefully with exit 0.
# Usage: http_hello_test.sh <build-dir>. Skips (exit 0) when libsimul-http is not built.
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SERVER=$BUILD/examples/http_hello
PY=/usr/bin/python3
if [[ ! -x $SERVER ]]; then
    echo "SKIP: $SERVER not built (libsimul-http needs libjansson-dev)"
    exit 0
fi
for tool in curl "$PY"; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL: $tool not found (make deps installs it)"
        exit 1
    fi
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/http_hello_test.XXXXXX") || exit 1
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

"$SERVER" --port 0 >"$WORK/out" 2>"$WORK/err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 200); do # a bound on the wait for "listening on"
    PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$WORK/out")
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $PORT ]]; then
    echo "FAIL: the server did not start"; cat "$WORK/err"; exit 1
fi
URL=http://127.0.0.1:$PORT
C=(curl -sS --max-time 20)

body_is() { [[ $("${C[@]}" "$URL$1") == "$2" ]]; }
status_is() { [[ $("${C[@]}" -o /dev/null -w '%{http_code}' "${@:3}" "$URL$1") == "$2" ]]; }
check "GET / says Hello, World!" body_is / "Hello, World!"
check "GET /json is the JSON object" body_is /json '{"message":"Hello, World!"}'
check "GET /json is application/json" \
    bash -c "${C[*]} -D - -o /dev/null $URL/json | grep -qi '^Content-Type: application/json'"
check "GET /nowhere is 404" status_is /nowhere 404
check "POST / is 405" status_is / 405 -X POST
check "405 carries Allow: GET, HEAD, OPTIONS" \
    bash -c "${C[*]} -X POST -D - -o /dev/null $URL/ | grep -qi '^Allow: GET, HEAD, OPTIONS'"
check "HEAD / has the length and no body" \
    bash -c "out=\$(${C[*]} -I $URL/) && grep -qi '^Content-Length: 13' <<<\"\$out\" && ! grep -q Hello <<<\"\$out\""
check "curl reuses the connection for two URLs" \
    bash -c "${C[*]} -v $URL/ $URL/json 2>&1 >/dev/null | grep -qi 'Re-using existing connection'"
check "/healthz answers 200" status_is /healthz 200
check "/readyz answers 200" status_is /readyz 200

# python3's http.client: 200 requests over one connection (keep-alive reuse).
cat >"$WORK/keepalive.py" <<'PYEOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
c.connect()
sock = c.sock
for i in range(200):
    c.request("GET", "/" if i % 2 == 0 else "/json")
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, r.status
    assert body == (b"Hello, World!" if i % 2 == 0 else b'{"message":"Hello, World!"}'), body
    assert c.sock is sock, "the connection was not reused"
c.request("HEAD", "/")
r = c.getresponse()
assert r.status == 200 and r.read() == b"" and r.getheader("Content-Length") == "13"
c.request("DELETE", "/")
r = c.getresponse()
assert r.status == 405 and "GET" in r.getheader("Allow"), r.getheader("Allow")
r.read()
c.request("GET", "/missing")
r = c.getresponse()
assert r.status == 404
r.read()
assert c.sock is sock
PYEOF
check "http.client: 200 requests, HEAD, 405, 404 on one connection" \
    "$PY" "$WORK/keepalive.py" "$PORT"

# Raw socket: pipelined requests answered in order; a malformed one gets 400 and the close.
cat >"$WORK/raw.py" <<'PYEOF'
import socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
def read_all():
    data = b""
    while True:
        k = s.recv(65536)
        if not k:
            return data
        data += k
if mode == "pipeline":
    reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in [b"/", b"/json", b"/nope", b"/"])
    s.sendall(reqs + b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = read_all()
    parts = data.split(b"HTTP/1.1 ")[1:]
    codes = [p[:3] for p in parts]
    assert codes == [b"200", b"200", b"404", b"200", b"200"], codes
    assert parts[0].endswith(b"Hello, World!") and parts[1].endswith(b'"Hello, World!"}'), parts
    assert parts[4].endswith(b'{"message":"Hello, World!"}')
else:
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost : t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = read_all()  # returns: the server closed
    parts = data.split(b"HTTP/1.1 ")[1:]
    assert [p[:3] for p in parts] == [b"200", b"400"], data
    assert b"Connection: close" in parts[1]
PYEOF
check "pipelined requests answered in order" "$PY" "$WORK/raw.py" "$PORT" pipeline
check "a malformed request gets 400 and the close" "$PY" "$WORK/raw.py" "$PORT" malformed
# wrk: 50 keep-alive connections for a second on each path; every answer a 2xx, no socket error
# (a count of requests, never a rate: the figures are the benchmark's, bench/run_http.sh).
if command -v wrk >/dev/null; then
    for path in / /json; do
        wrk -t1 -c50 -d1s "$URL$path" >"$WORK/wrk" 2>&1
        check "wrk -c50 on $path: requests served, no errors" \
            bash -c "grep -qE '^ *[1-9][0-9]* requests in' '$WORK/wrk' && ! grep -qE 'Non-2xx|Socket errors' '$WORK/wrk'"
    done
else
    echo "SKIP: wrk not installed (make deps)"
fi

kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
RC=$?
SERVER_PID=
check "SIGTERM: graceful shutdown, exit 0" test "$RC" -eq 0
# --threads 2: the same app on two loops.
"$SERVER" --port 0 --threads 2 >"$WORK/out2" 2>>"$WORK/err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$WORK/out2")
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
done
URL=http://127.0.0.1:$PORT
check "--threads 2: GET / and /json" \
    bash -c "[[ \$(${C[*]} $URL/ $URL/json) == 'Hello, World!{\"message\":\"Hello, World!\"}' ]]"
check "--threads 2: http.client keep-alive" "$PY" "$WORK/keepalive.py" "$PORT"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
RC=$?
SERVER_PID=
check "--threads 2: SIGTERM, exit 0" test "$RC" -eq 0

if [[ -s $WORK/err ]]; then
    fail "stderr is not empty:"; cat "$WORK/err"
fi

if [[ $FAILURES -gt 0 ]]; then
    echo "$FAILURES check(s) failed"
    exit 1
fi
echo "all checks passed"
