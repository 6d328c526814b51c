"""Asynchronous (``Event``) invocations: queued on 202, run, retried, then the on-failure record.

As on Lambda: an accepted event waits for capacity (it is never throttled), a failed one is
retried ``event_retries`` times after ``event_retry_delays``, and one that failed every try is
sent to the ``on_failure`` queue as the record a destination receives (``RetriesExhausted``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._background import Background
    from ._functions import Function
    from ._invocation import Invoke, Result
    from ._sqs import SqsClient


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An accepted ``Event`` invocation and the try it is on (1-based)."""

    request_id: str
    payload: bytes
    attempt: int = 1


class EventQueue:
    """The ``Event`` invocations of one function waiting to run."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[QueuedEvent] = asyncio.Queue()

    def put(self, event: QueuedEvent) -> None:
        """Queue an event (never blocks: accepted means queued)."""
        self._queue.put_nowait(event)

    async def get(self) -> QueuedEvent:
        """The next event to run."""
        return await self._queue.get()


class EventRunner:
    """Runs every function's queued events through ``invoke``, each in its own task."""

    def __init__(self, invoke: Invoke, sqs: SqsClient, background: Background) -> None:
        self._invoke = invoke
        self._sqs = sqs
        self._background = background

    async def run(self, function: Function) -> None:
        """Take ``function``'s events as they come, until cancelled."""
        while True:
            event = await function.events.get()
            self._background.spawn(self._run_one(function, event))

    async def _run_one(self, function: Function, event: QueuedEvent) -> None:
        # wait=True: a queued event waits for capacity, it is never throttled.
        result = await self._invoke(
            function.name, event.payload, request_id=event.request_id, wait=True
        )
        if result.error_type is None:
            return
        config = function.config
        if event.attempt <= config.event_retries:
            await asyncio.sleep(config.retry_delay(event.attempt))
            function.events.put(dataclasses.replace(event, attempt=event.attempt + 1))
            return
        if config.on_failure:
            record = failure_record(function.arn, event, result)
            sqs = await self._sqs.get()
            await sqs.send_message(QueueUrl=config.on_failure, MessageBody=json.dumps(record))


def failure_record(arn: str, event: QueuedEvent, result: Result) -> dict[str, Any]:
    """The record an on-failure destination receives for an event that failed every try."""
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": event.attempt,
        },
        "requestPayload": _json_or_text(event.payload),
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": _json_or_text(result.body),
    }


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
