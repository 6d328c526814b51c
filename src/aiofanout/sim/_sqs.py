"""Simulated SQS: queues with visibility timeouts and redrive, and a Lambda event source mapping.

As AWS documents them:

- A received message is invisible for the queue's visibility timeout; deleted, it is gone; not
  deleted in time, it comes back with ``ApproximateReceiveCount`` one higher. With a redrive
  policy, a message received ``maxReceiveCount`` times goes to the dead-letter queue instead.
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
- The event source mapping "starts with five concurrent batches", "adds up to 300 more instances
  of your function per minute" while messages wait, up to 1,000 concurrent batches or its
  ``ScalingConfig.MaximumConcurrency`` (2 to 1,000). A batch whose function throttles or fails
  comes back after the visibility timeout; with ``ReportBatchItemFailures`` only the ids the
  function names in ``batchItemFailures`` do.
  https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import UsageError
from ._lambda import Function, Throttle
from ._service_errors import service_error

__all__ = ["EventSourceMapping", "Queue", "SqsClient", "SqsWorld"]

START_BATCHES = 5
ADDED_PER_MINUTE = 300
MAX_BATCHES = 1_000


@dataclass(slots=True)
class Message:
    """One message: its id, body, and how many times it was received."""

    id: str
    body: str
    receives: int = 0


class Queue:
    """A standard queue: visible messages, messages in flight, and where the dead ones go."""

    def __init__(
        self,
        name: str,
        *,
        visibility_timeout: float = 30.0,
        dead_letter: Queue | None = None,
        max_receive_count: int = 0,
    ) -> None:
        if dead_letter is not None and max_receive_count < 1:
            raise UsageError("a dead-letter queue needs max_receive_count >= 1")
        self.name = name
        self.url = f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
        self.visibility_timeout = visibility_timeout
        self.dead_letter, self.max_receive_count = dead_letter, max_receive_count
        self.visible: deque[Message] = deque()
        self.in_flight = 0
        self.deleted = 0
        self.requests = 0  # billed SQS requests (sends, receives, deletes)
        self.arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self.visible)

    def put(self, message: Message) -> None:
        """A message sent, or back from its visibility timeout."""
        self.visible.append(message)
        self.arrived.set()

    def take(self, count: int) -> list[Message]:
        """Receive up to ``count`` messages; each goes invisible (or to the dead-letter queue)."""
        taken: list[Message] = []
        while self.visible and len(taken) < count:
            message = self.visible.popleft()
            if self.dead_letter is not None and message.receives >= self.max_receive_count:
                self.dead_letter.put(Message(message.id, message.body))
                continue
            message.receives += 1
            taken.append(message)
        if not self.visible:
            self.arrived.clear()
        self.in_flight += len(taken)
        return taken

    def delete(self, message: Message) -> None:
        """The consumer is done with ``message``."""
        self.in_flight -= 1
        self.deleted += 1

    def give_back(self, message: Message) -> None:
        """``message`` was not deleted: it shows again when its visibility timeout ends."""
        loop = asyncio.get_running_loop()

        def visible_again() -> None:
            self.in_flight -= 1
            self.put(message)

        loop.call_later(self.visibility_timeout, visible_again)


class SqsWorld(Protocol):
    """What the SQS client needs of the simulated AWS (:class:`~aiofanout.sim.SimulatedAws`)."""

    seed: int
    queues: dict[str, Queue]

    def half_trip(self) -> float: ...


class SqsClient:
    """The SQS API of a :class:`SimulatedAws` in aioboto3's shape: ``send_message_batch`` and more.

    Example::

        target = SqsTarget(queue.url, task=None, client=aws.sqs_client())
    """

    def __init__(self, aws: SqsWorld) -> None:
        self._aws = aws
        self._ids = 0

    async def __aenter__(self) -> SqsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def close(self) -> None:
        """Nothing to close."""

    def _queue(self, url: str, operation: str) -> Queue:
        queue = self._aws.queues.get(url.rsplit("/", 1)[-1])
        if queue is None:
            raise service_error(
                operation, 400, "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
            )  # fmt: skip
        return queue

    async def send_message_batch(
        self,
        *,
        QueueUrl: str,  # noqa: N803 - botocore's parameter names
        Entries: list[dict[str, Any]],  # noqa: N803
    ) -> dict[str, Any]:
        """Send up to 10 messages; each entry is answered in ``Successful``."""
        queue = self._queue(QueueUrl, "SendMessageBatch")
        if not 1 <= len(Entries) <= 10:
            raise service_error(
                "SendMessageBatch", 400, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                f"Maximum number of entries per request are 10. You have sent {len(Entries)}.",
            )  # fmt: skip
        trip = 2 * self._aws.half_trip()
        if trip:
            await asyncio.sleep(trip)
        queue.requests += 1
        successful = []
        for entry in Entries:
            self._ids += 1
            message_id = f"{self._aws.seed:08x}-0000-4000-8000-{self._ids:012x}"
            queue.put(Message(message_id, entry["MessageBody"]))
            successful.append({"Id": entry["Id"], "MessageId": message_id})
        return {
            "Successful": successful,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    async def get_queue_attributes(
        self,
        *,
        QueueUrl: str,  # noqa: N803
        AttributeNames: list[str] | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        """The approximate counts of visible and in-flight messages."""
        queue = self._queue(QueueUrl, "GetQueueAttributes")
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(len(queue)),
                "ApproximateNumberOfMessagesNotVisible": str(queue.in_flight),
            }
        }


class EventSourceMapping:
    """Lambda polling a queue: batches to the function, concurrency scaled as AWS scales it."""

    def __init__(
        self,
        queue: Queue,
        function: Function,
        *,
        batch_size: int = 10,
        maximum_concurrency: int | None = None,
        report_batch_item_failures: bool = True,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise UsageError(f"batch_size must be within 1..10000, got {batch_size!r}")
        if maximum_concurrency is not None and not 2 <= maximum_concurrency <= MAX_BATCHES:
            raise UsageError(
                f"maximum_concurrency must be within 2..1000, got {maximum_concurrency!r}"
            )
        self.queue, self.function, self.batch_size = queue, function, batch_size
        self.maximum = maximum_concurrency or MAX_BATCHES
        self.report_batch_item_failures = report_batch_item_failures
        self.pollers: list[asyncio.Task[None]] = []
        self.busy = 0
        self.peak = 0
        self.batches = 0
        self.throttles = 0
        self._scaler: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling (:meth:`SimulatedAws.event_source_mapping` does)."""
        loop = asyncio.get_running_loop()
        self._scaler = loop.create_task(self._scale())

    def stop(self) -> None:
        """Stop every poller."""
        for task in [*self.pollers, *([self._scaler] if self._scaler else [])]:
            task.cancel()

    @property
    def concurrency(self) -> int:
        """The concurrent batches the mapping may run now."""
        return len(self.pollers)

    async def _scale(self) -> None:
        # Five batches when messages appear, then up to 300 more a minute (5 a second) while
        # messages wait and every poller is busy.
        loop = asyncio.get_running_loop()
        await self.queue.arrived.wait()
        self._add(START_BATCHES, loop)
        while True:
            await asyncio.sleep(1.0)
            if len(self.queue) and self.busy >= len(self.pollers):
                self._add(ADDED_PER_MINUTE // 60, loop)

    def _add(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        for _ in range(min(count, self.maximum - len(self.pollers))):
            self.pollers.append(loop.create_task(self._poll()))

    async def _poll(self) -> None:
        queue = self.queue
        while True:
            if not len(queue):
                await queue.arrived.wait()
                continue
            batch = queue.take(self.batch_size)
            queue.requests += 1
            if batch:
                self.busy += 1
                self.peak = max(self.peak, self.busy)
                try:
                    await self._process(batch)
                finally:
                    self.busy -= 1

    async def _process(self, batch: list[Message]) -> None:
        loop = asyncio.get_running_loop()
        function, queue = self.function, self.queue
        reserved = function.reserved_concurrency is not None
        try:
            cold = function.admit(loop.time())
        except Throttle:
            self.throttles += 1
            for message in batch:
                queue.give_back(message)
            await asyncio.sleep(1.0)  # the poller backs off before its next batch
            return
        self.batches += 1
        busy, _, failed = function.run_time(cold)
        await asyncio.sleep(busy)
        function.release(loop.time(), busy, counted_reserved=reserved)
        failed_ids = self._failed_ids(batch, failed)
        for message in batch:
            if message.id in failed_ids:
                queue.give_back(message)
            else:
                queue.delete(message)
        queue.requests += 1  # DeleteMessageBatch

    def _failed_ids(self, batch: list[Message], failed: bool) -> set[str]:
        if failed:
            return {message.id for message in batch}
        handler = self.function.handler
        if handler is None:
            return set()
        event = {"Records": [_record(message, self.queue) for message in batch]}
        try:
            answer = handler(event)
        except Exception:  # a handler that raises fails the whole batch
            return {message.id for message in batch}
        if not self.report_batch_item_failures or not isinstance(answer, dict):
            return set()
        failures = answer.get("batchItemFailures") or []
        ids = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
        known = {message.id for message in batch}
        return known if ids - known else ids  # an unknown id fails the whole batch


def _record(message: Message, queue: Queue) -> dict[str, Any]:
    return {
        "messageId": message.id,
        "receiptHandle": message.id,
        "body": message.body,
        "attributes": {"ApproximateReceiveCount": str(message.receives)},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue.name}",
        "awsRegion": "us-east-1",
    }
