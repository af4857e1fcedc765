#!/usr/bin/env python3
"""The seed's asyncio Protocol echo server, as the echo benchmark's baseline: no coroutine per
connection, just transport.write() from data_received. --uvloop runs the same code on uvloop.

Usage: echo_asyncio_protocol.py --host H --port P [--uvloop]"""
import argparse
import asyncio
import resource


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port, backlog=1024)
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
