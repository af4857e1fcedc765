#!/usr/bin/env bash
# Interop of libsimul-tls with other TLS stacks, black box, over loopback with the suite's PKI
# (tests/tls/make_certs.sh, made at configure time into <build-dir>/tests/tls-certs):
#   openssl s_server  <- examples/tls_client (verification on; a wrong CA fails with its reason)
#   openssl s_client -verify_return_error -> examples/echo_streams --tls-cert (echo, close_notify)
#   examples/echo_client --tls --ca -> echo_streams --tls-cert
#   curl --cacert      -> tests/tls/https_hello (HTTPS/1.0, ALPN http/1.1)
#   /usr/bin/python3 ssl (verifying, TLS 1.2 and 1.3) -> echo_streams and echo_protocol --tls-cert
#   examples/tls_client -> /usr/bin/python3 ssl HTTPS server (TLS 1.3 and 1.2, ALPN)
#   plaintext to the TLS port (server unharmed), s_client with the wrong CA (refused), s_client
#   TLS 1.2 asking to renegotiate (refused)
# Usage: tls_interop_test.sh <build-dir>. Prints PASS/FAIL lines; exits 1 if any check failed,
# 0 with a SKIP line when libsimul-tls or the openssl command is not there.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
CERTS=$BUILD/tests/tls-certs
ECHO=$BUILD/examples/echo_streams
CLIENT=$BUILD/examples/tls_client
HELLO=$BUILD/tests/tls_https_hello
PY=/usr/bin/python3
if [[ ! -x $CLIENT || ! -x $HELLO || ! -f $CERTS/.done ]] || ! command -v openssl >/dev/null; then
    echo "SKIP: libsimul-tls, its examples or the openssl command are not there"
    exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tls_interop.XXXXXX") || exit 1
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
show() { sed 's/^/    /' "$1" | head -"${2:-15}"; }

# start NAME CMD...: runs a server printing "listening on 127.0.0.1:P"; sets PORT (empty on failure).
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on [^:]*:\([0-9][0-9]*\)$/\1/p' "$WORK/$name.out")
        [[ -n $PORT ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    fail "$name did not start"
    show "$WORK/$name.err"
    return 1
}

# A free port for openssl s_server (it cannot report the one it got).
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- 1. openssl s_server <- tls_client -------------------------------------------------------
SPORT=$(free_port)
openssl s_server -accept "127.0.0.1:$SPORT" -cert "$CERTS/server.crt" -key "$CERTS/server.key" \
    -www -alpn http/1.1 -quiet >"$WORK/s_server.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break
    sleep 0.1
done
if "$CLIENT" --ca "$CERTS/ca.crt" --alpn h2,http/1.1 "https://localhost:$SPORT/" >"$WORK/c1.out" \
    2>"$WORK/c1.err" && grep -q '^status: HTTP/1.0 200' "$WORK/c1.out" &&
    grep -q '^version: TLSv1.3' "$WORK/c1.out" && grep -q '^alpn: http/1.1' "$WORK/c1.out"; then
    pass "tls_client -> openssl s_server (verified, TLSv1.3, ALPN http/1.1)"
else
    fail "tls_client -> openssl s_server"
    show "$WORK/c1.out"
    show "$WORK/c1.err"
fi
if ! "$CLIENT" "https://localhost:$SPORT/" >"$WORK/c2.out" 2>"$WORK/c2.err" &&
    grep -q 'certificate verify failed: unable to get local issuer certificate' "$WORK/c2.err"; then
    pass "tls_client -> openssl s_server without the CA: refused, reason named"
else
    fail "tls_client without the CA should fail verification"
    show "$WORK/c2.err"
fi
if "$CLIENT" --insecure "https://127.0.0.1:$SPORT/" >"$WORK/c3.out" 2>"$WORK/c3.err" &&
    grep -q '^status: HTTP/1.0 200' "$WORK/c3.out"; then
    pass "tls_client --insecure -> openssl s_server"
else
    fail "tls_client --insecure"
    show "$WORK/c3.err"
fi

# --- 2. openssl s_client -> echo_streams --tls-cert ------------------------------------------
if start echo "$ECHO" --port 0 --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"; then
    EPORT=$PORT
    # stdin through a fifo held open until the echo is back (s_client ends at stdin's EOF)
    mkfifo "$WORK/sc.in"
    timeout 20 openssl s_client -connect "127.0.0.1:$EPORT" -servername localhost \
        -verify_return_error -verify_hostname localhost -CAfile "$CERTS/ca.crt" -quiet \
        -no_ign_eof <"$WORK/sc.in" >"$WORK/sc.out" 2>"$WORK/sc.err" &
    SC=$!
    exec 4>"$WORK/sc.in"
    printf 'ping over tls\n' >&4
    for _ in $(seq 100); do
        grep -q '^ping over tls$' "$WORK/sc.out" && break
        sleep 0.1
    done
    exec 4>&-
    wait "$SC"
    if grep -q '^ping over tls$' "$WORK/sc.out"; then
        pass "openssl s_client -verify_return_error -> echo_streams --tls-cert (echoed)"
    else
        fail "openssl s_client -> echo_streams"
        show "$WORK/sc.err"
    fi
    printf 'x\n' | timeout 20 openssl s_client -connect "127.0.0.1:$EPORT" -verify_return_error \
        -CAfile "$CERTS/clientca.crt" -quiet >"$WORK/sc2.out" 2>"$WORK/sc2.err"
    if grep -q 'verify error' "$WORK/sc2.err" && ! grep -q '^x$' "$WORK/sc2.out"; then
        pass "openssl s_client with the wrong CA refuses echo_streams' certificate"
    else
        fail "openssl s_client with the wrong CA"
        show "$WORK/sc2.err"
    fi

    # renegotiation is off: a TLS 1.2 s_client's "R" (after its echo came back) is refused
    mkfifo "$WORK/rn.in"
    timeout 20 openssl s_client -connect "127.0.0.1:$EPORT" -servername localhost -tls1_2 \
        -CAfile "$CERTS/ca.crt" <"$WORK/rn.in" >"$WORK/rn.out" 2>&1 &
    RN=$!
    exec 5>"$WORK/rn.in"
    printf 'before renegotiation\n' >&5
    for _ in $(seq 100); do
        grep -q '^before renegotiation$' "$WORK/rn.out" && break
        sleep 0.1
    done
    printf 'R\n' >&5
    for _ in $(seq 100); do
        grep -q 'no renegotiation' "$WORK/rn.out" && break
        sleep 0.1
    done
    exec 5>&-
    wait "$RN"
    if grep -q '^RENEGOTIATING' "$WORK/rn.out" && grep -q 'no renegotiation' "$WORK/rn.out"; then
        pass "openssl s_client -tls1_2 asks to renegotiate: refused (no renegotiation alert)"
    else
        fail "renegotiation should be refused"
        show "$WORK/rn.out" 40
    fi

    # echo_client --tls (ours, verifying the IP address) -> echo_streams --tls-cert
    if "$BUILD/examples/echo_client" --host 127.0.0.1 --port "$EPORT" --connections 8 --size 300 \
        --seconds 0.5 --tls --ca "$CERTS/ca.crt" >"$WORK/ec.out" 2>"$WORK/ec.err" &&
        grep -q '^errors=0$' "$WORK/ec.out"; then
        pass "echo_client --tls --ca -> echo_streams ($(grep '^msgs=' "$WORK/ec.out"))"
    else
        fail "echo_client --tls -> echo_streams"
        show "$WORK/ec.err"
    fi

    # --- 3. python3's ssl module -> echo_streams, TLS 1.3 and 1.2; plaintext to the TLS port --
    if [[ -x $PY ]]; then
        if $PY - "$EPORT" "$CERTS/ca.crt" >"$WORK/py.out" 2>&1 <<'PYEOF'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
for ver in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ctx.maximum_version = ver
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            data = b"x" * 200000 + b"\n"
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                got += s.recv(65536)
            assert got == data, "echo differs"
            print(s.version(), s.cipher()[0], "ok")
            s.unwrap()  # close_notify both ways
# plaintext to the TLS port: the server must survive it
with socket.create_connection(("127.0.0.1", port)) as raw:
    raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
    raw.settimeout(10)
    try:
        raw.recv(100)
    except OSError:
        pass
ctx = ssl.create_default_context(cafile=ca)
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
    s.sendall(b"after plaintext\n")
    assert s.recv(100) == b"after plaintext\n"
    print("unharmed ok")
PYEOF
        then
            pass "python3 ssl -> echo_streams (TLS 1.3 and 1.2, 200 kB echoed, unwrap; plaintext did no harm): $(tr '\n' ';' <"$WORK/py.out")"
        else
            fail "python3 ssl -> echo_streams"
            show "$WORK/py.out"
        fi
    else
        fail "/usr/bin/python3 not found"
    fi
fi

# --- 3b. python3's ssl module -> echo_protocol --tls-cert (TLS under a transport) -------------
PROTO=$BUILD/examples/echo_protocol
if [[ -x $PY && -x $PROTO ]] &&
    start proto "$PROTO" --port 0 --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"; then
    if $PY - "$PORT" "$CERTS/ca.crt" >"$WORK/pyp.out" 2>&1 <<'PYEOF'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
for ver in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ctx.maximum_version = ver
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
        data = bytes(range(256)) * 2000
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            got += s.recv(65536)
        assert got == data, "echo differs"
        print(s.version(), "ok")
PYEOF
    then
        pass "python3 ssl -> echo_protocol --tls-cert (TLS 1.3 and 1.2, 512 kB echoed): $(tr '\n' ';' <"$WORK/pyp.out")"
    else
        fail "python3 ssl -> echo_protocol"
        show "$WORK/pyp.out"
    fi
fi

# --- 4. curl --cacert -> https_hello ----------------------------------------------------------
if command -v curl >/dev/null; then
    if start hello "$HELLO" --cert "$CERTS/server.crt" --key "$CERTS/server.key"; then
        if curl -sS --max-time 20 --cacert "$CERTS/ca.crt" "https://localhost:$PORT/" \
            >"$WORK/curl.out" 2>"$WORK/curl.err" &&
            grep -q 'hello from simul-tls alpn=http/1.1 version=TLSv1.3' "$WORK/curl.out"; then
            pass "curl --cacert -> https_hello ($(cat "$WORK/curl.out"))"
        else
            fail "curl --cacert -> https_hello"
            show "$WORK/curl.err"
            show "$WORK/curl.out"
        fi
        if ! curl -sS --max-time 20 "https://localhost:$PORT/" >/dev/null 2>"$WORK/curl2.err"; then
            pass "curl without the CA refuses ($(head -1 "$WORK/curl2.err"))"
        else
            fail "curl without the CA should refuse"
        fi
        if curl -sS --max-time 20 --tlsv1.2 --tls-max 1.2 --cacert "$CERTS/ca.crt" \
            "https://127.0.0.1:$PORT/" 2>"$WORK/curl3.err" | grep -q 'version=TLSv1.2'; then
            pass "curl TLS 1.2 -> https_hello"
        else
            fail "curl TLS 1.2"
            show "$WORK/curl3.err"
        fi
    fi
else
    fail "curl not found (apt-get install curl)"
fi

# --- 6. tls_client -> /usr/bin/python3 ssl server (HTTPS, TLS 1.3 and 1.2, ALPN, close_notify) --
cat >"$WORK/pyserver.py" <<'PYEOF'
import http.server, ssl, sys
certs, maxv = sys.argv[1], sys.argv[2]
chain, key = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("server.crt", "server.key")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python %s %s\n" % (self.connection.version(), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(certs + "/" + chain, certs + "/" + key)
ctx.set_alpn_protocols(["http/1.1"])
ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if maxv == "1.2" else ssl.TLSVersion.TLSv1_3
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
PYEOF
for v in 1.3 1.2; do
    if start "pyserver$v" "$PY" "$WORK/pyserver.py" "$CERTS" "$v"; then
        if "$CLIENT" --ca "$CERTS/ca.crt" --alpn h2,http/1.1 --body "https://localhost:$PORT/p$v" \
            >"$WORK/pyc$v.out" 2>"$WORK/pyc$v.err" && grep -q '^status: HTTP/1.0 200' "$WORK/pyc$v.out" &&
            grep -q "^version: TLSv$v" "$WORK/pyc$v.out" && grep -q '^alpn: http/1.1' "$WORK/pyc$v.out" &&
            grep -q "python TLSv$v /p$v" "$WORK/pyc$v.out"; then
            pass "tls_client -> python3 ssl HTTPS server (verified, TLSv$v, ALPN http/1.1)"
        else
            fail "tls_client -> python3 ssl server TLSv$v"
            show "$WORK/pyc$v.out"
            show "$WORK/pyc$v.err"
            show "$WORK/pyserver$v.err"
        fi
    fi
done
# a certificate chain: leaf, then an intermediate CA; the client trusts only the root
if start pyserverchain "$PY" "$WORK/pyserver.py" "$CERTS" 1.3 chained-chain.crt chained.key; then
    if "$CLIENT" --ca "$CERTS/ca.crt" "https://localhost:$PORT/chain" >"$WORK/pycc.out" \
        2>"$WORK/pycc.err" && grep -q '^status: HTTP/1.0 200' "$WORK/pycc.out"; then
        pass "tls_client -> python3 ssl server sending leaf + intermediate (verified to the root)"
    else
        fail "tls_client through an intermediate CA"
        show "$WORK/pycc.err"
    fi
fi
if [[ -n ${PORT:-} ]] && ! "$CLIENT" "https://localhost:$PORT/" >"$WORK/pyc3.out" 2>"$WORK/pyc3.err" &&
    grep -q 'certificate verify failed' "$WORK/pyc3.err"; then
    pass "tls_client without the CA refuses the python3 server's certificate"
else
    fail "tls_client without the CA should refuse the python3 server"
    show "$WORK/pyc3.err"
fi

if ((FAILURES)); then
    echo "tls_interop: $FAILURES check(s) failed"
    exit 1
fi
echo "tls_interop: all checks passed"
