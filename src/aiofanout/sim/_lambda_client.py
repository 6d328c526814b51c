"""The simulated Lambda's client: ``invoke`` as aioboto3's answers it, errors as botocore raises.

``LambdaTarget(client=aws.lambda_client())`` makes the same calls it makes to AWS and reads the
same response; a 429 is a real ``botocore.exceptions.ClientError`` shaped as botocore parses
AWS's (``Error.Code``, HTTP 429, the top-level ``Reason``, ``retryAfterSeconds``), so the target's
own translation makes it :class:`aiofanout.errors.Throttled`, and retries and ``adaptive=True``
see what they see against AWS.

This sits on the hot path of a simulated million calls: one dict per response, no JSON work
unless the function has a handler.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .._errors import UsageError
from ._lambda import Function, Throttle
from ._service_errors import client_error_class, service_error
from ._wakeups import Wakeups

__all__ = ["LambdaClient", "LambdaWorld"]


class LambdaWorld(Protocol):
    """What the Lambda client needs of the simulated AWS (:class:`~aiofanout.sim.SimulatedAws`)."""

    seed: int
    functions: dict[str, Function]

    @property
    def wakeups(self) -> Wakeups: ...

    def now(self) -> float: ...

    def half_trip(self) -> float: ...

    def enqueue(self, function: Function, payload: bytes, rid: str) -> None: ...


SYNC_LIMIT = (
    6 * 1024 * 1024
)  # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
ASYNC_LIMIT = 1024 * 1024
STATUS = {"RequestResponse": 200, "Event": 202, "DryRun": 204}


def _throttle_error(reason: str) -> Exception:
    # retryAfterSeconds is empty for concurrency throttles, as the local runtime sends them.
    return service_error(
        "Invoke", 429, "TooManyRequestsException", "Rate Exceeded.",
        Reason=reason, Type="User", message="Rate Exceeded.", retryAfterSeconds="",
    )  # fmt: skip


class _Body:
    """The response's ``Payload``: a stream with ``read()``, as aiobotocore returns it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data


class _Meta:
    endpoint_url = None
    region_name = "us-east-1"


class LambdaClient:
    """The Lambda API of a :class:`SimulatedAws` in aioboto3's shape (``invoke`` and concurrency).

    Example::

        target = LambdaTarget("worker", task=None, client=aws.lambda_client())
        result = await dispatch_many(target, items, concurrency=1000, adaptive=True)
    """

    meta = _Meta()

    def __init__(self, aws: LambdaWorld) -> None:
        client_error_class()
        self._aws = aws
        self._ids = 0
        self._prefix = f"{aws.seed & 0xFFFFFFFF:08x}-0000-4000-8000-"

    async def __aenter__(self) -> LambdaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def close(self) -> None:
        """Nothing to close (the target closes clients it made, never one it was given)."""

    def _request_id(self) -> str:
        self._ids += 1
        return f"{self._prefix}{self._ids:012x}"

    async def invoke(
        self,
        *,
        FunctionName: str,  # noqa: N803 - botocore's parameter names
        InvocationType: str = "RequestResponse",  # noqa: N803
        Payload: Any = b"",  # noqa: N803
        Qualifier: str | None = None,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        """Invoke: 200 with the function's answer, 202 queued, 204 checked; 429 throttled."""
        function = self._function(FunctionName)
        payload = _checked_payload(_bytes(Payload), InvocationType)
        rid = self._request_id()
        aws = self._aws
        there = aws.half_trip()
        if there:
            await aws.wakeups.until(aws.now() + there)
        if InvocationType == "RequestResponse":
            status, error, body = await self._run(function, payload, rid)
        else:
            if InvocationType == "Event":
                await self._take_event_request(function)
                self._aws.enqueue(function, payload, rid)
            status, error, body = STATUS[InvocationType], None, b""
        back = aws.half_trip()
        if back:
            await aws.wakeups.until(aws.now() + back)
        response: dict[str, Any] = {
            "StatusCode": status,
            "Payload": _Body(body),
            "ResponseMetadata": {"RequestId": rid, "HTTPStatusCode": status},
        }
        if error is not None:
            response["FunctionError"] = error
        return response

    async def _run(
        self, function: Function, payload: bytes, rid: str
    ) -> tuple[int, str | None, bytes]:
        now = self._aws.now()
        reserved = function.reserved_concurrency is not None
        try:
            cold = function.admit(now)
        except Throttle as throttle:
            raise await self._throttled(throttle) from None
        busy, timed_out, failed = function.run_time(cold)
        await self._aws.wakeups.until(now + busy)
        function.release(now + busy, busy, counted_reserved=reserved)
        if timed_out:
            return (
                200,
                "Unhandled",
                _error_body(
                    "Sandbox.Timedout", f"Task timed out after {function.timeout:.2f} seconds", rid
                ),
            )
        if failed:
            return 200, "Unhandled", _error_body("SimulatedError", "a simulated failure", rid)
        if function.handler is None:
            return 200, None, b"null"
        try:
            value = function.handler(json.loads(payload) if payload else None)
        except Exception as exc:  # the handler's error is the function's error
            return 200, "Unhandled", _error_body(type(exc).__name__, str(exc), rid)
        return 200, None, json.dumps(value).encode()

    async def _take_event_request(self, function: Function) -> None:
        """An ``Event`` invoke is counted against the invoke rate quota before it is queued."""
        try:
            function.take_event_request(self._aws.now())
        except Throttle as throttle:
            raise await self._throttled(throttle) from None

    async def _throttled(self, throttle: Throttle) -> Exception:
        """The 429 for ``throttle``, once its answer has travelled back to the caller."""
        aws = self._aws
        back = aws.half_trip()
        if back:
            await aws.wakeups.until(aws.now() + back)
        return _throttle_error(throttle.reason)

    def _function(self, name: str) -> Function:
        function = self._aws.functions.get(name)
        if function is None and ":" in name:  # an ARN
            function = self._aws.functions.get(name.rsplit(":", 1)[-1])
        if function is None:
            raise service_error(
                "Invoke", 404, "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}",
            )  # fmt: skip
        return function

    async def put_function_concurrency(
        self,
        *,
        FunctionName: str,  # noqa: N803
        ReservedConcurrentExecutions: int,  # noqa: N803
    ) -> dict[str, Any]:
        """Reserve concurrency for a function (lowering it throttles new requests at once)."""
        function = self._function(FunctionName)
        try:
            function.set_reserved_concurrency(ReservedConcurrentExecutions)
        except UsageError as exc:
            raise service_error(
                "PutFunctionConcurrency", 400, "InvalidParameterValueException", str(exc)
            ) from None
        return {"ReservedConcurrentExecutions": ReservedConcurrentExecutions}

    async def delete_function_concurrency(self, *, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        """Take a function's reservation away (it shares the unreserved pool again)."""
        self._function(FunctionName).set_reserved_concurrency(None)
        return {}


def _checked_payload(payload: bytes, invocation_type: str) -> bytes:
    """The payload, if Lambda takes it for this invocation type (else its 400 or 413)."""
    if invocation_type not in STATUS:
        raise service_error(
            "Invoke", 400, "InvalidParameterValueException",
            f"Unsupported invocation type {invocation_type}",
        )  # fmt: skip
    limit = ASYNC_LIMIT if invocation_type == "Event" else SYNC_LIMIT
    if len(payload) > limit:
        raise service_error(
            "Invoke", 413, "RequestEntityTooLargeException",
            f"{len(payload)} byte payload is too large for the {invocation_type} invocation "
            f"type (limit {limit} bytes)",
        )  # fmt: skip
    return payload


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    if hasattr(payload, "read"):
        data = payload.read()
        return data if isinstance(data, bytes) else str(data).encode()
    return bytes(payload)


def _error_body(error_type: str, message: str, rid: str) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": rid, "stackTrace": []}
    ).encode()
