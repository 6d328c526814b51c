"""Concurrency that follows throttling: an in-flight limit below the cap, per throttled target.

Why this controller
-------------------

``concurrency`` is a guess at what the far end can take. A Lambda function with reserved
concurrency 8 answers the ninth call in flight with 429 at once, so a fan-out at 64 spends most of
its calls on throttles. With ``adaptive=True`` every attempt first takes a permit from a
:class:`Limiter` that holds an in-flight limit between 1 and the cap, and hands it back with what
the attempt met: a success, a throttle (:class:`Throttled`, or an HTTP 503), or anything else.

Classic AIMD halves the limit on a throttle (once per round trip) and adds one per round trip of
successes. Against a hard limit of K that saw-tooths between K/2 and K and averages about 3K/4:
a quarter of the capacity lost. This controller keeps AIMD's additive increase but measures the
decrease instead of guessing it:

- **Decrease to what the throttled call met.** Each permit remembers how many calls were in flight
  when it was taken. A throttle says those calls plus this one were too many, so the limit drops
  to at most that count, or to the calls still in flight when the throttle came back if those
  are more, and in any case by one: the refused call held a slot the far end does not have
  (never below 1). A burst of 64 against 8 slots refuses 56 calls and settles at 8 within one
  round of throttles, with no timer.

  Why not the count at sending alone: calls sent together do not arrive in the order they were
  sent. In a burst of 5,000 against an account of 1,000 (simulated, ``benchmarks/sim_scale.py``)
  the far end admits whichever 1,000 arrive first, so a call sent third may be refused; its
  count (2) dropped the limit to 2 and the fan-out crawled at a tenth of the account. The calls
  still in flight when a throttle comes back include every call the far end admitted, so the
  larger count never drops below what it holds, and one less per refused call brings the limit
  to what was admitted once the burst's refusals are back, in whatever order they come.
- **Increase by one per window of successes**, a window being ``limit`` successes (about one
  round trip at the limit), never above the cap (the sum of the caps of the fan-outs sharing the
  limiter).
- **Speed up once the capacity grew.** When a window above the level last throttled holds, the
  far end has more room than before (a fan-out beside this one finished, a reserved concurrency
  was raised, Lambda added environments): each further window then adds twice the step of the
  one before (at most a quarter of the limit), and the next throttle sets the step back to one.
  By one per window alone, a fan-out left at 40 of an account of 1,000 when its neighbours
  finished took two minutes of one-second windows to climb to 140 (simulated,
  ``benchmarks/sim_scale.py``); doubling, it is back at the account within a dozen windows.
- **Probe the level that was throttled patiently.** Stepping back up to the in-flight level last
  throttled waits for more windows, doubling (up to 8) each time that probe is throttled again,
  and back to one once a probe holds for a window. Against a fixed limit this costs one throttle
  every few round trips, yet a limit that rises is found within a few round trips.
- **Honour Retry-After.** A throttle with ``retry_after`` holds every new permit of the limiter
  (and any increase) until that time; the throttled item waits at least as long before its retry,
  as the retry policy says.

The limit belongs to what is throttled: one :class:`Limiter` per :class:`Target` instance,
created when a fan-out first uses it adaptively and kept there, so fan-outs running side by side
through one target share it and a later fan-out starts from what earlier ones learned. A plain
function is wrapped in a new target per fan-out, so it gets one per run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from ._attempts import Attempts
from ._errors import ServerError, Throttled
from ._input import Gate
from ._options import Options, clock
from ._outcome import NOT_STARTED, AdaptiveLimit, Attempt
from ._target import Target
from ._timer import AttemptTimer, Slot

MAX_PATIENCE = 8
_KEY = "_aiofanout_limiter"


def is_throttle(error: BaseException) -> bool:
    """Whether ``error`` says the far end is overloaded: a throttle or an HTTP 503."""
    return isinstance(error, Throttled) or (isinstance(error, ServerError) and error.code == "503")


class Limiter:
    """The in-flight limit of one target, shared by every adaptive fan-out through it."""

    def __init__(self) -> None:
        self.cap = 0  # the sum of the caps of the fan-outs attached now
        self.limit = 0
        self.in_flight = 0
        self.throttled = False  # ever: until then the limit follows the cap
        self.successes = 0  # since the last change of the limit
        self.ceiling: int | None = None  # the in-flight level last throttled
        self.patience = 1  # windows of successes before stepping up to the ceiling
        self.step = 1  # added by the next window: doubles while the capacity keeps growing
        self.resume_at = 0.0  # no permit before this (a retry_after)
        self.waiters: deque[asyncio.Future[int]] = deque()
        self.shares: list[Share] = []
        self._resume_handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, target: Target) -> Limiter:
        """The limiter of ``target``, made on first use and kept on the instance."""
        state = vars(target)
        limiter = state.get(_KEY)
        if not isinstance(limiter, Limiter):
            limiter = state[_KEY] = cls()
        return limiter

    # -- fan-outs joining and leaving -----------------------------------------------------------

    def attach(self, share: Share) -> None:
        """Count a fan-out of ``share.cap`` in flight in the cap."""
        self.shares.append(share)
        self.cap += share.cap
        self._set(self.cap if not self.throttled or not self.limit else min(self.limit, self.cap))

    def detach(self, share: Share) -> None:
        """Forget a fan-out that ended; the limit stays what was learned (within the cap left)."""
        self.shares.remove(share)
        self.cap -= share.cap
        if self.cap:
            self._set(min(self.limit, self.cap))
        elif self._resume_handle is not None:  # its loop may end now: wake no one later
            self._resume_handle.cancel()
            self._resume_handle = None

    # -- permits ---------------------------------------------------------------------------------

    async def acquire(self, gate: Gate) -> int | None:
        """Wait for room under the limit; return the calls in flight met (``None``: do not start).

        ``None`` when the run stopped or its deadline came while waiting.
        """
        if self.in_flight < self.limit and not self.waiters and clock() >= self.resume_at:
            met = self.in_flight
            self.in_flight += 1
            return met
        try:
            async with asyncio.timeout_at(gate.deadline):
                met = await self._wait()
        except TimeoutError:
            gate.past_deadline()
            return None
        if gate.halted:
            self.hand_back()
            return None
        return met

    async def _wait(self) -> int:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self._wake()
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.hand_back()  # handed a permit just as we gave up: pass it on
            elif waiter in self.waiters:
                self.waiters.remove(waiter)
            raise

    def release(self, met: int, error: BaseException | None, share: Share) -> None:
        """Hand a permit back with what its attempt met (``error`` ``None``: it succeeded)."""
        self.in_flight -= 1
        if error is None:
            self._succeeded()
        elif is_throttle(error):
            share.throttles += 1
            self._throttled(met, error)
        self._wake()

    def hand_back(self) -> None:
        """Return a permit that was not used: no news about the far end."""
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand permits to waiters while there is room and no retry_after holds them."""
        if clock() < self.resume_at:
            self._wake_at_resume()
            return
        while self.waiters and self.in_flight < self.limit:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self.in_flight)
                self.in_flight += 1

    def _wake_at_resume(self) -> None:
        if self.waiters and self._resume_handle is None:
            loop = asyncio.get_running_loop()
            self._resume_handle = loop.call_at(self.resume_at, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        self._wake()

    # -- the controller --------------------------------------------------------------------------

    def _succeeded(self) -> None:
        if self.limit >= self.cap or clock() < self.resume_at:
            return
        self.successes += 1
        window = self.limit
        if self.ceiling is not None and self.limit + 1 >= self.ceiling:
            window *= self.patience  # the next step reaches the level that was throttled
        if self.successes < window:
            return
        if self.ceiling is not None and self.limit >= self.ceiling:
            self.ceiling, self.patience = None, 1  # a window above it held: the capacity grew
        step = 1
        if self.ceiling is None:
            step = self.step
            self.step = min(2 * step, max(1, self.limit // 4))
        self._set(self.limit + step)

    def _throttled(self, met: int, error: BaseException) -> None:
        # The calls in flight when this one was sent, or now that its answer came (more, when
        # it arrived after calls sent later), itself included.
        met = max(met, self.in_flight)
        level = met + 1
        if self.ceiling is not None and level >= self.ceiling:
            self.patience = min(2 * self.patience, MAX_PATIENCE)  # the probe failed again
        self.ceiling = level
        self.step = 1
        self.throttled = True
        self._set(min(self.limit - 1, met))  # each refused call: one slot less, at least
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, int | float) and hint > 0:
            self.resume_at = max(self.resume_at, clock() + hint)

    def _set(self, limit: int) -> None:
        limit = max(1, min(limit, self.cap)) if self.cap else max(1, limit)
        if limit != self.limit:
            self.successes = 0
        self.limit = limit
        for share in self.shares:
            share.saw(limit)


class Share:
    """One fan-out's use of a :class:`Limiter`: its cap, and what it saw of the limit."""

    __slots__ = ("cap", "limiter", "max", "min", "throttles")

    def __init__(self, limiter: Limiter, cap: int) -> None:
        self.limiter = limiter
        self.cap = cap
        self.min = self.max = 0
        self.throttles = 0

    def __enter__(self) -> Share:
        """Join the limiter for the time the run's workers run."""
        self.limiter.attach(self)
        self.min = self.max = self.limiter.limit
        return self

    def __exit__(self, *exc: object) -> None:
        self.limiter.detach(self)

    def saw(self, limit: int) -> None:
        """Record a value the limit took while this fan-out ran."""
        self.min = min(self.min, limit) if self.min else limit
        self.max = max(self.max, limit)

    def report(self) -> AdaptiveLimit | None:
        """The limit as this fan-out saw it (``None`` before the run starts)."""
        if not self.max:
            return None
        return AdaptiveLimit(self.limiter.limit, self.min, self.max, self.throttles)


class LimitedAttempts(Attempts):
    """:class:`Attempts` that take a permit of the limiter for each attempt, retries included."""

    __slots__ = ("share",)

    def __init__(
        self, target: Target, options: Options, gate: Gate, timer: AttemptTimer, share: Share
    ) -> None:
        super().__init__(target, options, gate, timer)
        self.share = share

    async def once(self, payload: Any, slot: Slot) -> Attempt:
        share = self.share
        met = await share.limiter.acquire(self.gate)
        if met is None:
            return NOT_STARTED
        try:
            result = await super().once(payload, slot)
        except BaseException:
            share.limiter.hand_back()
            raise
        share.limiter.release(met, result[2], share)
        return result

    async def batch(self, payloads: list[Any], slot: Slot) -> list[Attempt]:
        share = self.share
        met = await share.limiter.acquire(self.gate)
        if met is None:
            return [NOT_STARTED] * len(payloads)
        try:
            results = await super().batch(payloads, slot)
        except BaseException:
            share.limiter.hand_back()
            raise
        share.limiter.release(met, _batch_signal(results), share)
        return results


def attempts_for(
    target: Target, options: Options, gate: Gate, timer: AttemptTimer
) -> tuple[Attempts, Share | None]:
    """The attempts of a run and, with ``adaptive=True``, its share of the target's limiter."""
    if not options.adaptive:
        return Attempts(target, options, gate, timer), None
    share = Share(Limiter.of(target), options.concurrency)
    return LimitedAttempts(target, options, gate, timer, share), share


def _batch_signal(results: Sequence[Attempt]) -> BaseException | None:
    """What a batch call met: a throttle of any entry, the call's own error, or ``None``.

    A call that failed as a whole gives every entry its error; one that got through is a success
    for the limit, whatever its entries met besides throttles.
    """
    errors = [error for _, _, error in results]
    throttle = next((e for e in errors if e is not None and is_throttle(e)), None)
    if throttle is not None or not errors or None in errors:
        return throttle
    return errors[0]
