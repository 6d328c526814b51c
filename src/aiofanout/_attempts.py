"""One attempt at a target, and the waits between attempts: timeouts, retry policy, backoff, rate.

An attempt runs under the earlier of the attempt timeout and the deadline (enforced by the run's
one :class:`AttemptTimer`), so at the deadline every attempt in flight ends ``TIMED_OUT`` at
once. Waits the engine makes itself (backoff, rate) are never started when they would end past
the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ._errors import FanoutError, Throttled
from ._input import Gate
from ._options import Options, clock
from ._outcome import CANCELLED, FAILED, SUCCEEDED, TIMED_OUT, Attempt, StopReason
from ._target import Target
from ._timer import INF, AttemptTimer, Slot, attempt_failed, attempt_succeeded
from ._tracing import AttemptSpan, FanoutTracing


class Attempts:
    """Makes attempts at a target and decides whether, and when, to make another."""

    __slots__ = (
        "gate",
        "interval",
        "next_start",
        "retries",
        "retry",
        "target",
        "throttles",
        "timer",
        "tracing",
    )

    def __init__(self, target: Target, options: Options, gate: Gate, timer: AttemptTimer) -> None:
        self.target = target
        self.gate = gate
        self.timer = timer
        self.retry = options.retry
        self.interval = options.interval
        self.next_start = 0.0
        self.retries = 0  # attempts beyond the first, over all items
        self.tracing: FanoutTracing | None = None  # a span per attempt when the run is traced
        self.throttles = 0  # attempts the far end throttled, over all items (the run counts)

    def _arm(self, slot: Slot) -> float | None:
        """Arm ``slot`` for an attempt starting now; return the time it has (``None``: no limit)."""
        now = clock()
        slot.expires = self.timer.bound(now)
        return None if slot.expires == INF else max(0.0, slot.expires - now)

    async def once(self, payload: Any, slot: Slot) -> Attempt:
        """One call with one payload, expired by the run's timer."""
        remaining = self._arm(slot)
        span = None if self.tracing is None else self.tracing.attempt()
        try:
            value = await self.target.call(payload, timeout=remaining)
        except BaseException as exc:
            error = attempt_failed(slot, exc)
            self._ended(span, error)
            return classify(error), None, error
        attempt_succeeded(slot)
        if span is not None:
            span.end()
        return SUCCEEDED, value, None

    def _ended(self, span: AttemptSpan | None, error: BaseException) -> None:
        if span is not None:
            span.end(error)

    async def batch(self, payloads: list[Any], slot: Slot) -> list[Attempt]:
        """One call with a batch of payloads: one result per payload."""
        remaining = self._arm(slot)
        span = None if self.tracing is None else self.tracing.attempt(len(payloads))
        try:
            replies = await self.target.call_batch(payloads, timeout=remaining)
        except BaseException as exc:
            error = attempt_failed(slot, exc)
            self._ended(span, error)
            return [(classify(error), None, error)] * len(payloads)
        attempt_succeeded(slot)
        results = self._per_payload(replies, len(payloads))
        if span is not None:
            span.end(failed=sum(1 for result in results if result[2] is not None))
        return results

    def _per_payload(self, replies: Sequence[Any], expected: int) -> list[Attempt]:
        if len(replies) != expected:
            error = FanoutError(
                f"{type(self.target).__name__}.call_batch returned {len(replies)} replies "
                f"for {expected} payloads"
            )
            return [(FAILED, None, error)] * expected
        return [
            (classify(r), None, r) if isinstance(r, BaseException) else (SUCCEEDED, r, None)
            for r in replies
        ]

    def may_retry(self, attempt: int, error: BaseException, throttled: int) -> bool:
        """Whether the policy allows another attempt after ``error`` on attempt ``attempt``.

        ``throttled``: how many of the item's attempts so far were throttled, this one included.
        """
        if self.gate.halted:
            return False
        if isinstance(error, TimeoutError) and self.target.ambiguous_timeouts:
            return False
        return self.retry.allows(attempt, throttled, error)

    async def wait_to_retry(self, attempt: int, errors: Sequence[BaseException]) -> bool:
        """Back off before retrying after ``errors``; ``False``: do not retry after all."""
        if self.gate.past_deadline():
            return False
        delay = max(self.retry.backoff(attempt, error) for error in errors)
        if not await self._wait(delay):
            return False
        self.retries += len(errors)
        return True

    def refused_by_deadline(self) -> bool:
        """After :meth:`wait_to_retry` said no: whether the deadline said it (not the budget).

        A retry is refused when it would start past the deadline, once the deadline has passed,
        or once the run stopped; only the last can have another reason.
        """
        return not self.gate.halted or self.gate.stopped is StopReason.DEADLINE

    async def wait_for_rate(self) -> bool:
        """Hold a start back to keep to the rate; ``False``: it would pass the deadline."""
        return not self.interval or await self._wait(0.0)

    async def _wait(self, delay: float) -> bool:
        start = max(clock() + delay, self.next_start)
        if self.interval:
            self.next_start = start + self.interval
        deadline = self.gate.deadline
        if deadline is not None and start >= deadline:
            return False
        if start > clock():
            await asyncio.sleep(start - clock())
        return not self.gate.halted


def is_throttle(error: BaseException | None) -> int:
    """1 if ``error`` is the far end saying "later" (:class:`Throttled`), else 0: a count."""
    return 1 if isinstance(error, Throttled) else 0


def classify(exc: BaseException) -> int:
    """The status code an attempt's exception means; re-raise our own cancellation."""
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise exc
        return CANCELLED
    if isinstance(exc, TimeoutError):
        return TIMED_OUT
    if isinstance(exc, Exception):
        return FAILED
    raise exc  # KeyboardInterrupt, SystemExit: not ours to record
