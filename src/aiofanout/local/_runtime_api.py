"""The Lambda Runtime API that awslambdaric polls in each environment.

``GET /next`` hands an environment its next invocation, ``POST .../response`` and
``.../error`` settle it, ``POST /init/error`` reports a handler that could not be loaded.

Pitfalls of awslambdaric 4.x this code avoids: ``/next`` must answer with ``Content-Type:
application/json`` (without it the client crashes), must never answer 5xx (the client exits),
and must stay open until work arrives; without ``Lambda-Runtime-Deadline-Ms`` the context
reports 0 ms left.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid

from aiohttp import web

from ._environments import Environment, Environments
from ._invocation import Result

RUNTIME_PREFIX = "/2018-06-01/runtime"
JSON = "application/json"


class RuntimeApi:
    """The Runtime API routes; an environment is known by the port the request arrived on."""

    def __init__(self, environments: Environments) -> None:
        self._environments = environments

    def add_routes(self, app: web.Application) -> None:
        """Serve the Runtime API from ``app``."""
        app.router.add_get(RUNTIME_PREFIX + "/invocation/next", self._next)
        app.router.add_post(RUNTIME_PREFIX + "/invocation/{request_id}/response", self._response)
        app.router.add_post(RUNTIME_PREFIX + "/invocation/{request_id}/error", self._error)
        app.router.add_post(RUNTIME_PREFIX + "/init/error", self._init_error)

    def _env(self, request: web.Request) -> Environment:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        env = self._environments.at_port(sockname[1]) if sockname else None
        if env is None:
            raise web.HTTPGone()
        return env

    async def _next(self, request: web.Request) -> web.Response:
        env = self._env(request)
        if env.ready_at is None:
            env.ready_at = time.monotonic()
            env.function.stats.cold_starts.append(env.ready_at - env.spawned_at)
        invocation = await env.inbox.get()  # held open until work arrives
        if invocation is None:
            return web.Response(status=410, text="environment stopped")
        invocation.delivered.set()
        return web.Response(
            body=invocation.payload,
            content_type=JSON,  # without it awslambdaric crashes
            headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": env.function.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            },
        )

    async def _response(self, request: web.Request) -> web.Response:
        env = self._env(request)
        _settle(env, request.match_info["request_id"], Result(await request.read()))
        return _accepted()

    async def _error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type") or _error_type(body)
        _settle(env, request.match_info["request_id"], Result(body, error_type))
        return _accepted()

    async def _init_error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        env.init_error = Result(body, _error_type(body) or "Runtime.InitError")
        if env.current is not None and not env.current.result.done():
            env.current.result.set_result(env.init_error)
        return _accepted()


def _settle(env: Environment, request_id: str, result: Result) -> None:
    """Settle the environment's invocation with its answer, unless a fault says otherwise."""
    invocation = env.current
    if invocation is None or invocation.request_id != request_id:
        return  # late answer of an invocation that timed out
    if invocation.hang:
        return  # injected: the answer never arrives, the timeout fires
    if invocation.crash and env.process is not None:
        env.process.kill()  # injected: the work ran, the environment died before answering
        return
    if not invocation.result.done():
        invocation.result.set_result(result)


def _accepted() -> web.Response:
    return web.json_response({"status": "OK"}, status=202)


def _error_type(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        value = json.loads(body).get("errorType")
        return str(value) if value else None
    return None
