#!/usr/bin/env bash
# demo.sh — what `make demo` runs until the chess simul exists: the founding talk's examples.
# hello (three tasks sleeping together), then the talk's two echo servers (stream-based and
# callback-based) each under 100 connections of echo_client for two seconds, on loopback.
# Usage: bash examples/demo.sh <build-dir>
set -euo pipefail
B=${1:-build}/examples
for p in hello echo_streams echo_protocol echo_client; do
    [ -x "$B/$p" ] || { echo "demo: $B/$p not built" >&2; exit 1; }
done

echo "== hello: three tasks, each 'Hello', sleep 1 s, 'World' =="
"$B/hello" --tasks 3 --seconds 1

pid=
out=$(mktemp)
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$out"' EXIT
for server in echo_streams echo_protocol; do
    echo
    echo "== $server: the talk's echo server, 100 connections for 2 s =="
    "$B/$server" --host 127.0.0.1 --port 0 >"$out" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "demo: $server did not start" >&2; exit 1; }
    timeout 30 "$B/echo_client" --host 127.0.0.1 --port "$port" --connections 100 --size 64 \
        --seconds 2 | grep -E '^(msgs_per_s|p50_us|p99_us|errors|connections)='
    kill -INT "$pid"
    wait "$pid" || true
    pid=
done
