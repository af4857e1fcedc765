#!/usr/bin/env bash
# End-to-end test of simul_run's Ctrl-C handling, with tests/e2e/sigint_prog.c.
#  1. one SIGINT: main is cancelled, cleans up in a shield, simul_run returns -ECANCELED:
#     "cleanup done", "result=ECANCELED", exit status 1.
#  2. two SIGINTs (the second during the clean-up): the process dies by SIGINT at once (130),
#     without finishing the clean-up.
#  3. SIGINT ignored by the parent (as for background jobs): simul_run leaves it alone.
# Usage: sigint_test.sh <build-dir>. Prints PASS/FAIL lines; exits 1 if any check failed.
set -u -o pipefail

if [[ $# -ne 1 || ! -x $1/tests/sigint_prog ]]; then
    echo "usage: $0 <build-dir> (with tests/sigint_prog built)" >&2
    exit 2
fi
PROG=$1/tests/sigint_prog
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigint_test.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# start [ENV=VALUE...]: runs the program in the background with SIGINT at its default action
# (a non-interactive shell would give a background job SIG_IGN), output to $WORK/out.
start() {
    env --default-signal=INT "$@" "$PROG" >"$WORK/out" 2>"$WORK/err" &
    PID=$!
}

# wait_for LINE: until the program printed LINE (5 s at most).
wait_for() {
    for _ in $(seq 500); do
        grep -q -x "$1" "$WORK/out" && return 0
        sleep 0.01
    done
    return 1
}

# finish: waits for the program (10 s at most) and sets RC.
finish() {
    local alive=1
    for _ in $(seq 1000); do
        kill -0 "$PID" 2>/dev/null || { alive=0; break; }
        sleep 0.01
    done
    # Only a program still running after 10 s is killed: once bash has reaped it, its pid may
    # already be another process's (pid_max is 32768 here and the suite forks thousands).
    if [[ $alive == 1 ]]; then kill -KILL "$PID" 2>/dev/null; fi
    wait "$PID"
    RC=$?
}

has() { grep -q -x "$1" "$WORK/out"; }
hasnt() { ! grep -q -x "$1" "$WORK/out"; }
stderr_empty() { [[ ! -s $WORK/err ]]; }

# --- 1. one SIGINT ------------------------------------------------------------------------------
start
check "one SIGINT: program is ready" wait_for ready
kill -INT "$PID"
finish
check "one SIGINT: main sees ECANCELED" has "cancelled: ECANCELED"
check "one SIGINT: clean-up in a shield completes" has "cleanup done"
check "one SIGINT: simul_run returns -ECANCELED" has "result=ECANCELED"
check "one SIGINT: exit status 1 (got $RC)" test "$RC" -eq 1
check "one SIGINT: nothing on stderr" stderr_empty

# --- 2. two SIGINTs ---------------------------------------------------------------------------
start SIGINT_CLEANUP_SECONDS=30
check "two SIGINTs: program is ready" wait_for ready
kill -INT "$PID"
check "two SIGINTs: first one cancels main" wait_for "cancelled: ECANCELED"
t0=$EPOCHREALTIME
kill -INT "$PID"
finish
t1=$EPOCHREALTIME
check "two SIGINTs: killed by SIGINT, status 130 (got $RC)" test "$RC" -eq 130
check "two SIGINTs: clean-up did not finish" hasnt "cleanup done"
check "two SIGINTs: simul_run did not return" hasnt "result=ECANCELED"
check "two SIGINTs: died at once" awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 5) }'

# --- 3. SIGINT ignored before simul_run ---------------------------------------------------------
env --ignore-signal=INT "$PROG" >"$WORK/out" 2>"$WORK/err" &
PID=$!
check "ignored SIGINT: program is ready" wait_for ready
kill -INT "$PID"
sleep 0.2
check "ignored SIGINT: still running" kill -0 "$PID"
kill -TERM "$PID"
finish
check "ignored SIGINT: main never cancelled" hasnt "cancelled: ECANCELED"

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: sigint_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: sigint_test.sh: $FAILURES check(s) failed"
exit 1
