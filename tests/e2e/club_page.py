#!/usr/bin/python3
"""club_page.py — the chess club's page (examples/chess_club/www/index.html) in headless
Chromium over the DevTools protocol, through nginx over TLS (Chromium trusts the run's
certificate by its key: --ignore-certificate-errors-spki-list). One simul is started by another
client before, one from the page's own form; the page must find the first by itself and watch
both; once both have ended, every board's moves on the page must equal Redis' list, its drawn
position Redis' FEN, and some moves must have arrived live (with the master's FEN, which the page
checks its own position against as they come).
Usage: club_page.py URL SPKI REDIS_HOST REDIS_PORT FIRST_ID OUTDIR [MASTER_PIDS]. MASTER_PIDS: the
club's masters, held by the caller (SIGSTOP) so the first simul cannot end before the page lists
it; they are let go (SIGCONT) once the page watches it. PASS/FAIL lines; exit 1 on a FAIL. Every
wait is on the page's state, bounded."""
import asyncio
import json
import os
import signal
import sys
import time

import redis

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import chromium_cdp  # noqa: E402
from chromium_cdp import FAILURES, chromium_page, find_chromium  # noqa: E402

url, spki, rhost, rport, first_id, out = sys.argv[1:7]
held = [int(p) for p in (sys.argv[7] if len(sys.argv) > 7 else "").split()]


def release_masters():
    for pid in held:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def check(name, ok, detail=""):
    chromium_cdp.check(name, ok, detail, limit=600)


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
    chromium = find_chromium()
    if not chromium:
        return 0
    os.makedirs(out, exist_ok=True)
    db = redis.Redis(host=rhost, port=int(rport), decode_responses=True)
    async with chromium_page(chromium, "club_page.", window=(1200, 900),
                             flags=["--ignore-certificate-errors-spki-list=" + spki],
                             domains=("Runtime", "Log", "Page", "Network")) as page:
        await page.call("Page.navigate", url=url)

        async def until(what, pred, bound):
            end = time.monotonic() + bound
            while time.monotonic() < end:
                st = await page.eval_json(PROBE)
                if pred(st):
                    return st
                await asyncio.sleep(0.05)
            check("waited for " + what, False, await page.eval_json(PROBE))
            return None

        st = await until("the page to load and list the simuls", lambda s: s.get("refreshed"), 30)
        check("the page loaded over TLS through nginx", st and st["proto"] == "https:", st)
        # Started by someone else before: the page finds it in GET /simuls and watches it.
        st = await until(f"the page to watch simul {first_id}",
                         lambda s: first_id in s.get("simuls", {}), 30)
        check(f"the page found the running simul {first_id} and watches it", st is not None)
        release_masters()  # now its moves may come: the page is watching
        # The page's own form.
        await page.call("Runtime.evaluate", expression="""
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
        await page.screenshot(os.path.join(out, "club_page_playing.png"))
        st = await until("both simuls to end on the page", lambda s: all(
            s.get("simuls", {}).get(i, {}).get("over") for i in (first_id, mine)), 120)
        png = await page.screenshot(os.path.join(out, "club_page.png"))
        who = await page.call("Runtime.evaluate", awaitPromise=True, returnByValue=True,
                              expression="fetch('/whoami').then(r => r.text())")
        errors = page.errors()
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
            shown = s["boards"][b]["moves"] if b < len(s["boards"]) else None
            if shown != stored:
                bad.append(f"board {b}: page {shown} != Redis {stored}")
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
    return 1 if FAILURES else 0


sys.exit(asyncio.run(main()))
