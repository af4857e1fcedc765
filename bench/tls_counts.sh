#!/usr/bin/env bash
# tls_counts.sh: the noise-free companions of run_tls.sh's echo CPU figure, for simul's and Go's
# TLS echo servers in the same workload (echo_client --tls, 64-byte messages): user-space
# instructions per message (valgrind callgrind), syscalls per message (strace -c -f, attached
# once the server listens), and user/kernel instructions per message from the PMU (perf stat)
# where the machine has hardware counters. Each figure is the difference of a short and a long
# run divided by the difference of their message counts, so start-up and handshakes cancel out.
#
#   bash bench/tls_counts.sh <simul|go> <server binary> <echo_client> <cert> <key>
#
# Environment: TLS_COUNT_CONNS (default 10), TLS_COUNT_SECONDS ("short long", default "3 8"),
# TLS_COUNT_TOOLS (default "cg st pf"), OPENSSL_CONF as run_tls.sh sets it.
# Output: tls_echo_<name>_user_instructions_per_msg=, tls_echo_<name>_syscalls_per_msg=,
# tls_echo_<name>_syscall_mix= (the busiest calls per message), tls_echo_<name>_pmu_...=; a
# figure that cannot be measured here says why in its value ("n/a: ...").
set -uo pipefail

[ $# -eq 5 ] || { echo "usage: $0 <simul|go> <server> <echo_client> <cert> <key>" >&2; exit 2; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # free_port, port_open (HOST, PY)
NAME=$1 SERVER=$2 CLIENT=$3 CERT=$4 KEY=$5
CONNS=${TLS_COUNT_CONNS:-10}
read -r SHORT LONG <<<"${TLS_COUNT_SECONDS:-3 8}"
TOOLS=${TLS_COUNT_TOOLS:-cg st pf}
# Go's asynchronous preemption signals trip callgrind's signal bookkeeping; one core as in the
# timed run (GOMAXPROCS follows the affinity mask there).
export GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1

# one_run <tool> <seconds> -> "<count> <messages>" (count: instructions, syscalls, or
# "user kernel" for pf), or nothing on failure. The syscall mix of a strace run is left in
# $WORK/mix.<seconds>.
one_run() {
    local tool=$1 secs=$2 port pid i tracer= out
    port=$(free_port)
    local srv=("$SERVER" --host "$HOST" --port "$port" --tls-cert "$CERT" --tls-key "$KEY")
    if [ "$tool" = cg ]; then
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$secs" "${srv[@]}" \
            >/dev/null 2>"$WORK/vg.$secs" &
    else
        "${srv[@]}" >/dev/null 2>&1 &
    fi
    pid=$!
    for ((i = 0; i < 600; i++)); do
        port_open "$port" && break
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    if [ "$tool" = st ]; then
        # every thread of the server (Go has several), and those it starts later (-f)
        strace -f -c -o "$WORK/st.$secs" -p "$(ls /proc/$pid/task | paste -sd,)" 2>/dev/null &
        tracer=$!
    elif [ "$tool" = pf ]; then
        perf stat -x, -e instructions:u,instructions:k -o "$WORK/pf.$secs" -p "$pid" 2>/dev/null &
        tracer=$!
    fi
    [ -z "$tracer" ] || sleep 0.5 # attached before the client starts
    timeout 120 "$CLIENT" --host "$HOST" --port "$port" --connections "$CONNS" --size 64 \
        --seconds "$secs" --tls --ca "$CERT" >"$WORK/cli.$secs" 2>&1
    if [ -n "$tracer" ]; then
        kill -INT "$tracer" 2>/dev/null
        wait "$tracer" 2>/dev/null
    fi
    # INT stops simul's server cleanly; Go's under valgrind takes TERM (either way valgrind
    # writes its totals on the way out, which KILL would lose)
    local sig
    for sig in INT TERM; do
        kill -"$sig" "$pid" 2>/dev/null
        for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local msgs
    msgs=$(sed -n 's/^msgs=//p' "$WORK/cli.$secs")
    [ -n "$msgs" ] || return 0
    case $tool in
    cg) out=$(sed -n 's/^==[0-9]*== Collected : //p' "$WORK/vg.$secs" | tail -n 1) ;;
    st)
        # strace -c's columns: % time, seconds, usecs/call, calls, [errors], syscall
        out=$(awk '$NF == "total" { print $4 }' "$WORK/st.$secs")
        awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$WORK/st.$secs" >"$WORK/mix.$secs" ;;
    pf)
        local u k
        u=$(awk -F, '$3 ~ /instructions:u/ { print $1 }' "$WORK/pf.$secs")
        k=$(awk -F, '$3 ~ /instructions:k/ { print $1 }' "$WORK/pf.$secs")
        [[ $u =~ ^[0-9]+$ && $k =~ ^[0-9]+$ ]] && out="$u $k" ;;
    esac
    [ -n "${out:-}" ] && echo "$out $msgs"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tls_counts.XXXXXX")
[ -n "${TLS_COUNT_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
key=tls_echo_$NAME

for tool in $TOOLS; do
    case $tool in
    cg)
        if ! command -v valgrind >/dev/null; then
            echo "${key}_user_instructions_per_msg=n/a: valgrind not installed"
            continue
        fi
        read -r i1 m1 < <(one_run cg "$SHORT")
        read -r i2 m2 < <(one_run cg "$LONG")
        if [ -n "${m2:-}" ] && [ -n "${m1:-}" ] && [ "$m2" -gt "$m1" ]; then
            echo "${key}_user_instructions_per_msg=$(((i2 - i1) / (m2 - m1)))"
        else
            echo "${key}_user_instructions_per_msg=n/a: the callgrind runs failed"
        fi ;;
    st)
        if ! command -v strace >/dev/null; then
            echo "${key}_syscalls_per_msg=n/a: strace not installed"
            continue
        fi
        read -r s1 m1 < <(one_run st "$SHORT")
        read -r s2 m2 < <(one_run st "$LONG")
        if [ -n "${m2:-}" ] && [ -n "${m1:-}" ] && [ "$m2" -gt "$m1" ]; then
            echo "${key}_syscalls_per_msg=$(awk -v a="$s1" -v b="$s2" -v m="$m1" -v n="$m2" 'BEGIN { printf "%.2f", (b - a) / (n - m) }')"
            # each call's count per message (long run minus short run), the busiest first
            echo "${key}_syscall_mix=$(awk -v m="$m1" -v n="$m2" 'FNR == NR { a[$1] = $2; next }
                { d = ($2 - a[$1]) / (n - m); if (d >= 0.01) printf "%s %.2f\n", $1, d }' \
                "$WORK/mix.$SHORT" "$WORK/mix.$LONG" | sort -k2 -rn | head -n 6 | awk '{ printf "%s%s=%s", (NR > 1 ? "," : ""), $1, $2 }')"
        else
            echo "${key}_syscalls_per_msg=n/a: the strace runs failed"
        fi ;;
    pf)
        if ! command -v perf >/dev/null; then
            echo "${key}_pmu_instructions_per_msg=n/a: perf not installed"
            continue
        fi
        if perf stat -x, -e instructions:u true 2>&1 | grep -q 'not supported'; then
            echo "${key}_pmu_instructions_per_msg=n/a: no hardware counters here (perf: instructions not supported)"
            continue
        fi
        read -r u1 k1 m1 < <(one_run pf "$SHORT")
        read -r u2 k2 m2 < <(one_run pf "$LONG")
        if [ -n "${m2:-}" ] && [ -n "${m1:-}" ] && [ "$m2" -gt "$m1" ]; then
            echo "${key}_pmu_user_instructions_per_msg=$(((u2 - u1) / (m2 - m1)))"
            echo "${key}_pmu_kernel_instructions_per_msg=$(((k2 - k1) / (m2 - m1)))"
        else
            echo "${key}_pmu_instructions_per_msg=n/a: the perf runs failed"
        fi ;;
    esac
done
