#!/usr/bin/env bash
# TLS benchmark: (a) TLS echo server CPU per message, simul's echo_streams beside asyncio streams +
# ssl, uvloop + ssl and Go crypto/tls; (b) full and resumed TLS handshakes per second, simul's
# echo_streams beside nginx (one worker). Server pinned to one core, the client to another.
#
#   bash bench/run_tls.sh <build-dir>        e.g. bash bench/run_tls.sh build
#
# Environment:
#   BENCH_QUICK=1          one round of 1 s measures instead of three of 3 s (smoke run)
#   BENCH_CPU=n            core for the server (default 1)
#   BENCH_CLIENT_CPU=n     core for the client (default 0)
#   BENCH_TIMEOUT=s        per-process time limit in seconds (default 900); a hang fails the run
#   BENCH_TLS_SECONDS=t    seconds per measure (overrides BENCH_QUICK's choice)
#   BENCH_TLS_ROUNDS=n     rounds over every measure; the best round of each figure is reported
#   BENCH_TLS_HS_CONNS=k   handshakes in flight in the handshake client (default 8)
#   BENCH_NO_BUILD=1       use the binaries in <build-dir> as they are (no cmake/go build)
#   BENCH_TLS_INSTRUCTIONS=1  only the counts below (no timed figure: fine on a busy machine)
#   BENCH_TLS_COUNTS=0     skip the counts below (they add about a minute)
#
# Counts (bench/tls_counts.sh), after the timed rounds and in the same echo workload for simul's
# and Go's servers: user-space instructions per message (callgrind), syscalls per message and
# the busiest calls (strace -c -f, attached once the server listens), and user and kernel
# instructions per message from perf stat where the machine has hardware counters. They do not
# move with the machine's load, unlike the CPU times (whose rounds spread by +-30% on a busy
# machine), so they are the CPU ratio's noise-free companion: tls_echo_simul_*_vs_go.
#
# Same ground for everyone: one EC P-256 certificate made here with openssl (<build>/bench/tls/),
# and one cipher: an OPENSSL_CONF given to every process limits TLS 1.3 to TLS_AES_128_GCM_SHA256,
# which Go picks by default (OpenSSL servers would otherwise follow the client's first choice,
# AES-256). Each server's negotiated version and cipher is printed (an `openssl s_client` probe)
# so the match can be seen. Echo: examples/echo_client --tls (certificate verified), 64-byte
# messages, 100 connections, one message in flight each. Handshakes: bench/tls_handshake (libssl,
# several connections in flight, each handshake then close_notify; --resume offers the latest
# ticket). Server CPU is measured as in run_echo.sh (bench/lib.sh: /proc schedstat), for nginx
# summed over the master and its worker.
#
# Output: `# round ...` comments, then key=value lines of the best rounds (tls_echo_<server>_*,
# tls_hs_<server>_<full|resumed>_*; capacity_per_s = 1 s / server CPU per handshake, the rate one
# server core would sustain, which is what compares the servers when the client's core is full),
# ratios (>1 means simul is better), then one `target ...: PASS|MISS (measured X)` line per target. A missed target or a reference that cannot
# run here is reported and the script exits 0; a server or client that fails makes it exit 1.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # bench_args, need, check_pinning, run, ratio, ...
bench_args "$@"
TIMEOUT=${BENCH_TIMEOUT:-900}
seconds_rounds TLS 3 3 1 1
HS_CONNS=${BENCH_TLS_HS_CONNS:-8}
CONNS=100
SIZE=64
PORT_WAIT=20

need timeout pgrep openssl "$PY"
check_pinning client

ECHO_CLIENT=$BUILD/examples/echo_client
SIMUL_SERVER=$BUILD/examples/echo_streams
HS_CLIENT=$BUILD/bench/tls_handshake
GOBIN=$BUILD/bench/go_tls_echo
if build_wanted; then
    bench_build -r example_echo_client example_echo_streams tls_handshake
    if command -v go >/dev/null; then
        build_go_ref go_tls_echo "$GOBIN" || fail "building the Go reference failed"
    fi
fi
for b in "$ECHO_CLIENT" "$SIMUL_SERVER" "$HS_CLIENT"; do need_built "$b"; done
"$SIMUL_SERVER" --help 2>&1 | grep -q -- --tls-cert || die "$SIMUL_SERVER has no TLS (libsimul-tls not built)"

trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# The certificate, key and OpenSSL configuration, made once per build dir.
TLSDIR=$BUILD/bench/tls
CERT=$TLSDIR/cert.pem
KEY=$TLSDIR/key.pem
mkdir -p "$TLSDIR"
if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$KEY" -out "$CERT" \
        -days 3650 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        2>/dev/null || die "openssl could not make the certificate"
fi
cat >"$TLSDIR/openssl.cnf" <<'EOF'
# run_tls.sh: every process of the benchmark negotiates TLS 1.3 with AES-128-GCM.
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = system_default
[system_default]
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF
export OPENSSL_CONF=$TLSDIR/openssl.cnf

# counts <server>...: tls_counts.sh for each, its key=value lines kept in V.
counts() {
    local s bin
    for s in "$@"; do
        case $s in simul) bin=$SIMUL_SERVER ;; go) bin=$GOBIN ;; esac
        if [ ! -x "$bin" ]; then
            echo "tls_echo_${s}_counts=n/a: $bin not built"
            continue
        fi
        kv_lines V "$(timeout -k 5 "$TIMEOUT" bash "$HERE/tls_counts.sh" "$s" "$bin" "$ECHO_CLIENT" "$CERT" "$KEY")"
    done
}
# counts_ratios: simul against Go on each count (>1: simul does less per message).
counts_ratios() {
    local k
    for k in user_instructions_per_msg syscalls_per_msg pmu_user_instructions_per_msg pmu_kernel_instructions_per_msg; do
        if [[ ${V[tls_echo_go_$k]:-} =~ ^[0-9.]+$ && ${V[tls_echo_simul_$k]:-} =~ ^[0-9.]+$ ]]; then
            ratio "tls_echo_simul_${k%_per_msg}_vs_go" "tls_echo_go_$k" "tls_echo_simul_$k"
        fi
    done
}

if [ "${BENCH_TLS_INSTRUCTIONS:-0}" = 1 ]; then
    echo "# counts only (BENCH_TLS_INSTRUCTIONS=1): per echoed message, 64 B, 10 connections; OPENSSL_CONF=$OPENSSL_CONF"
    counts simul go
    for k in $(printf '%s\n' "${!V[@]}" | sort); do echo "$k=${V[$k]}"; done
    echo "# ratios: >1 means simul does less per message than Go"
    counts_ratios
    exit 0
fi

# The command line of a server listening on port $2, or nothing (SKIP_WHY says why).
server_cmd() {
    local port=$2
    SKIP_WHY=
    CMD=()
    case $1 in
    simul) CMD=("$SIMUL_SERVER" --host "$HOST" --port "$port" --tls-cert "$CERT" --tls-key "$KEY") ;;
    asyncio | uvloop)
        CMD=("$PY" "$HERE/ref/echo_asyncio_streams_tls.py" --host "$HOST" --port "$port"
            --tls-cert "$CERT" --tls-key "$KEY")
        if [ "$1" = uvloop ]; then
            CMD+=(--uvloop)
            "$PY" -c 'import uvloop' 2>/dev/null || { SKIP_WHY="python3-uvloop not installed"; CMD=(); }
        fi ;;
    go)
        CMD=("$GOBIN" --host "$HOST" --port "$port" --tls-cert "$CERT" --tls-key "$KEY")
        [ -x "$GOBIN" ] || { SKIP_WHY="not built (go not found: package golang-go)"; CMD=(); } ;;
    nginx)
        if ! command -v nginx >/dev/null; then
            SKIP_WHY="nginx not found (package nginx-light)"
            return
        fi
        # TLS with the bench's certificate (defaults otherwise: session tickets on, as simul's
        # server).
        nginx_conf "$TLSDIR/nginx" stderr "    server {
        listen $HOST:$port ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        return 200 \"ok\\n\";
    }"
        CMD=("${NGINX[@]}") ;;
    *) die "unknown server '$1'" ;;
    esac
}

# probe <key> <port>: prints and records the version and cipher an OpenSSL client negotiates.
probe() {
    local out v c
    out=$(timeout 10 openssl s_client -connect "$HOST:$2" -brief </dev/null 2>&1 || true)
    v=$(sed -n 's/^Protocol version: *//p' <<<"$out" | head -n 1)
    c=$(sed -n 's/^Ciphersuite: *//p' <<<"$out" | head -n 1)
    V[${1}_version]=${v:-unknown}
    V[${1}_cipher]=${c:-unknown}
}

# measure <echo|hs> <server> [full|resumed]: one server process, one client run.
measure() {
    local kind=$1 name=$2 mode=${3:-} key port out rc=0
    if [ "$kind" = echo ]; then key=tls_echo_$name; else key=tls_hs_${name}_$mode; fi
    port=$(free_port)
    server_cmd "$name" "$port"
    [ ${#CMD[@]} -gt 0 ] || return 0
    start_server "$key" "$port" "${CMD[@]}" || return 0
    [ -n "${V[${key}_version]:-}" ] || probe "$key" "$port"
    local cpu0 cpu1 t0 t1
    cpu0=$(tree_cpu_ns "$SPID")
    t0=$EPOCHREALTIME
    if [ "$kind" = echo ]; then
        out=$(timeout -k 5 "$TIMEOUT" taskset -c "$CLIENT_CPU" "$ECHO_CLIENT" --host "$HOST" \
            --port "$port" --tls --ca "$CERT" --connections "$CONNS" --size "$SIZE" \
            --seconds "$SECS") || rc=$?
    else
        local flag=()
        [ "$mode" = full ] || flag=(--resume)
        out=$(timeout -k 5 "$TIMEOUT" taskset -c "$CLIENT_CPU" "$HS_CLIENT" --host "$HOST" \
            --port "$port" --connections "$HS_CONNS" --seconds "$SECS" "${flag[@]}") || rc=$?
    fi
    t1=$EPOCHREALTIME
    cpu1=$(tree_cpu_ns "$SPID")
    local alive=1
    kill -0 "$SPID" 2>/dev/null || alive=0
    stop_server
    local -A R=()
    kv_lines R "$out"
    [ "$alive" = 1 ] || { fail "$key: the server died during the run"; return 0; }
    if [ "$rc" -ne 0 ]; then
        fail "$key: the client failed with status $rc (errors=${R[errors]:-?})"
        return 0
    fi
    local n rate cpu_pct per
    if [ "$kind" = echo ]; then n=${R[msgs]:-0} rate=${R[msgs_per_s]:-0}; else n=${R[handshakes]:-0} rate=${R[handshakes_per_s]:-0}; fi
    [ "$n" -gt 0 ] || { fail "$key: nothing done"; return 0; }
    cpu_pct=$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.0f", (b - a) / 1e7 / (t1 - t0) }')
    if [ "$kind" = echo ]; then
        per=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN { printf "%.0f", (b - a) / n }')
        echo "# round $ROUND/$ROUNDS $key: msgs_per_s=$rate cpu_ns_per_msg=$per server_cpu_pct=$cpu_pct client_cpu_pct=${R[client_cpu_pct]:-} msgs=$n"
        keep_best "${key}_msgs_per_s" "$rate" '>'
        keep_best "${key}_cpu_ns_per_msg" "$per" '<'
    else
        per=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n / 1e3 }')
        echo "# round $ROUND/$ROUNDS $key: handshakes_per_s=$rate cpu_us_per_handshake=$per server_cpu_pct=$cpu_pct client_cpu_pct=${R[client_cpu_pct]:-} handshakes=$n resumed=${R[resumed]:-0} client_saw=${R[version]:-}/${R[cipher]:-}"
        # A resumed run that did not resume measures full handshakes: say so, do not report it.
        if [ "$mode" = resumed ] && [ "${R[resumed]:-0}" -lt $((n * 9 / 10)) ]; then
            fail "$key: only ${R[resumed]:-0} of $n handshakes resumed"
            return 0
        fi
        keep_best "${key}_handshakes_per_s" "$rate" '>'
        keep_best "${key}_cpu_us_per_handshake" "$per" '<'
        # What one core of the server would sustain: the wall rate is the client's when the
        # client's core is full (its half of a handshake costs as much as the server's).
        keep_best "${key}_capacity_per_s" "$(awk -v p="$per" 'BEGIN { printf "%.0f", (p > 0 ? 1e6 / p : 0) }')" '>'
        if [ "${R[client_cpu_pct]:-0}" -ge 95 ]; then
            echo "# note: $key: the client's core was full (client_cpu_pct=${R[client_cpu_pct]}): handshakes_per_s is the client's limit; compare capacity_per_s (1 s / server CPU per handshake)"
        fi
        V[${key}_resumed_pct]=$(awk -v r="${R[resumed]:-0}" -v n="$n" 'BEGIN { printf "%.0f", r * 100 / n }')
    fi
}

ECHO_SERVERS="simul asyncio uvloop go"
HS_SERVERS="simul nginx"
build_type=$(build_type_of "$BUILD")
start_lines "server on cpu $CPU, client on cpu $CLIENT_CPU"
echo "# build_type=$build_type quick=$QUICK rounds=$ROUNDS seconds_per_measure=$SECS echo: size=$SIZE connections=$CONNS; handshakes in flight=$HS_CONNS"
echo "# $(openssl version) python=$($PY -V 2>&1 | cut -d' ' -f2) uvloop=$($PY -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo none) $(go version 2>/dev/null | cut -d' ' -f3 || echo go=none) $(nginx -v 2>&1 | cut -d' ' -f3 || echo nginx=none)"
echo "# certificate: EC P-256 ($CERT); OPENSSL_CONF=$OPENSSL_CONF (TLS 1.3: TLS_AES_128_GCM_SHA256)"
echo "# server cpu time from $CPU_SOURCE"
for s in $ECHO_SERVERS nginx; do
    server_cmd "$s" 0
    if [ -n "$SKIP_WHY" ]; then echo "tls_$s: skipped: $SKIP_WHY"; fi
done

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for s in $ECHO_SERVERS; do measure echo "$s"; done
    for m in full resumed; do
        for s in $HS_SERVERS; do measure hs "$s" "$m"; done
    done
done
end_line
if [ "${BENCH_TLS_COUNTS:-1}" != 0 ]; then
    echo "# counts per echoed message (bench/tls_counts.sh; 64 B, 10 connections, not pinned, not timed)"
    counts simul go
fi

echo "# results: each figure the best of $ROUNDS round(s); version/cipher as an openssl client negotiated them"
for k in $(printf '%s\n' "${!V[@]}" | sort); do
    case $k in tls_*) echo "$k=${V[$k]}" ;; esac
done
echo "# ratios: >1 means simul is better (less CPU per message or handshake, more handshakes per second)"
for r in asyncio uvloop go; do
    ratio "tls_echo_simul_cpu_vs_$r" "tls_echo_${r}_cpu_ns_per_msg" tls_echo_simul_cpu_ns_per_msg
done
counts_ratios
for m in full resumed; do
    ratio "tls_hs_simul_${m}_rate_vs_nginx" "tls_hs_simul_${m}_handshakes_per_s" "tls_hs_nginx_${m}_handshakes_per_s"
    ratio "tls_hs_simul_${m}_cpu_vs_nginx" "tls_hs_nginx_${m}_cpu_us_per_handshake" "tls_hs_simul_${m}_cpu_us_per_handshake"
    ratio "tls_hs_simul_${m}_capacity_vs_nginx" "tls_hs_simul_${m}_capacity_per_s" "tls_hs_nginx_${m}_capacity_per_s"
done

# The ciphers must match for the comparison to mean anything.
for k in tls_echo_asyncio tls_echo_uvloop tls_echo_go tls_hs_nginx_full; do
    if [ -n "${V[${k}_cipher]:-}" ] && [ "${V[${k}_cipher]}/${V[${k}_version]}" != "${V[tls_echo_simul_cipher]:-}/${V[tls_echo_simul_version]:-}" ]; then
        echo "# warning: $k negotiated ${V[${k}_version]}/${V[${k}_cipher]}, simul ${V[tls_echo_simul_version]:-?}/${V[tls_echo_simul_cipher]:-?}"
    fi
done

# target <key> <op> <bound>: op is <= or >=, the key a ratio printed above.
target() {
    local v
    v=$(ratio x "$2" "$3" | cut -d= -f2)
    verdict "$1" "$v" ">=" 1
}
if [ "$QUICK" = 1 ]; then echo "# quick run: ${SECS} s per measure, targets checked on the short runs"; fi
target "tls_echo_simul_cpu_vs_go >= 1 (CPU per message at or below Go's)" \
    tls_echo_go_cpu_ns_per_msg tls_echo_simul_cpu_ns_per_msg
target "tls_hs_simul_full_rate_vs_nginx >= 1" tls_hs_simul_full_handshakes_per_s tls_hs_nginx_full_handshakes_per_s
target "tls_hs_simul_resumed_rate_vs_nginx >= 1" tls_hs_simul_resumed_handshakes_per_s tls_hs_nginx_resumed_handshakes_per_s
# The same target on what the server can do rather than what the single client core drives.
target "tls_hs_simul_full_capacity_vs_nginx >= 1" tls_hs_simul_full_capacity_per_s tls_hs_nginx_full_capacity_per_s
target "tls_hs_simul_resumed_capacity_vs_nginx >= 1" tls_hs_simul_resumed_capacity_per_s tls_hs_nginx_resumed_capacity_per_s

if [ "$FAILED" -gt 0 ]; then
    echo "run_tls.sh: $FAILED measure(s) or build(s) failed" >&2
    exit 1
fi
exit 0
