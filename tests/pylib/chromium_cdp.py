"""chromium_cdp.py — what the page tests (examples/chess_simul/tests/web_test.py,
tests/e2e/club_page.py) share: PASS/FAIL checks, and a headless Chromium on a private profile
driven over the DevTools protocol (python3-websockets as the CDP client). The idea: the browser,
its profile and its helper processes belong to one `async with chromium_page(...)`, which reaps
them all (helpers outlive the main process: they are found by session id) whatever the test did."""
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import websockets

FAILURES = []


def check(name, ok, detail="", limit=None):
    """Prints PASS/FAIL (the detail, cut to limit characters, on a FAIL); a FAIL is kept in FAILURES."""
    detail = str(detail) if limit is None else str(detail)[:limit]
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok else "  (" + detail + ")"), flush=True)
    if not ok:
        FAILURES.append(name)


def find_chromium():
    """The chromium binary, or None after printing the SKIP line the test ends with."""
    chromium = shutil.which("chromium")
    if not chromium:
        print("SKIP: chromium is not installed (Debian package chromium; make deps)")
    return chromium


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


class Page:
    """One tab of the browser: DevTools calls in its session."""

    def __init__(self, cdp, session):
        self.cdp, self.session = cdp, session

    async def call(self, method, **params):
        return await self.cdp.call(method, self.session, **params)

    async def eval_json(self, expression):
        """expression evaluates to a JSON string: its value, {} when it did not."""
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        v = r["result"].get("value")
        return json.loads(v) if isinstance(v, str) else {}

    async def screenshot(self, path):
        shot = await self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def errors(self):
        """Exceptions, console.error/assert calls and error log entries the page has had."""
        errors = []
        for ev in self.cdp.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "") + " " +
                              str(p["exceptionDetails"].get("exception", {}).get("description")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console." + p["type"] + ": " +
                              " ".join(str(a.get("value")) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text"))
        return errors


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


async def reap(browser):
    """Waits for the browser, kills what is left of its session, waits that out."""
    try:
        browser.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for _ in range(100):
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


@contextlib.asynccontextmanager
async def chromium_page(chromium, prefix, window=(1400, 1100), flags=(),
                        domains=("Runtime", "Log", "Page")):
    """A headless Chromium (window WxH, extra command-line flags) on a fresh profile in a temp
    dir named prefix..., with one blank tab whose domains are enabled: yields its Page. On the
    way out the browser is asked to close, then reaped with its helpers, the temp dir removed."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    profile = os.path.join(tmp, "profile")
    err = os.path.join(tmp, "chromium.err")
    browser = None
    try:
        with open(err, "w") as errf:
            browser = subprocess.Popen(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--no-first-run", "--disable-extensions",
                 "--user-data-dir=" + profile, *flags, "--remote-debugging-port=0",
                 "--window-size=%d,%d" % window, "about:blank"],
                stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if time.monotonic() > deadline or browser.poll() is not None:
                raise RuntimeError("chromium did not start: " + open(err).read()[-500:])
            await asyncio.sleep(0.05)
        dport, dpath = open(port_file).read().split()[:2]
        async with websockets.connect(f"ws://127.0.0.1:{dport}{dpath}", max_size=None,
                                      open_timeout=30) as ws:
            cdp = CDP(ws)
            target = (await cdp.call("Target.createTarget", url="about:blank"))["targetId"]
            sess = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))[
                "sessionId"]
            for domain in domains:
                await cdp.call(domain + ".enable", sess)
            yield Page(cdp, sess)
            try:
                await cdp.call("Browser.close")
            except Exception:
                pass
    finally:
        if browser is not None:
            await reap(browser)
        shutil.rmtree(tmp, ignore_errors=True)
