#!/usr/bin/python3
"""club_load.py — the chess club tests' steady load, one mode per kind of client, each until the
stop file exists (a safety bound of --max-seconds), counters written to --status as JSON
(replaced atomically every few requests and at the end) so a test waits for "N more answered",
never for time.

  get  URL PATH... --conns C     C keep-alive threads GETting the paths in turn. As a browser or
                                  urllib3 does for an idempotent GET, a request that fails on a
                                  *reused* connection before any byte of the answer is retried
                                  once on a fresh one (`retried`); what still fails, or answers
                                  other than 200, is `failed`, with the reason and the time.
  post URL --conns C             C threads POSTing small simuls; `ids` the ones answered 202
                                  (the job confirmed by the broker), `failed` the others (503:
                                  the job not confirmed, the client told so).
  sse  URL ID --conns C          C Server-Sent Events clients of simul ID, each reconnecting
                                  (as EventSource does) until its end event and keeping each
                                  board's moves (n must follow n-1; a replay after a reconnection
                                  is skipped); `moves` per client, `reconnects`, `errors`.
URL is http:// or https:// (--cacert CA). Exit 0; the test judges the counters."""
import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from http_load import Load  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["get", "post", "sse"])
ap.add_argument("url")
ap.add_argument("args", nargs="*")
ap.add_argument("--conns", type=int, default=8)
ap.add_argument("--cacert")
ap.add_argument("--status", required=True)
ap.add_argument("--stop", required=True)
ap.add_argument("--max-seconds", type=float, default=120)
opt = ap.parse_args()

u = urllib.parse.urlsplit(opt.url)
ctx = None
if u.scheme == "https":
    ctx = ssl.create_default_context(cafile=opt.cacert)
load = Load(opt.status, opt.stop, opt.max_seconds, dump_every=20)
c, lock, note, running = load.c, load.lock, load.note, load.running


def connect(timeout=20):
    if ctx:
        return http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def post_worker(k):
    c.setdefault("ids", [])
    while running():
        conn = connect()
        try:
            conn.request("POST", "/simuls", body=json.dumps({"boards": 1, "moves": 4}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            if r.status == 202:
                with lock:
                    c["ids"].append(json.loads(body)["id"])
                note("ok")
            else:
                note("failed", "status %d: %s" % (r.status, body[:80].decode("utf-8", "replace")))
        except (OSError, http.client.HTTPException, ValueError) as e:
            note("failed", type(e).__name__)
        finally:
            conn.close()


def sse_worker(sid, k):
    """One EventSource: reconnects until `end`; moves[b] holds board b's moves in order."""
    moves, mine = {}, {"reconnects": 0, "errors": [], "ended": False, "live": 0}
    with lock:
        c.setdefault("clients", []).append(mine)
    mine["moves"] = moves
    first = True
    while running() and not mine["ended"]:
        if not first:
            with lock:
                mine["reconnects"] += 1
        first = False
        conn = connect(timeout=30)
        try:
            conn.request("GET", "/simuls/%s/events" % sid, headers={"Accept": "text/event-stream"})
            r = conn.getresponse()
            if r.status != 200:
                mine["errors"].append("status %d" % r.status)
                r.read()
                time.sleep(0.2)  # EventSource's retry delay after an error answer
                continue
            event = None
            while True:
                line = r.readline()  # chunked decoding (r.fp is the raw socket)
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "move":
                    d = json.loads(line[6:])
                    lst = moves.setdefault(str(d["board"]), [])
                    if d["n"] <= len(lst):
                        continue  # the replay of a reconnection
                    if d["n"] != len(lst) + 1:
                        mine["errors"].append("board %s: n=%s after %d" % (d["board"], d["n"], len(lst)))
                    lst.append(d["move"])
                    mine["live"] += "fen" in d
                elif line.startswith("data: ") and event == "end":
                    mine["ended"] = True
                    break
            with lock:
                load.dump()
        except (OSError, http.client.HTTPException, ValueError):
            pass  # reconnect, as a browser does
        finally:
            conn.close()


if opt.mode == "get":
    ts = [threading.Thread(target=load.get_loop, args=(connect, opt.args, k))
          for k in range(opt.conns)]
elif opt.mode == "post":
    ts = [threading.Thread(target=post_worker, args=(k,)) for k in range(opt.conns)]
else:
    ts = [threading.Thread(target=sse_worker, args=(opt.args[0], k)) for k in range(opt.conns)]
load.run(ts)
print(json.dumps({k: v for k, v in c.items() if k not in ("clients", "ids")}))
sys.exit(0)
