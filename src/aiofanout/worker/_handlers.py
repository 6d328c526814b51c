"""Routing a Lambda event: an SNS event, an SQS batch, a chunk of envelopes, or one envelope.

``App.handle`` hands every event here with its :class:`EnvelopeRunner`, which runs each
envelope: the app module imports this one, this one the runner, never the other way (type-only
imports included).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._engine import dispatch_many
from .._errors import InvalidEnvelope
from .._wire import ReplyEnvelope, error_info
from ._reply_sender import send_reply_if_asked
from ._settlement import Settlement, settlement
from ._sns_messages import is_sns_event, sns_messages
from ._sqs_batches import handle_sqs_batch, is_event_source_batch

if TYPE_CHECKING:
    from ._envelope_runner import EnvelopeRunner
    from ._task_result import TaskResult


async def handle_event(app: EnvelopeRunner, event: Any, context: Any) -> Any:
    """Route a Lambda event: SNS event, SQS batch, chunk of envelopes, or one envelope."""
    if is_sns_event(event):
        return await handle_sns_event(app, event)
    if is_event_source_batch(event):
        return await handle_sqs_batch(app, event, context)
    if isinstance(event, list):
        return await handle_chunk(app, event)
    return await handle_direct(app, event)


async def handle_direct(app: EnvelopeRunner, event: Any) -> dict[str, Any]:
    """One envelope: return the reply, or raise so Lambda reports a function error.

    Raising (rather than returning an error reply) is what gives ``Event`` invocations Lambda's
    own retries and on-failure destination. ``errorType`` is the exception's class name. What
    is done by the one settlement rule (``_settlement.py``) returns its reply instead: an error
    already sent to the envelope's ``reply_to`` queue (the sender's retry policy decides, so
    Lambda does not run the task again), or an expired envelope (nobody waits for it).
    """
    result = await _run_one(app, event)
    if settlement(result) is Settlement.AGAIN:
        assert result.error is not None
        raise result.error
    return result.reply.model_dump(mode="json", exclude_none=True)


async def handle_sns_event(app: EnvelopeRunner, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The envelopes of an SNS event (one record, from AWS): run as direct invokes, in order.

    An SNS delivery is an asynchronous invoke, so what :func:`handle_direct` does for one is
    right here: an envelope that failed with nobody told raises, and Lambda's retries and the
    function's on-failure destination take it from there.
    """
    return [await handle_direct(app, message) for message in sns_messages(event)]


async def handle_chunk(app: EnvelopeRunner, events: list[Any]) -> list[dict[str, Any]]:
    """A list of envelopes (a chunked fan-out): one reply each, in order; never raises."""
    results = await dispatch_many(
        functools.partial(_run_one, app, answered=True),
        events,
        concurrency=app.concurrency,
        retry=1,
    )
    replies = []
    for outcome in results:
        reply = outcome.value.reply if outcome.ok else _failed_reply(outcome.error)
        replies.append(reply.model_dump(mode="json", exclude_none=True))
    return replies


async def _run_one(app: EnvelopeRunner, event: Any, *, answered: bool = False) -> TaskResult:
    result = await app.run_envelope(_as_envelope(event), answered=answered)
    await send_reply_if_asked(app.runner, result, secret=app.secret)
    return result


def _as_envelope(event: Any) -> dict[str, Any] | str | bytes:
    if isinstance(event, dict | str | bytes):
        return event
    raise InvalidEnvelope(f"a direct invoke carries a JSON object, got {type(event).__name__}")


def _failed_reply(error: BaseException | None) -> ReplyEnvelope:
    cause = error or TimeoutError("not run before the deadline")
    return ReplyEnvelope(id="?", ok=False, error=error_info(cause))
