"""aiofanout: fan work out from asyncio and gather it back in.

To in-process coroutines and threads, AWS Lambda, SQS and HTTP, under a hard concurrency cap,
per-attempt timeouts, an overall deadline, retries and a rate, with one ordered result::

    import aiofanout

    result = await aiofanout.dispatch_many(fetch, urls, concurrency=50, timeout=10)
    result.raise_for_failures()
    page = await aiofanout.dispatch(fetch, url, timeout=10)   # one item: its value, or raise

Code without a loop (a Django view, a script) calls :mod:`aiofanout.sync`.

This module holds what someone fanning work out imports. The worker's names are in
:mod:`aiofanout.worker`, a target author's in :mod:`aiofanout.targets`, every error in
:mod:`aiofanout.errors`, durable runs in :mod:`aiofanout.durable`, the wire format in
:mod:`aiofanout.wire`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._dispatch import dispatch
from ._engine import FanoutOptions, OutcomeStream, dispatch_many, resume, stream
from ._errors import (
    AmbiguousError,
    FanoutError,
    FanoutFailed,
    PayloadTooLarge,
    ServiceError,
    TaskFailed,
    TaskTimedOut,
    Throttled,
    TransportError,
    UsageError,
)
from ._journal import FileJournal, S3Journal
from ._limits import PayloadLimits
from ._options import Deadline
from ._outcome import AdaptiveLimit, Latency, Outcome, Progress, Status, StopReason
from ._public import show_public_path
from ._result import FanoutResult
from ._retry import Retry
from ._wire import Call, ClaimCheck
from .targets import HttpTarget, LambdaTarget, SnsTarget, SqsTarget

__version__ = "0.1.0"

__all__ = [
    "AdaptiveLimit",
    "AmbiguousError",
    "Call",
    "ClaimCheck",
    "Deadline",
    "FanoutError",
    "FanoutFailed",
    "FanoutOptions",
    "FanoutResult",
    "FileJournal",
    "HttpTarget",
    "LambdaTarget",
    "Latency",
    "Outcome",
    "OutcomeStream",
    "PayloadLimits",
    "PayloadTooLarge",
    "Progress",
    "Retry",
    "S3Journal",
    "ServiceError",
    "SnsTarget",
    "SqsTarget",
    "Status",
    "StopReason",
    "TaskFailed",
    "TaskTimedOut",
    "Throttled",
    "TransportError",
    "UsageError",
    "dispatch",
    "dispatch_many",
    "resume",
    "stream",
]

show_public_path(__name__, __all__, globals())

#: Names this module held until 0.1, and the module that holds them now. They still work here,
#: with a ``DeprecationWarning``, for one release; so do the old names in ``RENAMED``.
MOVED: dict[str, str] = {
    **dict.fromkeys(
        [
            "AccessDenied", "BadSignature", "ClaimRefused", "ConnectError", "DepthExceeded",
            "EnvelopeError", "Expired", "IdempotencyKeyReused", "InProgress",
            "InvalidArguments", "InvalidEnvelope", "JournalError", "NotFound", "RecordedError",
            "RequestRejected", "ServerError", "UnknownTask",
        ],
        "aiofanout.errors",
    ),
    **dict.fromkeys(["App", "DynamoDBStore", "Task", "lambda_entrypoint"], "aiofanout.worker"),
    **dict.fromkeys(["Batching", "Target"], "aiofanout.targets"),
}  # fmt: skip
#: Names this module renamed: the old name, the new one.
RENAMED = {"Limit": "AdaptiveLimit", "Limits": "PayloadLimits"}


def __getattr__(name: str) -> Any:
    """A name that moved: the object from its new home, with a ``DeprecationWarning``."""
    if name in RENAMED:
        module, new_name = "aiofanout", RENAMED[name]
    elif name in MOVED:
        module, new_name = MOVED[name], name
    else:
        raise AttributeError(f"module 'aiofanout' has no attribute {name!r}")
    warnings.warn(
        f"aiofanout.{name} is now {module}.{new_name}: import it from there "
        "(the old name goes in the next release)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), new_name)


from . import errors as errors  # noqa: E402  (after the top level shows its own names)
from . import sync as sync  # noqa: E402
