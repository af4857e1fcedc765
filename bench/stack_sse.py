#!/usr/bin/python3
"""stack_sse.py — the 1,000-SSE-subscriber half of bench/run_stack.sh: N Server-Sent Events
clients on ONE simul of the chess club's web app (club_web, its workers behind one port), and a
publisher that plays the master's part in Redis (each move RPUSHed to the board's list and
PUBLISHed on the simul's channel with its send time), as club_master's move script does.

Two phases, each timed from the publisher's clock, which the clients share (one machine):
  paced  MOVES moves at RATE per second: every client's receive time minus the move's send time
         is one sample of the fan-out latency (Redis -> web worker's pattern subscription ->
         its fan-out task -> each client's queue -> its SSE stream -> the client): p50, p99, max;
         and per move the time by which the LAST of the N clients had it (p50, p99).
  burst  BURST moves published back to back: deliveries per second (moves x clients / the time
         from the first send to the last client's last receive).
The clients run in PROCS processes (asyncio, raw sockets: the parsing is a few string operations
per event) so that Python is not the bottleneck it would be in one process; each reports its
samples through a pipe. RSS of the web workers (VmRSS summed) is read before the clients
connect, once all are connected, once every client has the burst's last move (still
connected: what the queues and streams hold at the peak), and once the clients have left and
the workers closed every stream (their open descriptors back to the count before: a state, not
a delay) — memory a fan-out does not give back shows there.
Usage: stack_sse.py WEB_HOST WEB_PORT REDIS_HOST REDIS_PORT SUPERVISOR_PID
       [--clients N] [--procs P] [--moves M] [--rate R] [--burst B] [--id ID] [--probe CMD]
--probe CMD runs "CMD PHASE" (before, connected, burst, drained) at each RSS reading, e.g. a
gdb one-liner that makes the workers print malloc_stats().
Prints key=value lines (bench/lib.sh's format)."""
import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time

import redis

ap = argparse.ArgumentParser()
ap.add_argument("host")
ap.add_argument("port", type=int)
ap.add_argument("rhost")
ap.add_argument("rport", type=int)
ap.add_argument("sup", type=int)
ap.add_argument("--clients", type=int, default=1000)
ap.add_argument("--procs", type=int, default=2)
ap.add_argument("--moves", type=int, default=200)
ap.add_argument("--rate", type=float, default=20)
ap.add_argument("--burst", type=int, default=200)
ap.add_argument("--id", type=int, default=900001)
ap.add_argument("--probe", default="")
opt = ap.parse_args()
CH = f"club:{{{opt.id}}}:events"
START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"


def rss_kib(sup):
    """VmRSS of the supervisor's workers, summed (KiB)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != sup:
                    continue
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return total


def workers(sup):
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and ppid(int(d)) == sup]


def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def nfds(sup):
    """Open descriptors of the supervisor's workers, summed."""
    total = 0
    for w in workers(sup):
        try:
            total += len(os.listdir(f"/proc/{w}/fd"))
        except OSError:
            pass
    return total


def probe(phase):
    if opt.probe:
        os.system(f"{opt.probe} {phase}")


def client_proc(n, conn):
    """n SSE clients in one process; sends ("up", n) once all are streaming, then the samples."""

    total = opt.moves + opt.burst

    async def one(samples, up, got):
        r, w = await asyncio.open_connection(opt.host, opt.port)
        w.write(f"GET /simuls/{opt.id}/events HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head[:100])
        up.append(1)
        while True:
            line = await r.readline()
            if not line:
                raise RuntimeError("stream ended early")
            if line.startswith(b"data: {"):
                now = time.time()
                if b'"end"' in line:
                    break
                # string slicing, not json.loads: the client must not be what is measured
                i, j = line.index(b'"n":'), line.rindex(b'"t":')
                n = int(line[i + 4:line.index(b",", i)])
                t = float(line[j + 4:line.index(b"}", j)])
                samples.append((n, now - t, now))
                if n == total:
                    got.append(1)
        w.close()

    async def main():
        samples, up, got = [], [], []
        tasks = [asyncio.create_task(one(samples, up, got)) for _ in range(n)]

        async def until(xs):  # every client there (or one failed)
            while len(xs) < n:
                done = [t for t in tasks if t.done() and t.exception()]
                if done:
                    raise done[0].exception()
                await asyncio.sleep(0.01)

        await until(up)
        conn.send(("up", n))
        await until(got)
        conn.send(("got", n))
        await asyncio.gather(*tasks)
        conn.send(("samples", samples))

    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 — reported to the parent
        conn.send(("error", repr(e)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    db = redis.Redis(host=opt.rhost, port=opt.rport)
    k = f"club:{{{opt.id}}}"
    db.delete(k, k + ":moves:0")
    db.hset(k, mapping={"boards": 1, "moves": 1000000, "state": "playing", "played": 0,
                        "n:0": 0, "fen:0": START})
    probe("before")
    rss0 = rss_kib(opt.sup)
    fds0 = nfds(opt.sup)
    per = [opt.clients // opt.procs + (i < opt.clients % opt.procs) for i in range(opt.procs)]
    pipes, procs = [], []
    for n in per:
        a, b = mp.Pipe()
        p = mp.Process(target=client_proc, args=(n, b))
        p.start()
        pipes.append(a)
        procs.append(p)
    up = 0
    for a in pipes:
        kind, v = a.recv()
        if kind != "up":
            sys.exit(f"stack_sse.py: a client process failed: {v}")
        up += v
    # Every client streams; the web's subscription is the one that existed before (one per
    # worker), so a move published now reaches every client.
    probe("connected")
    rss1 = rss_kib(opt.sup)
    pipe = db.pipeline(transaction=False)
    n = 0

    def publish():
        nonlocal n
        n += 1
        mv = "e2e4" if n % 2 else "e7e5"
        pipe.rpush(k + ":moves:0", mv)
        pipe.hset(k, "n:0", n)
        pipe.publish(CH, json.dumps({"board": 0, "n": n, "move": mv, "fen": START, "result": "",
                                     "t": time.time()}))
        pipe.execute()

    t0 = time.monotonic()
    for i in range(opt.moves):  # paced, on a schedule (a late send does not shift the others)
        delay = t0 + i / opt.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publish()
    paced_last = n
    # the burst: back to back
    tb = time.time()
    for i in range(opt.burst):
        publish()
    for a in pipes:  # every client has the last move and is still connected: the peak
        kind, v = a.recv()
        if kind != "got":
            sys.exit(f"stack_sse.py: a client process failed: {v}")
    probe("burst")
    rss_burst = rss_kib(opt.sup)
    db.hset(k, "state", "finished")
    db.publish(CH, json.dumps({"end": True}))
    samples = []
    for a in pipes:
        kind, v = a.recv()
        if kind != "samples":
            sys.exit(f"stack_sse.py: a client process failed: {v}")
        samples += v
    for p in procs:
        p.join()
    rss2 = rss_kib(opt.sup)
    deadline = time.monotonic() + 60  # the workers see every close (a bound, not the wait)
    while nfds(opt.sup) > fds0 and time.monotonic() < deadline:
        time.sleep(0.05)
    drained = nfds(opt.sup) <= fds0
    # club_web trims its heap once its clients' connections are gone, and the loop gives idle
    # task stacks back within two 1 s periods: the lowest RSS within 4 s (a sampling window, not
    # a wait on state: nothing else is asked of it)
    rss3 = rss_kib(opt.sup)
    for _ in range(40):
        time.sleep(0.1)
        rss3 = min(rss3, rss_kib(opt.sup))
    probe("drained")
    paced = [lat for m, lat, _ in samples if m <= paced_last]
    by_move = {}
    for m, lat, _ in samples:
        by_move.setdefault(m, []).append(lat)
    missing = sum(opt.clients - len(v) for v in by_move.values()) + opt.clients * (n - len(by_move))
    last = [max(v) for m, v in by_move.items() if m <= paced_last]
    burst = [at for m, _, at in samples if m > paced_last]
    burst_secs = max(burst) - tb if burst else float("nan")
    ms = lambda x: round(x * 1000, 2)  # noqa: E731
    print(f"sse_clients={up}")
    print(f"sse_moves_paced={paced_last}")
    print(f"sse_rate_per_s={opt.rate}")
    print(f"sse_lat_p50_ms={ms(pct(paced, 50))}")
    print(f"sse_lat_p99_ms={ms(pct(paced, 99))}")
    print(f"sse_lat_max_ms={ms(max(paced))}")
    print(f"sse_all_clients_p50_ms={ms(pct(last, 50))}")
    print(f"sse_all_clients_p99_ms={ms(pct(last, 99))}")
    print(f"sse_burst_moves={opt.burst}")
    print(f"sse_burst_deliveries_per_s={int(len(burst) / burst_secs) if burst else 0}")
    print(f"sse_burst_moves_per_s={round(opt.burst / burst_secs, 1) if burst else 0}")
    print(f"sse_missing={missing}")
    print(f"sse_rss_kib_before={rss0}")
    print(f"sse_rss_kib_connected={rss1}")
    print(f"sse_rss_kib_burst={rss_burst}")
    print(f"sse_rss_kib_end={rss2}")
    print(f"sse_rss_kib_drained={rss3 if drained else 'n/a'}")
    print(f"sse_rss_kib_per_client={round((rss1 - rss0) / max(up, 1), 1)}")
    print(f"sse_rss_kib_burst_per_client={round((rss_burst - rss1) / max(up, 1), 1)}")
    if drained:
        print(f"sse_rss_kib_drained_per_client={round((rss3 - rss0) / max(up, 1), 1)}")


if __name__ == "__main__":
    main()
