#!/usr/bin/python3
"""club_page.py — the chess club's page (examples/chess_club/www/index.html) in headless
Chromium over the DevTools protocol, through nginx over TLS (Chromium trusts the run's
certificate by its key: --ignore-certificate-errors-spki-list). One simul is started by another
client before, one from the page's own form; the page must find the first by itself and watch
both; once both have ended, every board's moves on the page must equal Redis' list, its drawn
position Redis' FEN, and some moves must have arrived live (with the master's FEN, which the page
checks its own position against as they come).
Usage: club_page.py URL SPKI REDIS_HOST REDIS_PORT FIRST_ID OUTDIR. PASS/FAIL lines; exit 1 on a
FAIL. Every wait is on the page's state, bounded."""
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis
import websockets

url, spki, rhost, rport, first_id, out = sys.argv[1:7]
FAILURES = []


def check(name, ok, detail=""):
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok else "  (" + str(detail)[:600] + ")"),
          flush=True)
    if not ok:
        FAILURES.append(name)


class CDP:
    """A DevTools connection: commands by id, events kept."""

    def __init__(self, ws):
        self.ws, self.next, self.waiting, self.events = ws, 0, {}, []
        self.reader = asyncio.get_running_loop().create_task(self.read())

    async def read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.waiting:
                self.waiting.pop(msg["id"]).set_result(msg)
            elif "method" in msg:
                self.events.append(msg)

    async def call(self, method, session=None, **params):
        self.next += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.next] = fut
        msg = {"id": self.next, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]


def session_pids(sid):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[3]) == sid:
                        pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return pids


PROBE = """JSON.stringify({
  proto: location.protocol, refreshed: (window.club || {}).refreshed || 0,
  started: (window.club || {}).started || [], errors: (window.club || {}).errors || [],
  simuls: Object.fromEntries(Object.entries((window.club || {}).simuls || {}).map(([id, s]) => [id, {
    over: s.over, live: s.live, received: s.received, errors: s.errors,
    boards: s.boards.map(b => ({moves: b.moves,
      drawn: Array.from(b.el.children).map(c => c.dataset.p || '')}))}]))})"""


def placement_of(drawn):
    """The FEN placement of a board drawn as 64 cells, rank 8 first."""
    rows = []
    for r in range(8):
        row, empty = "", 0
        for f in range(8):
            p = drawn[r * 8 + f]
            if not p:
                empty += 1
                continue
            row += (str(empty) if empty else "") + p
            empty = 0
        rows.append(row + (str(empty) if empty else ""))
    return "/".join(rows)


async def main():
    chromium = shutil.which("chromium")
    if not chromium:
        print("SKIP: chromium is not installed (Debian package chromium; make deps)")
        return 0
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="club_page.")
    profile = os.path.join(tmp, "profile")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-extensions", "--user-data-dir=" + profile,
         "--ignore-certificate-errors-spki-list=" + spki, "--remote-debugging-port=0",
         "--window-size=1200,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "chromium.err"), "w"),
        start_new_session=True)
    db = redis.Redis(host=rhost, port=int(rport), decode_responses=True)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if time.monotonic() > deadline or browser.poll() is not None:
                raise RuntimeError("chromium did not start: " +
                                   open(os.path.join(tmp, "chromium.err")).read()[-500:])
            await asyncio.sleep(0.05)
        dport, dpath = open(port_file).read().split()[:2]
        async with websockets.connect(f"ws://127.0.0.1:{dport}{dpath}", max_size=None,
                                      open_timeout=30) as ws:
            cdp = CDP(ws)
            target = (await cdp.call("Target.createTarget", url="about:blank"))["targetId"]
            sess = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                await cdp.call(domain + ".enable", sess)
            await cdp.call("Page.navigate", sess, url=url)

            async def probe():
                r = await cdp.call("Runtime.evaluate", sess, expression=PROBE, returnByValue=True)
                v = r["result"].get("value")
                return json.loads(v) if isinstance(v, str) else {}

            async def until(what, pred, bound):
                end = time.monotonic() + bound
                while time.monotonic() < end:
                    st = await probe()
                    if pred(st):
                        return st
                    await asyncio.sleep(0.05)
                check("waited for " + what, False, await probe())
                return None

            st = await until("the page to load and list the simuls", lambda s: s.get("refreshed"), 30)
            check("the page loaded over TLS through nginx", st and st["proto"] == "https:", st)
            # Started by someone else before: the page finds it in GET /simuls and watches it.
            st = await until(f"the page to watch simul {first_id}",
                             lambda s: first_id in s.get("simuls", {}), 30)
            check(f"the page found the running simul {first_id} and watches it", st is not None)
            # The page's own form.
            await cdp.call("Runtime.evaluate", sess, expression="""
                document.getElementById('boards').value = 4;
                document.getElementById('moves').value = 16;
                document.getElementById('pace').value = 60;
                document.getElementById('go').click();""")
            st = await until("the form's simul to start", lambda s: s.get("started"), 30)
            mine = str(st["started"][0]) if st else None
            check(f"the form started simul {mine} (202 through nginx -> HAProxy -> web)", mine)
            # A screenshot while they play (once the page has moves of both).
            st = await until("moves of both simuls on the page", lambda s: all(
                s.get("simuls", {}).get(i, {}).get("received") for i in (first_id, mine)), 60)
            shot = await cdp.call("Page.captureScreenshot", sess, format="png")
            with open(os.path.join(out, "club_page_playing.png"), "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            st = await until("both simuls to end on the page", lambda s: all(
                s.get("simuls", {}).get(i, {}).get("over") for i in (first_id, mine)), 120)
            shot = await cdp.call("Page.captureScreenshot", sess, format="png")
            png = os.path.join(out, "club_page.png")
            with open(png, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            who = await cdp.call("Runtime.evaluate", sess, awaitPromise=True, returnByValue=True,
                                 expression="fetch('/whoami').then(r => r.text())")
            errors = []
            for ev in cdp.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append(p["exceptionDetails"].get("text", ""))
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append("console." + p["type"])
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append(p["entry"].get("text"))
            try:
                await cdp.call("Browser.close")
            except Exception:
                pass
        st = st or {}
        for sid in (first_id, mine):
            s = st.get("simuls", {}).get(sid)
            if not s:
                check(f"simul {sid} on the page", False, st)
                continue
            h = db.hgetall(f"club:{{{sid}}}")
            nb = int(h.get("boards", 0))
            bad = []
            for b in range(nb):
                stored = db.lrange(f"club:{{{sid}}}:moves:{b}", 0, -1)
                page = s["boards"][b]["moves"] if b < len(s["boards"]) else None
                if page != stored:
                    bad.append(f"board {b}: page {page} != Redis {stored}")
                drawn = placement_of(s["boards"][b]["drawn"])
                if drawn != h.get(f"fen:{b}", "").split(" ")[0]:
                    bad.append(f"board {b}: drawn {drawn} != Redis {h.get(f'fen:{b}')}")
            total = sum(len(b["moves"]) for b in s["boards"])
            check(f"simul {sid}: {nb} boards, {total} moves on the page = Redis' lists, each "
                  f"board drawn as Redis' FEN", h.get("state") == "finished" and nb and not bad and
                  total == int(h.get("played", -1)), bad or h)
            check(f"simul {sid}: {s['live']} of its moves arrived live (with the master's FEN, "
                  f"checked by the page as they came), none out of order",
                  s["live"] > 0 and s["errors"] == 0, s)
        check("the page recorded no error", not st.get("errors"), st.get("errors"))
        check("no console error or exception", not errors, errors)
        w = json.loads(who["result"].get("value") or "{}")
        check(f"the web saw the browser (addr {w.get('addr')}, scheme {w.get('scheme')}) "
              f"through nginx and HAProxy's PROXY header",
              w.get("scheme") == "https" and w.get("addr", "").startswith("127.") and
              w.get("addr") not in ("127.0.0.2", "127.0.0.3"), w)
        check("screenshots kept", os.path.getsize(png) > 5000, png)
    finally:
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for _ in range(100):  # its helpers outlive it: kill what is left of its session
            pids = session_pids(browser.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            await asyncio.sleep(0.05)
        if browser.poll() is None:
            browser.kill()
            browser.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if FAILURES else 0


sys.exit(asyncio.run(main()))
