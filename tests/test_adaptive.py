"""Concurrency that follows throttling: the controller alone, then through the engine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from aiofanout import (
    AdaptiveLimit,
    Progress,
    Retry,
    Status,
    StopReason,
    Throttled,
    UsageError,
    dispatch_many,
    stream,
)
from aiofanout._adaptive import MAX_PATIENCE, Limiter, Share
from aiofanout._input import Gate
from aiofanout.errors import ServerError
from aiofanout.targets import Batching, Target
from aiofanout.testing import eventually

PATIENT = Retry(attempts=100, base=0.001, cap=0.004)  # every item ends up succeeding


def busy() -> Throttled:
    return Throttled("Rate Exceeded.", code="TooManyRequestsException")


# -- the controller alone ---------------------------------------------------------------------


class Controller:
    """A limiter with one fan-out attached, and helpers to play attempts through it."""

    def __init__(self, cap: int) -> None:
        self.limiter = Limiter()
        self.share = Share(self.limiter, cap).__enter__()
        self.gate = Gate(None)

    async def take(self, n: int) -> list[int]:
        """Take ``n`` permits; return what each met."""
        met = [await self.limiter.acquire(self.gate) for _ in range(n)]
        assert None not in met
        return [m for m in met if m is not None]

    async def succeed(self, n: int) -> None:
        """``n`` attempts, one after another, that succeed."""
        for _ in range(n):
            (met,) = await self.take(1)
            self.limiter.release(met, None, self.share)

    async def throttle_at(self, level: int, error: BaseException | None = None) -> None:
        """Throttle an attempt sent with ``level - 1`` others in flight."""
        permits = await self.take(level)
        for _met in permits[:-1]:
            self.limiter.hand_back()
        self.limiter.release(permits[-1], error or busy(), self.share)


async def test_a_throttle_lowers_the_limit_to_the_calls_in_flight_it_met() -> None:
    c = Controller(cap=64)
    assert c.limiter.limit == 64
    permits = await c.take(20)
    assert permits == list(range(20))
    for _ in range(9):
        c.limiter.hand_back()  # nine calls done: eleven in flight
    c.limiter.release(permits[10], busy(), c.share)  # sent with 10 others in flight
    assert c.limiter.limit == 10
    # Another refused call: one slot less (each refused call held a slot the far end lacks).
    c.limiter.release(permits[15], busy(), c.share)
    assert c.limiter.limit == 9
    # Errors that are not throttles leave the limit alone; an HTTP 503 is a throttle.
    c.limiter.release(permits[16], RuntimeError("bug"), c.share)
    c.limiter.release(permits[17], TimeoutError(), c.share)
    assert c.limiter.limit == 9
    for _ in range(3):
        c.limiter.hand_back()
    c.limiter.release(permits[5], ServerError("503 Service Unavailable", code="503"), c.share)
    assert c.limiter.limit == 5
    assert c.share.report() == AdaptiveLimit(current=5, min=5, max=64, throttles=3)


async def test_a_burst_that_arrives_out_of_order_settles_on_what_was_admitted() -> None:
    # 64 calls sent at once; the far end admits the 8 that happen to arrive first (here calls
    # sent 3rd, 9th, ...), and refuses the rest, whose answers come back in any order. Taken
    # alone, the count a refused call met when it was sent (the 1st met 0) would drop the
    # limit to 1; the calls still in flight when each refusal comes back bring it to 8.
    c = Controller(cap=64)
    permits = await c.take(64)
    admitted = {2, 8, 17, 23, 31, 40, 52, 60}
    refused = [m for m in permits if m not in admitted]
    for met in reversed(refused):  # the first sent comes back last
        c.limiter.release(met, busy(), c.share)
    assert c.limiter.limit == 8
    assert c.limiter.in_flight == 8


async def test_successes_raise_the_limit_by_one_per_window_and_faster_once_capacity_grew() -> None:
    c = Controller(cap=64)
    await c.throttle_at(21)  # the ceiling is 21: the limit drops to 20
    assert c.limiter.limit == 20
    await c.succeed(19)
    assert c.limiter.limit == 20
    await c.succeed(1)  # one window: 20 successes
    assert c.limiter.limit == 21
    await c.succeed(21)  # a window at the level that was throttled held: the capacity grew
    assert c.limiter.limit == 22
    await c.succeed(22)  # so each window adds twice the step of the one before
    assert c.limiter.limit == 24
    await c.succeed(24)
    assert c.limiter.limit == 28
    await c.succeed(28)  # at most a quarter of the limit
    assert c.limiter.limit == 34
    await c.throttle_at(34)  # a throttle: back to one per window
    assert c.limiter.limit == 33
    await c.succeed(33)
    assert c.limiter.limit == 34


async def test_a_probe_throttled_again_waits_longer_each_time() -> None:
    c = Controller(cap=64)
    await c.throttle_at(9)
    assert c.limiter.limit == 8
    for patience in (2, 4, 8, MAX_PATIENCE):
        await c.succeed(8)  # the step back up to the ceiling takes patience windows
        assert c.limiter.limit == 9
        await c.throttle_at(9)  # the probe fails again
        assert c.limiter.limit == 8
        assert c.limiter.patience == patience
        await c.succeed(8 * patience - 1)
        assert c.limiter.limit == 8


async def test_the_limit_stays_between_1_and_the_cap() -> None:
    c = Controller(cap=4)
    await c.succeed(100)
    assert c.limiter.limit == 4
    await c.throttle_at(1)  # throttled with nothing else in flight
    assert c.limiter.limit == 1
    await c.throttle_at(1)
    assert c.limiter.limit == 1
    assert c.share.report() == AdaptiveLimit(current=1, min=1, max=4, throttles=2)


async def test_the_cap_is_the_sum_of_the_fan_outs_attached() -> None:
    limiter = Limiter()
    with Share(limiter, 10):
        assert limiter.limit == 10
        with Share(limiter, 30):
            assert limiter.limit == 40  # never throttled: the limit follows the cap
        assert limiter.limit == 10
    with Share(limiter, 30) as share:
        c_gate = Gate(None)
        met = await limiter.acquire(c_gate)
        assert met == 0
        limiter.release(met, busy(), share)
        assert limiter.limit == 1
    with Share(limiter, 30):
        assert limiter.limit == 1  # what was learned stays with the target's limiter


async def test_retry_after_holds_new_permits_and_increases() -> None:
    c = Controller(cap=8)
    await c.throttle_at(5, Throttled("slow down", retry_after=0.2))
    assert c.limiter.limit == 4
    loop = asyncio.get_running_loop()
    started = loop.time()
    (met,) = await c.take(1)
    assert loop.time() - started >= 0.19
    assert met == 0
    c.limiter.release(met, None, c.share)
    await c.succeed(4)
    assert c.limiter.limit == 5  # increases resume after the hold


async def test_a_waiter_gets_the_permit_released_and_a_cancelled_one_leaks_none() -> None:
    c = Controller(cap=2)
    await c.throttle_at(2)
    assert c.limiter.limit == 1
    (_held,) = await c.take(1)
    first = asyncio.create_task(c.limiter.acquire(c.gate))
    second = asyncio.create_task(c.limiter.acquire(c.gate))
    await eventually(lambda: len(c.limiter.waiters) == 2, timeout=20, interval=0.001)
    second.cancel()
    c.limiter.hand_back()
    assert await first == 0
    with pytest.raises(asyncio.CancelledError):
        await second
    assert c.limiter.in_flight == 1
    assert not c.limiter.waiters


async def test_waiting_for_a_permit_ends_at_the_deadline() -> None:
    c = Controller(cap=2)
    await c.throttle_at(2)
    await c.take(1)
    gate = Gate(asyncio.get_running_loop().time() + 0.05)
    assert await c.limiter.acquire(gate) is None
    assert gate.stopped is StopReason.DEADLINE
    assert c.limiter.in_flight == 1


# -- through the engine ---------------------------------------------------------------------------


class Busy(Target):
    """A service with ``slots`` slots: a call arriving while all are taken is throttled at once."""

    def __init__(self, slots: int, service: float = 0.004) -> None:
        self.slots = slots
        self.service = service
        self.admitted = 0  # calls holding a slot
        self.attempting = 0  # calls in flight, throttled ones included
        self.changes: list[tuple[float, int]] = []  # (when, slots taken) at every change
        self.concurrency: list[int] = []  # calls in flight at each arrival
        self.throttles = 0

    def _slots_taken(self, delta: int) -> None:
        self.admitted += delta
        self.changes.append((asyncio.get_running_loop().time(), self.admitted))

    def occupancy(self, skip: float = 0.25) -> float:
        """Slots taken on average over time, leaving out the first ``skip`` of the changes."""
        changes = self.changes[int(len(self.changes) * skip) :]
        busy = sum(n * (t1 - t0) for (t0, n), (t1, _) in itertools.pairwise(changes))
        return busy / (changes[-1][0] - changes[0][0])

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        self.attempting += 1
        self.concurrency.append(self.attempting)
        try:
            if self.admitted >= self.slots:
                self.throttles += 1
                await asyncio.sleep(0)  # the answer comes back at once
                raise busy()
            self._slots_taken(+1)
            try:
                await asyncio.sleep(self.service)
            finally:
                self._slots_taken(-1)
            return payload
        finally:
            self.attempting -= 1


async def test_adaptive_converges_on_the_slots_and_stops_throttling() -> None:
    target = Busy(slots=8)
    result = await dispatch_many(target, range(600), concurrency=64, retry=PATIENT, adaptive=True)
    assert result.ok
    later = target.concurrency[len(target.concurrency) // 4 :]
    assert max(later) <= 9  # the slots, and one probe above them
    assert target.occupancy() >= 7  # the slots stay used
    assert target.throttles <= 64 + 30  # one burst at the start, then a few probes
    limit = result.limit
    assert limit is not None
    assert limit.throttles == target.throttles
    assert limit.final in (8, 9)
    assert 1 <= limit.min <= 8
    assert limit.max == 64

    fixed = Busy(slots=8)
    without = await dispatch_many(fixed, range(600), concurrency=64, retry=PATIENT)
    assert without.limit is None
    assert max(fixed.concurrency[len(fixed.concurrency) // 4 :]) > 32
    print(f"occupancy: adaptive {target.occupancy():.2f}, fixed {fixed.occupancy():.2f}")
    assert fixed.throttles > 5 * target.throttles


async def test_fan_outs_side_by_side_through_one_target_share_one_limit() -> None:
    target = Busy(slots=8, service=0.01)
    seen: list[Progress] = []
    first = asyncio.create_task(
        dispatch_many(
            target,
            range(400),
            concurrency=32,
            retry=PATIENT,
            adaptive=True,
            on_progress=seen.append,
        )
    )
    await eventually(
        lambda: bool(seen) and seen[-1].limit is not None and seen[-1].limit.current <= 9,
        timeout=20,
        interval=0.001,
    )
    arrivals = len(target.concurrency)
    second = await dispatch_many(target, range(100), concurrency=32, retry=PATIENT, adaptive=True)
    result = await first
    assert result.ok
    assert second.ok
    # The second fan-out started under the limit the first one learned: no burst of 32.
    assert second.limit is not None
    assert second.limit.throttles <= 5
    assert max(target.concurrency[arrivals:]) <= 9
    assert second.limit.max <= 9


async def test_a_later_fan_out_starts_from_what_the_target_learned() -> None:
    target = Busy(slots=4)
    first = await dispatch_many(target, range(200), concurrency=32, retry=PATIENT, adaptive=True)
    assert first.limit is not None
    assert first.limit.throttles >= 28
    again = await dispatch_many(target, range(200), concurrency=32, retry=PATIENT, adaptive=True)
    assert again.ok
    assert again.limit is not None
    assert again.limit.throttles <= 10
    assert again.limit.max <= 5


async def test_plain_functions_get_a_limit_per_run() -> None:
    target = Busy(slots=4)

    async def work(item: int) -> int:
        return int(await target.call(item, timeout=None))

    for _ in range(2):
        result = await dispatch_many(work, range(100), concurrency=32, retry=PATIENT, adaptive=True)
        assert result.ok
        assert result.limit is not None
        assert result.limit.throttles >= 20


async def test_progress_and_stream_report_the_limit() -> None:
    target = Busy(slots=4)
    seen: list[Progress] = []
    async with stream(
        target, range(100), concurrency=16, retry=PATIENT, adaptive=True, on_progress=seen.append
    ) as outcomes:
        assert outcomes.limit is None or outcomes.limit.max == 16  # None until the run starts
        statuses = [outcome.status async for outcome in outcomes]
    assert statuses.count(Status.SUCCEEDED) == 100
    assert outcomes.limit is not None
    assert outcomes.limit.current <= 5
    assert seen[-1].limit == outcomes.limit
    plain: list[Progress] = []
    await dispatch_many(Busy(slots=4), range(10), concurrency=2, on_progress=plain.append)
    assert plain[-1].limit is None


class BusyBatches(Busy):
    """A batching service with ``slots`` slots: a throttled batch fails as a whole."""

    batching = Batching(max_items=5)

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        await self.call(None, timeout=timeout)
        return list(payloads)


async def test_batches_take_one_permit_each() -> None:
    target = BusyBatches(slots=3)
    result = await dispatch_many(target, range(500), concurrency=24, retry=PATIENT, adaptive=True)
    assert result.ok
    assert max(target.concurrency[len(target.concurrency) // 4 :]) <= 4
    assert result.limit is not None
    assert result.limit.final in (3, 4)


async def test_items_waiting_for_a_permit_at_the_deadline_are_skipped() -> None:
    target = Busy(slots=1, service=0.05)

    def endless() -> Any:
        n = 0
        while True:
            yield n
            n += 1

    result = await dispatch_many(
        target, endless(), concurrency=4, retry=PATIENT, adaptive=True, deadline=0.5
    )
    assert result.stopped is StopReason.DEADLINE
    never_sent = [o for o in result if o.status is Status.SKIPPED]
    assert never_sent
    assert all(o.attempts == 0 for o in never_sent)
    assert result.counts[Status.SUCCEEDED] >= 3
    assert sum(result.counts.values()) == len(result)


async def test_adaptive_must_be_a_bool() -> None:
    with pytest.raises(UsageError, match="adaptive"):
        await dispatch_many(Busy(1), range(3), concurrency=2, adaptive="yes")  # type: ignore[call-overload]
