#!/usr/bin/python3
"""asyncio reference for bench/sync_bench.c: the same two shapes.

    /usr/bin/python3 asyncio_sync.py queue [N]   a producer task puts N items into
                                                asyncio.Queue(maxsize=1), a consumer task gets
                                                them; ns per item, best of 5 (default 200k)
    /usr/bin/python3 asyncio_sync.py lock [N]    two tasks contend on an asyncio.Lock, N/2 times
                                                each: acquire, sleep(0) holding it, release;
                                                ns per hand-over, best of 5 (default 200k)

Prints key=value lines (keys prefixed asyncio_). One measure per process.
"""
import asyncio
import sys
import time

RUNS = 5


def die(msg):
    sys.stdout.flush()
    print("asyncio_sync: " + msg, file=sys.stderr)
    sys.exit(1)


def report(key, n, runs):
    print("%s_n=%d" % (key, n))
    print("%s_runs=%s" % (key, ",".join("%.2f" % r for r in runs)))
    print("%s=%.2f" % (key, min(runs)))


# --------------------------------------------------------------------------------------------
# queue


async def queue_once(n):
    q = asyncio.Queue(maxsize=1)
    state = {"sum": 0, "misordered": 0}

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        for i in range(n):
            item = await q.get()
            if item != i:
                state["misordered"] += 1
            state["sum"] += item

    t0 = time.monotonic_ns()
    p = asyncio.create_task(producer())
    c = asyncio.create_task(consumer())
    await p
    await c
    t1 = time.monotonic_ns()
    if state["misordered"] or state["sum"] != n * (n - 1) // 2 or not q.empty():
        die("queue: items lost or out of order")
    return (t1 - t0) / n


# --------------------------------------------------------------------------------------------
# lock


async def lock_once(n):
    lock = asyncio.Lock()
    iters = n // 2
    state = {"last": None, "non_alt": 0}

    async def contender(me):
        for _ in range(iters):
            async with lock:
                if state["last"] == me:
                    state["non_alt"] += 1
                state["last"] = me
                await asyncio.sleep(0)

    t0 = time.monotonic_ns()
    a = asyncio.create_task(contender(1))
    b = asyncio.create_task(contender(2))
    await a
    await b
    t1 = time.monotonic_ns()
    if state["non_alt"] > 1:
        die("lock: %d of %d acquisitions were not hand-overs" % (state["non_alt"], 2 * iters))
    if lock.locked():
        die("lock: left locked")
    return (t1 - t0) / (2 * iters)


def main():
    if len(sys.argv) not in (2, 3):
        die("usage: asyncio_sync.py queue|lock [count]")
    m = sys.argv[1]
    table = {"queue": (queue_once, "asyncio_queue_roundtrip_ns"),
             "lock": (lock_once, "asyncio_lock_handoff_ns")}
    if m not in table:
        die("unknown measure " + m)
    fn, key = table[m]
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 200000
    if n < 2:
        die("bad count")

    async def runs():
        return [await fn(n) for _ in range(RUNS)]

    results = asyncio.run(runs())
    report(key, n if m == "queue" else (n // 2) * 2, results)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
