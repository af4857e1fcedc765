"""http_aiohttp.py — run_http.sh's aiohttp reference on uvloop: GET / answers "Hello, World!",
GET /json a small JSON object, as examples/http_hello does. No access log.

    python3 http_aiohttp.py --host H --port P
"""
import argparse

import uvloop
from aiohttp import web


async def hello(request):
    return web.Response(text="Hello, World!")


async def json_(request):
    return web.json_response({"message": "Hello, World!"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/json", json_)
    uvloop.install()
    web.run_app(app, host=a.host, port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
