#!/usr/bin/env bash
# End-to-end test of examples/http_get (libsimul-http's client) against real servers started
# here on free loopback ports: nginx (plain and TLS, static files, keep-alive: its access log
# shows the connection each request came on, gzip on), python3 -m http.server (HTTP/1.0,
# close-delimited), and the failures: an unknown CA (said so, exit 1), a refused port, a 404 is
# not a failure. Usage: http_get_test.sh <build-dir>. Skips (exit 0) without the example.
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
GET=$BUILD/examples/http_get
CERTS=$BUILD/tests/tls-certs
PY=/usr/bin/python3
if [[ ! -x $GET ]]; then
    echo "SKIP: $GET not built (libsimul-http)"
    exit 0
fi
for tool in nginx "$PY"; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL: $tool not found (make deps installs it)"
        exit 1
    fi
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/http_get_test.XXXXXX") || exit 1
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Waits until something accepts on 127.0.0.1:$1 (a bound on the wait, not a measure).
wait_port() {
    for _ in $(seq 1 400); do
        "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
        sleep 0.025
    done
    return 1
}

# ---- files to serve -------------------------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/nginx/tmp" "$WORK/nginx/logs"
echo "hello from nginx" >"$WORK/www/index.html"
head -c 300000 /dev/urandom | base64 -w 76 >"$WORK/www/big.txt" # compressible text, ~400 KB
BIG=$(stat -c %s "$WORK/www/big.txt")

# ---- nginx, plain and TLS -------------------------------------------------------------------
start_nginx() {
    local tries
    for tries in 1 2 3 4 5; do
        HP=$(free_port)
        SP=$(free_port)
        cat >"$WORK/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 256; }
http {
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    log_format combined_conn '\$request_uri conn=\$connection n=\$connection_requests gzip=\$gzip_ratio';
    access_log $WORK/nginx/logs/access.log combined_conn;
    keepalive_requests 1000;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 100;
    server {
        listen 127.0.0.1:$HP;
        listen 127.0.0.1:$SP ssl;
        ssl_certificate $CERTS/server.crt;
        ssl_certificate_key $CERTS/server.key;
        root $WORK/www;
        location = /ok { return 200 "ok"; }
        location = /moved { return 301 /index.html; }
    }
}
EOF
        nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e stderr -g 'daemon off;' \
            2>"$WORK/nginx/stderr" &
        NGINX_PID=$!
        if wait_port "$HP" && wait_port "$SP"; then
            PIDS+=("$NGINX_PID")
            return 0
        fi
        kill "$NGINX_PID" 2>/dev/null
        wait "$NGINX_PID" 2>/dev/null
    done
    return 1
}
if ! start_nginx; then
    echo "FAIL: nginx did not start"
    cat "$WORK/nginx/stderr"
    exit 1
fi
N=http://127.0.0.1:$HP
S=https://127.0.0.1:$SP

"$GET" --parallel 2 "$N/" "$N/ok" "$N/big.txt" "$N/nope" "$N/moved" >"$WORK/plain.out" 2>&1
rc=$?
check "nginx plain: exit 0 (a 404 is a response, not a failure)" test $rc -eq 0
check "nginx plain: index" grep -q "^200 17 bytes .* $N/\$" "$WORK/plain.out"
check "nginx plain: return 200" grep -q "^200 2 bytes .* $N/ok\$" "$WORK/plain.out"
check "nginx plain: big file gzip-decoded to its size ($BIG)" grep -q "^200 $BIG bytes .* $N/big.txt\$" "$WORK/plain.out"
check "nginx plain: 404" grep -q "^404 .* $N/nope\$" "$WORK/plain.out"
check "nginx plain: redirect followed" grep -q "^200 17 bytes .* $N/moved\$" "$WORK/plain.out"
# Keep-alive: 5 URLs (plus the redirect's second request) on --parallel 2 took at most 2
# connections.
conns=$(grep -c . "$WORK/nginx/logs/access.log")
distinct=$(sed -n 's/.* conn=\([0-9]*\) .*/\1/p' "$WORK/nginx/logs/access.log" | sort -u | wc -l)
check "nginx plain: the big body was sent gzip-encoded" grep -q "^/big.txt .* gzip=[0-9]" "$WORK/nginx/logs/access.log"
check "nginx plain: 6 requests on at most 2 connections (got $conns on $distinct)" \
    test "$conns" -eq 6 -a "$distinct" -le 2
check "nginx plain: the decoded body is the file, byte for byte" \
    bash -c "'$GET' --body '$N/big.txt' | tail -n +2 | head -c $BIG | cmp -s - '$WORK/www/big.txt'"

# TLS: the test CA is not in the system store: the reason says so, exit 1.
"$GET" "$S/" >"$WORK/tls_unknown.out" 2>&1
rc=$?
check "nginx TLS, unknown CA: exit 1" test $rc -eq 1
check "nginx TLS, unknown CA: the reason says so" grep -q "^error: .*certificate verify failed.*unknown CA" "$WORK/tls_unknown.out"
"$GET" --ca "$CERTS/ca.crt" --parallel 3 "$S/" "$S/ok" "$S/big.txt" "$S/index.html" >"$WORK/tls.out" 2>&1
rc=$?
check "nginx TLS with --ca: exit 0" test $rc -eq 0
check "nginx TLS: index" grep -q "^200 17 bytes .* $S/\$" "$WORK/tls.out"
check "nginx TLS: big" grep -q "^200 $BIG bytes .* $S/big.txt\$" "$WORK/tls.out"
check "nginx TLS: --insecure works without the CA" bash -c "'$GET' --insecure '$S/ok' >/dev/null"

# ---- python3 -m http.server (HTTP/1.0: a body ending with the close) ---------------------
PP=
for _ in 1 2 3 4 5; do
    PP=$(free_port)
    (cd "$WORK/www" && exec "$PY" -m http.server --bind 127.0.0.1 "$PP") >"$WORK/py.log" 2>&1 &
    PYPID=$!
    if wait_port "$PP"; then
        PIDS+=("$PYPID")
        break
    fi
    kill "$PYPID" 2>/dev/null
    wait "$PYPID" 2>/dev/null
    PP=
done
if [[ -z $PP ]]; then
    fail "python3 -m http.server did not start"
else
    P=http://127.0.0.1:$PP
    "$GET" --parallel 4 "$P/index.html" "$P/big.txt" "$P/missing" "$P/" >"$WORK/py.out" 2>&1
    rc=$?
    check "python http.server: exit 0" test $rc -eq 0
    check "python http.server: file" grep -q "^200 17 bytes .* $P/index.html\$" "$WORK/py.out"
    check "python http.server: big file" grep -q "^200 $BIG bytes .* $P/big.txt\$" "$WORK/py.out"
    check "python http.server: 404" grep -q "^404 .* $P/missing\$" "$WORK/py.out"
    check "python http.server: directory listing" grep -q "^200 .* $P/\$" "$WORK/py.out"
fi

# ---- failures -------------------------------------------------------------------------------
DEAD=$(free_port)
"$GET" "http://127.0.0.1:$DEAD/" "$N/ok" >"$WORK/dead.out" 2>&1
rc=$?
check "refused port: exit 1" test $rc -eq 1
check "refused port: the reason" grep -q "^error: connect to 127.0.0.1:$DEAD failed: Connection refused" "$WORK/dead.out"
check "refused port: the other URL still fetched" grep -q "^200 2 bytes .* $N/ok\$" "$WORK/dead.out"
"$GET" "ftp://x/" >"$WORK/bad.out" 2>&1
check "bad URL: exit 1 with the reason" bash -c "test $? -eq 1 && grep -q 'not an absolute http or https URL' '$WORK/bad.out'"
"$GET" >/dev/null 2>&1
check "no URL: usage exit 2" test $? -eq 2

if [[ $FAILURES -gt 0 ]]; then
    for f in "$WORK"/*.out; do echo "--- $f"; cat "$f"; done
    exit 1
fi
echo "all http_get checks passed"
