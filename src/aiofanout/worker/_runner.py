"""The sync adapter: Lambda calls a sync function, the work is async.

:class:`LoopRunner` keeps one event loop per execution environment and reuses it across warm
invocations, so clients and connection pools created in one invocation are still valid in the
next (``asyncio.run`` per call would close the loop under them: "Event loop is closed").
``loop="fresh"`` picks ``asyncio.run`` per invocation instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

from .._errors import UsageError

T = TypeVar("T")

LOOP_MODES = ("reuse", "fresh")


def check_loop_mode(owner: str, loop: str) -> None:
    """Refuse a ``loop=`` that is neither ``"reuse"`` nor ``"fresh"``."""
    if loop not in LOOP_MODES:
        raise UsageError(f"{owner}(loop=...) is 'reuse' or 'fresh', got {loop!r}")


class LoopRunner:
    """Runs a coroutine to completion from sync code, on one loop kept across calls.

    Args:
        fresh: run each coroutine with ``asyncio.run`` (a new loop per call) instead.
        inside_loop_advice: what the error says to do instead when :meth:`run` is called
            from inside a running event loop (where it cannot block).

    Example::

        runner = LoopRunner()
        value = runner.run(fetch())      # from sync code; the loop stays for the next call
        runner.close()                   # at the end of the execution environment

    """

    def __init__(
        self,
        *,
        fresh: bool = False,
        inside_loop_advice: str = "await the coroutine there instead",
    ) -> None:
        self.fresh = fresh
        self.inside_loop_advice = inside_loop_advice
        self.loop: asyncio.AbstractEventLoop | None = None
        self.resources = contextlib.AsyncExitStack()
        self.reply_client: Any = None

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` and return its result (the sync entry point's body)."""
        self._refuse_inside_a_running_loop(coro)
        if self.fresh:
            return asyncio.run(self._fresh(coro))
        if self.loop is None or self.loop.is_closed():
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coro)

    def _refuse_inside_a_running_loop(self, coro: Awaitable[Any]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if isinstance(coro, Coroutine):
            coro.close()  # never awaited, and no "was never awaited" warning either
        raise UsageError(f"called from inside a running event loop: {self.inside_loop_advice}")

    async def _fresh(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close what invocations opened on this loop (the reply client)."""
        await self.resources.aclose()
        self.resources = contextlib.AsyncExitStack()
        self.reply_client = None

    def close(self) -> None:
        """Close the resources and the loop (end of the execution environment, or tests)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.run_until_complete(self.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        self.loop = None


class EntrypointHandler(Protocol[T]):
    """What :func:`lambda_entrypoint` returns: the sync handler, its runner, the async function."""

    runner: LoopRunner
    __wrapped__: Callable[[Any, Any], Awaitable[T]]

    def __call__(self, event: Any, context: Any, /) -> T: ...


def lambda_entrypoint(
    fn: Callable[[Any, Any], Awaitable[T]], *, loop: str = "reuse"
) -> EntrypointHandler[T]:
    """Turn ``async def handler(event, context)`` into the sync function Lambda calls.

    With ``loop="reuse"`` (the default) one event loop serves every warm invocation of the
    execution environment, so clients made in one invocation stay valid in the next. Code that
    already runs in an event loop awaits the async function, kept as ``handler.__wrapped__``.

    Example::

        @lambda_entrypoint
        async def handler(event, context):
            result = await dispatch_many(target, event["keys"], concurrency=50,
                                         deadline=Deadline.from_lambda_context(context))
            return {"ok": result.ok}
    """
    check_loop_mode("lambda_entrypoint", loop)
    name = getattr(fn, "__name__", "handler")
    runner = LoopRunner(
        fresh=loop == "fresh",
        inside_loop_advice=(
            f"{name} is the sync entry point Lambda calls; inside a loop await the async "
            f"function it wraps: `await {name}.__wrapped__(event, context)`"
        ),
    )

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> T:
        return runner.run(fn(event, context))

    entrypoint = cast("EntrypointHandler[T]", handler)
    entrypoint.runner = runner
    return entrypoint
