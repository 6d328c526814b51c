"""What an item ends as: its :class:`Outcome`, and the column table the engine records them in.

The engine records results in columns (a list of values, a bytearray of statuses, arrays of
attempts and durations) rather than one object per item: building an object and reading the clock
per item cost more than the whole scheduling of a trivial job. ``Outcome`` objects are built when
they are read. :class:`~aiofanout._result.FanoutResult` reads the table.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, final

__all__ = ["AdaptiveLimit", "Latency", "Outcome", "Progress", "Status", "StopReason", "Table"]

T = TypeVar("T")


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
    #: The id of the task envelope sent for the item (the same on every attempt): the key of
    #: its ``TaskRecords`` record and of its logs on the worker. ``None`` for an item that went
    #: in process, as raw JSON, or over HTTP.
    envelope_id: str | None = None

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
class AdaptiveLimit:
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
    limit: AdaptiveLimit | None = None

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

    __slots__ = (
        "add", "attempts", "elapsed", "envelope_ids", "errors", "items", "status", "succeed",
        "values",
    )  # fmt: skip

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.values: list[Any] = []
        self.status = bytearray()
        self.attempts = array("I")
        self.elapsed = array("d")
        self.errors: dict[int, BaseException] = {}
        self.envelope_ids: dict[int, str] = {}  # only items sent as task envelopes have one
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
            self.envelope_ids.get(index),
        )
