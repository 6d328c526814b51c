"""What a fan-out gives back: one :class:`Outcome` per item, gathered in a :class:`FanoutResult`.

The engine records results in columns (a list of values, a bytearray of statuses, arrays of
attempts and durations) rather than one object per item: building an object and reading the clock
per item cost more than the whole scheduling of a trivial job. ``Outcome`` objects are built when
they are read.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, final, overload

from ._errors import FanoutFailed

__all__ = ["FanoutResult", "Latency", "Limit", "Outcome", "Progress", "Status", "StopReason"]

T = TypeVar("T")
D = TypeVar("D")
_NO_DEFAULT: Any = object()  # values() without a default: only what succeeded


class Status(enum.StrEnum):
    """The terminal state of one item. Every item ends in exactly one.

    Example::

        failed = result.counts[Status.FAILED] + result.counts[Status.TIMED_OUT]
    """

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    def __repr__(self) -> str:
        return f"Status.{self.name}"


class StopReason(enum.StrEnum):
    """Why a fan-out stopped before taking every item.

    Example::

        if result.stopped is StopReason.DEADLINE:
            resume_later([o.item for o in result if o.status is Status.SKIPPED])
    """

    DEADLINE = "deadline"
    BUDGET = "budget"


# Status codes as stored in the columns: position in this tuple; PENDING (255) is "not ended yet".
STATUSES: tuple[Status, ...] = tuple(Status)
SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, SKIPPED = range(5)
PENDING = 255

#: How one attempt of one item ended, as the engine passes it around: (status code, value, error).
Attempt: TypeAlias = tuple[int, Any, BaseException | None]
#: The result of an item that never started.
NOT_STARTED: Attempt = (SKIPPED, None, None)


@final
@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The terminal state of one item: what went in, how it ended, after how many attempts.

    Example::

        async with stream(fetch, urls, concurrency=10) as outcomes:
            async for outcome in outcomes:
                if outcome.ok:
                    print(outcome.index, outcome.value)
                else:
                    print(outcome.index, outcome.status, outcome.error)
    """

    index: int
    item: Any
    status: Status
    #: What the item returned; ``None`` unless it succeeded (check :attr:`ok`, or :meth:`unwrap`).
    value: T = None  # type: ignore[assignment]
    error: BaseException | None = None
    attempts: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.status is Status.SUCCEEDED

    def unwrap(self) -> T:
        """Return the value, or raise the item's error (a ``TimeoutError`` for a timed-out item)."""
        if self.status is Status.SUCCEEDED:
            return self.value
        if self.error is not None:
            raise self.error
        raise LookupError(f"item {self.index} was {self.status.value}: it has no value")


@final
@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of the time items took, first attempt to terminal state, in seconds.

    Example::

        print(f"p99 {result.latency.p99 * 1000:.0f} ms over {result.latency.count} items")
    """

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, durations: Sequence[float]) -> Latency:
        """Nearest-rank percentiles of ``durations`` (all zero when there are none)."""
        ordered = sorted(durations)
        n = len(ordered)
        if n == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0)

        def rank(p: float) -> float:
            return ordered[min(n - 1, max(0, int(p * n + 0.999999) - 1))]

        return cls(n, rank(0.50), rank(0.95), rank(0.99), ordered[-1])


@final
@dataclass(frozen=True, slots=True)
class Limit:
    """The in-flight limit of an adaptive fan-out (``adaptive=True``) as it went.

    ``current`` is the limit now (on a result: its final value, also ``final``); ``min`` and
    ``max`` are the lowest and highest values it took while the fan-out ran; ``throttles`` counts
    the throttled attempts of this fan-out. The limit is shared by the fan-outs running through
    one target, so it may move for throttles another one met.

    Example::

        result = await dispatch_many(target, items, concurrency=64, adaptive=True)
        limit = result.limit
        print(f"limit {limit.final} (lowest {limit.min}), {limit.throttles} throttles")
    """

    current: int
    min: int
    max: int
    throttles: int

    @property
    def final(self) -> int:
        """The limit when the fan-out ended (the same as ``current`` on a result)."""
        return self.current


@final
@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a fan-out in progress, handed to ``on_progress`` at most every 100 ms.

    Example::

        def show(p: Progress) -> None:
            print(f"{p.done}/{p.taken} done, {p.in_flight} in flight, {p.rate:.0f}/s")

        await dispatch_many(fetch, urls, concurrency=50, on_progress=show)
    """

    taken: int
    done: int
    in_flight: int
    counts: dict[Status, int]
    retries: int
    elapsed: float
    #: The in-flight limit of an adaptive fan-out; ``None`` without ``adaptive=True``.
    limit: Limit | None = None

    @property
    def rate(self) -> float:
        """Items finished per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class Table:
    """Column store of outcomes, filled by the engine (internal).

    ``add`` and ``succeed`` are the two calls every item makes; they are closures over the
    columns, and the columns other than ``items`` grow a chunk at a time, because attribute
    look-ups and appends per item are a measurable share of a trivial job. :meth:`trim` cuts the
    unused tail once the run is over.
    """

    __slots__ = ("add", "attempts", "elapsed", "errors", "items", "status", "succeed", "values")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.values: list[Any] = []
        self.status = bytearray()
        self.attempts = array("I")
        self.elapsed = array("d")
        self.errors: dict[int, BaseException] = {}
        self.add = self._adder()
        self.succeed = self._succeeder()

    def _adder(self) -> Callable[[Any], int]:
        items, keep, capacity = self.items, self.items.append, 0

        def add(item: Any) -> int:
            """Append a pending row for ``item`` (about to make its first attempt); its index."""
            nonlocal capacity
            keep(item)
            index = len(items) - 1
            if index == capacity:
                capacity += self._grow()
            return index

        return add

    def _grow(self, rows: int = 1024) -> int:
        self.values.extend([None] * rows)
        self.status.extend(bytes([PENDING]) * rows)
        self.attempts.extend(array("I", [1]) * rows)
        self.elapsed.extend(array("d", [0.0]) * rows)
        return rows

    def _succeeder(self) -> Callable[[int, Any, Any, float], None]:
        status, values, elapsed = self.status, self.values, self.elapsed

        def succeed(index: int, item: Any, value: Any, took: float) -> None:
            """Record row ``index`` as succeeded on its first attempt."""
            status[index] = SUCCEEDED
            values[index] = value
            elapsed[index] = took

        return succeed

    def trim(self) -> None:
        """Cut the columns to the rows taken (the run is over)."""
        n = len(self.items)
        del self.values[n:], self.status[n:], self.attempts[n:], self.elapsed[n:]

    def outcome(self, index: int) -> Outcome[Any]:
        """Build the outcome of row ``index``."""
        return Outcome(
            index,
            self.items[index],
            STATUSES[self.status[index]],
            self.values[index],
            self.errors.get(index),
            self.attempts[index],
            self.elapsed[index],
        )


@final
class FanoutResult(Sequence[Outcome[T]]):
    """The outcomes of a fan-out, in input order, with counts and a latency summary.

    Every item taken from the input has exactly one outcome, so ``sum(result.counts.values())``
    equals ``len(result)``.

    Example::

        result = await dispatch_many(fetch, urls, concurrency=50, timeout=10)
        print(result.counts, result.latency.p95)
        result.raise_for_failures()  # FanoutFailed (an ExceptionGroup) if any item did not succeed
        pages = result.values()
    """

    __slots__ = (
        "_latency",
        "_table",
        "elapsed",
        "limit",
        "manifest",
        "retries",
        "run_id",
        "stopped",
    )

    def __init__(
        self,
        table: Table,
        *,
        stopped: StopReason | None,
        elapsed: float,
        retries: int,
        limit: Limit | None = None,
        run_id: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        table.trim()
        self._table = table
        self._latency: Latency | None = None
        #: Why work stopped early (``StopReason.DEADLINE`` or ``StopReason.BUDGET``), or ``None``.
        self.stopped = stopped
        #: Seconds the whole fan-out took.
        self.elapsed = elapsed
        #: Attempts beyond the first, over all items.
        self.retries = retries
        #: The in-flight limit of an adaptive fan-out (``None`` without ``adaptive=True``).
        self.limit = limit
        #: The run's id in its journal (``None`` without ``journal=``): what ``resume`` takes.
        self.run_id = run_id
        #: The manifest written to the journal at the end (``None`` without ``journal=``): its
        #: ``counts``, and the keys of its ``results`` parts (see ``aiofanout.durable``).
        self.manifest = manifest

    def __len__(self) -> int:
        return len(self._table.items)

    @overload
    def __getitem__(self, index: int) -> Outcome[T]: ...
    @overload
    def __getitem__(self, index: slice) -> list[Outcome[T]]: ...
    def __getitem__(self, index: int | slice) -> Outcome[T] | list[Outcome[T]]:
        if isinstance(index, slice):
            return [self._table.outcome(i) for i in range(len(self))[index]]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"outcome index {index} out of range for {n} items")
        return self._table.outcome(index)

    def __iter__(self) -> Iterator[Outcome[T]]:
        outcome = self._table.outcome
        return (outcome(i) for i in range(len(self)))

    def __repr__(self) -> str:
        counts = ", ".join(f"{s.value}={n}" for s, n in self.counts.items() if n)
        stopped = f", stopped={self.stopped.value}" if self.stopped else ""
        return f"<FanoutResult {len(self)} items: {counts or 'none'}{stopped}>"

    @property
    def counts(self) -> dict[Status, int]:
        """How many items ended in each status (every status present, zeros included)."""
        status = self._table.status
        return {s: status.count(code) for code, s in enumerate(STATUSES)}

    @property
    def ok(self) -> bool:
        """Whether every item succeeded (``True`` for an empty input)."""
        status = self._table.status
        return status.count(SUCCEEDED) == len(status)

    @property
    def budget_exceeded(self) -> bool:
        """Whether the failure budget (``tolerate=``) was exceeded and work stopped early."""
        return self.stopped is StopReason.BUDGET

    @property
    def latency(self) -> Latency:
        """Percentiles of item durations, over the items that started."""
        if self._latency is None:
            t = self._table
            ran = (SUCCEEDED, FAILED, TIMED_OUT)
            durations = [e for e, s in zip(t.elapsed, t.status, strict=True) if s in ran]
            self._latency = Latency.of(durations)
        return self._latency

    @overload
    def values(self) -> list[T]: ...
    @overload
    def values(self, *, default: D) -> list[T | D]: ...
    def values(self, *, default: Any = _NO_DEFAULT) -> list[Any]:
        """The values of the items that succeeded, in input order.

        Without ``default`` only the items that succeeded are there, so with failures the list
        is shorter than the input and ``values()[i]`` is not item ``i``. With ``default`` every
        item has its place: ``values(default=None)[i]`` is item ``i``'s value, or ``default``
        where it did not succeed.

        Example::

            squares = result.values(default=None)   # len(squares) == len(result)
        """
        t = self._table
        if default is _NO_DEFAULT:
            return [v for v, s in zip(t.values, t.status, strict=True) if s == SUCCEEDED]
        return [v if s == SUCCEEDED else default for v, s in zip(t.values, t.status, strict=True)]

    def errors(self) -> list[BaseException]:
        """The errors of the items that failed or timed out, in input order."""
        return [self._table.errors[i] for i in sorted(self._table.errors)]

    def failures(self) -> list[Outcome[T]]:
        """The outcomes of every item that did not succeed, in input order."""
        status = self._table.status
        return [self._table.outcome(i) for i, s in enumerate(status) if s != SUCCEEDED]

    def raise_for_failures(self) -> None:
        """Raise :class:`FanoutFailed` carrying every outcome that did not succeed, if any."""
        failed = self.failures()
        if failed:
            counts = ", ".join(f"{n} {s.value}" for s, n in self.counts.items() if n)
            first = failed[0]
            why = f"{type(first.error).__name__}: {first.error}" if first.error else first.status
            raise FanoutFailed(
                f"{len(failed)} of {len(self)} items did not succeed ({counts}); "
                f"first, item {first.index}: {why}",
                failed,
            )
