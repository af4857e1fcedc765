#!/usr/bin/env bash
# End-to-end test of examples/redis_counter: 1,000 tasks INCR one key 100 times each over one
# connection to a real redis-server (started here on a free loopback port and a Unix socket in a
# temp dir, stopped on exit) and the final value is exactly 100,000; the same over the socket.
# Usage: redis_counter_test.sh <build-dir>   (runs <build-dir>/examples/redis_counter)
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage; prints SKIP
# and exits 0 when redis-server is not installed or the example was not built.
set -u -o pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
COUNTER=$1/examples/redis_counter
# shellcheck source=lib_redis.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_redis.sh"
redis_e2e_start "$COUNTER" redis_counter_test

val() { sed -n "s/^$1=//p" "$WORK/out" | tail -n 1; }

timeout --kill-after=5 120 "$COUNTER" --url "redis://127.0.0.1:$PORT" --tasks 1000 --incr 100 \
    --key K >"$WORK/out" 2>"$WORK/err"
RC=$?
cat "$WORK/out"
if [[ $RC -eq 0 && $(val total) == 100000 ]]; then pass "tcp: total=100000"; else
    fail "tcp: rc=$RC total=$(val total) $(cat "$WORK/err")"; fi
# Fewer writes than commands: the connection pipelines what the tasks issue in one pass.
if [[ -n $(val writes) && $(val writes) -lt $(val commands) ]]; then
    pass "tcp: writes=$(val writes) < commands=$(val commands)"
else fail "tcp: writes=$(val writes) commands=$(val commands)"; fi

timeout --kill-after=5 120 "$COUNTER" --url "unix://$WORK/redis.sock" --tasks 50 --incr 20 \
    --key U >"$WORK/out" 2>"$WORK/err"
RC=$?
if [[ $RC -eq 0 && $(val total) == 1000 ]]; then pass "unix: total=1000"; else
    fail "unix: rc=$RC total=$(val total) $(cat "$WORK/err")"; fi

timeout --kill-after=5 30 "$COUNTER" --url "redis://127.0.0.1:$PORT" --bogus >/dev/null 2>&1
if [[ $? -eq 2 ]]; then pass "usage error exits 2"; else fail "usage error"; fi

[[ $FAILURES -eq 0 ]]
