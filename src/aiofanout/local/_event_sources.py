"""SQS event source mappings: their registry and states, and the pollers that feed a function.

A mapping is ``Creating`` until its pollers run, then ``Enabled`` (or ``Disabled``: no pollers);
an update makes it ``Enabling`` or ``Disabling`` when it turns it on or off, else ``Updating``,
until its pollers restart with the new settings (AWS's states); a delete makes
it ``Deleting`` until its pollers have stopped, then it is gone. The Python API
(:meth:`LocalLambda.add_event_source`) and the API (``CreateEventSourceMapping`` ...) both
register here.

Each poller holds at most one batch in flight, so the pollers are the mapping's concurrency. As
on AWS: a batch becomes one synchronous invoke with an ``aws:sqs`` event; with
``ReportBatchItemFailures`` only the records named in ``batchItemFailures`` stay on the queue
(an unknown id, or a malformed answer, keeps the whole batch); a function error keeps the whole
batch. What stays comes back after the visibility timeout, and the queue's own redrive policy
moves it to its DLQ after ``maxReceiveCount`` receives: that part is the queue's (moto's) job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._log_fields import library_logger
from ._account import sqs_event_record
from ._config import EventSourceMapping

if TYPE_CHECKING:
    from ._background import Background
    from ._moto import SqsClient
    from ._sandbox import Invoke


@dataclass(eq=False)
class Mapping:
    """One event source mapping: its settings, state and pollers."""

    config: EventSourceMapping
    source_arn: str
    enabled: bool = True
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency, as it was set
    response_types: list[str] = field(default_factory=list)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "Creating"
    last_modified: float = field(default_factory=time.time)
    pollers: list[asyncio.Task[None]] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one transition at a time


class Mappings:
    """Every event source mapping of one runtime, by UUID."""

    def __init__(self, invoke: Invoke, sqs: SqsClient, background: Background) -> None:
        self._invoke = invoke
        self._sqs = sqs
        self._background = background
        self.by_uuid: dict[str, Mapping] = {}

    async def queue_arn(self, queue_url: str) -> str:
        """The ARN of the queue at ``queue_url``."""
        sqs = await self._sqs.get()
        got = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(got["Attributes"]["QueueArn"])

    async def queue_url(self, queue_arn: str) -> str:
        """The URL of the queue ``queue_arn`` on the moto server."""
        sqs = await self._sqs.get()
        return str((await sqs.get_queue_url(QueueName=queue_arn.rpartition(":")[2]))["QueueUrl"])

    def add(self, mapping: Mapping) -> Mapping:
        """Register ``mapping`` (``Creating``) and start it in the background."""
        self.by_uuid[mapping.uuid] = mapping
        self._transition(mapping, "Creating", self._start(mapping))
        return mapping

    def update(self, mapping: Mapping, config: EventSourceMapping, **changes: Any) -> None:
        """Apply new settings (``Updating``, ``Enabling``...): the pollers restart with them."""
        was_enabled = mapping.enabled
        mapping.config = config
        for name, value in changes.items():
            setattr(mapping, name, value)
        self._transition(mapping, _changing(was_enabled, mapping.enabled), self._restart(mapping))

    def delete(self, mapping: Mapping) -> None:
        """Stop the pollers (``Deleting``), then forget the mapping."""
        self._transition(mapping, "Deleting", self._remove(mapping))

    def disable_for(self, function: str) -> None:
        """Disable the mappings of a deleted function (AWS keeps them, failing; here they rest)."""
        for mapping in list(self.by_uuid.values()):
            if mapping.config.function == function and mapping.enabled:
                self.update(mapping, mapping.config, enabled=False)

    def _transition(self, mapping: Mapping, state: str, then: Any) -> None:
        mapping.state = state
        mapping.last_modified = time.time()
        mapping.settled.clear()
        self._background.spawn(then)

    async def _start(self, mapping: Mapping) -> None:
        async with mapping.lock:
            await self._start_pollers(mapping)

    async def _start_pollers(self, mapping: Mapping) -> None:
        if mapping.enabled:
            sqs = await self._sqs.get()
            for _ in range(mapping.config.pollers):
                task = self._background.spawn(poll(self._invoke, sqs, mapping.config))
                mapping.pollers.append(task)
        mapping.state = "Enabled" if mapping.enabled else "Disabled"
        mapping.settled.set()

    async def _stop_pollers(self, mapping: Mapping) -> None:
        pollers, mapping.pollers = mapping.pollers, []
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)

    async def _restart(self, mapping: Mapping) -> None:
        async with mapping.lock:
            await self._stop_pollers(mapping)
            await self._start_pollers(mapping)

    async def _remove(self, mapping: Mapping) -> None:
        async with mapping.lock:
            await self._stop_pollers(mapping)
            self.by_uuid.pop(mapping.uuid, None)
            mapping.settled.set()


def _changing(was_enabled: bool, enabled: bool) -> str:
    """The state of a mapping while an update applies."""
    if enabled == was_enabled:
        return "Updating"
    return "Enabling" if enabled else "Disabling"


def with_changes(config: EventSourceMapping, **changes: Any) -> EventSourceMapping:
    """``config`` with ``changes`` (validated again)."""
    return dataclasses.replace(config, **changes)


# -- the pollers ------------------------------------------------------------------------------

log = library_logger("aiofanout.local.esm")
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
