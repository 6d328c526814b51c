"""The account's unreserved concurrency: one counter shared by every function that reserves none.

As on Lambda ("Lambda concurrency", developer guide): functions without reserved concurrency
share what the account's concurrency leaves after every reservation. An invocation of such a
function holds one slot from before it takes an environment until it ends; with none free a
synchronous invoke is throttled (429, ``Reason: ConcurrentInvocationLimitExceeded``) after its
patience, while queued events and SQS batches wait for a slot, as AWS returns them to their
queue and retries them. Slots are handed over in order (FIFO). What counts is invocations in
flight, not processes: an idle warm environment holds no slot, as on AWS.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._invocation import ACCOUNT_LIMIT, Throttle


class UnreservedPool:
    """Slots of the account's unreserved concurrency, at most ``limit`` taken at once.

    Example::

        pool = UnreservedPool(limit=2)
        await pool.take(patience=0.0)  # or Throttle(ACCOUNT_LIMIT) when both are taken
        pool.give_back()
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def waiting(self) -> int:
        """How many invocations wait for a slot (queued events, SQS batches, patient invokes)."""
        return sum(not waiter.done() for waiter in self._waiters)

    async def take(self, *, patience: float | None) -> None:
        """Take a slot, now or within ``patience`` s (``None``: no limit), or :class:`Throttle`."""
        if self.busy < self.limit:  # the hot path: a counter, no scan
            self.busy += 1
            return
        clock = asyncio.get_running_loop().time  # the loop's: patience in its (virtual) time
        give_up = None if patience is None else clock() + patience
        while True:
            left = None if give_up is None else give_up - clock()
            if left is not None and left <= 0:
                raise Throttle(ACCOUNT_LIMIT)
            if await self._wait(left):
                return  # handed over by give_back(): already counted
            if self.busy < self.limit:  # the limit was raised
                self.busy += 1
                return

    async def _wait(self, timeout: float | None) -> bool:
        """Queue for a slot: ``True`` if one was handed over, ``False`` to look again."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            # Handed a slot just as the timeout fired: keep it rather than lose it.
            return waiter.done() and not waiter.cancelled() and waiter.result()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.give_back()  # handed a slot, then cancelled: pass it on, never leak it
            raise

    def give_back(self) -> None:
        """An invocation that held a slot ended: hand it to the next waiter, or free it."""
        if self.busy <= self.limit:  # above a lowered limit a slot is not handed on
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(True)
                    return
        self.busy -= 1

    def resize(self, limit: int) -> None:
        """The reservations changed: ``limit`` slots from now on; waiters look again."""
        self.limit = limit
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(False)
