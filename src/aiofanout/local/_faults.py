"""Fault injection: what a function's :class:`Faults` inject into one invocation.

The dice are rolled in one place, :meth:`Faults.draw`, once per invocation and before it runs:
the runtime then acts on the :class:`Injection` at the points where each fault happens (a
throttle before anything runs, latency before the hand-over, an error instead of running, a
hang or a crash when the environment answers). Drawing everything up front keeps a seeded
sequence independent of how concurrent invocations interleave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .._errors import UsageError

_FRACTIONS = ("throttle", "error", "crash", "hang")


@dataclass(frozen=True, slots=True)
class Injection:
    """What is injected into one invocation (nothing, by default)."""

    throttle: bool = False
    error: bool = False
    crash: bool = False
    hang: bool = False
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected into a local function's invocations (each a fraction from 0 to 1).

    Attributes:
        throttle: answered 429 ``TooManyRequestsException`` before anything runs.
        error: fail with an injected function error (``InjectedFault``) instead of running.
        crash: the execution environment is killed while it runs the invocation.
        hang: the invocation never answers: it times out and its environment is replaced.
        latency: seconds added before each invocation is handed to an environment.
        seed: makes the draws repeatable.

    Example::

        FunctionConfig("worker", "worker.lambda_handler", faults=Faults(throttle=0.1, crash=0.01))

    """

    throttle: float = 0.0
    error: float = 0.0
    crash: float = 0.0
    hang: float = 0.0
    latency: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _FRACTIONS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"Faults({name}=...) is a fraction from 0 to 1, got {value!r}")
        if self.latency < 0:
            raise UsageError(f"Faults(latency=...) must be >= 0 seconds, got {self.latency!r}")

    def dice(self) -> random.Random:
        """A random source for one function's draws (seeded with ``seed``)."""
        return random.Random(self.seed)

    def draw(self, dice: random.Random) -> Injection:
        """Roll the dice for one invocation: which faults it gets.

        Each fault with a fraction above 0 is rolled on every draw, in a fixed order, so a
        seeded ``dice`` gives the same sequence whatever the runtime then does with it.
        """
        hit = {name: self._roll(dice, getattr(self, name)) for name in _FRACTIONS}
        return Injection(latency=self.latency, **hit)

    @staticmethod
    def _roll(dice: random.Random, fraction: float) -> bool:
        return bool(fraction) and dice.random() < fraction
