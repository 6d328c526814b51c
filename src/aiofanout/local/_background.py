"""The runtime's background tasks (pollers, event runs, log relays, watchers): none outlives it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    """A set of tasks that :meth:`cancel` ends together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task owned by this set (forgotten when it ends)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel(self) -> None:
        """Cancel every task and wait until they are all done."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()

    async def wait(self) -> None:
        """Wait for the tasks running now (errors were theirs to log)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
