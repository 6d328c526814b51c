"""The fan-out engine: bounded in-flight work, timeouts, a deadline, retries, a rate and a budget.

Why it is built this way
------------------------

The obvious fan-out, one task per item behind a semaphore (``gather`` + ``Semaphore``, which is
also what aiometer and anyio task groups do), costs about 30 us and 1.5 KB per item on
Python 3.11 before the job does anything, and holds every item in memory at once. A pool of K
long-lived workers pulling from one shared iterator costs about 1.6 us per item and holds K items.
So the engine is a pool of ``concurrency`` workers, never a task per item, and the input is pulled
lazily: endless iterators and async generators work, and memory is bounded by the cap.

The layers, one concern each (as httpx's client sends through auth, redirects, one request):

- ``_options.py``: the keyword arguments, checked once into a frozen ``Options``;
- ``_input.py``: the shared iterator, and the ``Gate`` that says whether new work may start;
- ``_run.py``: the workers and the one path of an item (take, prepare, rate, attempt, settle);
- ``_attempts.py``: one attempt under its timeout, the retry policy and the waits between;
- ``_timer.py``: the one timer of a run, which ends attempts at their timeout or the deadline;
- ``_adaptive.py``: with ``adaptive=True``, a permit per attempt under a limit that follows
  throttling, one limit per target;
- ``_sinks.py``: where outcomes go, a column table or a stream's bounded buffer.

Every item ends in exactly one terminal state, recorded once by ``Run.finish``. Results of
:func:`dispatch_many` go into a column store (see ``_outcome.py``); :func:`stream` hands
:class:`Outcome` objects to the caller through a bounded buffer, so a slow consumer slows the
workers down instead of growing memory.

Timeouts are one timer per run (``_timer.py``), not an ``asyncio.timeout`` per attempt: each
worker's slot holds when its attempt must end, one callback scans the slots, and one handle at
the deadline cancels every attempt still in flight, recorded ``TIMED_OUT``. Time is the running
loop's (``_options.clock``), so a fan-out on a virtual-time loop runs in virtual seconds.

Cancellation is structured: workers run in a ``TaskGroup``; cancelling the caller cancels every
attempt in flight and waits for them, and ``CancelledError`` is never swallowed. A
``CancelledError`` that a target raises on its own (not a cancellation of ours) is recorded as
``CANCELLED``.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any, Required, TypedDict, TypeVar, Unpack, overload

from ._errors import UsageError
from ._input import sized_like
from ._journal import Journal, check_run_id
from ._journaled import JournaledRun, replay_of
from ._log_fields import bound as log_fields
from ._log_fields import library_logger
from ._metrics import MetricsRecorder, check_recorders, record_metrics
from ._options import Deadline, FailureBudget, Options, ProgressCallback, clock
from ._outcome_stream import OutcomeStream
from ._result import FanoutResult
from ._retry import Retry
from ._run import Run
from ._sinks import Replay, StreamSink, TableSink
from ._target import Target

__all__ = ["FanoutOptions", "OutcomeStream", "dispatch_many", "resume", "stream"]

log = library_logger("aiofanout")
T = TypeVar("T")
Items = Iterable[Any] | AsyncIterable[Any]


class FanoutOptions(TypedDict, total=False):
    """The options ``dispatch_many`` and ``stream`` take, by keyword (see :func:`dispatch_many`).

    Example::

        options: FanoutOptions = {"concurrency": 50, "timeout": 10, "retry": 3}
        result = await dispatch_many(fetch, urls, **options)
    """

    concurrency: Required[int]
    timeout: float | None
    deadline: float | Deadline | None
    retry: Retry | int | None
    rate: float | None
    failure_budget: FailureBudget
    tolerate: FailureBudget  # the old name of failure_budget (deprecated)
    on_progress: ProgressCallback | None
    threads: int | None
    adaptive: bool
    journal: Journal | None
    run_id: str | None
    metrics: MetricsRecorder | tuple[MetricsRecorder, ...] | None


_JOURNAL_OPTIONS = ("journal", "run_id", "metrics")  # checked apart from Options


def checked_options(caller: str, options: dict[str, Any]) -> Options:
    options = {k: v for k, v in options.items() if k not in _JOURNAL_OPTIONS}
    unknown = sorted(set(options) - set(FanoutOptions.__annotations__))
    if unknown:
        raise UsageError(
            f"{caller}() got unknown options {unknown}; "
            f"it takes {sorted(FanoutOptions.__annotations__)}"
        )
    if "concurrency" not in options:
        raise UsageError(f"{caller}() needs concurrency=N: the most calls in flight at once")
    if "tolerate" in options:
        options["failure_budget"] = _renamed_tolerate(caller, options)
    return Options.of(**options)


def _renamed_tolerate(caller: str, options: dict[str, Any]) -> Any:
    """``tolerate=``, the old name of ``failure_budget=``: its value, with a warning."""
    if "failure_budget" in options:
        raise UsageError(f"{caller}() got failure_budget= and tolerate= (its old name): drop one")
    warnings.warn(
        f"{caller}(tolerate=...) is now {caller}(failure_budget=...) "
        "(the old name goes in the next release)",
        DeprecationWarning,
        stacklevel=4,
    )
    return options.pop("tolerate")


@overload
async def dispatch_many(
    target: Callable[[Any], Awaitable[T]], items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[T]: ...
@overload
async def dispatch_many(
    target: Callable[[Any], T], items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[T]: ...
@overload
async def dispatch_many(
    target: Target, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]: ...
async def dispatch_many(
    target: object, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]:
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
        failure_budget: how many items may fail, a count or a fraction of the items; past it
            nothing new starts, ``result.budget_exceeded`` is true and ``result.stopped`` is
            ``StopReason.BUDGET``. (``tolerate=`` is its old name: deprecated.)
        on_progress: a plain function called with a :class:`Progress` at most every 100 ms while
            work runs, and once at the end with the final counts. If it raises, the error is
            logged (logger ``aiofanout``) and it is not called again; the work goes on.
        threads: the thread limit for a sync ``target`` (default: the cap, at most 64).
        adaptive: keep the calls in flight under a limit that follows throttling: lowered to
            what a throttled call met (:class:`Throttled`, HTTP 503), raised by one per round
            trip of successes, honouring ``retry_after``, between 1 and ``concurrency``, which
            stays the hard cap. The limit is shared by the fan-outs through one target; it is
            reported as ``Progress.limit`` and ``result.limit`` (a :class:`AdaptiveLimit`).
        metrics: record the fan-out's summary when it ends, once: an
            :class:`~aiofanout.metrics.EmbeddedMetrics` (CloudWatch EMF on stdout), an
            :class:`~aiofanout.metrics.OpenTelemetryMetrics`, or a tuple of them.
        journal: record each item's terminal state, as it ends, in this
            :class:`~aiofanout.durable.Journal` (``FileJournal``, ``S3Journal``) under a run id,
            and write the run's manifest at the end; values must be JSON. If the process dies,
            :func:`~aiofanout.durable.resume` finishes the run without running again what
            succeeded. ``result.run_id`` and ``result.manifest`` say where it is.
        run_id: the run's id in the journal (default: a fresh one); a run id that exists is
            refused: continue that run with ``resume``.

    Returns:
        A :class:`FanoutResult`, typed by what ``target`` returns. Failures are recorded, not
        raised: call ``result.raise_for_failures()`` to raise them. An exception raised by the
        input itself is raised once the work in flight has ended.

    Raises:
        UsageError: an option is wrong (before any work starts).

    Example::

        async def fetch(url: str) -> str:
            async with session.get(url) as r:
                return await r.text()

        result = await dispatch_many(fetch, urls, concurrency=50, timeout=10, retry=3)
        pages: list[str] = result.values()
        print(result.counts, result.latency.p99)

    """
    checked = checked_options("dispatch_many", dict(options))
    journal, run_id = _journal_of(options)
    metrics = _metrics_of(options)
    if journal is not None:
        async with journal:
            run_id = await journal.start_run(run_id)
            result = await _journaled(target, items, checked, journal, run_id, replay=None)
    else:
        sink = TableSink()
        run = Run(target, items, sink, checked)
        await run.execute()
        result = _result(run, sink)
    record_metrics(metrics, result, target)
    return result


def _result(run: Run, sink: TableSink, **journaled: Any) -> FanoutResult[Any]:
    return FanoutResult(
        sink.table,
        stopped=run.gate.stopped,
        elapsed=clock() - run.started,
        retries=run.attempts.retries,
        throttles=run.attempts.throttles,
        limit=run.limit(),
        **journaled,
    )


def _metrics_of(options: Mapping[str, Any]) -> Any:
    metrics = options.get("metrics")
    if metrics is not None:
        check_recorders(metrics)
    return metrics


def _journal_of(options: Mapping[str, Any]) -> tuple[Journal | None, str | None]:
    journal, run_id = options.get("journal"), options.get("run_id")
    if journal is not None and not isinstance(journal, Journal):
        raise UsageError(
            f"journal= takes a FileJournal or an S3Journal, got {type(journal).__name__}"
        )
    if run_id is not None:
        if journal is None:
            raise UsageError("run_id= names a run in a journal: pass journal= too")
        check_run_id(run_id)
    return journal, run_id


async def _journaled(
    target: object,
    items: Items,
    options: Options,
    journal: Journal,
    run_id: str,
    /,
    *,
    replay: Replay | None,
) -> FanoutResult[Any]:
    """Run with each terminal state journaled; flush it, even on error; write the manifest."""
    with log_fields(run_id=run_id):  # what the run logs, in the engine or in its calls, names it
        log.info("fan-out run %s journaled in %s", run_id, journal.location)
        writer = await journal.writer(run_id)
        assert writer.inputs is not None
        checked = writer.inputs.checked(items)  # each item compared with the run's as it is read
        sink = TableSink()
        journaled = JournaledRun(
            target, sized_like(checked, items), sink, options, writer, replay=replay, reader=checked
        )
        run = await journaled.execute()
        manifest = await journal.write_manifest(run_id)
    return _result(run, sink, run_id=run_id, manifest=manifest)


@overload
async def resume(
    run_id: str,
    /,
    target: Callable[[Any], Awaitable[T]],
    items: Items,
    **options: Unpack[FanoutOptions],
) -> FanoutResult[T]: ...
@overload
async def resume(
    run_id: str, /, target: Callable[[Any], T], items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[T]: ...
@overload
async def resume(
    run_id: str, /, target: Target, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]: ...
async def resume(
    run_id: str, /, target: object, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]:
    """Finish a journaled run that stopped: run only what did not succeed, gather the rest.

    Pass the same ``items``, in the same order, and the same ``journal=``: items that
    succeeded come back from the journal (not run again), every other item is dispatched, and
    the result is one :class:`FanoutResult` as if the run had never stopped, with a fresh
    manifest. Items that failed before are tried again (a redrive). Resume as often as needed.

    The run recorded a fingerprint of each item as it read it: an item that differs from the
    run's at its index, or more or fewer items than the run had, is refused with a
    :class:`UsageError` naming the first index that differs, once the work in flight ended
    (what ran before it is journaled; run ``resume`` again with the run's items).

    Raises:
        NotFound: the journal has no run ``run_id``.
        UsageError: no ``journal=``, or another option is wrong, or the items are not the
            run's.

    Example::

        journal = S3Journal("my-runs-bucket")
        try:
            result = await dispatch_many(target, items, concurrency=100, journal=journal)
        except BaseException:
            ...  # the process died; later, anywhere:
        result = await resume(run_id, target, items, concurrency=100, journal=journal)

    """
    checked = checked_options("resume", dict(options))
    journal, _ = _journal_of({"journal": options.get("journal")})
    if journal is None:
        raise UsageError("resume() needs journal=: the journal the run was recorded in")
    if options.get("run_id") is not None:
        raise UsageError("resume() takes the run id as its first argument, not run_id=")
    metrics = _metrics_of(options)
    async with journal:
        await journal.check_run(run_id)
        succeeded = await journal.final_records(run_id, succeeded_only=True)
        result = await _journaled(
            target, items, checked, journal, run_id, replay=replay_of(succeeded)
        )
    record_metrics(metrics, result, target)
    return result


@overload
def stream(
    target: Callable[[Any], Awaitable[T]], items: Items, **options: Unpack[FanoutOptions]
) -> OutcomeStream[T]: ...
@overload
def stream(
    target: Callable[[Any], T], items: Items, **options: Unpack[FanoutOptions]
) -> OutcomeStream[T]: ...
@overload
def stream(
    target: Target, items: Items, **options: Unpack[FanoutOptions]
) -> OutcomeStream[Any]: ...
def stream(target: object, items: Items, **options: Unpack[FanoutOptions]) -> OutcomeStream[Any]:
    """Like :func:`dispatch_many`, but hand each :class:`Outcome` over as soon as it is ready.

    Outcomes come in completion order (``outcome.index`` is the input position) and are not
    kept, so memory stays bounded however many items flow through: at most twice the
    concurrency of outcomes wait for the consumer, and workers wait while the buffer is full.
    Leaving the block early cancels everything still in flight.

    Example::

        async with stream(handle, endless_messages(), concurrency=100, deadline=60) as outcomes:
            async for outcome in outcomes:
                if not outcome.ok:
                    log.warning("item %d: %s", outcome.index, outcome.error)
    """
    checked = checked_options("stream", dict(options))
    if options.get("metrics") is not None:
        raise UsageError(
            "stream() does not take metrics=: its outcomes are yours to count as they come; "
            "dispatch_many(..., metrics=...) records a fan-out's summary"
        )
    if options.get("journal") is not None or options.get("run_id") is not None:
        raise UsageError(
            "stream() does not journal: use dispatch_many(..., journal=...) and resume(), or "
            "aiofanout.durable.orchestrate for runs too large for memory"
        )
    sink = StreamSink(limit=2 * checked.concurrency)
    return OutcomeStream(Run(target, items, sink, checked), sink)
