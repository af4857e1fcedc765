#!/usr/bin/env bash
# End-to-end test of examples/subprocess_pipe: a child's stdout comes out line by line with a
# prefix, as the lines arrive (before the child exits), then how it ended; the example's own
# exit status mirrors the child's; clear errors for a missing command and bad usage.
# Usage: subprocess_pipe_test.sh <build-dir>   (runs <build-dir>/examples/subprocess_pipe)
# Prints one PASS/FAIL line per check; exits 1 if any check failed, 2 on bad usage.
# shellcheck disable=SC2317 # the predicates below are only called through check()
set -u -o pipefail

if [[ $# -ne 1 || ! -x $1/examples/subprocess_pipe ]]; then
    echo "usage: $0 <build-dir> (with an executable <build-dir>/examples/subprocess_pipe)" >&2
    exit 2
fi
PROG=$1/examples/subprocess_pipe
WORK=$(mktemp -d "${TMPDIR:-/tmp}/subprocess_pipe_test.XXXXXX") || exit 1
BG=
cleanup() {
    if [[ -n $BG ]]; then kill "$BG" 2>/dev/null; wait "$BG" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/lib_check.sh
source "$(dirname "$0")/lib_check.sh"

# run ARGS...: stdout to $WORK/out, stderr to $WORK/err, status to RC.
run() { run_prog 60 "$PROG" "$@"; }

out_is() { [[ $(cat "$WORK/out") == "$1" ]]; }
err_has() { grep -q -- "$1" "$WORK/err"; }
rc_is() { [[ $RC -eq $1 ]]; }

# The issue's example.
run -- sh -c 'echo a; echo b; exit 3'
check "prefixed lines and exit status" out_is $'[sh] a\n[sh] b\nexit_status=3'
check "own exit status mirrors the child's (3)" rc_is 3

run -- true
check "exit 0" out_is 'exit_status=0'
check "own exit status 0" rc_is 0

run --prefix build -- sh -c 'printf "one\ntwo without newline"'
check "--prefix, last line without newline" out_is $'[build] one\n[build] two without newline\nexit_status=0'

run -- /bin/sh -c 'echo x'
check "default prefix is the command's base name" out_is $'[sh] x\nexit_status=0'

run -- sh -c 'echo to-stderr >&2; echo to-stdout'
check "stderr passes through, unprefixed" err_has '^to-stderr$'
check "stdout prefixed" out_is $'[sh] to-stdout\nexit_status=0'

run -- sh -c 'echo dying; kill -TERM $$'
check "killed by a signal is reported by name" out_is $'[sh] dying\nkilled_by_signal=SIGTERM'
check "own exit status 128+15" rc_is 143

run -- simul-no-such-command-xyz
check "command not found: clear error" err_has "cannot run 'simul-no-such-command-xyz': No such file or directory"
check "command not found: status 127" rc_is 127
check "command not found: nothing on stdout" out_is ''

run
check "no arguments: usage error" err_has 'usage:'
check "no arguments: status 2" rc_is 2
run sh -c true
check "command without --: usage error" err_has 'the command goes after --'
check "command without --: status 2" rc_is 2
run --
check "-- without a command: usage error" err_has 'no command given'
check "-- without a command: status 2" rc_is 2

# Lines come out as they arrive: the first one is there while the child still runs. The child
# holds until the test creates $WORK/go (bounded at 60 s), so the window in which "first" must be
# seen is the test's to close, not a sleep that a loaded machine could outlast.
"$PROG" -- sh -c 'echo first; n=0; while [ ! -e "$1" ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n + 1)); done; echo second' \
    sh "$WORK/go" >"$WORK/live" 2>&1 &
BG=$!
streamed() {
    local end=$((SECONDS + 30))
    while ((SECONDS < end)); do
        if grep -q '^\[sh\] first$' "$WORK/live"; then
            ! grep -q second "$WORK/live" && kill -0 "$BG" 2>/dev/null
            return
        fi
        sleep 0.01
    done
    return 1
}
check "a line is printed as it arrives, not after exit" streamed
touch "$WORK/go"
wait "$BG"
RC=$?
BG=
check "streamed run ends normally" rc_is 0
check "streamed run prints everything" \
    bash -c "[[ \$(cat '$WORK/live') == \$'[sh] first\n[sh] second\nexit_status=0' ]]"

# SIGINT to the example (as Ctrl-C, but to it alone): it terminates the child and reports it.
# Job control on: a background job of a script would start with SIGINT ignored otherwise; and
# env --default-signal: when this script itself started with SIGINT ignored (a background job of
# a non-interactive shell), job control cannot undo that and simul_run would leave SIGINT alone.
set -m
env --default-signal=INT "$PROG" -- sleep 30 >"$WORK/int" 2>&1 &
BG=$!
set +m
# SIGINT only once the child runs: simul_run catches SIGINT before main spawns it, so earlier
# the signal would kill the example at once (a fixed sleep lost that race on a loaded machine).
child_started() {
    local end=$((SECONDS + 30))
    while ((SECONDS < end)); do
        pgrep -P "$BG" -x sleep >/dev/null && return 0
        kill -0 "$BG" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}
check "SIGINT: the child is running" child_started
kill -INT "$BG"
wait "$BG"
RC=$?
BG=
check "SIGINT: the child is terminated and reported" bash -c "grep -q '^killed_by_signal=SIGTERM$' '$WORK/int'"
check "SIGINT: status 143" rc_is 143

if ((FAILURES > 0)); then
    echo "subprocess_pipe_test: $FAILURES check(s) failed"
    exit 1
fi
echo "subprocess_pipe_test: all checks passed"
