"""What :func:`aiofanout.stream` returns: outcomes as they end, while the run goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from types import TracebackType
from typing import Self, TypeVar, final

from ._errors import UsageError
from ._outcome import STATUSES, AdaptiveLimit, Outcome, Status, StopReason
from ._run import Run
from ._sinks import StreamSink

__all__ = ["OutcomeStream"]

T = TypeVar("T")


@final
class OutcomeStream(AsyncIterable[Outcome[T]]):
    """The async context manager and iterator of :func:`stream`.

    Example::

        async with stream(handle, messages, concurrency=20) as outcomes:
            async for outcome in outcomes:
                ...
        print(outcomes.counts, outcomes.stopped)
    """

    def __init__(self, run: Run, sink: StreamSink) -> None:
        self._run = run
        self._sink = sink
        self._task: asyncio.Task[None] | None = None

    @property
    def stopped(self) -> StopReason | None:
        """Why work stopped early, if it did (see :class:`StopReason`)."""
        return self._run.gate.stopped

    @property
    def limit(self) -> AdaptiveLimit | None:
        """The in-flight limit of an adaptive fan-out so far (``None`` without ``adaptive``)."""
        return self._run.limit()

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

    async def __anext__(self) -> Outcome[T]:
        sink, task = self._sink, self._task
        if task is None:
            raise UsageError("use `async with stream(...) as outcomes:` before iterating")
        while not sink.buffer:
            if task.done():
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
                raise StopAsyncIteration
            sink.ready.clear()
            await sink.ready.wait()
        return sink.pop()
