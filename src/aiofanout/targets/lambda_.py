"""``LambdaTarget``: one ``Invoke`` per item (or per chunk of items), through aioboto3."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .._aws import aws_region, translate_botocore_errors
from .._errors import InvalidEnvelope, PayloadTooLarge, ServiceError, UsageError
from .._limits import PayloadLimits
from .._target import Batching
from .._wire import ClaimCheck, DescribesTask, Outgoing, TaskSpec, function_error, reply_value
from ._fanin import ReplyingTarget, checked_expires, renamed_reply_to

__all__ = ["LambdaTarget"]

InvocationType = Literal["RequestResponse", "Event", "DryRun"]
STREAM_ABOVE = 1024 * 1024
STATUS_OF = {"RequestResponse": 200, "Event": 202, "DryRun": 204}


class LambdaTarget(ReplyingTarget):
    """Invoke a Lambda function once per item (or once per ``chunk_size`` items).

    Each item becomes the argument of ``task`` on the worker (an ``aiofanout.worker.App``),
    sent as a task envelope; ``task=None`` sends the item itself as raw JSON, for any function.

    ``RequestResponse`` returns the task's value; a function error (HTTP 200 with
    ``X-Amz-Function-Error``) fails the item with :class:`TaskFailed` carrying the remote
    ``errorType`` and ``errorMessage``. ``Event`` succeeds on 202 with
    ``{"request_id": ..., "envelope_id": ...}`` (``aiofanout.dispatch`` makes it a
    :class:`~aiofanout.targets.Sent`);
    ``DryRun`` on 204 with ``None``.

    With ``replies=`` (``Event`` only), an item is done when its reply comes back through an
    SQS reply queue (``True``: one made while the target is open and deleted after; or your
    queue's URL; each envelope's ``reply_to`` field names it), and its outcome is the task's
    value or :class:`TaskFailed`. Point the
    function's on-failure destination at the reply queue and what the task cannot report (a
    crash, a function timeout, retries exhausted) ends the item ``FAILED`` with the runtime's
    error type; otherwise such an item ends ``TIMED_OUT`` at its ``timeout`` or the deadline.
    ``sqs_endpoint_url`` is where the reply queue lives, when not AWS's (a local stack).
    ``send_replies_to="<queue url>"`` instead has the worker send each reply there while this
    fan-out waits for none: for replies another process gathers (``reply_to=``, its old name,
    still works, with a ``DeprecationWarning``).

    With ``claim_check=ClaimCheck(bucket=...)``, an item over the invoke's payload limit goes to
    S3 and the invoke carries the reference (the function's ``App`` needs the same claim check);
    with ``replies=``, a reply over the SQS limit comes back the same way.

    botocore's own retries are off and its read timeout sits above the attempt timeout, so a slow
    invoke is never re-sent behind your back: a ``RequestResponse`` or ``Event`` invoke that was
    sent and got no answer is :class:`AmbiguousError`, not retried unless ``retry_ambiguous``
    (on by default for a task registered with ``idempotent=True``: it runs once per key).
    Throttling (429, honouring ``retryAfterSeconds``), 5xx and connection errors are retried by
    the engine's policy.

    Example::

        target = LambdaTarget("image-worker", task=resize, endpoint_url=aws.lambda_endpoint)
        result = await dispatch_many(target, keys, concurrency=100, timeout=30)
    """

    service = "lambda"

    def __init__(
        self,
        function_name: str,
        *,
        task: str | DescribesTask | None,
        invocation_type: InvocationType = "RequestResponse",
        qualifier: str | None = None,
        chunk_size: int = 1,
        session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        limits: PayloadLimits | None = None,
        secret: str | bytes | None = None,
        retry_ambiguous: bool | None = None,
        send_replies_to: str | None = None,
        reply_to: str | None = None,
        replies: bool | str | None = None,
        sqs_endpoint_url: str | None = None,
        expires: float | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        super().__init__(
            session=session, client=client, endpoint_url=endpoint_url, region_name=region_name
        )
        _check_options(invocation_type, chunk_size, replies)
        self.expires = checked_expires(expires, waits=invocation_type == "RequestResponse")
        self.function_name, self.qualifier = function_name, qualifier
        self.invocation_type, self.chunk_size = invocation_type, chunk_size
        self.limits = limits or PayloadLimits()
        self.raw, self.long_calls = task is None, invocation_type == "RequestResponse"
        self.payload_limit = _payload_limit(self.limits, invocation_type)
        urls = {"reply_to": renamed_reply_to(send_replies_to, reply_to, "LambdaTarget")}
        urls["sqs_endpoint_url"] = sqs_endpoint_url
        self.setup_replies(replies, task=task, secret=secret, claim_check=claim_check, **urls)
        self.retry_ambiguous = _retry_ambiguous(retry_ambiguous, self.spec)
        self.ambiguous_timeouts = invocation_type != "DryRun" and not self.retry_ambiguous
        self.fire_and_forget = invocation_type == "Event" and self.fanin is None
        self.batching = _chunks(chunk_size, self.payload_limit)

    def __repr__(self) -> str:
        return (
            f"<LambdaTarget {self.function_name!r} {self.invocation_type}"
            + (f" chunk_size={self.chunk_size}" if self.chunk_size > 1 else "")
            + ">"
        )

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        """Attempt spans as OpenTelemetry's FaaS client spans: ``faas.invoked_*``."""
        attributes: dict[str, str | int] = {
            "faas.invoked_name": self.function_name,
            "faas.invoked_provider": "aws",
            "aiofanout.invocation_type": self.invocation_type,
        }
        if region := aws_region(self.region_name):
            attributes["faas.invoked_region"] = region
        return self.function_name, "client", attributes

    def prepare(self, item: Any) -> Outgoing:
        return self._checked(self.outgoing(item, None, limit=self.payload_limit))

    def prepare_keyed(self, item: Any, key: str) -> Outgoing:
        return self._checked(self.outgoing(item, key, limit=self.payload_limit))

    def _checked(self, message: Outgoing) -> Outgoing:
        if len(message) > self.payload_limit:
            raise PayloadTooLarge(
                f"the payload is {len(message):,} bytes, over the {self.payload_limit:,}-byte "
                f"limit of {self.invocation_type} invokes (PayloadLimits.lambda_"
                f"{'async' if self.invocation_type == 'Event' else 'sync'}_payload): "
                "pass claim_check=ClaimCheck(bucket=...) to send it through S3"
            )
        return message

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        message: Outgoing = payload
        await self.upload([message.claim])
        if self.fanin is not None:
            body = self.body(message, timeout)
            return await self.fanin.round_trip(message.reply_id, lambda: self._invoke(body))
        status, response, body = await self._invoke(self._for_attempt(message, timeout))
        if self.invocation_type != "RequestResponse":
            return self._acknowledgement(status, response, message)
        return self._value(body)

    def _for_attempt(self, message: Outgoing, timeout: float | None) -> bytes:
        """The envelope with its deadline: the attempt's, or ``expires`` for fire-and-forget.

        Fire-and-forget work may rightly run after the sender is gone: no deadline unless asked.
        """
        waits = self.invocation_type == "RequestResponse"
        return self.body(message, timeout if waits else self.expires)

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        messages: Sequence[Outgoing] = payloads
        await self.upload(message.claim for message in messages)
        bodies = [self._for_attempt(message, timeout) for message in messages]
        status, response, body = await self._invoke(b"[" + b",".join(bodies) + b"]")
        if self.invocation_type != "RequestResponse":
            return [self._acknowledgement(status, response, message) for message in messages]
        replies = _json(body)
        if not isinstance(replies, list) or len(replies) != len(payloads):
            raise InvalidEnvelope(
                f"a chunk of {len(payloads)} envelopes got back {type(replies).__name__} "
                "instead of one reply per envelope: is the function an aiofanout App?"
            )
        return [self._value_or_error(reply) for reply in replies]

    async def _invoke(self, payload: bytes) -> tuple[int, dict[str, Any], bytes]:
        params: dict[str, Any] = {
            "FunctionName": self.function_name,
            "InvocationType": self.invocation_type,
            # aiohttp warns that a large bytes body may block the loop; a stream it reads in chunks.
            "Payload": payload if len(payload) <= STREAM_ABOVE else io.BytesIO(payload),
        }
        if self.qualifier:
            params["Qualifier"] = self.qualifier
        with (
            self.lease() as client,
            translate_botocore_errors(ambiguous_retryable=self.retry_ambiguous),
        ):
            response = await client.invoke(**params)
            stream = response.get("Payload")
            body = await stream.read() if stream is not None else b""
        status = int(response.get("StatusCode", 0))
        # Only a RequestResponse invoke ran the function before answering; a function error
        # header on Event or DryRun says nothing about the function (moto without Docker sends one).
        if response.get("FunctionError") and self.invocation_type == "RequestResponse":
            raise function_error(body, response["FunctionError"])
        if status != STATUS_OF[self.invocation_type]:
            raise ServiceError(
                f"{self.invocation_type} invoke of {self.function_name!r} answered {status}, "
                f"expected {STATUS_OF[self.invocation_type]}"
            )
        return status, response, body

    def _acknowledgement(self, status: int, response: dict[str, Any], message: Outgoing) -> Any:
        """An ``Event`` invoke's value: what identifies it (see ``targets.Sent``)."""
        if self.invocation_type == "DryRun":
            return None
        request_id = response.get("ResponseMetadata", {}).get("RequestId")
        return {"request_id": request_id, "status": status, "envelope_id": message.envelope_id}

    def _value(self, body: bytes) -> Any:
        reply = _json(body)
        return reply if self.raw else reply_value(reply)

    def _value_or_error(self, reply: Any) -> Any:
        if self.raw:
            return reply
        try:
            return reply_value(reply)
        except Exception as exc:  # one item's error, returned in its place in the chunk
            return exc


def _chunks(chunk_size: int, payload_limit: int) -> Batching | None:
    """How payloads are chunked into one invoke (``None``: one each)."""
    if chunk_size == 1:
        return None
    # A chunk is "[" + payloads joined by "," + "]": keep room for the brackets and commas.
    return Batching(chunk_size, payload_limit - chunk_size - 1)


def _payload_limit(limits: PayloadLimits, invocation_type: str) -> int:
    if invocation_type == "Event":
        return limits.lambda_async_payload
    return limits.lambda_sync_payload


def _retry_ambiguous(asked: bool | None, spec: TaskSpec | None) -> bool:
    """Whether to re-send what may have run: yes for an idempotent task, unless told."""
    if asked is not None:
        return asked
    return spec is not None and spec.idempotent  # it runs once per key: re-sending is safe


def _check_options(invocation_type: str, chunk_size: int, replies: object) -> None:
    if invocation_type not in STATUS_OF:
        raise UsageError(
            f"invocation_type must be one of {sorted(STATUS_OF)}, got {invocation_type!r}"
        )
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise UsageError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if replies not in (None, False) and invocation_type != "Event":
        raise UsageError(
            "replies= is for invocation_type='Event' (a RequestResponse invoke returns the value)"
        )
    if replies not in (None, False) and chunk_size > 1:
        raise UsageError("replies= takes one item per invoke: leave chunk_size at 1")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError as exc:
        raise InvalidEnvelope(f"the function answered something that is not JSON: {exc}") from exc
