"""Items into envelopes: ``Call``, the hop context handed from a running task, the encoders."""

from __future__ import annotations

import contextvars
import functools
import json
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import DepthExceeded, UsageError
from ._envelopes import encode_task

DEFAULT_MAX_DEPTH = 8


class Call:
    """Several arguments for one task call: ``Call(a, b, key=c)`` runs ``task(a, b, key=c)``.

    Any other item of a fan-out is the task's single argument.

    Example::

        await dispatch_many(resize, [Call("a.png", width=100), Call("b.png", width=200)],
                            concurrency=10)
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = list(args)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Call({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Call) and (self.args, self.kwargs) == (other.args, other.kwargs)

    __hash__ = None  # type: ignore[assignment]


def split_item(item: Any) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs a fan-out item stands for."""
    if isinstance(item, Call):
        return item.args, item.kwargs
    return [item], {}


#: The depth of the task running now (``None`` outside any task): set by the worker, read when a
#: task dispatches further, so A -> B -> A loops meet the depth budget.
current_depth: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aiofanout_depth", default=None
)
#: The deadline (epoch ms) of the task running now, handed on to what it dispatches.
current_deadline_ms: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aiofanout_deadline_ms", default=None
)


def dispatch_depth() -> int:
    """The depth an envelope sent from here carries: one more than the running task's, or 0."""
    depth = current_depth.get()
    return 0 if depth is None else depth + 1


def build_envelope(
    name: str, item: Any, *, secret: str | bytes | None, max_depth: int, **fields: Any
) -> bytes:
    """The envelope of one item for task ``name``: depth and deadline handed on, budget checked."""
    args, kwargs = split_item(item)
    depth = dispatch_depth()
    if depth > max_depth:
        raise DepthExceeded(
            f"dispatching {name!r} would be hop {depth}, past the depth budget of {max_depth}: "
            "a task is fanning out to itself in a loop? Raise App(max_depth=...) if intended"
        )
    if "deadline_ms" not in fields:
        fields["deadline_ms"] = current_deadline_ms.get()
    return encode_task(name, args, kwargs, depth=depth, secret=secret, **fields)


# One encoder, built once: json.dumps with any option builds a new JSONEncoder on every call.
_compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode_raw_json(value: Any, *, what: str = "the value") -> bytes:
    """Compact JSON bytes of ``value``, or a :class:`UsageError` saying it is not JSON."""
    try:
        return _compact_json(value).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} must be JSON: {exc}") from exc


class EnvelopeSource(Protocol):
    """Something that encodes its own envelopes: a registered task (``@app.task``)."""

    @property
    def name(self) -> str: ...

    @property
    def secret(self) -> str | bytes | None: ...

    def envelope(self, item: Any, **fields: Any) -> bytes: ...


def envelope_encoder(
    task: str | EnvelopeSource | None,
    *,
    secret: str | bytes | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    **fields: Any,
) -> Callable[[Any], bytes]:
    """How a remote target turns an item into the bytes it sends.

    ``task`` is a registered task (its app's secret and depth budget apply), a task name (the
    worker's registry resolves it), or ``None`` for raw JSON: the item itself is the payload.
    """
    fields = {name: value for name, value in fields.items() if value is not None}
    if task is None:
        return functools.partial(encode_raw_json, what="the item")
    if isinstance(task, str) and task:
        return functools.partial(build_envelope, task, secret=secret, max_depth=max_depth, **fields)
    if callable(getattr(task, "envelope", None)):
        return functools.partial(task.envelope, **fields)  # type: ignore[union-attr]
    raise UsageError(f"task must be a task name, an @app.task object or None, got {task!r}")
