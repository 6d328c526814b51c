"""A trivial aiohttp server on loopback (the ceiling of benchmarks/local.py): PORT as argv[1]."""

import sys

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/json")


app = web.Application()
app.router.add_post("/{tail:.*}", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
