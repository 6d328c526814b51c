"""A registered task: the plain function, its argument binding, and a fan-out target.

Arguments arrive as JSON; :class:`Signature` binds them to the function's parameters and
validates each against its type hint with pydantic, so a task sees the types it declared.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeAlias, TypeVar

from pydantic import TypeAdapter, ValidationError

from .._errors import InvalidArguments, UsageError
from .._target import Target
from .._wire import (
    TaskSpec,
    decode_reply,
    encode_reply,
    prepare_envelope,
    unwrap_reply,
)
from ._idempotency import (
    CallKey,
    KeyFunction,
    KeySource,
    fingerprint,
    key_function_value,
    store_key,
    wire_key,
)

if TYPE_CHECKING:
    from ._task_result import TaskResult

P = ParamSpec("P")
R = TypeVar("R")

#: Positional and keyword arguments, validated, ready to call the function with.
Bound: TypeAlias = tuple[tuple[Any, ...], dict[str, Any]]
_PLAIN_KINDS = frozenset({inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY})


class TaskOwner(Protocol):
    """The app a task is registered with: its name, its secret and depth budget, its runner."""

    @property
    def name(self) -> str: ...
    @property
    def secret(self) -> str | bytes | None: ...
    @property
    def max_depth(self) -> int: ...

    async def run_envelope(
        self, raw: bytes | str | dict[str, Any], *, answered: bool = False
    ) -> TaskResult: ...


class Signature:
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

    def __init__(
        self,
        app: TaskOwner,
        fn: Callable[P, R],
        *,
        name: str,
        timeout: float | None,
        idempotent: bool = False,
        key: KeyFunction | None = None,
    ) -> None:
        if key is not None and not idempotent:
            raise UsageError(f"task {name!r}: key= names an idempotency key; add idempotent=True")
        self.app = app
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.idempotent = idempotent
        self.key = key
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = Signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} of App {self.app.name!r}>"

    # -- the target side (eager mode) ---------------------------------------------------------

    @property
    def secret(self) -> str | bytes | None:
        """The secret its envelopes are signed with (its app's)."""
        return self.app.secret

    @property
    def spec(self) -> TaskSpec:
        """What a sender needs of this task (a target's ``task=`` reads it).

        Its name, its app's secret and depth budget, and for an idempotent task with a ``key``
        function, the key of a call.
        """
        call_key = self._wire_key if self.idempotent and self.key is not None else None
        return TaskSpec(self.name, self.app.secret, self.app.max_depth, call_key, self.idempotent)

    def _wire_key(self, args: list[Any], kwargs: dict[str, Any]) -> str:
        assert self.key is not None
        return wire_key(key_function_value(self.name, self.key, args, kwargs))

    def call_key(self, args: list[Any], kwargs: dict[str, Any], sent: str | None) -> CallKey:
        """The idempotency key one call runs once per, as its app's store keeps it.

        First to last: the task's ``key`` function of its arguments, the key its sender ``sent``
        (a journaled run's ``"<run id>:<token>:<index>"``), the arguments themselves.
        """
        source: KeySource
        key: Any
        if self.key is not None:
            source, key = "key function", key_function_value(self.name, self.key, args, kwargs)
        elif sent is not None:
            source, key = "sender", sent
        else:
            source, key = "arguments", [args, kwargs]
        return CallKey(
            self.name,
            source,
            store_key(self.app.name, self.name, source, key),
            fingerprint(self.signature.positional, args, kwargs),
        )

    def envelope(self, item: Any, **fields: Any) -> bytes:
        """Encode the task envelope for one fan-out item (depth and deadline handed on).

        An idempotent task with a ``key`` function puts the key in its envelope, over the one
        its sender has (``fields``); without one, the key is what the sender sent, or none (the
        worker keys the call by its arguments).
        """
        return prepare_envelope(self.spec, item, **fields).finish()

    def prepare(self, item: Any) -> bytes:
        return self.envelope(item)

    def prepare_keyed(self, item: Any, key: str) -> bytes:
        return self.envelope(item, idempotency_key=key)

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        result = await self.app.run_envelope(payload)
        return unwrap_reply(decode_reply(encode_reply(result.reply)))
