"""Idempotent tasks: one run per key, the reply stored and handed to every duplicate.

SQS delivers a message twice now and then, Lambda runs an ``Event`` again after a crash, and a
sender re-sends an invoke whose answer it never saw. A task registered with
``@app.task(idempotent=True)`` runs once per *idempotency key* within the store's ``ttl``:

1. **claim**: one conditional write creates the key's record as ``IN_PROGRESS``, with an expiry
   at the task's own deadline (the envelope's ``deadline_ms`` or the task's timeout, whichever is
   earlier; :data:`DEFAULT_IN_PROGRESS` without either). The write succeeds only if no record
   exists or the one there has expired, so of two racing deliveries exactly one wins; there is
   no read-then-write window.
2. the winner runs the task, then **completes** the record with the reply envelope's JSON (a
   conditional update: only while it still owns the record) and an expiry ``ttl`` from now.
3. a loser reads the record the failed write returned: ``COMPLETED`` hands back the stored reply
   without running anything; a live ``IN_PROGRESS`` raises :class:`InProgress` (retryable).

A task that raised is not stored: its record is deleted (only by its owner) so that a retry
runs it again, since most failures are worth retrying and a stored failure would pin a transient
one for ``ttl``. A run that never finishes (the process died, the loop was cancelled) leaves its
``IN_PROGRESS`` record behind; it expires at the task's deadline, when the first run can no
longer be running, and the next delivery takes the key over with the same conditional write and
runs the task again, once. The exception: a *sync* task runs in a thread, which a timeout cannot
stop, so it may still be running when its record expires.

The key is, first to last:

1. the task's ``key`` function of the call's JSON arguments (``@app.task(idempotent=True,
   key=...)``): what the call *means*, so two runs that charge one order charge it once;
2. the envelope's ``idempotency_key``, which a journaled run fills with
   ``"<run id>:<token>:<item index>"`` (:meth:`Target.prepare_keyed`): the same item of the
   same run, however often it is sent, even when a crash lost the journal's record of it, and
   distinct items even when their arguments are equal;
3. :func:`content_key`, a hash of the task name and the arguments.

The store scopes it as ``app/task/key``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from .._errors import FanoutError, InProgress, UsageError
from .._wire import ReplyEnvelope, decode_reply, encode_reply, new_id, now_ms

log = logging.getLogger("aiofanout.worker")

#: How long an ``IN_PROGRESS`` record holds its key when the task has neither a timeout nor a
#: deadline from its sender: 900 s, Lambda's longest timeout, so a crashed run frees its key.
DEFAULT_IN_PROGRESS = 900.0
#: How long a ``COMPLETED`` reply is kept by default: a day covers Lambda's retries of an
#: ``Event`` (up to 6 hours) and SQS redeliveries with a visibility timeout of hours.
DEFAULT_TTL = 86_400.0
#: A user's key longer than this is hashed (the envelope field holds 256 characters).
_LONGEST_PLAIN_KEY = 200

Status = Literal["IN_PROGRESS", "COMPLETED"]
KeyFunction = Callable[..., str | int]


@dataclass(frozen=True, slots=True)
class Record:
    """What a store holds for one key: its state, its owner, when it expires, the reply."""

    status: Status
    owner: str
    expires_at_ms: int
    reply: str | None = None


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where idempotent tasks record their keys: :class:`DynamoDBStore`, or :class:`MemoryStore`.

    ``claim`` must be atomic (one conditional write): it creates the key's ``IN_PROGRESS``
    record owned by ``owner`` and returns ``None`` if no record exists or the one there expired,
    and otherwise returns the record that holds the key. ``complete`` and ``release`` act only
    while ``owner`` still owns the record (it may have expired and been taken over).

    Example::

        class MyStore:
            ttl = 3600.0
            async def claim(self, key, *, owner, expires_at_ms): ...
            async def complete(self, key, *, owner, reply, expires_at_ms): ...
            async def release(self, key, *, owner): ...
            async def aclose(self): ...

        app = App("worker", idempotency=MyStore())
    """

    #: Seconds a completed reply is kept (and returned to duplicates).
    ttl: float

    async def claim(self, key: str, *, owner: str, expires_at_ms: int) -> Record | None:
        """Take ``key`` (``None``), or the record that holds it now."""
        ...

    async def complete(self, key: str, *, owner: str, reply: str, expires_at_ms: int) -> bool:
        """Store the reply if ``owner`` still owns ``key``; whether it did."""
        ...

    async def release(self, key: str, *, owner: str) -> None:
        """Delete ``key``'s record if ``owner`` still owns it (the run failed: retry it)."""
        ...

    async def aclose(self) -> None:
        """Close clients opened on the running loop (the store opens them again if used)."""
        ...


class MemoryStore:
    """An idempotency store in a dict, for tests and for one process (nothing survives it).

    Example::

        app = App("worker", idempotency=MemoryStore())

        @app.task(idempotent=True)
        async def charge(order: dict) -> str: ...
    """

    def __init__(self, *, ttl: float = DEFAULT_TTL) -> None:
        check_ttl(ttl)
        self.ttl = ttl
        self.records: dict[str, Record] = {}

    def __repr__(self) -> str:
        return f"<MemoryStore: {len(self.records)} keys>"

    # No await between the look and the write below: on one loop each method is atomic.
    async def claim(self, key: str, *, owner: str, expires_at_ms: int) -> Record | None:
        held = self.records.get(key)
        if held is not None and held.expires_at_ms >= now_ms():
            return held
        self.records[key] = Record("IN_PROGRESS", owner, expires_at_ms)
        return None

    async def complete(self, key: str, *, owner: str, reply: str, expires_at_ms: int) -> bool:
        held = self.records.get(key)
        if held is None or held.owner != owner:
            return False
        self.records[key] = Record("COMPLETED", owner, expires_at_ms, reply)
        return True

    async def release(self, key: str, *, owner: str) -> None:
        held = self.records.get(key)
        if held is not None and held.owner == owner:
            del self.records[key]

    async def aclose(self) -> None:
        return None


def check_ttl(ttl: float) -> None:
    """Refuse a ``ttl`` that would keep nothing."""
    if not ttl > 0:
        raise UsageError(f"an idempotency store's ttl is seconds > 0, got {ttl!r}")


# -- keys ---------------------------------------------------------------------------------------


def content_key(task: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The default key: a SHA-256 of the task name and the call's JSON arguments.

    It needs nothing from the sender but the call, so a sender by name and the worker agree on
    it. Its limit: two calls with equal arguments are one call (the second gets the first's
    reply), within the store's ``ttl``, even from two different fan-outs. Give the task a
    ``key=`` function when equal arguments can mean two pieces of work.
    """
    try:
        canonical = json.dumps(
            [task, args, kwargs], sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the arguments of task {task!r} must be JSON: {exc}") from exc
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def user_key(task: str, key: KeyFunction, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The key a task's ``key=`` function gives for a call (long ones hashed to fit the wire)."""
    value = key(*args, **kwargs)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UsageError(
            f"the key function of task {task!r} must return a str or an int, "
            f"got {type(value).__name__}"
        )
    text = str(value)
    if len(text) > _LONGEST_PLAIN_KEY:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


# -- running once -------------------------------------------------------------------------------


async def run_once(
    store: IdempotencyStore,
    key: str,
    *,
    expires_at_ms: int,
    run: Callable[[], Awaitable[ReplyEnvelope]],
) -> ReplyEnvelope:
    """``run()``'s reply, or the stored reply of an earlier run of ``key`` without running.

    Raises :class:`InProgress` while another run holds ``key``; re-raises what ``run`` raised
    after releasing ``key`` (a failure is not stored).
    """
    owner = new_id()
    held = await store.claim(key, owner=owner, expires_at_ms=expires_at_ms)
    if held is not None:
        return _stored_reply(key, held)
    try:
        reply = await run()
    except Exception:
        await _release_quietly(store, key, owner)
        raise
    await _complete(store, key, owner, reply)
    return reply


def _stored_reply(key: str, held: Record) -> ReplyEnvelope:
    if held.status == "COMPLETED" and held.reply is not None:
        return decode_reply(held.reply)
    left = max(0.0, (held.expires_at_ms - now_ms()) / 1000)
    raise InProgress(
        f"idempotency key {key!r} is being run by another delivery; it completes or expires "
        f"within {left:.1f} s, try again after that"
    )


async def _complete(store: IdempotencyStore, key: str, owner: str, reply: ReplyEnvelope) -> None:
    """Store the reply; if that fails the reply still goes out, and the key is freed."""
    expires_at_ms = now_ms() + int(store.ttl * 1000)
    try:
        stored = await store.complete(
            key, owner=owner, reply=encode_reply(reply).decode(), expires_at_ms=expires_at_ms
        )
    except FanoutError as exc:
        # The task ran and its caller should hear so; a duplicate will run it again.
        log.warning("could not store the reply of %s (%s); freeing the key", key, exc)
        await _release_quietly(store, key, owner)
        return
    if not stored:
        log.warning("the in-progress record of %s expired and was taken over before the end", key)


async def _release_quietly(store: IdempotencyStore, key: str, owner: str) -> None:
    try:
        await store.release(key, owner=owner)
    except FanoutError as exc:
        # Not fatal: the record expires at the task's deadline and the key is free again then.
        log.warning("could not release %s (%s); it frees itself when it expires", key, exc)
