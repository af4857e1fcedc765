#!/usr/bin/env python3
"""The seed's asyncio streams echo server, as the echo benchmark's baseline: start_server, one
coroutine per connection reading and writing until the peer closes (the seed closed after the
first message). --uvloop runs the same code on uvloop.

Usage: echo_asyncio_streams.py --host H --port P [--uvloop]"""
import argparse
import asyncio
import resource


async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    args = ap.parse_args()
    raise_nofile()
    factory = None
    if args.uvloop:
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(main(args.host, args.port))
        except KeyboardInterrupt:
            pass
