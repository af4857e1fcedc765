#!/usr/bin/python3
"""asyncio reference for bench/core_bench.c: the same four measures.

    /usr/bin/python3 asyncio_core.py switch [N]   two tasks ping-pong with await asyncio.sleep(0);
                                                 N switches (default 200k), best of 5
    /usr/bin/python3 asyncio_core.py spawn [N]    create_task + await, N pairs (default 200k),
                                                 best of 3
    /usr/bin/python3 asyncio_core.py rss [N]      N tasks (default 1M) sleeping 1 s
    /usr/bin/python3 asyncio_core.py timer [N]    N loop.call_later, uniform delays in [0, 1)

Prints key=value lines (keys prefixed asyncio_). One measure per process.
"""
import asyncio
import random
import sys
import time


def die(msg):
    sys.stdout.flush()
    print("asyncio_core: " + msg, file=sys.stderr)
    sys.exit(1)


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


# --------------------------------------------------------------------------------------------
# switch


async def switch_once(n):
    iters = n // 2
    state = {"last": None, "non_alt": 0}

    async def pinger(me):
        for _ in range(iters):
            state["last"] = me
            await asyncio.sleep(0)
            if state["last"] == me:
                state["non_alt"] += 1

    t0 = time.monotonic_ns()
    a = asyncio.create_task(pinger(1))
    b = asyncio.create_task(pinger(2))
    await a
    await b
    t1 = time.monotonic_ns()
    if state["non_alt"] > 1:
        die("switch: %d yields without the other task running" % state["non_alt"])
    return (t1 - t0) / (2 * iters)


def bench_switch(n):
    async def main():
        return [await switch_once(n) for _ in range(5)]

    runs = asyncio.run(main())
    print("asyncio_switch_n=%d" % ((n // 2) * 2))
    print("asyncio_switch_ns_runs=" + ",".join("%.2f" % r for r in runs))
    print("asyncio_switch_ns=%.2f" % min(runs))


# --------------------------------------------------------------------------------------------
# spawn + join


async def ret0():
    return 0


async def spawn_once(n):
    create_task = asyncio.create_task
    t0 = time.monotonic_ns()
    for _ in range(n):
        r = await create_task(ret0())
        if r != 0:
            die("spawn: result %r" % r)
    t1 = time.monotonic_ns()
    return n * 1e9 / (t1 - t0)


def bench_spawn(n):
    async def main():
        return [await spawn_once(n) for _ in range(3)]

    runs = asyncio.run(main())
    best = max(runs)
    print("asyncio_spawn_join_n=%d" % n)
    print("asyncio_spawn_join_per_s_runs=" + ",".join("%.0f" % r for r in runs))
    print("asyncio_spawn_join_per_s=%.0f" % best)
    print("asyncio_spawn_join_ns=%.1f" % (1e9 / best))


# --------------------------------------------------------------------------------------------
# rss: n tasks sleeping 1 s


async def sleeper():
    await asyncio.sleep(1.0)
    return 0


def bench_rss(n):
    res = {}

    async def main():
        tasks = [None] * n  # the benchmark's own array, part of the baseline
        create_task = asyncio.create_task
        res["base"] = status_kb("VmRSS")
        t0 = time.monotonic_ns()
        for i in range(n):
            tasks[i] = create_task(sleeper())
        t1 = time.monotonic_ns()
        failed = 0
        for t in tasks:
            if await t != 0:
                failed += 1
        t2 = time.monotonic_ns()
        res["hwm"] = status_kb("VmHWM")
        res["after"] = status_kb("VmRSS")
        res["spawn"] = t1 - t0
        res["join"] = t2 - t1
        if failed:
            die("rss: %d sleepers failed" % failed)

    asyncio.run(main())
    print("asyncio_rss_tasks=%d" % n)
    print("asyncio_rss_baseline_kb=%d" % res["base"])
    print("asyncio_rss_peak_kb=%d" % res["hwm"])
    print("asyncio_rss_after_join_kb=%d" % res["after"])
    print("asyncio_rss_per_task_bytes=%.0f" % ((res["hwm"] - res["base"]) * 1024.0 / n))
    print("asyncio_spawn_1m_us_per_task=%.3f" % (res["spawn"] / 1e3 / n))
    print("asyncio_rss_join_all_s=%.3f" % (res["join"] / 1e9))
    print("asyncio_rss_total_elapsed_s=%.3f" % ((res["spawn"] + res["join"]) / 1e9))


# --------------------------------------------------------------------------------------------
# timer: n call_later with random delays in [0, 1)


def bench_timer(n):
    rng = random.Random(0x5EED5EED)
    delays = [rng.random() for _ in range(n)]
    loop = asyncio.new_event_loop()
    now = loop.time
    st = {"fired": 0, "late": float("-inf"), "late_run": float("-inf"), "early": 0,
          "worst_early": 0.0, "loop_start": 0.0}

    def cb(dl):
        t = now()
        late = t - dl
        if late > st["late"]:
            st["late"] = late
        if late < 0:
            st["early"] += 1
            if -late > st["worst_early"]:
                st["worst_early"] = -late
        lr = t - max(dl, st["loop_start"])
        if lr > st["late_run"]:
            st["late_run"] = lr
        st["fired"] += 1
        if st["fired"] == n:
            loop.stop()

    call_later = loop.call_later
    base = 0.0
    t0 = time.monotonic_ns()
    # Intended deadline: the clock read at the start of each block of 256 calls + delay (never
    # later than what call_later itself reads).
    for i, d in enumerate(delays):
        if i & 255 == 0:
            base = now()
        call_later(d, cb, base + d)
    t1 = time.monotonic_ns()
    st["loop_start"] = now()
    loop.run_forever()
    t2 = time.monotonic_ns()
    loop.close()
    if st["fired"] != n:
        die("timer: %d of %d fired" % (st["fired"], n))
    print("asyncio_timer_n=%d" % n)
    print("asyncio_timer_ns=%.1f" % ((t1 - t0) / n))
    print("asyncio_timer_schedule_s=%.3f" % ((t1 - t0) / 1e9))
    print("asyncio_timer_worst_late_ms=%.3f" % (st["late"] * 1e3))
    print("asyncio_timer_worst_late_after_sched_ms=%.3f" % (st["late_run"] * 1e3))
    print("asyncio_timer_early_count=%d" % st["early"])
    print("asyncio_timer_worst_early_ms=%.3f" % (st["worst_early"] * 1e3))
    print("asyncio_timer_run_s=%.3f" % ((t2 - t1) / 1e9))
    print("asyncio_timer_total_s=%.3f" % ((t2 - t0) / 1e9))


# --------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) not in (2, 3):
        die("usage: asyncio_core.py switch|spawn|rss|timer [count]")
    m = sys.argv[1]
    table = {"switch": (bench_switch, 200000), "spawn": (bench_spawn, 200000),
             "rss": (bench_rss, 1000000), "timer": (bench_timer, 1000000)}
    if m not in table:
        die("unknown measure " + m)
    fn, dflt = table[m]
    n = int(sys.argv[2]) if len(sys.argv) == 3 else dflt
    if n <= 0:
        die("bad count")
    fn(n)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
