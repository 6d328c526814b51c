"""The options of a fan-out, checked once into one frozen object that every part of a run reads.

``dispatch_many`` and ``stream`` take the same keyword arguments; both hand them to
:meth:`Options.of`, which refuses anything wrong with a :class:`UsageError` saying what to change,
before any work starts.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any, TypeAlias, final

from ._errors import UsageError
from ._outcome import Progress
from ._retry import Retry

__all__ = ["Deadline"]

_MONOTONIC_LOOP_TIME = asyncio.BaseEventLoop.time
_monotonic = time.monotonic


def clock() -> float:
    """Now, on the running event loop's clock (``time.monotonic()`` outside a loop).

    The engine reads time only here, so deadlines, timeouts, the rate and backoff all follow
    the loop: on a virtual-time loop (the ``looptime`` pytest plugin, a simulator) a fan-out
    runs in virtual seconds. A default loop's ``time()`` is ``time.monotonic()``.
    """
    loop = asyncio._get_running_loop()  # None outside a loop: no exception to catch
    if loop is None or type(loop).time is _MONOTONIC_LOOP_TIME:
        return _monotonic()  # what a default loop's time() returns, without its Python frame
    return loop.time()


def loop_clock() -> Callable[[], float]:
    """:func:`clock` as a function for a hot loop: the running loop's own time function."""
    loop = asyncio.get_running_loop()
    return _monotonic if type(loop).time is _MONOTONIC_LOOP_TIME else loop.time


DEFAULT_RETRY = Retry()
MAX_THREADS = 64

FailureBudget: TypeAlias = int | float | None
ProgressCallback: TypeAlias = Callable[[Progress], object]


@final
@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in time on the event loop's clock (``loop.time()``) when a fan-out must stop.

    ``deadline=30`` means 30 seconds from the start of the fan-out; a ``Deadline`` pins an
    absolute time, such as the one of a Lambda invocation. A ``Deadline`` already passed is
    allowed: nothing starts, and a sized input ends ``SKIPPED``.

    Example::

        deadline = Deadline.from_lambda_context(context, margin=2.0)
        result = await dispatch_many(target, items, concurrency=50, deadline=deadline)
    """

    at: float

    def __post_init__(self) -> None:
        if isinstance(self.at, bool) or not isinstance(self.at, int | float):
            raise UsageError(f"Deadline(at=...) is a loop.time() value, got {self.at!r}")
        if not math.isfinite(self.at):
            raise UsageError(f"Deadline(at=...) must be finite, got {self.at!r}")

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


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a run needs to know besides its target and items, validated."""

    concurrency: int
    timeout: float | None
    deadline: float | Deadline | None
    retry: Retry
    interval: float  # seconds between starts (0: no rate limit)
    failure_budget: FailureBudget
    on_progress: ProgressCallback | None
    threads: int | None
    adaptive: bool = False  # an in-flight limit below the cap that follows throttling

    @classmethod
    def of(
        cls,
        *,
        concurrency: int,
        timeout: float | None = None,
        deadline: float | Deadline | None = None,
        retry: Retry | int | None = None,
        rate: float | None = None,
        failure_budget: FailureBudget = None,
        on_progress: ProgressCallback | None = None,
        threads: int | None = None,
        adaptive: bool = False,
    ) -> Options:
        """Check every option; raise :class:`UsageError` naming the first one that is wrong."""
        _check_failure_budget(failure_budget)
        return cls(
            concurrency=_positive_int("concurrency", concurrency),
            timeout=_seconds("timeout", timeout, "seconds per attempt"),
            deadline=_deadline(deadline),
            retry=_retry(retry),
            interval=1.0 / r if (r := _seconds("rate", rate, "starts per second")) else 0.0,
            failure_budget=failure_budget,
            on_progress=_progress_callback(on_progress),
            threads=None if threads is None else _positive_int("threads", threads),
            adaptive=_flag("adaptive", adaptive),
        )

    def deadline_at(self, started: float) -> float | None:
        """The deadline on the loop clock, for a run that started at ``started``."""
        if isinstance(self.deadline, Deadline):
            return self.deadline.at
        return None if self.deadline is None else started + self.deadline

    def failures_allowed(self, items: object) -> Callable[[int], float]:
        """The failure budget in failures, as a function of the number of items taken so far."""
        budget = self.failure_budget
        if budget is None:
            return lambda taken: math.inf
        if isinstance(budget, int):
            return lambda taken: budget
        if isinstance(items, Sized):
            allowed = budget * len(items)
            return lambda taken: allowed
        # An unsized input has no total: measure the fraction against what was taken so far.
        return lambda taken: budget * taken


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


def _seconds(name: str, value: object, unit: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{name} must be a number of {unit} (or None), got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a finite number > 0 of {unit} (or None), got {value!r}")
    return float(value)


def _deadline(value: object) -> float | Deadline | None:
    if isinstance(value, Deadline):
        return value
    try:
        return _seconds("deadline", value, "seconds from now")
    except UsageError:
        raise UsageError(
            f"deadline must be seconds from now (> 0) or a Deadline, got {value!r}; for a point "
            "in time that may already have passed, pass Deadline(at=...)"
        ) from None


def _retry(value: object) -> Retry:
    if value is None:
        return DEFAULT_RETRY
    if isinstance(value, Retry):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retry(attempts=value)
    raise UsageError(f"retry must be a Retry, an attempt count or None, got {value!r}")


def _check_failure_budget(budget: object) -> None:
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget >= 0:
        raise UsageError(
            f"failure_budget must be a count (int >= 0) or a fraction (0..1), got {budget!r}"
        )
    if isinstance(budget, float) and budget > 1:
        raise UsageError(f"failure_budget as a fraction must be within 0..1, got {budget!r}")


def _progress_callback(callback: object) -> ProgressCallback | None:
    if callback is None:
        return None
    if not callable(callback):
        raise UsageError(f"on_progress must be a function of a Progress, got {callback!r}")
    if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - the method itself
    ):
        raise UsageError(
            "on_progress must be a plain (not async) function: it is called on the event loop "
            "between items. To do async work with a Progress, hand it to a task of your own "
            "(for example a queue your coroutine reads)"
        )
    return callback


def check_target(target: object) -> None:
    """Refuse targets that would "succeed" without doing the work (generator functions)."""
    if inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
        kind = "an async generator" if inspect.isasyncgenfunction(target) else "a generator"
        raise UsageError(
            f"target {getattr(target, '__name__', target)!r} is {kind} function: calling it "
            "does no work, it only makes a generator. Pass a function that returns the item's "
            "result (for example one that collects the generator into a list)"
        )
