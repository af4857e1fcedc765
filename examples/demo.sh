#!/usr/bin/env bash
# demo.sh — what `make demo` runs: the chess simul of the founding talk. One master plays 50
# boards over real sockets on loopback, first one game after another, then all at once, and the
# seed's table is printed with the model's prediction beside the measurement (about 11 s at the
# default scale, one seed minute = one millisecond).
# Usage: bash examples/demo.sh <build-dir> [chess_simul options, e.g. --boards 10 --moves 5]
set -euo pipefail
B=${1:-build}
[ $# -gt 0 ] && shift
exe=$B/examples/chess_simul
[ -x "$exe" ] || { echo "demo: $exe not built" >&2; exit 1; }
echo "== the chess simul: a master against many boards, one task, real sockets =="
exec "$exe" --compare "$@"
