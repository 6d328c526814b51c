"""SQS event source mappings of one runtime: their pollers and their states, as AWS reports them.

A mapping is ``Creating`` until its pollers run, then ``Enabled`` (or ``Disabled``: no pollers);
an update makes it ``Updating`` until its pollers restart with the new settings; a delete makes
it ``Deleting`` until its pollers have stopped, then it is gone. Each poller holds at most one
batch in flight, so the pollers are the mapping's concurrency. The Python API
(:meth:`LocalLambda.add_event_source`) and the API (``CreateEventSourceMapping`` ...) both
register here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._config import EventSourceMapping
from ._esm import poll

if TYPE_CHECKING:
    from ._background import Background
    from ._invocation import Invoke
    from ._sqs import SqsClient


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
        """Apply new settings (``Updating``): the pollers restart with them."""
        mapping.config = config
        for name, value in changes.items():
            setattr(mapping, name, value)
        self._transition(mapping, "Updating", self._restart(mapping))

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


def with_changes(config: EventSourceMapping, **changes: Any) -> EventSourceMapping:
    """``config`` with ``changes`` (validated again)."""
    return dataclasses.replace(config, **changes)
