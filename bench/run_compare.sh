#!/usr/bin/env bash
# Old binary against new binary, alternately in the same run: the figures a reshaping must not
# move (switch_ns, spawn_join_per_s, echo server CPU per message against the raw epoll server).
#
#   bash bench/run_compare.sh <old-build-dir> <new-build-dir>
#
# Both dirs are Release builds of two commits (the old one typically a `git worktree` of the
# previous landing). Each core measure runs ROUNDS times, old then new, pinned to BENCH_CPU; the
# echo measures run through bench/run_echo.sh with the old build's servers beside the new ones
# and the raw epoll server, back to back in every round. Output: every round, then per key the
# best of old and of new and new/old (for a time or a cost, < 1 means the new one is cheaper).
# Environment: BENCH_CPU (default 1), BENCH_CLIENT_CPU (0), ROUNDS (5), BENCH_QUICK=1 (smoke).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # run, build_type_of, ...
[ $# -eq 2 ] || { echo "usage: $0 <old-build-dir> <new-build-dir>" >&2; exit 2; }
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
ROUNDS=${ROUNDS:-5}
TIMEOUT=${BENCH_TIMEOUT:-900}
if [ "$QUICK" = 1 ]; then div=10; else div=1; fi
N_SWITCH=$((10000000 / div))
N_SPAWN=$((2000000 / div))

check_pinning
PIN=(taskset -c "$CPU")

for b in "$OLD" "$NEW"; do
    [ -x "$b/bench/core_bench" ] || die "$b/bench/core_bench not found: build $b first"
    [ -x "$b/examples/echo_streams" ] || die "$b/examples/echo_streams not found"
    echo "# $b: $(git -C "$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$b/CMakeCache.txt")" \
        log --oneline -1 2>/dev/null || echo '?') build_type=$(build_type_of "$b")"
done

declare -A BEST=()
keep_min() { # keep_min <key> <value>
    local k=$1 v=$2
    if [ -z "${BEST[$k]:-}" ] || awk -v a="$v" -v b="${BEST[$k]}" 'BEGIN { exit !(a + 0 < b + 0) }'; then
        BEST[$k]=$v
    fi
}
keep_max() {
    local k=$1 v=$2
    if [ -z "${BEST[$k]:-}" ] || awk -v a="$v" -v b="${BEST[$k]}" 'BEGIN { exit !(a + 0 > b + 0) }'; then
        BEST[$k]=$v
    fi
}

for ((r = 1; r <= ROUNDS; r++)); do
    for side in old new; do
        if [ $side = old ]; then b=$OLD; else b=$NEW; fi
        V=()
        run "$b/bench/core_bench" switch "$N_SWITCH" >/dev/null
        keep_min "${side}_switch_ns" "${V[switch_ns]}"
        run "$b/bench/core_bench" spawn "$N_SPAWN" >/dev/null
        keep_max "${side}_spawn_join_per_s" "${V[spawn_join_per_s]}"
        echo "# round $r $side: switch_ns=${V[switch_ns]} spawn_join_per_s=${V[spawn_join_per_s]}"
    done
done

echo_out=$(BENCH_ECHO_OLD=$OLD BENCH_NO_BUILD=1 BENCH_ECHO_CONNS="${BENCH_ECHO_CONNS:-100}" \
    BENCH_ECHO_ROUNDS=$ROUNDS BENCH_ECHO_SERVERS="epoll old_streams streams old_protocol protocol" \
    bash "$HERE/run_echo.sh" "$NEW")
grep -E '^# round|^echo_.*_cpu_ns_per_msg=' <<<"$echo_out" || true

echo "# best of $ROUNDS rounds"
for k in switch_ns spawn_join_per_s; do
    echo "old_$k=${BEST[old_$k]} new_$k=${BEST[new_$k]} new_over_old_$k=$(awk -v a="${BEST[new_$k]}" -v b="${BEST[old_$k]}" 'BEGIN { printf "%.3f", a / b }')"
done
for c in ${BENCH_ECHO_CONNS:-100}; do
    e=$(sed -n "s/^echo_epoll_c${c}_cpu_ns_per_msg=//p" <<<"$echo_out")
    for s in streams protocol; do
        o=$(sed -n "s/^echo_old_${s}_c${c}_cpu_ns_per_msg=//p" <<<"$echo_out")
        n=$(sed -n "s/^echo_${s}_c${c}_cpu_ns_per_msg=//p" <<<"$echo_out")
        awk -v s="$s" -v c="$c" -v o="$o" -v n="$n" -v e="$e" 'BEGIN {
            if (o == "" || n == "" || e == "") { printf "echo_%s_c%s: n/a\n", s, c; exit }
            printf "echo_%s_c%s_cpu_ns_per_msg old=%s new=%s epoll=%s old_x_epoll=%.2f new_x_epoll=%.2f new_over_old=%.3f\n",
                s, c, o, n, e, o / e, n / e, n / o }'
    done
done
