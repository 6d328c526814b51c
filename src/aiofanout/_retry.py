"""The retry policy: how many attempts, how long to wait between them, what is worth retrying."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ._errors import UsageError

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Exponential backoff with full jitter, capped, honouring a server's retry-after hint.

    By default only errors the library marks ``retryable`` (throttling, 5xx, connection errors
    before anything was sent) and attempt timeouts are retried; a plain exception raised by your
    own code is final unless ``retry_on`` names its type.

    A throttle (:class:`~aiofanout.Throttled`) is the far end saying "later", not a failure of the
    item, so it does not spend ``attempts``: an item may be throttled up to ``throttles`` times
    on top of them, each retry backed off (up to ``cap``) and never past the deadline. So with
    default options a fan-out that outruns a function's reserved concurrency slows down and
    finishes rather than failing items. ``attempts=1`` still disables every retry.

    Attributes:
        attempts: the most attempts per item, the first included (1 disables retries).
        base: the backoff ceiling of the first retry, in seconds; it doubles each retry.
        cap: the largest backoff ceiling, in seconds.
        retry_on: extra exception types to retry.
        timeouts: whether an attempt that timed out is retried.
        throttles: how many throttled attempts an item may make beyond ``attempts`` (past
            them, a throttle spends an attempt like any retryable error).

    Example::

        result = await dispatch_many(fetch, urls, concurrency=20, timeout=5,
                                     retry=Retry(attempts=4, retry_on=(ConnectionResetError,)))

    """

    attempts: int = 3
    base: float = 0.1
    cap: float = 10.0
    retry_on: tuple[type[BaseException], ...] = field(default=())
    timeouts: bool = True
    throttles: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise UsageError(f"Retry(attempts=...) must be an int >= 1, got {self.attempts!r}")
        if not isinstance(self.throttles, int) or self.throttles < 0:
            raise UsageError(f"Retry(throttles=...) must be an int >= 0, got {self.throttles!r}")
        if self.base < 0 or self.cap < 0:
            raise UsageError(f"Retry base and cap must be >= 0, got {self.base!r}, {self.cap!r}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on
        ):
            raise UsageError("Retry(retry_on=...) must be a tuple of exception types")

    def allows(self, attempt: int, throttled: int, error: BaseException) -> bool:
        """Whether attempt ``attempt`` may be followed by another, ``throttled`` of them throttled.

        ``throttled`` counts the throttled attempts so far, ``error``'s included.
        """
        if self.attempts == 1 or not self.is_retryable(error):
            return False
        free = min(throttled, self.throttles)  # throttles past the budget spend attempts
        return attempt - free < self.attempts

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt under this policy (attempt count aside)."""
        if isinstance(error, TimeoutError):
            return self.timeouts
        if self.retry_on and isinstance(error, self.retry_on):
            return True
        return bool(getattr(error, "retryable", False))

    def backoff(self, retry_number: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** (retry_number - 1))
        delay = random.uniform(0.0, ceiling)
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, int | float) and hint > delay:
            return float(hint)
        return delay
