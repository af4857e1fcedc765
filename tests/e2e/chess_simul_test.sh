#!/usr/bin/env bash
# End-to-end test of examples/chess_simul (the chess simul: one master task, many boards over
# TCP on loopback). Checks: a raw client's malformed, out-of-turn and illegal (real chess) lines
# get ERR replies while the master plays on, and an opponent refuses a raw master's illegal
# moves; --compare matches the model (async within 25%, sync within 10% of the sum of its
# games); an opponent that vanishes is reported and the others finish; --processes;
# plain lines (no ANSI escapes) when stdout is not a terminal; bad options exit 2; 1000 boards;
# SIGINT prints the summary so far; a too-low fd hard limit is named; examples/demo.sh runs.
# Usage: chess_simul_test.sh <build-dir>. Prints PASS/FAIL lines; exits 1 if any check failed.
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROG=$BUILD/examples/chess_simul
PY=$(command -v python3 || true)
if [[ ! -x $PROG ]]; then
    echo "FAIL: $PROG not built"
    exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chess_simul_test.XXXXXX") || exit 1
PID=
cleanup() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"
# key FILE NAME: the value of a "NAME=value" line.
key() { sed -n "s/^$2=//p" "$1" | tail -1; }
# within A B FRACTION: |A - B| <= FRACTION * B
within() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= f * b) }'; }
show() { sed 's/^/    /' "$1" | head -"${2:-15}"; }

# --- 1. a raw client against --serve-only --------------------------------------------------
if [[ -z $PY ]]; then
    fail "python3 not found (the raw client)"
else
    "$PROG" --serve-only --port 0 --boards 2 --moves 4 >"$WORK/serve.out" 2>"$WORK/serve.err" &
    PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/serve.out")
        [[ -n $PORT ]] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -n $PORT ]]; then
        pass "serve-only: 'listening on 127.0.0.1:$PORT'"
        timeout 60 "$PY" "$HERE/chess_raw_client.py" "$PORT" 4 >"$WORK/raw.out" 2>&1
        rc=$?
        check "raw client: every check passed (exit $rc)" test "$rc" -eq 0
        [[ $rc -eq 0 ]] || show "$WORK/raw.out" 30
        for c in "unknown command: ERR" "out-of-turn move: ERR" "over-long line: ERR" \
                 "embedded NUL: ERR" "board 1: END after 4 moves" \
                 "board 0 (after its errors): END after 4 moves" \
                 "board 1: illegal move e2e5: ERR" "board 1: illegal move e8g8: ERR" \
                 "board 0 (after its errors): the master's moves were legal" \
                 "board 1: the master's moves were legal"; do
            check "raw client: $c" grep -q -x -F "ok $c" "$WORK/raw.out"
        done
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        wait "$PID"
        rc=$?
        PID=
        check "serve-only: the master exits 0 after both games (got $rc)" test "$rc" -eq 0
        check "serve-only: boards_finished=2" test "$(key "$WORK/serve.out" boards_finished)" = 2
        check "serve-only: errors were sent" test "$(key "$WORK/serve.out" errors_sent)" -ge 8
        check "serve-only: stderr empty" test ! -s "$WORK/serve.err"
    else
        fail "serve-only: no 'listening on' line ($(head -c 300 "$WORK/serve.err"))"
    fi
fi

# --- 1a. longer games: the raw client mates the master when it sees a mate in one (board 0's
# moves happen to allow one at move 24), and END must carry the real result -----------------
if [[ -n $PY ]]; then
    "$PROG" --serve-only --port 0 --boards 2 --moves 40 >"$WORK/serve40.out" 2>"$WORK/serve40.err" &
    PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$WORK/serve40.out")
        [[ -n $PORT ]] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -n $PORT ]]; then
        timeout 60 "$PY" "$HERE/chess_raw_client.py" "$PORT" 40 >"$WORK/raw40.out" 2>&1
        rc=$?
        check "40 moves: raw client: every check passed (exit $rc)" test "$rc" -eq 0
        [[ $rc -eq 0 ]] || show "$WORK/raw40.out" 30
        check "40 moves: a game ended by mate, with END's real result" \
            grep -q "^ok board .*: END 0-1 at move [0-9]* (the real result)$" "$WORK/raw40.out"
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        wait "$PID"
        rc=$?
        PID=
        check "40 moves: the master exits 0 (got $rc)" test "$rc" -eq 0
        check "40 moves: the summary counts the results" \
            grep -q -x "async_results=1-0:0,0-1:1,1/2-1/2:0,\*:1" "$WORK/serve40.out"
        check "40 moves: stderr empty" test ! -s "$WORK/serve40.err"
    else
        fail "40 moves: no 'listening on' line ($(head -c 300 "$WORK/serve40.err"))"
    fi
fi

# --- 1b. the opponents' side against a raw master: illegal moves get ERR, the game goes on ----
if [[ -n $PY ]]; then
    "$PY" "$HERE/chess_raw_client.py" --master >"$WORK/fake.out" 2>&1 &
    FAKE=$!
    FPORT=
    for _ in $(seq 100); do
        FPORT=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$WORK/fake.out")
        [[ -n $FPORT ]] && break
        kill -0 "$FAKE" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -n $FPORT ]]; then
        timeout 60 "$PROG" --opponents-only --port "$FPORT" --boards 1 --moves 2 --first 0 \
            --count 1 >"$WORK/opp.out" 2>"$WORK/opp.err"
        rc=$?
        check "opponent vs raw master: exit 0 (got $rc)" test "$rc" -eq 0
        check "opponent vs raw master: stderr empty" test ! -s "$WORK/opp.err"
        [[ -s $WORK/opp.err ]] && show "$WORK/opp.err"
    else
        fail "raw master: no 'listening on' line"
        kill "$FAKE" 2>/dev/null
    fi
    wait "$FAKE"
    rc=$?
    check "raw master: every check passed (exit $rc)" test "$rc" -eq 0
    [[ $rc -eq 0 ]] || show "$WORK/fake.out" 30
    for c in "MOVE 1 e2e5: ERR illegal-move" "MOVE 1 e7e5: ERR illegal-move" \
             "MOVE 1 e1g1: ERR illegal-move" "MOVE 2 e2e4: ERR out-of-turn" "a legal reply 1" \
             "a legal reply 2" "hangs up after END"; do
        check "raw master: opponent: $c" grep -q -x -F "ok opponent: $c" "$WORK/fake.out"
    done
fi

# --- 2. --compare at small settings matches the model -------------------------------------
# 16 ms per seed minute: the model says 4.54 s sync, 1.26 s async. Each of the sync run's 100
# steps on its critical path (a move sent, the other side woken) can be a few ms late on a loaded
# machine (6 ms seen under ASan on 2 busy cores): the 25% (1.1 s) covers that twice over. At 4 ms
# per minute it did not: 1.46 s against the model's 1.14 s failed one run in four.
# A machine busier still made a run 28-90% late (sync 5.8-8.7 s): every step waits for the
# machine to run the process again, a fixed cost per step (about 30 ms then), not a share of it.
# Other work can only make a run later, never earlier, so a run whose timing checks fail is
# retried (at most 3 runs, as in cpu_offload_test.sh) at 3x then 6x the scale, where that fixed
# cost is a third and a sixth of the share; the timing is checked on the last run, the rest on
# every run.
cmp_timing_ok() {
    within "$am" "$amod" 0.25 && within "$sm" "$sg" 0.10 && within "$sm" "$smod" 0.25 &&
        awk -v s="$sm" -v a="$am" 'BEGIN { exit !(a * 2 < s) }'
}
attempt=0
for scale in 16 48 96; do
    attempt=$((attempt + 1))
    timeout 120 "$PROG" --compare --boards 10 --moves 5 --scale "$scale" >"$WORK/cmp.out" \
        2>"$WORK/cmp.err"
    rc=$?
    check "compare (run $attempt): exit 0 (got $rc)" test "$rc" -eq 0
    check "compare (run $attempt): 20 games finished" test "$(key "$WORK/cmp.out" boards_finished)" = 20
    check "compare (run $attempt): the table has a speed-up row" grep -q "^speed-up " "$WORK/cmp.out"
    check "compare (run $attempt): stderr empty" test ! -s "$WORK/cmp.err"
    [[ $rc -eq 0 ]] || show "$WORK/cmp.err"
    am=$(key "$WORK/cmp.out" async_measured_s)
    amod=$(key "$WORK/cmp.out" async_model_s)
    sm=$(key "$WORK/cmp.out" sync_measured_s)
    sg=$(key "$WORK/cmp.out" sync_games_sum_s)
    smod=$(key "$WORK/cmp.out" sync_model_s)
    cmp_timing_ok && break
    echo "# compare run $attempt (scale $scale): timing disturbed by the machine's load:" \
        "async $am s (model $amod s), sync $sm s (games $sg s, model $smod s)"
done
check "compare: async $am s within 25% of the model's $amod s" within "$am" "$amod" 0.25
check "compare: sync $sm s within 10% of the sum of its games $sg s" within "$sm" "$sg" 0.10
check "compare: sync $sm s within 25% of the model's $smod s" within "$sm" "$smod" 0.25
check "compare: async is faster" awk -v s="$sm" -v a="$am" 'BEGIN { exit !(a * 2 < s) }'

# --- 3. opponents that vanish mid-game ----------------------------------------------------
timeout 60 "$PROG" --boards 10 --moves 6 --vanish 2 >"$WORK/van.out" 2>"$WORK/van.err"
rc=$?
check "vanish: exit 0 (got $rc)" test "$rc" -eq 0
check "vanish: boards_abandoned=2" test "$(key "$WORK/van.out" boards_abandoned)" = 2
check "vanish: boards_finished=8" test "$(key "$WORK/van.out" boards_finished)" = 8
check "vanish: which board and at which move" \
    grep -q "^board 0: the opponent left at move 3; the other boards play on$" "$WORK/van.out"
check "vanish: async_abandoned=0@3,5@3" test "$(key "$WORK/van.out" async_abandoned)" = "0@3,5@3"
check "vanish: stderr empty" test ! -s "$WORK/van.err"
[[ -s $WORK/van.err ]] && show "$WORK/van.err"

# --- 4. opponents in child processes --------------------------------------------------------
timeout 60 "$PROG" --boards 12 --moves 4 --processes 3 --vanish 1 --quiet >"$WORK/proc.out" \
    2>"$WORK/proc.err"
rc=$?
check "processes: exit 0 (got $rc)" test "$rc" -eq 0
check "processes: boards_finished=11" test "$(key "$WORK/proc.out" boards_finished)" = 11
check "processes: boards_abandoned=1" test "$(key "$WORK/proc.out" boards_abandoned)" = 1
check "processes: opponent_failures=0" test "$(key "$WORK/proc.out" opponent_failures)" = 0
# Only this build's children: a pgrep over the whole machine also saw another suite's (the ASan
# build's, or another checkout's) run of this same step when two ran at once.
own_opponents() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [[ $exe == "$PROG_EXE" ]] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- '--opponents-only .*--boards 12 ' &&
            echo "${p#/proc/}"
    done
    return 0
}
PROG_EXE=$(readlink -f "$PROG")
check "processes: no child left behind" test -z "$(own_opponents)"
check "processes: stderr empty" test ! -s "$WORK/proc.err"
[[ -s $WORK/proc.err ]] && show "$WORK/proc.err"

# --- 5. not a terminal: plain lines -------------------------------------------------------
# 20 ms per seed minute: the async simul lasts 1.6 s, so a progress line or two come out.
timeout 60 "$PROG" --boards 10 --moves 5 --scale 20 >"$WORK/plain.out" 2>"$WORK/plain.err"
rc=$?
check "plain: stderr empty" test ! -s "$WORK/plain.err"
check "plain: exit 0 (got $rc)" test "$rc" -eq 0
check "plain: no escape sequences" test "$(tr -dc '\033' <"$WORK/plain.out" | wc -c)" -eq 0
check "plain: periodic progress lines" grep -q "^async: t=[0-9.]* s .* moves=[0-9]*/100" "$WORK/plain.out"

# --- 6. bad options exit 2 with the usage -------------------------------------------------
for args in "--boards 0" "--boards x" "--moves -3" "--master-move -1" "--opponent-move nan" \
            "--scale 0" "--bogus" "--sync --compare" "--boards 2 --vanish 3" \
            "--serve-only --processes 2" "--processes 0" "--port 70000" "--boards"; do
    # shellcheck disable=SC2086
    timeout 10 "$PROG" $args >"$WORK/bad.out" 2>"$WORK/bad.err"
    rc=$?
    check "bad options '$args': exit 2 (got $rc) with the usage" \
        eval 'test "$rc" -eq 2 && grep -q "^usage:" "$WORK/bad.err"'
done
timeout 10 "$PROG" --help >"$WORK/help.out" 2>&1
rc=$?
check "--help: exit 0 (got $rc)" test "$rc" -eq 0

# --- 7. a thousand boards -------------------------------------------------------------------
timeout 120 "$PROG" --boards 1000 --moves 3 --master-move 0.001 --opponent-move 0.01 \
    --switch-cost 0.001 --quiet >"$WORK/big.out" 2>"$WORK/big.err"
rc=$?
check "1000 boards: exit 0 (got $rc)" test "$rc" -eq 0
check "1000 boards: boards_finished=1000" test "$(key "$WORK/big.out" boards_finished)" = 1000
check "1000 boards: stderr empty" test ! -s "$WORK/big.err"
[[ -s $WORK/big.err ]] && show "$WORK/big.err"

# --- 8. too few file descriptors allowed: the limit is named ------------------------------
(ulimit -n 256 && exec timeout 10 "$PROG" --boards 5000 --quiet) >"$WORK/fd.out" 2>"$WORK/fd.err"
rc=$?
check "fd hard limit too low: exit 1 (got $rc)" test "$rc" -eq 1
check "fd hard limit too low: RLIMIT_NOFILE and the number needed are named" \
    grep -q "needs about 10064 file descriptors, but RLIMIT_NOFILE's hard limit is 256" "$WORK/fd.err"

# --- 9. SIGINT: main is cancelled, everything closes, the summary so far is printed ---------
# SIGINT once the sync simul has started (its first progress line "sync: t=..."; the line comes
# every second), not after a fixed second: so some sync games are measured, and simul_run is
# sure to catch the signal.
env --default-signal=INT "$PROG" --compare >"$WORK/int.out" 2>"$WORK/int.err" &
PID=$!
sync_started() {
    local end=$((SECONDS + 60))
    while ((SECONDS < end)); do
        grep -q '^sync: t=' "$WORK/int.out" && return 0
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
check "SIGINT: the sync simul started" sync_started
kill -INT "$PID"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
wait "$PID"
rc=$?
PID=
check "SIGINT: exit 130 (got $rc)" test "$rc" -eq 130
check "SIGINT: interrupted=1 in the summary" test "$(key "$WORK/int.out" interrupted)" = 1
check "SIGINT: some sync games were measured" test -n "$(key "$WORK/int.out" sync_measured_s)"
check "SIGINT: stderr empty" test ! -s "$WORK/int.err"

# --- 10. make demo's script, with short settings ------------------------------------------
timeout 120 bash "$ROOT/examples/demo.sh" "$BUILD" --boards 6 --moves 4 >"$WORK/demo.out" 2>&1
rc=$?
check "demo.sh: exit 0 (got $rc)" test "$rc" -eq 0
check "demo.sh: prints the comparison" grep -q "^speedup_measured=" "$WORK/demo.out"
[[ $rc -eq 0 ]] || show "$WORK/demo.out"

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: chess_simul_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: chess_simul_test.sh: $FAILURES check(s) failed"
exit 1
