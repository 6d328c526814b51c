"""Sleeping until a virtual time, shared by every call that ends then.

A million simulated calls each sleeping their duration would each push a timer onto the loop's
heap; with a fixed duration and a cap of 1,000, about a thousand calls end at every instant.
Here the calls that end at the same microsecond share one timer and one future: the heap holds
one entry per instant, not per call.
"""

from __future__ import annotations

import asyncio

__all__ = ["Wakeups"]


class Wakeups:
    """One future per wake-up instant (rounded to the microsecond) of one loop."""

    __slots__ = ("_at", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._at: dict[float, asyncio.Future[None]] = {}

    def until(self, when: float) -> asyncio.Future[None]:
        """A future done at loop time ``when`` (await it)."""
        key = round(when, 6)
        future = self._at.get(key)
        if future is None:
            future = self._at[key] = self.loop.create_future()
            self.loop.call_at(key, self._wake, key)
        return future

    def _wake(self, key: float) -> None:
        future = self._at.pop(key)
        if not future.done():
            future.set_result(None)
