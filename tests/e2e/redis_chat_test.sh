#!/usr/bin/env bash
# End-to-end test of examples/redis_chat: bob joins a room and waits for three messages; alice
# says three lines from stdin; bob prints them in order (not his own), carol joining later sees
# them as history; a usage error exits 2. A real redis-server, started here on a free port.
# Usage: redis_chat_test.sh <build-dir>   (runs <build-dir>/examples/redis_chat)
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage; prints SKIP
# and exits 0 when redis-server is not installed or the example was not built.
set -u -o pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
CHAT=$1/examples/redis_chat
# shellcheck source=lib_redis.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_redis.sh"
redis_e2e_start "$CHAT" redis_chat_test
URL="redis://127.0.0.1:$PORT"

# bob: joins, stays until three messages from others arrived (bounded by --timeout).
timeout --kill-after=5 60 "$CHAT" --url "$URL" --room lobby --name bob --expect 3 --timeout 30 \
    </dev/null >"$WORK/bob.out" 2>"$WORK/bob.err" &
BOB=$!
for _ in $(seq 1 3000); do # until bob is subscribed (a state, not a sleep for its own sake)
    grep -q '^joined lobby as bob$' "$WORK/bob.out" 2>/dev/null && break
    kill -0 "$BOB" 2>/dev/null || break
    sleep 0.01
done
if grep -q '^joined lobby as bob$' "$WORK/bob.out"; then pass "bob joined"; else
    fail "bob did not join: $(cat "$WORK/bob.err")"; fi

printf 'hello\nhow are you?\n\nbye\n' |
    timeout --kill-after=5 60 "$CHAT" --url "$URL" --room lobby --name alice >"$WORK/alice.out" \
        2>"$WORK/alice.err"
RC=$?
if [[ $RC -eq 0 ]] && grep -q '^sent=3 ' "$WORK/alice.out"; then pass "alice sent 3 (the empty line skipped)"
else fail "alice: rc=$RC $(cat "$WORK/alice.out" "$WORK/alice.err")"; fi

wait "$BOB"
RC=$?
cat "$WORK/bob.out"
GOT=$(grep '^alice: ' "$WORK/bob.out" | tr '\n' '|')
if [[ $RC -eq 0 && $GOT == 'alice: hello|alice: how are you?|alice: bye|' ]]; then
    pass "bob received alice's three lines in order"
else fail "bob: rc=$RC got '$GOT' $(cat "$WORK/bob.err")"; fi
if grep -q '^sent=0 received=3 dropped=0$' "$WORK/bob.out"; then pass "bob: received=3 dropped=0"
else fail "bob's summary: $(tail -n 1 "$WORK/bob.out")"; fi
if grep -q '^alice: ' "$WORK/alice.out"; then fail "alice saw her own lines"; else
    pass "alice did not print her own lines"; fi

# carol joins later: the history holds the room's last lines.
timeout --kill-after=5 60 "$CHAT" --url "unix://$WORK/redis.sock" --room lobby --name carol \
    --history 2 </dev/null >"$WORK/carol.out" 2>"$WORK/carol.err"
RC=$?
HIST=$(grep '^history: ' "$WORK/carol.out" | tr '\n' '|')
if [[ $RC -eq 0 && $HIST == 'history: alice: how are you?|history: alice: bye|' ]]; then
    pass "carol (over the Unix socket) sees the last 2 lines as history"
else fail "carol: rc=$RC history '$HIST' $(cat "$WORK/carol.err")"; fi

# A room nobody speaks in: --expect ends with the timeout, exit 1.
timeout --kill-after=5 60 "$CHAT" --url "$URL" --room quiet --name dave --expect 1 \
    --timeout 0.2 </dev/null >/dev/null 2>"$WORK/dave.err"
if [[ $? -eq 1 ]]; then pass "timeout waiting for messages exits 1"; else fail "dave"; fi

timeout --kill-after=5 30 "$CHAT" --url "$URL" --room x >/dev/null 2>&1
if [[ $? -eq 2 ]]; then pass "usage error exits 2"; else fail "usage error"; fi

[[ $FAILURES -eq 0 ]]
