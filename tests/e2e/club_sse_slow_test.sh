#!/usr/bin/env bash
# club_web's SSE fan-out with a client too slow (issue 17): one club_web worker on a Redis of its
# own, two SSE clients of one simul; one reads everything, the other reads its response head and
# then nothing (a 4 KiB receive buffer). MOVES moves are published (as club_master does: RPUSH,
# HSET, PUBLISH) in steps, each step once the reading client has all of it. Checks:
#  - the reading client has every move, in order, none twice: the slow one cost it nothing;
#  - the slow one, read at last, has moves 1..k in order (k < MOVES), then an "overflow" event
#    saying why, then the end of the stream: dropped, with a reason, its queue freed;
#  - reconnected, it catches up from Redis: moves 1..MOVES in order;
#  - the worker is still serving (/healthz) and exits cleanly on SIGTERM.
# Every wait is for a state (bounded); nothing is timed. Usage: club_sse_slow_test.sh <build-dir>
set -u -o pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
WEB=$BUILD/examples/club_web
[[ -x $WEB ]] || { echo "SKIP: club_web not built"; exit 0; }
command -v redis-server >/dev/null || { echo "SKIP: redis-server missing"; exit 0; }
/usr/bin/python3 -c 'import redis' 2>/dev/null || { echo "SKIP: python3-redis missing"; exit 0; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/club_sse_slow.XXXXXX") || exit 1
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" >/dev/null 2>&1 &
PIDS+=($!)
# Start-up waits are bounded in seconds (180: a bound, not an expectation), not in polls: each
# poll forks, and a loaded machine once took ~55 s to start the club's servers.
up_by=$((SECONDS + 180))
until redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG; do
    ((SECONDS < up_by)) || break
    sleep 0.05
done
redis-cli -p "$RP" ping | grep -q PONG || { echo "FAIL: redis did not start"; exit 1; }

"$WEB" --host 127.0.0.1 --port 0 --workers 1 --redis "127.0.0.1:$RP" --sse-send-timeout 600 2>"$WORK/web.err" &
WEB_PID=$!
PIDS+=($WEB_PID)
up_by=$((SECONDS + 180))
until grep -q "gen=1 ready" "$WORK/web.err"; do
    if ((SECONDS >= up_by)) || ! kill -0 "$WEB_PID" 2>/dev/null; then
        break # out of time, or gone (it will not get ready)
    fi
    sleep 0.05
done
PORT=$(sed -n 's/.*workers on port \([0-9]*\).*/\1/p' "$WORK/web.err" | head -1)
[[ -n $PORT ]] || { echo "FAIL: club_web did not start: $(tail -3 "$WORK/web.err")"; exit 1; }

/usr/bin/python3 - "$PORT" "$RP" <<'EOF'
import json, socket, sys, threading

import redis

port, rport = int(sys.argv[1]), int(sys.argv[2])
MOVES, STEP, ID = 50000, 1000, 4242
START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
db = redis.Redis(host="127.0.0.1", port=rport)
k = f"club:{{{ID}}}"
db.hset(k, mapping={"boards": 1, "moves": 1000000, "state": "playing", "played": 0,
                    "n:0": 0, "fen:0": START})


def connect(rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(60)  # a bound on every wait, never a measure
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /simuls/{ID}/events HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)  # byte by byte: nothing of the body is taken from the kernel
        if not b:
            sys.exit("FAIL: no response head")
        head += b
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        sys.exit(f"FAIL: {head[:80]!r}")
    return s


class Reader:
    """An SSE stream's events (name, n) as they come; the chunked framing is skipped (each
    event is one chunk, and its lines never start with a hex digit and end in CR)."""

    def __init__(self, s):
        self.s, self.buf, self.events, self.closed = s, b"", [], False
        self.cv = threading.Condition()

    def pump(self, until):
        """Reads until until(self) holds or the stream ends (its last chunk, or EOF)."""
        while not until(self):
            b = self.s.recv(65536)
            if not b:
                self.closed = True
                return
            self.buf += b
            while b"\n\n" in self.buf:
                ev, self.buf = self.buf.split(b"\n\n", 1)
                name, n = "message", None
                for line in ev.split(b"\n"):
                    line = line.split(b"\r\n")[-1]  # a chunk's size line precedes the event
                    if line.startswith(b"event: "):
                        name = line[7:].decode()
                    elif line.startswith(b"data: {") and name == "move":
                        n = json.loads(line[6:])["n"]
                    elif line.startswith(b"data: ") and name == "overflow":
                        n = json.loads(line[6:])["reason"]
                if not ev.startswith(b":") and not ev.split(b"\r\n")[-1].startswith(b":"):
                    with self.cv:
                        self.events.append((name, n))
                        self.cv.notify_all()
            if self.buf.endswith(b"0\r\n\r\n") and self.buf.strip(b"\r\n") in (b"0",):
                self.closed = True  # the last chunk: the stream ended
                return

    def moves(self):
        return [n for name, n in self.events if name == "move"]


fast_s, slow_s = connect(), connect(rcvbuf=4096)
fast = Reader(fast_s)
got = 0
t = threading.Thread(target=lambda: fast.pump(lambda r: len(r.moves()) >= MOVES or r.closed))
t.start()
pipe = db.pipeline(transaction=False)
n = 0
while n < MOVES:
    for _ in range(STEP):
        n += 1
        mv = "e2e4" if n % 2 else "e7e5"
        pipe.rpush(k + ":moves:0", mv)
        pipe.hset(k, "n:0", n)
        pipe.publish(f"club:{{{ID}}}:events",
                     json.dumps({"board": 0, "n": n, "move": mv, "fen": START, "result": ""}))
    pipe.execute()
    with fast.cv:  # the next step once the reading client has this one
        if not fast.cv.wait_for(lambda: len(fast.moves()) >= n or fast.closed, timeout=60):
            sys.exit(f"FAIL: the reading client has {len(fast.moves())} of {n} moves")
t.join(60)
fm = fast.moves()
if fm != list(range(1, MOVES + 1)):
    sys.exit(f"FAIL: the reading client's moves: {len(fm)}, first wrong at "
             f"{next((i for i, m in enumerate(fm) if m != i + 1), len(fm))}")
print(f"PASS: the reading client has all {MOVES} moves in order")

slow = Reader(slow_s)
slow.pump(lambda r: r.closed)
sm = slow.moves()
names = [name for name, _ in slow.events]
if not slow.closed:
    sys.exit("FAIL: the slow client's stream did not end")
if "overflow" not in names or names[-1] != "overflow":
    sys.exit(f"FAIL: the slow client's stream ended without an overflow event last: {names[-3:]}")
if sm != list(range(1, len(sm) + 1)) or len(sm) >= MOVES:
    sys.exit(f"FAIL: the slow client's moves before the drop: {len(sm)}, not 1..k in order")
print(f"PASS: the slow client got moves 1..{len(sm)}, then dropped with: {slow.events[-1][1]}")
slow_s.close()

again = Reader(connect())
again.pump(lambda r: len(r.moves()) >= MOVES or r.closed)
if again.moves() != list(range(1, MOVES + 1)):
    sys.exit(f"FAIL: the reconnected client caught up {len(again.moves())} moves, not 1..{MOVES}")
print(f"PASS: reconnected, it caught up all {MOVES} moves from Redis")
again.s.close()
fast_s.close()
EOF
rc=$?
[[ $rc -eq 0 ]] || { echo "FAIL: the SSE checks (exit $rc)"; tail -5 "$WORK/web.err"; exit 1; }

[[ $(curl -s --max-time 10 "http://127.0.0.1:$PORT/healthz") == ok ]] || { echo "FAIL: /healthz"; exit 1; }
echo "PASS: the worker still serves"
kill -TERM "$WEB_PID"
wait "$WEB_PID"
wrc=$?
[[ $wrc -eq 0 ]] || { echo "FAIL: club_web exited $wrc on SIGTERM: $(tail -3 "$WORK/web.err")"; exit 1; }
PIDS=("${PIDS[@]:0:1}")
echo "PASS: club_web stopped cleanly"
