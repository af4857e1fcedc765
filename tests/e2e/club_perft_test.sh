#!/usr/bin/env bash
# End-to-end test of club_web's CPU-bound endpoint GET /perft (examples/chess_club/analysis.c):
# the published perft counts (initial position to depth 4, Kiwipete to depth 3) through HTTP, bad
# input answered 400 with a reason, the budget (422) and the queue bound (503), the loop free
# while a walk runs, and a client that leaves stopping its walk (the worker logs how far it got).
# Needs redis-server (club_web connects to Redis at start); no broker, no proxies.
# Usage: club_perft_test.sh <build-dir>; PASS/FAIL lines, exit 1 on any failure, SKIP if missing.
set -u -o pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
WEB=$1/examples/club_web
# shellcheck source=lib_redis.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_redis.sh"
command -v curl >/dev/null || { echo "SKIP: curl missing"; exit 0; }
redis_e2e_start "$WEB" club_perft_test
RPORT=$PORT
WEB_PIDS=()
BG=()
cleanup() {
    local p
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for p in "${WEB_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    redis_e2e_cleanup
}
trap cleanup EXIT

# wait_for WHAT SECONDS COMMAND...: polls the state until COMMAND succeeds (bounded)
wait_for() {
    local what=$1 end=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < end)) || { fail "gave up waiting for $what"; return 1; }
        sleep 0.05
    done
}

# start_web NAME [ENV=VALUE...]: one supervised worker; sets WP (its port) and the log $WORK/NAME.err
start_web() {
    local name=$1
    shift
    env "$@" "$WEB" --host 127.0.0.1 --port 0 --workers 1 --redis "127.0.0.1:$RPORT" \
        --stop-timeout 2 >/dev/null 2>"$WORK/$name.err" &
    WEB_PIDS+=($!)
    wait_for "$name ready" 30 grep -q "gen=1 ready" "$WORK/$name.err" || exit 1
    WP=$(sed -n 's/.*workers on port \([0-9]*\).*/\1/p' "$WORK/$name.err" | head -1)
}

START='rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1'
KIWIPETE='r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq -'

# get PORT FEN DEPTH: prints "<status> <body>"
get() {
    local args=(-sS --max-time 60 -o "$WORK/body" -w '%{http_code}' -G)
    [[ -n $2 ]] && args+=(--data-urlencode "fen=$2")
    [[ -n $3 ]] && args+=(--data-urlencode "depth=$3")
    local code
    code=$(curl "${args[@]}" "http://127.0.0.1:$1/perft")
    echo "$code $(cat "$WORK/body")"
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null; }

start_web main
MAIN=$WP

# ---- the published counts -----------------------------------------------------------------
check_count() { # NAME FEN DEPTH WANT
    local out code body
    out=$(get "$MAIN" "$2" "$3")
    code=${out%% *} body=${out#* }
    if [[ $code == 200 && $(field "$body" nodes) == "$4" && $(field "$body" depth) == "$3" &&
          $(field "$body" fen) == "$2" ]]; then
        pass "$1 depth $3: $4"
    else fail "$1 depth $3: want 200 nodes=$4, got $out"; fi
}
check_count start "$START" 1 20
check_count start "$START" 2 400
check_count start "$START" 3 8902
check_count start "$START" 4 197281
check_count kiwipete "$KIWIPETE" 1 48
check_count kiwipete "$KIWIPETE" 2 2039
check_count kiwipete "$KIWIPETE" 3 97862
out=$(curl -sS --max-time 30 "http://127.0.0.1:$MAIN/perft?depth=2")
[[ $(field "$out" nodes) == 400 && $(field "$out" fen) == "$START" ]] &&
    pass "fen left out: the initial position" || fail "fen left out: $out"

# ---- bad input: 400 with a reason ------------------------------------------------------------
check_400() { # WHAT FEN DEPTH WORD-IN-THE-REASON
    local out code body
    out=$(get "$MAIN" "$2" "$3")
    code=${out%% *} body=${out#* }
    if [[ $code == 400 && $(field "$body" error) == *"$4"* ]]; then pass "400 for $1"
    else fail "$1: want 400 with '$4', got $out"; fi
}
check_400 "no depth" "$START" "" depth
check_400 "depth 0" "$START" 0 depth
check_400 "depth 6 (over the cap)" "$START" 6 depth
check_400 "depth 05" "$START" 05 depth
check_400 "depth 2x" "$START" 2x depth
check_400 "depth -1" "$START" -1 depth
check_400 "a FEN of garbage" "hello" 2 "bad fen"
check_400 "an empty FEN" " " 2 "bad fen"
check_400 "a FEN of 300 bytes" "$(printf 'r%.0s' {1..300})" 2 "fen-too-long"
check_400 "a FEN without kings" "8/8/8/8/8/8/8/8 w - -" 2 "fen-kings"
check_400 "a FEN whose side that moved is in check" "4k3/8/8/8/8/8/8/4K2r b - -" 2 "fen-side-not-to-move-in-check"
check_400 "a FEN with a pawn on the last rank" "P3k3/8/8/8/8/8/8/4K3 w - -" 2 "fen-pawns"
check_400 "a FEN with 9 files on a rank" "rnbqkbnr/pppppppp/9/8/8/8/PPPPPPPP/RNBQKBNR w KQkq -" 2 "fen-board"
check_400 "a FEN with a castling right whose rook moved" "4k3/8/8/8/8/8/8/4K3 w K -" 2 "fen-castling"
# A NUL inside: the decoded value ends there (or the query is refused): never a 200.
code=$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' \
    "http://127.0.0.1:$MAIN/perft?fen=rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR%00%20w%20KQkq%20-&depth=2")
[[ $code == 400 ]] && pass "a FEN with a NUL byte: 400 ($(cat "$WORK/body"))" || fail "a FEN with a NUL byte: $code"
code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MAIN/perft?depth=%zz")
[[ $code == 400 ]] && pass "a bad percent escape: 400" || fail "a bad percent escape: $code"
code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MAIN/perft?depth=2")
[[ $code == 405 ]] && pass "POST /perft: 405" || fail "POST /perft: $code"

# ---- the loop stays free while a walk runs; a client that leaves stops its walk ---------------
# Kiwipete at depth 5 would expand ~4.2 million positions; the default budget stops it after
# 250,000 (~1-2 s of CPU): far longer than the checks below take, so it is still running while
# we look (the CPU it has used is the state we wait for).
curl -sS --max-time 60 -o "$WORK/long.out" -G --data-urlencode "fen=$KIWIPETE" --data-urlencode depth=5 \
    "http://127.0.0.1:$MAIN/perft" &
LONG=$!
BG+=($LONG)
busy() { [[ $(cut -d' ' -f14,15 "/proc/$WPID/stat" | awk '{print $1 + $2}') -gt $BUSY0 ]]; }
WPID=$(sed -n 's/.*worker 0 pid=\([0-9]*\).*/\1/p' "$WORK/main.err" | head -1)
BUSY0=$(( $(cut -d' ' -f14,15 "/proc/$WPID/stat" | awk '{print $1 + $2}') + 3 )) # 30 ms: a walk
wait_for "the walk to use CPU" 30 busy
for i in 1 2 3; do
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MAIN/healthz")
    [[ $code == 200 ]] || break
done
if [[ $code == 200 ]] && kill -0 "$LONG" 2>/dev/null; then
    pass "/healthz answered 3 times while a depth-5 walk runs"
else fail "/healthz during a walk: $code (walk still running: $(kill -0 "$LONG" 2>/dev/null && echo yes || echo no))"; fi
kill "$LONG" 2>/dev/null
wait "$LONG" 2>/dev/null
stopped() { grep -q "perft depth 5 stopped after [0-9]* positions (abandoned)" "$WORK/main.err"; }
if wait_for "the abandoned walk to stop" 30 stopped; then
    n=$(sed -n 's/.*perft depth 5 stopped after \([0-9]*\) positions.*/\1/p' "$WORK/main.err" | head -1)
    ((n < 250000)) && pass "the client left: the walk stopped after $n positions (the budget: 250000)" ||
        fail "the walk ran to its budget ($n positions) after its client left"
fi
[[ ! -s $WORK/long.out ]] && pass "no answer for the client that left" || fail "long.out: $(cat "$WORK/long.out")"
# Its slot is free again: the next request walks at once.
out=$(get "$MAIN" "$KIWIPETE" 2)
[[ ${out%% *} == 200 && $(field "${out#* }" nodes) == 2039 ]] && pass "the slot is free after the cancel" ||
    fail "after the cancel: $out"

# ---- the budget (422) and the queue bound (503) ------------------------------------------------
start_web bounded CLUB_PERFT_BUDGET=1000
B=$WP
out=$(get "$B" "$START" 3) # 1 + 20 + 400 = 421 positions: within the budget
[[ ${out%% *} == 200 && $(field "${out#* }" nodes) == 8902 ]] && pass "within the budget: 200" ||
    fail "within the budget: $out"
out=$(get "$B" "$KIWIPETE" 3) # 1 + 48 + 2039 = 2088 positions: over
[[ ${out%% *} == 422 && $(field "${out#* }" error) == *budget* ]] && pass "over the budget: 422 ($(field "${out#* }" error))" ||
    fail "over the budget: want 422, got $out"
# Queue bound 0: while one walk holds the process's only slot, the next request is refused at
# once (503 with Retry-After), not queued; once its client leaves, the slot is free again.
start_web queued CLUB_PERFT_QUEUE=0
Q=$WP
curl -sS --max-time 60 -o /dev/null -G --data-urlencode "fen=$KIWIPETE" --data-urlencode depth=5 \
    "http://127.0.0.1:$Q/perft" &
Q1=$!
BG+=($Q1)
WPID=$(sed -n 's/.*worker 0 pid=\([0-9]*\).*/\1/p' "$WORK/queued.err" | head -1)
BUSY0=$(( $(cut -d' ' -f14,15 "/proc/$WPID/stat" | awk '{print $1 + $2}') + 3 )) # 30 ms: a walk
wait_for "the walk to use CPU" 30 busy
code=$(curl -sS --max-time 30 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$Q/perft?depth=2")
if [[ $code == 503 ]] && grep -qi '^retry-after: 1' "$WORK/headers" && kill -0 "$Q1" 2>/dev/null; then
    pass "queue full: 503 with Retry-After ($(field "$(cat "$WORK/body")" error))"
else fail "queue full: want 503 while the walk runs, got $code $(cat "$WORK/body")"; fi
kill "$Q1" 2>/dev/null
wait "$Q1" 2>/dev/null
qstopped() { grep -q "perft depth 5 stopped after" "$WORK/queued.err"; }
wait_for "the queued server's walk to stop" 30 qstopped && pass "queue bound 0: the walk stopped with its client"
free_again() { out=$(get "$Q" "$START" 2); [[ ${out%% *} == 200 ]]; }
wait_for "the slot to be free again" 30 free_again && pass "queue bound 0: serves again after its client left"

# Stopped (SIGTERM: the workers drain and exit, so a sanitizer build checks them for leaks);
# no worker died on the way (the supervisor reports any death) and none reported an error.
for p in "${WEB_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
rcs=""
for p in "${WEB_PIDS[@]}"; do wait "$p"; rcs+="$? "; done
WEB_PIDS=()
[[ $rcs =~ ^(0 )+$ ]] && pass "every club_web stopped with status 0" || fail "club_web exit statuses: $rcs"
if grep -qiE "unexpectedly|killed by|sanitizer|runtime error" "$WORK"/*.err; then
    fail "a worker reported: $(grep -iE "unexpectedly|killed by|sanitizer|runtime error" "$WORK"/*.err | head -3)"
else pass "no worker died or reported an error"; fi

echo "club_perft: $FAILURES failure(s)"
((FAILURES == 0))
