"""One invocation on its way through the runtime, how it ended, and the signature of ``invoke``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..._wire import lambda_error_body
from .._faults import Injection

#: The ``Reason`` of a 429 when every environment a function may have is busy.
CONCURRENCY_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
#: The ``Reason`` of a 429 when the account's unreserved concurrency is all in use.
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"


@dataclass(slots=True)
class Invocation:
    """One invoke on its way through an environment.

    ``faults`` are the injected ones, drawn before it runs; the Runtime API acts on its crash
    or hang at the point it strikes (before, during or after the handler).
    """

    request_id: str
    payload: bytes
    timeout: float
    result: asyncio.Future[Result]
    #: Done when the environment's ``/next`` poll took it (a future, not an Event: the runtime
    #: waits for this or the result with one callback each, no task per invocation).
    delivered: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    faults: Injection = field(default_factory=Injection)

    def mark_delivered(self) -> None:
        """The environment took it: its init phase is over, its timeout counts from now."""
        if not self.delivered.done():
            self.delivered.set_result(None)

    @property
    def deadline_ms(self) -> int:
        """Epoch ms when the function must be done, counted from the delivery (now)."""
        return int((time.time() + self.timeout) * 1000)


@dataclass(frozen=True, slots=True)
class Result:
    """How an invocation ended: the response body, or a function error."""

    body: bytes
    error_type: str | None = None

    @classmethod
    def error(cls, error_type: str, message: str, request_id: str = "") -> Result:
        """A function error the runtime itself reports (timeout, crash, init, injected)."""
        return cls(lambda_error_body(error_type, message, request_id), error_type)


class Throttle(Exception):
    """Internal: no capacity for this invoke (answered 429; never leaves the runtime)."""


class Invoke(Protocol):
    """What runs an invocation to its end: :meth:`LocalLambda.invoke`."""

    async def __call__(
        self, name: str, payload: bytes, *, request_id: str | None = None, wait: bool = False
    ) -> Result: ...
