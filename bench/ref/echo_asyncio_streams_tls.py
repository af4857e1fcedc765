#!/usr/bin/env python3
"""The asyncio streams echo server over TLS (python's ssl module), for bench/run_tls.sh: the same
handler as echo_asyncio_streams.py, start_server given an SSLContext with the bench's
certificate. --uvloop runs it on uvloop (whose TLS is its own SSLProtocol over the same ssl module).

Usage: echo_asyncio_streams_tls.py --host H --port P --tls-cert FILE --tls-key FILE [--uvloop]"""
import argparse
import asyncio
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_asyncio_streams import handle, raise_nofile  # noqa: E402


async def main(host, port, ctx):
    server = await asyncio.start_server(handle, host, port, backlog=1024, ssl=ctx)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    args = ap.parse_args()
    raise_nofile()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    factory = None
    if args.uvloop:
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(main(args.host, args.port, ctx))
        except KeyboardInterrupt:
            pass
