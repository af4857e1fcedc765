#!/usr/bin/env bash
# The chess club's rolling reload under steady load (issue 17): each web instance's supervisor
# gets SIGHUP in turn (instance 1 only once instance 0 reloaded), so every web worker is replaced
# by a new generation, ready before the old one retires, while 8 HTTPS clients GET through
# nginx -> HAProxy, one client POSTs new simuls and 4 SSE watchers follow a simul being played.
# Zero failed requests (GET or POST); every worker pid is new; the SSE watchers whose worker
# retired reconnect and end with exactly the moves in Redis; every simul POSTed is played.
# Waits are on state (the supervisor's "reloaded", requests answered), never on time.
# Usage: club_reload_test.sh <build-dir>
set -u -o pipefail
BUILD=$(cd "${1:-/nonexistent}" 2>/dev/null && pwd)
# shellcheck source=tests/e2e/club_lib.sh
. "$(dirname "$0")/club_lib.sh"
club_require
export CLUB_WEB=2 CLUB_WORKERS=2 CLUB_MASTERS=1
club_start club_reload

DONE=$(post_simul 2 4 0)
need wait_for "simul $DONE to end" 30 state_is "$DONE" finished
ID=$(post_simul 2 40 80)
[[ -n $DONE && -n $ID ]] && pass "simuls $DONE (finished) and $ID (playing) started" || fail "POST /simuls"
load_start get get "$URL" /json "/simuls/$DONE" /simuls --conns 8 --cacert "$CA"
load_start post post "$URL" --conns 1 --cacert "$CA"
load_start sse sse "$URL" "$ID" --conns 4 --cacert "$CA"
need load_more get 200
before=$(for i in 0 1; do web_pids $i | cut -d' ' -f2-; done | tr ' ' '\n' | sort)

for i in 0 1; do
    read -r sup _ <<<"$(web_pids $i)"
    kill -HUP "$sup"
    need wait_for "instance $i to reload" 60 grep -q "reloaded" "$STATE/web$i/err.log"
    need load_more get 200
    pass "instance $i reloaded (generation 2 ready, generation 1 retiring) under load"
done
after=$(for i in 0 1; do web_pids $i | cut -d' ' -f2-; done | tr ' ' '\n' | sort)
[[ -n $after && -z $(comm -12 <(echo "$before") <(echo "$after")) && $(echo "$after" | wc -l) == 4 ]] &&
    pass "all 4 web workers replaced ($(echo $before) -> $(echo $after))" ||
    fail "workers before: $before; after: $after"
need wait_for "simul $ID to end" 90 state_is "$ID" finished
need wait_for "the SSE watchers to end" 60 load_done sse
load_stop
load_report get
load_report post
[[ $(load_get get failed) == 0 && $(load_get get ok) -gt 400 ]] && pass "GET: 0 failed requests through the rolling reload" ||
    fail "GET: $(load_get get failed) failed"
[[ $(load_get post failed) == 0 && $(load_get post ok) -gt 0 ]] && pass "POST: 0 failed through the rolling reload" ||
    fail "POST: $(load_get post failed) failed"
sse_check sse "$ID" 2 40 && pass "the SSE watchers of simul $ID ended with Redis' exact moves" ||
    fail "SSE across the reload"
ids=$("$PY" -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["ids"])))' "$STATE/post.json")
all_finished() { local i; for i in $ids; do state_is "$i" finished || return 1; done; }
wait_for "the $(echo $ids | wc -w) POSTed simuls to be played" 60 all_finished &&
    pass "every simul POSTed during the reload was played to its end"
club_finish club_reload
