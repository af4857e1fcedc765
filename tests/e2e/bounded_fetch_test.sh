#!/usr/bin/env bash
# End-to-end test of examples/bounded_fetch (issue 19's bounded fetcher): against a python3
# threading HTTP server made here, on a port it picks itself, that can make requests meet (a
# request to /meet/K is held until K requests are in flight at once, so "--jobs K runs K at a
# time" is checked by state, not by timing), sleep (/sleep/S) and count. Checks: --jobs bounds
# the fetches in flight (never more, and K do run together); a fetch past its own --timeout is
# reported as such while the others succeed; the batch --deadline cuts every fetch still running
# or waiting for a slot; a 404 and a refused port are failures with a reason; usage errors.
# Usage: bounded_fetch_test.sh <build-dir>. Skips (exit 0) without the example.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
FETCH=$BUILD/examples/bounded_fetch
PY=/usr/bin/python3
if [[ ! -x $FETCH ]]; then
    echo "SKIP: $FETCH not built (libsimul-http)"
    exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bounded_fetch_test.XXXXXX") || exit 1
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

cat >"$WORK/server.py" <<'EOF'
import http.server, sys, threading, time
lock = threading.Condition()
inflight = 0
peak = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, code, body):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        global inflight, peak
        parts = self.path.strip("/").split("/")
        if parts[0] == "peak":
            with lock:
                return self.answer(200, "%d\n" % peak)
        if parts[0] == "reset":
            with lock:
                peak = 0
            return self.answer(200, "ok\n")
        with lock:
            inflight += 1
            peak = max(peak, inflight)
            lock.notify_all()
        try:
            if parts[0] == "meet":
                # held until K requests are in flight together (bounded: 20 s, then 504)
                k = int(parts[1])
                with lock:
                    met = lock.wait_for(lambda: peak >= k, timeout=20)
                return self.answer(200 if met else 504, "met\n" if met else "alone\n")
            if parts[0] == "sleep":
                time.sleep(float(parts[1]))
                return self.answer(200, "slept\n")
            if parts[0] == "ok":
                return self.answer(200, "ok " * 1000)
            return self.answer(404, "no\n")
        finally:
            with lock:
                inflight -= 1
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
"$PY" "$WORK/server.py" "$WORK/port" &
SERVER_PID=$!
for _ in $(seq 1 400); do
    [[ -s $WORK/port ]] && break
    sleep 0.025
done
if [[ ! -s $WORK/port ]]; then
    echo "FAIL: the test server did not start"
    exit 1
fi
P=$(cat "$WORK/port")
U=http://127.0.0.1:$P
peak() { curl -s "$U/peak"; }
reset() { curl -s "$U/reset" >/dev/null; }

# 1. --jobs 3 over 6 requests that each wait until 3 are in flight together: all succeed (so 3
#    did run at once) and the server never saw more than 3.
reset
out=$(timeout 60 "$FETCH" --jobs 3 $(for i in 1 2 3 4 5 6; do echo "$U/meet/3"; done) 2>&1)
rc=$?
if [[ $rc -eq 0 && $(grep -c ': 200, 4 bytes' <<<"$out") -eq 6 && $(peak) -eq 3 ]]; then
    pass "--jobs 3: three in flight together, never more (peak $(peak))"
else
    fail "--jobs 3 (rc=$rc, peak $(peak)): $out"
fi

# 2. One fetch past its own timeout; the others are fine; exit status 1.
reset
out=$(timeout 60 "$FETCH" --jobs 2 --timeout 0.5 --deadline 50 "$U/ok" "$U/sleep/30" "$U/ok" "$U/ok" 2>&1)
rc=$?
if [[ $rc -eq 1 ]] && grep -q '^fetch 2: timed out (its own timeout)$' <<<"$out" &&
    [[ $(grep -c ': 200, 3000 bytes' <<<"$out") -eq 3 ]] &&
    grep -q '^done: 3 ok, 0 failed, 1 timed out$' <<<"$out"; then
    pass "a fetch past its own --timeout is reported; the others succeed"
else
    fail "own timeout (rc=$rc): $out"
fi

# 3. The batch deadline cuts the running fetches and those waiting for a slot alike.
out=$(timeout 60 "$FETCH" --jobs 1 --timeout 100 --deadline 0.5 "$U/sleep/30" "$U/sleep/30" "$U/sleep/30" 2>&1)
rc=$?
if [[ $rc -eq 1 && $(grep -c 'cut by the batch deadline' <<<"$out") -eq 3 ]] &&
    grep -q '^done: 0 ok, 0 failed, 3 timed out$' <<<"$out"; then
    pass "the batch --deadline cuts running and waiting fetches"
else
    fail "batch deadline (rc=$rc): $out"
fi

# 4. A 404 and a refused port are failures, with a reason.
DEAD=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(timeout 60 "$FETCH" "$U/nothing-here" "http://127.0.0.1:$DEAD/" "$U/ok" 2>&1)
rc=$?
if [[ $rc -eq 1 ]] && grep -q '^fetch 1: 404, 3 bytes$' <<<"$out" &&
    grep -qi '^fetch 2: failed: .*refused' <<<"$out" && grep -q '^fetch 3: 200' <<<"$out" &&
    grep -q '^done: 1 ok, 2 failed, 0 timed out$' <<<"$out"; then
    pass "a 404 and a refused port are failures with a reason"
else
    fail "failures (rc=$rc): $out"
fi

# 5. Usage errors.
for args in "" "--jobs 0 $U/ok" "--timeout x $U/ok" "--bogus $U/ok"; do
    # shellcheck disable=SC2086
    "$FETCH" $args >/dev/null 2>&1
    rc=$?
    if [[ $rc -eq 2 ]]; then pass "usage error: '$args'"; else fail "usage error '$args' gave $rc"; fi
done

if ((FAILURES)); then
    echo "$FAILURES check(s) failed"
    exit 1
fi
echo "all checks passed"
