"""Requests per second of aiohttp's ClientSession: C concurrent tasks, each a loop of GETs
through one session (a TCPConnector limited to C keep-alive connections) for S seconds after a
warm-up, bodies read whole; the reference for bench/run_http_client.sh.

    python3 http_client_aiohttp.py URL CONCURRENCY SECONDS   prints aiohttp_req_per_s=...
"""
import asyncio
import sys
import time

import aiohttp


async def main(url, conc, secs):
    start = time.monotonic() + secs * 0.2
    stop = start + secs
    count = errors = 0

    async def worker(session):
        nonlocal count, errors
        while True:
            now = time.monotonic()
            if now >= stop:
                return
            ok = False
            try:
                async with session.get(url) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            now = time.monotonic()
            if start <= now < stop:
                if ok:
                    count += 1
                else:
                    errors += 1

    conn = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(conc)))
    print(f"aiohttp_req_per_s={count / secs:.0f}")
    print(f"aiohttp_errors={errors}")
    print(f"aiohttp_version={aiohttp.__version__}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
