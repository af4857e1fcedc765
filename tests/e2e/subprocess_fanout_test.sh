#!/usr/bin/env bash
# End-to-end test of examples/subprocess_fanout: shell commands run N at a time under one batch
# deadline; each one's exit code and first line are reported in order; the ones still running at
# the deadline are killed with everything they started (nothing outlives the batch); exit status
# 0 only when every command exited 0.
# Usage: subprocess_fanout_test.sh <build-dir>
set -u -o pipefail
if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
PROG=$BUILD/examples/subprocess_fanout
[[ -x $PROG ]] || { echo "FAIL: $PROG not built"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/subprocess_fanout_test.XXXXXX") || exit 1
trap 'pkill -KILL -f "$WORK/mark" 2>/dev/null; rm -rf "$WORK"' EXIT
FAILURES=0
PASSES=0
pass() { echo "PASS: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

# 1. All succeed: exit 0, one line each, in the order given.
out=$("$PROG" --jobs 3 --deadline 20 -- "echo a" "printf 'b\nmore\n'" "echo c" "true")
rc=$?
expected="job 1: exit 0, 2 bytes: a
job 2: exit 0, 7 bytes: b
job 3: exit 0, 2 bytes: c
job 4: exit 0, 0 bytes: 
done: 4 ok, 0 failed, 0 timed out"
if [[ $rc -eq 0 && $out == "$expected" ]]; then pass "every command reported, in order, exit 0"
else fail "all-succeed run: rc $rc, output:"; echo "$out"; fi

# 2. A failure and two commands past the deadline (each starting a child of its own).
start=$(date +%s)
out=$("$PROG" --jobs 2 --deadline 1 -- "echo one" \
      "sh -c 'sleep 30; touch $WORK/mark-late1' ; echo never" "echo three; exit 3" \
      "sleep 30 & wait; touch $WORK/mark-late2")
rc=$?
took=$(( $(date +%s) - start ))
grep -qx "job 1: exit 0, 4 bytes: one" <<< "$out" && grep -qx "job 2: timed out, killed" <<< "$out" &&
  grep -qx "job 3: exit 3, 6 bytes: three" <<< "$out" && grep -qx "job 4: timed out, killed" <<< "$out" &&
  grep -qx "done: 1 ok, 1 failed, 2 timed out" <<< "$out" &&
  pass "exit codes and timeouts reported" || { fail "mixed run output:"; echo "$out"; }
[[ $rc -eq 1 ]] && pass "exit status 1 when a command failed or timed out" || fail "exit status $rc"
[[ $took -lt 15 ]] && pass "the batch ended at its deadline (${took} s)" || fail "the batch took ${took} s"
# The batch sent SIGKILL; a killed process is gone only once the kernel has run its exit, which a
# loaded machine may delay: wait for that (bounded at 10 s, well before the commands' own 30 s),
# not for a fixed half second.
left_running() { pgrep -af "$WORK/mark" || true; }
end=$((SECONDS + 10))
while [[ -n $(left_running) ]] && ((SECONDS < end)); do sleep 0.05; done
left=$(left_running)
[[ -z $left ]] && pass "nothing the timed-out commands started is left" || fail "left running: $left"
[[ ! -e $WORK/mark-late1 && ! -e $WORK/mark-late2 ]] && pass "the killed commands never finished" ||
  fail "a killed command finished"

# 3. Bad usage.
"$PROG" --jobs 0 -- true > /dev/null 2>&1; [[ $? -eq 2 ]] && pass "--jobs 0 is a usage error" || fail "--jobs 0"
"$PROG" --deadline 1 > /dev/null 2>&1; [[ $? -eq 2 ]] && pass "no command is a usage error" || fail "no command"

echo "$PASSES passed, $FAILURES failed"
[[ $FAILURES -eq 0 ]]
