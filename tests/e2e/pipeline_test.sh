#!/usr/bin/env bash
# End-to-end test of examples/pipeline: producers and consumers over a bounded queue deliver
# every item exactly once, and a full queue holds the producers back (backpressure) while an
# unbounded one lets them run ahead.
# Usage: pipeline_test.sh <build-dir>   (runs <build-dir>/examples/pipeline)
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -x $1/examples/pipeline ]]; then
    echo "usage: $0 <build-dir> (with an executable <build-dir>/examples/pipeline)" >&2
    exit 2
fi
PIPELINE=$1/examples/pipeline
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline_test.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# run LIMIT ARGS...: stdout to $WORK/out, stderr to $WORK/err, status to RC, wall time to ELAPSED.
run() { run_prog "$1" "$PIPELINE" "${@:2}"; }

# val KEY: the value of the last KEY=value line on stdout (empty if none).
val() { sed -n "s/^$1=//p" "$WORK/out" | tail -n 1; }

less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }
equals() { [[ $1 == "$2" ]]; }
stderr_empty() { [[ ! -s $WORK/err ]]; }
depth_lines() { grep -c '^depth t=' "$WORK/out"; }
# Every depth sample of a bounded queue shows at most M items.
depth_within() {
    awk -v m="$1" '/^depth t=/ { split($3, a, "/"); if (a[1] + 0 > m + 0) bad = 1 }
                   END { exit bad }' "$WORK/out"
}

show_output_on_failure() {
    if [[ $FAILURES -gt $1 ]]; then
        echo "--- stdout (last 15 lines) and stderr (first 15) of the failing run:"
        tail -n 15 "$WORK/out"
        head -n 15 "$WORK/err"
        echo "---"
    fi
}

# --- 1. defaults: 4 producers x 250 items, maxsize 8, 2 consumers at 1 ms per item ------------
before=$FAILURES
run 60
check "defaults: exit status 0 (got $RC)" test "$RC" -eq 0
check "defaults: delivered=1000 (got $(val delivered))" equals "$(val delivered)" 1000
check "defaults: expected=1000" equals "$(val expected)" 1000
check "defaults: queue never above maxsize 8 (max_depth=$(val max_depth))" \
    less_than "$(val max_depth)" 9
check "defaults: depth samples within 8" depth_within 8
check "defaults: at least 3 depth samples (got $(depth_lines))" at_least "$(depth_lines)" 3
# 1000 items / 2 consumers x 1 ms = 0.5 s of consuming; the producers are held back to it.
check "defaults: producers spent >= 50% blocked in put ($(val producers_blocked_pct)%)" \
    at_least "$(val producers_blocked_pct)" 50
check "defaults: producers finished no sooner than 0.3 s ($(val producers_done_s) s)" \
    at_least "$(val producers_done_s)" 0.3
check "defaults: most puts found the queue full ($(val puts_found_full))" \
    at_least "$(val puts_found_full)" 500
check "defaults: took >= 0.45 s ($ELAPSED s)" at_least "$ELAPSED" 0.45
check "defaults: took < 10 s ($ELAPSED s)" less_than "$ELAPSED" 10
check "defaults: nothing on stderr" stderr_empty
show_output_on_failure "$before"

# --- 2. unbounded: no backpressure, the producers run ahead and the queue piles up ------------
before=$FAILURES
run 60 --maxsize 0
check "unbounded: exit status 0 (got $RC)" test "$RC" -eq 0
check "unbounded: delivered=1000 (got $(val delivered))" equals "$(val delivered)" 1000
check "unbounded: producers never blocked (puts_found_full=$(val puts_found_full))" \
    equals "$(val puts_found_full)" 0
# Ran ahead, proved by what was left, not by a wall-clock bound a stalled process misses: when the
# last producer was done nearly all 1000 items still waited, i.e. >= 0.25 s of the consumers'
# 0.5 s (2 x 1 ms sleeps per item; a sleep is never shorter, and a stall lets each consumer take
# one item, not many). Held back by the queue, the producers would end a few items before the end.
ahead_s() { awk -v e="$(val elapsed_s)" -v d="$(val producers_done_s)" 'BEGIN { printf "%.3f", e - d }'; }
check "unbounded: producers done >= 0.25 s before the consumers ($(ahead_s) s before)" \
    at_least "$(ahead_s)" 0.25
check "unbounded: the queue piled up past 500 (max_depth=$(val max_depth))" \
    at_least "$(val max_depth)" 500
check "unbounded: nothing on stderr" stderr_empty
show_output_on_failure "$before"

# --- 3. many items, no consumer delay: throughput and exactly-once at scale -------------------
before=$FAILURES
run 120 --producers 8 --consumers 3 --items 25000 --consume-ms 0 --maxsize 4
check "fast 8x25000: exit status 0 (got $RC)" test "$RC" -eq 0
check "fast 8x25000: delivered=200000 (got $(val delivered))" equals "$(val delivered)" 200000
check "fast 8x25000: max_depth <= 4 ($(val max_depth))" less_than "$(val max_depth)" 5
check "fast 8x25000: took < 20 s ($ELAPSED s)" less_than "$ELAPSED" 20
check "fast 8x25000: nothing on stderr" stderr_empty
show_output_on_failure "$before"

# --- 4. small shapes: maxsize 1, one of each; more consumers than items; no items -------------
before=$FAILURES
run 60 --producers 1 --consumers 1 --maxsize 1 --items 300 --consume-ms 0.1
check "1x1 maxsize 1: exit 0 and delivered=300 (rc $RC, $(val delivered))" \
    equals "$RC/$(val delivered)" 0/300
check "1x1 maxsize 1: max_depth <= 1 ($(val max_depth))" less_than "$(val max_depth)" 2
run 60 --producers 2 --consumers 50 --items 3 --maxsize 2 --produce-ms 1
check "50 consumers, 6 items: exit 0 and delivered=6 (rc $RC, $(val delivered))" \
    equals "$RC/$(val delivered)" 0/6
run 60 --items 0
check "no items: exit 0 and delivered=0 (rc $RC, $(val delivered))" \
    equals "$RC/$(val delivered)" 0/0
show_output_on_failure "$before"

# --- 5. --help and bad arguments ---------------------------------------------------------------
run 10 --help
check "--help: exit status 0 (got $RC)" test "$RC" -eq 0
check "--help: usage on stdout" grep -q '^usage: pipeline' "$WORK/out"
bad_args=(
    "--producers 0" "--producers abc" "--producers -1" "--consumers 0" "--consumers 1.5"
    "--maxsize -1" "--maxsize x" "--items" "--items 1e3" "--consume-ms -1" "--consume-ms nan"
    "--sample-ms 0" "--bogus" "extra"
)
for args in "${bad_args[@]}"; do
    # shellcheck disable=SC2086 # word splitting of $args is the point
    run 10 $args
    check "bad arguments '$args': exit status 2 (got $RC)" test "$RC" -eq 2
    check "bad arguments '$args': message on stderr, nothing on stdout" \
        test -s "$WORK/err" -a ! -s "$WORK/out"
done

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: pipeline_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: pipeline_test.sh: $FAILURES check(s) failed"
exit 1
