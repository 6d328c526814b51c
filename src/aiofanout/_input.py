"""Taking items: one lazily read iterator shared by every worker, and the gate that stops it.

The input is read one item at a time by whichever worker is free, so memory holds the items in
flight, not the input. :class:`Gate` is the run's single answer to "may new work start?": it
closes at the deadline, when the failure budget is spent, or when the input itself raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sized
from typing import Any

from ._errors import UsageError
from ._options import clock
from ._outcome import NOT_STARTED, StopReason
from ._sinks import Sink


class Gate:
    """Whether new work may start; why it stopped, if it did."""

    __slots__ = ("deadline", "halted", "input_error", "stopped")

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.stopped: StopReason | None = None
        self.halted = False  # nothing new starts: stopped, or the input raised
        self.input_error: BaseException | None = None

    def stop(self, reason: StopReason) -> None:
        """Start nothing new from now on, for ``reason``."""
        if self.stopped is None:
            self.stopped = reason
        self.halted = True

    def fail_input(self, error: Exception) -> None:
        """The input raised: start nothing new, and raise ``error`` once in-flight work ends."""
        self.input_error = self.input_error or error
        self.halted = True

    def open(self) -> bool:
        """Whether a new item may start now (closing at the deadline)."""
        if self.halted:
            return False
        if self.deadline is not None and clock() >= self.deadline:
            self.stop(StopReason.DEADLINE)
            return False
        return True

    def past_deadline(self) -> bool:
        """Whether the deadline has passed (and if so, close)."""
        if self.deadline is not None and clock() >= self.deadline:
            self.stop(StopReason.DEADLINE)
            return True
        return False


class Input:
    """The items of a run, read lazily from a sync or async iterable."""

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any], gate: Gate, sink: Sink) -> None:
        self.gate = gate
        self.sink = sink
        self.size = len(items) if isinstance(items, Sized) else None
        self.iterator: Iterator[Any] | None = None
        self.aiterator: AsyncIterator[Any] | None = None
        if isinstance(items, AsyncIterable):
            self.aiterator = aiter(items)
        elif isinstance(items, Iterable):
            self.iterator = iter(items)
        else:
            raise UsageError(
                f"items must be an iterable or async iterable, got {type(items).__name__}"
            )
        self.owns_iterator = (self.iterator or self.aiterator) is not items
        self.lock = asyncio.Lock()

    def take_now(self) -> tuple[int, Any] | None:
        """The next item of a sync input and its index, or ``None``: done, or work stopped."""
        if not self.gate.open():
            return None
        assert self.iterator is not None
        try:
            item = next(self.iterator)
        except StopIteration:
            return None
        except Exception as exc:
            self.gate.fail_input(exc)
            return None
        return self.sink.add(item), item

    async def take(self) -> tuple[int, Any] | None:
        """:meth:`take_now` for an async input (sync ones take the same path without waiting)."""
        if self.aiterator is None:
            return self.take_now()
        if not self.gate.open():
            return None
        try:
            item = await self._next_async(self.aiterator)
        except (StopAsyncIteration, _Stopped):
            return None
        except Exception as exc:
            self.gate.fail_input(exc)
            return None
        return self.sink.add(item), item

    async def _next_async(self, source: AsyncIterator[Any]) -> Any:
        # Async generators refuse concurrent __anext__ calls, hence the lock.
        async with self.lock:
            if self.gate.halted:
                raise _Stopped
            if self.gate.deadline is None:
                return await anext(source)
            timer = asyncio.timeout_at(self.gate.deadline)
            try:
                async with timer:
                    return await anext(source)
            except TimeoutError:
                if timer.expired():
                    self.gate.stop(StopReason.DEADLINE)
                    raise _Stopped from None
                raise

    async def skip_rest(self) -> None:
        """Record the never-started rest of a sized input as ``SKIPPED``."""
        if self.size is None:
            return
        try:
            if self.iterator is not None:
                for item in self.iterator:
                    self.sink.finish(self.sink.add(item), item, NOT_STARTED, 0, 0.0)
            elif self.aiterator is not None:
                async for item in self.aiterator:
                    self.sink.finish(self.sink.add(item), item, NOT_STARTED, 0, 0.0)
        except Exception as exc:
            self.gate.fail_input(exc)

    async def close(self) -> None:
        """Close an iterator made here.

        One the caller passed stays open where work stopped, so the rest can be taken up later
        (say, by a fresh Lambda invocation).
        """
        if not self.owns_iterator:
            return
        aclose = getattr(self.aiterator, "aclose", None)
        if aclose is not None:
            await aclose()
        close = getattr(self.iterator, "close", None)
        if close is not None:
            close()


class SizedAsyncIterable:
    """An async iterable that has the length of the input it reads (for progress and budgets)."""

    def __init__(self, items: AsyncIterable[Any], size: int) -> None:
        self.items = items
        self.size = size

    def __aiter__(self) -> AsyncIterator[Any]:
        return aiter(self.items)

    def __len__(self) -> int:
        return self.size


def sized_like(
    items: AsyncIterable[Any], source: Iterable[Any] | AsyncIterable[Any]
) -> AsyncIterable[Any]:
    """``items``, with the length of ``source`` if it has one."""
    return SizedAsyncIterable(items, len(source)) if isinstance(source, Sized) else items


class _Stopped(Exception):
    """Internal: the input was not read because work stopped."""
