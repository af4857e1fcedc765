#!/usr/bin/python3
"""web_test.py — the chess simul's page in headless Chromium, driven over the DevTools protocol
(python3-websockets as the CDP client). For each transport (WebSocket, then SSE) it starts
chess_simul with --web-wait (the simul starts once the page follows the feed), opens the page,
and checks while the simul plays: 50 boards drawn, the boards change (distinct snapshots of the
page seen while playing), the model-against-measured table filled in, the chart drawn, the
transport used, and no console error or exception; then it keeps a screenshot and the DOM in the
output directory and stops the program with SIGINT (its lingering), which must exit 0.

Usage: web_test.py PROG OUTDIR. Prints PASS/FAIL lines; exit 1 if a check failed, 0 with a SKIP
line when chromium is not installed. Waits are on state, bounded by timeouts (never measures)."""
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

import websockets

FAILURES = []


def check(name, ok, detail=""):
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok else "  (" + str(detail) + ")"),
          flush=True)
    if not ok:
        FAILURES.append(name)


class CDP:
    """A DevTools connection: commands by id, events kept in a list."""

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
    """Processes whose session id is sid (chromium's helpers outlive the main process)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid:
                    pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return pids


PROBE = """(() => {
  const p = window.simulPage || {};
  const caps = Array.from(document.querySelectorAll('.cell .cap')).map(c => c.textContent);
  const pieces = Array.from(document.querySelectorAll('.cell g.pieces')).map(
      g => g.querySelectorAll('circle[visibility=visible]').length);
  const rows = Array.from(document.querySelectorAll('#table tbody tr')).map(
      tr => Array.from(tr.children).map(td => td.textContent));
  const lines = Array.from(document.querySelectorAll('#chart polyline.meas')).map(
      l => l.getAttribute('class') + ':' + l.getAttribute('data-points'));
  return JSON.stringify({cells: caps.length, sig: caps.join('|') + '#' + pieces.join(','),
    frames: p.frames || 0, updates: p.boardUpdates || 0, mode: p.mode || null,
    playing: !!p.playing, over: !!p.over, transport: p.transport || null, rows, lines,
    playingFrames: p.playingFrames || {}, arrival: p.playingArrival || {},
    elapsed: p.playingElapsed || {},
    status: (document.getElementById('status') || {}).textContent});
})()"""


async def run_page(chromium, prog, out, transport, args):
    tmp = tempfile.mkdtemp(prefix="chess_web.")
    simul = subprocess.Popen([prog, "--quiet", "--web-wait", "60", "--web-linger", "300"] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    browser = None
    try:
        first = simul.stdout.readline()
        check(f"{transport}: the URL is the first line", first.startswith("web: http://"), first)
        url = first.split()[1] + ("?transport=sse" if transport == "SSE" else "")
        profile = os.path.join(tmp, "profile")
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-extensions",
             "--user-data-dir=" + profile, "--remote-debugging-port=0",
             "--window-size=1400,1100", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "chromium.err"), "w"),
            start_new_session=True)
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
            sess = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))[
                "sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                await cdp.call(domain + ".enable", sess)
            await cdp.call("Emulation.setDeviceMetricsOverride", sess, width=1400, height=1100,
                           deviceScaleFactor=1, mobile=False)
            await cdp.call("Page.navigate", sess, url=url)
            seen_playing, modes, last, first_sig, mid_shot = set(), set(), None, None, None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = await cdp.call("Runtime.evaluate", sess, expression=PROBE, returnByValue=True)
                st = json.loads(r["result"]["value"]) if r["result"].get("type") == "string" else {}
                if st.get("playing"):
                    seen_playing.add(st["sig"])
                    modes.add(st["mode"])
                if first_sig is None and st.get("cells"):
                    first_sig = st["sig"]
                if st.get("playing") and not mid_shot and sum(st["playingFrames"].values()) >= 5:
                    # One while it plays: the master's board outlined, games half way.
                    shot = await cdp.call("Page.captureScreenshot", sess, format="png")
                    mid_shot = os.path.join(out, f"chess_web_{transport.lower()}_playing.png")
                    with open(mid_shot, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                last = st
                if st.get("over"):
                    break
                await asyncio.sleep(0.05)
            shot = await cdp.call("Page.captureScreenshot", sess, format="png")
            png = os.path.join(out, f"chess_web_{transport.lower()}.png")
            with open(png, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            dom = await cdp.call("Runtime.evaluate", sess,
                                 expression="document.documentElement.outerHTML",
                                 returnByValue=True)
            with open(os.path.join(out, f"chess_web_{transport.lower()}.html"), "w") as f:
                f.write(dom["result"]["value"])
            errors = []
            for ev in cdp.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append(p["exceptionDetails"].get("text", "") + " " +
                                  str(p["exceptionDetails"].get("exception", {}).get("description")))
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append("console." + p["type"] + ": " +
                                  " ".join(str(a.get("value")) for a in p.get("args", [])))
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append(p["entry"].get("text"))
            try:
                await cdp.call("Browser.close")
            except Exception:
                pass
        pf = last.get("playingFrames", {})
        print(f"    {transport}: frames that moved boards during play, by mode: {pf}; "
              f"{len(seen_playing)} distinct page states seen by this test's polling while "
              f"playing (modes {sorted(modes)}), {last.get('frames')} frames, "
              f"{last.get('updates')} board updates; screenshot {png}", flush=True)
        want_modes = {"sync", "async"} if "--compare" in args else {"async"}
        check(f"{transport}: the page shows every board", last.get("cells") == 50, last.get("cells"))
        check(f"{transport}: the feed came over {transport}", last.get("transport") == transport,
              last.get("transport"))
        # What the page drew while each mode played (counted by the page as it draws: polling
        # from here would only say how fast this machine answers the DevTools protocol).
        check(f"{transport}: the boards change while the simul plays, in every mode "
              f"({', '.join(sorted(want_modes))})",
              all(pf.get(m, 0) >= 3 for m in want_modes), pf)
        # Live, not delivered in a burst at the end: the frames drawn during play arrived
        # spread over (at least half) the simul time they span.
        spans = {m: (last["arrival"][m][1] - last["arrival"][m][0],
                     last["elapsed"][m][1] - last["elapsed"][m][0])
                 for m in want_modes if m in last.get("arrival", {})}
        check(f"{transport}: the frames arrived while the simul played (arrival span vs simul "
              f"span, s: {', '.join(f'{m} {a:.2f}/{e:.2f}' for m, (a, e) in sorted(spans.items()))})",
              len(spans) == len(want_modes) and all(e > 0 and a >= 0.5 * e for a, e in spans.values()),
              spans)
        check(f"{transport}: the page at the end differs from the page at the start",
              first_sig is not None and last.get("sig") != first_sig)
        check(f"{transport}: the page saw the end", last.get("over"), last.get("status"))
        rows = last.get("rows", [])
        filled = [r for r in rows if r[0] in ("sync", "async")]
        check(f"{transport}: the table has model and measured for each mode",
              len(filled) == len(want_modes) and
              all(r[1] != "…" and r[2] != "…" and float(r[4]) > 0 for r in filled), rows)
        lines = last.get("lines", [])
        check(f"{transport}: the chart has a measured line for each mode",
              len(lines) == len(want_modes) and all(int(l.split(":")[1]) >= 3 for l in lines),
              lines)
        check(f"{transport}: no console errors", not errors, errors)
        check(f"{transport}: screenshots kept (while playing and at the end)",
              mid_shot is not None and os.path.getsize(png) > 10000, (mid_shot, png))
        # The program lingers for the page: SIGINT ends that, and it exits 0.
        simul.send_signal(signal.SIGINT)
        try:
            rest, err = simul.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            simul.kill()
            rest, err = simul.communicate()
        check(f"{transport}: chess_simul exits 0 after the lingering", simul.returncode == 0,
              f"{simul.returncode} {err[-300:]}")
        check(f"{transport}: the terminal summary is still printed", "boards_finished=50" in rest,
              rest[-300:])
    finally:
        if simul.poll() is None:
            simul.kill()
            simul.wait()
        if browser is not None:
            try:
                browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for _ in range(100):  # its helpers: kill what is left of its session, wait them out
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


async def main():
    prog, out = sys.argv[1], sys.argv[2]
    chromium = shutil.which("chromium")
    if not chromium:
        print("SKIP: chromium is not installed (Debian package chromium; make deps)")
        return 0
    os.makedirs(out, exist_ok=True)
    await run_page(chromium, prog, out, "WebSocket", ["--compare", "--moves", "10", "--scale", "2"])
    await run_page(chromium, prog, out, "SSE", ["--moves", "10", "--scale", "4"])
    return 1 if FAILURES else 0


sys.exit(asyncio.run(main()))
