#!/usr/bin/python3
"""asyncio reference for bench/offload_bench.c: the same two measures.

    /usr/bin/python3 asyncio_offload.py thread [N]   N sequential asyncio.to_thread() calls of a
                                                     function that returns at once (default
                                                     20000), best of 3
    /usr/bin/python3 asyncio_offload.py process [N]  N sequential
                                                     loop.run_in_executor(ProcessPoolExecutor(1))
                                                     calls echoing 64 bytes (default 5000), best
                                                     of 3; the worker is started before timing

Prints key=value lines (keys prefixed asyncio_). One measure per process.
"""
import asyncio
import concurrent.futures
import multiprocessing
import sys
import time

RUNS = 3
PAYLOAD = 64


def die(msg):
    sys.stdout.flush()
    print("asyncio_offload: " + msg, file=sys.stderr)
    sys.exit(1)


def nothing(x):
    return x


def echo(data):
    return bytes(data)


def report(key, n, runs):
    print("%s_n=%d" % (key, n))
    print("%s_runs=%s" % (key, ",".join("%.2f" % r for r in runs)))
    print("%s=%.2f" % (key, min(runs)))


async def bench_thread(n):
    await asyncio.to_thread(nothing, 0)  # start a worker thread
    runs = []
    for _ in range(RUNS):
        t0 = time.monotonic_ns()
        for i in range(n):
            if await asyncio.to_thread(nothing, i & 1) != i & 1:
                die("to_thread: wrong result")
        runs.append((time.monotonic_ns() - t0) / 1e3 / n)
    return runs


async def bench_process(n):
    loop = asyncio.get_running_loop()
    # fork, as simul's pool does (and as Python 3.11 on Linux does by default)
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        msg = bytearray(range(PAYLOAD))
        await loop.run_in_executor(pool, echo, bytes(msg))  # start the worker
        runs = []
        for _ in range(RUNS):
            t0 = time.monotonic_ns()
            for i in range(n):
                msg[0] = i & 0xFF
                data = bytes(msg)
                if await loop.run_in_executor(pool, echo, data) != data:
                    die("process pool: wrong reply")
            runs.append((time.monotonic_ns() - t0) / 1e3 / n)
    return runs


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in ("thread", "process"):
        print("usage: asyncio_offload.py thread|process [N]", file=sys.stderr)
        sys.exit(2)
    thread = sys.argv[1] == "thread"
    n = int(sys.argv[2]) if len(sys.argv) == 3 else (20000 if thread else 5000)
    if n < 1:
        die("bad count")
    if thread:
        report("asyncio_to_thread_roundtrip_us", n, asyncio.run(bench_thread(n)))
    else:
        report("asyncio_procpool_roundtrip_us", n, asyncio.run(bench_process(n)))


if __name__ == "__main__":
    main()
