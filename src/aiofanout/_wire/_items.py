"""Fan-out items: ``Call``, the hop context handed on from a running task, raw JSON."""

from __future__ import annotations

import contextvars
import json
from typing import Any

from .._errors import UsageError

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


# One encoder, built once: json.dumps with any option builds a new JSONEncoder on every call.
_compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode_raw_json(value: Any, *, what: str = "the value") -> bytes:
    """Compact JSON bytes of ``value``, or a :class:`UsageError` saying it is not JSON."""
    try:
        return _compact_json(value).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} must be JSON: {exc}") from exc
