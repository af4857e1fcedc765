#!/usr/bin/env bash
# Instruction counts per operation of the core's hot paths (callgrind), for the measures of
# bench/core_bench.c: each runs at n and 2n operations, and (I(2n) - I(n)) / n is the count per
# operation, start-up and teardown cancelled out. Deterministic: fine on a shared machine.
#
#   bash bench/run_core_instr.sh <build-dir>
#
# Environment: BENCH_QUICK=1 (n / 4), BENCH_TIMEOUT=s (per process, default 900).
# Output: instr_<measure>=<instructions per operation>, then one `target ...: PASS|MISS` line per
# target (a compact wait or sleep costs over a stackful one no more than a compact switch costs
# over a stackful switch, plus 32 instructions: the wait itself adds nothing beyond the copies).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QUICK=${BENCH_QUICK:-0}
TIMEOUT=${BENCH_TIMEOUT:-900}
PIN=()
unset SIMUL_DEBUG SIMUL_TASKS

die() { echo "run_core_instr.sh: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BIN=$BUILD/bench/core_bench
[ -x "$BIN" ] || die "no $BIN: build the core_bench target first"
command -v valgrind >/dev/null || die "valgrind is not installed (DEB_PACKAGES: valgrind)"
echo "build_type=$(build_type_of "$BUILD")"
if [ "$QUICK" = 1 ]; then div=4; else div=1; fi

# collected <measure> <n>: callgrind's instruction total for one run.
collected() {
    local out
    out=$(timeout "$TIMEOUT" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$BIN" "$1" "$2" 2>&1 >/dev/null) || die "'$BIN $1 $2' failed under callgrind"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out" | tail -n 1
}

# per_op <measure> <n> [runs]: instructions per operation, printed as instr_<measure>=X; `runs`:
# how many times the measure does its n operations (switch: 5).
per_op() {
    local a b key=instr_${1//-/_} runs=${3:-1}
    a=$(collected "$1" "$2")
    b=$(collected "$1" $(($2 * 2)))
    [ -n "$a" ] && [ -n "$b" ] || die "no callgrind total for $1"
    run awk -v k="$key" -v a="$a" -v b="$b" -v n="$(($2 * runs))" \
        'BEGIN { printf "%s=%.1f\n", k, (b - a) / n }'
}

per_op switch $((100000 / div)) 5
per_op switch-compact $((100000 / div)) 5
for m in wait wait-deadline sleep; do
    per_op "$m" $((200000 / div))
    per_op "$m-compact" $((200000 / div))
done
per_op later $((200000 / div))
per_op later-mixed $((200000 / div))
per_op later-cancel $((200000 / div))
per_op timer $((40000 / div)) # call_later callbacks with random delays in [0, 1 s): ~1 s each run

# target <name> <measure>: compact minus stackful, against the switch's compact minus stackful.
target() {
    awk -v n="$1" -v c="${V[instr_$2_compact]:-}" -v s="${V[instr_$2]:-}" \
        -v sc="${V[instr_switch_compact]:-}" -v ss="${V[instr_switch]:-}" 'BEGIN {
        if (c == "" || s == "" || sc == "" || ss == "") { printf "target %s: MISS (no figure)\n", n; exit }
        d = c - s; lim = sc - ss + 32
        printf "target %s (compact - stackful <= %.0f): %s (measured %.0f)\n", n, lim,
               d <= lim ? "PASS" : "MISS", d }'
}
target compact_wait_extra wait
target compact_sleep_extra sleep
