"""Fan-out targets: each makes one call (one batch for SQS) and translates what comes back.

The engine owns concurrency, timeouts, retries and aggregation; a target knows nothing of them.
The SDKs (aioboto3, aiohttp) are imported when a target is opened, so importing this module
needs only the core.
"""

from __future__ import annotations

from .._public import show_public_path
from .._target import Batching, Target
from ._reply_router import ReplyStats
from ._shared import SharedTarget
from .http import HttpTarget
from .lambda_ import LambdaTarget
from .sqs import SqsTarget

__all__ = [
    "Batching",
    "HttpTarget",
    "LambdaTarget",
    "ReplyStats",
    "SharedTarget",
    "SqsTarget",
    "Target",
]


def _shown_higher_up(name: str) -> bool:
    """Whether ``name`` already shows a parent package (``aiofanout``), a shorter public path."""
    return __name__.startswith(f"{globals()[name].__module__}.")


# Each object shows the shortest public path it is imported from: the names the top-level package
# also exports (Batching, HttpTarget, LambdaTarget, SqsTarget, Target) show `aiofanout`, set by
# the package after it imports this module; the rest (ReplyStats, SharedTarget) show
# `aiofanout.targets`.
# A name already shown higher up is left alone, so the result does not hang on import order.
show_public_path(__name__, [n for n in __all__ if not _shown_higher_up(n)], globals())
