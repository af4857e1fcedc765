#!/usr/bin/env bash
# repeat_suites.sh — runs already-built CTest suites REPEAT times each and names every test that
# failed, with its run number (`make test-repeat` builds the suites, then calls this). A flaky
# test fails one run in several: the point is to run on regardless and collect them all.
#
# usage: repeat_suites.sh REPEAT JOBS SUITE...   where each SUITE is one word
#        NAME=BUILD_DIR[=CTEST_ARGS], and the environment of a suite is taken from REPEAT_ENV_<NAME>
#        (e.g. REPEAT_ENV_asan="ASAN_OPTIONS=...").
# Each run's failed tests come from CTest's own Testing/Temporary/LastTestsFailed.log; a failed
# run's whole output stays in BUILD_DIR/repeat-logs/run-<n>.log (with its LastTest.log beside it).
# Prints one summary line per suite ("plain: 10 runs, 0 failures") and exits 1 if any run failed.
set -uo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 REPEAT JOBS NAME=BUILD_DIR[=CTEST_ARGS]..." >&2
    exit 2
fi
repeat=$1
jobs=$2
shift 2
case $repeat in '' | *[!0-9]* | 0) echo "$0: REPEAT must be a positive number" >&2; exit 2 ;; esac

summary=()
details=()
status=0
for spec in "$@"; do
    name=${spec%%=*}
    rest=${spec#*=}
    dir=${rest%%=*}
    args=""
    [ "$rest" != "$dir" ] && args=${rest#*=}
    envvar="REPEAT_ENV_$name"
    suite_env=${!envvar:-}
    if [ ! -f "$dir/CTestTestfile.cmake" ]; then
        echo "$0: $dir is not a built CTest tree" >&2
        exit 2
    fi
    logs="$dir/repeat-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    failures=0
    failed_runs=0
    for ((run = 1; run <= repeat; run++)); do
        rm -f "$dir/Testing/Temporary/LastTestsFailed.log"
        start=$SECONDS
        # shellcheck disable=SC2086 # suite_env and args are word lists on purpose
        (cd "$dir" && env $suite_env ctest --output-on-failure -j"$jobs" $args) >"$logs/run-$run.log" 2>&1
        rc=$?
        took=$((SECONDS - start))
        failed=()
        if [ -f "$dir/Testing/Temporary/LastTestsFailed.log" ]; then
            # lines are "<number>:<test name>"
            mapfile -t failed < <(cut -d: -f2- "$dir/Testing/Temporary/LastTestsFailed.log")
        fi
        if [ $rc -ne 0 ] && [ ${#failed[@]} -eq 0 ]; then
            failed=("(ctest exited $rc without naming a test: see the log)")
        fi
        if [ ${#failed[@]} -eq 0 ]; then
            echo "$name run $run/$repeat: passed (${took} s)"
            rm -f "$logs/run-$run.log"
            continue
        fi
        cp -f "$dir/Testing/Temporary/LastTest.log" "$logs/run-$run.LastTest.log" 2>/dev/null
        echo "$name run $run/$repeat: ${#failed[@]} failed (${took} s), log $logs/run-$run.log"
        failed_runs=$((failed_runs + 1))
        for t in "${failed[@]}"; do
            failures=$((failures + 1))
            details+=("$name run $run: $t")
        done
        status=1
    done
    line="$name: $repeat runs, $failures failures"
    [ $failures -gt 0 ] && line="$line (in $failed_runs runs; logs in $logs)"
    summary+=("$line")
done

echo
echo "==== test-repeat summary ===="
for d in ${details[@]+"${details[@]}"}; do
    echo "  $d"
done
for s in "${summary[@]}"; do
    echo "$s"
done
exit $status
