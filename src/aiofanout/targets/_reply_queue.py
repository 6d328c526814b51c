"""The reply queues of this process: receivers that scale with the work, batched deletes, sharing.

One :class:`ReplyQueue` per queue URL and event loop, however many targets and fan-outs use it:
every item waiting on that queue is in its one router, so a reply received by any receiver
reaches its item, and nothing of a live fan-out of this process is ever deleted as unknown.
The queue is attached by each target that opens with ``replies=`` and detached when it closes;
the last detach stops the receivers and, for a queue made for ``replies=True``, deletes it.

Receiving follows the work: one receiver long-polls while replies trickle in; receives that
come back full several times in a row (replies pile up) while more than ten items per receiver
wait start another (up to :data:`MAX_RECEIVERS`), and a receiver whose poll comes back not full
stops while another runs: receivers side by side split the batches a worker sends, so each one
beyond the first costs calls and runs only while replies wait.
Each receive's messages are routed first (the items go on at once), then deleted in one
``DeleteMessageBatch``. Traced, a receive that brought replies is a ``receive <queue>`` span
linking each reply's context (an empty long poll is none: see :func:`receive_span`).

A queue made for ``replies=True`` must not outlive the process. Ctrl-C cancels the run, and the
last detach deletes it; SIGTERM would end the process at once, so while such a queue exists
(and SIGTERM has its default action) this loop handles SIGTERM: it deletes the queues it made,
then ends the process by SIGTERM as it would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import FanoutError, NotFound
from .._log_fields import library_logger
from .._tracing import receive_span, receive_started
from ._reply_router import ReplyRouter, ReplyStats

__all__ = ["MAX_RECEIVERS", "POLL_WAIT", "ClientMaker", "ReplyQueue", "attach", "detach"]

log = library_logger("aiofanout.replies")

POLL_WAIT = 2  # seconds of long polling; also the longest a shared queue's detach waits
MAX_RECEIVERS = 8
BATCH = 10  # SQS's most messages per receive and entries per delete
FULL_STREAK = 4  # full receives in a row before another receiver starts
PAUSE_AFTER_ERROR = 1.0
#: Attributes of a queue made for ``replies=True``: a reply left on it (nobody here knew its id)
#: comes back soon, and nothing is kept past an hour.
PRIVATE_QUEUE_ATTRIBUTES = {"VisibilityTimeout": "5", "MessageRetentionPeriod": "3600"}


class ReplyQueue:
    """One reply queue of this process: its router, its receivers, who uses it."""

    def __init__(
        self,
        url: str,
        client: Any,
        *,
        owned: bool,
        grace: float,
        close_client: Callable[[], Awaitable[object]],
    ) -> None:
        self.url = url
        self.client = client
        self.owned = owned  # made for replies=True: deleted by the last detach
        self.router = ReplyRouter(grace=grace)
        self.users = 0
        self._close_client = close_client
        self._receivers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._full_streak = 0  # receives in a row that came back full

    @property
    def stats(self) -> ReplyStats:
        """What this queue received so far."""
        return self.router.stats

    @property
    def receivers(self) -> int:
        """Receivers running now."""
        return len(self._receivers)

    def start(self) -> None:
        """Start the first receiver."""
        self._spawn_receiver()

    def _spawn_receiver(self) -> None:
        task = asyncio.get_running_loop().create_task(self._receive_loop())
        self._receivers.add(task)
        task.add_done_callback(self._receivers.discard)

    async def _receive_loop(self) -> None:
        while not self._stopping:
            try:
                messages = await self._receive()
            except NotFound as exc:
                self.router.fail_all(exc)
                log.error("reply queue %s is gone: %s", self.url, exc)
                return
            except FanoutError as exc:
                log.warning("receiving replies from %s failed, trying again: %s", self.url, exc)
                await asyncio.sleep(PAUSE_AFTER_ERROR)
                continue
            if len(messages) < BATCH and len(self._receivers) > 1:
                self._receivers.discard(asyncio.current_task())
                await self._route(messages)
                return
            self._full_streak = self._full_streak + 1 if len(messages) >= BATCH else 0
            if self._needs_another_receiver():
                self._full_streak = 0
                self._spawn_receiver()
            await self._route(messages)

    def _needs_another_receiver(self) -> bool:
        # Full receives in a row mean replies wait on the queue: one receiver is behind. (One
        # full receive is normal: a worker sends a batch's replies together. Receivers beside
        # each other would split such a batch, so more receivers cost calls unless needed.)
        running = len(self._receivers)
        return (
            not self._stopping
            and self._full_streak >= FULL_STREAK
            and running < MAX_RECEIVERS
            and len(self.router.waiting) > BATCH * running
        )

    async def _receive(self) -> list[dict[str, Any]]:
        started = receive_started()
        with translate_botocore_errors(ambiguous_retryable=True):
            response = await self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=POLL_WAIT,
                AttributeNames=["SentTimestamp"],
            )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        receive_span(
            self.url, started, len(messages), lambda: [m.get("Body", "") for m in messages]
        )
        return messages

    async def _route(self, messages: list[dict[str, Any]]) -> None:
        now_ms = time.time() * 1000
        done = [
            message
            for message in messages
            if self.router.route(message.get("Body", ""), age=_age(message, now_ms))
        ]
        if done:
            await self._delete(done)

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            for i, message in enumerate(messages)
        ]
        try:
            with translate_botocore_errors(ambiguous_retryable=True):
                response = await self.client.delete_message_batch(
                    QueueUrl=self.url, Entries=entries
                )
        except FanoutError as exc:
            # Not deleted: they come back after the visibility timeout, and count as duplicates.
            log.warning("deleting %d replies from %s failed: %s", len(entries), self.url, exc)
            return
        if response.get("Failed"):
            log.warning("%d replies not deleted from %s", len(response["Failed"]), self.url)

    async def stop(self) -> None:
        """Stop receiving; delete the queue if it was made for ``replies=True``; close the client.

        A queue made here is deleted, so its receivers are cancelled at once. On a user's queue,
        a cancelled long poll could still take messages at the server and hide them from the
        next fan-out for the visibility timeout: its receivers finish their poll first.
        """
        self._stopping = True
        receivers = list(self._receivers)
        try:
            if receivers and not self.owned:
                await asyncio.wait(receivers, timeout=POLL_WAIT + 5)
            # Until none runs: a receiver may have started another just as this began.
            while pending := [task for task in self._receivers if not task.done()]:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            if self.owned:
                await self.delete_queue()
        finally:
            await self._close_client()

    async def delete_queue(self) -> None:
        """Delete the queue (one made for ``replies=True``)."""
        try:
            with translate_botocore_errors():
                await self.client.delete_queue(QueueUrl=self.url)
        except FanoutError as exc:
            log.error("could not delete the reply queue %s: %s", self.url, exc)
            raise


def _age(message: dict[str, Any], now_ms: float) -> float:
    """Seconds since the message was sent (0 when SQS did not say)."""
    sent = message.get("Attributes", {}).get("SentTimestamp")
    try:
        return max(0.0, (now_ms - int(sent)) / 1000) if sent is not None else 0.0
    except ValueError:
        return 0.0


@dataclass(slots=True)
class _Registry:
    """The reply queues of one event loop, by URL."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queues: dict[str, ReplyQueue] = field(default_factory=dict)
    handles_sigterm: bool = False  # this loop deletes its own queues on SIGTERM, then ends

    def owned(self) -> list[ReplyQueue]:
        return [queue for queue in self.queues.values() if queue.owned]

    def watch_sigterm(self) -> None:
        """Handle SIGTERM while this loop has queues of its own, if nobody else handles it."""
        if self.handles_sigterm or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the program handles SIGTERM: its shutdown detaches, and that deletes
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # (no signal handlers on Windows)
            loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
            self.handles_sigterm = True

    def unwatch_sigterm(self) -> None:
        if self.handles_sigterm and not self.owned():
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            self.handles_sigterm = False

    def _on_sigterm(self) -> None:
        task = asyncio.get_running_loop().create_task(self._delete_and_terminate())
        _terminating.add(task)

    async def _delete_and_terminate(self) -> None:
        queues = self.owned()
        log.warning("SIGTERM: deleting %d reply queue(s) of replies=True, then ending", len(queues))
        try:
            async with asyncio.timeout(TERMINATE_WITHIN):
                await asyncio.gather(
                    *(queue.delete_queue() for queue in queues), return_exceptions=True
                )
        finally:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # SIG_DFL again: the process ends as it would


#: Seconds SIGTERM waits for the reply queues to be deleted before the process ends anyway.
TERMINATE_WITHIN = 5.0
_terminating: set[asyncio.Task[None]] = set()  # (a running task needs a reference)


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = (
    weakref.WeakKeyDictionary()
)


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
    return registry


ClientMaker = Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[object]]]]]


async def attach(url: str | None, make_client: ClientMaker, *, grace: float) -> ReplyQueue:
    """The reply queue at ``url`` (``None``: a new one made for the caller), one more user."""
    registry = _registry()
    async with registry.lock:
        queue = registry.queues.get(url) if url is not None else None
        if queue is None:
            queue = await _open(url, make_client, grace=grace)
            registry.queues[queue.url] = queue
            if queue.owned:
                registry.watch_sigterm()
            queue.start()
        queue.users += 1
        return queue


async def _open(url: str | None, make_client: ClientMaker, *, grace: float) -> ReplyQueue:
    client, close_client = await make_client()
    try:
        if url is None:
            with translate_botocore_errors():
                response = await client.create_queue(
                    QueueName=f"aiofanout-replies-{uuid.uuid4().hex[:20]}",
                    Attributes=PRIVATE_QUEUE_ATTRIBUTES,
                )
            return ReplyQueue(
                response["QueueUrl"], client, owned=True, grace=grace, close_client=close_client
            )
        return ReplyQueue(url, client, owned=False, grace=grace, close_client=close_client)
    except BaseException:
        await close_client()
        raise


async def detach(queue: ReplyQueue) -> None:
    """One user fewer; the last one stops the queue (and deletes it if it was made here)."""
    registry = _registry()
    async with registry.lock:
        queue.users -= 1
        if queue.users > 0:
            return
        registry.queues.pop(queue.url, None)
        try:
            await queue.stop()
        finally:
            registry.unwatch_sigterm()
