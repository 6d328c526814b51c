"""Replies and errors back into values: what a reply or a Lambda function error means."""

from __future__ import annotations

from typing import Any

from .. import _errors
from .._errors import EnvelopeError, FanoutError, InvalidEnvelope, TaskFailed
from ._envelopes import ErrorInfo, LambdaErrorPayload, ReplyEnvelope, decode_reply


def _wire_error_classes() -> dict[str, type[FanoutError]]:
    """The library's errors a worker may answer with, by name, rebuilt as their own type.

    :class:`TaskFailed` is the catch-all for anything else (a user's ``ValueError``), and the
    errors whose constructor takes more than a message are left to it too.
    """
    return {
        name: obj
        for name in _errors.__all__
        if isinstance(obj := getattr(_errors, name), type)
        and issubclass(obj, FanoutError)
        and obj is not TaskFailed
        and obj.__init__ is FanoutError.__init__
    }


_WIRE_ERRORS = _wire_error_classes()


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception for the wire, without its arguments or traceback."""
    if isinstance(exc, TaskFailed):
        return ErrorInfo(type=exc.remote_type, message=exc.message, retryable=exc.retryable)
    message = exc.message if isinstance(exc, FanoutError) else str(exc)
    # Only what says so is retryable: a task that timed out may have done part of its work.
    retryable = bool(getattr(exc, "retryable", False))
    return ErrorInfo(type=type(exc).__name__, message=message, retryable=retryable)


def error_from_info(info: ErrorInfo) -> FanoutError:
    """Rebuild a library error from the wire: the library's own errors keep their class.

    ``except InProgress`` and ``except TaskTimedOut`` work on the sender as on the worker; an
    envelope error is never retryable whatever the wire says.
    """
    cls = _WIRE_ERRORS.get(info.type)
    if cls is not None:
        retryable = False if issubclass(cls, EnvelopeError) else info.retryable
        return cls(info.message, retryable=retryable)
    return TaskFailed(info.message, remote_type=info.type, retryable=info.retryable)


def unwrap_reply(reply: ReplyEnvelope) -> Any:
    """The reply's value, or the reply's error raised as a library error."""
    if reply.ok:
        return reply.value
    error = reply.error or ErrorInfo(type="Unknown", message="reply carries no error")
    raise error_from_info(error)


def reply_value(reply: Any, *, secret: str | bytes | None = None) -> Any:
    """The value of a reply that came back as JSON (a decoded reply envelope), or raise.

    A reply that is no envelope at all most likely came from a function that is not an
    aiofanout ``App``: the error says so, and how to call such a function. With ``secret``, the
    reply must be signed with it (:class:`BadSignature` if not).
    """
    try:
        envelope = decode_reply(reply, secret=secret)
    except InvalidEnvelope as exc:
        hint = "is the function an aiofanout App? For any other function pass task=None"
        raise InvalidEnvelope(f"{exc.message}; {hint}") from exc
    return unwrap_reply(envelope)


def function_error(body: bytes, kind: str) -> FanoutError:
    """The item's error for a Lambda function error (``Unhandled``/``Handled``) and its body."""
    try:
        payload = LambdaErrorPayload.model_validate_json(body or b"{}")
    except ValueError:
        text = body.decode(errors="replace")[:500]
        payload = LambdaErrorPayload(errorMessage=text, errorType=kind)
    return error_from_info(ErrorInfo(type=payload.errorType, message=payload.errorMessage))
