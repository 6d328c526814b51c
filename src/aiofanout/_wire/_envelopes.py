"""Envelopes: the task and reply models, their codec and signatures, Lambda's error payload.

A task envelope is encoded once, to bytes, so its size is known before anything is sent and the
same bytes go out on every attempt. With a secret, the envelope carries an HMAC-SHA256 ``sig``
over its canonical form: the JSON of every other field, keys sorted, no whitespace, UTF-8.
A worker that has a secret refuses unsigned and wrongly signed envelopes before looking at them
further (the comparison is constant-time).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .._errors import BadSignature, InvalidEnvelope, UsageError

ENVELOPE_VERSION: Literal[1] = 1
_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ClaimRef(_Wire):
    """Where a payload over a message limit waits in S3: bucket, key, size and SHA-256 digest.

    The reference sits inside the envelope, so a signed envelope covers it: an object swapped
    in the bucket no longer matches its digest and is refused.

    Example::

        {"bucket": "fanout-claims", "key": "aiofanout/claims/4f1c...", "size": 5000123,
         "sha256": "9b71..."}
    """

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TaskEnvelope(_Wire):
    """A request to run one registered task.

    Fields: ``v`` (version), ``id``, ``batch_id``, ``task`` (a registered name, never a dotted
    path to import), ``args``/``kwargs`` (JSON), ``attempt``, ``depth`` (hops of task-to-task
    dispatch), ``deadline_ms`` (epoch ms), ``reply_to`` (an SQS queue URL: where a target's
    ``replies=`` waits), ``idempotency_key`` (what an idempotent task is run once per, unless
    the task has a ``key`` function of its own, which wins), ``claim`` (the arguments wait in
    S3: :class:`ClaimRef`), ``issued_ms`` (epoch ms when a signed envelope was made: what
    ``App(max_age=)`` measures), ``traceparent`` and ``tracestate`` (the W3C trace context of
    the attempt that sent it, with OpenTelemetry tracing on), ``sig`` (HMAC-SHA256, hex).

    Example (what a non-Python producer sends)::

        {"v": 1, "id": "4f1c...", "task": "thumbnail", "args": ["a.jpg"], "kwargs": {"width": 64}}
    """

    v: Literal[1] = ENVELOPE_VERSION
    id: str = Field(min_length=1, max_length=128)
    batch_id: str | None = Field(default=None, max_length=128)
    task: str = Field(min_length=1, max_length=256)
    args: list[JsonValue] = Field(default_factory=list)
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=1)
    depth: int = Field(default=0, ge=0)
    deadline_ms: int | None = None
    reply_to: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=256)
    claim: ClaimRef | None = None
    issued_ms: int | None = None
    traceparent: str | None = Field(default=None, max_length=64)
    tracestate: str | None = Field(default=None, max_length=1024)
    sig: str | None = None


class ErrorInfo(_Wire):
    """A task's error as it crosses the wire: the exception type's name, its message, retryable.

    Example::

        {"type": "ValueError", "message": "width must be positive", "retryable": false}
    """

    type: str
    message: str
    retryable: bool = False


class ReplyEnvelope(_Wire):
    """The answer to one task envelope: ``ok`` with a ``value``, or an ``error``.

    A reply over the SQS limit waits in S3: ``claim`` names the object (the whole reply). A
    worker with a secret signs its replies (``sig``, as a task envelope's), and a sender with
    a secret accepts only signed ones from a reply queue: anyone who can write to the queue and
    knows an envelope id could otherwise forge an item's result. A reply sent to a queue by a
    traced worker carries ``traceparent``/``tracestate``: the W3C context of the span that sent
    it, which the sender's receive span links to (inside the signed bytes, as a task's).

    Example::

        {"v": 1, "id": "4f1c...", "ok": true, "value": {"key": "a.jpg", "width": 64}}
    """

    v: Literal[1] = ENVELOPE_VERSION
    id: str
    ok: bool
    value: JsonValue = None
    error: ErrorInfo | None = None
    claim: ClaimRef | None = None
    traceparent: str | None = Field(default=None, max_length=64)
    tracestate: str | None = Field(default=None, max_length=1024)
    sig: str | None = None


class LambdaErrorPayload(BaseModel):
    """The body Lambda returns with ``X-Amz-Function-Error`` (fields as AWS names them)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    errorMessage: str = ""  # noqa: N815 - AWS's field names
    errorType: str = "Unhandled"  # noqa: N815
    requestId: str | None = None  # noqa: N815
    stackTrace: list[str] | list[list[Any]] | None = None  # noqa: N815


def new_id() -> str:
    """A fresh envelope id."""
    return uuid.uuid4().hex


def _key(secret: str | bytes) -> bytes:
    check_secret(secret)
    return secret.encode() if isinstance(secret, str) else secret


def check_secret(secret: str | bytes | None, *, owner: str = "secret") -> None:
    """Refuse an empty secret: anyone can sign with the empty key. ``None`` means unsigned."""
    if secret is not None and not secret:
        raise UsageError(
            f"{owner} is empty, and anyone can sign with an empty key: pass the shared secret "
            "(secret_from_env('FANOUT_SECRET') reads it and fails when it is unset), or "
            "secret=None to run unsigned on purpose"
        )


def secret_from_env(name: str = "FANOUT_SECRET") -> str:
    """The signing secret from environment variable ``name``; a :class:`UsageError` if unset.

    ``App(secret=os.environ.get("FANOUT_SECRET"))`` silently runs unsigned when the variable
    is missing; this fails loudly instead. Pass ``secret=None`` to run unsigned on purpose.

    Example::

        app = App("images", secret=secret_from_env("FANOUT_SECRET"))
    """
    value = os.environ.get(name)
    if not value:
        state = "is not set" if value is None else "is empty"
        raise UsageError(
            f"environment variable {name} {state}: set it to the secret the senders and workers "
            "share (the same value on both sides), or pass secret=None to run unsigned"
        )
    return value


def sign(canonical: bytes, secret: str | bytes) -> str:
    """The HMAC-SHA256 (hex) of an envelope's canonical bytes."""
    return hmac.new(_key(secret), canonical, hashlib.sha256).hexdigest()


def _signed(canonical: bytes, secret: str | bytes | None) -> bytes:
    """The envelope's wire bytes: ``canonical``, with its signature when there is a secret."""
    if secret is None:
        return canonical
    # Append the signature without serializing again: canonical ends with "}".
    return canonical[:-1] + b',"sig":"' + sign(canonical, secret).encode() + b'"}'


def _refuse_constant(name: str) -> Any:
    raise InvalidEnvelope(f"message is not JSON: {name} is not a JSON number")


def _loads(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEnvelope(f"message is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidEnvelope("message is nested too deeply to be an envelope") from exc
    if not isinstance(data, dict):
        raise InvalidEnvelope(f"an envelope is a JSON object, got {type(data).__name__}")
    return data


def _check_version(data: dict[str, Any], *, kind: str = "task") -> None:
    version = data.get("v")
    if "v" not in data:
        # Most likely an event meant for another handler (a test payload, an EventBridge
        # schedule): say what it is not, and what one looks like. Key names only, never values.
        keys = sorted(str(k) for k in data)[:10]
        raise InvalidEnvelope(
            f'the event is not an aiofanout {kind} envelope (it has no "v"; its keys: '
            f"{keys or 'none'}); send one built by aiofanout (a target, or "
            "aiofanout.wire.encode_task(name, args, kwargs)), shaped like "
            '{"v": 1, "id": "...", "task": "name", "args": [], "kwargs": {}}'
        )
    if version != ENVELOPE_VERSION:
        raise InvalidEnvelope(
            f"unsupported envelope version {version!r}: this worker speaks version "
            f"{ENVELOPE_VERSION}; upgrade aiofanout on the worker"
        )


_UNSIGNED_TASK = "envelope is unsigned, and this worker requires signed envelopes"
_UNSIGNED_REPLY = (
    "reply is unsigned, and this sender signs its envelopes: give the worker's App the same "
    "secret (a reply anyone could write to the queue is never taken as a result)"
)


def verify(data: dict[str, Any], secret: str | bytes, *, unsigned: str = _UNSIGNED_TASK) -> None:
    """Raise :class:`BadSignature` unless ``data`` carries a valid signature for ``secret``.

    ``unsigned`` is the message for data that carries no signature at all.
    """
    signature = data.get("sig")
    what = unsigned.split(" ", 1)[0]
    if not isinstance(signature, str):
        raise BadSignature(unsigned)
    if not signature.isascii():  # compare_digest refuses non-ASCII str with a TypeError
        raise BadSignature(f"{what} signature does not match: it is not a hex digest")
    unsigned_data = {k: v for k, v in data.items() if k != "sig"}
    try:
        canonical = _dumps(unsigned_data).encode()
    except (TypeError, ValueError) as exc:
        raise BadSignature(f"{what} cannot be put in canonical form: {exc}") from exc
    if not hmac.compare_digest(sign(canonical, secret), signature):
        raise BadSignature(f"{what} signature does not match: wrong secret or tampered message")


def sign_reply(reply: ReplyEnvelope, secret: str | bytes | None) -> ReplyEnvelope:
    """The reply signed with ``secret`` (over its canonical form, as a task envelope is).

    ``None`` returns the reply as it is (unsigned).
    """
    if secret is None:
        return reply
    body = reply.model_dump(mode="json", exclude_none=True, exclude={"sig"})
    return reply.model_copy(update={"sig": sign(_dumps(body).encode(), secret)})


def decode_task(
    raw: bytes | str | dict[str, Any], *, secret: str | bytes | None = None
) -> TaskEnvelope:
    """Parse and validate a task envelope; check its signature first when a secret is set.

    Raises :class:`InvalidEnvelope` or :class:`BadSignature` for a message a worker must refuse.

    Example::

        envelope = decode_task(record["body"], secret=secret)
        print(envelope.task, envelope.args)
    """
    if secret is None and isinstance(raw, bytes | str) and not _may_hold_constants(raw):
        # Valid unsigned envelopes take pydantic's JSON parser in one pass; anything it refuses
        # goes the long way below, which explains what is wrong.
        with contextlib.suppress(ValidationError):
            return TaskEnvelope.model_validate_json(raw)
    try:
        data = _loads(raw)
        _check_version(data)
        if secret is not None:
            verify(data, secret)
        return TaskEnvelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEnvelope(f"invalid task envelope: {_brief(exc)}") from exc
    except RecursionError as exc:
        raise InvalidEnvelope("envelope is nested too deeply to be checked") from exc


def _may_hold_constants(raw: bytes | str) -> bool:
    """Whether ``raw`` may hold ``NaN`` or ``Infinity``, which pydantic's parser accepts."""
    text = raw if isinstance(raw, bytes) else raw.encode(errors="replace")
    return b"NaN" in text or b"Infinity" in text


def encode_reply(reply: ReplyEnvelope) -> bytes:
    """Encode a reply envelope to its wire bytes.

    Example::

        body = encode_reply(ReplyEnvelope(id=envelope.id, ok=True, value=42))
    """
    return reply.model_dump_json(exclude_none=True).encode()


def decode_reply(
    raw: bytes | str | dict[str, Any], *, secret: str | bytes | None = None
) -> ReplyEnvelope:
    """Parse and validate a reply envelope; with a secret, require its valid signature.

    Raises :class:`InvalidEnvelope`, or :class:`BadSignature` for an unsigned or wrongly signed
    reply when ``secret`` is given.

    Example::

        reply = decode_reply(message["Body"], secret=secret)
        value = reply.value if reply.ok else None
    """
    try:
        data = _loads(raw)
        _check_version(data, kind="reply")
        if secret is not None:
            verify(data, secret, unsigned=_UNSIGNED_REPLY)
        return ReplyEnvelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEnvelope(f"invalid reply envelope: {_brief(exc)}") from exc
    except RecursionError as exc:
        raise InvalidEnvelope("reply is nested too deeply to be checked") from exc


def now_ms() -> int:
    """Epoch milliseconds now (the unit of ``deadline_ms``)."""
    return int(time.time() * 1000)


def _brief(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "envelope"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def lambda_error_body(error_type: str, message: str, request_id: str = "") -> bytes:
    """The JSON body Lambda sends with ``X-Amz-Function-Error`` (what the runtime answers)."""
    payload = LambdaErrorPayload(
        errorMessage=message, errorType=error_type, requestId=request_id, stackTrace=[]
    )
    return payload.model_dump_json().encode()
