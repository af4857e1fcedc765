#!/usr/bin/python3
"""asyncio reference for bench/subprocess_bench.c: the same two shapes.

    /usr/bin/python3 asyncio_subprocess.py seq [N]      spawn /bin/true with
                                                       asyncio.create_subprocess_exec and wait,
                                                       N times in a row (default 2000); children
                                                       per second, best of 3
    /usr/bin/python3 asyncio_subprocess.py conc [N] [K] the same N children with K tasks spawning
                                                       and waiting in turn (default K 8)

stdio inherited (no pipes), as in the C bench. Prints key=value lines (keys prefixed asyncio_).
"""
import asyncio
import sys
import time

RUNS = 3


def die(msg):
    sys.stdout.flush()
    print("asyncio_subprocess: " + msg, file=sys.stderr)
    sys.exit(1)


def count(i, dflt):
    if len(sys.argv) <= i:
        return dflt
    try:
        v = int(sys.argv[i])
    except ValueError:
        v = 0
    if v <= 0:
        die("bad count '%s'" % sys.argv[i])
    return v


async def run_once(n, k):
    left = [n]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            p = await asyncio.create_subprocess_exec("/bin/true")
            st = await p.wait()
            if st != 0:
                die("/bin/true exited with status %d" % st)

    await asyncio.gather(*(worker() for _ in range(k)))


def measure(key, n, k):
    best = 0.0
    for r in range(RUNS):
        t0 = time.perf_counter()
        asyncio.run(run_once(n, k))
        per_s = n / (time.perf_counter() - t0)
        print("%s_run%d=%.0f" % (key, r, per_s))
        best = max(best, per_s)
    print("%s_n=%d" % (key, n))
    print("%s_per_s=%.0f" % (key, best))


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "seq":
        measure("asyncio_subprocess_spawn_wait", count(2, 2000), 1)
    elif what == "conc":
        k = count(3, 8)
        measure("asyncio_subprocess_spawn_wait_c%d" % k, count(2, 2000), k)
    else:
        die("usage: asyncio_subprocess.py seq [N] | conc [N] [K]")


if __name__ == "__main__":
    main()
