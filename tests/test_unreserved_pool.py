"""The account's unreserved pool in virtual time: patience, FIFO hand-over, no slot lost.

The end-to-end proof (real environments, 429s through aioboto3 and ``LambdaTarget``) is
``test_account_concurrency.py``; this is the counter on its own, on a ``looptime`` loop (a
white-box test: each imports the internal pool inside it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import looptime
import pytest


def in_virtual_time(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        runner.run(main)


def test_a_patient_take_waits_its_patience_then_is_throttled_for_the_account() -> None:
    async def main() -> None:
        from aiofanout.local._sandbox import ACCOUNT_LIMIT, Throttle, UnreservedPool

        loop, pool = asyncio.get_running_loop(), UnreservedPool(limit=1)
        await pool.take(patience=0.0)
        with pytest.raises(Throttle, match=ACCOUNT_LIMIT):
            await pool.take(patience=0.0)  # AWS's answer: at once
        started = loop.time()
        with pytest.raises(Throttle, match=ACCOUNT_LIMIT):
            await pool.take(patience=2.0)  # throttle_after: 2 s of waiting, then 429
        assert loop.time() - started == pytest.approx(2.0, abs=0.01)
        assert pool.waiting == 0

    in_virtual_time(main())


def test_slots_are_handed_over_in_order_and_a_cancelled_waiter_passes_its_on() -> None:
    async def main() -> None:
        from aiofanout.local._sandbox import UnreservedPool

        pool, order = UnreservedPool(limit=1), []
        await pool.take(patience=None)

        async def waiting(name: str) -> None:
            await pool.take(patience=None)
            order.append(name)

        first, second = asyncio.create_task(waiting("first")), asyncio.create_task(waiting("2nd"))
        cancelled = asyncio.create_task(waiting("cancelled"))
        await asyncio.sleep(0)
        assert pool.waiting == 3
        pool.give_back()  # handed to the first waiter: still one taken, never two
        await first
        assert (order, pool.busy) == (["first"], 1)
        pool.give_back()
        second.cancel()  # handed a slot, cancelled before it ran: the slot goes on
        await asyncio.gather(second, return_exceptions=True)
        await cancelled
        assert (order, pool.busy) == (["first", "cancelled"], 1)
        pool.give_back()
        assert pool.busy == 0

    in_virtual_time(main())


def test_a_larger_pool_lets_its_waiters_in_and_a_smaller_one_admits_none() -> None:
    async def main() -> None:
        from aiofanout.local._sandbox import Throttle, UnreservedPool

        pool = UnreservedPool(limit=1)
        await pool.take(patience=None)
        waiter = asyncio.create_task(pool.take(patience=None))
        await asyncio.sleep(0)
        pool.resize(2)  # a reservation was deleted
        await waiter
        assert pool.busy == 2
        pool.resize(1)  # a reservation was made: the two running finish, no new one starts
        with pytest.raises(Throttle):
            await pool.take(patience=0.0)
        queued = asyncio.create_task(pool.take(patience=None))
        await asyncio.sleep(0)
        pool.give_back()  # 1 of 1 still taken: the queued one is not let in
        await asyncio.sleep(0)
        assert (pool.busy, pool.waiting, queued.done()) == (1, 1, False)
        pool.give_back()
        await queued
        assert (pool.busy, pool.waiting) == (1, 0)

    in_virtual_time(main())
