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
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tests", "pylib"))
from chromium_cdp import FAILURES, check, chromium_page, find_chromium  # noqa: E402

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
    simul = subprocess.Popen([prog, "--quiet", "--web-wait", "60", "--web-linger", "300"] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = simul.stdout.readline()
        check(f"{transport}: the URL is the first line", first.startswith("web: http://"), first)
        url = first.split()[1] + ("?transport=sse" if transport == "SSE" else "")
        async with chromium_page(chromium, "chess_web.", window=(1400, 1100)) as page:
            await page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1100,
                            deviceScaleFactor=1, mobile=False)
            await page.call("Page.navigate", url=url)
            seen_playing, modes, last, first_sig, mid_shot = set(), set(), None, None, None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                st = await page.eval_json(PROBE)
                if st.get("playing"):
                    seen_playing.add(st["sig"])
                    modes.add(st["mode"])
                if first_sig is None and st.get("cells"):
                    first_sig = st["sig"]
                if st.get("playing") and not mid_shot and sum(st["playingFrames"].values()) >= 5:
                    # One while it plays: the master's board outlined, games half way.
                    mid_shot = await page.screenshot(
                        os.path.join(out, f"chess_web_{transport.lower()}_playing.png"))
                last = st
                if st.get("over"):
                    break
                await asyncio.sleep(0.05)
            png = await page.screenshot(os.path.join(out, f"chess_web_{transport.lower()}.png"))
            dom = await page.call("Runtime.evaluate",
                                  expression="document.documentElement.outerHTML",
                                  returnByValue=True)
            with open(os.path.join(out, f"chess_web_{transport.lower()}.html"), "w") as f:
                f.write(dom["result"]["value"])
            errors = page.errors()
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


async def main():
    prog, out = sys.argv[1], sys.argv[2]
    chromium = find_chromium()
    if not chromium:
        return 0
    os.makedirs(out, exist_ok=True)
    await run_page(chromium, prog, out, "WebSocket", ["--compare", "--moves", "10", "--scale", "2"])
    await run_page(chromium, prog, out, "SSE", ["--moves", "10", "--scale", "4"])
    return 1 if FAILURES else 0


sys.exit(asyncio.run(main()))
