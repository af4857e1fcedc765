"""http_load.py — what the load drivers (tests/stack/load.py, tests/e2e/club_load.py) share: the
counters, written to a JSON status file (replaced atomically) so a test waits for "N more
answered", never for time; the stop file; and the keep-alive GET loop. The idea of the loop: as a
browser or urllib3 does for an idempotent GET, a request that fails on a *reused* connection
before any byte of the answer is retried once on a fresh one (`retried`); what still fails, or
answers other than 200, is `failed`, with the reason and the time."""
import http.client
import json
import os
import threading
import time


class Load:
    """Counters of a run of load threads, until the stop file exists or max_seconds pass.
    Written every dump_every answers and at every retry or failure."""

    def __init__(self, status, stopfile, max_seconds, dump_every):
        self.status, self.stopfile, self.dump_every = status, stopfile, dump_every
        self.t0 = time.monotonic()
        self.deadline = self.t0 + max_seconds
        self.lock = threading.Lock()
        self.c = {"ok": 0, "failed": 0, "retried": 0, "reasons": {}, "fail_times": [],
                  "done": False}

    def running(self):
        return not os.path.exists(self.stopfile) and time.monotonic() < self.deadline

    def dump(self):
        """Writes the counters; the caller holds the lock."""
        tmp = self.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.c, f)
        os.replace(tmp, self.status)

    def note(self, key, reason=None):
        c = self.c
        with self.lock:
            c[key] += 1
            if reason:
                c["reasons"][reason] = c["reasons"].get(reason, 0) + 1
                if key == "failed":
                    c["fail_times"].append(round(time.monotonic() - self.t0, 3))
            if (c["ok"] + c["failed"]) % self.dump_every == 0 or key != "ok":
                self.dump()

    def get_loop(self, connect, paths, first=0):
        """GETs paths in turn (from paths[first]) on one keep-alive connection from connect()
        while running(), counting each answer (see the module's comment)."""
        conn, reused, i = None, False, first
        while self.running():
            path = paths[i % len(paths)]
            i += 1
            for attempt in (0, 1):
                try:
                    if conn is None:
                        conn, reused = connect(), False
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        self.note("ok")
                    else:
                        self.note("failed", "status %d on %s" % (r.status, path))
                    if r.will_close:
                        conn.close()
                        conn = None
                    else:
                        reused = True
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    was_reused = reused
                    conn.close()
                    conn = None
                    if was_reused and attempt == 0:
                        self.note("retried", type(e).__name__)
                        continue
                    self.note("failed", type(e).__name__)
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn:
                        conn.close()
                    conn = None
                    self.note("failed", type(e).__name__)
                    break
        if conn:
            conn.close()

    def run(self, threads):
        """Starts the threads, waits for them all, writes the final counters (done: true)."""
        with self.lock:
            self.dump()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.lock:
            self.c["done"] = True
            self.dump()
