"""An async service calling ``await dispatch_many(...)``: an aiohttp endpoint that fans out.

    AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:PORT python examples/service.py

``POST /thumbnails`` with ``{"keys": [...]}`` fans the keys out to the worker Lambda and answers
with the values in input order, or 502 with the failures. One target (and so one client, sized to
the cap) serves every request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web

from aiofanout import LambdaTarget, dispatch_many

CONCURRENCY = 50


def make_app(function: str = os.environ.get("WORKER_FUNCTION", "worker")) -> web.Application:
    """The aiohttp application."""
    target = LambdaTarget(function, task="thumbnail")

    async def thumbnails(request: web.Request) -> web.Response:
        keys = (await request.json())["keys"]
        result = await dispatch_many(target, keys, concurrency=CONCURRENCY, timeout=30)
        if not result.ok:
            failures = [{"index": o.index, "error": str(o.error)} for o in result.failures()]
            return web.json_response({"failures": failures}, status=502)
        return web.json_response({"thumbnails": result.values()})

    async def client(app: web.Application) -> AsyncIterator[None]:
        async with target.opened(concurrency=CONCURRENCY, timeout=30):
            yield

    app = web.Application()
    app.router.add_post("/thumbnails", thumbnails)
    app.cleanup_ctx.append(client)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
