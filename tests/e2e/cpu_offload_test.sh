#!/usr/bin/env bash
# End-to-end test of examples/cpu_offload: a CPU-bound job run inline holds the loop (the 10 ms
# timer is late by about the job's duration), while yielding, a worker thread and a worker
# process keep the timer on time; the four ways compute the same result.
# Usage: cpu_offload_test.sh <build-dir>   (runs <build-dir>/examples/cpu_offload)
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
# Bounds are generous: the machine is shared and noisy.
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -x $1/examples/cpu_offload ]]; then
    echo "usage: $0 <build-dir> (with an executable <build-dir>/examples/cpu_offload)" >&2
    exit 2
fi
PROG=$1/examples/cpu_offload
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cpu_offload_test.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# run LIMIT ARGS...: stdout to $WORK/out, stderr to $WORK/err, status to RC.
run() { run_prog "$1" "$PROG" "${@:2}"; }

# val KEY: the value of KEY=value anywhere on stdout (last one; empty if none).
val() { grep -o "\\b$1=[^ ]*" "$WORK/out" | tail -n 1 | cut -d= -f2-; }
# line_val WAY KEY: KEY's value on WAY's line.
line_val() { awk -v w="$1" -v k="$2" '$1 == w { for (i = 2; i <= NF; i++) {
    split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$WORK/out" | tail -n 1; }

less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }
equals() { [[ $1 == "$2" ]]; }
nonempty() { [[ -n $1 ]]; }
stderr_empty() { [[ ! -s $WORK/err ]]; }

show_output_on_failure() {
    if [[ $FAILURES -gt $1 ]]; then
        echo "--- stdout and stderr (first 15 lines) of the failing run:"
        cat "$WORK/out"
        head -n 15 "$WORK/err"
        echo "---"
    fi
}

# --- 1. defaults: a job of a few hundred ms, four ways -----------------------------------------
# The lateness checks compare scheduling on a shared 2-core machine: other work there can only
# make the loop later, never earlier, so a run whose lateness checks fail is retried (at most 3
# runs) and the checks are reported for the last one. Everything else must hold on every run.
# What says "the timer did not wait for the job" is "< a third of inline's" (which grows with the
# job on a slow machine); the absolute bound only caps it. It was 150 ms, and a loaded 2-core
# machine under ASan left even the thread and process ways (the loop idle) 150-226 ms late in
# three runs in a row, while the job took 2-3.5 s.
LATE_BOUND_MS=500

# timing_ok: the lateness shape of the last run (inline late by about the job, the others not).
timing_ok() {
    local inline_job inline_worst worst way
    inline_job=$(line_val inline job_ms)
    inline_worst=$(val inline_worst_ms)
    at_least "$inline_worst" "$(awk -v j="$inline_job" 'BEGIN { print 0.7 * j }')" || return 1
    for way in yield thread process; do
        worst=$(val ${way}_worst_ms)
        less_than "$worst" "$LATE_BOUND_MS" || return 1
        less_than "$worst" "$(awk -v i="$inline_worst" 'BEGIN { print i / 3 }')" || return 1
    done
}

before=$FAILURES
for attempt in 1 2 3; do
    run 120
    check "defaults (run $attempt): exit status 0 (got $RC)" test "$RC" -eq 0
    for way in inline yield thread process; do
        check "defaults (run $attempt): ${way}_worst_ms reported ($(val ${way}_worst_ms))" \
            nonempty "$(val ${way}_worst_ms)"
        check "defaults (run $attempt): $way job_ms and primes reported" \
            nonempty "$(line_val $way job_ms)$(line_val $way primes)"
    done
    primes=$(line_val inline primes)
    for way in yield thread process; do
        check "defaults (run $attempt): $way result agrees with inline ($(line_val $way primes))" \
            equals "$(line_val $way primes)" "$primes"
    done
    check "defaults (run $attempt): results_agree=yes" equals "$(val results_agree)" yes
    check "defaults (run $attempt): the known count of primes below 3.5e6 (250150)" \
        equals "$primes" 250150
    check "defaults (run $attempt): nothing on stderr" stderr_empty
    if timing_ok; then break; fi
    echo "# run $attempt: lateness disturbed by the machine's load, retrying:" \
        "$(tr '\n' ' ' <"$WORK/out")"
done
inline_job=$(line_val inline job_ms)
inline_worst=$(val inline_worst_ms)
# Inline, the timer waits for the whole job: its lateness is close to the job's duration.
check "defaults: inline job took >= 100 ms ($inline_job ms)" at_least "$inline_job" 100
check "defaults: inline lateness ($inline_worst ms) >= 70% of the job ($inline_job ms)" \
    at_least "$inline_worst" "$(awk -v j="$inline_job" 'BEGIN { print 0.7 * j }')"
# The other three keep the loop free: a small lateness, far below the inline one.
for way in yield thread process; do
    worst=$(val ${way}_worst_ms)
    check "defaults: $way lateness small ($worst ms < $LATE_BOUND_MS)" \
        less_than "$worst" "$LATE_BOUND_MS"
    check "defaults: $way lateness ($worst ms) < a third of inline's ($inline_worst ms)" \
        less_than "$worst" "$(awk -v i="$inline_worst" 'BEGIN { print i / 3 }')"
done
show_output_on_failure "$before"

# --- 2. a tiny job: every way still agrees -------------------------------------------------------
before=$FAILURES
run 60 --work 1000
check "--work 1000: exit status 0 (got $RC)" test "$RC" -eq 0
check "--work 1000: 168 primes every way" \
    equals "$(grep -c 'primes=168$' "$WORK/out")" 4
check "--work 1000: results_agree=yes" equals "$(val results_agree)" yes
show_output_on_failure "$before"

# --- 3. --help and bad arguments -----------------------------------------------------------------
run 10 --help
check "--help: exit status 0 (got $RC)" test "$RC" -eq 0
check "--help: usage on stdout" grep -q '^usage: cpu_offload' "$WORK/out"
bad_args=("--work 0" "--work abc" "--work -5" "--work" "--tick-ms 0" "--yield-ms nan" "--bogus"
    "--work 99999999999")
for args in "${bad_args[@]}"; do
    # shellcheck disable=SC2086 # word splitting of $args is the point
    run 10 $args
    check "bad arguments '$args': exit status 2 (got $RC)" test "$RC" -eq 2
    check "bad arguments '$args': message on stderr, nothing on stdout" \
        test -s "$WORK/err" -a ! -s "$WORK/out"
done

echo
if [[ $FAILURES -eq 0 ]]; then
    echo "PASS: cpu_offload_test.sh: all checks passed"
    exit 0
fi
echo "FAIL: cpu_offload_test.sh: $FAILURES check(s) failed"
exit 1
