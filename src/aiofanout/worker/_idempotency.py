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
3. the call's JSON arguments themselves. Their limit: two calls with equal arguments are one
   call (the second gets the first's reply), within the store's ``ttl``, even from two
   different fan-outs. Give the task a ``key=`` function when equal arguments can mean two
   pieces of work.

The store keeps it under :func:`store_key`: a SHA-256 of the canonical JSON array ``["v2", app,
task, source, key]``, so no two of them meet: app ``a`` with task ``b/c`` is not app ``a/b``
with task ``c``, a key function's ``1`` is not its ``"1"``, and a key a sender chose is never
the key of another call's arguments. Each record also holds a fingerprint of the arguments it
ran with (a short hash per argument, never the values): the same key sent with other
arguments raises :class:`~aiofanout.IdempotencyKeyReused` naming the arguments that differ,
instead of quietly answering with the first call's reply (what Powertools does too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from .._errors import FanoutError, IdempotencyKeyReused, InProgress, UsageError
from .._log_fields import library_logger
from .._wire import ReplyEnvelope, decode_reply, encode_reply, new_id, now_ms

log = library_logger("aiofanout.worker")

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
#: Where a call's key came from, first to last (the module docstring tells why each wins).
KeySource = Literal["key function", "sender", "arguments"]
#: The version of :func:`store_key`'s layout, inside what it hashes.
_LAYOUT = "v2"


@dataclass(frozen=True, slots=True)
class Record:
    """What a store holds for one key: its state, its owner, when it expires, the reply.

    ``arguments`` is the fingerprint of the arguments the key was claimed with (JSON of a short
    hash per argument), or ``None`` from a store or a record that predates it.
    """

    status: Status
    owner: str
    expires_at_ms: int
    reply: str | None = None
    arguments: str | None = None


@dataclass(frozen=True, slots=True)
class CallKey:
    """One call's idempotency key: its task, where it came from, and what the store holds.

    ``stored`` is :func:`store_key`'s hash (what logs may show: it reveals no argument);
    ``arguments`` the call's :func:`fingerprint`.
    """

    task: str
    source: KeySource
    stored: str
    arguments: str


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
            async def claim(self, key, *, owner, expires_at_ms, arguments): ...
            async def complete(self, key, *, owner, reply, expires_at_ms): ...
            async def release(self, key, *, owner): ...
            async def aclose(self): ...

        app = App("worker", idempotency=MyStore())
    """

    #: Seconds a completed reply is kept (and returned to duplicates).
    ttl: float

    async def claim(
        self, key: str, *, owner: str, expires_at_ms: int, arguments: str
    ) -> Record | None:
        """Take ``key`` (``None``), keeping ``arguments`` in its record; or the one holding it."""
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
    async def claim(
        self, key: str, *, owner: str, expires_at_ms: int, arguments: str
    ) -> Record | None:
        held = self.records.get(key)
        if held is not None and held.expires_at_ms >= now_ms():
            return held
        self.records[key] = Record("IN_PROGRESS", owner, expires_at_ms, arguments=arguments)
        return None

    async def complete(self, key: str, *, owner: str, reply: str, expires_at_ms: int) -> bool:
        held = self.records.get(key)
        if held is None or held.owner != owner:
            return False
        self.records[key] = Record("COMPLETED", owner, expires_at_ms, reply, held.arguments)
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


def _sha256_of_json(task: str, value: Any) -> str:
    try:
        canonical = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the arguments of task {task!r} must be JSON: {exc}") from exc
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_key(app: str, task: str, source: KeySource, key: Any) -> str:
    """The key a store keeps a call under: one hash of every part, so no two parts can meet.

    ``key`` is the key function's value (its type kept: ``1`` is not ``"1"``), the sender's
    string, or ``[args, kwargs]`` for a key from the arguments.
    """
    return f"{_LAYOUT}:" + _sha256_of_json(task, [_LAYOUT, app, task, source, key])


def fingerprint(names: list[str], args: list[Any], kwargs: dict[str, Any]) -> str:
    """A short hash of each argument, by parameter name (``names`` are the positional ones).

    Kept with a key's record so that a reuse of the key with other arguments can say which
    differ without storing a single value.
    """
    named = {names[i] if i < len(names) else f"args[{i}]": arg for i, arg in enumerate(args)}
    named.update(kwargs)
    hashes = {name: _sha256_of_json("", value)[:16] for name, value in named.items()}
    return json.dumps(hashes, sort_keys=True, separators=(",", ":"))


def differing_arguments(first: str, now: str) -> list[str]:
    """The names of the arguments whose fingerprints differ (sorted), given two fingerprints."""
    before, after = json.loads(first), json.loads(now)
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))


def key_function_value(
    task: str, key: KeyFunction, args: list[Any], kwargs: dict[str, Any]
) -> str | int:
    """What a task's ``key=`` function gives for a call: a str or an int, or a UsageError."""
    value = key(*args, **kwargs)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UsageError(
            f"the key function of task {task!r} must return a str or an int, "
            f"got {type(value).__name__}"
        )
    return value


def wire_key(value: str | int) -> str:
    """A key function's value as an envelope carries it (long ones hashed to fit the field)."""
    text = str(value)
    if len(text) > _LONGEST_PLAIN_KEY:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


# -- running once -------------------------------------------------------------------------------


async def run_once(
    store: IdempotencyStore,
    key: CallKey,
    *,
    expires_at_ms: int,
    run: Callable[[], Awaitable[ReplyEnvelope]],
) -> ReplyEnvelope:
    """``run()``'s reply, or the stored reply of an earlier run of ``key`` without running.

    Raises :class:`InProgress` while another run holds ``key``, :class:`IdempotencyKeyReused`
    when the key's record was made with other arguments; re-raises what ``run`` raised after
    releasing ``key`` (a failure is not stored).
    """
    owner = new_id()
    held = await store.claim(
        key.stored, owner=owner, expires_at_ms=expires_at_ms, arguments=key.arguments
    )
    if held is not None:
        return _stored_reply(key, held)
    try:
        reply = await run()
    except Exception:
        await _release_quietly(store, key.stored, owner)
        raise
    await _complete(store, key.stored, owner, reply)
    return reply


def _stored_reply(key: CallKey, held: Record) -> ReplyEnvelope:
    if held.arguments is not None and held.arguments != key.arguments:
        differ = ", ".join(differing_arguments(held.arguments, key.arguments))
        raise IdempotencyKeyReused(
            f"task {key.task!r}: its idempotency key (from the {key.source}) was first used "
            f"with other arguments; these differ: {differ}. Send the arguments it was first "
            "used with, or give this call a key of its own"
        )
    if held.status == "COMPLETED" and held.reply is not None:
        return decode_reply(held.reply)
    left = max(0.0, (held.expires_at_ms - now_ms()) / 1000)
    raise InProgress(
        f"task {key.task!r}: its idempotency key (from the {key.source}, stored as "
        f"{key.stored}) is being run by another delivery; it completes or expires within "
        f"{left:.1f} s, try again after that"
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
