#!/usr/bin/env bash
# The chess club's RabbitMQ restarted under load (issue 17): `club.sh restart rabbitmq` (a
# graceful stop; the node keeps its mnesia dir: the durable queue and its persistent jobs) while
# 2 HTTPS clients keep POSTing simuls through nginx -> HAProxy (each publish waits for the
# broker's confirm before the 202) and two masters play them with jobs unacked until the end.
#  - the web's publisher recovers: POSTs are confirmed (202) again after the restart;
#  - a POST that met the outage is answered 503 (the job not confirmed, the client told; the
#    simul marked failed): counted, with reasons; nothing is answered 202 and then lost;
#  - no job is lost: every simul answered 202 is played to its end (the masters' consumers
#    recover; jobs unacked when the broker went down are delivered again and resumed from Redis),
#    each with exactly its moves.
# Waits are on state, never on time. Usage: club_rabbitmq_restart_test.sh <build-dir>
set -u -o pipefail
BUILD=$(cd "${1:-/nonexistent}" 2>/dev/null && pwd)
# shellcheck source=tests/e2e/club_lib.sh
. "$(dirname "$0")/club_lib.sh"
club_require
export CLUB_WEB=2 CLUB_WORKERS=1 CLUB_MASTERS=2
club_start club_rabbitmq_restart

# A slow simul in hand at a master when the broker stops (its job unacked).
ID=$(post_simul 2 30 60)
[[ -n $ID ]] && pass "simul $ID started" || fail "POST /simuls"
load_start post post "$URL" --conns 2 --cacert "$CA"
need wait_for "10 POSTs confirmed" 60 load_at_least post ok 10
need wait_for "simul $ID under way" 60 played_at_least "$ID" 4
ok0=$(load_get post ok)
out=$(bash "$CLUB" restart rabbitmq 2>&1) && pass "RabbitMQ restarted after $ok0 confirmed POSTs: $out" ||
    { fail "restart: $out"; club_finish club_rabbitmq_restart; }
need wait_for "10 more POSTs confirmed after the restart" 60 load_at_least post ok $((ok0 + 10))
pass "the web's publisher recovered: POSTs confirmed again"
load_stop
load_report post
# simul_states IDS...: "finished failed ..." per id, and for each finished one whether its lists
# hold exactly boards x moves moves (one pipeline: hundreds of ids)
check_jobs() {
    "$PY" - "${RADDR%:*}" "${RADDR#*:}" "$STATE/post.json" "$ID" "$1" <<'PY'
import json, sys, redis
db = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), decode_responses=True)
c = json.load(open(sys.argv[3]))
ids = [int(sys.argv[4])] + c["ids"]
final = sys.argv[5] == "final"
p = db.pipeline()
for i in ids:
    p.hgetall(f"club:{{{i}}}")
hs = p.execute()
unfinished = [i for i, h in zip(ids, hs) if h.get("state") != "finished"]
if not final:
    sys.exit(1 if unfinished else 0)
bad = []
for i, h in zip(ids, hs):
    nb, mv = int(h["boards"]), int(h["moves"])
    lens = [db.llen(f"club:{{{i}}}:moves:{b}") for b in range(nb)]
    if lens != [mv] * nb or int(h["played"]) != nb * mv:
        bad.append(f"simul {i}: lists {lens}, played {h['played']}, want {nb} x {mv}")
print(f"  {len(ids)} simuls answered 202: {len(ids) - len(unfinished)} finished; "
      f"{c['failed']} POSTs failed: {c['reasons']}")
nxt = int(db.get("club:next"))
marked = [i for i in range(1, nxt + 1) if db.hget(f"club:{{{i}}}", "state") == "failed"]
print(f"  simuls marked failed in Redis: {marked} (each one a 503 its client saw)")
for e in bad + ([f"not finished: {unfinished}"] if unfinished else []):
    print("  " + e)
others = {r: n for r, n in c["reasons"].items() if not r.startswith("status 503")}
if others:
    print(f"  failures other than 503: {others}")
sys.exit(1 if bad or unfinished or others or len(marked) > c["failed"] else 0)
PY
}
wait_for "every simul answered 202 to be played" 90 check_jobs wait &&
    pass "no job lost: every simul answered 202 was played to its end"
check_jobs final && pass "each holds exactly its moves (none doubled by a redelivery); the POSTs that met the outage were answered 503 (not confirmed in time), none marked failed without its client told" ||
    fail "jobs after the RabbitMQ restart"
grep -h "resumed\|requeued\|consume:" "$STATE"/master*/err.log | sort | uniq -c | sed 's/^/  master: /' | head
club_finish club_rabbitmq_restart
