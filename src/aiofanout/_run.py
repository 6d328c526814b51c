"""One fan-out: a pool of workers taking items and seeing each through one path to its end.

The path of an item is the same for every target: take it, prepare its payload (a failure there
fails the item alone), wait for the rate, attempt, then settle: retry what the policy allows,
record the one terminal state. A batching target makes the attempt for several items at once;
everything else is shared. Each worker writes the item and attempt it is on into its own log
fields (``_log_fields.py``), so what an item's call logs names it. The lean worker is a shortcut
of the same path for the common case (a sync input, an async function, no timers) and leaves it
for the full path at the first failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ._adaptive import attempts_for
from ._attempts import classify, is_throttle
from ._input import Gate, Input
from ._log_fields import library_logger, worker_fields
from ._options import Options, check_target, clock, loop_clock
from ._outcome import FAILED, NOT_STARTED, SKIPPED, TIMED_OUT, AdaptiveLimit, Attempt, StopReason
from ._sinks import Recorder, Replay, Sink, StreamSink, TableSink
from ._target import AsyncCallableTarget, Batching, Target, as_target, keyed_preparer
from ._timer import INF, AttemptTimer, Slot, attempt_failed, attempt_succeeded
from ._tracing import FanoutTracing, fanout_tracing

log = library_logger("aiofanout")
PROGRESS_INTERVAL = 0.1


@dataclass(slots=True)
class _Entry:
    """An item on its way: its index, the item, its prepared payload, when it started."""

    index: int
    item: Any
    payload: Any
    started: float
    envelope_id: str | None = None


class Run:
    """The state the workers of one fan-out share, and the path each item takes."""

    def __init__(
        self,
        target: object,
        items: Iterable[Any] | AsyncIterable[Any],
        sink: Sink,
        options: Options,
        *,
        journal: Recorder | None = None,
        replay: Replay | None = None,
    ) -> None:
        check_target(target)
        self.options = options
        self.target = as_target(target, threads=options.threads)
        self.sink = sink
        self.started = clock()
        self.gate = Gate(options.deadline_at(self.started))
        self.input = Input(items, self.gate, sink)
        self.timer = AttemptTimer(options.timeout, self.gate.deadline)
        self.timer.on_deadline = lambda: self.gate.stop(StopReason.DEADLINE)
        self.attempts, self.share = attempts_for(self.target, options, self.gate, self.timer)
        # Asked once per fan-out: without a tracer provider, no span is made for any item.
        self.tracing = self.attempts.tracing = fanout_tracing(self.target.span_description)
        self.allowance = options.failures_allowed(items)
        self.failures = 0
        self.on_progress = options.on_progress
        self.journal = journal  # records each terminal state but SKIPPED (never started)
        self.prepare_keyed = keyed_preparer(self.target) if journal is not None else None
        # Targets that send task envelopes name each item's: its outcome carries the id.
        self.names_envelopes = type(self.target).envelope_id is not Target.envelope_id
        self.replay = replay  # items that ended in an earlier run: recorded, not run again
        # A stream's consumer sets the pace: workers wait for room in its buffer.
        self.stream_sink = sink if isinstance(sink, StreamSink) else None
        self.sync_take = (
            self.input.iterator is not None and self.stream_sink is None and journal is None
        )
        #: Which worker loop ran (``"lean"``, ``"items"`` or ``"batches"``), for tests and repr.
        self.path = ""

    # -- the run -------------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run every worker to completion, then mark never-started items of a sized input."""
        if self.tracing is None:
            return await self._execute()
        return await _traced_execute(self, self.tracing)

    async def _execute(self) -> None:
        await self.target.open(concurrency=self.options.concurrency, timeout=self.options.timeout)
        try:
            with self.share or contextlib.nullcontext():  # the adaptive limit counts this run
                await self._run_workers()
            if self.gate.halted:
                await self.input.skip_rest()
        finally:
            try:
                await self.target.close()
            finally:
                await self.input.close()
        self._report_progress()  # the final one: every item of a sized input is counted
        if self.gate.input_error is not None:
            raise self.gate.input_error

    async def _run_workers(self) -> None:
        worker = self._pick_worker()
        workers = self.options.concurrency
        if self.input.size is not None:
            workers = max(1, min(workers, self.input.size))
        ticker = asyncio.create_task(self._tick()) if self.on_progress else None
        self.timer.start()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        finally:
            self.timer.stop()
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)

    def _pick_worker(self) -> Callable[[], Coroutine[Any, Any, None]]:
        if self.target.batching is not None:
            self.path = "batches"
            return self.batch_worker
        lean = (
            isinstance(self.sink, TableSink)
            and isinstance(self.target, AsyncCallableTarget)
            and self.input.iterator is not None
            and not self.options.interval
            and self.share is None
            and self.journal is None
            and self.replay is None
            and self.tracing is None  # the lean loop makes its attempts inline, untraced
        )
        self.path = "lean" if lean else "items"
        return functools.partial(_lean_worker, self) if lean else self.item_worker

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self._report_progress()

    def _report_progress(self) -> None:
        callback = self.on_progress
        if callback is None:
            return
        try:
            progress = self.sink.snapshot(self.attempts.retries, clock() - self.started)
            callback(progress if self.share is None else replace(progress, limit=self.limit()))
        except Exception:
            # The work matters more than its progress report: log it once, stop calling it.
            self.on_progress = None
            log.exception("on_progress raised; it is not called again in this fan-out")

    def limit(self) -> AdaptiveLimit | None:
        """The adaptive limit as this fan-out saw it (``None`` without ``adaptive``)."""
        return None if self.share is None else self.share.report()

    def finish(
        self,
        index: int,
        item: Any,
        result: Attempt,
        attempts: int,
        started: float,
        now: float | None = None,
        *,
        by_deadline: bool = False,
    ) -> None:
        """Record the one terminal state of an item, and apply the failure budget.

        ``by_deadline``: the deadline refused a retry the item was owed; an attempt in flight
        that the deadline expired counts as ended by it too.
        """
        ended = clock() if now is None else now
        if self.journal is not None and result[0] != SKIPPED:
            by_deadline = by_deadline or (
                result[0] == TIMED_OUT and self.gate.stopped is StopReason.DEADLINE
            )
            result = self.journal.record(
                index, result, attempts, ended - started, by_deadline=by_deadline
            )
        self.sink.finish(index, item, result, attempts, ended - started)
        if result[0] in (FAILED, TIMED_OUT):
            self.failures += 1
            if self.failures > self.allowance(self.sink.taken):
                self.gate.stop(StopReason.BUDGET)

    # -- the path of an item -------------------------------------------------------------------

    async def _take(self) -> tuple[int, Any] | None:
        if self.stream_sink is not None:
            await self.stream_sink.wait_for_room()
        if self.journal is not None:
            await self.journal.wait_for_room()
        return await self.input.take()

    async def _next_entry(self) -> _Entry | None:
        """Take the next item and prepare its payload; a failing prepare fails the item alone."""
        while True:
            taken = self.input.take_now() if self.sync_take else await self._take()
            if taken is None:
                return None
            index, item = taken
            if self.replay is not None and (ended := self.replay.get(index)) is not None:
                self.sink.finish(index, item, *ended)  # journaled already: not run, not counted
                continue
            started = clock()
            try:
                payload = self._prepare(index, item)
            except Exception as exc:
                self.finish(index, item, (FAILED, None, exc), 0, started)
                continue
            if self.names_envelopes and (envelope_id := self.target.envelope_id(payload)):
                self.sink.identify(index, envelope_id)
                return _Entry(index, item, payload, started, envelope_id)
            return _Entry(index, item, payload, started)

    def _prepare(self, index: int, item: Any) -> Any:
        if self.journal is None or self.prepare_keyed is None:
            return self.target.prepare(item)
        # A journaled item keeps its name across crashes: the far end can drop a re-run of it.
        return self.prepare_keyed(item, self.journal.item_key(index))

    async def item_worker(self) -> None:
        """Take items one at a time and see each through to its terminal state."""
        slot, fields = self.timer.slot(), worker_fields()
        while (entry := await self._next_entry()) is not None:
            fields.update(item_index=entry.index, envelope_id=entry.envelope_id, attempt=1)
            ready = await self.attempts.wait_for_rate()
            first = await self.attempts.once(entry.payload, slot) if ready else NOT_STARTED
            if first is NOT_STARTED:  # the rate or the adaptive limit would pass the deadline
                self.finish(entry.index, entry.item, NOT_STARTED, 0, entry.started)
                continue
            await self.settle(entry, first, slot, fields)

    async def settle(
        self, entry: _Entry, result: Attempt, slot: Slot, fields: dict[str, Any]
    ) -> None:
        """Retry a failed first attempt as the policy allows, then record the final state.

        ``fields``: the worker's log fields, where each attempt's number goes.
        """
        code, value, error = result
        attempt = 1
        throttled = is_throttle(error)
        by_deadline = False  # a retry was owed and the deadline refused it
        while error is not None and self.attempts.may_retry(attempt, error, throttled):
            if not await self.attempts.wait_to_retry(attempt, [error]):
                by_deadline = self.attempts.refused_by_deadline()
                break
            fields["attempt"] = attempt + 1
            retried = await self.attempts.once(entry.payload, slot)
            if retried is NOT_STARTED:  # the adaptive limit would pass the deadline
                by_deadline = True
                break
            attempt += 1
            code, value, error = retried
            throttled += is_throttle(error)
        self.attempts.throttles += throttled
        result = (code, value, error)
        self.finish(
            entry.index, entry.item, result, attempt, entry.started, by_deadline=by_deadline
        )

    # -- the same path, a batch at a time --------------------------------------------------------

    async def batch_worker(self) -> None:
        """Group items as the target's :class:`Batching` says, send, settle each item."""
        slot, fields = self.timer.slot(), worker_fields()
        carry: _Entry | None = None
        while True:
            batch, carry = await _take_batch(self.target.batching, self._next_entry, carry)
            if not batch:
                return
            if not await self.attempts.wait_for_rate():
                for entry in batch:
                    self.finish(entry.index, entry.item, NOT_STARTED, 0, entry.started)
                continue
            await _settle_batch(self, batch, slot, fields)


async def _traced_execute(run: Run, tracing: FanoutTracing) -> None:
    """:meth:`Run.execute` in the fan-out's span, its counts set at its end."""
    name = "aiofanout.stream" if run.stream_sink is not None else "aiofanout.dispatch_many"
    with tracing.fanout_span(name, _traced_options(run)):
        try:
            await run._execute()
        finally:
            progress = run.sink.snapshot(run.attempts.retries, clock() - run.started)
            counts = {status.value: count for status, count in progress.counts.items()}
            tracing.summary(counts, run.attempts.retries, run.attempts.throttles, run.limit())


def _traced_options(run: Run) -> dict[str, Any]:
    """The fan-out span's options."""
    options = run.options
    deadline = options.deadline_at(run.started)
    return {
        "target": type(run.target).__name__,
        "concurrency": options.concurrency,
        "timeout": options.timeout,
        "deadline": None if deadline is None else round(deadline - run.started, 3),
        "retry.attempts": options.retry.attempts,
        "rate": 1 / options.interval if options.interval else None,
        "adaptive": options.adaptive,
        "journaled": run.journal is not None,
    }


async def _lean_worker(run: Run) -> None:
    """:meth:`Run.item_worker` for a sync input, an async function and no rate.

    The same path with the attempt made inline (the arming and expiry of
    :meth:`Attempts.once`): a coroutine frame, a method call or a clock read per item is a
    measurable share of a trivial job (``benchmarks/engine.py``).
    """
    assert isinstance(run.target, AsyncCallableTarget)
    assert run.input.iterator is not None
    fn, gate, now = run.target.fn, run.gate, loop_clock()  # one lookup, not one per item
    add, succeed = run.sink.add, run.sink.succeed
    slot, timed, span, deadline = run.timer.slot(), run.timer.active, *run.timer.limits()
    fields = worker_fields()
    fields["attempt"] = 1
    started = now()  # then each item starts when the one before it ended
    try:
        for item in run.input.iterator:
            index = fields["item_index"] = add(item)
            if timed:
                if started >= deadline:  # start nothing more
                    run.finish(index, item, NOT_STARTED, 0, started)
                    gate.stop(StopReason.DEADLINE)
                    return
                expires = started + span
                slot.expires = expires if expires < deadline else deadline
            try:
                value = await fn(item)
            except BaseException as exc:
                error = attempt_failed(slot, exc)
                first = (classify(error), None, error)
                await run.settle(_Entry(index, item, item, started), first, slot, fields)
                fields["attempt"] = 1
                started = now()
            else:
                if timed:
                    slot.expires = INF
                    if slot.expired:
                        attempt_succeeded(slot)
                ended = now()
                succeed(index, item, value, ended - started)
                started = ended
            if gate.halted:
                return
    except Exception as exc:
        gate.fail_input(exc)


async def _settle_batch(run: Run, batch: list[_Entry], slot: Slot, fields: dict[str, Any]) -> None:
    """Attempt the batch; retry together the items the policy allows; record the rest.

    ``fields``: the worker's log fields: a batch's attempt names no one item, only its number.
    """
    attempt = 0
    # Each entry with its last result; NOT_STARTED (SKIPPED) until a first attempt.
    pending: list[tuple[_Entry, Attempt]] = [(entry, NOT_STARTED) for entry in batch]
    throttled: dict[int, int] = {}  # by item index: its attempts that were throttled
    while pending:
        attempt += 1
        fields["attempt"] = attempt
        results = await run.attempts.batch([entry.payload for entry, _ in pending], slot)
        if results and results[0] is NOT_STARTED:  # no room under the adaptive limit
            for entry, last in pending:
                run.finish(
                    entry.index, entry.item, last, attempt - 1, entry.started, by_deadline=True
                )
            return
        retry: list[tuple[_Entry, Attempt]] = []
        now = clock()  # one clock read for the batch: its items ended together
        for (entry, _), result in zip(pending, results, strict=True):
            error = result[2]
            throttle = is_throttle(error)
            run.attempts.throttles += throttle
            times = throttled[entry.index] = throttled.get(entry.index, 0) + throttle
            if error is not None and run.attempts.may_retry(attempt, error, times):
                retry.append((entry, result))
            else:
                run.finish(entry.index, entry.item, result, attempt, entry.started, now)
        errors = [result[2] for _, result in retry if result[2] is not None]
        if retry and not await run.attempts.wait_to_retry(attempt, errors):
            by_deadline = run.attempts.refused_by_deadline()
            for entry, result in retry:
                run.finish(
                    entry.index, entry.item, result, attempt, entry.started, by_deadline=by_deadline
                )
            retry = []
        pending = retry


async def _take_batch(
    batching: Batching | None,
    next_entry: Callable[[], Awaitable[_Entry | None]],
    carry: _Entry | None,
) -> tuple[list[_Entry], _Entry | None]:
    """Up to ``max_items`` entries within ``max_bytes``; the one that did not fit is carried."""
    assert batching is not None
    batch: list[_Entry] = []
    size = 0
    while len(batch) < batching.max_items:
        entry, carry = (carry, None) if carry is not None else (await next_entry(), None)
        if entry is None:
            break
        length = len(entry.payload) if batching.max_bytes is not None else 0
        if not batching.has_room(len(batch), size, length):
            return batch, entry
        batch.append(entry)
        size += length
    return batch, carry
