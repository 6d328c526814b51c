"""What a simulated run would cost on AWS: requests, GB-seconds by architecture, SQS requests.

The default prices are AWS's list prices in us-east-1 (read 2026-12, before free tiers):
https://aws.amazon.com/lambda/pricing/ and https://aws.amazon.com/sqs/pricing/. Pass your own
:class:`Prices` (or ``plan --price-...``) for another Region or a negotiated rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Cost", "Prices"]

LAMBDA_REQUEST = 0.20 / 1_000_000
GB_SECOND_X86_64 = 0.0000166667
GB_SECOND_ARM64 = 0.0000133334
SQS_REQUEST = 0.40 / 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    """USD prices: per Lambda request, per GB-second (x86_64, arm64), per SQS request.

    Lambda bills each request's duration, rounded up to 1 ms, times its memory; since August
    2025 the init phase (a cold start) is billed too, and the simulator counts it.

    Example::

        Prices(gb_second_x86_64=0.0000166667 * 0.9)   # a 10% discount on duration
    """

    lambda_request: float = LAMBDA_REQUEST
    gb_second_x86_64: float = GB_SECOND_X86_64
    gb_second_arm64: float = GB_SECOND_ARM64
    sqs_request: float = SQS_REQUEST

    def gb_second(self, architecture: str) -> float:
        """The price of a GB-second on ``architecture``."""
        return self.gb_second_arm64 if architecture == "arm64" else self.gb_second_x86_64

    def as_dict(self) -> dict[str, float]:
        """The prices by name (what ``plan --json`` prints under ``prices``)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Cost:
    """A run's cost in USD, by part.

    Example::

        cost = aws.cost()
        print(f"${cost.total:.2f}, of which ${cost.duration:.2f} duration")
    """

    requests: float
    duration: float
    sqs: float

    @property
    def total(self) -> float:
        """Everything together."""
        return self.requests + self.duration + self.sqs

    def as_dict(self) -> dict[str, Any]:
        """The parts and the total."""
        return {**asdict(self), "total": self.total}
