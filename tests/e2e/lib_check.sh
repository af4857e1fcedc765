# lib_check.sh — the PASS/FAIL scaffolding the example e2e scripts share (sourced): one line per
# check, failures counted in FAILURES for the script's exit status, and a program run under a
# hard time limit with its output kept in $WORK (the sourcing script makes WORK).
# shellcheck shell=bash disable=SC2034 # RC, ELAPSED and FAILURES are read by the sourcing script

FAILURES=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

# check NAME CONDITION-COMMAND... : PASS or FAIL with the name.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# run_prog LIMIT PROG ARGS...: PROG with a hard time limit, stdout to $WORK/out, stderr to
# $WORK/err, exit status to RC and wall-clock seconds to ELAPSED (measured here, not trusted
# from the program's own summary).
run_prog() {
    local limit=$1
    shift
    local t0=$EPOCHREALTIME
    timeout --kill-after=5 "$limit" "$@" >"$WORK/out" 2>"$WORK/err"
    RC=$?
    local t1=$EPOCHREALTIME
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}
