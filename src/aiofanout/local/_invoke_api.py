"""The Lambda Invoke API, the subset botocore and the AWS CLI use, with AWS's JSON errors.

``POST /2015-03-31/functions/{name}/invocations``: ``RequestResponse`` answers 200 (a function
error too, flagged by ``X-Amz-Function-Error``), ``Event`` 202 once queued, ``DryRun`` 204.
Errors: 404 ``ResourceNotFoundException``, 413 ``RequestTooLargeException``, 429
``TooManyRequestsException`` (with its ``Reason``), 400 for an unknown invocation type.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from .._limits import Limits
from ._aws import function_name
from ._events import QueuedEvent
from ._functions import FunctionRegistry
from ._invocation import CONCURRENCY_LIMIT, Invoke, Throttle

JSON = "application/json"


class InvokeApi:
    """The Invoke API routes, in front of ``invoke`` and the functions' event queues."""

    def __init__(self, functions: FunctionRegistry, limits: Limits, invoke: Invoke) -> None:
        self._functions = functions
        self._limits = limits
        self._invoke = invoke

    def add_routes(self, app: web.Application) -> None:
        """Serve the Invoke API from ``app``."""
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._invocations)

    async def _invocations(self, request: web.Request) -> web.Response:
        name = function_name(request.match_info["name"])
        function = self._functions.find(name)
        if function is None:
            return api_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = await request.read()
        too_large = self._too_large(kind, payload)
        if too_large is not None:
            return too_large
        request_id = str(uuid.uuid4())
        if kind == "DryRun":
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
        if kind == "Event":
            function.events.put(QueuedEvent(request_id, payload))
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        if kind != "RequestResponse":
            return api_error(400, "InvalidParameterValueException", f"bad invocation type {kind}")
        return await self._request_response(function.name, payload, request_id)

    def _too_large(self, kind: str, payload: bytes) -> web.Response | None:
        limits = self._limits
        limit = limits.lambda_async_payload if kind == "Event" else limits.lambda_sync_payload
        if len(payload) <= limit:
            return None
        return api_error(
            413,
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the {kind} invocation type",
        )

    async def _request_response(self, name: str, payload: bytes, request_id: str) -> web.Response:
        try:
            result = await self._invoke(name, payload, request_id=request_id)
        except Throttle as exc:
            reason = str(exc) or CONCURRENCY_LIMIT
            return api_error(429, "TooManyRequestsException", "Rate Exceeded.", reason=reason)
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return web.Response(status=200, body=result.body, content_type=JSON, headers=headers)


def api_error(status: int, code: str, message: str, *, reason: str | None = None) -> web.Response:
    """An AWS JSON error response (``x-amzn-ErrorType`` names the exception botocore raises)."""
    body: dict[str, Any] = {"Type": "User", "message": message}
    if reason:
        body["Reason"] = reason
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=JSON,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )
