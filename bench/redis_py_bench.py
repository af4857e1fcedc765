"""redis_py_bench — the same GET/SET loop with redis-py's asyncio client (Debian python3-redis),
for bench/run_redis.sh: TASKS asyncio tasks over a pool of up to TASKS connections, OPS commands
in all, alternating SET key:<task> xxx and GET. Prints ops=, seconds=, ops_per_sec=, errors=.

    /usr/bin/python3 bench/redis_py_bench.py HOST PORT OPS TASKS
"""
import asyncio
import sys
import time

import redis.asyncio as aioredis


async def main(host, port, ops, tasks):
    r = aioredis.Redis(host=host, port=port, max_connections=tasks)
    left = [ops]
    errors = [0]

    async def worker(i):
        key = "key:%d" % i
        n = 0
        while left[0] > 0:
            left[0] -= 1
            try:
                if n & 1:
                    await r.get(key)
                else:
                    await r.set(key, "xxx")
            except Exception:  # counted: the run is then reported broken
                errors[0] += 1
            n += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    dt = time.monotonic() - t0
    await r.close()
    print("ops=%d\nseconds=%.4f\nops_per_sec=%.0f\nerrors=%d" % (ops, dt, ops / dt, errors[0]))
    return 1 if errors[0] else 0


if __name__ == "__main__":
    host, port, ops, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sys.exit(asyncio.run(main(host, port, ops, tasks)))
