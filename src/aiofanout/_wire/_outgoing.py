"""What a sender sends for one item: prepared once, finished per attempt with one encode.

A task envelope is prepared when its item is taken: the arguments and every field known then
are encoded once, in the canonical form a signature covers (keys sorted, compact JSON). What
only an attempt knows is added as it is sent: its deadline, and for a signed envelope the time
it was issued and the signature. Keys sort, so those fields have fixed places among the others:
a :class:`PreparedEnvelope` keeps its JSON in three runs around them, and finishing it is one
join and, when signed, one HMAC over the bytes; never a parse, never a second encode.

Arguments over a message limit move to S3 at preparation (:meth:`PreparedEnvelope.claimed`):
the envelope names them in ``claim``, and the object's bytes go up before each attempt.

An :class:`Outgoing` is what a Lambda or SQS target keeps per item: the envelope (or raw JSON),
the id its reply will name, its claim, and for SQS its FIFO group and deduplication ids.
``len()`` is the most bytes it can take on the wire, what batches are packed and checked by.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import DepthExceeded, UsageError
from .._tracing import ENVELOPE_TRACE_ROOM, envelope_trace
from ._claims import ClaimCheck
from ._envelopes import ENVELOPE_VERSION, ClaimRef, _dumps, _signed, new_id, now_ms
from ._items import (
    DEFAULT_MAX_DEPTH,
    current_deadline_ms,
    dispatch_depth,
    encode_raw_json,
    split_item,
)

__all__ = [
    "Claim",
    "DescribesTask",
    "Outgoing",
    "PreparedEnvelope",
    "TaskSpec",
    "encode_task",
    "envelope_encoder",
    "prepare_envelope",
    "task_spec",
]

#: Arguments bound for S3: where they go and their bytes (uploaded before each attempt).
Claim = tuple[ClaimRef, bytes]

# The room the fields of an attempt can take: 13 digits of epoch ms last until the year 2286.
_DEADLINE_ROOM = len(b',"deadline_ms":') + 13
_ISSUED_ROOM = len(b',"issued_ms":') + 13
_SIGNATURE_ROOM = len(b',"sig":""') + 64


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a sender knows of a task: its name, its app's secret and depth budget, its key.

    ``idempotent``: the task runs once per idempotency key, so a target may re-send an invoke
    whose answer it never saw (``LambdaTarget``'s ``retry_ambiguous`` default).

    ``call_key`` is an idempotent task's own key of a call's ``(args, kwargs)``; ``None``: the
    envelope carries the sender's key (a journaled run's), or none. A registered task
    (``@app.task``) describes itself as ``task.spec``; a target given a task name makes one.

    Example::

        spec = TaskSpec("resize", secret=secret)
        envelope = prepare_envelope(spec, "a.png")
    """

    name: str
    secret: str | bytes | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    call_key: Callable[[list[Any], dict[str, Any]], str] | None = None
    idempotent: bool = False  # it runs once per key: re-sending what may have run is safe


class DescribesTask(Protocol):
    """A registered task, as a target sees it: the description its envelopes are made from."""

    @property
    def spec(self) -> TaskSpec:
        """The task's name, secret, depth budget and key function."""
        ...


class PreparedEnvelope:
    """A task envelope encoded once, in four canonical runs; :meth:`finish` per attempt.

    ``deadline_ms`` is the deadline it carries already (handed on from the running task), which
    an attempt's can only bring forward. ``size`` bounds the bytes of any finished envelope.
    """

    __slots__ = ("_fields", "_runs", "deadline_ms", "id", "secret", "size", "task")

    def __init__(self, fields: dict[str, Any], secret: str | bytes | None) -> None:
        self.task: str = fields["task"]
        self.id: str = fields["id"]
        self.secret = secret
        self.deadline_ms: int | None = fields.pop("deadline_ms", None)
        self._fields = fields  # kept for a claim: the arguments move, the rest stays
        runs: tuple[dict[str, Any], ...] = ({}, {}, {}, {})
        for key, value in fields.items():
            runs[_run_of(key)][key] = value
        try:
            self._runs = tuple(_dumps(run)[1:-1].encode() for run in runs)  # without braces
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"arguments of task {self.task!r} must be JSON (dict, list, str, int, float, "
                f"bool, None): {exc}"
            ) from exc
        commas = sum(1 for run in self._runs if run) - 1
        room = _DEADLINE_ROOM + (_ISSUED_ROOM + _SIGNATURE_ROOM if secret is not None else 0)
        room += ENVELOPE_TRACE_ROOM.get()  # a traced fan-out's envelopes carry their context
        self.size = 2 + commas + sum(map(len, self._runs)) + room

    def finish(self, deadline_ms: int | None = None) -> bytes:
        """The envelope's bytes for one attempt, carrying the earlier of the two deadlines.

        A signed envelope is issued (``issued_ms``) and signed now: what ``App(max_age=)``
        measures is the age of the attempt, not of the item.
        """
        carried = self.deadline_ms
        if deadline_ms is None or (carried is not None and carried <= deadline_ms):
            deadline_ms = carried
        head, middle, tail, end = self._runs
        parts = [head]
        if deadline_ms is not None:
            parts.append(b'"deadline_ms":%d' % deadline_ms)
        parts.append(middle)
        if self.secret is not None:
            parts.append(b'"issued_ms":%d' % now_ms())
        parts.append(tail)
        parts.append(envelope_trace())  # the attempt's trace context, if it is traced
        parts.append(end)
        return _signed(b"{" + b",".join(part for part in parts if part) + b"}", self.secret)

    def claimed(self, claims: ClaimCheck) -> tuple[PreparedEnvelope, Claim]:
        """The envelope with its arguments moved to an object of ``claims``, and that object.

        The small envelope names the object (bucket, key, size, SHA-256) and is signed like any
        other, so its signature covers the reference and the digest.
        """
        fields = dict(self._fields)
        moved = {"args": fields.pop("args", []), "kwargs": fields.pop("kwargs", {})}
        blob = _dumps(moved).encode()
        ref = claims.reference(blob)
        fields["claim"] = ref.model_dump()
        if self.deadline_ms is not None:
            fields["deadline_ms"] = self.deadline_ms
        return PreparedEnvelope(fields, self.secret), (ref, blob)


def _run_of(key: str) -> int:
    """Which run of a prepared envelope a field is in: those between sit around the attempt's."""
    if key < "deadline_ms":
        return 0
    if key < "issued_ms":
        return 1
    return 2 if key < "traceparent" else 3


def prepare_envelope(spec: TaskSpec, item: Any, **fields: Any) -> PreparedEnvelope:
    """The envelope of one item for ``spec``: depth and deadline handed on, budget checked.

    ``fields`` are the envelope's other fields (``id``, ``reply_to``, ``idempotency_key``,
    ...); ``None`` values are left out. A task's own key function wins over the sender's key.
    """
    args, kwargs = split_item(item)
    depth = dispatch_depth()
    if depth > spec.max_depth:
        raise DepthExceeded(
            f"dispatching {spec.name!r} would be hop {depth}, past the depth budget of "
            f"{spec.max_depth}: a task is fanning out to itself in a loop? Raise "
            "App(max_depth=...) if intended"
        )
    if spec.call_key is not None:
        fields["idempotency_key"] = spec.call_key(args, kwargs)
    if "deadline_ms" not in fields:
        fields["deadline_ms"] = current_deadline_ms.get()
    return _prepared(spec.name, args, kwargs, spec.secret, depth=depth, **fields)


def task_spec(
    task: str | DescribesTask, *, secret: str | bytes | None, max_depth: int = DEFAULT_MAX_DEPTH
) -> TaskSpec:
    """What a target was given as ``task=``, as a :class:`TaskSpec`; ``secret`` wins if set."""
    if isinstance(task, str):
        if not task:
            raise UsageError("task must be a task name, an @app.task object or None, got ''")
        return TaskSpec(task, secret, max_depth)
    spec = getattr(task, "spec", None)
    if not isinstance(spec, TaskSpec):
        raise UsageError(f"task must be a task name, an @app.task object or None, got {task!r}")
    return spec if secret is None else dataclasses.replace(spec, secret=secret)


def envelope_encoder(
    spec: TaskSpec | None, **fields: Any
) -> Callable[..., PreparedEnvelope | bytes]:
    """How a target turns an item into what it sends: its prepared envelope, or raw JSON.

    ``spec`` ``None`` sends the item itself, as JSON, to any function; ``fields`` go into
    every envelope (``None`` values are left out), those of one call over them.
    """
    if spec is None:
        return functools.partial(encode_raw_json, what="the item")
    fields = {name: value for name, value in fields.items() if value is not None}
    return functools.partial(prepare_envelope, spec, **fields)


def encode_task(
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    id: str | None = None,
    batch_id: str | None = None,
    depth: int = 0,
    deadline_ms: int | None = None,
    reply_to: str | None = None,
    idempotency_key: str | None = None,
    secret: str | bytes | None = None,
) -> bytes:
    """Encode a task envelope to its wire bytes, signed when a secret is given.

    A signed envelope carries ``issued_ms``, the time it was made: a worker with
    ``App(max_age=...)`` refuses it once it is older than that (a captured envelope can be sent
    again until its deadline, or forever if it has none, unless the worker bounds its age).

    Raises :class:`UsageError` when an argument is not JSON (sets, bytes, NaN, objects).

    Example::

        body = encode_task("resize", ["a.png"], {"width": 64}, secret=secret)
    """
    fields = {"id": id, "batch_id": batch_id, "deadline_ms": deadline_ms, "reply_to": reply_to}
    fields["idempotency_key"] = idempotency_key
    return _prepared(task, args, kwargs, secret, depth=depth, **fields).finish()


def _prepared(
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    secret: str | bytes | None,
    *,
    depth: int,
    **fields: Any,
) -> PreparedEnvelope:
    body: dict[str, Any] = {"v": ENVELOPE_VERSION, "task": task}
    body["id"] = fields.pop("id", None) or new_id()
    if args:
        body["args"] = args
    if kwargs:
        body["kwargs"] = kwargs
    if depth:
        body["depth"] = depth
    body.update((name, value) for name, value in fields.items() if value is not None)
    return PreparedEnvelope(body, secret)


class Outgoing:
    """One item's message, prepared once: its envelope (or raw JSON) and what travels with it.

    ``reply_id`` is the id its reply will name (``""``: none awaited); ``claim``, the arguments
    bound for S3; ``group_id`` and ``dedup_id``, a FIFO queue's; ``attributes``, its message
    attributes in the wire form, whose ``attributes_size`` bytes count toward its size (as AWS
    counts them). A plain slotted class: one is built per item, and a frozen dataclass costs
    several times more.
    """

    __slots__ = ("attributes", "claim", "dedup_id", "group_id", "message", "reply_id", "size")

    def __init__(
        self,
        message: PreparedEnvelope | bytes,
        *,
        reply_id: str = "",
        claim: Claim | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        attributes: dict[str, dict[str, Any]] | None = None,
        attributes_size: int = 0,
    ) -> None:
        self.message = message
        body_size = message.size if isinstance(message, PreparedEnvelope) else len(message)
        self.size = body_size + attributes_size
        self.attributes = attributes
        self.reply_id = reply_id
        self.claim = claim
        self.group_id = group_id
        self.dedup_id = dedup_id

    def __len__(self) -> int:
        return self.size

    @property
    def envelope_id(self) -> str | None:
        """The envelope's id (``None`` for raw JSON, which has no envelope)."""
        message = self.message
        return message.id if isinstance(message, PreparedEnvelope) else None

    def body(self, deadline_ms: int | None = None) -> bytes:
        """The bytes of one attempt (raw JSON as it is: it has no field for a deadline)."""
        message = self.message
        return message if isinstance(message, bytes) else message.finish(deadline_ms)
