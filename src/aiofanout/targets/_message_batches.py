"""The base of the targets that send messages in batch requests: SQS queues and SNS topics.

``SendMessageBatch`` and ``PublishBatch`` are one call of the same shape: at most 10 entries
and a byte limit in, HTTP 200 with ``Successful[]`` and ``Failed[]`` (``Id``, ``Code``,
``SenderFault``) out. What follows from that is here once: the item's message prepared and
checked against the one-message limit (or claimed through S3), fire-and-forget batches packed
by the engine, and with ``replies=`` one round trip per item whose sends are gathered into
batches (``_sqs_sends.BatchSender``), each entry's answer its item's. A subclass says where the
batch goes (:meth:`BatchedMessageTarget.send_messages`) and how an entry is spelled there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._aws import THROTTLING_CODES
from .._errors import (
    FanoutError,
    PayloadTooLarge,
    RequestRejected,
    ServerError,
    Throttled,
    UsageError,
)
from .._limits import PayloadLimits
from .._target import Batching
from .._wire import Outgoing
from ._fanin import ReplyingTarget
from ._message_attributes import (
    AttributeRules,
    Encoded,
    MessageAttributes,
    attributes_of,
    attributes_size,
    checked_attributes,
)
from ._sqs_sends import AwaitingReply, BatchSender

__all__ = ["BatchedMessageTarget", "batch_answers", "entry_error"]


class BatchedMessageTarget(ReplyingTarget):
    """A replying target that sends its items as messages in batch requests.

    Subclasses set :attr:`limit_name` (the ``PayloadLimits`` field of one message's limit),
    :attr:`attribute_rules` and :attr:`destination_kind`, call :meth:`setup_messages`, then
    :meth:`~ReplyingTarget.setup_replies`, then :meth:`setup_batches`, and implement
    :meth:`send_messages`.
    """

    #: The ``PayloadLimits`` field that bounds one message (``sqs_message``, ``sns_message``).
    limit_name: str = ""
    #: What the service is called in messages: ``SQS``, ``SNS``.
    service_title: str = ""
    #: OpenTelemetry's ``messaging.system`` (``aws_sqs``) and the batch call (``SendMessageBatch``).
    messaging_system: str = ""
    batch_operation: str = ""
    limits: PayloadLimits
    #: Seconds a fire-and-forget message stays worth running (``expires=``), or ``None``.
    expires: float | None = None
    group_id: str | Callable[[Any], str] | None = None
    dedup_id: Callable[[Any], str] | None = None
    #: The item's message attributes (``message_attributes=``), checked and encoded.
    attributes: Callable[[Any], Encoded] | None = None
    #: What the service's message attributes may be (``SQS_ATTRIBUTES``, ``SNS_ATTRIBUTES``).
    attribute_rules: AttributeRules
    #: What the destination is called in messages: ``queue``, ``topic``.
    destination_kind: str = ""

    def setup_messages(
        self,
        *,
        fifo: bool,
        group_id: str | Callable[[Any], str] | None,
        dedup_id: Callable[[Any], str] | None,
        message_attributes: MessageAttributes | None,
        limits: PayloadLimits | None,
    ) -> None:
        """The options every message target takes: FIFO grouping, attributes, limits."""
        if fifo and group_id is None:
            raise UsageError(
                f"a FIFO {self.destination_kind} needs group_id=: a string, or a function of the "
                "item (messages of one group are delivered in order)"
            )
        self.fifo = fifo
        self.group_id, self.dedup_id = group_id, dedup_id
        self.attributes = checked_attributes(message_attributes, self.attribute_rules)
        self.limits = limits or PayloadLimits()

    def setup_batches(self, batching: Batching) -> None:
        """Batches of ``batching``: packed by the engine, or by the sender with replies."""
        self.batching: Batching | None = batching
        self.fire_and_forget = self.fanin is None
        if self.fanin is not None:
            # One call per item, waiting for its reply; the sender batches the sends.
            self.batching = None
            self.ambiguous_timeouts = True
            self.sender = BatchSender(self._send_sent, batching)

    async def on_last_close(self) -> None:
        try:
            if self.fanin is not None:
                await self.sender.aclose()
        finally:
            await super().on_last_close()

    def destination_name(self) -> str:
        """The queue's or the topic's name, as spans name the destination."""
        raise NotImplementedError(f"{type(self).__name__} must implement destination_name()")

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        """Attempt spans as OpenTelemetry's messaging send spans (one per batch sent)."""
        destination = self.destination_name()
        attributes: dict[str, str | int] = {
            "messaging.system": self.messaging_system,
            "messaging.destination.name": destination,
            "messaging.operation.type": "send",
            "messaging.operation.name": self.batch_operation,
        }
        return f"send {destination}", "producer", attributes

    def prepare(self, item: Any) -> Outgoing:
        return self._message(item, None)

    def prepare_keyed(self, item: Any, key: str) -> Outgoing:
        return self._message(item, key)

    def _message(self, item: Any, key: str | None) -> Outgoing:
        group = self.group_id(item) if callable(self.group_id) else self.group_id
        dedup = self.dedup_id(item) if self.dedup_id is not None else None
        attributes = attributes_of(self.attributes, item)
        extra = attributes_size(attributes)  # the attributes count toward the message's limit
        limit: int = getattr(self.limits, self.limit_name)
        message = self.outgoing(
            item, key, limit=limit - extra, group_id=group, dedup_id=dedup,
            attributes=attributes, attributes_size=extra,
        )  # fmt: skip
        if len(message) > limit:
            with_attributes = f" ({extra:,} of them its attributes)" if extra else ""
            raise PayloadTooLarge(
                f"the message is {len(message):,} bytes{with_attributes}, over the {limit:,}-byte "
                f"{self.service_title} limit (PayloadLimits.{self.limit_name}): pass "
                "claim_check=ClaimCheck(bucket=...) to send it through S3, "
                "or send a reference (an S3 key) yourself"
            )
        return message

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        """With replies: send the item's message (batched with others) and wait for its reply."""
        if self.fanin is None:
            raise UsageError(f"{type(self).__name__} sends batches; call() is for replies=")
        sent = AwaitingReply(payload, self.body(payload, timeout))
        return await self.fanin.round_trip(sent.message.reply_id, lambda: self.sender.send(sent))

    async def _send_sent(self, sent: Sequence[Any]) -> list[Any]:
        """A batch of the messages awaiting replies, each finished for its own attempt."""
        return await self.send_messages([(s.message, s.body) for s in sent])

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        # Fire-and-forget: no deadline, unless expires= gives one (finished at sending).
        messages: Sequence[Outgoing] = payloads
        return await self.send_messages([(m, self.body(m, self.expires)) for m in messages])

    async def send_messages(self, batch: Sequence[tuple[Outgoing, bytes]]) -> list[Any]:
        """One batch request of ``(message, its bytes for this attempt)``; one answer each."""
        raise NotImplementedError(f"{type(self).__name__} must implement send_messages()")


def batch_answers(
    response: dict[str, Any], batch: Sequence[tuple[Outgoing, bytes]], operation: str
) -> list[Any]:
    """Each entry's answer: its message and envelope ids, or its error (:func:`entry_error`)."""
    answers: list[Any] = [
        FanoutError(f"{operation} answered neither Successful nor Failed for this entry")
    ] * len(batch)
    for ok in response.get("Successful", []):
        index = int(ok["Id"])
        answers[index] = {"message_id": ok["MessageId"], "envelope_id": batch[index][0].envelope_id}
    for failed in response.get("Failed", []):
        answers[int(failed["Id"])] = entry_error(failed)
    return answers


def entry_error(failed: dict[str, Any]) -> FanoutError:
    """The error of one ``Failed`` entry: retryable unless it was the sender's fault."""
    code = str(failed.get("Code", ""))
    message = f"{code}: {failed.get('Message', 'entry failed')}"
    if code in THROTTLING_CODES:
        return Throttled(message, code=code)
    if failed.get("SenderFault"):
        return RequestRejected(message, code=code)
    return ServerError(message, code=code)
