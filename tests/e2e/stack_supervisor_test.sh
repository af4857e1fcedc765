#!/usr/bin/env bash
# examples/http_hello under its supervisor, the worker's drain and the master's signals, end to
# end (loopback, temp dir, free ports):
#   drain    on SIGTERM /readyz answers 503 at once while / still answers 200 (--drain-delay,
#            held open by the test and cut short by a second SIGTERM to the workers), a request
#            in flight (/slow) finishes with 200, an idle keep-alive connection is closed by the
#            server, and the master exits 0 once every worker is reaped;
#   systemd  socket activation: a launcher puts a listening socket at fd 3 with LISTEN_FDS=1 and
#            LISTEN_PID = the master's pid (exec keeps it): the workers serve that socket, a
#            reload keeps serving it;
#   watchdog --watchdog 1: a worker stopped with SIGSTOP (a stuck loop) is killed and replaced;
#   master   kill -9 of the master: its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG),
#            drain and exit; SIGQUIT: every worker killed at once, nothing left.
# Usage: stack_supervisor_test.sh <build-dir>.
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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stack_supervisor_test.XXXXXX") || exit 1
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
MPID=
cleanup() {
    [[ -n $MPID ]] && kill -KILL "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
    for p in $(cat "$WORK"/*.err 2>/dev/null | sed -n 's/.* pid=\([0-9]*\) .*started$/\1/p'); do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_until() {
    local what=$1 bound=$2
    shift 2
    local end=$((SECONDS + bound))
    while ! "$@"; do
        ((SECONDS >= end)) && { echo "  (gave up waiting for: $what)"; return 1; }
        sleep 0.05
    done
}
at_least() { local n; n=$(grep -c -- "$2" "$WORK/$1.err" 2>/dev/null); ((${n:-0} >= $3)); }
gone() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == "" || $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
all_gone() { local p; for p in "$@"; do gone "$p" || return 1; done; }
port_of() { sed -n 's/.*workers on port \([0-9]*\).*/\1/p' "$WORK/$1.err" | head -1; }
get() { curl -s -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$1$2"; }

# ---- drain -------------------------------------------------------------------------------------
# The drain delay is a window this test checks inside (readyz 503 and / 200), so the test holds
# it open: the delay is long, and a second SIGTERM to the workers ends it once the checks are done
# (no window to hit in time, however loaded the machine).
"$SERVER" --host 127.0.0.1 --port 0 --workers 2 --drain-delay 300 --stop-timeout 20 \
    >"$WORK/d.out" 2>"$WORK/d.err" &
MPID=$!
wait_until "ready" 30 at_least d "gen=1 ready" 2 || { fail "did not start"; cat "$WORK/d.err"; exit 1; }
P=$(port_of d)
workers=$(pgrep -P "$MPID")
# an idle keep-alive connection, open across the stop: the server must close it
"$PY" - "$P" >"$WORK/keepalive.out" 2>&1 <<'EOF' &
import http.client, socket, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
c.request("GET", "/")
r = c.getresponse(); r.read()
print("first", r.status, flush=True)
c.sock.settimeout(60)
print("eof" if c.sock.recv(1) == b"" else "data", flush=True)   # the server closes it
EOF
KA=$!
wait_until "keep-alive client's first answer" 30 grep -q "first 200" "$WORK/keepalive.out" ||
    fail "drain: keep-alive client: $(cat "$WORK/keepalive.out")"
kill -TERM "$MPID"
# every answer seen while waiting is kept: a failure says what came instead
readyz_503() {
    local c
    c=$(get "$P" /readyz)
    echo "$c" >>"$WORK/readyz.codes"
    [[ $c == 503 ]]
}
if wait_until "readyz 503" 60 readyz_503; then
    pass "drain: /readyz answers 503 from the start"
else
    fail "drain: /readyz never failed (answers: $(sort "$WORK/readyz.codes" | uniq -c | tr -s ' \n' ' '))"
    sed 's/^/  d.err: /' "$WORK/d.err"
fi
[[ $(get "$P" /) == 200 ]] && pass "drain: / still answers 200 during the drain delay" ||
    fail "drain: / refused during the delay"
# a request in flight when the workers stop accepting: sent, seen started by its worker, then the
# delay is cut short
n0=$(grep -c "/slow started" "$WORK/d.err")
curl -s --max-time 60 -o "$WORK/slow.body" -w '%{http_code}' "http://127.0.0.1:$P/slow?ms=2000" >"$WORK/slow.code" &
SLOW=$!
wait_until "the slow request started" 30 at_least d "/slow started" $((n0 + 1)) ||
    fail "drain: /slow never started"
kill -TERM $workers
wait "$SLOW"
[[ $(cat "$WORK/slow.code") == 200 && $(cat "$WORK/slow.body") == slept ]] &&
    pass "drain: the request in flight finished (200)" || fail "drain: in-flight request: $(cat "$WORK/slow.code")"
wait "$KA"
grep -q "^eof" "$WORK/keepalive.out" && pass "drain: the idle keep-alive connection was closed by the server" ||
    fail "drain: keep-alive: $(cat "$WORK/keepalive.out")"
wait "$MPID"
rc=$?
MPID=
((rc == 0)) && pass "drain: master exit 0" || fail "drain: master exit $rc"
all_gone $workers && pass "drain: no worker left" || fail "drain: workers left"
grep -Eq "exited with status [1-9]|Sanitizer" "$WORK/d.err" && fail "drain: $(grep -E "exited with status [1-9]|Sanitizer" "$WORK/d.err" | head -3)"

# ---- systemd socket activation -------------------------------------------------------------------
SP=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" - "$SP" "$SERVER" >"$WORK/s.out" 2>"$WORK/s.err" <<'EOF' &
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)                  # as systemd: the first socket at fd 3
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http")
os.execv(sys.argv[2], [sys.argv[2], "--workers", "2", "--port", "1"])   # exec keeps the pid
EOF
MPID=$!
if wait_until "activated workers" 30 at_least s "gen=1 ready" 2 && [[ $(port_of s) == "$SP" ]]; then
    pass "systemd: the master took the inherited socket (port $SP, not --port 1)"
else
    fail "systemd: $(cat "$WORK/s.err")"
fi
[[ $(get "$SP" /json) == 200 ]] && pass "systemd: workers serve the inherited socket" || fail "systemd: no answer"
wpid=$(pgrep -P "$MPID" | head -1)
if tr '\0' '\n' <"/proc/$wpid/environ" | grep -q '^LISTEN_'; then
    fail "systemd: a worker sees LISTEN_* variables"
else
    pass "systemd: LISTEN_* not passed on to the workers"
fi
kill -HUP "$MPID"
wait_until "reload" 30 at_least s "reloaded: generation 2" 1 && [[ $(get "$SP" /json) == 200 ]] &&
    pass "systemd: reload serves the same socket" || fail "systemd: reload"
kill -TERM "$MPID"
wait "$MPID"
rc=$?
MPID=
((rc == 0)) && pass "systemd: stopped, exit 0" || fail "systemd: exit $rc"

# ---- the master dies ---------------------------------------------------------------------------
"$SERVER" --host 127.0.0.1 --port 0 --workers 2 >"$WORK/k.out" 2>"$WORK/k.err" &
MPID=$!
wait_until "ready" 30 at_least k "gen=1 ready" 2 || fail "k did not start"
workers=$(pgrep -P "$MPID")
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null
MPID=
wait_until "orphaned workers exit" 30 all_gone $workers &&
    pass "master killed: its workers got SIGTERM (PDEATHSIG) and exited" || fail "master killed: workers left"

"$SERVER" --host 127.0.0.1 --port 0 --workers 2 >"$WORK/q.out" 2>"$WORK/q.err" &
MPID=$!
wait_until "ready" 30 at_least q "gen=1 ready" 2 || fail "q did not start"
workers=$(pgrep -P "$MPID")
kill -QUIT "$MPID"
wait "$MPID"
rc=$?
MPID=
all_gone $workers && grep -q "killed by signal 9" "$WORK/q.err" &&
    pass "SIGQUIT: workers killed at once, master exit $rc, nothing left" || fail "SIGQUIT"

# ---- watchdog: a stopped (stuck) worker is killed and replaced -------------------------------
"$SERVER" --host 127.0.0.1 --port 0 --workers 2 --watchdog 1 >"$WORK/w.out" 2>"$WORK/w.err" &
MPID=$!
wait_until "ready" 30 at_least w "gen=1 ready" 2 || fail "w did not start"
stuck=$(pgrep -P "$MPID" | head -1)
kill -STOP "$stuck"
if wait_until "watchdog" 30 at_least w "pid=$stuck gen=1 missed its watchdog" 1 &&
    wait_until "replacement" 30 at_least w "gen=1 ready" 3 && [[ $(get "$(port_of w)" /) == 200 ]]; then
    pass "watchdog: the stuck worker $stuck was killed and replaced"
else
    fail "watchdog: $(cat "$WORK/w.err")"
fi
kill -TERM "$MPID"
wait "$MPID"
rc=$?
MPID=
((rc == 0)) && gone "$stuck" && pass "watchdog: stopped, exit 0" || fail "watchdog: exit $rc"

echo "stack_supervisor: $FAILURES failure(s)"
((FAILURES == 0))
