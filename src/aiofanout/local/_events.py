"""Asynchronous (``Event``) invocations: queued on 202, run, retried, then a destination record.

As on Lambda: an accepted event waits for capacity (it is never throttled), a failed one is
retried ``MaximumRetryAttempts`` times (``event_retries`` of a Python config) after
``event_retry_delays``; one that failed every try goes to the on-failure destination
(``RetriesExhausted``), one older than ``MaximumEventAgeInSeconds`` when its turn comes is
dropped there (``EventAgeExceeded``), and a success goes to the on-success destination
(``Success``), each as the record AWS sends a destination. A destination is an SQS queue ARN
(from the API) or URL (``FunctionConfig.on_failure``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._background import Background
    from ._config import FunctionConfig
    from ._moto import SqsClient
    from ._sandbox import Invoke, Result


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An accepted ``Event`` invocation and the try it is on (1-based)."""

    request_id: str
    payload: bytes
    attempt: int = 1
    accepted_at: float = dataclasses.field(default_factory=time.time)


class EventFunction(Protocol):
    """What the events of a function need of it (a ``_functions.Function`` has it all)."""

    config: FunctionConfig
    events: EventQueue
    settings: dict[str, Any]  # the API's event invoke config is under :data:`KEY`

    @property
    def name(self) -> str:
        """The function's name."""

    @property
    def arn(self) -> str:
        """The function's (unqualified) ARN."""


#: Where a function keeps the API's event invoke config (``Function.settings``).
KEY = "event_invoke"


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """``MaximumRetryAttempts``, ``MaximumEventAgeInSeconds`` and destinations (queue ARNs)."""

    maximum_retry_attempts: int | None = None
    maximum_event_age: int | None = None
    on_success: str | None = None
    on_failure: str | None = None
    last_modified: float = dataclasses.field(default_factory=time.time)


def event_invoke_config(function: EventFunction) -> EventInvokeConfig | None:
    """The function's event invoke config, if the API put one."""
    config = function.settings.get(KEY)
    return config if isinstance(config, EventInvokeConfig) else None


@dataclass(frozen=True, slots=True)
class Policy:
    """What happens to a function's events: retries, maximum age, destinations."""

    retries: int
    maximum_age: float | None = None
    on_success: str | None = None
    on_failure: str | None = None

    @classmethod
    def of(cls, function: EventFunction) -> Policy:
        """The API's event invoke config over the function's own (Python) settings."""
        config, api = function.config, event_invoke_config(function)
        if api is None:
            return cls(config.event_retries, on_failure=config.on_failure)
        retries = api.maximum_retry_attempts
        return cls(
            config.event_retries if retries is None else retries,
            api.maximum_event_age,
            api.on_success,
            api.on_failure or config.on_failure,
        )


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
        self.clock = time.time  # what an event's age is measured by

    async def run(self, function: EventFunction) -> None:
        """Take ``function``'s events as they come, until cancelled."""
        while True:
            event = await function.events.get()
            self._background.spawn(self._run_one(function, event))

    async def _run_one(self, function: EventFunction, event: QueuedEvent) -> None:
        policy = Policy.of(function)
        age = self.clock() - event.accepted_at
        if policy.maximum_age is not None and age > policy.maximum_age:
            record = destination_record(function.arn, event, None, "EventAgeExceeded")
            await self._send(policy.on_failure, record)
            return
        # wait=True: a queued event waits for capacity, it is never throttled.
        result = await self._invoke(
            function.name, event.payload, request_id=event.request_id, wait=True
        )
        if result.error_type is None:
            record = destination_record(function.arn, event, result, "Success")
            await self._send(policy.on_success, record)
        elif event.attempt <= policy.retries:
            await asyncio.sleep(function.config.retry_delay(event.attempt))
            function.events.put(dataclasses.replace(event, attempt=event.attempt + 1))
        else:
            record = destination_record(function.arn, event, result, "RetriesExhausted")
            await self._send(policy.on_failure, record)

    async def _send(self, destination: str | None, record: dict[str, Any]) -> None:
        """Send ``record`` to an SQS queue (an ARN or a URL); nowhere if there is none."""
        if destination is None:
            return
        sqs = await self._sqs.get()
        url = destination
        if destination.startswith("arn:aws:sqs:"):
            name = destination.rpartition(":")[2]
            url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))


def destination_record(
    arn: str, event: QueuedEvent, result: Result | None, condition: str
) -> dict[str, Any]:
    """The record a destination receives (AWS's asynchronous invocation record).

    ``condition`` is ``Success``, ``RetriesExhausted`` or ``EventAgeExceeded``; an event dropped
    for its age before this try has no response (``result`` is ``None``).
    """
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": event.attempt if result is not None else event.attempt - 1,
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if result is not None:
        context = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result.error_type is not None:
            context["functionError"] = "Unhandled"
        record["responseContext"] = context
        record["responsePayload"] = _json_or_text(result.body)
    return record


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
