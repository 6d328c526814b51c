"""``SnsTarget``: items to an SNS topic, grouped into ``PublishBatch`` calls.

What Zappa's ``task_sns`` does, with the engine's policy: a topic fans each message out to its
subscriptions (a Lambda function, SQS queues with or without raw delivery), and an ``App``
behind any of them runs the envelope (``aiofanout.worker`` unwraps the SNS notification).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import FanoutError, PayloadTooLarge, UsageError
from .._limits import PayloadLimits
from .._target import Batching
from .._wire import ClaimCheck, DescribesTask, Outgoing
from ._fanin import ReplyingTarget, checked_expires, renamed_reply_to
from ._sqs_sends import BatchSender, Sent
from .sqs import entry_error

__all__ = ["SnsTarget"]


class SnsTarget(ReplyingTarget):
    """Publish each item to an SNS topic as a task envelope (or raw JSON with ``task=None``).

    The engine packs items into ``PublishBatch`` calls of at most 10 entries and 256 KiB
    (``PayloadLimits.sns_batch_entries``, ``sns_batch``); ``concurrency`` counts batches in
    flight. A per-entry ``Failed`` answer (HTTP 200!) fails that item alone, retried when AWS
    says it was not the sender's fault, as :class:`SqsTarget` does. An item succeeds with
    ``{"message_id": ...}`` once the topic took it: SNS delivers it to every subscription.

    With ``replies=``, an item is done when the worker's reply comes back, as with
    :class:`SqsTarget`: ``True`` makes an SQS reply queue while the target is open (on
    ``sqs_endpoint_url``, default the topic's endpoint), or give your queue's URL. A topic with
    several subscribed workers runs an envelope once per subscription: the first reply answers
    the item, later ones are counted as duplicates (:attr:`reply_stats`). ``send_replies_to=``
    has the workers send replies to a queue that this fan-out does not wait on.

    With ``claim_check=ClaimCheck(bucket=...)``, an item over the SNS message limit
    (``PayloadLimits.sns_message``, 256 KiB) goes to S3 and its message carries the reference
    (give the workers' ``App`` the same claim check); without it such an item is
    :class:`PayloadTooLarge` before anything is sent.

    FIFO topics (``.fifo``) need ``group_id`` (a string, or a function of the item) and, unless
    the topic deduplicates by content, ``dedup_id`` (a function of the item).

    Example::

        target = SnsTarget(topic_arn, task=resize, replies=True, endpoint_url=aws.endpoint_url)
        result = await dispatch_many(target, keys, concurrency=50, timeout=60)
        result.values()   # what resize returned, in input order
    """

    service = "sns"

    def __init__(
        self,
        topic_arn: str,
        *,
        task: str | DescribesTask | None,
        group_id: str | Callable[[Any], str] | None = None,
        dedup_id: Callable[[Any], str] | None = None,
        session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        limits: PayloadLimits | None = None,
        secret: str | bytes | None = None,
        send_replies_to: str | None = None,
        replies: bool | str | None = None,
        sqs_endpoint_url: str | None = None,
        expires: float | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        super().__init__(
            session=session, client=client, endpoint_url=endpoint_url, region_name=region_name
        )
        if not topic_arn.startswith("arn:"):
            raise UsageError(f"SnsTarget takes a topic ARN (arn:aws:sns:...), got {topic_arn!r}")
        self.expires = checked_expires(expires, waits=replies not in (None, False))
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")
        if self.fifo and group_id is None:
            raise UsageError(
                "a FIFO topic needs group_id=: a string, or a function of the item "
                "(messages of one group are delivered in order)"
            )
        self.group_id, self.dedup_id = group_id, dedup_id
        self.limits = limits or PayloadLimits()
        publish_batching = Batching(self.limits.sns_batch_entries, self.limits.sns_batch)
        self.batching: Batching | None = publish_batching
        self.setup_replies(
            replies, task=task, secret=secret, claim_check=claim_check,
            reply_to=renamed_reply_to(send_replies_to, None, "SnsTarget"),
            sqs_endpoint_url=sqs_endpoint_url,
        )  # fmt: skip
        if self.fanin is not None:
            # One call per item, waiting for its reply; the sender batches the publishes.
            self.batching = None
            self.ambiguous_timeouts = True
            self.sender = BatchSender(self._publish_sent, publish_batching)

    def __repr__(self) -> str:
        return f"<SnsTarget {self.topic_arn!r}" + (" with replies>" if self.fanin else ">")

    async def on_last_close(self) -> None:
        try:
            if self.fanin is not None:
                await self.sender.aclose()
        finally:
            await super().on_last_close()

    def prepare(self, item: Any) -> Outgoing:
        return self._message(item, None)

    def prepare_keyed(self, item: Any, key: str) -> Outgoing:
        return self._message(item, key)

    def _message(self, item: Any, key: str | None) -> Outgoing:
        group = self.group_id(item) if callable(self.group_id) else self.group_id
        dedup = self.dedup_id(item) if self.dedup_id is not None else None
        limit = self.limits.sns_message
        message = self.outgoing(item, key, limit=limit, group_id=group, dedup_id=dedup)
        if len(message) > limit:
            raise PayloadTooLarge(
                f"the message is {len(message):,} bytes, over the {limit:,}-byte SNS limit "
                "(PayloadLimits.sns_message): pass claim_check=ClaimCheck(bucket=...) to send "
                "it through S3, or send a reference (an S3 key) yourself"
            )
        return message

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        """With replies: publish the item's message (batched with others), wait for its reply."""
        if self.fanin is None:
            raise UsageError("SnsTarget publishes batches; call() is for replies=")
        sent = Sent(payload, self.body(payload, timeout))
        return await self.fanin.round_trip(sent.message.reply_id, lambda: self.sender.send(sent))

    async def _publish_sent(self, sent: Sequence[Any]) -> list[Any]:
        """A batch of the messages awaiting replies, each finished for its own attempt."""
        return await self._publish([(s.message, s.body) for s in sent])

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        # Fire-and-forget: no deadline, unless expires= gives one (finished at publishing).
        messages: Sequence[Outgoing] = payloads
        return await self._publish([(m, self.body(m, self.expires)) for m in messages])

    async def _publish(self, batch: Sequence[tuple[Outgoing, bytes]]) -> list[Any]:
        """One ``PublishBatch`` of ``(message, its bytes for this attempt)``; one reply each."""
        await self.upload(message.claim for message, _ in batch)
        entries = [_entry(str(i), m, body) for i, (m, body) in enumerate(batch)]
        with self.lease() as client, translate_botocore_errors(ambiguous_retryable=True):
            response = await client.publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
            )
        replies: list[Any] = [
            FanoutError("PublishBatch answered neither Successful nor Failed for this entry")
        ] * len(batch)
        for ok in response.get("Successful", []):
            replies[int(ok["Id"])] = {"message_id": ok["MessageId"]}
        for failed in response.get("Failed", []):
            replies[int(failed["Id"])] = entry_error(failed)
        return replies


def _entry(entry_id: str, message: Outgoing, body: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "Message": body.decode()}
    if message.group_id is not None:
        entry["MessageGroupId"] = message.group_id
    if message.dedup_id is not None:
        entry["MessageDeduplicationId"] = message.dedup_id
    return entry
