"""What a fan-out gives back: :class:`FanoutResult`, the outcomes of every item in input order.

It reads the engine's column table (see ``_outcome.py``), building an :class:`Outcome` only for
what is read, and raises :class:`FanoutFailed` on request; apart from ``_outcome.py`` so that
the exception tree, which names ``Outcome``, and this module, which raises from it, import one
way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, final, overload

from ._errors import FanoutFailed
from ._outcome import (
    FAILED,
    STATUSES,
    SUCCEEDED,
    TIMED_OUT,
    AdaptiveLimit,
    Latency,
    Outcome,
    Status,
    StopReason,
    Table,
)

__all__ = ["FanoutResult"]

T = TypeVar("T")
D = TypeVar("D")
_NO_DEFAULT: Any = object()  # values() without a default: only what succeeded


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
        "throttles",
    )

    def __init__(
        self,
        table: Table,
        *,
        stopped: StopReason | None,
        elapsed: float,
        retries: int,
        throttles: int = 0,
        limit: AdaptiveLimit | None = None,
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
        #: Attempts the far end throttled (:class:`Throttled`, HTTP 503), over all items.
        self.throttles = throttles
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
        """Whether the failure budget (``failure_budget=``) was exceeded and work stopped early."""
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
