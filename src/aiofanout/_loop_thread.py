"""The library's own event loop, on a thread of its own, for callers that have no loop.

Why one loop for the process, not one per calling thread: a target is usually made once (a
module-level ``LambdaTarget`` in a Django app) and called from every thread of a server. Its
client is bound to the loop it was made on; with a loop per thread, the second thread would
send through the first thread's client from another loop. One loop, on one daemon thread, serves
every calling thread, and a target's client is made once and stays usable.

Kept warm: a target that holds a client (a :class:`~aiofanout.targets.SharedTarget`) is held
open on the loop after its first call (``target.opened()``, in a task of its own, so it opens
and closes in one task), so later calls reuse its client and pool, and its reply queue
(``replies=True``). Its client is sized for at least :data:`WARM_POOL` calls in flight, so
single calls from several threads share it. At most :data:`WARM_TARGETS` are held: the one
used least recently is closed when another comes. Everything closes at interpreter exit
(``atexit``: the warm targets, then the loop, then the thread is joined) or at
:func:`LoopThread.close`; the thread is a daemon, so it never keeps the process alive.

A call runs in a copy of the caller's context (``contextvars``), as ``asyncio.to_thread`` does
the other way round: a sync task on a worker that dispatches on goes on with its deadline and
dispatch depth.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._errors import UsageError
from ._log_fields import library_logger
from .targets import SharedTarget

__all__ = ["WARM_TARGETS", "LoopThread", "library_loop"]

log = library_logger("aiofanout")
T = TypeVar("T")

#: How many targets the loop holds open at once (the least recently used is closed first).
WARM_TARGETS = 32
#: The fewest calls in flight a warm target's client is sized for: single calls from several
#: threads then share it (each fan-out that joins while its pool is full makes a larger one).
WARM_POOL = 10
#: Seconds the warm targets get to close at exit (a reply queue is deleted, clients closed).
CLOSE_TIMEOUT = 30.0


class _Held:
    """One target held open on the loop, by a task that opens it and closes it."""

    def __init__(self, target: SharedTarget[Any], concurrency: int, timeout: float | None) -> None:
        self.target = target
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._hold(target, concurrency, timeout))

    async def _hold(
        self, target: SharedTarget[Any], concurrency: int, timeout: float | None
    ) -> None:
        try:
            async with target.opened(concurrency=concurrency, timeout=timeout):
                self.ready.set_result(None)
                await self.release.wait()
        except BaseException as exc:
            if self.ready.done():
                log.warning("closing %r held open by aiofanout.sync failed: %r", target, exc)
            else:
                self.ready.set_exception(exc)

    async def close(self) -> None:
        self.release.set()
        await asyncio.gather(self.task, return_exceptions=True)


class LoopThread:
    """An event loop on a daemon thread, started on the first call, that runs callers' work."""

    def __init__(self, warm_targets: int = WARM_TARGETS) -> None:
        self.warm_targets = warm_targets
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # By id: a target need not be hashable; each _Held keeps its target alive.
        self._held: OrderedDict[int, _Held] = OrderedDict()

    def run(self, work: Coroutine[Any, Any, T], *, caller: str) -> T:
        """Run ``work`` on the loop and wait for its result, in the caller's thread.

        Raises :class:`UsageError` (and closes ``work``) when the caller runs a loop itself.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            work.close()
            raise UsageError(
                f"aiofanout.sync.{caller}() was called inside a running event loop, which it "
                f"would block: `await aiofanout.{caller}(...)` instead"
            )
        # The task starts in a copy of this thread's context (call_soon_threadsafe copies it).
        future = asyncio.run_coroutine_threadsafe(work, self._started())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # a KeyboardInterrupt in the caller: stop the work on the loop too
            raise

    async def keep_open(self, target: object, concurrency: int, timeout: float | None) -> None:
        """Hold ``target`` open on the loop (once; closing the least recently used past the cap)."""
        if not isinstance(target, SharedTarget):
            return
        key = id(target)
        if key in self._held:
            self._held.move_to_end(key)
            return
        held = _Held(target, max(concurrency, WARM_POOL), timeout)
        self._held[key] = held
        try:
            await asyncio.shield(held.ready)
        except BaseException:
            held.release.set()  # if it opens after all (the caller was cancelled), it closes
            if self._held.get(key) is held:
                del self._held[key]
            raise
        while len(self._held) > self.warm_targets:
            _, oldest = self._held.popitem(last=False)
            await oldest.close()

    def close(self) -> None:
        """Close the warm targets, stop the loop and join its thread (a later call starts anew)."""
        if threading.current_thread() is self._thread:
            raise UsageError(
                "aiofanout.sync.close() was called on the library's own loop, which it would "
                "wait for: call it from the code that calls aiofanout.sync"
            )
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_held(), loop).result(CLOSE_TIMEOUT)
        except Exception as exc:
            log.warning("aiofanout.sync: the warm targets did not close: %r", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT)

    async def _close_held(self) -> None:
        held = list(self._held.values())
        self._held.clear()
        await asyncio.gather(*(h.close() for h in held))

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="aiofanout-sync-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def forget_after_fork(self) -> None:
        """In a forked child: the thread did not come along; the next call starts a new one."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._held = OrderedDict()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


_LOOP = LoopThread()


def library_loop() -> LoopThread:
    """The process's one :class:`LoopThread`."""
    return _LOOP


atexit.register(_LOOP.close)
os.register_at_fork(after_in_child=_LOOP.forget_after_fork)
