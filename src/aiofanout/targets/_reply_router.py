"""Routing replies to the items waiting for them, by envelope id. No I/O here.

A reply queue carries three kinds of message: a reply envelope (``{"v": 1, "id": ..., "ok": ...}``)
sent by the worker; Lambda's asynchronous invocation record (sent by a function's on-failure or
on-success destination, ``{"requestContext": ..., "requestPayload": <the envelope>, ...}``), which
is matched by the envelope id inside ``requestPayload``; and anything else.

The router reads only a message's id; the item waiting for it decodes it with its target's
secret (:func:`parse`), so targets with different secrets can share a queue, and a reply that is
unsigned or wrongly signed for a sender with a secret is a :class:`BadSignature`, never a value.

What happens to a message is decided by its id (:meth:`ReplyRouter.route` answers whether to
delete it):

- an item waits for it: the item gets its outcome, the first reply counts;
- the item was answered already (a duplicate: SQS delivers at least once, Lambda may run an
  ``Event`` twice), or ended within the grace period without an answer (a late reply): deleted
  and counted. A late reply is kept for the grace period, so a retry of the same item (same
  envelope id) completes at once with it instead of running the task again;
- nobody in this process knows the id: another process sharing the queue may be waiting for it,
  so it is left on the queue (it comes back after the visibility timeout) until it is older than
  the grace period; then it is a stray, deleted, counted and logged.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._errors import BadSignature, FanoutError, InvalidEnvelope
from .._log_fields import library_logger
from .._options import clock
from .._wire import ErrorInfo, decode_reply, error_from_info, reply_value, unwrap_reply, verify

__all__ = [
    "DEFAULT_GRACE",
    "Answer",
    "Received",
    "ReplyRouter",
    "ReplyStats",
    "answer_of",
    "parse",
    "raise_or_return",
    "record_answer",
    "reply_id",
]

log = library_logger("aiofanout.replies")

DEFAULT_GRACE = 60.0

#: What a reply means for its item: ``(value, None)`` or ``(None, error)``. Futures hold this
#: pair rather than an exception, so an answer nobody awaits any more is never "unretrieved".
Answer: TypeAlias = tuple[Any, FanoutError | None]
#: What reaches a waiting item: the message's body, to decode with the item's secret, or an
#: answer already (the queue is gone).
Received: TypeAlias = str | Answer


@dataclass(slots=True)
class ReplyStats:
    """What a reply queue received, for a user to read: ``target.reply_stats``.

    Attributes:
        received: replies that gave an item its outcome.
        duplicates: later replies for an item already answered (deleted, never a second outcome).
        late: replies for an item that had ended without an answer (timed out, or its send
            failed), deleted; kept for the grace period so a retry of that item completes with it.
        left: times a reply nobody in this process waits for was left on the queue for another
            process sharing it.
        strays: such replies older than the grace period, deleted.

    Example::

        result = await dispatch_many(target, keys, concurrency=50)
        print(target.reply_stats.duplicates)

    """

    received: int = 0
    duplicates: int = 0
    late: int = 0
    left: int = 0
    strays: int = 0


@dataclass(slots=True)
class _Ended:
    """An item that ended recently: until when it is remembered, and a late answer if one came."""

    until: float
    answered: bool
    late: Received | None = None


class ReplyRouter:
    """Waiting items by envelope id, and the ids of items that ended within the grace period."""

    def __init__(self, *, grace: float = DEFAULT_GRACE, stats: ReplyStats | None = None) -> None:
        self.grace = grace
        self.stats = stats or ReplyStats()
        self.waiting: dict[str, asyncio.Future[Received]] = {}
        self._ended: dict[str, _Ended] = {}  # in the order items ended: the oldest first

    def expect(self, envelope_id: str) -> asyncio.Future[Received]:
        """Register an item before its envelope is sent; its future gets the first answer.

        A late answer kept from an earlier attempt of the same item is there at once.
        """
        future: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        ended = self._ended.pop(envelope_id, None)
        if ended is not None and ended.late is not None:
            future.set_result(ended.late)
        self.waiting[envelope_id] = future
        return future

    def forget(self, envelope_id: str) -> None:
        """The item's attempt is over (answered, timed out, failed to send, cancelled)."""
        future = self.waiting.pop(envelope_id, None)
        answered = future is not None and future.done() and not future.cancelled()
        self._ended[envelope_id] = _Ended(clock() + self.grace, answered)

    def fail_all(self, error: FanoutError) -> None:
        """End every waiting item with ``error`` (the reply queue itself is gone)."""
        for future in self.waiting.values():
            if not future.done():
                future.set_result((None, error))

    def route(self, body: str, *, age: float) -> bool:
        """Give the message to its item; whether to delete it. ``age``: seconds since sent."""
        self._prune()
        envelope_id = reply_id(body)
        answer = body
        future = self.waiting.get(envelope_id) if envelope_id else None
        if future is not None:
            if future.done():
                self.stats.duplicates += 1
            else:
                future.set_result(answer)
                self.stats.received += 1
            return True
        ended = self._ended.get(envelope_id) if envelope_id else None
        if ended is not None:
            if ended.answered or ended.late is not None:
                self.stats.duplicates += 1
            else:
                ended.late = answer
                self.stats.late += 1
            return True
        return self._unknown(envelope_id, age)

    def _unknown(self, envelope_id: str | None, age: float) -> bool:
        if age < self.grace:
            self.stats.left += 1
            return False
        self.stats.strays += 1
        log.warning(
            "dropped a reply no fan-out of this process waits for (id=%s, %.0f s old, past the "
            "%.0f s grace period)",
            envelope_id,
            age,
            self.grace,
        )
        return True

    def _prune(self) -> None:
        now = clock()
        while self._ended:
            envelope_id, ended = next(iter(self._ended.items()))
            if ended.until > now:
                return
            del self._ended[envelope_id]


def reply_id(body: str) -> str | None:
    """The envelope id a message answers: a reply's, or an invocation record's request's."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and "v" not in data and "requestPayload" in data:
        data = data["requestPayload"]
    envelope_id = data.get("id") if isinstance(data, dict) else None
    return envelope_id if isinstance(envelope_id, str) else None


def parse(body: str, *, secret: str | bytes | None = None) -> Answer:
    """What a message means for the item it answers, checked against the sender's ``secret``.

    A reply must be signed with it; an invocation record (which Lambda writes, not the worker)
    must carry the sender's own signed envelope, and on success the worker's signed reply.
    """
    try:
        reply = decode_reply(body, secret=secret)
    except BadSignature as exc:
        return None, exc
    except InvalidEnvelope as exc:
        return _parse_record(body, exc, secret)
    if reply.claim is not None:
        # The reply waits in S3: the item's round trip fetches it (its digest is signed).
        return reply.claim, None
    return answer_of(unwrap_reply, reply)


def _parse_record(body: str, not_a_reply: InvalidEnvelope, secret: str | bytes | None) -> Answer:
    """Lambda's asynchronous invocation record, about the envelope inside it."""
    try:
        record = json.loads(body)
        request = record["requestPayload"]
    except (ValueError, TypeError, KeyError):
        return None, not_a_reply
    if not isinstance(request, dict):
        return None, not_a_reply
    if secret is not None:
        try:
            verify(request, secret)
        except BadSignature as exc:
            return None, BadSignature(
                f"an invocation record about an envelope not sent here: {exc}"
            )
    return record_answer(record, secret=secret)


def record_answer(record: dict[str, Any], *, secret: str | bytes | None = None) -> Answer:
    """What an invocation record means: the reply on success, else the runtime's error."""
    context = record.get("requestContext") or {}
    response = record.get("responsePayload")
    if context.get("condition") == "Success":
        return answer_of(lambda reply: reply_value(reply, secret=secret), response)
    payload = response if isinstance(response, dict) else {}
    error_type = str(payload.get("errorType") or context.get("condition") or "Unhandled")
    message = str(payload.get("errorMessage") or response or "the invocation failed")
    tries = context.get("approximateInvokeCount")
    given_up = f"{context.get('condition', 'failed')} after {tries} invocations"
    error = error_from_info(ErrorInfo(type=error_type, message=f"{message} ({given_up})"))
    return None, error


def answer_of(unwrap: Any, reply: Any) -> Answer:
    """``unwrap(reply)`` as an answer: its value, or the library error it raised."""
    try:
        return unwrap(reply), None
    except FanoutError as exc:
        return None, exc


def raise_or_return(answer: Answer) -> Any:
    """The item's value, or its error raised (a :class:`TaskFailed` for a task's error)."""
    value, error = answer
    if error is not None:
        raise error
    return value
