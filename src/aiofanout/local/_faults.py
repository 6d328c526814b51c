"""Fault injection: what a function's :class:`Faults` inject into one invocation.

The dice are rolled in one place, :meth:`Faults.draw`, once per invocation and before it runs:
the runtime then acts on the :class:`Injection` at the points where each fault happens (a
throttle before anything runs, latency before the hand-over, an error instead of running, a
hang or a crash at its point: ``before``, ``during`` or ``after`` the handler). Drawing
everything up front keeps a seeded sequence independent of how concurrent invocations
interleave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from .._errors import UsageError

#: Where a crash or a hang strikes, relative to the handler (see :class:`Faults`).
Point = Literal["before", "during", "after"]
#: The faults that strike at a point.
Strike = Literal["crash", "hang"]

_FRACTIONS = ("throttle", "error", "crash", "hang")
_POINTS: tuple[Point, ...] = get_args(Point)
#: A fault ``during`` the handler strikes this far into the function's timeout (a fraction,
#: drawn uniformly). The floor gives the handler time to start, the ceiling keeps a crash a
#: crash rather than a timeout.
_DURING = (0.1, 0.9)


@dataclass(frozen=True, slots=True)
class Injection:
    """What is injected into one invocation (nothing, by default).

    ``strike`` is when a fault ``during`` the handler strikes: a fraction of the function's
    timeout, counted from the delivery.
    """

    throttle: bool = False
    error: bool = False
    crash: bool = False
    hang: bool = False
    latency: float = 0.0
    crash_at: Point = "after"
    hang_at: Point = "after"
    strike: float = 0.0

    def failure(self) -> tuple[Strike, Point] | None:
        """The crash or hang this invocation gets, and where; ``None`` if neither.

        If both were drawn, the one that strikes first wins; at the same point, the hang
        (nothing answers, so the crash never comes).
        """
        drawn: list[tuple[Strike, Point]] = []
        if self.hang:
            drawn.append(("hang", self.hang_at))
        if self.crash:
            drawn.append(("crash", self.crash_at))
        return min(drawn, key=lambda fault: _POINTS.index(fault[1]), default=None)


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected into a local function's invocations (each a fraction from 0 to 1).

    Attributes:
        throttle: answered 429 ``TooManyRequestsException`` before anything runs.
        error: fail with an injected function error (``InjectedFault``) instead of running.
        crash: the execution environment is killed: the invoke fails with
            ``Runtime.ExitError`` and the environment is replaced.
        hang: the invocation never answers: it times out (``Sandbox.Timedout``) and its
            environment is replaced.
        crash_at, hang_at: where the crash or the hang strikes: ``"before"`` the handler runs
            (the environment took the invocation, the handler never got it: nothing ran),
            ``"during"`` the handler (at a random point between 10% and 90% of the function's
            timeout after the delivery: the handler started and has not answered; one that
            answers sooner loses its answer as with ``"after"``), or ``"after"`` it (the
            default: the handler ran to its end, its answer is lost).
        latency: seconds added before each invocation is handed to an environment.
        seed: makes the draws repeatable.

    Example::

        FunctionConfig("worker", "worker.lambda_handler",
                       faults=Faults(throttle=0.1, crash=0.01, crash_at="during"))

    """

    throttle: float = 0.0
    error: float = 0.0
    crash: float = 0.0
    hang: float = 0.0
    latency: float = 0.0
    seed: int | None = None
    crash_at: Point = "after"
    hang_at: Point = "after"

    def __post_init__(self) -> None:
        for name in _FRACTIONS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"Faults({name}=...) is a fraction from 0 to 1, got {value!r}")
        if self.latency < 0:
            raise UsageError(f"Faults(latency=...) must be >= 0 seconds, got {self.latency!r}")
        for name in ("crash_at", "hang_at"):
            if getattr(self, name) not in _POINTS:
                raise UsageError(
                    f"Faults({name}=...) is one of {', '.join(map(repr, _POINTS))}, "
                    f"got {getattr(self, name)!r}"
                )

    def dice(self) -> random.Random:
        """A random source for one function's draws (seeded with ``seed``)."""
        return random.Random(self.seed)

    def draw(self, dice: random.Random) -> Injection:
        """Roll the dice for one invocation: which faults it gets.

        Each fault with a fraction above 0 is rolled on every draw, in a fixed order, then the
        strike point if a fault may strike ``during`` the handler, so a seeded ``dice`` gives
        the same sequence whatever the runtime then does with it.
        """
        hit = {name: self._roll(dice, getattr(self, name)) for name in _FRACTIONS}
        strike = dice.uniform(*_DURING) if self._strikes_during() else 0.0
        return Injection(
            latency=self.latency,
            crash_at=self.crash_at,
            hang_at=self.hang_at,
            strike=strike,
            **hit,
        )

    def _strikes_during(self) -> bool:
        return bool(self.crash and self.crash_at == "during") or bool(
            self.hang and self.hang_at == "during"
        )

    @staticmethod
    def _roll(dice: random.Random, fraction: float) -> bool:
        return bool(fraction) and dice.random() < fraction
