"""Fan-out targets: each makes one call (one batch for SQS) and translates what comes back.

The engine owns concurrency, timeouts, retries and aggregation; a target knows nothing of them.
The SDKs (aioboto3, aiohttp) are imported when a target is opened, so importing this module
needs only the core.
"""

from __future__ import annotations

from .._target import Batching, SharedTarget, Target
from .http import HttpTarget
from .lambda_ import LambdaTarget
from .sqs import SqsTarget

__all__ = ["Batching", "HttpTarget", "LambdaTarget", "SharedTarget", "SqsTarget", "Target"]
