#!/usr/bin/env bash
# The chess club's Redis restarted under load (issue 17): `club.sh restart redis` (a graceful
# stop: Redis writes its append-only file; the same server again on the same port) while 8 HTTPS
# clients GET a simul's state and /json through nginx -> HAProxy, 4 SSE watchers follow a simul
# being played, and a master plays it.
#  - the web workers' connections reconnect (requests are answered again, and after that none
#    fails) and their pattern subscriptions are replayed (Redis lists one per web worker again);
#  - requests that needed Redis while it was down are counted with their reasons: only answers
#    of the Redis-backed path (503 "redis unavailable"), never /json;
#  - the simul is played to its end with no move lost or doubled (each board exactly its moves,
#    `played` equal to their sum), and every SSE watcher ends with exactly Redis' moves;
#  - what was stored before the restart is still there (the append-only file).
# Waits are on state, never on time. Usage: club_redis_restart_test.sh <build-dir>
set -u -o pipefail
BUILD=$(cd "${1:-/nonexistent}" 2>/dev/null && pwd)
# shellcheck source=tests/e2e/club_lib.sh
. "$(dirname "$0")/club_lib.sh"
club_require
export CLUB_WEB=2 CLUB_WORKERS=2 CLUB_MASTERS=1
club_start club_redis_restart

DONE=$(post_simul 2 4 0)
need wait_for "simul $DONE to end" 30 state_is "$DONE" finished
ID=$(post_simul 2 40 80)
[[ -n $DONE && -n $ID ]] && pass "simuls $DONE (finished) and $ID (playing) started" || fail "POST /simuls"
load_start get get "$URL" /json "/simuls/$DONE" --conns 8 --cacert "$CA"
load_start sse sse "$URL" "$ID" --conns 4 --cacert "$CA"
need load_more get 200
subscribers() { [[ $(R CLIENT LIST 2>/dev/null | grep -c 'name=club_web_sub .*psub=1 ') == "$1" ]]; }
need wait_for "4 pattern subscribers" 30 subscribers 4
need wait_for "simul $ID under way" 60 played_at_least "$ID" 6
at=$(R HGET "club:{$ID}" played)
out=$(bash "$CLUB" restart redis 2>&1) && pass "Redis restarted at move $at of 80: $out" || { fail "restart: $out"; club_finish club_redis_restart; }
need wait_for "the web workers to subscribe again" 30 subscribers 4
pass "Redis lists 4 pattern subscribers again (one per web worker: replayed after the reconnection)"
need load_more get 200
f1=$(load_get get failed)
need load_more get 300
f2=$(load_get get failed)
((f2 == f1)) && pass "clients reconnected: after the first answers, 300 more requests and no failure" ||
    fail "$((f2 - f1)) failures after the reconnection"
need wait_for "simul $ID to end" 90 state_is "$ID" finished
need wait_for "the SSE watchers to end" 60 load_done sse
load_stop
load_report get
"$PY" - "$STATE/get.json" "$DONE" <<'PY' && pass "failures during the outage: only the Redis-backed path (503), none on /json" || fail "unexplained failures"
import json, sys
c = json.load(open(sys.argv[1]))
bad = {r: n for r, n in c["reasons"].items() if r != "status 503 on /simuls/" + sys.argv[2]}
print(f"  {c['failed']} requests failed while Redis was down, of {c['ok'] + c['failed']}; others: {bad}")
sys.exit(1 if bad else 0)
PY
sse_check sse "$ID" 2 40 && pass "no move lost or doubled: 2 x 40 in Redis, played=80, every SSE watcher equal" ||
    fail "moves after the Redis restart"
state_is "$DONE" finished && [[ $(R LLEN "club:{$DONE}:moves:1") == 4 ]] &&
    pass "simul $DONE, stored before the restart, is still there (append-only file)" || fail "simul $DONE lost"
grep -h "requeued\|resumed" "$STATE"/master*/err.log | sed 's/^/  master: /'
club_finish club_redis_restart
