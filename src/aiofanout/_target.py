"""The target protocol: one call in, one reply out. The engine owns everything else."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, final

import anyio
import anyio.to_thread

from ._errors import UsageError

T = TypeVar("T")

__all__ = ["Batching", "Sent", "Target", "keyed_preparer"]


@dataclass(frozen=True, slots=True)
class Batching:
    """How a batching target wants items grouped: at most ``max_items``, at most ``max_bytes``.

    With ``max_bytes`` set, :meth:`Target.prepare` must return something whose ``len()`` is its
    size in bytes (the encoded body), so the engine can pack batches without encoding twice.

    Example::

        class Bulk(Target):
            batching = Batching(max_items=100, max_bytes=5_000_000)

            def prepare(self, item):
                return json.dumps(item).encode()

            async def call_batch(self, payloads, *, timeout):
                return await bulk_insert(payloads)   # one value or exception per payload
    """

    max_items: int
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise UsageError(f"Batching(max_items=...) must be >= 1, got {self.max_items}")

    def has_room(self, count: int, size: int, length: int) -> bool:
        """Whether a batch of ``count`` items and ``size`` bytes takes one of ``length`` more.

        The first item always fits: one larger than ``max_bytes`` goes alone, and its call
        says what is wrong with it.
        """
        if count >= self.max_items:
            return False
        return count == 0 or self.max_bytes is None or size + length <= self.max_bytes

    def split(self, items: Iterable[T], length: Callable[[T], int]) -> Iterator[list[T]]:
        """``items`` in order, packed into batches (``length``: an item's size in bytes)."""
        batch: list[T] = []
        size = 0
        for item in items:
            n = length(item)
            if not self.has_room(len(batch), size, n):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += n
        if batch:
            yield batch


@final
@dataclass(frozen=True, slots=True)
class Sent:
    """What identifies a fire-and-forget send: the work is queued, not done.

    :func:`aiofanout.dispatch` returns one for a target that does not wait for the work
    (``LambdaTarget(invocation_type="Event")``, ``SqsTarget`` and ``SnsTarget`` without
    ``replies=``).
    ``envelope_id`` is the task envelope's id (``None`` for ``task=None``, raw JSON): the id the
    worker sees, and a task record's key. ``request_id`` is Lambda's for the ``Event`` invoke,
    ``message_id`` the SQS message's; the other is ``None``. In a :class:`FanoutResult` the same
    facts are each item's value, as a dict (``{"message_id": ..., "envelope_id": ...}``), so a
    journal stores them as JSON.

    Example::

        sent = await aiofanout.dispatch(SqsTarget(queue_url, task=resize), "a.jpg")
        log.info("queued %s as message %s", sent.envelope_id, sent.message_id)
    """

    envelope_id: str | None = None
    request_id: str | None = None
    message_id: str | None = None

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> Sent:
        """The :class:`Sent` of a fire-and-forget target's value (its acknowledgement dict)."""
        return cls(value.get("envelope_id"), value.get("request_id"), value.get("message_id"))


class Target:
    """Base class of fan-out targets: something that makes one call, and nothing more.

    A target does not sleep, retry, loop or time itself out: the engine does. It turns one prepared
    payload (or, when :attr:`batching` is set, a list of them) into one reply or one error from
    the :mod:`aiofanout` exception tree.

    Subclasses implement :meth:`call` (or :meth:`call_batch` with :attr:`batching`), and may
    override :meth:`prepare` (and :meth:`prepare_keyed`), :meth:`open` and :meth:`close`.

    Example::

        class Echo(Target):
            async def call(self, payload, *, timeout):
                return payload

        result = await dispatch_many(Echo(), range(10), concurrency=4)
    """

    #: Group items into batches of this shape (``None``: one item per call).
    batching: Batching | None = None
    #: Whether an attempt that timed out may already have taken effect at the far end (then the
    #: engine does not retry it, whatever the retry policy says about timeouts).
    ambiguous_timeouts: bool = False
    #: Whether a call's value only acknowledges the send (a dict of ids, see :class:`Sent`): the
    #: work runs later, elsewhere, and nothing waits for its value.
    fire_and_forget: bool = False

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        """Get ready for a fan-out of at most ``concurrency`` calls in flight.

        ``timeout`` is the per-attempt timeout, so network clients can size their read timeout
        above it. Called once per fan-out; the default does nothing.
        """

    async def close(self) -> None:
        """Release what :meth:`open` acquired. Called once per fan-out, also on error."""

    def prepare(self, item: Any) -> Any:
        """Turn an item into the payload sent on every attempt (encode once, check limits).

        Raising here fails that item alone, before anything is sent. The default returns the
        item unchanged.
        """
        return item

    def prepare_keyed(self, item: Any, key: str) -> Any:
        """:meth:`prepare` for an item of a journaled run, which has a name for good: ``key``.

        ``key`` is ``"<run id>:<token>:<item index>"`` (the token is made when the run starts,
        so a run id used again in another journal is another run): the same on every attempt, in
        every continuation
        and after :func:`~aiofanout.resume`, and different for every item of the run. A target
        whose far end can drop duplicates sends it along (task envelopes carry it as their
        ``idempotency_key``, :class:`~aiofanout.HttpTarget` as an ``Idempotency-Key`` header),
        so an item that ran but was not journaled before a crash is not run again on resume.
        The default ignores ``key``. A subclass that overrides :meth:`prepare` but not this
        method keeps its :meth:`prepare` in journaled runs too (see :func:`keyed_preparer`).
        """
        return self.prepare(item)

    def envelope_id(self, payload: Any) -> str | None:
        """The id of the task envelope ``payload`` is (``Outcome.envelope_id``); default none.

        A target that sends task envelopes (Lambda, SQS, SNS) names the one it prepared, so the
        item's outcome leads to its record on the worker (``TaskRecords``) and to its logs.
        """
        return None

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        """How a traced fan-out names this target's attempt spans: name, kind, attributes.

        The kind is ``"client"`` or ``"producer"`` (a send to a queue or topic); the attributes
        follow OpenTelemetry's semantic conventions (``faas.*``, ``messaging.*``). Asked once
        per traced fan-out, never when tracing is off. The default names the target's class.

        Example::

            def span_description(self):
                return "bulk insert", "client", {"db.system.name": "postgresql"}
        """
        return f"call {type(self).__name__}", "client", {"aiofanout.target": type(self).__name__}

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        """Send one prepared payload and return the reply's value, or raise.

        ``timeout`` is what remains of the attempt, in seconds (``None``: unbounded).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> Sequence[Any]:
        """Send a batch; return one entry per payload: its value, or an exception instance.

        Raise instead when the whole batch failed. Only used when :attr:`batching` is set.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement call_batch()")


def keyed_preparer(target: Target) -> Callable[[Any, str], Any]:
    """How a journaled run prepares an item: with :meth:`Target.prepare_keyed`, as a rule.

    When the target's class overrides :meth:`~Target.prepare` below its ``prepare_keyed`` (a
    subclass of ``LambdaTarget`` that shapes its payload in ``prepare``), it is ``prepare``,
    the key unsent, as the subclass was written.
    """
    for cls in type(target).__mro__:
        if "prepare_keyed" in vars(cls):
            return target.prepare_keyed
        if "prepare" in vars(cls):
            return lambda item, _key: target.prepare(item)
    return target.prepare_keyed


class AsyncCallableTarget(Target):
    """An async callable as a target: ``await fn(item)``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.fn = fn

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        return _function_span(self.fn)

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        return await self.fn(payload)


class SyncCallableTarget(Target):
    """A sync callable run in worker threads, under a thread limit.

    A thread cannot be interrupted: an attempt that times out is noticed when the call returns,
    and nothing is left running behind the fan-out's back.
    """

    def __init__(self, fn: Callable[[Any], Any], threads: int | None) -> None:
        self.fn = fn
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        return _function_span(self.fn)

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        self._limiter = anyio.CapacityLimiter(self.threads or min(concurrency, 64))

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        result = await anyio.to_thread.run_sync(self.fn, payload, limiter=self._limiter)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise UsageError(
                f"{self.fn!r} returned an awaitable from a thread: pass an `async def` function "
                "(or functools.partial of one) so aiofanout awaits it on the event loop"
            )
        return result


def _function_span(fn: Callable[..., Any]) -> tuple[str, str, Mapping[str, str | int]]:
    """An in-process function's attempt spans: named for the function (``code.function.name``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"call {name}", "internal", {"code.function.name": name}


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine (async functions, partials, async ``__call__``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - we want the method itself
    )


def as_target(target: object, *, threads: int | None) -> Target:
    """Wrap what a user passed as ``target`` into a :class:`Target`."""
    if isinstance(target, Target):
        return target
    if not callable(target):
        raise UsageError(
            f"target must be a Target, an async function or a function, got {type(target).__name__}"
        )
    if is_async_callable(target):
        return AsyncCallableTarget(target)
    return SyncCallableTarget(target, threads)
