"""How long a simulated call takes: fixed, uniform, lognormal, or drawn from your own samples.

Each is a frozen value with ``sample(rng)``; the simulator owns one seeded ``random.Random``, so a
run repeats exactly with the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from .._errors import UsageError

__all__ = ["Duration", "Fixed", "LogNormal", "Samples", "Uniform", "duration_of"]


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise UsageError(f"{name} must be a number of seconds >= 0, got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{name} must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always ``seconds``.

    Example::

        Fixed(0.05).sample(random.Random(0))   # 0.05
    """

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds("Fixed(seconds)", self.seconds)

    def sample(self, rng: random.Random) -> float:
        """One duration."""
        return self.seconds

    @property
    def mean(self) -> float:
        """The expected duration."""
        return self.seconds


@dataclass(frozen=True, slots=True)
class Uniform:
    """Evenly between ``low`` and ``high`` seconds.

    Example::

        Uniform(0.1, 0.3)
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_seconds("Uniform(low)", self.low)
        _check_seconds("Uniform(high)", self.high)
        if self.high < self.low:
            raise UsageError(f"Uniform needs low <= high, got {self.low} > {self.high}")

    def sample(self, rng: random.Random) -> float:
        """One duration."""
        return rng.uniform(self.low, self.high)

    @property
    def mean(self) -> float:
        """The expected duration."""
        return (self.low + self.high) / 2


@dataclass(frozen=True, slots=True)
class LogNormal:
    """A long right tail, as service latencies have: ``median`` seconds, log-spread ``sigma``.

    ``sigma=0.5`` puts the 99th percentile at about 3.2x the median.

    Example::

        LogNormal(median=0.2, sigma=0.5)
    """

    median: float
    sigma: float = 0.5

    def __post_init__(self) -> None:
        _check_seconds("LogNormal(median)", self.median)
        _check_seconds("LogNormal(sigma)", self.sigma)

    def sample(self, rng: random.Random) -> float:
        """One duration."""
        return rng.lognormvariate(math.log(self.median), self.sigma) if self.median else 0.0

    @property
    def mean(self) -> float:
        """The expected duration."""
        return self.median * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True, slots=True)
class Samples:
    """Drawn (with replacement) from durations you measured, in seconds.

    Example::

        Samples([0.041, 0.052, 0.049, 0.180])
    """

    seconds: Sequence[float]
    _values: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = tuple(self.seconds)
        if not values:
            raise UsageError("Samples needs at least one duration")
        for value in values:
            _check_seconds("Samples(seconds)", value)
        object.__setattr__(self, "_values", values)

    def sample(self, rng: random.Random) -> float:
        """One duration."""
        return rng.choice(self._values)

    @property
    def mean(self) -> float:
        """The expected duration."""
        return sum(self._values) / len(self._values)


Duration: TypeAlias = Fixed | Uniform | LogNormal | Samples


def duration_of(value: Duration | float, name: str = "duration") -> Duration:
    """``value`` as a :data:`Duration` (a number of seconds is :class:`Fixed`)."""
    if isinstance(value, Fixed | Uniform | LogNormal | Samples):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fixed(float(value))
    raise UsageError(f"{name} must be seconds or Fixed/Uniform/LogNormal/Samples, got {value!r}")
