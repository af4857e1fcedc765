#!/usr/bin/env bash
# AMQP benchmark: libsimul-amqp (examples/amqp_work_queue) beside Go's amqp091-go
# (bench/ref/go_amqp, Debian's golang-github-rabbitmq-amqp091-go-dev) and python3-pika
# (bench/ref/pika_amqp.py) on the same RabbitMQ node in the same run: publish N 1 KiB messages with
# confirms (a window of 1000 in flight for simul and Go; pika confirms one at a time, its API's
# way), then consume them with prefetch 200 and grouped acks. Each figure is messages per second
# over the whole client process (connect, declare, work, close), the best of ROUNDS rounds, the
# implementations interleaved within each round so drift hits them alike.
#
#   bash bench/run_amqp.sh <build-dir>        e.g. bash bench/run_amqp.sh build
#
# Environment:
#   BENCH_QUICK=1     5,000 messages, 1 round (smoke run); default 100,000 messages, 3 rounds
#   BENCH_PERSISTENT=1  persistent messages (the broker's disk then dominates every client)
#   BENCH_CPU=n       core for the clients (default 1; the broker gets the others)
#   BENCH_TIMEOUT=s   per-process time limit in seconds (default 600)
#
# Output: amqp_<op>_<impl>=msgs/s, then amqp_publish_confirm_vs_go= and amqp_consume_vs_go=
# (simul over Go) and one `target ...: PASS|MISS` line each (target >= 1). The broker is started
# by tests/amqp/broker.sh in a temp dir on loopback and stopped (with its epmd) on exit.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
PERSIST=${BENCH_PERSISTENT:-0}

if [ "$QUICK" = 1 ]; then N=5000; ROUNDS=1; else N=100000; ROUNDS=3; fi
SIZE=1024 WINDOW=1000 PREFETCH=200
EX=$BUILD/examples/amqp_work_queue
GOBIN=$BUILD/bench/go_amqp
SH=$ROOT/tests/amqp/broker.sh

check_pinning
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "rabbitmq-server is not installed (make deps)"
need_py pika python3-pika
[ -d /usr/share/gocode/src/github.com/rabbitmq/amqp091-go ] ||
    die "golang-github-rabbitmq-amqp091-go-dev is not installed (make deps)"

bench_build example_amqp_work_queue
need_built "$EX" librabbitmq-dev
# Go: Debian's packaged module is a GOPATH tree, so build in GOPATH mode (no network).
mkdir -p "$BUILD/bench"
(cd "$HERE/ref/go_amqp" && GO111MODULE=off GOFLAGS= GOPATH="$BUILD/go-path:/usr/share/gocode" \
    GOCACHE="${GOCACHE:-$BUILD/go-cache}" go build -o "$GOBIN" .) >&2 || die "building go_amqp failed"

STATE=$(mktemp -d "${TMPDIR:-/tmp}/run_amqp.XXXXXX")
cleanup() { bash "$SH" stop "$STATE/broker" >&2 || true; rm -rf "$STATE"; }
trap cleanup EXIT
bash "$SH" start "$STATE/broker" >&2 || die "the broker did not start"
PORT=$(bash "$SH" port "$STATE/broker")
URL="amqp://guest:guest@127.0.0.1:$PORT/"

PIN=(taskset -c "$CPU")

TRANSIENT=1
[ "$PERSIST" = 1 ] && TRANSIENT=0
# timed <key> <cmd...>: runs one client, checks it reports the count, records msgs/s (best so far).
timed() {
    local key=$1 t0 t1 out rate
    shift
    t0=$(date +%s.%N)
    out=$(timeout "$TIMEOUT" "${PIN[@]}" "$@") || die "'$*' failed or timed out"
    t1=$(date +%s.%N)
    grep -Eq "^(confirmed|consumed)=$N\$" <<<"$out" || die "'$*' did not report $N: $out"
    rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    if [ -z "${V[$key]:-}" ] || [ "$rate" -gt "${V[$key]}" ]; then V[$key]=$rate; fi
    echo "# round $r: $key=$rate"
}

start_lines "clients pinned to cpu $CPU"
echo "# build_type=$(build_type_of "$BUILD") quick=$QUICK messages=$N size=$SIZE window=$WINDOW prefetch=$PREFETCH transient=$TRANSIENT rounds=$ROUNDS"
echo "# rabbitmq=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) amqp091-go=$(dpkg-query -W -f='${Version}' golang-github-rabbitmq-amqp091-go-dev 2>/dev/null) pika=$("$PY" -c 'import pika; print(pika.__version__)')"
TFLAG=()
[ "$TRANSIENT" = 1 ] && TFLAG=(--transient)
for r in $(seq 1 "$ROUNDS"); do
    q="bench-$$-$r"
    timed amqp_publish_confirm_simul "$EX" --url "$URL" publish --queue "$q-simul" --count "$N" \
        --size "$SIZE" --window "$WINDOW" "${TFLAG[@]}"
    timed amqp_publish_confirm_go "$GOBIN" "$URL" publish "$q-go" "$N" "$SIZE" "$WINDOW" "$TRANSIENT"
    timed amqp_publish_confirm_pika "$PY" "$HERE/ref/pika_amqp.py" "$URL" publish "$q-pika" "$N" \
        "$SIZE" "$WINDOW" "$TRANSIENT"
    timed amqp_consume_simul "$EX" --url "$URL" consume --queue "$q-simul" --count "$N" \
        --prefetch "$PREFETCH"
    timed amqp_consume_go "$GOBIN" "$URL" consume "$q-go" "$N" "$PREFETCH"
    timed amqp_consume_pika "$PY" "$HERE/ref/pika_amqp.py" "$URL" consume "$q-pika" "$N" "$PREFETCH"
done
end_line
for k in amqp_publish_confirm_simul amqp_publish_confirm_go amqp_publish_confirm_pika \
    amqp_consume_simul amqp_consume_go amqp_consume_pika; do
    echo "$k=${V[$k]}"
done
ratio amqp_publish_confirm_vs_go amqp_publish_confirm_simul amqp_publish_confirm_go | tee -a "$STATE/r"
ratio amqp_consume_vs_go amqp_consume_simul amqp_consume_go | tee -a "$STATE/r"
ratio amqp_publish_confirm_vs_pika amqp_publish_confirm_simul amqp_publish_confirm_pika
ratio amqp_consume_vs_pika amqp_consume_simul amqp_consume_pika
[ "$QUICK" = 1 ] && echo "# quick run: $N messages, one round; the targets are checked on it"
while IFS='=' read -r k v; do
    verdict "$k>=1" "$v" ">=" 1
done <"$STATE/r"
exit 0
