"""The Lambda Invoke API, the subset botocore and the AWS CLI use, with AWS's JSON errors.

``POST /2015-03-31/functions/{name}/invocations``: ``RequestResponse`` answers 200 (a function
error too, flagged by ``X-Amz-Function-Error``), ``Event`` 202 once queued, ``DryRun`` 204.
``LogType: Tail`` adds the last 4 KB of the invocation's log, base64, in ``X-Amz-Log-Result``,
ending in its ``REPORT`` line. An invoke without a payload runs the handler with ``{}``.

Errors, as AWS answers them: 404 ``ResourceNotFoundException`` naming the function's ARN (also
for a qualifier other than ``$LATEST``); 400 ``InvalidRequestContentException`` for a payload
that is not JSON (or nests too deep to parse); 408 for a body that stops arriving; 413 for a
payload over the limit, whatever its size (the body is read in chunks and counted, so no server
limit answers first in plain text); 429 ``TooManyRequestsException`` with its ``Reason``. On
the 413, AWS sends the code ``RequestEntityTooLargeException``, which botocore's model does not
know (it names ``RequestTooLargeException``, so boto3's ``exceptions.RequestTooLargeException``
would not catch AWS's answer); this runtime sends the model's name, which boto3's class does catch.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable

from aiohttp import web

from ..._limits import PayloadLimits
from .._events import QueuedEvent
from .._functions import FunctionRegistry
from .._sandbox import CONCURRENCY_LIMIT, Invoke, Throttle
from ._http import JSON, ApiError, body_deadline, lookup

CHUNK = 1024 * 1024


class InvokeApi:
    """The Invoke API's handler, in front of ``invoke`` and the functions' event queues."""

    def __init__(
        self,
        functions: FunctionRegistry,
        limits: PayloadLimits,
        invoke: Invoke,
        log_tail: Callable[[str], bytes],
    ) -> None:
        self._functions = functions
        self._limits = limits
        self._invoke = invoke
        self._log_tail = log_tail

    async def invoke(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")  # model-checked
        payload = await self._read(request, kind)
        _check_json(payload)
        payload = payload or b"{}"  # no payload: the handler runs with an empty event, as on AWS
        request_id = str(uuid.uuid4())
        if kind == "DryRun":
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
        if kind == "Event":
            function.events.put(QueuedEvent(request_id, payload))
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        tail = request.headers.get("X-Amz-Log-Type") == "Tail"
        return await self._request_response(function.name, payload, request_id, tail=tail)

    async def _read(self, request: web.Request, kind: str) -> bytes:
        """The payload, read in chunks: past the limit the rest is drained, then 413."""
        limit = (
            self._limits.lambda_async_payload
            if kind == "Event"
            else self._limits.lambda_sync_payload
        )
        chunks, size = [], 0
        async with body_deadline():
            while chunk := await request.content.read(CHUNK):
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
        if size > limit:
            raise ApiError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
        return b"".join(chunks)

    async def _request_response(
        self, name: str, payload: bytes, request_id: str, *, tail: bool
    ) -> web.Response:
        try:
            result = await self._invoke(name, payload, request_id=request_id)
        except Throttle as exc:
            reason = str(exc) or CONCURRENCY_LIMIT
            raise ApiError(
                429, "TooManyRequestsException", "Rate Exceeded.", Reason=reason
            ) from exc
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if tail:  # an unasked-for log is never written (the runtime keeps a few, then drops them)
            headers["X-Amz-Log-Result"] = base64.b64encode(self._log_tail(request_id)).decode()
        return web.Response(status=200, body=result.body, content_type=JSON, headers=headers)


def _check_json(payload: bytes) -> None:
    """400 ``InvalidRequestContentException`` for a payload that is not JSON (empty is ``{}``)."""
    if not payload:
        return
    try:
        json.loads(payload)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {reason}",
        ) from exc
