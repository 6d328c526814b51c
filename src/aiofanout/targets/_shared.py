"""``SharedTarget``: one client or session for every fan-out using a target, sized for all of them.

A network target's resource is sized when it is built: a pool of so many connections, a read
timeout above the attempt timeout. Fan-outs share it (side by side, or across ``opened()``), so
it must fit every one of them; a pool built for the first fan-out's cap of 1 would silently hold
a cap of 30 at one call in flight.

So the target keeps what each open fan-out needs (its cap and its attempt timeout) and, when a
fan-out opens that the live resource does not fit, acquires a new one sized for the total, routes
new calls to it and retires the old one. Calls already in flight on a retired resource finish on
it; each call holds a :meth:`SharedTarget.lease` that counts it, and a retired resource is
released at the next open or close once its count is zero, at the latest by the last close. A
resource is never shrunk: a smaller fan-out uses the larger one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

from .._errors import UsageError
from .._target import Target

__all__ = ["SharedTarget"]

R = TypeVar("R")


@dataclass(slots=True)
class _Need:
    """What one open fan-out needs: ``concurrency`` calls in flight, attempts of ``timeout``.

    ``reserved``: from :meth:`SharedTarget.opened`, which makes no calls itself: a floor for the
    size, not calls in flight beside the fan-outs'.
    """

    opener: asyncio.Task[object] | None  # the task that opened it, to find it again at close()
    concurrency: int
    timeout: float | None
    reserved: bool = False


@dataclass(slots=True)
class _Resource(Generic[R]):
    """One acquired resource, what it was sized for, and the calls in flight on it."""

    value: R
    concurrency: int
    timeout: float | None
    loop: asyncio.AbstractEventLoop | None = None  # the loop it was made on, and belongs to
    in_flight: int = 0

    def fits(self, concurrency: int, timeout: float | None) -> bool:
        return concurrency <= self.concurrency and not _longer(timeout, self.timeout)


class _Lease(Generic[R]):
    """Counts one call in flight on a resource (a plain class: it is made once per call)."""

    __slots__ = ("resource",)

    def __init__(self, resource: _Resource[R]) -> None:
        self.resource = resource

    def __enter__(self) -> R:
        self.resource.in_flight += 1
        return self.resource.value

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.resource.in_flight -= 1


class SharedTarget(Target, Generic[R]):
    """A target holding one resource (a client, a session) for every fan-out that uses it.

    The first :meth:`open` acquires it, the last :meth:`close` releases it, so fan-outs running
    side by side share one; :meth:`opened` keeps it across fan-outs. The resource is sized for
    all the fan-outs open at once: when one opens that it does not fit (more calls in flight in
    total, or a longer attempt timeout), a new one is acquired for new calls and the old one is
    released once its calls have finished. Subclasses implement :meth:`acquire` and
    :meth:`release`, and make each call inside ``with self.lease() as resource:``.

    Example::

        class Search(SharedTarget[aiohttp.ClientSession]):
            async def acquire(self, *, concurrency, timeout):
                return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

            async def release(self, session):
                await session.close()

            async def call(self, payload, *, timeout):
                with self.lease() as session:
                    async with session.get(URL, params={"q": payload}) as response:
                        return await response.json()

        async with target.opened(concurrency=50, timeout=30):   # one session for both
            await dispatch_many(target, first_batch, concurrency=50)
            await dispatch_many(target, second_batch, concurrency=50)
    """

    _live: _Resource[R] | None = None
    _retired: tuple[_Resource[R], ...] = ()
    _needs: tuple[_Need, ...] = ()
    _lock: asyncio.Lock | None = None
    _lock_loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, *, concurrency: int, timeout: float | None) -> R:
        """Make a resource for ``concurrency`` calls in flight in total, attempts of ``timeout``.

        ``timeout`` is ``None`` for unbounded attempts. Returning the live resource itself (one
        the user brought, which cannot be rebuilt) keeps it; warn there if it is too small.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement acquire()")

    async def release(self, resource: R) -> None:
        """Let go of a resource :meth:`acquire` made (not one the user brought)."""

    async def on_first_open(self) -> None:
        """Called when the first fan-out (or :meth:`opened`) opens, after :meth:`acquire`.

        For what lives as long as the target is open besides the resource (a reply queue). If
        it raises, the open fails and the resource is released. The default does nothing.
        """

    async def on_last_close(self) -> None:
        """Called when the last fan-out closes, before the resource is released."""

    def lease(self) -> contextlib.AbstractContextManager[R]:
        """The live resource, for one call: ``with self.lease() as client: ...``.

        The call is counted in flight on that resource, so it is not released under the call.
        """
        if self._live is None:
            raise UsageError(
                f"{type(self).__name__} is not open: pass it to dispatch_many/stream, or use "
                "`async with target.opened(concurrency=...)`"
            )
        return _Lease(self._live)

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        await self._add(_Need(asyncio.current_task(), concurrency, timeout))

    async def _add(self, need: _Need) -> None:
        # A fan-out that starts while another is still acquiring waits for that acquisition
        # rather than finding nothing to use (or acquiring a second resource beside it).
        async with self._lock_of_this_loop():
            self._check_same_loop()
            first = not self._needs
            await self._fit((*self._needs, need))
            self._needs = (*self._needs, need)
            await self._release_drained()
            if first:
                await self._first_opened()

    def _check_same_loop(self) -> None:
        # A client (an aiohttp pool) works only on the loop it was made on: a fan-out on another
        # loop while this one is open would send through it from the wrong loop.
        live = self._live
        if live is not None and live.loop not in (None, asyncio.get_running_loop()):
            raise UsageError(
                f"{type(self).__name__} is open on another event loop, and its client works "
                "only there (aiofanout.sync keeps targets open on its own loop): make another "
                "target for this loop, or close it there first (aiofanout.sync.close())"
            )

    async def _first_opened(self) -> None:
        try:
            await self.on_first_open()
        except BaseException:
            # Nothing will close a fan-out whose open failed: release what it acquired.
            self._needs = ()
            await self._release_everything()
            raise

    async def close(self) -> None:
        if not self._needs:
            return
        async with self._lock_of_this_loop():
            self._needs = _without_one_of(self._needs, asyncio.current_task())
            if self._needs:
                await self._release_drained()
                return
            try:
                await self.on_last_close()
            finally:
                await self._release_everything()

    async def _release_everything(self) -> None:
        resources = [*self._retired, *([self._live] if self._live else [])]
        self._live, self._retired = None, ()
        await self._release_all(resources)

    def _lock_of_this_loop(self) -> asyncio.Lock:
        # One lock per event loop: a target may serve one loop after another (asyncio.run twice),
        # and a lock is bound to the loop it first waited on. Never dropped while a loop runs,
        # so an open waiting on it and an open arriving later cannot acquire side by side.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    @contextlib.asynccontextmanager
    async def opened(
        self, *, concurrency: int = 10, timeout: float | None = None
    ) -> AsyncIterator[Self]:
        """Keep the target open across several fan-outs (each may need more: it then grows)."""
        await self._add(_Need(asyncio.current_task(), concurrency, timeout, reserved=True))
        try:
            yield self
        finally:
            await self.close()

    async def _fit(self, needs: tuple[_Need, ...]) -> None:
        """Make sure the live resource fits every need at once; acquire a larger one if not."""
        in_flight = sum(need.concurrency for need in needs if not need.reserved)
        concurrency = max(in_flight, *(need.concurrency for need in needs))
        timeout = _longest(need.timeout for need in needs)
        live = self._live
        if live is not None:
            if live.fits(concurrency, timeout):
                return
            concurrency = max(concurrency, live.concurrency)  # never shrink what is there
            timeout = _longest((timeout, live.timeout))
        value = await self.acquire(concurrency=concurrency, timeout=timeout)
        if live is not None and value is live.value:
            # The user's own resource, kept as it is (acquire warned if it is too small): the
            # leases of its calls in flight still count on this record.
            live.concurrency, live.timeout = concurrency, timeout
            return
        if live is not None:
            self._retired = (*self._retired, live)
        self._live = _Resource(value, concurrency, timeout, asyncio.get_running_loop())

    async def _release_drained(self) -> None:
        drained = [resource for resource in self._retired if not resource.in_flight]
        self._retired = tuple(resource for resource in self._retired if resource.in_flight)
        await self._release_all(drained)

    async def _release_all(self, resources: list[_Resource[R]]) -> None:
        async with contextlib.AsyncExitStack() as stack:  # every one, even if one fails
            for resource in resources:
                stack.push_async_callback(self.release, resource.value)


def _longer(timeout: float | None, than: float | None) -> bool:
    """Whether attempts of ``timeout`` can last longer than ones of ``than`` (None: unbounded)."""
    if than is None:
        return False
    return timeout is None or timeout > than


def _longest(timeouts: Iterable[float | None]) -> float | None:
    longest: float | None = 0.0
    for timeout in timeouts:
        if _longer(timeout, longest):
            longest = timeout
    return longest


def _without_one_of(needs: tuple[_Need, ...], closer: object) -> tuple[_Need, ...]:
    """The needs once the fan-out closing in task ``closer`` is gone.

    The engine opens and closes in the same task, so its need is found. A close from another
    task (a user's own ``open()``/``close()`` pair) drops the smallest need: what stays then
    overestimates, which costs a larger pool, never a lowered cap.
    """
    mine = [i for i, need in enumerate(needs) if need.opener is closer]
    index = mine[-1] if mine else min(range(len(needs)), key=lambda i: needs[i].concurrency)
    return needs[:index] + needs[index + 1 :]
