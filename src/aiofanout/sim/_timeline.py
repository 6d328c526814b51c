"""What a simulation did over time, per second of virtual time: what the planner plots.

Flat lists indexed by the second, grown as time goes on, so memory follows the simulated
duration, not the number of calls.
"""

from __future__ import annotations

__all__ = ["Timeline"]


class Timeline:
    """Per second since ``origin``: the most environments busy, calls finished, 429s answered.

    ``origin`` is a loop time: the simulation's start, or (``None``) its first request's.

    Example::

        peak = max(aws.timeline.busy)   # the peak concurrency over the run
    """

    __slots__ = ("_current", "busy", "completed", "origin", "throttled")

    def __init__(self, origin: float | None = None) -> None:
        self.origin = origin
        self.busy: list[int] = []
        self.completed: list[int] = []
        self.throttled: list[int] = []
        self._current = 0

    def _grow(self, second: int) -> None:
        missing = second + 1 - len(self.busy)
        if missing > 0:
            # An idle second keeps the concurrency it had (calls running through it).
            self.busy.extend([self._current] * missing)
            self.completed.extend([0] * missing)
            self.throttled.extend([0] * missing)

    def saw_busy(self, now: float, busy: int) -> None:
        """``busy`` environments were busy at ``now``."""
        second = int(now - self.origin) if self.origin is not None else self._start(now)
        if second >= len(self.busy):
            self._grow(second)
            self.busy[second] = max(busy, self._current)
        elif busy > self.busy[second]:
            self.busy[second] = busy
        self._current = busy

    def saw_completed(self, now: float) -> None:
        """A call finished at ``now``."""
        second = int(now - self.origin) if self.origin is not None else self._start(now)
        if second >= len(self.completed):
            self._grow(second)
        self.completed[second] += 1

    def saw_throttle(self, now: float) -> None:
        """A call was answered 429 at ``now``."""
        second = int(now - self.origin) if self.origin is not None else self._start(now)
        if second >= len(self.throttled):
            self._grow(second)
        self.throttled[second] += 1

    def _start(self, now: float) -> int:
        self.origin = now
        return 0

    @property
    def seconds(self) -> int:
        """How many seconds the timeline covers."""
        return len(self.busy)
