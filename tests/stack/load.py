#!/usr/bin/python3
"""load.py — steady HTTP load for the stack tests: C threads, each on a keep-alive connection,
GET PATH in a loop until STOPFILE exists (or --max-seconds, a safety bound). Writes its counters
to STATUS (JSON, replaced atomically) after every 50 requests and at the end, so a test can wait
for "N more requests done" instead of sleeping.

Counting, as a browser or urllib3 does for an idempotent GET: a request that fails on a
*reused* connection before any byte of the response (the server closed an idle keep-alive
connection, or died) is retried once on a fresh connection and counted in `retried`; a request
that then still fails, or gets a status other than 200, counts in `failed` (with the reason).
Usage: load.py HOST PORT PATH CONNECTIONS STATUS STOPFILE [--max-seconds S]"""
import http.client
import json
import os
import sys
import threading
import time

host, port, path, conns, status, stopfile = sys.argv[1:7]
port, conns = int(port), int(conns)
max_s = float(sys.argv[8]) if len(sys.argv) > 8 and sys.argv[7] == "--max-seconds" else 300.0

lock = threading.Lock()
c = {"ok": 0, "failed": 0, "retried": 0, "reasons": {}, "done": False}


def note(key, reason=None):
    with lock:
        c[key] += 1
        if reason:
            c["reasons"][reason] = c["reasons"].get(reason, 0) + 1
        total = c["ok"] + c["failed"]
        if total % 50 == 0:
            dump()


def dump():
    tmp = status + ".tmp"
    with open(tmp, "w") as f:
        json.dump(c, f)
    os.replace(tmp, status)


def worker(deadline):
    conn, reused = None, False
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        for attempt in (0, 1):
            try:
                if conn is None:
                    conn, reused = http.client.HTTPConnection(host, port, timeout=20), False
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    note("ok")
                else:
                    note("failed", "status %d" % r.status)
                if r.will_close:
                    conn.close()
                    conn = None
                else:
                    reused = True
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                was_reused = reused
                conn.close()
                conn = None
                if was_reused and attempt == 0:
                    note("retried", type(e).__name__)
                    continue
                note("failed", type(e).__name__)
                break
            except (OSError, http.client.HTTPException) as e:
                if conn:
                    conn.close()
                conn = None
                note("failed", type(e).__name__)
                break
    if conn:
        conn.close()


deadline = time.monotonic() + max_s
ts = [threading.Thread(target=worker, args=(deadline,)) for _ in range(conns)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with lock:
    c["done"] = True
    dump()
print(json.dumps(c))
