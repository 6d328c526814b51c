"""Small aiohttp servers that answer like the Lambda Invoke API and SQS, for error paths moto
cannot produce (throttles, 5xx, per-entry failures, slow answers). Loopback only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aiofanout.wire import ReplyEnvelope, decode_task, encode_reply

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


class StubServer:
    """An aiohttp app on 127.0.0.1:<free port>, counting requests and peak concurrency."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request, body)
        finally:
            self.in_flight -= 1

    async def __aenter__(self) -> StubServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class Gate:
    """Holds each call until ``expected`` calls are held at once, then lets them all go.

    ``peak`` is the most calls held together. If that many never arrive (a pool smaller than the
    cap), the first call to give up after ``patience`` seconds opens the gate for all, so a
    failing test ends in seconds instead of one patience per call.
    """

    def __init__(self, expected: int, patience: float = 5.0) -> None:
        self.expected = expected
        self.patience = patience
        self.held = 0
        self.peak = 0
        self.opened = asyncio.Event()

    async def hold(self) -> None:
        self.held += 1
        self.peak = max(self.peak, self.held)
        if self.held >= self.expected:
            self.opened.set()
        try:
            await self.wait_open()
        finally:
            self.held -= 1

    async def wait_open(self) -> None:
        """Wait until the gate opens, at most ``patience`` seconds (then open it for all)."""
        try:
            async with asyncio.timeout(self.patience):
                await self.opened.wait()
        except TimeoutError:
            self.opened.set()


def reply_to(body: bytes, value: Any = None) -> bytes:
    """The reply envelope an aiofanout worker would send for a task envelope ``body``."""
    envelope = decode_task(body)
    return encode_reply(ReplyEnvelope(id=envelope.id, ok=True, value=value))


def echo_args(body: bytes) -> bytes:
    """A worker that returns the task's first argument."""
    envelope = decode_task(body)
    return reply_to(body, envelope.args[0] if envelope.args else None)


def lambda_ok(value_of: Callable[[bytes], bytes] = echo_args) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.Response:
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "Event":
            return web.Response(status=202, headers=_request_id())
        if kind == "DryRun":
            return web.Response(status=204, headers=_request_id())
        if body.startswith(b"["):
            replies = [json.loads(value_of(json.dumps(e).encode())) for e in json.loads(body)]
            return _json(200, replies)
        return web.Response(status=200, body=value_of(body), headers=_request_id())

    return handle


def lambda_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {"Type": "User", "message": message}
    if "Reason" in headers:
        body["Reason"] = headers.pop("Reason")
    return _json(status, body, **{"x-amzn-ErrorType": code, **headers})


def function_error(error_type: str, message: str) -> web.Response:
    payload = {"errorMessage": message, "errorType": error_type, "requestId": "r", "stackTrace": []}
    return _json(200, payload, **{"X-Amz-Function-Error": "Unhandled"})


async def slow(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sqs_batch(fail: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> Handler:
    """Answer SendMessageBatch (JSON protocol); ``fail(entry)`` may return a Failed entry."""

    async def handle(request: web.Request, body: bytes) -> web.Response:
        data = json.loads(body)
        successful, failed = [], []
        for entry in data["Entries"]:
            failure = fail(entry) if fail else None
            if failure is not None:
                failed.append({"Id": entry["Id"], **failure})
            else:
                successful.append(
                    {"Id": entry["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": "x"}
                )
        return _json(200, {"Successful": successful, "Failed": failed})

    return handle


def _request_id() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def _json(status: int, body: Any, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **_request_id(), **headers},
    )
