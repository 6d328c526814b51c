"""An event loop on a virtual clock: when every task waits, time jumps to the next timer.

The engine reads time only from the running loop (``aiofanout._options.clock``), so on this loop
a fan-out of an hour of simulated Lambda time runs as fast as the CPU goes through its calls.

Why not ``looptime``: it is a pytest plugin first (its loop is patched per test, and it is a
test dependency of this project); the planner needs a loop of its own at run time, and the whole
of it is a selector that does not wait. Real I/O still works: ready file descriptors are served
first, and with no timer pending the selector blocks for real (a thread's
``call_soon_threadsafe`` wakes it).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualClockLoop", "run_in_virtual_time"]

T = TypeVar("T")


class _SkippingSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting ``timeout`` seconds, moves the loop's clock on."""

    loop: VirtualClockLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:  # no timer at all: only real I/O (or another thread) can wake us
            return super().select(None)
        self.loop.advance(timeout)
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual, starting at 0 and jumping to each timer.

    Example::

        loop = VirtualClockLoop()
        loop.run_until_complete(asyncio.sleep(3600))   # returns at once
        assert loop.time() == 3600
        loop.close()
    """

    def __init__(self) -> None:
        selector = _SkippingSelector()
        selector.loop = self
        super().__init__(selector)
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on (what a real loop would have waited)."""
        self._now += seconds


def run_in_virtual_time(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a new :class:`VirtualClockLoop`, then close the loop.

    Example::

        elapsed = run_in_virtual_time(simulate())   # hours of virtual time, seconds of CPU
    """
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main)
