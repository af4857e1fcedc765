#!/usr/bin/python3
"""load.py — steady HTTP load for the stack tests: C threads, each on a keep-alive connection,
GET PATH in a loop until STOPFILE exists (or --max-seconds, a safety bound). Writes its counters
to STATUS (JSON, replaced atomically) after every 50 requests, every failure or retry, and at the
end, so a test can wait
for "N more requests done" instead of sleeping.

Counting, as a browser or urllib3 does for an idempotent GET: a request that fails on a
*reused* connection before any byte of the response (the server closed an idle keep-alive
connection, or died) is retried once on a fresh connection and counted in `retried`; a request
that then still fails, or gets a status other than 200, counts in `failed` (with the reason and
the time). The loop and the counters are tests/pylib/http_load.py's, shared with club_load.py.
Usage: load.py HOST PORT PATH CONNECTIONS STATUS STOPFILE [--max-seconds S]"""
import http.client
import json
import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from http_load import Load  # noqa: E402

host, port, path, conns, status, stopfile = sys.argv[1:7]
port, conns = int(port), int(conns)
max_s = float(sys.argv[8]) if len(sys.argv) > 8 and sys.argv[7] == "--max-seconds" else 300.0

load = Load(status, stopfile, max_s, dump_every=50)
load.run([threading.Thread(target=load.get_loop,
                           args=(lambda: http.client.HTTPConnection(host, port, timeout=20),
                                 [path]))
          for _ in range(conns)])
print(json.dumps(load.c))
