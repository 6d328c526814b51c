"""The engine runs on the loop's clock: rate, backoff, timeouts and deadlines in virtual seconds.

On a ``looptime`` loop the time jumps ahead whenever every task waits, so these tests take no
real time, and each asserts the exact virtual time the engine took. With the engine on
``time.monotonic`` they fail: a 10 s job finishes in no real time, before any timeout or
deadline the engine measures in real seconds. (The loop is made here, not by looptime's pytest
plugin, which makes an event loop for every test and leaves it unclosed.)
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import looptime
import pytest

from aiofanout import Retry, Status, dispatch_many

T = TypeVar("T")


def in_virtual_time(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh event loop whose clock is virtual, and close the loop."""
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        return runner.run(main())


def test_a_timeout_and_a_deadline_act_in_virtual_seconds() -> None:
    in_virtual_time(_test_a_timeout_and_a_deadline_act_in_virtual_seconds)


async def _test_a_timeout_and_a_deadline_act_in_virtual_seconds() -> None:
    loop = asyncio.get_running_loop()

    async def ten_seconds(x: int) -> int:
        await asyncio.sleep(10)
        return x

    started = loop.time()
    result = await dispatch_many(
        ten_seconds, range(4), concurrency=2, timeout=3, deadline=5, retry=1
    )
    # Two attempts time out at 3 s; the next two start then, and the deadline cuts them at 5 s.
    assert loop.time() - started == pytest.approx(5.0, abs=0.05)
    assert result.counts[Status.TIMED_OUT] == 4
    assert [round(o.elapsed, 1) for o in result] == [3.0, 3.0, 2.0, 2.0]


def test_a_rate_spaces_the_starts_in_virtual_seconds_until_the_deadline() -> None:
    in_virtual_time(_test_a_rate_spaces_the_starts_in_virtual_seconds_until_the_deadline)


async def _test_a_rate_spaces_the_starts_in_virtual_seconds_until_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def note(x: int) -> int:
        starts.append(loop.time())
        return x

    result = await dispatch_many(note, range(10), concurrency=5, rate=2, deadline=2.2)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(starts)]
    assert gaps == [0.5, 0.5, 0.5, 0.5]  # starts at 0, 0.5, 1, 1.5 and 2 s; then the deadline
    assert result.counts[Status.SUCCEEDED] == 5
    assert result.counts[Status.SKIPPED] == 5


class Later(Exception):
    """A retryable error whose far end asks for a retry in 2 s."""

    retryable = True
    retry_after = 2.0


def test_backoff_waits_in_virtual_seconds() -> None:
    in_virtual_time(_test_backoff_waits_in_virtual_seconds)


async def _test_backoff_waits_in_virtual_seconds() -> None:
    loop = asyncio.get_running_loop()
    tries: Counter[int] = Counter()

    async def flaky(x: int) -> int:
        tries[x] += 1
        if tries[x] < 3:
            raise Later
        return x

    started = loop.time()
    result = await dispatch_many(flaky, [1], concurrency=1, retry=Retry(attempts=3, cap=1.0))
    assert result.values() == [1]
    assert loop.time() - started == pytest.approx(4.0, abs=0.05)  # two retries, 2 s each
