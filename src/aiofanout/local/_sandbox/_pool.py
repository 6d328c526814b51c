"""The environment pool of one function: warm environments, waiting invokes, the limit.

As on Lambda: an idle (warm) environment takes the invoke; when all are busy a new one starts
(a cold start), up to the reserved concurrency; past it the invoke waits up to its patience
(``throttle_after``; 0 on AWS) for one to be released, then is throttled. Waiters are served in
order (FIFO). The pool owns its environments: it counts them from their start, hands them out,
takes them back, and hears of their first poll (their cold start) and of their end through the
callbacks each environment is given. The processes themselves are :mod:`._environments`'
business.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._invocation import CONCURRENCY_LIMIT, Throttle

if TYPE_CHECKING:
    from ._environments import Environment


class Pool:
    """The environments of one function, at most ``limit`` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.members: dict[str, Environment] = {}
        self.idle: deque[Environment] = deque()
        self.waiters: deque[asyncio.Future[Environment | None]] = deque()
        self.cold_starts: list[float] = []  # seconds, spawn to first poll, of each environment

    def enlist(self, env: Environment) -> None:
        """Count a new environment against the limit (before its process starts)."""
        self.members[env.id] = env

    def started(self, seconds: float) -> None:
        """One of its environments took its first poll, ``seconds`` after its spawn."""
        self.cold_starts.append(seconds)

    async def acquire(
        self, start: Callable[[], Awaitable[Environment]], *, patience: float | None
    ) -> Environment:
        """A warm environment, a new one (``start``), or after ``patience`` s :class:`Throttle`."""
        give_up = None if patience is None else time.monotonic() + patience
        while True:
            while self.idle:
                env = self.idle.popleft()
                if not env.dead:
                    return env
            if len(self.members) < self.limit:
                return await start()
            left = None if give_up is None else give_up - time.monotonic()
            if left is not None and left <= 0:
                raise Throttle(CONCURRENCY_LIMIT)
            handed = await self._wait(left)
            if handed is not None and not handed.dead:
                return handed

    async def _wait(self, timeout: float | None) -> Environment | None:
        """Queue for the next released environment (``None``: capacity freed, look again)."""
        waiter: asyncio.Future[Environment | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            # Handed an environment just as the timeout fired: keep it rather than lose it.
            return waiter.result() if waiter.done() and not waiter.cancelled() else None

    def release(self, env: Environment) -> None:
        """Take an environment back after an invocation: to a waiter, or to the warm ones."""
        env.current = None
        if env.dead:
            self._wake_one(None)
        elif not self._wake_one(env):
            self.idle.append(env)

    def remove(self, env: Environment) -> None:
        """Forget an environment that ended: its slot is free for a waiting invoke."""
        self.members.pop(env.id, None)
        with contextlib.suppress(ValueError):
            self.idle.remove(env)
        self._wake_one(None)  # a slot is free: a waiting invoke may start one

    def over_limit(self) -> bool:
        """Whether more environments live than the limit allows (it was lowered)."""
        return len(self.members) > self.limit

    def capacity_changed(self) -> None:
        """The limit changed: every waiting invoke looks again (and may start an environment)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self, env: Environment | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(env)
                return True
        return False
