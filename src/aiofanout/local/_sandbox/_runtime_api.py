"""The Lambda Runtime API that awslambdaric polls in each environment.

``GET /next`` hands an environment its next invocation, ``POST .../response`` and
``.../error`` settle it, ``POST /init/error`` reports a handler that could not be loaded. Each
path starts with the environment's secret (``/<secret>/2018-06-01/runtime/...``): a request on
an environment's port without it is refused (403), so another local process can neither take
its invocations nor answer them.

Pitfalls of awslambdaric 4.x this code avoids: ``/next`` must answer with ``Content-Type:
application/json`` (without it the client crashes), must never answer 5xx (the client exits),
and must stay open until work arrives; without ``Lambda-Runtime-Deadline-Ms`` the context
reports 0 ms left.

Injected crashes and hangs take effect here, at their point (see ``Faults``): ``before``, the
environment's ``/next`` never answers (a crash kills the process first), so the handler provably
never gets the invocation; ``during``, a timer armed at the delivery kills (crash) or stops
(hang, ``SIGSTOP``) the process group while the handler runs; ``after``, and for a ``during``
fault whose handler answered first, the answer is dropped (a crash kills the process first).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import signal
import time

from aiohttp import web

from .._faults import Strike
from ._environments import Environment, Environments
from ._invocation import Invocation, Result

JSON = "application/json"
#: The largest response a synchronous invoke returns (6 MB, as AWS counts it), and AWS's words.
MAX_RESPONSE = 6 * 1024 * 1024
#: What Lambda calls an environment's failed init (an ``@app.on_init`` hook reports it too).
INIT_ERROR = "Runtime.InitError"
_TOO_LARGE = "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


class RuntimeApi:
    """The Runtime API's handlers; an environment is known by the port a request arrived on."""

    def __init__(self, environments: Environments) -> None:
        self._environments = environments

    def _env(self, request: web.Request) -> Environment:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        env = self._environments.at_port(sockname[1]) if sockname else None
        if env is None:
            raise web.HTTPGone()
        given = request.match_info.get("secret", "").encode()
        if not hmac.compare_digest(given, env.secret.encode()):
            raise web.HTTPForbidden(text="not this environment's Runtime API secret")
        return env

    async def next_invocation(self, request: web.Request) -> web.Response:
        env = self._env(request)
        env.ready()
        invocation = await env.inbox.get()  # held open until work arrives
        if invocation is None:
            return _gone()
        invocation.mark_delivered()
        failure = invocation.faults.failure()
        if failure is not None and failure[1] == "before":
            return await _strike_before(env, failure[0])
        if failure is not None and failure[1] == "during":
            _arm_during(env, invocation, failure[0])
        return web.Response(
            body=invocation.payload,
            content_type=JSON,  # without it awslambdaric crashes
            headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": env.arn,
                "Lambda-Runtime-Trace-Id": _trace_id(),
            },
        )

    async def invocation_response(self, request: web.Request) -> web.Response:
        env = self._env(request)
        request_id = request.match_info["request_id"]
        body = await request.read()
        if len(body) > MAX_RESPONSE:  # AWS answers the caller a function error, as here
            result = Result.error("Function.ResponseSizeTooLarge", _TOO_LARGE, request_id)
        else:
            result = Result(body)
        _settle(env, request_id, result)
        return _accepted()

    async def invocation_error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type") or _error_type(body)
        init_failed = INIT_ERROR in (error_type, _error_type(body))
        if init_failed:  # an init that failed at the first invoke: never reused, as on AWS
            env.dead = True
        _settle(env, request.match_info["request_id"], Result(body, error_type))
        if init_failed:
            _signal(env, signal.SIGKILL)
        return _accepted()

    async def init_error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        env.init_error = Result(body, _error_type(body) or INIT_ERROR)
        if env.current is not None and not env.current.result.done():
            env.current.result.set_result(env.init_error)
        return _accepted()


def _settle(env: Environment, request_id: str, result: Result) -> None:
    """Settle the environment's invocation with its answer, unless a fault says otherwise."""
    invocation = env.current
    if invocation is None or invocation.request_id != request_id:
        return  # late answer of an invocation that timed out
    failure = invocation.faults.failure()
    if failure is not None and failure[0] == "hang":
        return  # injected: the answer never arrives, the timeout fires
    if failure is not None:
        _signal(env, signal.SIGKILL)  # injected: the work ran, the environment died answering
        return
    if not invocation.result.done():
        invocation.result.set_result(result)


async def _strike_before(env: Environment, kind: Strike) -> web.Response:
    """Injected: the environment took the invocation, but its handler never gets it.

    ``/next`` does not answer while the process lives, so no handler can run: a crash kills
    it now (``Runtime.ExitError``), a hang waits for the function's timeout to kill it.
    """
    if kind == "crash":
        _signal(env, signal.SIGKILL)
    if env.process is not None:
        await env.process.wait()
    return _gone()


def _arm_during(env: Environment, invocation: Invocation, kind: Strike) -> None:
    """Injected: strike while the handler runs, ``strike`` of the way into its timeout."""
    delay = invocation.faults.strike * invocation.timeout
    timer = asyncio.get_running_loop().call_later(delay, _strike_during, env, invocation, kind)
    invocation.result.add_done_callback(lambda _: timer.cancel())


def _strike_during(env: Environment, invocation: Invocation, kind: Strike) -> None:
    if env.dead or env.current is not invocation or invocation.result.done():
        return  # it ended already (a crash as it answered, a timeout)
    # A stopped process never answers: the function's timeout then kills it, as a real hang.
    _signal(env, signal.SIGKILL if kind == "crash" else signal.SIGSTOP)


def _signal(env: Environment, sig: signal.Signals) -> None:
    """Send ``sig`` to the environment's process group (the handler and any fork of it)."""
    process = env.process
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _trace_id() -> str:
    """An X-Ray root id: ``1-`` 8 hex digits of time, ``-`` 24 random hex digits (AWS's shape)."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _gone() -> web.Response:
    return web.Response(status=410, text="environment stopped")


def _accepted() -> web.Response:
    return web.json_response({"status": "OK"}, status=202)


def _error_type(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        value = json.loads(body).get("errorType")
        return str(value) if value else None
    return None
