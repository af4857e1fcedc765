#!/usr/bin/env bash
# End-to-end test of the chess simul's page in headless Chromium (the checks are in
# examples/chess_simul/tests/web_test.py): the page loads, 50 boards change while the simul plays
# over WebSocket and over SSE, the table and chart are drawn, no console errors; the screenshots
# and DOMs are kept in <build-dir>/test-output/chess_web/. SKIP without chromium, python3's
# websockets or the web part (libsimul-http).
# Usage: chess_web_test.sh <build-dir>.
set -u -o pipefail
BUILD=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROG=$BUILD/examples/chess_simul
if [[ ! -x $PROG ]]; then
    echo "FAIL: $PROG not built"
    exit 1
fi
if ! "$PROG" --help | grep -q -- --no-web; then
    echo "SKIP: chess_simul was built without its page (libsimul-http)"
    exit 0
fi
if ! /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
    echo "SKIP: /usr/bin/python3 has no websockets (Debian package python3-websockets)"
    exit 0
fi
exec timeout 280 /usr/bin/python3 "$ROOT/examples/chess_simul/tests/web_test.py" "$PROG" \
    "$BUILD/test-output/chess_web"
