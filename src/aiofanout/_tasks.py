"""The task registry: ``App``, ``@app.task``, ``Call``, and running one envelope.

A worker runs only what it registered. A message names a task; the name is looked up in the
app's dict of tasks and nothing else: nothing is imported, ``exec``'d or unpickled, so a message
naming ``os.system`` gets :class:`UnknownTask` like any other unknown name.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeAlias, TypeVar, overload

import anyio.to_thread
from pydantic import TypeAdapter, ValidationError

from ._errors import DepthExceeded, InvalidArguments, UnknownTask, UsageError
from ._target import Target
from ._wire import (
    DEFAULT_MAX_DEPTH,
    ReplyEnvelope,
    TaskEnvelope,
    build_envelope,
    current_deadline_ms,
    current_depth,
    decode_reply,
    decode_task,
    encode_reply,
    error_info,
    now_ms,
    unwrap_reply,
)

__all__ = ["App", "Task"]

log = logging.getLogger("aiofanout.worker")
P = ParamSpec("P")
R = TypeVar("R")


Bound: TypeAlias = tuple[tuple[Any, ...], dict[str, Any]]
_PLAIN_KINDS = frozenset({inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY})


class _Signature:
    """Binds and validates arguments against a function's signature, with pydantic."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.signature = inspect.signature(fn)
        params = self.signature.parameters
        hints = typing.get_type_hints(fn, include_extras=True)
        self.adapters: dict[str, TypeAdapter[Any]] = {
            name: TypeAdapter(hints[name]) for name in params if name in hints
        }
        # Most tasks take plain parameters: bind those without inspect.Signature.bind.
        self.plain = all(p.kind in _PLAIN_KINDS for p in params.values())
        self.positional = [
            n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        self.required = [n for n, p in params.items() if p.default is inspect.Parameter.empty]

    def bind(self, task: str, args: list[Any], kwargs: dict[str, Any]) -> Bound:
        """Validated ``(args, kwargs)`` to call the function with, or :class:`InvalidArguments`."""
        values = self._bind_plainly(args, kwargs) if self.plain else None
        if values is None:
            return self._bind_with_inspect(task, args, kwargs)
        for name, value in values.items():
            values[name] = self._validate(task, name, value)
        return (), values

    def _bind_plainly(self, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments by name, or ``None`` when anything is off (inspect then says what)."""
        if len(args) > len(self.positional):
            return None
        values = dict(zip(self.positional, args, strict=False))
        for name, value in kwargs.items():
            if name in values or name not in self.signature.parameters:
                return None
            values[name] = value
        if any(name not in values for name in self.required):
            return None
        return values

    def _bind_with_inspect(self, task: str, args: list[Any], kwargs: dict[str, Any]) -> Bound:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"task {task!r}: {exc}") from exc
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[name] = tuple(self._validate(task, name, v) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: self._validate(task, name, v) for k, v in value.items()}
            else:
                bound.arguments[name] = self._validate(task, name, value)
        return bound.args, bound.kwargs

    def _validate(self, task: str, name: str, value: Any) -> Any:
        adapter = self.adapters.get(name)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidArguments(
                f"task {task!r}, argument {name!r}: {first['msg']} (got {type(value).__name__})"
            ) from exc


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What running one envelope gave: the reply, the task's exception, the envelope if valid."""

    reply: ReplyEnvelope
    error: BaseException | None
    envelope: TaskEnvelope | None = None


class Task(Target, Generic[P, R]):
    """A registered task: still the plain function when called, and a fan-out target.

    As a target it runs in-process ("eager mode") through the same envelope round-trip a remote
    worker would use (encode, validate, run, reply, decode), so tasks are tested without servers.

    Example::

        app = App("images")

        @app.task(timeout=30)
        async def resize(key: str, width: int = 100) -> str:
            ...

        await resize("a.png", width=50)                       # the plain function
        await dispatch_many(resize, ["a.png", "b.png"], concurrency=4)   # eager fan-out
    """

    def __init__(self, app: App, fn: Callable[P, R], *, name: str, timeout: float | None) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = _Signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} of App {self.app.name!r}>"

    # -- the target side (eager mode) ---------------------------------------------------------

    def envelope(self, item: Any, **fields: Any) -> bytes:
        """Encode the task envelope for one fan-out item (depth and deadline handed on)."""
        return build_envelope(
            self.name, item, secret=self.app.secret, max_depth=self.app.max_depth, **fields
        )

    def prepare(self, item: Any) -> bytes:
        return self.envelope(item)

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        result = await self.app.run_envelope(payload)
        return unwrap_reply(decode_reply(encode_reply(result.reply)))


class App:
    """A registry of tasks, and the worker entry points that run them.

    Args:
        name: the app's name, shown in logs.
        secret: with a secret, envelopes are signed (HMAC-SHA256) when sent and required to be
            signed when received; unsigned or wrongly signed ones never run.
        max_depth: the most hops of task-to-task dispatch (A -> B -> A loops stop there).
        concurrency: the most records of one SQS batch run at once.
        deadline_margin: seconds kept free before the Lambda deadline: an SQS batch stops taking
            records when less than this remains, and reports the rest as failures.
        loop: ``"reuse"`` (one event loop per execution environment, kept across warm
            invocations so clients and pools stay valid) or ``"fresh"`` (``asyncio.run`` per call).

    Example::

        app = App("worker", secret=os.environ.get("FANOUT_SECRET"))

        @app.task
        async def add(a: int, b: int) -> int:
            return a + b

        lambda_handler = app.lambda_handler   # the function Lambda calls

    """

    def __init__(
        self,
        name: str,
        *,
        secret: str | bytes | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        concurrency: int = 16,
        deadline_margin: float = 2.0,
        loop: str = "reuse",
    ) -> None:
        if loop not in ("reuse", "fresh"):
            raise UsageError(f"App(loop=...) is 'reuse' or 'fresh', got {loop!r}")
        if max_depth < 0:
            raise UsageError(f"App(max_depth=...) must be >= 0, got {max_depth}")
        self.name = name
        self.secret = secret
        self.max_depth = max_depth
        self.concurrency = concurrency
        self.deadline_margin = deadline_margin
        self.tasks: dict[str, Task[Any, Any]] = {}
        from ._handlers import LoopRunner

        self.runner = LoopRunner(fresh=(loop == "fresh"))

    def __repr__(self) -> str:
        return f"<App {self.name!r}: {len(self.tasks)} tasks>"

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, /, *, name: str | None = None, timeout: float | None = None
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...
    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (async or sync) as a task: ``@app.task`` or ``@app.task(...)``."""

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = name or f.__name__
            if task_name in self.tasks:
                raise UsageError(f"task {task_name!r} is already registered in app {self.name!r}")
            task = Task(self, f, name=task_name, timeout=timeout)
            self.tasks[task_name] = task
            return task

        return register if fn is None else register(fn)

    # -- running envelopes --------------------------------------------------------------------

    def lookup(self, envelope: TaskEnvelope) -> Task[Any, Any]:
        """The registered task an envelope names, after the depth check."""
        task = self.tasks.get(envelope.task)
        if task is None:
            raise UnknownTask(
                f"no task named {envelope.task!r} is registered in app {self.name!r}; "
                f"registered: {sorted(self.tasks) or 'none'}"
            )
        if envelope.depth > self.max_depth:
            raise DepthExceeded(
                f"envelope at depth {envelope.depth} is past the depth budget of {self.max_depth}"
            )
        return task

    async def run_envelope(self, raw: bytes | str | dict[str, Any]) -> TaskResult:
        """Decode, check, run one envelope; never raises for what the message or task did."""
        envelope: TaskEnvelope | None = None
        try:
            envelope = decode_task(raw, secret=self.secret)
            task = self.lookup(envelope)
            bound = task.signature.bind(task.name, envelope.args, envelope.kwargs)
            value = await self._run(task, envelope, bound)
        except Exception as exc:
            return self._failed(envelope, exc)
        try:
            reply = ReplyEnvelope(id=envelope.id, ok=True, value=value)
        except ValidationError as exc:
            bad = UsageError(f"task {envelope.task!r} returned a value that is not JSON: {exc}")
            return self._failed(envelope, bad)
        return TaskResult(reply, None, envelope)

    @staticmethod
    def _failed(envelope: TaskEnvelope | None, error: Exception) -> TaskResult:
        reply_id = envelope.id if envelope is not None else "?"
        return TaskResult(
            ReplyEnvelope(id=reply_id, ok=False, error=error_info(error)), error, envelope
        )

    async def _run(self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound) -> Any:
        started = time.monotonic()
        extra = {"task": task.name, "task_id": envelope.id, "batch_id": envelope.batch_id}
        depth_token = current_depth.set(envelope.depth)
        deadline_token = current_deadline_ms.set(envelope.deadline_ms)
        time_left = self._time_left(task, envelope)
        try:
            if time_left is None:
                value = await self._call(task, bound)
            else:
                async with asyncio.timeout(time_left):
                    value = await self._call(task, bound)
        except Exception as exc:
            log.warning(
                "task %s id=%s batch=%s failed: %s",
                task.name,
                envelope.id,
                envelope.batch_id,
                type(exc).__name__,
                extra=extra,
            )
            raise
        finally:
            current_depth.reset(depth_token)
            current_deadline_ms.reset(deadline_token)
        log.info(
            "task %s id=%s batch=%s ok in %.1f ms",
            task.name,
            envelope.id,
            envelope.batch_id,
            (time.monotonic() - started) * 1000,
            extra=extra,
        )
        return value

    @staticmethod
    async def _call(task: Task[Any, Any], bound: Bound) -> Any:
        args, kwargs = bound
        if task.is_async:
            return await task.fn(*args, **kwargs)
        call = functools.partial(task.fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call)

    @staticmethod
    def _time_left(task: Task[Any, Any], envelope: TaskEnvelope) -> float | None:
        limits = []
        if task.timeout is not None:
            limits.append(task.timeout)
        if envelope.deadline_ms is not None:
            limits.append((envelope.deadline_ms - now_ms()) / 1000)
        return max(0.0, min(limits)) if limits else None

    # -- Lambda entry points (see _handlers.py) -----------------------------------------------

    def lambda_handler(self, event: Any, context: Any) -> Any:
        """The sync function Lambda's Python runtime calls (handler ``module.app.lambda_handler``).

        Recognises a direct invoke (one envelope, or a list of them) and an SQS event.
        """
        return self.runner.run(self.handle(event, context))

    async def handle(self, event: Any, context: Any) -> Any:
        """The async body of :meth:`lambda_handler`, for callers that have a loop already."""
        from ._handlers import handle_event

        return await handle_event(self, event, context)
