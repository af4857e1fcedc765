# lib.sh — what the run_*.sh bench scripts share. Source it after defining die() and setting
# TIMEOUT (seconds per process) and PIN (an array: the command prefix that pins a bench, e.g.
# (taskset -c 1), or empty). Results go to the associative array V, key=value as printed.
declare -A V=()

# run <cmd...>: runs one bench, prints its output, records its key=value lines. A bench that
# fails or times out ends the script: a number from a broken run must not reach the table.
run() {
    local out rc=0
    out=$(timeout "$TIMEOUT" "${PIN[@]}" "$@") || rc=$?
    if [ -n "$out" ]; then printf '%s\n' "$out"; fi
    if [ "$rc" -ne 0 ]; then
        if [ "$rc" -eq 124 ]; then
            die "'$*' timed out after ${TIMEOUT}s"
        fi
        die "'$*' failed with exit status $rc"
    fi
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^([A-Za-z0-9_]+)=(.*)$ ]]; then
            V[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
        fi
    done <<<"$out"
}

# ratio <name> <numerator key> <denominator key>: prints name=num/den (n/a if missing or 0).
ratio() {
    local a=${V[$2]:-} b=${V[$3]:-}
    awk -v n="$1" -v a="$a" -v b="$b" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { printf "%s=n/a\n", n; exit }
        printf "%s=%.2f\n", n, a / b }'
}

# The CMake build type of build dir $1 ("unknown" if not a CMake build dir).
build_type_of() {
    local t
    t=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
    echo "${t:-unknown}"
}
