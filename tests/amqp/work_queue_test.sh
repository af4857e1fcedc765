#!/usr/bin/env bash
# work_queue_test.sh — end-to-end test of examples/amqp_work_queue against the suite's broker
# (fixture amqp_broker): publish N persistent messages with confirms, consume them with a
# prefetch, and the two checksums and counts agree; then the same with a consumer started first
# (it waits for the publisher) and bad usage refused.
# Usage: work_queue_test.sh <example-binary> <broker.sh> <state-dir>
set -u -o pipefail
EX=$1 SH=$2 ST=$3
PORT=$(bash "$SH" port "$ST") || { echo "FAIL: no broker"; exit 1; }
URL="amqp://guest:guest@127.0.0.1:$PORT/"
Q="simul-e2e-$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/amqp_wq.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
val() { sed -n "s/^$1=//p" "$2" | tail -n 1; }

timeout 120 "$EX" --url "$URL" publish --queue "$Q" --count 20000 --size 1024 >"$WORK/pub" 2>&1
[[ $? -eq 0 ]] && pass "publish exits 0" || { fail "publish"; cat "$WORK/pub"; }
[[ $(val confirmed "$WORK/pub") == 20000 ]] && pass "confirmed=20000" || fail "confirmed: $(val confirmed "$WORK/pub")"
timeout 120 "$EX" --url "$URL" consume --queue "$Q" --count 20000 --prefetch 50 >"$WORK/con" 2>&1
[[ $? -eq 0 ]] && pass "consume exits 0" || { fail "consume"; cat "$WORK/con"; }
[[ $(val consumed "$WORK/con") == 20000 ]] && pass "consumed=20000" || fail "consumed: $(val consumed "$WORK/con")"
[[ -n $(val checksum "$WORK/pub") && $(val checksum "$WORK/pub") == $(val checksum "$WORK/con") ]] \
    && pass "checksums agree ($(val checksum "$WORK/pub"))" || fail "checksums $(val checksum "$WORK/pub") vs $(val checksum "$WORK/con")"

# The consumer first: it waits for messages while the publisher runs (sizes that need several
# frames, and empty bodies).
for size in 0 300000; do
    timeout 120 "$EX" --url "$URL" consume --queue "$Q" --count 50 --prefetch 3 >"$WORK/con2" 2>&1 &
    CPID=$!
    timeout 120 "$EX" --url "$URL" publish --queue "$Q" --count 50 --size $size --window 7 >"$WORK/pub2" 2>&1
    wait $CPID
    RC=$?
    [[ $RC -eq 0 && $(val consumed "$WORK/con2") == 50 && $(val checksum "$WORK/pub2") == $(val checksum "$WORK/con2") ]] \
        && pass "size $size: consumer first, 50 messages, checksums agree" \
        || { fail "size $size"; cat "$WORK/pub2" "$WORK/con2"; }
done

"$EX" --url "$URL" publish --count 3 >/dev/null 2>&1
[[ $? -eq 2 ]] && pass "missing --queue: usage error" || fail "missing --queue"
"$EX" --url "amqp://guest:nope@127.0.0.1:$PORT/" publish --queue "$Q" --count 1 >/dev/null 2>"$WORK/err"
[[ $? -eq 1 ]] && grep -q "Permission denied\|denied\|EACCES" "$WORK/err" && pass "bad password refused" || { fail "bad password"; cat "$WORK/err"; }

# amqps: the same over the broker's TLS listener, verified with its CA; then logged in by the
# client certificate (EXTERNAL, user simul-ext); a CA that did not sign it is refused with why.
TPORT=$(bash "$SH" tlsport "$ST")
PKI=$(bash "$SH" dir "$ST")/tls
TURL="amqps://guest:guest@localhost:$TPORT/"
timeout 60 "$EX" --url "$TURL" --cacert "$PKI/ca.crt" publish --queue "$Q" --count 200 >"$WORK/tpub" 2>&1
timeout 60 "$EX" --url "$TURL" --cacert "$PKI/ca.crt" consume --queue "$Q" --count 200 >"$WORK/tcon" 2>&1
[[ $(val confirmed "$WORK/tpub") == 200 && $(val checksum "$WORK/tpub") == $(val checksum "$WORK/tcon") ]] \
    && pass "amqps: 200 messages, checksums agree" || { fail "amqps"; cat "$WORK/tpub" "$WORK/tcon"; }
bash "$SH" ctl "$ST" add_user simul-ext unused >/dev/null 2>&1
bash "$SH" ctl "$ST" set_permissions -p / simul-ext '.*' '.*' '.*' >/dev/null 2>&1
timeout 60 "$EX" --url "amqps://localhost:$TPORT/" --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" \
    --key "$PKI/client.key" --external publish --queue "$Q" --count 5 >"$WORK/epub" 2>&1
[[ $(val confirmed "$WORK/epub") == 5 ]] && pass "amqps EXTERNAL publish" || { fail "EXTERNAL"; cat "$WORK/epub"; }
timeout 60 "$EX" --url "$TURL" --cacert "$PKI/otherca.crt" publish --queue "$Q" --count 1 >/dev/null 2>"$WORK/terr"
[[ $? -eq 1 ]] && grep -q "certificate verify failed" "$WORK/terr" && pass "wrong CA refused with the reason" \
    || { fail "wrong CA"; cat "$WORK/terr"; }

# Leave no queue behind.
/usr/bin/python3 - "$PORT" "$Q" <<'PY' || fail "queue cleanup"
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
c.channel().queue_delete(sys.argv[2])
c.close()
PY
exit $((FAILURES > 0))
