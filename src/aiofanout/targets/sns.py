"""``SnsTarget``: items to an SNS topic, grouped into ``PublishBatch`` calls.

What Zappa's ``task_sns`` does, with the engine's policy: a topic fans each message out to its
subscriptions (a Lambda function, SQS queues with or without raw delivery), and an ``App``
behind any of them runs the envelope (``aiofanout.worker`` unwraps the SNS notification).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import UsageError
from .._limits import PayloadLimits
from .._target import Batching
from .._wire import ClaimCheck, DescribesTask, Outgoing
from ._fanin import checked_expires
from ._message_attributes import SNS_ATTRIBUTES, MessageAttributes
from ._message_batches import BatchedMessageTarget, batch_answers

__all__ = ["SnsTarget"]


class SnsTarget(BatchedMessageTarget):
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

    ``message_attributes`` (a mapping of name to value, or a function of the item giving one)
    are what subscriptions' filter policies match: each worker's queue or function takes only
    the messages meant for it. A ``str`` is a ``String``, an ``int`` or ``float`` a ``Number``,
    ``bytes`` ``Binary``, a list a ``String.Array``; at most 10, names as AWS allows them,
    checked when the target is made (a function's, when its item is prepared: that item fails
    with :class:`UsageError`, unsent). They count toward the message's byte limit.

    Example::

        target = SnsTarget(topic_arn, task=resize, replies=True, endpoint_url=aws.endpoint_url)
        result = await dispatch_many(target, keys, concurrency=50, timeout=60)
        result.values()   # what resize returned, in input order

        # one topic, a queue per kind of work: {"kind": ["image"]} as the queue's filter policy
        by_kind = SnsTarget(topic_arn, task=handle, message_attributes=lambda j: {"kind": j.kind})
    """

    service = "sns"
    limit_name, service_title = "sns_message", "SNS"
    messaging_system, batch_operation = "aws_sns", "PublishBatch"
    attribute_rules, destination_kind = SNS_ATTRIBUTES, "topic"

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
        message_attributes: MessageAttributes | None = None,
    ) -> None:
        super().__init__(
            session=session, client=client, endpoint_url=endpoint_url, region_name=region_name
        )
        if not topic_arn.startswith("arn:"):
            raise UsageError(f"SnsTarget takes a topic ARN (arn:aws:sns:...), got {topic_arn!r}")
        self.expires = checked_expires(expires, waits=replies not in (None, False))
        self.topic_arn = topic_arn
        self.setup_messages(
            fifo=topic_arn.endswith(".fifo"), group_id=group_id, dedup_id=dedup_id,
            message_attributes=message_attributes, limits=limits,
        )  # fmt: skip
        self.setup_replies(
            replies, task=task, secret=secret, claim_check=claim_check,
            reply_to=send_replies_to,
            sqs_endpoint_url=sqs_endpoint_url,
        )  # fmt: skip
        self.setup_batches(Batching(self.limits.sns_batch_entries, self.limits.sns_batch))

    def destination_name(self) -> str:
        return self.topic_arn.rsplit(":", 1)[-1]

    def __repr__(self) -> str:
        return f"<SnsTarget {self.topic_arn!r}" + (" with replies>" if self.fanin else ">")

    async def send_messages(self, batch: Sequence[tuple[Outgoing, bytes]]) -> list[Any]:
        """One ``PublishBatch`` of ``(message, its bytes for this attempt)``; one answer each."""
        await self.upload(message.claim for message, _ in batch)
        entries = [_entry(str(i), m, body) for i, (m, body) in enumerate(batch)]
        with self.lease() as client, translate_botocore_errors(ambiguous_retryable=True):
            response = await client.publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
            )
        return batch_answers(response, batch, "PublishBatch")


def _entry(entry_id: str, message: Outgoing, body: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "Message": body.decode()}
    if message.group_id is not None:
        entry["MessageGroupId"] = message.group_id
    if message.dedup_id is not None:
        entry["MessageDeduplicationId"] = message.dedup_id
    if message.attributes:
        entry["MessageAttributes"] = message.attributes
    return entry
