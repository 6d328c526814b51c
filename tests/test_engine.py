"""The engine's promises: one state per item, order, the cap, timeouts, deadline, budget."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiofanout
from aiofanout import (
    Deadline,
    FanoutFailed,
    Progress,
    Retry,
    Status,
    StopReason,
    Throttled,
    UsageError,
    _run,
    dispatch_many,
    stream,
)
from aiofanout.targets import Batching, Target


class Recorder:
    """A test target that records what the engine does to it."""

    def __init__(
        self, plan: Mapping[int, Sequence[str]] | None = None, duration: float = 0.0
    ) -> None:
        # plan[item] = what each attempt does: "ok", "fail", "retryable", "hang", "sleep"
        self.plan = plan or {}
        self.duration = duration
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: dict[int, int] = {}
        self.throttled: dict[int, int] = {}
        self.log: list[tuple[str, int]] = []
        self.start_times: list[float] = []

    async def __call__(self, item: int) -> int:
        n = self.attempts.get(item, 0)
        self.attempts[item] = n + 1
        steps = self.plan.get(item, ("ok",))
        step = steps[min(n, len(steps) - 1)]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.log.append(("start", item))
        self.start_times.append(time.monotonic())
        try:
            await asyncio.sleep(self.duration)
            if step == "hang":
                await asyncio.sleep(3600)
            if step == "fail":
                self.log.append(("fail", item))
                raise ValueError(f"item {item} failed")
            if step == "retryable":
                self.log.append(("fail", item))
                self.throttled[item] = self.throttled.get(item, 0) + 1
                raise Throttled(f"item {item} throttled")
            return item * 10
        finally:
            self.in_flight -= 1


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


step = st.sampled_from(["ok", "ok", "ok", "fail", "retryable", "hang"])
plans = st.lists(st.lists(step, min_size=1, max_size=4), min_size=0, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plans,
    concurrency=st.integers(1, 12),
    attempts=st.integers(1, 3),
    failure_budget=st.one_of(st.none(), st.integers(0, 5)),
    deadline=st.one_of(st.none(), st.floats(0.02, 0.2)),
)
@pytest.mark.slow
def test_every_item_ends_once_in_order_under_the_cap(
    plan: list[list[str]],
    concurrency: int,
    attempts: int,
    failure_budget: int | None,
    deadline: float | None,
) -> None:
    target = Recorder(dict(enumerate(plan)), duration=0.001)
    retry = Retry(attempts=attempts, base=0.001, cap=0.005)

    async def main() -> aiofanout.FanoutResult[Any]:
        return await dispatch_many(
            target,
            range(len(plan)),
            concurrency=concurrency,
            timeout=0.05,
            retry=retry,
            failure_budget=failure_budget,
            deadline=deadline,
        )

    started = time.monotonic()
    result = asyncio.run(main())
    finished = time.monotonic()

    assert len(result) == len(plan)
    assert sum(result.counts.values()) == len(plan)
    assert [o.index for o in result] == list(range(len(plan)))
    assert [o.item for o in result] == list(range(len(plan)))
    assert target.max_in_flight <= concurrency
    assert target.in_flight == 0
    for outcome in result:
        throttled = target.throttled.get(outcome.index, 0)
        free = min(throttled, retry.throttles)  # a throttle spends no attempt, up to a budget
        assert outcome.attempts - free <= attempts
        assert outcome.attempts <= (1 if attempts == 1 else attempts + retry.throttles)
        assert outcome.attempts == target.attempts.get(outcome.index, 0)
        if outcome.status is Status.SUCCEEDED:
            assert outcome.value == outcome.item * 10
            assert outcome.error is None
        elif outcome.status in (Status.FAILED, Status.TIMED_OUT):
            assert outcome.error is not None
            assert outcome.value is None
        else:
            assert outcome.status is Status.SKIPPED
            assert outcome.attempts == 0
    if deadline is not None:
        # Nothing starts after the deadline, and the run ends soon after it.
        assert all(t < started + deadline + 0.01 for t in target.start_times)
        assert finished - started < deadline + 1.0
    if failure_budget is not None and result.budget_exceeded:
        fails = [i for i, (kind, _) in enumerate(target.log) if kind == "fail"]
        failed_items = result.counts[Status.FAILED] + result.counts[Status.TIMED_OUT]
        assert failed_items > failure_budget
        # Once the budget is exceeded nothing new starts. Timeouts count too, and do not log
        # "fail", so only check runs whose failures were all explicit.
        if result.counts[Status.TIMED_OUT] == 0 and attempts == 1:
            breach = fails[failure_budget]
            assert "start" not in {kind for kind, _ in target.log[breach + 1 :]}
    if failure_budget is None and deadline is None:
        assert result.counts[Status.SKIPPED] == 0
        assert result.stopped is None


@settings(max_examples=30, deadline=None)
@given(cancel_after=st.floats(0.0, 0.03), concurrency=st.integers(1, 20))
def test_cancelling_the_caller_leaves_nothing_running(
    cancel_after: float, concurrency: int
) -> None:
    target = Recorder(duration=0.005)

    async def main() -> None:
        # Attempts time out (5 ms work, 3 ms timeout) while the caller is cancelled: the run's
        # timer must not turn the caller's cancellation into a timeout.
        task = asyncio.create_task(
            dispatch_many(target, range(1000), concurrency=concurrency, timeout=0.003)
        )
        await asyncio.sleep(cancel_after)
        started = len(target.start_times)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _other_tasks() == set()
        assert target.in_flight == 0
        # Work stops at the cancel: at most one more start per worker already on its way there.
        # An engine that swallowed its own cancellation would go on through the whole input.
        assert len(target.start_times) <= started + concurrency

    asyncio.run(main())


def _only_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Make every worker loop but ``path`` fail, so a test knows which one ran."""

    async def refuse(self: Any) -> None:
        raise AssertionError("an engine path ran that this test did not expect")

    for name in ("lean_worker", "item_worker", "batch_worker"):
        if name == path:
            continue
        if name == "lean_worker":  # a function of the module; the others are Run's methods
            monkeypatch.setattr(_run, "_lean_worker", refuse)
        else:
            monkeypatch.setattr(_run.Run, name, refuse)


async def test_fast_path_and_general_path_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = {i: ["fail", "ok"] if i % 3 == 0 else ["ok"] for i in range(50)}
    retry = Retry(attempts=2, retry_on=(ValueError,), base=0)
    with monkeypatch.context() as patch:
        _only_path(patch, "lean_worker")
        fast = await dispatch_many(Recorder(plan), range(50), concurrency=7, retry=retry)
    with monkeypatch.context() as patch:
        _only_path(patch, "item_worker")
        # A rate is what the lean path does not take; this one is too high to slow anything.
        slow = await dispatch_many(
            Recorder(plan), range(50), concurrency=7, retry=retry, timeout=5, rate=1e6
        )
    assert [(o.status, o.value, o.attempts) for o in fast] == [
        (o.status, o.value, o.attempts) for o in slow
    ]
    assert fast.ok
    assert fast.retries == 17


async def test_an_endless_async_generator_with_a_deadline_finishes() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal pulled
        while True:
            pulled += 1
            yield pulled

    async def work(item: int) -> int:
        await asyncio.sleep(0.002)
        return item

    result = await dispatch_many(work, endless(), concurrency=8, deadline=0.2)
    assert result.stopped is StopReason.DEADLINE
    assert len(result) > 8
    # Not drained past the point where work stopped: every pulled item has an outcome.
    assert len(result) == pulled
    assert sum(result.counts.values()) == len(result)
    assert _other_tasks() == set()


async def test_a_slow_async_generator_is_cut_off_by_the_deadline() -> None:
    async def trickle() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(3600)
        yield 2

    async def work(item: int) -> int:
        return item

    result = await dispatch_many(work, trickle(), concurrency=2, deadline=0.1)
    assert result.stopped is StopReason.DEADLINE
    assert [o.status for o in result] == [Status.SUCCEEDED]


async def test_a_sync_callable_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: set[int] = set()
    lock = threading.Lock()

    def blocking(item: int) -> int:
        with lock:
            seen.add(threading.get_ident())
        time.sleep(0.01)
        return item + 1

    result = await dispatch_many(blocking, range(20), concurrency=5)
    assert result.values() == list(range(1, 21))
    assert loop_thread not in seen
    assert 1 < len(seen) <= 5


async def test_a_sync_callable_that_returns_a_coroutine_is_refused_with_the_fix() -> None:
    async def job(item: int) -> int:
        return item

    result = await dispatch_many(lambda i: job(i), [1], concurrency=1)  # noqa: PLW0108
    error = result[0].error
    assert isinstance(error, UsageError)
    assert "async def" in str(error)


async def test_deadline_times_out_in_flight_and_skips_the_rest_of_a_sized_input() -> None:
    target = Recorder({i: ["hang"] for i in range(100)})
    result = await dispatch_many(target, list(range(100)), concurrency=4, deadline=0.1)
    assert result.stopped is StopReason.DEADLINE
    assert result.counts[Status.TIMED_OUT] == 4
    assert result.counts[Status.SKIPPED] == 96
    assert all(o.attempts == 0 for o in result if o.status is Status.SKIPPED)
    assert target.in_flight == 0


async def test_a_retry_whose_backoff_would_pass_the_deadline_is_not_started() -> None:
    target = Recorder({0: ["retryable"] * 5})
    retry = Retry(attempts=5, base=10, cap=10)
    # Throttled carries no hint; full jitter over 10 s nearly always passes a 0.3 s deadline.
    result = await dispatch_many(
        target, [0], concurrency=1, deadline=Deadline.after(0.3), retry=retry
    )
    assert result[0].status is Status.FAILED
    assert result[0].attempts == target.attempts[0]
    assert result.elapsed < 5


async def test_attempt_timeouts_are_retried_up_to_the_policy() -> None:
    target = Recorder({0: ["hang", "hang", "ok"], 1: ["hang"] * 5})
    result = await dispatch_many(
        target, [0, 1], concurrency=2, timeout=0.02, retry=Retry(3, base=0)
    )
    assert result[0].status is Status.SUCCEEDED
    assert result[0].attempts == 3
    assert result[1].status is Status.TIMED_OUT
    assert result[1].attempts == 3
    assert isinstance(result[1].error, TimeoutError)


async def test_a_target_with_ambiguous_timeouts_is_not_retried_on_timeout() -> None:
    class Ambiguous(Target):
        ambiguous_timeouts = True
        calls = 0

        async def call(self, payload: Any, *, timeout: float | None) -> Any:
            self.calls += 1
            await asyncio.sleep(3600)

    target = Ambiguous()
    result = await dispatch_many(target, [1], concurrency=1, timeout=0.02, retry=Retry(5, base=0))
    assert result[0].status is Status.TIMED_OUT
    assert target.calls == 1


async def test_plain_errors_are_final_unless_named_and_retryable_ones_are_retried() -> None:
    plan: dict[int, Sequence[str]] = {0: ["fail", "ok"], 1: ["retryable", "ok"]}
    default = await dispatch_many(Recorder(plan), [0, 1], concurrency=2, retry=Retry(3, base=0))
    assert [o.status for o in default] == [Status.FAILED, Status.SUCCEEDED]
    assert [o.attempts for o in default] == [1, 2]
    named = await dispatch_many(
        Recorder(plan), [0, 1], concurrency=2, retry=Retry(3, base=0, retry_on=(ValueError,))
    )
    assert named.ok
    none = await dispatch_many(Recorder(plan), [0, 1], concurrency=2, retry=1)
    assert [o.attempts for o in none] == [1, 1]
    assert not none.ok


async def test_a_retry_after_hint_is_honoured() -> None:
    times: list[float] = []

    async def throttled_once(item: int) -> int:
        times.append(time.monotonic())
        if len(times) == 1:
            raise Throttled("slow down", retry_after=0.15)
        return item

    result = await dispatch_many(throttled_once, [7], concurrency=1, retry=Retry(2, base=0, cap=0))
    assert result.ok
    assert times[1] - times[0] >= 0.14


async def test_a_throttle_spends_no_attempt_so_a_throttled_item_finishes_by_default() -> None:
    plan: dict[int, Sequence[str]] = {0: ["retryable"] * 5 + ["ok"]}
    result = await dispatch_many(Recorder(plan), [0], concurrency=1, retry=Retry(base=0, cap=0))
    assert result.ok
    assert result[0].attempts == 6  # 5 throttles and the success; Retry() allows 3 attempts


async def test_throttles_have_a_budget_of_their_own_and_errors_keep_theirs() -> None:
    endless: dict[int, Sequence[str]] = {0: ["retryable"]}
    result = await dispatch_many(Recorder(endless), [0], concurrency=1, retry=Retry(base=0, cap=0))
    assert result[0].status is Status.FAILED
    assert isinstance(result[0].error, Throttled)
    assert result[0].attempts == 3 + Retry().throttles  # ends: it does not throttle forever
    mixed: dict[int, Sequence[str]] = {0: ["retryable", "hang", "retryable", "hang", "hang"]}
    retry = Retry(3, base=0, cap=0)
    result = await dispatch_many(Recorder(mixed), [0], concurrency=1, retry=retry, timeout=0.05)
    assert result[0].status is Status.TIMED_OUT
    assert result[0].attempts == 5  # 3 timed-out attempts, the 2 throttles between them free


@pytest.mark.parametrize(("retry", "attempts"), [(Retry(3, throttles=0, base=0), 3), (1, 1)])
async def test_throttles_zero_or_no_retries_end_a_throttled_item_as_before(
    retry: Retry | int, attempts: int
) -> None:
    plan: dict[int, Sequence[str]] = {0: ["retryable"]}
    result = await dispatch_many(Recorder(plan), [0], concurrency=1, retry=retry)
    assert result[0].status is Status.FAILED
    assert result[0].attempts == attempts


def test_a_negative_throttle_budget_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="throttles"):
        Retry(throttles=-1)


async def test_rate_spaces_starts_evenly() -> None:
    target = Recorder()
    result = await dispatch_many(target, range(12), concurrency=12, rate=50)
    assert result.ok
    starts = sorted(target.start_times)
    # Start i comes no earlier than its slot, i x 20 ms after the first: never a burst. (A late
    # start may sit closer to the next one; being late is allowed, being early is not.)
    for i, started in enumerate(starts):
        assert started - starts[0] >= i * 0.020 - 0.002
    assert starts[-1] - starts[0] >= 0.2


async def test_tolerate_as_a_fraction_of_a_sized_input() -> None:
    plan = {i: ["fail"] for i in range(0, 100, 2)}
    result = await dispatch_many(
        Recorder(plan), list(range(100)), concurrency=1, failure_budget=0.1
    )
    assert result.budget_exceeded
    assert result.counts[Status.FAILED] == 11
    assert result.counts[Status.SKIPPED] == 100 - 22 + 1


async def test_progress_is_reported_and_ends_complete() -> None:
    seen: list[Progress] = []
    result = await dispatch_many(
        Recorder(duration=0.01), range(60), concurrency=3, on_progress=seen.append
    )
    assert result.ok
    assert len(seen) >= 2
    assert seen[-1].done == 60
    assert seen[-1].in_flight == 0
    assert all(p.in_flight <= 3 for p in seen)
    assert seen[0].done < 60
    assert seen[-1].rate > 0


async def test_an_input_that_raises_is_raised_after_in_flight_work_ends() -> None:
    target = Recorder(duration=0.01)

    def items() -> Any:
        yield from range(5)
        raise RuntimeError("bad input")

    with pytest.raises(RuntimeError, match="bad input"):
        await dispatch_many(target, items(), concurrency=3)
    assert target.in_flight == 0
    assert sorted(target.attempts) == [0, 1, 2, 3, 4]


async def test_a_target_raising_cancelled_on_its_own_is_recorded_cancelled() -> None:
    async def job(item: int) -> int:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.cancel()
        return await fut

    result = await dispatch_many(job, [1, 2], concurrency=2)
    assert [o.status for o in result] == [Status.CANCELLED, Status.CANCELLED]


async def test_raise_for_failures_carries_the_failed_outcomes() -> None:
    plan = {1: ["fail"], 3: ["fail"]}
    result = await dispatch_many(Recorder(plan), range(5), concurrency=2, retry=1)
    with pytest.raises(FanoutFailed) as info:
        result.raise_for_failures()
    assert [o.index for o in info.value.outcomes] == [1, 3]
    assert all(isinstance(e, ValueError) for e in info.value.exceptions)
    caught = False
    try:
        result.raise_for_failures()
    except* ValueError as group:
        caught = len(group.exceptions) == 2
    assert caught
    assert len(result.errors()) == 2
    assert result.values() == [0, 20, 40]


async def test_stream_yields_in_completion_order_and_leaving_early_cancels() -> None:
    target = Recorder({0: ["hang"]}, duration=0.001)
    seen = []
    async with stream(target, range(1000), concurrency=4) as outcomes:
        async for outcome in outcomes:
            seen.append(outcome.index)
            if len(seen) == 20:
                break
    assert 0 not in seen  # item 0 hangs, the others overtake it
    assert target.in_flight == 0
    assert _other_tasks() == set()
    # Bounded: the workers did not run far ahead of the consumer.
    assert len(target.attempts) < 20 + 3 * 4


async def test_a_slow_consumer_holds_the_workers_back() -> None:
    target = Recorder()  # answers at once: only the consumer sets the pace
    concurrency, consumed = 4, 0
    async with stream(target, range(100_000), concurrency=concurrency) as outcomes:
        async for _ in outcomes:
            consumed += 1
            # Taken = consumed + buffered (at most 2x the cap, plus one per worker that passed
            # the room check just before it filled) + in flight (at most the cap).
            assert len(target.attempts) <= consumed + 2 * concurrency + 2 * concurrency
            await asyncio.sleep(0.001)  # a slow consumer
            if consumed == 40:
                break
    assert len(target.attempts) < 100


async def test_stream_reports_every_item_once() -> None:
    plan = {i: ["fail"] for i in range(0, 30, 5)}
    async with stream(Recorder(plan), range(30), concurrency=4, retry=1) as outcomes:
        got = [o async for o in outcomes]
    assert sorted(o.index for o in got) == list(range(30))
    assert outcomes.counts[Status.FAILED] == 6
    assert outcomes.counts[Status.SUCCEEDED] == 24


async def test_stream_raises_the_inputs_error() -> None:
    def items() -> Any:
        yield 1
        raise KeyError("input")

    async def consume() -> None:
        async with stream(Recorder(), items(), concurrency=2) as outcomes:
            async for _ in outcomes:
                pass

    with pytest.raises(KeyError):
        await consume()


class Batcher(Target):
    def __init__(self, max_items: int, max_bytes: int | None, fail_first: set[int]) -> None:
        self.batching = Batching(max_items, max_bytes)
        self.batches: list[list[bytes]] = []
        self.fail_first = set(fail_first)

    def prepare(self, item: Any) -> bytes:
        return str(item).encode() * 10

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        self.batches.append(list(payloads))
        replies: list[Any] = []
        for p in payloads:
            key = int(p[: len(p) // 10])
            if key in self.fail_first:
                self.fail_first.discard(key)
                replies.append(Throttled("entry failed"))
            else:
                replies.append(key)
        return replies


async def test_batching_groups_by_count_and_bytes_and_retries_per_item() -> None:
    target = Batcher(max_items=10, max_bytes=150, fail_first={3, 17})
    result = await dispatch_many(target, range(40), concurrency=2, retry=Retry(3, base=0))
    assert result.ok
    assert result.values() == list(range(40))
    assert all(len(b) <= 10 for b in target.batches)
    assert all(sum(map(len, b)) <= 150 for b in target.batches)
    # Items 0..9 weigh 10 bytes (the count binds), 10..39 weigh 20 (the bytes bind: 7 fit).
    sizes = [len(b) for b in target.batches]
    assert sizes[0] == 10
    assert 7 in sizes
    retried = [b for b in target.batches if len(b) == 1 and b[0] in (b"3" * 10, b"17" * 10)]
    assert len(retried) >= 1
    assert result[3].attempts == 2
    assert result[17].attempts == 2
    assert result[4].attempts == 1


async def test_misuse_says_what_to_change() -> None:
    with pytest.raises(UsageError, match="concurrency"):
        await dispatch_many(Recorder(), [1], concurrency=0)
    with pytest.raises(UsageError, match="target"):
        await dispatch_many(42, [1], concurrency=1)  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="retry"):
        await dispatch_many(Recorder(), [1], concurrency=1, retry="3")  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="failure_budget"):
        await dispatch_many(Recorder(), [1], concurrency=1, failure_budget=1.5)
    with pytest.raises(UsageError, match="items"):
        await dispatch_many(Recorder(), 5, concurrency=1)  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="attempts"):
        Retry(attempts=0)


async def test_an_empty_input_is_an_empty_ok_result() -> None:
    result = await dispatch_many(Recorder(), [], concurrency=3)
    assert len(result) == 0
    assert result.ok
    assert result.latency.count == 0


async def test_an_iterator_the_caller_passed_is_left_open_where_work_stopped() -> None:
    target = Recorder({i: ["fail"] for i in range(3)})
    items = iter(range(100))

    def numbers() -> Any:
        yield from items

    source = numbers()
    first = await dispatch_many(target, source, concurrency=1, retry=1, failure_budget=2)
    assert first.budget_exceeded
    assert len(first) == 3
    rest = await dispatch_many(Recorder(), source, concurrency=4)
    assert [o.item for o in rest] == list(range(3, 100))


async def test_the_final_progress_counts_skipped_items() -> None:
    seen: list[Progress] = []
    target = Recorder({0: ["fail"]})
    result = await dispatch_many(
        target, range(100), concurrency=1, retry=1, failure_budget=0, on_progress=seen.append
    )
    assert result.counts[Status.SKIPPED] == 99
    assert seen[-1].taken == 100
    assert seen[-1].counts == result.counts
    assert seen[-1].done == 100


async def test_an_on_progress_error_is_logged_once_and_the_work_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[Progress] = []

    def flaky(progress: Progress) -> None:
        calls.append(progress)
        raise RuntimeError("display broke")

    with caplog.at_level("ERROR", logger="aiofanout"):
        result = await dispatch_many(
            Recorder(duration=0.002), range(200), concurrency=2, on_progress=flaky
        )
    assert result.ok
    assert len(result) == 200
    assert len(calls) == 1  # not called again after it raised
    [record] = [r for r in caplog.records if "on_progress" in r.getMessage()]
    assert record.exc_info is not None
    assert "display broke" in str(record.exc_info[1])


async def test_an_on_progress_error_on_the_final_call_keeps_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def final_breaks(progress: Progress) -> None:
        if progress.in_flight == 0 and progress.done == 30:
            raise RuntimeError("final")

    with caplog.at_level("ERROR", logger="aiofanout"):
        result = await dispatch_many(Recorder(), range(30), concurrency=3, on_progress=final_breaks)
    assert result.ok
    assert result.values() == [i * 10 for i in range(30)]
    assert any("on_progress" in r.getMessage() for r in caplog.records)


async def test_options_are_checked_before_any_work_starts() -> None:
    target = Recorder()

    async def an_async_generator(item: int) -> AsyncIterator[int]:
        yield item

    def a_generator(item: int) -> Any:
        yield item

    async def async_progress(progress: Progress) -> None:
        pass

    bad: list[tuple[str, dict[str, Any]]] = [
        ("timeout", {"timeout": float("nan")}),
        ("timeout", {"timeout": float("inf")}),
        ("timeout", {"timeout": 0}),
        ("deadline", {"deadline": -5}),
        ("deadline", {"deadline": float("nan")}),
        ("threads", {"threads": 0}),
        ("rate", {"rate": float("nan")}),
        ("failure_budget", {"failure_budget": float("nan")}),
        ("on_progress", {"on_progress": async_progress}),
        ("unknown options", {"timout": 5}),
    ]
    for word, options in bad:
        with pytest.raises(UsageError, match=word):
            await dispatch_many(target, range(3), concurrency=2, **options)
    with pytest.raises(UsageError, match="concurrency"):
        await dispatch_many(target, range(3))  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="async generator function"):
        await dispatch_many(an_async_generator, range(3), concurrency=2)
    with pytest.raises(UsageError, match="generator function"):
        await dispatch_many(a_generator, range(3), concurrency=2)
    with pytest.raises(UsageError, match="finite"):
        Deadline(at=float("nan"))
    assert target.attempts == {}  # nothing ran


async def test_a_deadline_already_passed_skips_a_sized_input() -> None:
    target = Recorder()
    result = await dispatch_many(target, range(5), concurrency=2, deadline=Deadline.after(-1))
    assert result.counts[Status.SKIPPED] == 5
    assert result.stopped is StopReason.DEADLINE
    assert target.attempts == {}


async def test_an_attempt_timeout_fires_within_its_precision() -> None:
    # The run's one timer fires an attempt timeout at most 10 ms late (plus loop latency): the
    # bound here is loose so a busy machine does not fail it, but a timer that never fired, or
    # fired at the next timeout instead of this one, would.
    result = await dispatch_many(Recorder({0: ["hang"]}), [0], concurrency=1, timeout=0.05, retry=1)
    [outcome] = result
    assert outcome.status is Status.TIMED_OUT
    assert isinstance(outcome.error, TimeoutError)
    assert 0.05 <= outcome.elapsed < 0.05 + 0.01 + 0.25


async def test_the_deadline_ends_attempts_at_once() -> None:
    target = Recorder({i: ["hang"] for i in range(4)})
    started = time.monotonic()
    # No attempt timeout: only the run's one deadline timer can end these attempts.
    result = await dispatch_many(target, range(10), concurrency=4, deadline=0.1)
    took = time.monotonic() - started
    assert 0.1 <= took < 0.1 + 0.25
    assert result.counts[Status.TIMED_OUT] == 4
    assert result.counts[Status.SKIPPED] == 6
    assert result.stopped is StopReason.DEADLINE


async def test_a_target_that_swallows_the_timeout_keeps_its_value_and_the_worker_works() -> None:
    calls = 0

    async def stubborn(item: int) -> int:
        nonlocal calls
        calls += 1
        if item == 0:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                return -1  # ignores the timeout and answers anyway
        if item == 1:
            await asyncio.sleep(3600)  # a real timeout, on the same worker
        await asyncio.sleep(0.001)
        return item

    # One worker: if the swallowed expiry left its cancellation counted, the real timeout of
    # item 1 would look like a cancellation of the whole run and raise.
    result = await dispatch_many(stubborn, range(5), concurrency=1, timeout=0.05, retry=1)
    assert [o.status for o in result] == [Status.SUCCEEDED, Status.TIMED_OUT] + [
        Status.SUCCEEDED
    ] * 3
    assert result.values() == [-1, 2, 3, 4]


async def test_timeouts_and_retries_on_every_path_agree() -> None:
    # The lean path (an async function), the item path (a rate) and a Target all time out and
    # retry the same way.
    plan = {i: ["hang", "ok"] if i % 4 == 0 else ["ok"] for i in range(20)}
    retry = Retry(attempts=2, base=0)
    runs = [
        await dispatch_many(Recorder(plan), range(20), concurrency=5, timeout=0.03, retry=retry),
        await dispatch_many(
            Recorder(plan), range(20), concurrency=5, timeout=0.03, retry=retry, rate=1e6
        ),
    ]
    for result in runs:
        assert result.ok
        assert [o.attempts for o in result] == [2 if i % 4 == 0 else 1 for i in range(20)]


async def test_an_expiry_never_hides_a_real_cancellation() -> None:
    # The timer and the caller cancel the same attempt at once: the caller's cancellation wins.
    from aiofanout._timer import AttemptTimer, attempt_failed

    task = asyncio.current_task()
    assert task is not None
    for caller_cancels in (False, True):
        slot = AttemptTimer(timeout=1.0, deadline=None).slot()
        if caller_cancels:
            task.cancel()
        slot.expires = 0.0
        slot.expired = True
        task.cancel()  # what the timer does to an expired slot
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            error = attempt_failed(slot, exc)
        if caller_cancels:
            assert isinstance(error, asyncio.CancelledError)
            assert task.uncancel() == 0  # the test's own task goes on
        else:
            assert isinstance(error, TimeoutError)
            assert task.cancelling() == 0


async def test_an_expiry_the_target_turns_into_another_error_is_still_a_timeout() -> None:
    async def converts(item: int) -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("shutting down") from None  # what some clients do on cancel
        return item

    result = await dispatch_many(converts, [1], concurrency=1, timeout=0.05, retry=1)
    assert result[0].status is Status.TIMED_OUT
    assert isinstance(result[0].error, TimeoutError)
    assert isinstance(result[0].error.__cause__, RuntimeError)
