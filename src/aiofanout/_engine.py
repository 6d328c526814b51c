"""The fan-out engine: bounded in-flight work, timeouts, a deadline, retries, a rate and a budget.

Why it is built this way
------------------------

The obvious fan-out, one task per item behind a semaphore (``gather`` + ``Semaphore``, which is
also what aiometer and anyio task groups do), costs about 30 us and 1.5 KB per item on
Python 3.11 before the job does anything, and holds every item in memory at once. A pool of K
long-lived workers pulling from one shared iterator costs about 1.6 us per item and holds K items.
So the engine is a pool of ``concurrency`` workers, never a task per item, and the input is pulled
lazily: endless iterators and async generators work, and memory is bounded by the cap.

Every item ends in exactly one terminal state, recorded once by :meth:`_Run.finish`. Results of
:func:`dispatch_many` go into a column store (see ``_outcome.py``); :func:`stream` hands
:class:`Outcome` objects to the caller through a bounded buffer, so a slow consumer slows the
workers down instead of growing memory.

Timeouts use ``asyncio.timeout_at`` (no extra task per call, unlike ``wait_for``). The per-attempt
bound is the earlier of the attempt timeout and the overall deadline, so at the deadline every
attempt in flight is cancelled at once and recorded ``TIMED_OUT``. Waits the engine makes itself
(backoff, rate) are never started when they would end past the deadline.

The common case (a sync iterable, an async function, no timeout, deadline or rate) runs a lean
loop, :meth:`_Run.fast_worker`, that only leaves for the general path when an item fails. It is
the same policy with fewer checks, measured in ``benchmarks/engine.py``.

Cancellation is structured: workers run in a ``TaskGroup``; cancelling the caller cancels every
attempt in flight and waits for them, and ``CancelledError`` is never swallowed. A
``CancelledError`` that a target raises on its own (not a cancellation of ours) is recorded as
``CANCELLED``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias, final

from ._errors import FanoutError, UsageError
from ._outcome import (
    CANCELLED,
    FAILED,
    PENDING,
    SKIPPED,
    STATUSES,
    SUCCEEDED,
    TIMED_OUT,
    FanoutResult,
    Outcome,
    Progress,
    Status,
    StopReason,
    Table,
)
from ._retry import Retry
from ._target import AsyncCallableTarget, as_target

__all__ = ["Deadline", "dispatch_many", "stream"]

clock = time.monotonic  # asyncio's loop clock: ``loop.time()`` is ``time.monotonic()``
DEFAULT_RETRY = Retry()
PROGRESS_INTERVAL = 0.1


@final
@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time (``time.monotonic()``, the asyncio loop clock) when a fan-out must stop.

    ``deadline=30`` means 30 seconds from the start of the fan-out; a ``Deadline`` pins an
    absolute time, such as the one of a Lambda invocation.

    Example::

        deadline = Deadline.from_lambda_context(context, margin=2.0)
        result = await dispatch_many(target, items, concurrency=50, deadline=deadline)
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(clock() + seconds)

    @classmethod
    def from_lambda_context(cls, context: Any, *, margin: float = 1.0) -> Deadline:
        """The Lambda invocation's own deadline, less ``margin`` seconds to wrap up and reply."""
        remaining_ms = context.get_remaining_time_in_millis()
        return cls(clock() + remaining_ms / 1000.0 - margin)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - clock()


Tolerance: TypeAlias = int | float | None
ProgressCallback: TypeAlias = Callable[[Progress], object]


class _Sink(Protocol):
    def add(self, item: Any) -> int: ...
    def finish(
        self,
        index: int,
        item: Any,
        code: int,
        value: Any,
        error: BaseException | None,
        attempts: int,
        elapsed: float,
    ) -> None: ...
    def snapshot(self, retries: int, elapsed: float) -> Progress: ...


class _TableSink:
    """Records outcomes in a :class:`Table` (``dispatch_many``)."""

    def __init__(self) -> None:
        self.table = Table()
        self.add = self.table.add

    def finish(
        self,
        index: int,
        item: Any,
        code: int,
        value: Any,
        error: BaseException | None,
        attempts: int,
        elapsed: float,
    ) -> None:
        t = self.table
        t.status[index] = code
        t.values[index] = value
        if error is not None:
            t.errors[index] = error
        t.attempts[index] = attempts
        t.elapsed[index] = elapsed

    def snapshot(self, retries: int, elapsed: float) -> Progress:
        status = self.table.status
        counts = {s: status.count(code) for code, s in enumerate(STATUSES)}
        in_flight = status.count(PENDING)
        return Progress(len(status), len(status) - in_flight, in_flight, counts, retries, elapsed)


class _StreamSink:
    """Hands outcomes to a consumer through a bounded buffer (``stream``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer: deque[Outcome] = deque()
        self.counts = [0] * len(STATUSES)
        self.taken = 0
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def add(self, item: Any) -> int:
        self.taken += 1
        return self.taken - 1

    def finish(
        self,
        index: int,
        item: Any,
        code: int,
        value: Any,
        error: BaseException | None,
        attempts: int,
        elapsed: float,
    ) -> None:
        self.counts[code] += 1
        self.buffer.append(Outcome(index, item, STATUSES[code], value, error, attempts, elapsed))
        self.ready.set()
        if len(self.buffer) >= self.limit:
            self.room.clear()

    def snapshot(self, retries: int, elapsed: float) -> Progress:
        counts = dict(zip(STATUSES, self.counts, strict=True))
        done = sum(self.counts)
        return Progress(self.taken, done, self.taken - done, counts, retries, elapsed)

    async def wait_for_room(self) -> None:
        await self.room.wait()


def _failure_allowance(tolerate: Tolerance, items: object) -> Callable[[int], float]:
    """How many failures are tolerated, as a function of the number of items taken so far."""
    if tolerate is None:
        return lambda taken: math.inf
    if isinstance(tolerate, bool) or not isinstance(tolerate, int | float) or tolerate < 0:
        raise UsageError(
            f"tolerate must be a count (int >= 0) or a fraction (0..1), got {tolerate!r}"
        )
    if isinstance(tolerate, int):
        return lambda taken: tolerate
    if tolerate > 1:
        raise UsageError(f"tolerate as a fraction must be within 0..1, got {tolerate!r}")
    if isinstance(items, Sized):
        allowed = tolerate * len(items)
        return lambda taken: allowed
    # An unsized input has no total: measure the fraction against what was taken so far.
    return lambda taken: tolerate * taken


class _Run:
    """One fan-out: the state the workers share and the policy they apply."""

    def __init__(
        self,
        target: object,
        items: Iterable[Any] | AsyncIterable[Any],
        sink: _Sink,
        *,
        concurrency: int,
        timeout: float | None,
        deadline: float | Deadline | None,
        retry: Retry | int | None,
        rate: float | None,
        tolerate: Tolerance,
        on_progress: ProgressCallback | None,
        threads: int | None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise UsageError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"timeout must be > 0 seconds (or None), got {timeout!r}")
        if rate is not None and rate <= 0:
            raise UsageError(f"rate must be > 0 starts per second (or None), got {rate!r}")
        self.target = as_target(target, threads=threads)
        self.sink = sink
        self.concurrency = concurrency
        self.timeout = timeout
        self.started = clock()
        self.deadline = self._deadline_at(deadline)
        self.retry = _as_retry(retry)
        self.interval = 1.0 / rate if rate else 0.0
        self.next_start = 0.0
        self.allowance = _failure_allowance(tolerate, items)
        self.on_progress = on_progress
        self.size = len(items) if isinstance(items, Sized) else None
        self.iterator: Iterator[Any] | None = None
        self.aiterator: AsyncIterator[Any] | None = None
        self.input_lock = asyncio.Lock()
        # A stream's consumer sets the pace: workers wait for room in its buffer.
        self.stream_sink = sink if isinstance(sink, _StreamSink) else None
        if isinstance(items, AsyncIterable):
            self.aiterator = aiter(items)
        elif isinstance(items, Iterable):
            self.iterator = iter(items)
        else:
            raise UsageError(
                f"items must be an iterable or async iterable, got {type(items).__name__}"
            )
        self.sync_take = self.iterator is not None and self.stream_sink is None
        self.owns_input = (self.iterator or self.aiterator) is not items
        self.stopped: StopReason | None = None
        self.halted = False  # nothing new starts: stopped, or the input raised
        self.input_error: BaseException | None = None
        self.taken = 0
        self.failures = 0
        self.retries = 0

    def _deadline_at(self, deadline: float | Deadline | None) -> float | None:
        if deadline is None:
            return None
        if isinstance(deadline, Deadline):
            return deadline.at
        if isinstance(deadline, bool) or not isinstance(deadline, int | float):
            raise UsageError(f"deadline must be seconds or a Deadline, got {deadline!r}")
        return self.started + float(deadline)

    # -- the run -------------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run every worker to completion, then mark never-started items of a sized input."""
        await self.target.open(concurrency=self.concurrency, timeout=self.timeout)
        try:
            await self._run_workers()
            if self.halted and self.size is not None and self.iterator is not None:
                self._skip_rest(self.iterator)
        finally:
            try:
                await self.target.close()
            finally:
                await self._close_input()
        if self.input_error is not None:
            raise self.input_error

    async def _run_workers(self) -> None:
        worker = self._pick_worker()
        workers = self.concurrency
        if self.size is not None:
            workers = max(1, min(workers, self.size))
        ticker = asyncio.create_task(self._tick()) if self.on_progress else None
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
                self._report_progress()

    def _pick_worker(self) -> Callable[[], Any]:
        if self.target.batching is not None:
            return self.batch_worker
        lean = (
            isinstance(self.sink, _TableSink)
            and isinstance(self.target, AsyncCallableTarget)
            and self.iterator is not None
            and self.timeout is None
            and self.deadline is None
            and not self.interval
        )
        return self.fast_worker if lean else self.worker

    def _skip_rest(self, iterator: Iterator[Any]) -> None:
        try:
            for item in iterator:
                index = self.sink.add(item)
                self.sink.finish(index, item, SKIPPED, None, None, 0, 0.0)
        except Exception as exc:
            self.fail_input(exc)

    async def _close_input(self) -> None:
        # Close only an iterator made here: one the caller passed stays open where work
        # stopped, so the rest can be taken up later (say, by a fresh Lambda invocation).
        if not self.owns_input:
            return
        aclose = getattr(self.aiterator, "aclose", None)
        if aclose is not None:
            await aclose()
        close = getattr(self.iterator, "close", None)
        if close is not None:
            close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self._report_progress()

    def _report_progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.sink.snapshot(self.retries, clock() - self.started))

    def stop(self, reason: StopReason) -> None:
        """Start nothing new from now on."""
        if self.stopped is None:
            self.stopped = reason
        self.halted = True

    def fail_input(self, error: Exception) -> None:
        """The input raised: start nothing new, and raise ``error`` once in-flight work ends."""
        self.input_error = self.input_error or error
        self.halted = True

    def finish(
        self,
        index: int,
        item: Any,
        code: int,
        value: Any,
        error: BaseException | None,
        attempts: int,
        started: float,
        now: float | None = None,
    ) -> None:
        """Record the one terminal state of an item, and apply the failure budget."""
        ended = clock() if now is None else now
        self.sink.finish(index, item, code, value, error, attempts, ended - started)
        if code in (FAILED, TIMED_OUT):
            self.failures += 1
            if self.failures > self.allowance(self.taken):
                self.stop(StopReason.BUDGET)

    # -- taking items --------------------------------------------------------------------------

    async def take(self) -> tuple[int, Any] | None:
        """The next item and its index, or ``None`` when the input is done or work stopped."""
        if self.stream_sink is not None:
            await self.stream_sink.wait_for_room()
        if self.aiterator is None:
            return self.take_now()
        if not self._may_start():
            return None
        try:
            item = await self._take_async(self.aiterator)
        except (StopAsyncIteration, _Stopped):
            return None
        except Exception as exc:
            self.fail_input(exc)
            return None
        return self._accept(item)

    def take_now(self) -> tuple[int, Any] | None:
        """:meth:`take` for a sync input, without a coroutine per item."""
        if not self._may_start():
            return None
        assert self.iterator is not None
        try:
            item = next(self.iterator)
        except StopIteration:
            return None
        except Exception as exc:
            self.fail_input(exc)
            return None
        return self._accept(item)

    def _accept(self, item: Any) -> tuple[int, Any]:
        self.taken += 1
        return self.sink.add(item), item

    def _may_start(self) -> bool:
        if self.halted:
            return False
        if self.deadline is not None and clock() >= self.deadline:
            self.stop(StopReason.DEADLINE)
            return False
        return True

    async def _take_async(self, source: AsyncIterator[Any]) -> Any:
        # Async generators refuse concurrent __anext__ calls, hence the lock.
        async with self.input_lock:
            if self.halted:
                raise _Stopped
            if self.deadline is None:
                return await anext(source)
            timer = asyncio.timeout_at(self.deadline)
            try:
                async with timer:
                    return await anext(source)
            except TimeoutError:
                if timer.expired():
                    self.stop(StopReason.DEADLINE)
                    raise _Stopped from None
                raise

    # -- one item, many attempts ---------------------------------------------------------------

    async def worker(self) -> None:
        """Take items one at a time and see each through to its terminal state."""
        while True:
            taken = self.take_now() if self.sync_take else await self.take()
            if taken is None:
                return
            index, item = taken
            started = clock()
            try:
                payload = self.target.prepare(item)
            except Exception as exc:
                self.finish(index, item, FAILED, None, exc, 0, started)
                continue
            if not await self.wait_for_rate():
                self.finish(index, item, SKIPPED, None, None, 0, started)
                continue
            code, value, error = await self.attempt_once(payload)
            await self.settle(index, item, payload, code, value, error, started)

    async def fast_worker(self) -> None:
        """:meth:`worker` for the common case: sync input, async function, no timers."""
        fn = self.target.fn  # type: ignore[attr-defined]
        assert self.iterator is not None
        iterator = self.iterator
        table = self.sink.table  # type: ignore[attr-defined]
        items, values, status = table.items, table.values, table.status
        attempts, elapsed = table.attempts, table.elapsed
        now = clock
        try:
            for item in iterator:
                index = len(items)
                items.append(item)
                values.append(None)
                status.append(PENDING)
                attempts.append(1)
                elapsed.append(0.0)
                started = now()
                try:
                    values[index] = await fn(item)
                except BaseException as exc:
                    code = _classify(exc)
                    self.taken = len(items)
                    await self.settle(index, item, item, code, None, exc, started)
                else:
                    status[index] = SUCCEEDED
                    elapsed[index] = now() - started
                if self.halted:
                    return
        except Exception as exc:
            self.fail_input(exc)

    async def attempt_once(self, payload: Any) -> tuple[int, Any, BaseException | None]:
        """One attempt under the attempt timeout and the deadline: (status code, value, error)."""
        when = self._attempt_deadline()
        try:
            if when is None:
                value = await self.target.call(payload, timeout=None)
            else:
                async with asyncio.timeout_at(when):
                    value = await self.target.call(payload, timeout=max(0.0, when - clock()))
        except BaseException as exc:
            return _classify(exc), None, exc
        return SUCCEEDED, value, None

    def _attempt_deadline(self) -> float | None:
        if self.timeout is None:
            return self.deadline
        when = clock() + self.timeout
        return when if self.deadline is None else min(when, self.deadline)

    async def settle(
        self,
        index: int,
        item: Any,
        payload: Any,
        code: int,
        value: Any,
        error: BaseException | None,
        started: float,
    ) -> None:
        """Retry a failed first attempt as the policy allows, then record the final state."""
        attempt = 1
        while (
            code != SUCCEEDED
            and error is not None
            and await self._wait_before_retry(attempt, error)
        ):
            attempt += 1
            self.retries += 1
            code, value, error = await self.attempt_once(payload)
        self.finish(index, item, code, value, error, attempt, started)

    def may_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether the policy allows another attempt after ``error`` on attempt ``attempt``."""
        if attempt >= self.retry.attempts or self.halted:
            return False
        if isinstance(error, TimeoutError) and self.target.ambiguous_timeouts:
            return False
        return self.retry.is_retryable(error)

    async def _wait_before_retry(self, attempt: int, error: BaseException) -> bool:
        if self.deadline is not None and clock() >= self.deadline:
            self.stop(StopReason.DEADLINE)
            return False
        if not self.may_retry(attempt, error):
            return False
        delay = self.retry.backoff(attempt, error)
        return await self._sleep_unless_past_deadline(delay)

    async def _sleep_unless_past_deadline(self, delay: float) -> bool:
        start = max(clock() + delay, self.next_start)
        if self.interval:
            self.next_start = start + self.interval
        if self.deadline is not None and start >= self.deadline:
            return False
        if start > clock():
            await asyncio.sleep(start - clock())
        return not self.halted

    async def wait_for_rate(self) -> bool:
        """Hold a start back to keep to ``rate``; ``False`` if it would pass the deadline."""
        if not self.interval:
            return True
        return await self._sleep_unless_past_deadline(0.0)

    # -- batches -------------------------------------------------------------------------------

    async def batch_worker(self) -> None:
        """Group items as the target's :class:`Batching` says, send, retry per item."""
        carry: tuple[int, Any, Any, float] | None = None
        while True:
            batch, carry = await self._take_batch(carry)
            if not batch:
                return
            await self._run_batch(batch)

    async def _take_batch(
        self, carry: tuple[int, Any, Any, float] | None
    ) -> tuple[list[_Entry], tuple[int, Any, Any, float] | None]:
        batching = self.target.batching
        assert batching is not None
        batch: list[_Entry] = []
        size = 0
        while len(batch) < batching.max_items:
            if carry is not None:
                index, item, payload, started = carry
                carry = None
            else:
                taken = self.take_now() if self.sync_take else await self.take()
                if taken is None:
                    break
                index, item = taken
                started = clock()
                try:
                    payload = self.target.prepare(item)
                except Exception as exc:
                    self.finish(index, item, FAILED, None, exc, 0, started)
                    continue
            if batching.max_bytes is not None:
                if batch and size + len(payload) > batching.max_bytes:
                    return batch, (index, item, payload, started)
                size += len(payload)
            batch.append(_Entry(index, item, payload, started))
        return batch, carry

    async def _run_batch(self, pending: list[_Entry]) -> None:
        attempt = 0
        while pending:
            attempt += 1
            if attempt > 1:
                self.retries += len(pending)
            elif not await self.wait_for_rate():
                for entry in pending:
                    self.finish(entry.index, entry.item, SKIPPED, None, None, 0, entry.started)
                return
            results = await self._attempt_batch([e.payload for e in pending])
            retry: list[tuple[_Entry, BaseException]] = []
            now = clock()  # one clock read for the batch: its items ended together
            for entry, (code, value, error) in zip(pending, results, strict=True):
                if code != SUCCEEDED and error is not None and self.may_retry(attempt, error):
                    retry.append((entry, error))
                else:
                    self.finish(
                        entry.index, entry.item, code, value, error, attempt, entry.started, now
                    )
            pending = await self._hold_for_retry(retry, attempt)

    async def _hold_for_retry(
        self, retry: list[tuple[_Entry, BaseException]], attempt: int
    ) -> list[_Entry]:
        if not retry:
            return []
        delay = max(self.retry.backoff(attempt, error) for _, error in retry)
        if await self._sleep_unless_past_deadline(delay):
            return [entry for entry, _ in retry]
        for entry, error in retry:
            code = TIMED_OUT if isinstance(error, TimeoutError) else FAILED
            self.finish(entry.index, entry.item, code, None, error, attempt, entry.started)
        return []

    async def _attempt_batch(
        self, payloads: list[Any]
    ) -> list[tuple[int, Any, BaseException | None]]:
        when = self._attempt_deadline()
        try:
            if when is None:
                replies = await self.target.call_batch(payloads, timeout=None)
            else:
                async with asyncio.timeout_at(when):
                    replies = await self.target.call_batch(payloads, timeout=when - clock())
        except BaseException as exc:
            code = _classify(exc)
            return [(code, None, exc)] * len(payloads)
        if len(replies) != len(payloads):
            error = FanoutError(
                f"{type(self.target).__name__}.call_batch returned {len(replies)} replies "
                f"for {len(payloads)} payloads"
            )
            return [(FAILED, None, error)] * len(payloads)
        return [
            (_classify(r), None, r) if isinstance(r, BaseException) else (SUCCEEDED, r, None)
            for r in replies
        ]


@dataclass(slots=True)
class _Entry:
    index: int
    item: Any
    payload: Any
    started: float


class _Stopped(Exception):
    """Internal: the input was not read because work stopped."""


def _classify(exc: BaseException) -> int:
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


def _as_retry(retry: Retry | int | None) -> Retry:
    if retry is None:
        return DEFAULT_RETRY
    if isinstance(retry, Retry):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool):
        return Retry(attempts=retry)
    raise UsageError(f"retry must be a Retry, an attempt count or None, got {retry!r}")


async def dispatch_many(
    target: object,
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int,
    timeout: float | None = None,
    deadline: float | Deadline | None = None,
    retry: Retry | int | None = None,
    rate: float | None = None,
    tolerate: Tolerance = None,
    on_progress: ProgressCallback | None = None,
    threads: int | None = None,
) -> FanoutResult:
    """Fan ``items`` out to ``target`` and gather one outcome per item, in input order.

    Args:
        target: an async function ``f(item)``, a sync function (run in threads), or a
            :class:`Target` (``LambdaTarget``, ``SqsTarget``, ``HttpTarget``, a task of an ``App``).
        items: any iterable or async iterable, read lazily; endless ones work with a deadline.
        concurrency: the most calls in flight at once (for batching targets, batches in flight).
        timeout: seconds per attempt (``None``: no limit).
        deadline: seconds for the whole fan-out, or a :class:`Deadline`. At the deadline nothing
            new starts and attempts in flight end ``TIMED_OUT``.
        retry: a :class:`Retry`, an attempt count, or ``None`` for ``Retry()`` (3 attempts of
            retryable errors and timeouts only).
        rate: at most this many starts per second, evenly spaced.
        tolerate: a failure budget, a count or a fraction of the items; past it nothing new
            starts and ``result.budget_exceeded`` is true.
        on_progress: called with a :class:`Progress` at most every 100 ms, and once at the end.
        threads: the thread limit for a sync ``target`` (default: the cap, at most 64).

    Returns:
        A :class:`FanoutResult`. Failures are recorded, not raised: call
        ``result.raise_for_failures()`` to raise them. An exception raised by the input itself
        is raised once the work in flight has ended.

    Example::

        async def fetch(url):
            async with session.get(url) as r:
                return await r.text()

        result = await dispatch_many(fetch, urls, concurrency=50, timeout=10, retry=3)
        print(result.counts, result.latency.p99)

    """
    sink = _TableSink()
    run = _Run(
        target,
        items,
        sink,
        concurrency=concurrency,
        timeout=timeout,
        deadline=deadline,
        retry=retry,
        rate=rate,
        tolerate=tolerate,
        on_progress=on_progress,
        threads=threads,
    )
    await run.execute()
    return FanoutResult(
        sink.table, stopped=run.stopped, elapsed=clock() - run.started, retries=run.retries
    )


def stream(
    target: object,
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int,
    timeout: float | None = None,
    deadline: float | Deadline | None = None,
    retry: Retry | int | None = None,
    rate: float | None = None,
    tolerate: Tolerance = None,
    on_progress: ProgressCallback | None = None,
    threads: int | None = None,
) -> OutcomeStream:
    """Like :func:`dispatch_many`, but hand each :class:`Outcome` over as soon as it is ready.

    Outcomes come in completion order (``outcome.index`` is the input position) and are not
    kept, so memory stays bounded however many items flow through. Leaving the block early
    cancels everything still in flight.

    Example::

        async with stream(handle, endless_messages(), concurrency=100, deadline=60) as outcomes:
            async for outcome in outcomes:
                if not outcome.ok:
                    log.warning("item %d: %s", outcome.index, outcome.error)
    """
    sink = _StreamSink(limit=2 * concurrency if isinstance(concurrency, int) else 1)
    run = _Run(
        target,
        items,
        sink,
        concurrency=concurrency,
        timeout=timeout,
        deadline=deadline,
        retry=retry,
        rate=rate,
        tolerate=tolerate,
        on_progress=on_progress,
        threads=threads,
    )
    return OutcomeStream(run, sink)


@final
class OutcomeStream:
    """The async context manager and iterator of :func:`stream`.

    Example::

        async with stream(handle, messages, concurrency=20) as outcomes:
            async for outcome in outcomes:
                ...
        print(outcomes.counts, outcomes.stopped)
    """

    def __init__(self, run: _Run, sink: _StreamSink) -> None:
        self._run = run
        self._sink = sink
        self._task: asyncio.Task[None] | None = None

    @property
    def stopped(self) -> StopReason | None:
        """Why work stopped early, if it did (see :class:`StopReason`)."""
        return self._run.stopped

    @property
    def counts(self) -> dict[Status, int]:
        """Outcomes produced so far, by status."""
        return dict(zip(STATUSES, self._sink.counts, strict=True))

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._execute())
        return self

    async def _execute(self) -> None:
        try:
            await self._run.execute()
        finally:
            self._sink.ready.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Ours, if we cancelled the run; re-raise if the caller is being cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:
            if exc_type is None:
                raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        sink, task = self._sink, self._task
        if task is None:
            raise UsageError("use `async with stream(...) as outcomes:` before iterating")
        while not sink.buffer:
            if task.done():
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                raise StopAsyncIteration
            sink.ready.clear()
            await sink.ready.wait()
        outcome = sink.buffer.popleft()
        if len(sink.buffer) < sink.limit:
            sink.room.set()
        return outcome
