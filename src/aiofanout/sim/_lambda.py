"""Simulated Lambda: an account's concurrency, functions, their environments and the 429s.

The rules, as AWS documents them (each cited where it is applied):

- Concurrency is the number of requests being served at once; each needs an execution
  environment of its own. An account has 1,000 by default; a function with reserved concurrency
  R serves at most R and takes R from the account's pool (PutFunctionConcurrency keeps at least
  100 unreserved). https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html
- Scaling: "every 10 seconds, Lambda can allocate at most 1,000 additional execution
  environment instances to each of your functions", refilled "continuously over time", and
  unused scaling does not accrue: a bucket of 1,000 refilled at 100 a second, per function.
  https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html
- Request rate: "each instance of your execution environment can serve up to 10 requests per
  second", so invoke requests are limited to 10x the concurrency quota (the account's, and a
  reserved function's own). https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
- A throttle is 429 ``TooManyRequestsException`` with a ``Reason``:
  ``ReservedFunctionConcurrentInvocationLimitExceeded``, ``ConcurrentInvocationLimitExceeded``,
  ``ReservedFunctionInvocationRateLimitExceeded``, ``CallerRateLimitExceeded``
  (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html). AWS documents no reason of
  its own for the scaling rate; a request that finds no environment and no room to make one is
  answered as a concurrency throttle (``ConcurrentInvocationLimitExceeded``).
- A new environment runs its init (the cold start) before the request; a finished one stays warm
  and serves the next request without it. Warm environments are not reclaimed here (AWS keeps
  idle ones for minutes; a simulation is shorter or busy).
- A run longer than the function's timeout is stopped at the timeout and answered as an
  ``Unhandled`` function error ("Task timed out after N seconds"), billed for the timeout.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import UsageError
from ._durations import Duration, Fixed, duration_of
from ._timeline import Timeline

__all__ = ["Account", "Function", "FunctionStats", "Throttle"]

Architecture = Literal["x86_64", "arm64"]

SCALING_BURST = 1_000  # environments a function may add at once
SCALING_REFILL = 100.0  # per second: 1,000 per 10 s, refilled continuously
REQUESTS_PER_ENVIRONMENT = 10  # per second: the invoke request rate is 10x the concurrency
MIN_UNRESERVED = 100  # PutFunctionConcurrency leaves at least this much unreserved
DEFAULT_ACCOUNT_CONCURRENCY = 1_000

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
RESERVED_RATE = "ReservedFunctionInvocationRateLimitExceeded"
ACCOUNT_RATE = "CallerRateLimitExceeded"


class Throttle(Exception):
    """A request Lambda answers 429 (internal: the client raises botocore's ``ClientError``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RateWindow:
    """Requests counted per whole second of the clock, against a limit per second."""

    __slots__ = ("count", "second")

    def __init__(self) -> None:
        self.second = -1
        self.count = 0

    def take(self, now: float, limit: int) -> bool:
        second = int(now)
        if second != self.second:
            self.second, self.count = second, 0
        if self.count >= limit:
            return False
        self.count += 1
        return True


class Account:
    """An account's Lambda concurrency: the quota, what is reserved, and the unreserved pool."""

    def __init__(
        self,
        concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
        *,
        request_rate: bool = True,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise UsageError(f"account concurrency must be an int >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.reserved = 0  # the sum of the functions' reserved concurrency
        self.unreserved_busy = 0  # requests in flight on functions without reserved concurrency
        self.busy = 0  # every request in flight
        self.request_rate = request_rate
        self.requests = _RateWindow()
        loop = asyncio._get_running_loop()  # made outside a loop: the first request starts it
        self.timeline = Timeline(loop.time() if loop is not None else None)

    @property
    def unreserved(self) -> int:
        """The pool the functions without reserved concurrency share."""
        return self.concurrency - self.reserved

    def reserve(self, before: int | None, after: int | None) -> None:
        """Move a function's reservation from ``before`` to ``after`` (``None``: none)."""
        reserved = self.reserved - (before or 0) + (after or 0)
        if after is not None and self.concurrency - reserved < min(
            MIN_UNRESERVED, self.concurrency
        ):
            raise UsageError(
                f"reserving {after} leaves {self.concurrency - reserved} of the account's "
                f"{self.concurrency} unreserved; Lambda keeps at least {MIN_UNRESERVED} "
                "(raise the account concurrency)"
            )
        self.reserved = reserved


@dataclass(slots=True)
class FunctionStats:
    """What one simulated function did: requests, 429s by reason, cold starts, billed time."""

    invocations: int = 0
    cold_starts: int = 0
    errors: int = 0
    timeouts: int = 0
    billed_seconds: float = 0.0  # summed over requests, init included, rounded up to 1 ms
    peak_concurrency: int = 0
    throttles: Counter[str] = field(default_factory=Counter)  # by Reason


class Function:
    """A simulated function: its settings, its environments, and the admission of a request.

    Made by :meth:`aiofanout.sim.SimulatedAws.function`; read its :attr:`stats`.
    """

    def __init__(
        self,
        name: str,
        account: Account,
        rng: random.Random,
        *,
        duration: Duration | float,
        cold_start: Duration | float,
        reserved_concurrency: int | None,
        memory: int,
        architecture: Architecture,
        timeout: float,
        failure_rate: float,
        handler: Any,
    ) -> None:
        _check_settings(memory, architecture, timeout, failure_rate)
        self.name, self.account, self.rng = name, account, rng
        self.duration = duration_of(duration)
        self.cold_start = duration_of(cold_start, "cold_start")
        self.memory, self.architecture, self.timeout = memory, architecture, float(timeout)
        self.failure_rate, self.handler = failure_rate, handler
        self.busy = 0
        self.idle = 0  # warm environments waiting for a request
        self.reserved_concurrency: int | None = None
        self.set_reserved_concurrency(reserved_concurrency)
        self.tokens = float(SCALING_BURST)  # new environments allowed now
        self.refilled_at = 0.0
        self.requests = _RateWindow()
        self.stats = FunctionStats()

    def __repr__(self) -> str:
        return (
            f"<simulated function {self.name!r}: {self.busy} busy, {self.idle} warm, "
            f"reserved {self.reserved_concurrency}>"
        )

    @property
    def environments(self) -> int:
        """Execution environments alive: busy or warm."""
        return self.busy + self.idle

    def set_reserved_concurrency(self, reserved: int | None) -> None:
        """PutFunctionConcurrency (``None``: DeleteFunctionConcurrency).

        Lowering it throttles new requests at once; the ones running finish, idle environments
        above the new number go now and busy ones as they come free.
        """
        if reserved is not None and (
            isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0
        ):
            raise UsageError(f"reserved concurrency must be an int >= 0, got {reserved!r}")
        self.account.reserve(self.reserved_concurrency, reserved)
        self.reserved_concurrency = reserved
        if reserved is not None:  # idle environments above it go now
            self.idle = min(self.idle, max(0, reserved - self.busy))

    # -- one request ----------------------------------------------------------------------------

    def take_event_request(self, now: float) -> None:
        """Count an ``Event`` invoke at ``now`` against the account's invoke request rate.

        Raises :class:`Throttle` (``CallerRateLimitExceeded``) past 10 requests per second per
        unit of the account's concurrency: AWS's quota for asynchronous invokes is the
        account's, not the function's (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
        """
        if self.account.request_rate:
            self._check_rate(now, None)

    def admit(self, now: float, *, rate: bool = True) -> bool:
        """Take an environment for a request at ``now``; ``True`` if it is a cold one.

        Raises :class:`Throttle` with AWS's reason when a limit says no. ``rate=False``:
        the request was counted when it was sent (an ``Event`` invoke its queue delivers).
        """
        account = self.account
        reserved = self.reserved_concurrency
        if rate and account.request_rate:
            self._check_rate(now, reserved)
        if reserved is not None:
            if self.busy >= reserved:
                raise self._throttled(now, RESERVED_LIMIT)
        elif account.unreserved_busy >= account.unreserved:
            raise self._throttled(now, ACCOUNT_LIMIT)
        cold = not self.idle
        if cold:
            if not self._may_scale(now):
                raise self._throttled(now, ACCOUNT_LIMIT)
        else:
            self.idle -= 1
        self.busy += 1
        account.busy += 1
        if reserved is None:
            account.unreserved_busy += 1
        stats = self.stats
        stats.invocations += 1
        stats.peak_concurrency = max(stats.peak_concurrency, self.busy)
        account.timeline.saw_busy(now, account.busy)
        if cold:
            stats.cold_starts += 1
        return cold

    def release(self, now: float, billed: float, *, counted_reserved: bool) -> None:
        """The request that ran ``billed`` seconds is done; its environment goes warm."""
        self.busy -= 1
        account = self.account
        account.busy -= 1
        if not counted_reserved:
            account.unreserved_busy -= 1
        reserved = self.reserved_concurrency
        if reserved is None or self.environments < reserved:
            self.idle += 1  # else: above a lowered reservation, the environment is retired
        # Billed in 1 ms steps (https://aws.amazon.com/lambda/pricing/).
        self.stats.billed_seconds += math.ceil(billed * 1000 - 1e-9) / 1000
        account.timeline.saw_busy(now, account.busy)
        account.timeline.saw_completed(now)

    def run_time(self, cold: bool) -> tuple[float, bool, bool]:
        """(seconds the environment is busy, timed out, failed) for one request."""
        seconds = self.duration.sample(self.rng)
        init = self.cold_start.sample(self.rng) if cold else 0.0
        if seconds > self.timeout:
            self.stats.timeouts += 1
            return init + self.timeout, True, True
        failed = bool(self.failure_rate) and self.rng.random() < self.failure_rate
        if failed:
            self.stats.errors += 1
        return init + seconds, False, failed

    def _check_rate(self, now: float, reserved: int | None) -> None:
        account = self.account
        if not account.requests.take(now, REQUESTS_PER_ENVIRONMENT * account.concurrency):
            raise self._throttled(now, ACCOUNT_RATE)
        if reserved is not None and not self.requests.take(
            now, REQUESTS_PER_ENVIRONMENT * reserved
        ):
            raise self._throttled(now, RESERVED_RATE)

    def _may_scale(self, now: float) -> bool:
        tokens = self.tokens + (now - self.refilled_at) * SCALING_REFILL
        self.tokens = SCALING_BURST if tokens > SCALING_BURST else tokens
        self.refilled_at = now
        if self.tokens < 1 - 1e-9:  # a float sum of refills may fall a hair short
            return False
        self.tokens -= 1
        return True

    def _throttled(self, now: float, reason: str) -> Throttle:
        self.stats.throttles[reason] += 1
        self.account.timeline.saw_throttle(now)
        return Throttle(reason)


def _check_settings(memory: int, architecture: str, timeout: float, failure_rate: float) -> None:
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html: 128 MB to 10,240 MB.
    if isinstance(memory, bool) or not isinstance(memory, int) or not 128 <= memory <= 10_240:
        raise UsageError(f"memory must be an int of MB within 128..10240, got {memory!r}")
    if architecture not in ("x86_64", "arm64"):
        raise UsageError(f"architecture must be 'x86_64' or 'arm64', got {architecture!r}")
    if not 0 < timeout <= 900:
        raise UsageError(f"timeout must be within 0..900 seconds, got {timeout!r}")
    if not 0 <= failure_rate <= 1:
        raise UsageError(f"failure_rate must be within 0..1, got {failure_rate!r}")


NO_COLD_START = Fixed(0.0)
