"""A stack file: the functions, queues, mappings and event invoke configs a team commits.

TOML (read with the standard library's ``tomllib``), so it takes comments; relative paths are
relative to the file. ``python -m aiofanout serve --config local-aws.toml`` sets it all up, so
everyone's local stack is the same::

    [[queue]]
    name = "work"
    attributes = { VisibilityTimeout = "30" }

    [[function]]
    name = "worker"
    handler = "worker.lambda_handler"
    code_path = "examples"            # or code_paths = [...]
    timeout = 30                      # FunctionConfig's fields, by name
    environment = { STAGE = "local" }
    [function.event_invoke_config]    # PutFunctionEventInvokeConfig, snake case
    maximum_retry_attempts = 0
    maximum_event_age = 3600
    on_failure = "failures"           # a queue name (or an SQS ARN)

    [[event_source_mapping]]
    queue = "work"
    function = "worker"
    batch_size = 10                   # EventSourceMapping's fields, by name
    maximum_concurrency = 5
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from ._aws import queue_arn
from ._config import EventSourceMapping, FunctionConfig
from ._events import KEY, EventInvokeConfig

if TYPE_CHECKING:
    from ._stack import LocalAws


@dataclass(frozen=True, slots=True)
class StackFile:
    """What a stack file declares, validated (paths made absolute)."""

    queues: list[dict[str, Any]] = field(default_factory=list)
    functions: list[FunctionConfig] = field(default_factory=list)
    event_invoke: dict[str, EventInvokeConfig] = field(default_factory=dict)
    mappings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> StackFile:
        """Read and check the file at ``path`` (:class:`UsageError` says what is wrong)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read the stack file {path}: {exc}") from exc
        unknown = set(data) - {"queue", "function", "event_source_mapping"}
        if unknown:
            raise UsageError(f"{path}: unknown tables {sorted(unknown)}")
        stack_file = cls(queues=list(data.get("queue", [])))
        for entry in data.get("function", []):
            stack_file._add_function(dict(entry), path.parent)
        stack_file.mappings.extend(dict(m) for m in data.get("event_source_mapping", []))
        return stack_file

    def _add_function(self, entry: dict[str, Any], base: Path) -> None:
        invoke = entry.pop("event_invoke_config", None)
        paths = entry.pop("code_paths", None) or [entry.pop("code_path", ".")]
        entry["code_paths"] = [str((base / p).resolve()) for p in paths]
        try:
            config = FunctionConfig(**entry)
        except TypeError as exc:
            raise UsageError(f"function {entry.get('name')!r}: {exc}") from exc
        self.functions.append(config)
        if invoke is not None:
            self.event_invoke[config.name] = _event_invoke(dict(invoke))

    async def apply(self, aws: LocalAws) -> None:
        """Create the queues, register the functions and configs, start the mappings."""
        urls = {
            q["name"]: await aws.create_queue(q["name"], **q.get("attributes", {}))
            for q in self.queues
        }
        for config in self.functions:
            aws.add_function(config)
        for name, invoke in self.event_invoke.items():
            aws.runtime.functions.get(name).settings[KEY] = invoke
        for entry in self.mappings:
            await aws.add_event_source(_mapping(dict(entry), urls))


def _event_invoke(entry: dict[str, Any]) -> EventInvokeConfig:
    for destination in ("on_success", "on_failure"):
        name = entry.get(destination)
        if name is not None and not name.startswith("arn:"):
            entry[destination] = queue_arn(name)
    try:
        return EventInvokeConfig(**entry)
    except TypeError as exc:
        raise UsageError(f"event_invoke_config: {exc}") from exc


def _mapping(entry: dict[str, Any], urls: dict[str, str]) -> EventSourceMapping:
    queue = entry.pop("queue")
    if queue not in urls:
        raise UsageError(f"event_source_mapping: the queue {queue!r} is not a [[queue]] here")
    if "maximum_concurrency" in entry:
        entry["pollers"] = entry.pop("maximum_concurrency")
    try:
        return EventSourceMapping(urls[queue], **entry)
    except TypeError as exc:
        raise UsageError(f"event_source_mapping: {exc}") from exc
