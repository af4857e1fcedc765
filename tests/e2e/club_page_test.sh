#!/usr/bin/env bash
# The chess club's page in headless Chromium (issue 17), through nginx over TLS -> HAProxy (PROXY
# protocol) -> club_web: a simul started by another client and one started from the page's form
# are both watched live, and every board the page holds and draws ends equal to Redis (the checks
# are in club_page.py). Screenshots in <build-dir>/test-output/club_page/. Also checks, with curl,
# the PROXY protocol between HAProxy and the web: the web names the client (through nginx, and
# straight through HAProxy), a forged X-Forwarded-For from an untrusted client is ignored, and a
# connection without a PROXY header is refused.
# Usage: club_page_test.sh <build-dir>
set -u -o pipefail
BUILD=$(cd "${1:-/nonexistent}" 2>/dev/null && pwd)
# shellcheck source=tests/e2e/club_lib.sh
. "$(dirname "$0")/club_lib.sh"
club_require
command -v chromium >/dev/null || { echo "SKIP: chromium missing"; exit 0; }
"$PY" -c 'import websockets' 2>/dev/null || { echo "SKIP: python3-websockets missing"; exit 0; }
export CLUB_WEB=2 CLUB_WORKERS=1 CLUB_MASTERS=1
club_start club_page

# ---- the PROXY protocol: who the web thinks the client is ------------------------------------
whoami() { curl -sS --max-time 20 "$@"; }
w=$(whoami --cacert "$CA" --interface 127.0.0.9 "${URL}whoami")
[[ $w == *'"addr":"127.0.0.9","scheme":"https","peer":"127.0.0.3"'* ]] &&
    pass "through nginx and HAProxy the web sees the client 127.0.0.9 over https (TCP peer: HAProxy)" ||
    fail "whoami through nginx: $w"
w=$(whoami --cacert "$CA" --interface 127.0.0.9 -H 'X-Forwarded-For: 192.0.2.66' "${URL}whoami")
[[ $w == *'"addr":"127.0.0.9"'* ]] && pass "a client's own X-Forwarded-For is walked past (nginx appends the real one)" ||
    fail "whoami with a forged XFF through nginx: $w"
w=$(whoami --interface 127.0.0.10 -H 'X-Forwarded-For: 192.0.2.66' "http://$HAPROXY/whoami")
[[ $w == *'"addr":"127.0.0.10","scheme":"http"'* ]] &&
    pass "straight to HAProxy: the PROXY header names 127.0.0.10, its forged X-Forwarded-For is ignored" ||
    fail "whoami through HAProxy only: $w"
WEB0=$(awk '$1 == "web" {print $2; exit}' "$STATE/procs")
c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$WEB0/whoami")
[[ $c == 000 ]] && pass "a connection to the web without a PROXY header is closed" ||
    fail "the web answered $c without a PROXY header"
[[ $(R CLIENT LIST | grep -c 'name=club_web_sub') == 2 ]] || fail "subscribers: $(R CLIENT LIST)"

# ---- the page ---------------------------------------------------------------------------------
SPKI=$(openssl x509 -in "$CA" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
# The first simul must still be running when the page lists the simuls, however long the
# browser takes to start: the masters are held (SIGSTOP) until the page has found it and
# club_page.py lets them go (SIGCONT), so its moves then arrive live. A wait on state, not a pace.
MASTERS=$(awk '$1 == "master" {print $3}' "$STATE/procs" | tr '\n' ' ')
[[ -n ${MASTERS// /} ]] || fail "no master in $STATE/procs"
# shellcheck disable=SC2086
kill -STOP $MASTERS
FIRST=$(post_simul 3 16 80)
[[ -n $FIRST ]] && pass "simul $FIRST started by another client" || fail "POST /simuls"
timeout 250 "$PY" "$CLUB_HERE/club_page.py" "$URL" "$SPKI" "${RADDR%:*}" "${RADDR#*:}" "$FIRST" \
    "$BUILD/test-output/club_page" "$MASTERS" || fail "club_page.py"
# shellcheck disable=SC2086
kill -CONT $MASTERS 2>/dev/null # the script let them go, unless it failed first
club_finish club_page
