#!/usr/bin/env bash
# The chess club's first slice end to end (issue 17), on the stack examples/chess_club/club.sh
# starts (nginx TLS -> HAProxy -> club_web workers, Redis, RabbitMQ, two club_master processes):
#  1. a simul POSTed through nginx is played to the end by a master, and the moves its SSE stream
#     (also through nginx) delivered are exactly the moves stored in Redis, each board's in
#     order, none twice, none missing;
#  2. a master SIGKILLed mid-simul (chosen by the pid the simul's state names, once moves are
#     stored): RabbitMQ redelivers the unacked job, the other master resumes from Redis and
#     finishes it; every board has exactly its moves, the played counter matches (no move stored
#     twice), the survivor logs the resume, and the six SSE streams opened before the kill (over
#     both web instances: Redis shows one pattern subscription per web worker) all match.
# Every wait is for a state (bounded), never a sleep. The club is stopped and no process is left.
# Usage: club_simul_test.sh <build-dir>
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CLUB=$HERE/../../examples/chess_club/club.sh
for b in club_web club_master http_hello; do
    [[ -x $BUILD/examples/$b ]] || { echo "SKIP: $b not built"; exit 0; }
done
for t in nginx haproxy redis-server redis-cli curl; do
    command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || { echo "SKIP: $t missing"; exit 0; }
done
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || { echo "SKIP: rabbitmq-server missing"; exit 0; }

STATE=$(mktemp -d "${TMPDIR:-/tmp}/club_simul_test.XXXXXX") || exit 1
export CLUB_STATE=$STATE CLUB_BUILD=$BUILD CLUB_WEB=2 CLUB_WORKERS=2 CLUB_MASTERS=2
FAILURES=0
SSE_PIDS=()
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
cleanup() {
    local p
    for p in "${SSE_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    bash "$CLUB" stop >/dev/null 2>&1
    rm -rf "$STATE"
}
trap cleanup EXIT
wait_for() { # WHAT SECONDS COMMAND...
    local what=$1 end=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < end)) || { fail "gave up waiting for $what"; return 1; }
        sleep 0.05
    done
}

if ! out=$(bash "$CLUB" start 2>&1); then
    fail "club.sh start: $out"
    for f in "$STATE"/*/*.log; do echo "== $f"; tail -5 "$f"; done
    exit 1
fi
URL=$(echo "$out" | grep -o 'https://[0-9.:]*/' | head -1)
CA=$STATE/nginx/cert.pem
RADDR=$(awk '$1 == "redis" {print $2}' "$STATE/procs")
R() { redis-cli -h "${RADDR%:*}" -p "${RADDR#*:}" --raw "$@"; }
status=$(bash "$CLUB" status)
nmaster=$(echo "$status" | grep -c '^master .*pid=[0-9]*$')
((nmaster == 2)) && pass "status lists 2 masters" || fail "status: $status"

post() { # BOARDS MOVES PACE_MS -> the id
    curl -sS --max-time 30 --cacert "$CA" -H 'Content-Type: application/json' \
        -d "{\"boards\":$1,\"moves\":$2,\"pace_ms\":$3}" -w '\n%{http_code}\n' "${URL}simuls"
}
sse_open() { # ID FILE: the stream through nginx, in the background until its end event
    curl -sS -N --max-time 120 --cacert "$CA" -D "$2.head" "${URL}simuls/$1/events" >"$2" 2>"$2.err" &
    SSE_PIDS+=($!)
}
sse_ended() { grep -q '^event: end' "$1"; }
state_is() { [[ $(R HGET "club:{$1}" state) == "$2" ]]; }

# check ID FILE BOARDS MOVES: SSE moves == Redis lists, and each list is complete
check() {
    local id=$1 file=$2 boards=$3 moves=$4 b
    local redis_json="{"
    for ((b = 0; b < boards; b++)); do
        redis_json+="\"$b\": [$(R LRANGE "club:{$id}:moves:$b" 0 -1 | sed 's/.*/"&"/' | paste -sd,)],"
    done
    redis_json="${redis_json%,}}"
    /usr/bin/python3 - "$file" "$boards" "$moves" "$redis_json" "$(R HGET "club:{$id}" played)" <<'PY'
import json, sys
path, boards, moves, redis_json, played = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
redis = {int(k): v for k, v in json.loads(redis_json).items()}
seen = {b: [] for b in range(boards)}
live = 0
event = None
errors = []
for line in open(path, encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("event: "):
        event = line[7:]
    elif line.startswith("data: ") and event == "move":
        d = json.loads(line[6:])
        b, n = d["board"], d["n"]
        if n != len(seen[b]) + 1:
            errors.append(f"board {b}: event n={n} after {len(seen[b])} moves")
        seen[b].append(d["move"])
        live += "fen" in d
for b in range(boards):
    if len(redis[b]) != moves:
        errors.append(f"board {b}: Redis holds {len(redis[b])} moves, not {moves}")
    if seen[b] != redis[b]:
        errors.append(f"board {b}: SSE {seen[b]} != Redis {redis[b]}")
if int(played) != boards * moves:
    errors.append(f"played={played}, not {boards * moves}")
total = sum(len(v) for v in seen.values())
print(f"  {total} moves over SSE ({live} live from pub/sub, {total - live} caught up from Redis)")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY
}

# ---- 1. a simul through the whole stack ----------------------------------------------------
resp=$(post 4 12 20)
code=$(echo "$resp" | tail -1)
ID=$(echo "$resp" | head -1 | sed -n 's/^{"id":\([0-9]*\)}$/\1/p')
[[ $code == 202 && -n $ID ]] && pass "POST /simuls through nginx -> haproxy -> web: 202 id=$ID" ||
    fail "POST /simuls: $resp"
sse_open "$ID" "$STATE/sse1"
wait_for "simul $ID to end" 60 state_is "$ID" finished && pass "a master played simul $ID to its end"
wait_for "SSE of simul $ID to end" 30 sse_ended "$STATE/sse1" && pass "the SSE stream ended with the simul"
grep -qi '^content-type: text/event-stream' "$STATE/sse1.head" && pass "SSE content type through nginx" ||
    fail "SSE head: $(cat "$STATE/sse1.head")"
if check "$ID" "$STATE/sse1" 4 12; then pass "SSE moves match Redis (4 boards x 12 moves)"; else fail "SSE vs Redis"; fi
body=$(curl -sS --max-time 20 --cacert "$CA" "${URL}simuls/$ID")
echo "$body" | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["state"] == "finished" and v["played"] == 48 and len(v["boards"]) == 4, v
assert all(b["n"] == 12 == len(b["moves"]) and b["fen"] for b in v["boards"]), v' &&
    pass "GET /simuls/$ID: finished, 4 boards of 12 moves" || fail "GET /simuls/$ID: $body"

# bad input
for bad in '{"boards":0,"moves":5}' '{"boards":65,"moves":5}' '{"boards":2}' '{"boards":"2","moves":5}' \
    '{"boards":2,"moves":5,"pace_ms":-1}' 'not json' '[1,2]'; do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CA" -d "$bad" "${URL}simuls")
    [[ $c == 400 ]] || fail "POST $bad: $c, not 400"
done
pass "bad POST bodies answered 400"
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CA" "${URL}simuls/999999")
[[ $c == 404 ]] && pass "unknown simul: 404" || fail "unknown simul: $c"
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CA" "${URL}simuls/999999/events")
[[ $c == 404 ]] && pass "unknown simul's events: 404" || fail "unknown simul's events: $c"

# ---- 2. a master killed mid-simul -------------------------------------------------------------
resp=$(post 2 40 40)
ID2=$(echo "$resp" | head -1 | sed -n 's/^{"id":\([0-9]*\)}$/\1/p')
[[ -n $ID2 ]] || fail "POST for the kill test: $resp"
sse_open "$ID2" "$STATE/sse2"
# More watchers of the same simul, spread by HAProxy over the web processes: Redis still sees one
# pattern subscriber per web worker (4), whatever the number of SSE clients.
for k in 1 2 3 4 5; do sse_open "$ID2" "$STATE/sse2.$k"; done
sse_up() { grep -q '^HTTP/1.1 200' "$1.head" 2>/dev/null; }
for k in "" .1 .2 .3 .4 .5; do wait_for "SSE client$k" 30 sse_up "$STATE/sse2$k"; done
nsub=$(R CLIENT LIST | grep -c 'name=club_web_sub .*psub=1 ')
((nsub == 4)) && pass "6 SSE clients, 4 pattern subscriptions in Redis (one per web worker)" ||
    fail "$nsub pattern subscribers for 4 web workers: $(R CLIENT LIST | grep club_web)"
played_at_least() { local p; p=$(R HGET "club:{$1}" played); [[ -n $p ]] && (($p >= $2)); }
if wait_for "simul $ID2 to be under way" 60 played_at_least "$ID2" 10; then
    victim=$(R HGET "club:{$ID2}" master)
    before=$(R HGET "club:{$ID2}" played)
    if [[ -n $victim ]] && awk '$1 == "master" {print $3}' "$STATE/procs" | grep -qx "$victim"; then
        kill -KILL "$victim"
        pass "SIGKILLed master $victim at $before of 80 moves"
        wait_for "simul $ID2 to end elsewhere" 90 state_is "$ID2" finished &&
            pass "simul $ID2 finished after the kill"
        after=$(R HGET "club:{$ID2}" master)
        [[ $after != "$victim" ]] && pass "another master ($after) finished it" || fail "master still $after"
        grep -q "simul $ID2 ended (resumed)" "$STATE"/master*/err.log &&
            pass "the survivor resumed the redelivered job" || fail "no resume in the masters' logs"
        wait_for "SSE of simul $ID2 to end" 30 sse_ended "$STATE/sse2"
        if check "$ID2" "$STATE/sse2" 2 40; then
            pass "consistent after the kill: 2 x 40 moves, none twice, none lost; SSE matches Redis"
        else
            fail "inconsistent after the kill"
        fi
        for k in 1 2 3 4 5; do
            wait_for "SSE client $k of simul $ID2 to end" 30 sse_ended "$STATE/sse2.$k" &&
                check "$ID2" "$STATE/sse2.$k" 2 40 >/dev/null || fail "SSE client $k of simul $ID2"
        done
        pass "every other SSE client of simul $ID2 got the same moves"
    else
        fail "simul $ID2 names master '$victim', not one of the club's"
    fi
fi

# ---- stop: nothing left --------------------------------------------------------------------------
PIDS=$(bash "$CLUB" status | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
if bash "$CLUB" stop >/dev/null; then pass "stop"; else fail "stop"; fi
left=""
for p in $PIDS; do
    st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
    [[ -n $st && $st != Z ]] && left+=" $p($(cat /proc/$p/comm 2>/dev/null))"
done
[[ -z $left ]] && pass "stop left no process" || fail "left:$left"
pgrep -f "$STATE" >/dev/null && fail "a process still mentions $STATE"

echo "club_simul: $FAILURES failure(s)"
((FAILURES == 0))
