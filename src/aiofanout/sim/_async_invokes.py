"""Lambda's asynchronous invocations: the internal queue, its retries, the on-failure records.

As AWS documents them (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html):

- An ``Event`` invoke is answered 202 at once; the event waits in the function's queue.
- A throttled attempt (429) goes back to the queue and is tried again, "the retry interval
  increases exponentially from 1 second after the first attempt to a maximum of 5 minutes",
  for as long as the event is younger than its maximum age (6 hours by default, 60 s to 6 h).
- A function error is retried ``MaximumRetryAttempts`` times (2 by default, 0 to 2), "with a
  one-minute wait between the first two attempts, and two minutes between the second and third".
- An event that runs out of retries or of age goes to the on-failure destination with the
  asynchronous invocation record (``condition``: ``RetriesExhausted`` or ``EventAgeExceeded``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .._errors import UsageError
from ._lambda import Function, Throttle

__all__ = ["AsyncInvokes", "EventConfig"]

THROTTLE_FIRST_RETRY = 1.0
THROTTLE_MAX_RETRY = 300.0
ERROR_RETRY_WAITS = (60.0, 120.0)
MAX_EVENT_AGE = 21_600.0
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


@dataclass(slots=True)
class EventConfig:
    """A function's PutFunctionEventInvokeConfig, and what went to its on-failure destination."""

    maximum_retry_attempts: int = 2
    maximum_event_age: float = MAX_EVENT_AGE
    failures: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.maximum_retry_attempts not in (0, 1, 2):
            raise UsageError(
                f"maximum_retry_attempts is 0, 1 or 2, got {self.maximum_retry_attempts!r}"
            )
        if not 60 <= self.maximum_event_age <= MAX_EVENT_AGE:
            raise UsageError(
                f"maximum_event_age is 60..21600 seconds, got {self.maximum_event_age!r}"
            )


class AsyncInvokes:
    """The queued events of every function of a simulated account, each delivered by a task."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.retries = 0  # of function errors
        self.throttles = 0  # attempts the queue made that found no concurrency

    def enqueue(self, function: Function, config: EventConfig, payload: bytes, rid: str) -> None:
        """Queue one event (an ``Event`` invoke answered 202)."""
        task = asyncio.get_running_loop().create_task(self._deliver(function, config, payload, rid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait until every queued event has run or gone to its on-failure destination."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    def cancel(self) -> None:
        """Drop what is still queued (the simulation is over)."""
        for task in self.tasks:
            task.cancel()

    async def _deliver(
        self, function: Function, config: EventConfig, payload: bytes, rid: str
    ) -> None:
        loop = asyncio.get_running_loop()
        queued_at = loop.time()
        throttle_wait = THROTTLE_FIRST_RETRY
        attempts = 0
        while True:
            if loop.time() - queued_at > config.maximum_event_age:
                self._failed(function, config, payload, rid, "EventAgeExceeded", attempts)
                return
            reserved = function.reserved_concurrency is not None
            try:
                # Counted against the invoke rate when it was sent: the queue is not a caller.
                cold = function.admit(loop.time(), rate=False)
            except Throttle:
                self.throttles += 1
                await asyncio.sleep(throttle_wait)
                throttle_wait = min(2 * throttle_wait, THROTTLE_MAX_RETRY)
                continue
            attempts += 1
            busy, _, failed = function.run_time(cold)
            await asyncio.sleep(busy)
            function.release(loop.time(), busy, counted_reserved=reserved)
            if not failed:
                self.delivered += 1
                return
            if attempts > config.maximum_retry_attempts:
                self._failed(function, config, payload, rid, "RetriesExhausted", attempts)
                return
            self.retries += 1
            await asyncio.sleep(ERROR_RETRY_WAITS[attempts - 1])

    def _failed(
        self,
        function: Function,
        config: EventConfig,
        payload: bytes,
        rid: str,
        condition: str,
        attempts: int,
    ) -> None:
        # The asynchronous invocation record, as an on-failure destination receives it.
        config.failures.append(
            {
                "version": "1.0",
                "requestContext": {
                    "requestId": rid,
                    "functionArn": f"{FUNCTION_ARN}{function.name}",
                    "condition": condition,
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": payload.decode(errors="replace"),
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled" if attempts else None,
                },
            }
        )
