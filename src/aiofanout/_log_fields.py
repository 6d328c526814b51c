"""What identifies the work a log record is written for: the run, the item, the envelope.

One contextvar holds the fields (see :data:`FIELDS` for their names); the engine and the worker
set them where they learn them, and :class:`ContextFilter` copies them onto each record as
attributes, as ``extra=`` would. The library's own loggers carry the filter
(:func:`library_logger`), so its records name the work whatever handler shows them; a handler
with the filter (``aiofanout.logs.configure``) gives the same to every record through it, a
task's own logger included.

Why a contextvar and not arguments: each engine worker is an asyncio task with its own copy of
the context, and an item's call runs inside it, so whatever is logged there (the library's
records, a task's ``logging.getLogger(...)``) sees the item it works for with nothing passed
around. anyio's ``to_thread`` runs a sync task in a copy of the context, so threads see it too.

Only identifiers go in: never an argument, a value or a secret.

The engine's cost is one dict per worker, written per item (:func:`worker_fields`): a new
dict per item would be a measurable share of a trivial job (``benchmarks/engine.py``). The
worker's fields are a new dict per scope (:func:`bound`), so nothing leaks between envelopes.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

__all__ = [
    "FIELDS",
    "ContextFilter",
    "bound",
    "current_fields",
    "library_logger",
    "lambda_fields",
    "worker_fields",
]

#: The names of the fields, in the order a JSON line shows them.
FIELDS = (
    "run_id",  # a journaled fan-out's run id (aiofanout.durable)
    "item_index",  # the item's position in the fan-out's input
    "attempt",  # the engine's attempt at the item; on a worker, the SQS record's delivery
    "envelope_id",  # the task envelope's id: the worker's, a reply's, a task record's key
    "batch_id",  # the envelope's batch (a chunk of envelopes)
    "task",  # the registered task's name
    "message_id",  # the SQS messageId of the record being run
    "function_request_id",  # Lambda's request id of the invocation (Powertools' name)
    "function_name",
    "function_arn",
    "function_memory_size",
    "cold_start",
)

_EMPTY: dict[str, Any] = {}
_FIELDS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "aiofanout_log_fields", default=_EMPTY
)


def current_fields() -> dict[str, Any]:
    """The fields that name the work being done here, as a new dict (empty outside any).

    Example::

        @app.task
        async def resize(key: str) -> str:
            print(aiofanout.logs.current_fields())  # {"envelope_id": "...", "task": "resize"}
    """
    return dict(_FIELDS.get())


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to what records logged inside the block carry; ``None`` drops one."""
    merged = {**_FIELDS.get(), **fields}
    token = _FIELDS.set({name: value for name, value in merged.items() if value is not None})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def worker_fields() -> dict[str, Any]:
    """A dict of this engine worker's own, set as its fields: the worker writes it per item.

    Call it at the start of a worker (an asyncio task, so the set stays in its context).
    """
    fields = dict(_FIELDS.get())
    _FIELDS.set(fields)
    return fields


_cold_start = True


def lambda_fields(context: Any) -> dict[str, Any]:
    """The fields of a Lambda invocation from its context object; the first is a cold start."""
    global _cold_start
    if context is None:  # a direct call of App.handle: no invocation to name
        return {}
    cold, _cold_start = _cold_start, False
    memory = getattr(context, "memory_limit_in_mb", None)
    return {
        "function_request_id": getattr(context, "aws_request_id", None),
        "function_name": getattr(context, "function_name", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_memory_size": int(memory) if memory is not None else None,
        "cold_start": cold,
    }


class ContextFilter(logging.Filter):
    """Copies the fields of the work being done onto each record (it never drops one).

    A field the record has already (passed as ``extra=``) keeps its value. Add it to a handler
    to give every record through it the fields, a task's own logger's included.

    Example::

        handler = logging.StreamHandler()
        handler.addFilter(aiofanout.logs.ContextFilter())
        handler.setFormatter(
            logging.Formatter("%(message)s %(envelope_id)s", defaults={"envelope_id": "-"})
        )
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        for name, value in _FIELDS.get().items():
            attributes.setdefault(name, value)
        return True


_FILTER = ContextFilter()


def library_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the filter that names the work on its records."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
