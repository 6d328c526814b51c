"""One timer for every attempt of a run, instead of one ``asyncio.timeout`` per attempt.

``asyncio.timeout`` arms a timer handle and a context manager per call: about 6 us per attempt,
more than the whole scheduling of a trivial job. Here each worker owns a :class:`Slot` holding
the time its current attempt must end (``inf`` between attempts); arming is one attribute write.
A single callback scans the slots every ``resolution`` seconds and cancels the worker whose
attempt expired, marking the slot so the attempt can tell that cancellation apart from a real
one and undo it (``Task.uncancel``), exactly as ``asyncio.timeout`` does.

Precision: an attempt timeout fires between ``timeout`` and ``timeout + resolution`` seconds
after the attempt started (10 ms, or half the timeout when that is shorter), plus however late
the event loop runs. The deadline stays exact: one timer handle at the deadline expires every
attempt still running.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from ._options import clock

INF = math.inf
RESOLUTION = 0.01


class Slot:
    """What the timer knows of one worker: its task, and when its current attempt must end."""

    __slots__ = ("expired", "expires", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.expires = INF
        self.expired = False


class AttemptTimer:
    """Expires attempts for a whole run: a coarse scan for timeouts, an exact deadline."""

    def __init__(self, timeout: float | None, deadline: float | None) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.resolution = min(RESOLUTION, timeout / 2) if timeout else INF
        self.slots: list[Slot] = []
        self._scan_handle: asyncio.TimerHandle | None = None
        self._deadline_handle: asyncio.TimerHandle | None = None
        #: Called at the deadline, before the attempts in flight are expired.
        self.on_deadline: Callable[[], None] = lambda: None

    @property
    def active(self) -> bool:
        """Whether attempts have any limit at all."""
        return self.timeout is not None or self.deadline is not None

    def slot(self) -> Slot:
        """A slot for the worker task calling this."""
        task = asyncio.current_task()
        assert task is not None, "a slot belongs to a worker task"
        slot = Slot(task)
        self.slots.append(slot)
        return slot

    def limits(self) -> tuple[float, float]:
        """The attempt timeout and the deadline, ``inf`` for none (for arming inline)."""
        timeout = INF if self.timeout is None else self.timeout
        return timeout, INF if self.deadline is None else self.deadline

    def bound(self, started: float) -> float:
        """When an attempt starting at ``started`` must end (``inf``: never)."""
        when = INF if self.timeout is None else started + self.timeout
        return when if self.deadline is None else min(when, self.deadline)

    def start(self) -> None:
        """Start expiring attempts (call from the run's task, before the workers)."""
        loop = asyncio.get_running_loop()
        if self.timeout is not None:
            self._scan_handle = loop.call_later(self.resolution, self._scan)
        if self.deadline is not None:
            self._deadline_handle = loop.call_at(self.deadline, self._expire_all)

    def stop(self) -> None:
        """Stop: no attempt is expired after this."""
        for handle in (self._scan_handle, self._deadline_handle):
            if handle is not None:
                handle.cancel()
        self._scan_handle = self._deadline_handle = None

    def _scan(self) -> None:
        now = clock()
        for slot in self.slots:
            if slot.expires <= now:
                _expire(slot)
        self._scan_handle = asyncio.get_running_loop().call_at(now + self.resolution, self._scan)

    def _expire_all(self) -> None:
        self.on_deadline()
        for slot in self.slots:
            if slot.expires < INF:
                _expire(slot)


def _expire(slot: Slot) -> None:
    slot.expires = INF
    slot.expired = True
    slot.task.cancel()


def attempt_failed(slot: Slot, error: BaseException) -> BaseException:
    """What an attempt that raised ``error`` means, given its slot; disarm the slot.

    If the timer expired the attempt, its cancellation is undone and a ``CancelledError`` becomes
    a ``TimeoutError``; a cancellation from anywhere else (the caller, the task group) stays.
    """
    slot.expires = INF
    if not slot.expired:
        return error
    slot.expired = False
    if slot.task.uncancel() > 0:
        return error  # a real cancellation came too: it wins
    # Ours alone: a timeout, whatever the target turned the cancellation into on its way out.
    timeout = TimeoutError("the attempt ran past its timeout or the deadline")
    timeout.__cause__ = error
    return timeout


def attempt_succeeded(slot: Slot) -> None:
    """Disarm the slot of an attempt that returned; undo an expiry the target swallowed."""
    slot.expires = INF
    if slot.expired:
        slot.expired = False
        slot.task.uncancel()
