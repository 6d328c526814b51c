"""``SqsTarget``: items to an SQS queue, grouped into ``SendMessageBatch`` calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import UsageError
from .._limits import PayloadLimits
from .._target import Batching
from .._wire import ClaimCheck, DescribesTask, Outgoing
from ._fanin import checked_expires, renamed_reply_to
from ._message_attributes import SQS_ATTRIBUTES, MessageAttributes
from ._message_batches import BatchedMessageTarget, batch_answers

__all__ = ["SqsTarget"]

MAX_DELAY_SECONDS = 900


class SqsTarget(BatchedMessageTarget):
    """Send each item to an SQS queue as a task envelope (or raw JSON with ``task=None``).

    The engine packs items into ``SendMessageBatch`` calls of at most 10 entries and at most the
    batch byte limit; ``concurrency`` counts batches in flight. A per-entry ``Failed`` answer
    (HTTP 200!) fails that item alone: retried when AWS says it was not the sender's fault.
    Without ``replies=`` an item's value is ``{"message_id": ..., "envelope_id": ...}``
    (``aiofanout.dispatch`` makes it a :class:`~aiofanout.targets.Sent`).

    With ``replies=``, an item is done when the worker's reply comes back, and its outcome is
    the task's: its value, or :class:`TaskFailed` with the remote error. ``replies=True`` makes
    a reply queue while the target is open (one fan-out, or ``target.opened()``) and deletes it
    after, also on error and cancellation; ``replies="<queue url>"`` uses your queue, which
    fan-outs of this process may share; either way each envelope's ``reply_to`` field names
    it for the worker. ``send_replies_to="<queue url>"`` instead has the worker send each reply
    there while this fan-out waits for none (``reply_to=``, its old name, is deprecated).
    ``concurrency`` then counts items waiting for their
    reply (the sends of concurrent items still go out in batches), ``timeout`` covers the round
    trip, and an item whose reply does not come ends ``TIMED_OUT`` (not retried: it may have
    run). What the reply queue received is in :attr:`reply_stats`.

    With ``claim_check=ClaimCheck(bucket=...)``, an item over the SQS message limit goes to S3
    and its message carries the reference (give the worker's ``App`` the same claim check); a
    reply over the limit comes back the same way. Without it, such an item is
    :class:`PayloadTooLarge` before anything is sent.

    FIFO queues (``.fifo``) need ``group_id`` (a string, or a function of the item) and, unless
    the queue deduplicates by content, ``dedup_id`` (a function of the item).

    ``delay`` (0 to 900 seconds) hides each message from consumers for that long after it is
    sent (SQS's ``DelaySeconds``; standard queues only: a FIFO queue takes its delay from the
    queue's own attribute). The delay is part of the round trip with ``replies=`` (give a
    ``timeout`` longer than it) and counts against ``expires=`` (which must be longer).

    ``message_attributes`` (a mapping of name to value, or a function of the item giving one)
    go with each message as SQS message attributes, which a consumer reads without parsing the
    body: a ``str`` is a ``String``, an ``int`` or ``float`` a ``Number``, ``bytes`` ``Binary``
    (SQS has no list type); at most 10, names as AWS allows them, checked when the target is
    made (a function's, when its item is prepared: that item fails with :class:`UsageError`,
    unsent). They count toward the message's byte limit.

    Example::

        target = SqsTarget(queue_url, task=resize, replies=True, endpoint_url=aws.endpoint_url)
        result = await dispatch_many(target, keys, concurrency=200, timeout=120)
        result.values()   # what resize returned, in input order

        # the consumer reads each message's tenant without parsing its body
        tagged = SqsTarget(queue_url, task=resize, message_attributes=lambda k: {"tenant": k[:4]})
    """

    service = "sqs"
    limit_name, service_title = "sqs_message", "SQS"
    messaging_system, batch_operation = "aws_sqs", "SendMessageBatch"
    attribute_rules, destination_kind = SQS_ATTRIBUTES, "queue"

    def __init__(
        self,
        queue_url: str,
        *,
        task: str | DescribesTask | None,
        group_id: str | Callable[[Any], str] | None = None,
        dedup_id: Callable[[Any], str] | None = None,
        delay: int = 0,
        session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        limits: PayloadLimits | None = None,
        secret: str | bytes | None = None,
        send_replies_to: str | None = None,
        reply_to: str | None = None,
        replies: bool | str | None = None,
        expires: float | None = None,
        claim_check: ClaimCheck | None = None,
        message_attributes: MessageAttributes | None = None,
    ) -> None:
        super().__init__(
            session=session, client=client, endpoint_url=endpoint_url, region_name=region_name
        )
        self.expires = checked_expires(expires, waits=replies not in (None, False))
        self.queue_url = queue_url
        self.setup_messages(
            fifo=queue_url.endswith(".fifo"), group_id=group_id, dedup_id=dedup_id,
            message_attributes=message_attributes, limits=limits,
        )  # fmt: skip
        _check_delay(self.fifo, delay, self.expires)
        self.delay = delay
        self.setup_replies(
            replies, task=task, secret=secret, claim_check=claim_check,
            reply_to=renamed_reply_to(send_replies_to, reply_to, "SqsTarget"),
        )  # fmt: skip
        self.setup_batches(Batching(self.limits.sqs_batch_entries, self.limits.sqs_batch))

    def destination_name(self) -> str:
        return self.queue_url.rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"<SqsTarget {self.queue_url!r}" + (" with replies>" if self.fanin else ">")

    async def send_messages(self, batch: Sequence[tuple[Outgoing, bytes]]) -> list[Any]:
        """One ``SendMessageBatch`` of ``(message, its bytes for this attempt)``; one reply each."""
        await self.upload(message.claim for message, _ in batch)
        entries = [self._entry(str(i), m, body) for i, (m, body) in enumerate(batch)]
        with self.lease() as client, translate_botocore_errors(ambiguous_retryable=True):
            response = await client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return batch_answers(response, batch, "SendMessageBatch")

    def _entry(self, entry_id: str, message: Outgoing, body: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": body.decode()}
        if self.delay:
            entry["DelaySeconds"] = self.delay
        if message.group_id is not None:
            entry["MessageGroupId"] = message.group_id
        if message.dedup_id is not None:
            entry["MessageDeduplicationId"] = message.dedup_id
        if message.attributes:
            entry["MessageAttributes"] = message.attributes
        return entry


def _check_delay(fifo: bool, delay: int, expires: float | None) -> None:
    if fifo and delay:
        raise UsageError("FIFO queues take no per-message delay: set the queue's DelaySeconds")
    if not 0 <= delay <= MAX_DELAY_SECONDS:
        raise UsageError(f"delay must be 0..{MAX_DELAY_SECONDS} seconds, got {delay}")
    if expires is not None and delay >= expires:
        raise UsageError(
            f"delay={delay} s hides each message at least as long as expires={expires:g} s keeps "
            "it worth running: every message would expire unread; give expires= more than the "
            "delay"
        )
