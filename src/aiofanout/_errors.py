"""Every error aiofanout raises or records, in one tree.

Errors a target or a worker can produce carry two facts the engine's retry policy reads:
``retryable`` (is it safe and useful to try again?) and ``retry_after`` (a hint, in seconds).

The tree::

    FanoutError                    base of everything below
    ├── TransportError             the call could not be completed (retryable)
    │   ├── ConnectError           nothing was sent: refused, DNS, pool closed (retryable)
    │   └── AmbiguousError         sent, no answer: it may have run (not retryable by default)
    ├── ServiceError               the service answered with an error
    │   ├── Throttled              429, TooManyRequests (retryable, honours retry_after)
    │   ├── ServerError            5xx from the service (retryable)
    │   ├── NotFound               function, queue or endpoint does not exist
    │   ├── AccessDenied           credentials or permissions
    │   └── RequestRejected        any other 4xx: the request itself is wrong
    ├── PayloadTooLarge            over a configured limit; nothing was sent
    ├── TaskFailed                 the task ran and raised (remote ``type`` and ``message``)
    ├── TaskTimedOut (TimeoutError) the worker stopped the task when its time ran out
    ├── InProgress                 an idempotent task's key is running elsewhere now (retryable)
    ├── IdempotencyKeyReused       an idempotent task's key came again with other arguments
    ├── InitFailed                 an ``@app.on_init`` hook raised: the environment's init failed
    ├── JournalError               a run's journal could not be written or read
    ├── RecordedError              an item's error read back from a journal (type name, message)
    └── EnvelopeError              a message a worker must refuse: it never runs
        ├── InvalidEnvelope        not JSON, unknown version or fields, wrong shape
        ├── BadSignature           unsigned or wrongly signed while a secret is configured
        ├── ClaimRefused           the S3 object a claim names is gone or not the one signed for
        ├── UnknownTask            names no registered task (nothing is ever imported)
        ├── InvalidArguments       arguments do not fit the task's signature
        ├── Expired                its deadline passed before it ran: the caller stopped waiting
        └── DepthExceeded          a dispatch from inside tasks went past the depth budget

    FanoutFailed (ExceptionGroup)  from ``raise_for_failures()``; carries ``outcomes``

    UsageError (ValueError)        the library was called wrongly; fix the call, do not retry

A timeout of one attempt is recorded as the builtin :class:`TimeoutError`.
Errors from botocore and aiohttp never leak: targets translate them into this tree, chained with
``from`` so the original stays in ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._outcome import Outcome

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
    "InitFailed",
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


class FanoutError(Exception):
    """Base class of the errors aiofanout raises or records in an outcome."""

    #: Whether the engine's default retry policy may try the item again.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        #: A server's hint of how long to wait before the next attempt, in seconds.
        self.retry_after = retry_after
        #: The service's own error code (``TooManyRequestsException``, ``QueueDoesNotExist``).
        self.code = code


class InitFailed(FanoutError):
    """An ``@app.on_init`` hook raised, so the execution environment's init failed.

    Nothing of the event ran. Lambda reports it as ``Runtime.InitError``; the hooks run again
    before the next envelope (on AWS and locally, in a new environment).

    Example::

        try:
            await app.handle(event, context)
        except InitFailed as exc:
            print(exc.hook, exc.__cause__)   # which hook, and what it raised
    """

    def __init__(self, message: str, *, hook: str) -> None:
        super().__init__(message)
        #: The qualified name of the hook that raised.
        self.hook = hook


class JournalError(FanoutError):
    """A run's journal could not be written or read (see ``aiofanout.durable``).

    Items whose terminal states were not written are not lost: they are not in the journal,
    so ``resume`` runs them again.
    """


class RecordedError(FanoutError):
    """An item's error read back from a journal: the original type's name and its message.

    Example::

        async for outcome in journal.results(run_id):
            if not outcome.ok:
                print(outcome.index, outcome.error.type_name, outcome.error)
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        #: The name of the error's class when it was recorded (``TaskFailed``, ``TimeoutError``).
        self.type_name = type_name


class TransportError(FanoutError):
    """The call could not be completed at the transport level."""

    retryable = True


class ConnectError(TransportError):
    """Nothing was sent: the connection was refused or could not be opened. Safe to retry."""


class AmbiguousError(TransportError):
    """The request was sent but no answer came back: the work may have run.

    Not retried unless the target was created with ``retry_ambiguous=True``.
    """

    retryable = False


class ServiceError(FanoutError):
    """The remote service answered with an error."""


class Throttled(ServiceError):
    """The service asked us to slow down (HTTP 429, throttling). Retried after ``retry_after``.

    ``reason`` is Lambda's ``Reason`` for a 429 when it gives one: which limit was hit, for
    example ``ReservedFunctionConcurrentInvocationLimitExceeded`` (the function's reserved
    concurrency: raise it, or lower the fan-out's cap) or ``ConcurrentInvocationLimitExceeded``
    (the account's). ``None`` when the service names none.

    Example::

        for outcome in result.failures():
            if isinstance(outcome.error, Throttled):
                print(outcome.error.reason, outcome.error.retry_after)
    """

    retryable = True

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        #: Which limit the service says was hit (Lambda's ``Reason``), if it says.
        self.reason = reason


class ServerError(ServiceError):
    """The service failed on its side (HTTP 5xx). Retried."""

    retryable = True


class NotFound(ServiceError):
    """The function, queue or endpoint does not exist: check the name and the region or endpoint."""


class AccessDenied(ServiceError):
    """The credentials are missing or lack a permission the call needs."""


class RequestRejected(ServiceError):
    """The service refused the request as malformed (a 4xx other than the ones above)."""


class PayloadTooLarge(FanoutError):
    """An item's encoded payload is over the configured limit; it was never sent.

    Raise the limit through :class:`aiofanout.PayloadLimits` if AWS has raised it, or pass a smaller
    payload (for example a reference to an S3 object).
    """


class TaskFailed(FanoutError):
    """The task ran and raised. ``remote_type`` and ``message`` describe the remote exception."""

    def __init__(
        self,
        message: str,
        *,
        remote_type: str = "Exception",
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after, code=code)
        #: The exception type raised at the far end (``ValueError``, ``Runtime.ExitError``).
        self.remote_type = remote_type

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.message}"


class TaskTimedOut(FanoutError, TimeoutError):
    """The worker stopped the task because its time ran out (its timeout or its sender's deadline).

    A :class:`TimeoutError` too, so an attempt it ends is ``TIMED_OUT`` whichever side noticed
    first: the sender's own timer, or the worker, which stops a task a little before the deadline
    it was handed and says so in its reply.
    """


class InProgress(FanoutError):
    """Another delivery of this idempotent task (same key) is running now; this one did not run.

    Retryable: by the time a retry comes, the first run has either finished (the retry gets its
    stored reply) or passed its deadline (the retry takes the key over and runs the task). An
    SQS record reports it in ``batchItemFailures``, so the queue delivers it again; a sender
    catches it as ``InProgress`` too, retryable.
    """

    retryable = True


class IdempotencyKeyReused(FanoutError):
    """An idempotent task's key was first used with other arguments; this call did not run.

    The message names the arguments that differ (never their values). Not retryable: the same
    call gets the same answer. Send the arguments the key was first used with, or give the call
    a key of its own. A sender catches it as ``IdempotencyKeyReused``.

    Example::

        result = await dispatch_many(charge, orders, concurrency=8)
        reused = [o for o in result.failures() if isinstance(o.error, IdempotencyKeyReused)]
    """


class EnvelopeError(FanoutError):
    """A worker refused a message; the task did not run. Never retryable."""


class InvalidEnvelope(EnvelopeError):
    """The message is not a valid task envelope (not JSON, unknown version or fields, bad shape)."""


class BadSignature(EnvelopeError):
    """A secret is configured and the envelope is unsigned or its signature does not match."""


class ClaimRefused(EnvelopeError):
    """The S3 object a claim reference names is missing, or its size or digest do not match."""


class UnknownTask(EnvelopeError):
    """The envelope names a task the worker did not register. Nothing is imported from a message."""


class InvalidArguments(EnvelopeError):
    """The arguments do not fit the task's signature (checked before the task runs)."""


class Expired(EnvelopeError):
    """The envelope's deadline passed before the worker ran it, so it never runs.

    The sender stopped waiting for it (its attempt timed out, or its fan-out's deadline passed),
    so running it would be work nobody reads. An SQS record that expired is not retried.
    """


class DepthExceeded(EnvelopeError):
    """A dispatch made from inside tasks went deeper than the depth budget (A -> B -> A loops)."""


class FanoutFailed(ExceptionGroup[Exception]):
    """Some items of a fan-out did not succeed. ``outcomes`` holds those outcomes, in input order.

    Raised by :meth:`FanoutResult.raise_for_failures`; ``exceptions`` holds each item's error, so
    ``except* TimeoutError`` works as usual.
    """

    outcomes: Sequence[Outcome[Any]]

    def __new__(cls, message: str, outcomes: Sequence[Outcome[Any]]) -> FanoutFailed:
        errors = [
            o.error if isinstance(o.error, Exception) else _never_finished(o) for o in outcomes
        ]
        self = super().__new__(cls, message, errors)
        self.outcomes = outcomes
        return self

    def __init__(self, message: str, outcomes: Sequence[Outcome[Any]]) -> None:
        errors = list(self.exceptions)
        super().__init__(message, errors)


def _never_finished(outcome: Outcome[Any]) -> Exception:
    return FanoutError(f"item {outcome.index} ended {outcome.status.value} without an error")


class UsageError(ValueError):
    """aiofanout was called wrongly. The message says what to change."""
