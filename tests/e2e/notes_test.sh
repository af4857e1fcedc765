#!/usr/bin/env bash
# End-to-end test of examples/notes (libsimul-http's JSON CRUD API with a static page) with real
# clients: curl (create, read, list with a filter, replace, delete, 404/405/415/422 as JSON, the
# page and its 304, HEAD), python3's http.client (the same flow on one kept-alive connection,
# JSON checked), and HTTPS: the server on libsimul-tls with tests/tls/make_certs.sh's
# certificates, fetched with `curl --cacert` and python's ssl (verification on). SIGTERM shuts
# it down gracefully with exit 0. Usage: notes_test.sh <build-dir>. Skips (exit 0) when the
# example is not built. One PASS/FAIL line per check; exits 1 if any failed.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SERVER=$BUILD/examples/notes
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
if [[ ! -x $SERVER ]]; then
    echo "SKIP: $SERVER not built (libsimul-http needs libjansson-dev)"
    exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/notes_test.XXXXXX") || exit 1
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# start NAME ARGS...: runs the server, sets PORT (a bounded wait for "listening on")
start() {
    local name=$1
    shift
    "$SERVER" --port 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$WORK/$name.out")
        [[ -n $PORT ]] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $PORT ]]; then
        echo "FAIL: $name did not start"; cat "$WORK/$name.err"; exit 1
    fi
}
stop() { # graceful: SIGTERM, exit 0
    kill -TERM "$PID"
    wait "$PID"
}

start plain --access-log
URL=http://127.0.0.1:$PORT
C=(curl -sS --max-time 20)
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }

# create
out=$("${C[@]}" -D "$WORK/h1" -H 'Content-Type: application/json' \
      -d '{"title":"first","body":"hello"}' "$URL/api/notes")
check "POST creates (201, Location, the note)" \
    bash -c "grep -q '^HTTP/1.1 201' '$WORK/h1' && grep -qi '^Location: /api/notes/1' '$WORK/h1'"
check "POST answers the note as JSON" json "d['id']==1 and d['title']=='first' and d['body']=='hello'" <<<"$out"
"${C[@]}" -o /dev/null -H 'Content-Type: application/json' -d '{"title":"second note","body":""}' "$URL/api/notes"
out=$("${C[@]}" "$URL/api/notes/1")
check "GET one" json "d['id']==1 and d['title']=='first'" <<<"$out"
out=$("${C[@]}" "$URL/api/notes")
check "GET list, newest first" json "[n['id'] for n in d]==[2,1]" <<<"$out"
out=$("${C[@]}" "$URL/api/notes?q=sec")
check "GET list with a filter" json "[n['title'] for n in d]==['second note']" <<<"$out"
out=$("${C[@]}" -X PUT -H 'Content-Type: application/json' -d '{"title":"first, edited","body":"b2"}' "$URL/api/notes/1")
check "PUT replaces" json "d['title']=='first, edited' and d['body']=='b2'" <<<"$out"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -X DELETE "$URL/api/notes/2")
check "DELETE answers 204" test "$code" = 204
out=$("${C[@]}" -w '\n%{http_code}' "$URL/api/notes/2")
check "a deleted note is a JSON 404" json "d['status']==404" <<<"$(head -1 <<<"$out")"
check "... with status 404" test "$(tail -1 <<<"$out")" = 404
out=$("${C[@]}" -w '\n%{http_code}' -X PATCH "$URL/api/notes/1")
check "PATCH is a JSON 405" test "$(tail -1 <<<"$out")" = 405
check "... as JSON" json "d['status']==405" <<<"$(head -1 <<<"$out")"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' -d 'x' "$URL/api/notes")
check "not JSON's content type: 415" test "$code" = 415
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"title":' "$URL/api/notes")
check "broken JSON: 400" test "$code" = 400
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"title":5}' "$URL/api/notes")
check "a title that is not a string: 422" test "$code" = 422
head -c 70000 /dev/zero | tr '\0' 'x' | sed 's/^/{"title":"/; s/$/"}/' > "$WORK/big.json"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$URL/api/notes")
check "a body over the 64 KiB limit: 413" test "$code" = 413
grep -q 'no-store' <("${C[@]}" -D - -o /dev/null "$URL/api/notes")
check "the API says Cache-Control: no-store (an after hook)" test $? = 0

# the page
"${C[@]}" -D "$WORK/ph" -o "$WORK/page.html" "$URL/"
check "GET / is the page" cmp -s "$WORK/page.html" "$SRC/examples/notes/static/index.html"
check "... as text/html" grep -qi '^Content-Type: text/html' "$WORK/ph"
etag=$(grep -i '^etag:' "$WORK/ph" | cut -d' ' -f2 | tr -d '\r')
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/")
check "the page again with its ETag: 304" test "$code" = 304
check "app.js as JavaScript" bash -c "curl -sS -D - -o /dev/null '$URL/app.js' | grep -qi '^Content-Type: text/javascript'"
code=$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/../../etc/passwd" --path-as-is)
check "no escape from the static root" test "$code" = 404
code=$("${C[@]}" -o /dev/null -w '%{http_code}' "$URL/%2e%2e/%2e%2e/etc/passwd" --path-as-is)
check "no escape, percent-encoded" test "$code" = 404

# python's http.client: one connection, the whole flow
"$PY" - "$PORT" <<'PYEOF' >"$WORK/py.out" 2>&1
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
def req(m, p, body=None):
    h = {"Content-Type": "application/json"} if body is not None else {}
    c.request(m, p, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)
s, n = req("POST", "/api/notes", {"title": "from python", "body": "é ü ✓"})
assert s == 201 and n["body"] == "é ü ✓", (s, n)
s, got = req("GET", "/api/notes/%d" % n["id"])
assert s == 200 and got == n, (s, got)
s, lst = req("GET", "/api/notes?q=python")
assert s == 200 and [x["id"] for x in lst] == [n["id"]], lst
s, _ = req("DELETE", "/api/notes/%d" % n["id"])
assert s == 204
s, e = req("GET", "/api/notes/%d" % n["id"])
assert s == 404 and e["status"] == 404
print("ok")
PYEOF
check "python http.client: the CRUD flow on one connection" grep -qx ok "$WORK/py.out"
check "the access log has combined-format lines" \
    grep -qE '^127\.0\.0\.1 - - \[[^]]+\] "POST /api/notes HTTP/1\.1" 201 [0-9]+ "-" "curl/' "$WORK/plain.err"
stop
check "SIGTERM: a graceful exit 0" test $? = 0

# HTTPS
CERTS=$BUILD/tests/tls-certs
if [[ -f $CERTS/server.crt ]] && ! grep -q "built without" <("$SERVER" --tls-cert x --tls-key y 2>&1 </dev/null | head -1); then
    start tls --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"
    out=$(curl -sS --max-time 20 --cacert "$CERTS/ca.crt" -H 'Content-Type: application/json' \
          -d '{"title":"over tls"}' "https://localhost:$PORT/api/notes")
    check "HTTPS: curl --cacert creates a note" json "d['title']=='over tls'" <<<"$out"
    out=$(curl -sS --max-time 20 --cacert "$CERTS/ca.crt" "https://127.0.0.1:$PORT/api/notes")
    check "HTTPS: and lists it (two connections, verified)" json "len(d)==1" <<<"$out"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CERTS/ca.crt" \
           "https://localhost:$PORT/app.js")
    check "HTTPS: a static file (sendfile copies through TLS)" test "$code" = 200
    curl -sS --max-time 20 --cacert "$CERTS/ca.crt" "https://localhost:$PORT/app.js" -o "$WORK/app.js"
    check "HTTPS: ... byte for byte" cmp -s "$WORK/app.js" "$SRC/examples/notes/static/app.js"
    "$PY" - "$PORT" "$CERTS/ca.crt" <<'PYEOF' >"$WORK/pytls.out" 2>&1
import http.client, ssl, json, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx, timeout=20)
for i in range(3):
    c.request("GET", "/api/notes")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())[0]["title"] == "over tls"
print("ok")
PYEOF
    check "HTTPS: python ssl, verified, keep-alive" grep -qx ok "$WORK/pytls.out"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/api/notes")
    check "HTTPS: plain HTTP to the TLS port gets no answer" test "$code" = 000
    out=$(curl -sS --max-time 20 --cacert "$CERTS/ca.crt" "https://localhost:$PORT/api/notes")
    check "HTTPS: the server is unharmed" json "len(d)==1" <<<"$out"
    stop
    check "HTTPS: SIGTERM, exit 0" test $? = 0
else
    echo "SKIP: HTTPS (libsimul-tls or its test certificates not built)"
fi

if ((FAILURES)); then
    echo "$FAILURES check(s) failed"
    exit 1
fi
echo "all checks passed"
