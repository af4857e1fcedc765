#!/usr/bin/env bash
# The chess club under steady load (issue 17): a web process dies, then a whole web instance.
# Load: 8 keep-alive HTTPS clients through nginx -> HAProxy GETting /json and a simul's state
# (Redis), plus 4 SSE watchers of a simul being played.
#  1. SIGKILL one worker of instance 0: its supervisor starts another, HAProxy retries what was
#     in flight on it (retry-on empty-response): no request fails.
#  2. SIGKILL instance 1 whole (its supervisor and workers: the "host" is gone): HAProxy marks it
#     DOWN and routes around it. Failures are counted with their reasons and must not exceed the
#     requests that could be in flight (one per load connection); HAProxy's retries and
#     redispatches for it are reported. The SSE watchers it served reconnect to instance 0 and
#     end with exactly the moves in Redis.
# Waits are on state (requests answered, HAProxy's view, the simul's progress), never on time.
# Usage: club_kill_web_test.sh <build-dir>
set -u -o pipefail
BUILD=$(cd "${1:-/nonexistent}" 2>/dev/null && pwd)
# shellcheck source=tests/e2e/club_lib.sh
. "$(dirname "$0")/club_lib.sh"
club_require
export CLUB_WEB=2 CLUB_WORKERS=2 CLUB_MASTERS=1
club_start club_kill_web
CONNS=8

DONE=$(post_simul 2 4 0)
wait_for "simul $DONE to end" 30 state_is "$DONE" finished
ID=$(post_simul 2 40 100)
[[ -n $DONE && -n $ID ]] && pass "simuls $DONE (finished) and $ID (playing) started" || fail "POST /simuls"
load_start get get "$URL" /json "/simuls/$DONE" --conns $CONNS --cacert "$CA"
load_start sse sse "$URL" "$ID" --conns 4 --cacert "$CA"
need load_more get 200 && pass "steady load: 200 requests answered"

# ---- 1. one worker -----------------------------------------------------------------------------
read -r sup0 w0 _ <<<"$(web_pids 0)"
f0=$(load_get get failed)
kill -KILL "$w0"
wait_for "a new worker in instance 0" 30 grep -q "killed by signal 9" "$STATE/web0/err.log"
workers_back() { (($(pgrep -P "$sup0" | grep -vcx "$w0") == 2)); }
wait_for "instance 0 to have 2 workers again" 30 workers_back
load_more get 200
f1=$(load_get get failed)
((f1 == f0)) && pass "worker $w0 SIGKILLed: restarted by its supervisor, 0 failed requests" ||
    fail "worker kill: $((f1 - f0)) failed"

# ---- 2. a whole instance --------------------------------------------------------------------------
wait_for "simul $ID under way" 60 played_at_least "$ID" 4
read -r -a pids1 <<<"$(web_pids 1)"
scur=$(ha_stat web1 scur)
kill -KILL "${pids1[@]}"
echo "  killed instance 1 (pids ${pids1[*]}) with $scur connections open on it (HAProxy scur)"
need wait_for "HAProxy to mark web1 DOWN" 30 ha_is web1 0 && pass "HAProxy marked the killed instance DOWN"
load_more get 300 && pass "300 more requests answered after it went DOWN"
f2=$(load_get get failed)
echo "  HAProxy for web1: retries wretr=$(ha_stat web1 wretr) redispatches wredis=$(ha_stat web1 wredis) eresp=$(ha_stat web1 eresp) econ=$(ha_stat web1 econ)"
load_report get
lost=$((f2 - f1))
((lost <= CONNS)) && pass "instance killed: $lost failed requests, within the $CONNS that can be in flight" ||
    fail "instance killed: $lost failed requests, more than the $CONNS in flight"
wait_for "simul $ID to end" 90 state_is "$ID" finished
wait_for "the SSE watchers to end" 60 load_done sse
load_stop
sse_check sse "$ID" 2 40 && pass "the SSE watchers of simul $ID ended with Redis' exact moves" ||
    fail "SSE after the kill"
load_report get
club_finish club_kill_web
