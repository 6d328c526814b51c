"""The SQS event source mapping: poll a queue, invoke a function with batches, delete what worked.

As on AWS: a batch becomes one synchronous invoke with an ``aws:sqs`` event; with
``ReportBatchItemFailures`` only the records named in ``batchItemFailures`` stay on the queue
(an unknown id, or a malformed answer, keeps the whole batch); a function error keeps the whole
batch. What stays comes back after the visibility timeout, and the queue's own redrive policy
moves it to its DLQ after ``maxReceiveCount`` receives: that part is the queue's (moto's) job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ._aws import sqs_event_record
from ._config import EventSourceMapping

if TYPE_CHECKING:
    from ._invocation import Invoke

log = logging.getLogger("aiofanout.local.esm")
IDLE_WAIT = 1  # seconds of SQS long polling while the queue is empty


async def poll(invoke: Invoke, sqs: Any, mapping: EventSourceMapping) -> None:
    """Run one poller until cancelled."""
    arn = await _queue_arn(sqs, mapping.queue_url)
    while True:
        try:
            messages = await _receive(sqs, mapping)
            if messages:
                await _deliver(invoke, sqs, mapping, arn, messages)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling %s failed; trying again", mapping.queue_url)
            await asyncio.sleep(1)


async def _queue_arn(sqs: Any, queue_url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


async def _receive(sqs: Any, mapping: EventSourceMapping) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    window_ends = time.monotonic() + mapping.batching_window
    while len(messages) < mapping.batch_size:
        wait = IDLE_WAIT if not messages else 0
        response = await sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=min(10, mapping.batch_size - len(messages)),  # SQS's most
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        got = response.get("Messages", [])
        messages += got
        if not got or time.monotonic() >= window_ends:
            break
    return messages


def record_of(message: dict[str, Any], arn: str) -> dict[str, Any]:
    """A received SQS message as the record Lambda's event source hands a function."""
    return sqs_event_record(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        source_arn=arn,
        attributes=message.get("Attributes", {}),
        message_attributes=message.get("MessageAttributes", {}),
        md5_of_body=message.get("MD5OfBody", ""),
    )


async def _deliver(
    invoke: Invoke,
    sqs: Any,
    mapping: EventSourceMapping,
    arn: str,
    messages: list[dict[str, Any]],
) -> None:
    event = {"Records": [record_of(m, arn) for m in messages]}
    result = await invoke(mapping.function, json.dumps(event).encode(), wait=True)
    if result.error_type is not None:
        return  # the whole batch comes back after the visibility timeout
    done = _succeeded(messages, result.body, mapping.report_batch_item_failures)
    if done:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
        await sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=entries)


def _succeeded(
    messages: list[dict[str, Any]], body: bytes, report_failures: bool
) -> list[dict[str, Any]]:
    if not report_failures:
        return messages
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        return []  # a malformed answer keeps the whole batch, as on AWS
    if not isinstance(answer, dict) or not answer.get("batchItemFailures"):
        return messages  # null, {} or an empty list: everything succeeded
    failures = answer["batchItemFailures"]
    ids = {m["MessageId"] for m in messages}
    failed = set()
    for failure in failures if isinstance(failures, list) else [None]:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if item not in ids:
            return []  # an unknown or missing id fails the whole batch
        failed.add(item)
    return [m for m in messages if m["MessageId"] not in failed]
