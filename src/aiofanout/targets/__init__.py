"""Fan-out targets: each makes one call (one batch for SQS) and translates what comes back.

The engine owns concurrency, timeouts, retries and aggregation; a target knows nothing of them.
The SDKs (aioboto3, aiohttp) are imported when a target is opened, so importing this module
needs only the core.
"""

from __future__ import annotations

from .._public import show_public_path
from .._target import Batching, Sent, Target
from ._reply_router import ReplyStats
from ._shared import SharedTarget
from .http import HttpTarget
from .lambda_ import LambdaTarget
from .sns import SnsTarget
from .sqs import SqsTarget

__all__ = [
    "Batching",
    "HttpTarget",
    "LambdaTarget",
    "ReplyStats",
    "Sent",
    "SharedTarget",
    "SnsTarget",
    "SqsTarget",
    "Target",
]


show_public_path(__name__, __all__, globals(), unless_shown_higher_up=True)
