# shellcheck shell=bash
# club_lib.sh — what the chess club's e2e tests share (sourced, not a test): the prerequisites
# (SKIP when a server or the app is missing), a club started by examples/chess_club/club.sh in a
# temp state dir and stopped with nothing left behind, bounded waits on state, PASS/FAIL counts,
# and the steady load (tests/e2e/club_load.py) started and stopped through files.
# Usage: BUILD=<build-dir>; . club_lib.sh; club_require; club_start; ...; club_finish

CLUB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUB=$CLUB_HERE/../../examples/chess_club/club.sh
PY=/usr/bin/python3
FAILURES=0
BG_PIDS=()
pass() { echo "PASS: $* [${SECONDS}s]"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

club_require() { # SKIP (exit 0) unless everything the club runs is installed
    local b t
    [[ -n ${BUILD:-} && -d $BUILD ]] || { echo "usage: $0 <build-dir>" >&2; exit 2; }
    for b in club_web club_master http_hello; do
        [[ -x $BUILD/examples/$b ]] || { echo "SKIP: $b not built"; exit 0; }
    done
    for t in nginx haproxy redis-server redis-cli curl openssl; do
        command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || { echo "SKIP: $t missing"; exit 0; }
    done
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || { echo "SKIP: rabbitmq-server missing"; exit 0; }
    "$PY" -c 'import redis' 2>/dev/null || { echo "SKIP: python3-redis missing"; exit 0; }
}

# wait_for WHAT SECONDS COMMAND...: polls until COMMAND succeeds; FAIL when the bound passes
wait_for() {
    local what=$1 end=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < end)) || { fail "gave up waiting for $what"; return 1; }
        sleep 0.05
    done
}

# club_start NAME: the whole club (CLUB_WEB, CLUB_WORKERS, CLUB_MASTERS as set by the caller);
# sets STATE, URL (https through nginx), CA, HAPROXY (host:port), RADDR
club_start() {
    STATE=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    export CLUB_STATE=$STATE CLUB_BUILD=$BUILD
    trap club_cleanup EXIT
    local out f
    if ! out=$(bash "$CLUB" start 2>&1); then
        fail "club.sh start: $out"
        for f in "$STATE"/*/*.log; do echo "== $f"; tail -5 "$f"; done
        exit 1
    fi
    URL=$(echo "$out" | grep -o 'https://[0-9.:]*/' | head -1)
    CA=$STATE/nginx/cert.pem
    RADDR=$(awk '$1 == "redis" {print $2}' "$STATE/procs")
    HAPROXY=$(awk '$1 == "haproxy" {print $2}' "$STATE/procs")
    pass "club started: $URL"
}
club_cleanup() {
    local p
    [[ -n ${STATE:-} ]] && touch "$STATE/load.stop" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    bash "$CLUB" stop >/dev/null 2>&1
    [[ -n ${KEEP_STATE:-} ]] || rm -rf "$STATE"
}
# club_finish NAME: stops the club, checks nothing is left, prints the count, exits
club_finish() {
    local p st left="" pids
    touch "$STATE/load.stop"
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    BG_PIDS=()
    pids=$(bash "$CLUB" status | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
    bash "$CLUB" stop >/dev/null && pass "club.sh stop" || fail "club.sh stop"
    for p in $pids; do
        st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
        [[ -n $st && $st != Z ]] && left+=" $p($(cat "/proc/$p/comm" 2>/dev/null))"
    done
    [[ -z $left ]] && pass "stop left no process" || fail "left:$left"
    echo "$1: $FAILURES failure(s)"
    ((FAILURES == 0))
    exit $?
}

R() { redis-cli -h "${RADDR%:*}" -p "${RADDR#*:}" --raw "$@"; }
state_is() { [[ $(R HGET "club:{$1}" state 2>/dev/null) == "$2" ]]; }
post_simul() { # BOARDS MOVES PACE_MS: the id through nginx (empty when not 202)
    curl -sS --max-time 30 --cacert "$CA" -H 'Content-Type: application/json' \
        -d "{\"boards\":$1,\"moves\":$2,\"pace_ms\":$3}" "${URL}simuls" |
        sed -n 's/^{"id":\([0-9]*\)}$/\1/p'
}

# load_start NAME ARGS...: tests/e2e/club_load.py in the background, its counters in
# $STATE/NAME.json (rewritten as it goes), stopped by $STATE/load.stop
load_start() {
    local name=$1
    shift
    "$PY" "$CLUB_HERE/club_load.py" --status "$STATE/$name.json" --stop "$STATE/load.stop" "$@" \
        >"$STATE/$name.out" 2>"$STATE/$name.err" &
    BG_PIDS+=($!)
    need wait_for "load $name to start" 20 test -s "$STATE/$name.json"
}
# need COMMAND...: a step the rest depends on; its failure ends the test (club stopped, counted)
need() { "$@" || { fail "cannot go on after: $*"; cat "$STATE"/*.err 2>/dev/null | tail -5; club_finish "${0##*/}"; }; }
load_get() { # NAME KEY: a counter ("" before the first write)
    "$PY" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))
except (OSError, ValueError): print("")' "$STATE/$1.json" "$2"
}
load_at_least() { # NAME KEY N
    local v
    v=$(load_get "$1" "$2")
    [[ -n $v ]] && ((v >= $3))
}
# load_more NAME N: waits until N more requests have been answered than when called
load_more() {
    local base
    base=$(load_get "$1" ok)
    wait_for "$2 more requests of $1" 60 load_at_least "$1" ok $((${base:-0} + $2))
}
load_stop() { # waits until every load client has written its final counters
    touch "$STATE/load.stop"
    local p
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    BG_PIDS=()
}

# HAProxy's view of web instance NAME (web0, web1, ...): its state (2 UP, 0 DOWN), and a field
# of `show stat` (scur: connections now; wretr: retries; wredis: redispatches; eresp, econ)
ha_state() { "$PY" "$CLUB_HERE/../stack/haproxy_state.py" "$STATE/haproxy/haproxy.sock" web "$1"; }
ha_is() { [[ $(ha_state "$1") == "$2" ]]; }
ha_stat() { # SERVER FIELD
    "$PY" - "$STATE/haproxy/haproxy.sock" "$1" "$2" <<'PY'
import csv, io, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = list(csv.reader(io.StringIO(data.decode().lstrip("# "))))
head = rows[0]
for r in rows[1:]:
    if len(r) == len(head) and r[0] == "web" and r[1] == sys.argv[2]:
        print(r[head.index(sys.argv[3])] or 0)
PY
}
web_pids() { # INDEX: the supervisor of web instance INDEX, then its workers
    local pid
    pid=$(awk '$1 == "web" {print $3}' "$STATE/procs" | sed -n "$(($1 + 1))p")
    echo "$pid" $(pgrep -P "$pid")
}

# sse_check NAME ID BOARDS MOVES: every client of `club_load.py sse` NAME ended, and each one's
# moves equal Redis' lists, which hold MOVES per board and `played` = BOARDS * MOVES
sse_check() {
    local redis_json="{" b
    for ((b = 0; b < $3; b++)); do
        redis_json+="\"$b\": [$(R LRANGE "club:{$2}:moves:$b" 0 -1 | sed 's/.*/"&"/' | paste -sd,)],"
    done
    redis_json="${redis_json%,}}"
    "$PY" - "$STATE/$1.json" "$3" "$4" "$redis_json" "$(R HGET "club:{$2}" played)" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
boards, moves, played = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5] or -1)
redis = json.loads(sys.argv[4])
errors = []
for b in range(boards):
    if len(redis[str(b)]) != moves:
        errors.append(f"board {b}: Redis holds {len(redis[str(b)])} moves, not {moves}")
if played != boards * moves:
    errors.append(f"played={played}, not {boards * moves}")
clients = st.get("clients", [])
for i, c in enumerate(clients):
    if not c["ended"]:
        errors.append(f"SSE client {i} never got the end")
    if c["errors"]:
        errors.append(f"SSE client {i}: {c['errors'][:3]}")
    for b in range(boards):
        if c["moves"].get(str(b), []) != redis[str(b)]:
            errors.append(f"SSE client {i} board {b}: {len(c['moves'].get(str(b), []))} moves != Redis")
print(f"  {len(clients)} SSE clients, {sum(c['reconnects'] for c in clients)} reconnections, "
      f"{sum(c['live'] for c in clients)} moves live")
for e in errors:
    print("  " + e)
sys.exit(1 if errors or not clients else 0)
PY
}
played_at_least() { local p; p=$(R HGET "club:{$1}" played); [[ -n $p ]] && (($p >= $2)); }
# load_report NAME: one line of counters and failure reasons
load_report() {
    "$PY" -c 'import json,sys
c = json.load(open(sys.argv[1]))
print("  %s: ok=%d failed=%d retried=%d reasons=%s fail_times=%s" % (sys.argv[2], c["ok"], c["failed"],
      c["retried"], c["reasons"], c["fail_times"][:10]))' "$STATE/$1.json" "$1"
}
load_done() { [[ $(load_get "$1" "done") == True ]]; } # NAME: every client of it has finished
