"""The TOML stack file, read into a :class:`~aiofanout.deploy.Stack` (the one reader).

TOML (the standard library's ``tomllib``) takes comments, so a team commits its stack with the
reasons beside the settings. Paths are relative to the file. The tables, in the file's words::

    [stack]                  name, python ("3.11"), log_retention_days
    [claim_check]            bucket, prefix, expire_days
    [idempotency]            table
    [journal]                bucket, prefix
    [[queue]]                name, visibility_timeout, retention, dead_letter,
                             max_receive_count, replies, attributes
    [[function]]             name, handler, code (or code_path, code_paths), requirements,
                             memory, timeout, architecture, reserved_concurrency, environment,
                             invokes, sends_to, publishes_to, gathers_replies,
                             answers_replies, uses, continuation, bundle_aiofanout, extras,
                             throttle_after, faults, event_retries, event_retry_delays
    [function.event_invoke_config]   maximum_retry_attempts, maximum_event_age,
                                     on_success, on_failure
    [[function.schedule]]    expression, input, enabled
    [[function.statement]]   action, resource
    [[event_source_mapping]] queue, function, batch_size, batching_window,
                             maximum_concurrency, enabled
    [[topic]]                name, content_based_deduplication
    [[subscription]]         topic, function (or queue, raw), filter_policy,
                             filter_policy_scope
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .._errors import UsageError
from ._model import Function

__all__ = ["read_stack"]

T = TypeVar("T")
TABLES = {"stack", "claim_check", "idempotency", "journal", "queue", "function"}
TABLES |= {"event_source_mapping", "topic", "subscription"}
#: Settings of the local runtime alone, written at the top of a ``[[function]]`` as before.
LOCAL_KEYS = {"throttle_after", "faults", "event_retries", "event_retry_delays", "on_failure"}


def read_stack(path: Path, make: Callable[..., T]) -> T:
    """``make(**fields)`` of the file at ``path``; :class:`UsageError` names what is wrong.

    ``make`` is :class:`~aiofanout.deploy.Stack`, passed in so that this reader does not import
    it (the stack imports the reader).
    """
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the stack file {path}: {exc}") from exc
    unknown = set(data) - TABLES
    if unknown:
        raise UsageError(f"{path}: unknown tables {sorted(unknown)}; known: {sorted(TABLES)}")
    try:
        return make(**_fields(data, path.resolve().parent))
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _fields(data: dict[str, Any], base: Path) -> dict[str, Any]:
    fields = dict(data.get("stack", {}))
    for single in ("claim_check", "idempotency", "journal"):
        if single in data:
            fields[single] = data[single]
    fields["queues"] = list(data.get("queue", []))
    fields["functions"] = [_function(dict(entry), base) for entry in data.get("function", [])]
    fields["mappings"] = list(data.get("event_source_mapping", []))
    fields["topics"] = list(data.get("topic", []))
    fields["subscriptions"] = list(data.get("subscription", []))
    return fields


def _function(entry: dict[str, Any], base: Path) -> Function:
    name = entry.get("name")
    paths = [entry.pop(key) for key in ("code", "code_path", "code_paths") if key in entry]
    if len(paths) > 1:
        raise UsageError(f"function {name!r}: give one of code, code_path and code_paths")
    listed = paths[0] if paths and isinstance(paths[0], list) else paths or ["."]
    entry["code_paths"] = [(base / str(p)).resolve() for p in listed]
    if "requirements" in entry:
        entry["requirements"] = (base / str(entry["requirements"])).resolve()
    local = {key: entry.pop(key) for key in LOCAL_KEYS & set(entry)}
    entry["local"] = {**entry.get("local", {}), **local}
    for table, field in (("schedule", "schedules"), ("statement", "statements")):
        if table in entry:
            entry[field] = entry.pop(table)
    try:
        return Function(**entry)
    except UsageError as exc:
        raise UsageError(f"function {name!r}: {exc}") from None
