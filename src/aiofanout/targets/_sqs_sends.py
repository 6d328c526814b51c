"""Sends of concurrent calls gathered into batch requests (``SendMessageBatch``, ``PublishBatch``).

With replies, an SQS item stays in flight until its reply comes back, so the engine counts items
(``concurrency`` bounds unanswered work) and calls the target once per item. The sends still go
out in batches: the calls made in one turn of the event loop are gathered and sent together, up
to the batch limits. Replies come back ten to a receive, so the items they free start together
and their sends fill a batch again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._target import Batching
from .._wire import Outgoing

__all__ = ["AwaitingReply", "BatchSender"]

SendBatch = Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]


class AwaitingReply:
    """A message awaiting its reply, finished for its attempt: what the batch sender packs.

    ``len()`` is the finished body's size in bytes, which batches are packed by.
    """

    __slots__ = ("body", "message")

    def __init__(self, message: Outgoing, body: bytes) -> None:
        self.message = message
        self.body = body

    def __len__(self) -> int:
        return len(self.body)


class BatchSender:
    """Gathers the messages of concurrent :meth:`send` calls into batch requests.

    ``send_batch`` sends one batch and returns one entry per message: anything for sent, an
    exception instance for a message that failed; raising fails the whole batch. ``len()`` of a
    message is its size in bytes.
    """

    def __init__(self, send_batch: SendBatch, batching: Batching) -> None:
        self._send_batch = send_batch
        self._batching = batching
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        #: Batch requests made so far.
        self.requests = 0

    async def send(self, message: Any) -> None:
        """Send one message with whatever else is being sent now; raise its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((message, future))
        if not self._flush_scheduled:
            # Calls woken in this turn of the loop run before this callback: they join the batch.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        result = await future
        if isinstance(result, BaseException):
            raise result

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for batch in self._batching.split(pending, lambda entry: len(entry[0])):
            task = loop.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        live = [(message, future) for message, future in batch if not future.done()]
        if not live:
            return  # every caller gave up (timed out, cancelled) before the batch went out
        self.requests += 1
        results: Sequence[Any]
        try:
            results = await self._send_batch([message for message, _ in live])
        except Exception as exc:  # the whole batch failed: each caller gets the error
            results = [exc] * len(live)
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def aclose(self) -> None:
        """Wait for the batches still being sent (their callers may have given up)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
