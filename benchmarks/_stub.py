"""A zero-latency stand-in for SQS (JSON protocol) and the Lambda Invoke API, in its own process.

    python benchmarks/_stub.py PORT

So the client side is the limit: it answers at once, from a separate process (2 cores: the
server must not share the client's event loop).
"""

from __future__ import annotations

import json
import sys
import uuid

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    target = request.headers.get("X-Amz-Target", "")
    if target.endswith("SendMessageBatch"):
        entries = json.loads(body)["Entries"]
        ok = [
            {"Id": e["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": "x"}
            for e in entries
        ]
        return web.json_response({"Successful": ok, "Failed": []})
    if target.endswith("SendMessage"):
        return web.json_response({"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": "x"})
    if request.path.endswith("/invocations"):
        return web.Response(body=body, content_type="application/json")
    return web.Response(status=404)


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
