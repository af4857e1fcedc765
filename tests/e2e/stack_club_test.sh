#!/usr/bin/env bash
# examples/chess_club/club.sh end to end: start brings up nginx (TLS), HAProxy, two supervised
# web instances, Redis and RabbitMQ, each on its own loopback address, and prints the URL; the
# page and the JSON answer through nginx -> HAProxy -> web over TLS (curl --cacert with the
# run's certificate); status prints one line per process with role, address and pid=N, all
# running; a second start is refused while the club runs; stop leaves no process behind (no
# nginx worker, no epmd, no beam, no redis: every pid that status listed is gone, and no process
# mentions the state dir). Usage: stack_club_test.sh <build-dir>.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CLUB=$HERE/../../examples/chess_club/club.sh
if [[ ! -x $BUILD/examples/http_hello ]]; then
    echo "SKIP: http_hello not built (libsimul-http needs libjansson-dev)"
    exit 0
fi
STATE=$(mktemp -d "${TMPDIR:-/tmp}/stack_club_test.XXXXXX") || exit 1
export CLUB_STATE=$STATE CLUB_BUILD=$BUILD
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
cleanup() {
    bash "$CLUB" stop >/dev/null 2>&1
    rm -rf "$STATE"
}
trap cleanup EXIT

if ! out=$(bash "$CLUB" start 2>&1); then
    fail "club.sh start: $out"
    for f in "$STATE"/*/*.log; do echo "== $f"; tail -5 "$f"; done
    exit 1
fi
URL=$(echo "$out" | grep -o 'https://[0-9.:]*/' | head -1)
[[ $URL == https://127.0.0.2:*/ ]] && pass "start prints the URL: $URL" || fail "start printed: $out"

status=$(bash "$CLUB" status)
rc=$?
echo "$status"
((rc == 0)) && pass "status: every process runs" || fail "status exit $rc"
for want in "nginx 127.0.0.2" "haproxy 127.0.0.3" "web 127.0.0.4" "web 127.0.0.5" \
    "redis 127.0.0.20" "rabbitmq 127.0.0.21"; do
    set -- $want
    if echo "$status" | grep -Eq "^$1 +$2:[0-9]+ +pid=[0-9]+"; then
        pass "status lists $1 on $2 with its pid"
    else
        fail "status has no $1 on $2"
    fi
done
nweb=$(echo "$status" | grep -c "^web .*worker of")
((nweb == 4)) && pass "status lists 4 web workers (2 per instance)" || fail "$nweb web workers"
PIDS=$(echo "$status" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')

CA=$STATE/nginx/cert.pem
# --max-time only turns a hang into a failure: 60 s, which no loaded machine takes for one request
body=$(curl -sS --max-time 60 --cacert "$CA" "${URL}json")
[[ $body == '{"message":"Hello, World!"}' ]] && pass "GET /json through nginx (TLS) -> haproxy -> web" ||
    fail "GET /json: $body"
body=$(curl -sS --max-time 60 --cacert "$CA" "${URL}static/index.txt")
[[ $body == "the chess club" ]] && pass "nginx serves static files" || fail "static: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 --cacert "$CA" "${URL}readyz")
[[ $code == 200 ]] && pass "/readyz through the stack: 200" || fail "/readyz: $code"

if bash "$CLUB" start >/dev/null 2>&1; then fail "a second start was accepted"; else pass "a second start is refused"; fi

if bash "$CLUB" stop; then pass "stop"; else fail "stop"; fi
left=""
for p in $PIDS; do
    st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
    [[ -n $st && $st != Z ]] && left+=" $p($(cat /proc/$p/comm 2>/dev/null))"
done
[[ -z $left ]] && pass "stop left none of the $(echo $PIDS | wc -w) processes" || fail "left:$left"
if pgrep -f "$STATE" >/dev/null; then fail "a process still mentions $STATE"; else pass "no process mentions the state dir"; fi
bash "$CLUB" status >/dev/null 2>&1
(($? == 3)) && pass "status after stop: not started" || fail "status after stop"

echo "stack_club: $FAILURES failure(s)"
((FAILURES == 0))
