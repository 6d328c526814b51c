"""aiofanout: fan work out from asyncio and gather it back in.

To in-process coroutines and threads, AWS Lambda, SQS and HTTP, under a hard concurrency cap,
per-attempt timeouts, an overall deadline, retries and a rate, with one ordered result::

    import aiofanout

    result = await aiofanout.dispatch_many(fetch, urls, concurrency=50, timeout=10)
    result.raise_for_failures()
"""

from __future__ import annotations

from ._engine import FanoutOptions, OutcomeStream, dispatch_many, resume, stream
from ._errors import (
    AccessDenied,
    AmbiguousError,
    BadSignature,
    ClaimRefused,
    ConnectError,
    DepthExceeded,
    EnvelopeError,
    Expired,
    FanoutError,
    FanoutFailed,
    IdempotencyKeyReused,
    InProgress,
    InvalidArguments,
    InvalidEnvelope,
    JournalError,
    NotFound,
    PayloadTooLarge,
    RecordedError,
    RequestRejected,
    ServerError,
    ServiceError,
    TaskFailed,
    TaskTimedOut,
    Throttled,
    TransportError,
    UnknownTask,
    UsageError,
)
from ._journal import FileJournal, S3Journal
from ._limits import Limits
from ._options import Deadline
from ._outcome import Latency, Limit, Outcome, Progress, Status, StopReason
from ._public import show_public_path
from ._result import FanoutResult
from ._retry import Retry
from ._target import Batching, Target
from ._wire import Call, ClaimCheck
from .targets import HttpTarget, LambdaTarget, SqsTarget
from .worker import App, DynamoDBStore, Task, lambda_entrypoint

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AmbiguousError",
    "App",
    "BadSignature",
    "Batching",
    "Call",
    "ClaimCheck",
    "ClaimRefused",
    "ConnectError",
    "Deadline",
    "DepthExceeded",
    "DynamoDBStore",
    "EnvelopeError",
    "Expired",
    "FanoutError",
    "FanoutFailed",
    "FanoutOptions",
    "FanoutResult",
    "FileJournal",
    "HttpTarget",
    "IdempotencyKeyReused",
    "InProgress",
    "InvalidArguments",
    "InvalidEnvelope",
    "JournalError",
    "LambdaTarget",
    "Latency",
    "Limit",
    "Limits",
    "NotFound",
    "Outcome",
    "OutcomeStream",
    "PayloadTooLarge",
    "Progress",
    "RecordedError",
    "RequestRejected",
    "Retry",
    "S3Journal",
    "ServerError",
    "ServiceError",
    "SqsTarget",
    "Status",
    "StopReason",
    "Target",
    "Task",
    "TaskFailed",
    "TaskTimedOut",
    "Throttled",
    "TransportError",
    "UnknownTask",
    "UsageError",
    "dispatch_many",
    "lambda_entrypoint",
    "resume",
    "stream",
]

show_public_path(__name__, __all__, globals())
