#!/usr/bin/env bash
# Instruction counts per operation of the core's hot paths (callgrind), for the measures of
# bench/core_bench.c: each runs at n and 2n operations, and (I(2n) - I(n)) / n is the count per
# operation, start-up and teardown cancelled out. Deterministic: fine on a shared machine.
#
#   bash bench/run_core_instr.sh <build-dir>
#
# Environment: BENCH_QUICK=1 (n / 4), BENCH_TIMEOUT=s (per process, default 900).
# Output: instr_<measure>=<instructions per operation>, alloc_<measure>=<instructions inside the
# allocator per operation>, then one `target ...: PASS|MISS` line per target (a steady-state
# compact wait and sleep spend under one instruction per operation in malloc/free).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
TIMEOUT=${BENCH_TIMEOUT:-900}
unset SIMUL_TASKS

BIN=$BUILD/bench/core_bench
bench_build core_bench
need_built "$BIN"
need valgrind
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

# alloc_per_op <measure> <n>: instructions spent inside malloc, calloc, realloc and free per
# operation (callgrind's self cost of glibc's allocator functions), as alloc_<measure>=X.
alloc_per_op() {
    local f key=alloc_${1//-/_}
    f=$(mktemp)
    timeout "$TIMEOUT" valgrind --tool=callgrind --callgrind-out-file="$f" "$BIN" "$1" "$2" \
        >/dev/null 2>&1 || { rm -f "$f"; die "'$BIN $1 $2' failed under callgrind"; }
    run awk -v k="$key" -v n="$2" -v tot="$(callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null |
        awk '!/=>/ && /malloc\.c:|:(malloc|calloc|realloc|free|cfree)[ @]/ { gsub(",", "", $1); s += $1 }
             END { print s + 0 }')" 'BEGIN { printf "%s=%.2f\n", k, tot / n }'
    rm -f "$f"
}
alloc_per_op wait-compact $((200000 / div))
alloc_per_op sleep-compact $((200000 / div))

# A steady-state compact wait calls no allocator (it used to take one malloc and free per
# wait): what is left is the one-off warm-up (records, chunks, copies) spread over n.
target() { # target <name> <key> <max>
    awk -v n="$1" -v a="${V[$2]:-}" -v m="$3" 'BEGIN {
        if (a == "") { printf "target %s: MISS (no figure)\n", n; exit }
        printf "target %s (<= %s): %s (measured %s)\n", n, m, a + 0 <= m + 0 ? "PASS" : "MISS", a }'
}
target compact_wait_allocator_instructions alloc_wait_compact 1
target compact_sleep_allocator_instructions alloc_sleep_compact 1
