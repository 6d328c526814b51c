"""Every error aiofanout raises or records, in one tree (the tree is in ``aiofanout._errors``).

The errors a caller catches most (``FanoutError``, ``TaskFailed``, ``Throttled``, ...) are also
importable from ``aiofanout`` itself; the rest (an envelope a worker refused, a journal that
could not be written, an idempotency key in use) live here.

Example::

    from aiofanout.errors import InProgress, TaskFailed

    try:
        value = await target.call(payload, timeout=10)
    except InProgress:
        ...  # an idempotent task's key is running elsewhere: try again later
"""

from __future__ import annotations

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
from ._public import show_public_path

__all__ = [
    "AccessDenied",
    "AmbiguousError",
    "BadSignature",
    "ClaimRefused",
    "ConnectError",
    "DepthExceeded",
    "EnvelopeError",
    "Expired",
    "FanoutError",
    "FanoutFailed",
    "IdempotencyKeyReused",
    "InProgress",
    "InvalidArguments",
    "InvalidEnvelope",
    "JournalError",
    "NotFound",
    "PayloadTooLarge",
    "RecordedError",
    "RequestRejected",
    "ServerError",
    "ServiceError",
    "TaskFailed",
    "TaskTimedOut",
    "Throttled",
    "TransportError",
    "UnknownTask",
    "UsageError",
]


def _shown_higher_up(name: str) -> bool:
    """Whether ``name`` already shows a parent package (``aiofanout``), a shorter public path."""
    return __name__.startswith(f"{globals()[name].__module__}.")


show_public_path(__name__, [n for n in __all__ if not _shown_higher_up(n)], globals())
