#!/usr/bin/env bash
# End-to-end test of examples/hello: N tasks sleeping S seconds together take about S, not N * S.
# Usage: hello_test.sh path/to/build/examples/hello
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -x $1 ]]; then
    echo "usage: $0 path/to/hello (an executable)" >&2
    exit 2
fi
HELLO=$1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hello_test.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# run LIMIT ARGS...: runs hello with a hard time limit (see run_prog).
run() { run_prog "$1" "$HELLO" "${@:2}"; }

# Floating-point comparisons through awk (bash has only integers).
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

count_lines() { grep -c -x "$1" "$WORK/out"; }

# Lines that are neither Hello nor World (should be none).
stray_lines() { grep -c -v -x -e Hello -e World "$WORK/out"; }

# True if the last Hello comes before the first World.
hellos_before_worlds() {
    awk '$0 == "Hello" { last_hello = NR }
         $0 == "World" && !first_world { first_world = NR }
         END { exit !(last_hello > 0 && first_world > last_hello) }' "$WORK/out"
}

# True if stdout is exactly Hello, World, Hello, World, ... for N tasks.
alternates() {
    local n=$1
    awk -v n="$n" '{ want = (NR % 2 == 1) ? "Hello" : "World"; if ($0 != want) bad = 1 }
                   END { exit !(!bad && NR == 2 * n) }' "$WORK/out"
}

# True if stderr is exactly the summary line: no sanitizer report, no debug warning.
summary_is() {
    local tasks=$1 seconds=$2 mode=$3
    [[ $(wc -l <"$WORK/err") -eq 1 ]] &&
        grep -q -x "tasks=$tasks seconds=$seconds elapsed=[0-9]*\.[0-9][0-9][0-9] mode=$mode" \
            "$WORK/err"
}

show_stderr_on_failure() {
    if [[ $FAILURES -gt $1 ]]; then
        echo "--- stderr of the failing run (first 20 lines):"
        head -n 20 "$WORK/err"
        echo "---"
    fi
}

# --- 1. async: 1000 tasks, 0.2 s each, all together ------------------------------------------
before=$FAILURES
run 30 --tasks 1000 --seconds 0.2
check "async 1000x0.2s: exit status 0 (got $RC)" test "$RC" -eq 0
check "async 1000x0.2s: 1000 Hello lines (got $(count_lines Hello))" \
    test "$(count_lines Hello)" -eq 1000
check "async 1000x0.2s: 1000 World lines (got $(count_lines World))" \
    test "$(count_lines World)" -eq 1000
check "async 1000x0.2s: no other lines on stdout" test "$(stray_lines)" -eq 0
check "async 1000x0.2s: every Hello before every World" hellos_before_worlds
# The upper bounds say the sleeps overlapped (one after another: 1000 x 0.2 = 200 s, and
# 100000 x 1 = 100000 s), not how fast the machine is: 2 s and 15 s were too tight, a loaded
# 2-core machine took 20.5 s for the 100000 (as test_task's hundred_thousand_sleeping_tasks).
check "async 1000x0.2s: took < 10 s (took ${ELAPSED} s)" less_than "$ELAPSED" 10
check "async 1000x0.2s: took >= 0.2 s, so the tasks slept (took ${ELAPSED} s)" \
    at_least "$ELAPSED" 0.2
check "async 1000x0.2s: stderr is only the summary line" summary_is 1000 0.2 async
show_stderr_on_failure "$before"

# --- 2. sync: 3 tasks, 0.1 s each, one after the other ---------------------------------------
before=$FAILURES
run 30 --sync --tasks 3 --seconds 0.1
check "sync 3x0.1s: exit status 0 (got $RC)" test "$RC" -eq 0
check "sync 3x0.1s: lines alternate Hello/World, 3 of each" alternates 3
check "sync 3x0.1s: took >= 0.3 s (took ${ELAPSED} s)" at_least "$ELAPSED" 0.3
check "sync 3x0.1s: stderr is only the summary line" summary_is 3 0.1 sync
show_stderr_on_failure "$before"

# --- 3. async at scale: 100,000 tasks, 1 s each ----------------------------------------------
before=$FAILURES
run 60 --tasks 100000 --seconds 1
check "async 100000x1s: exit status 0 (got $RC)" test "$RC" -eq 0
check "async 100000x1s: 100000 Hello lines (got $(count_lines Hello))" \
    test "$(count_lines Hello)" -eq 100000
check "async 100000x1s: 100000 World lines (got $(count_lines World))" \
    test "$(count_lines World)" -eq 100000
check "async 100000x1s: no other lines on stdout" test "$(stray_lines)" -eq 0
check "async 100000x1s: took < 45 s (took ${ELAPSED} s)" less_than "$ELAPSED" 45
check "async 100000x1s: stderr is only the summary line" summary_is 100000 1 async
show_stderr_on_failure "$before"

# --- 4. bad arguments: exit status 2, a message on stderr, nothing on stdout -----------------
bad_args=(
    "--tasks abc" "--tasks -1" "--tasks 0" "--tasks 1.5" "--tasks 3x" "--tasks"
    "--seconds abc" "--seconds -1" "--seconds nan" "--seconds inf" "--seconds"
    "--bogus" "extra"
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
    echo "PASS: hello_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: hello_test.sh: $FAILURES check(s) failed"
exit 1
