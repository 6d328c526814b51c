"""Init hooks: what an app makes once per execution environment, before its first envelope.

A Python Lambda's init phase is the import of its handler module, before any loop exists; a
client or a pool made there would belong to no loop. So ``@app.on_init`` functions run on the
environment's loop (the app's :class:`~aiofanout.worker.LoopRunner`), at the first invocation,
before its first envelope: what they make (a client, a model, a connection pool) stays valid for
every warm invocation after.

A hook that raises is an init error: the invocation fails with ``Runtime.InitError`` (the error
type AWS reports when an environment's init fails), and nothing of the event runs. The hooks
have not run, so they run again before the next envelope. The local runtime, as AWS does with
an environment whose init failed, does not reuse such an environment, so that is the next
environment's first invocation. On AWS the error is an invocation's (the Runtime API takes an
init error only before the first ``/next``, when no loop exists yet), so Lambda may keep the
environment, and the hooks then run again in it: the same promise, a hook's effects once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from .._errors import InitFailed
from .._log_fields import library_logger

__all__ = ["INIT_ERROR_TYPE", "InitHook", "InitHooks", "as_lambda_init_error"]

log = library_logger("aiofanout.worker")

#: The error type Lambda reports for an environment whose init failed.
INIT_ERROR_TYPE = "Runtime.InitError"

InitHook: TypeAlias = Callable[[], Awaitable[object] | object]


class InitHooks:
    """The hooks of one app, in registration order, and whether they have run."""

    def __init__(self) -> None:
        self.hooks: list[InitHook] = []
        self.done = False
        self._lock: asyncio.Lock | None = None

    def add(self, hook: InitHook) -> None:
        """Register ``hook`` (it runs after the ones registered before it)."""
        self.hooks.append(hook)

    async def run_once(self) -> None:
        """Run the hooks, unless they ran already; :class:`InitFailed` if one raises."""
        if self.done or not self.hooks:
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:  # concurrent first envelopes (App.handle) wait for one init
            if not self.done:  # (another first envelope ran them while this one waited)
                for hook in self.hooks:
                    await _run(hook)
                self.done = True


async def _run(hook: InitHook) -> None:
    name = getattr(hook, "__qualname__", repr(hook))
    try:
        if inspect.iscoroutinefunction(hook):
            await hook()
        else:
            result: Any = hook()
            if inspect.isawaitable(result):
                await result
    except Exception as exc:
        log.exception("init hook %s raised %s: nothing of the event runs", name, type(exc).__name__)
        raise InitFailed(f"init hook {name} raised {type(exc).__name__}: {exc}", hook=name) from exc


def as_lambda_init_error(error: InitFailed) -> Exception:
    """``error`` as the Lambda runtime reports it: error type ``Runtime.InitError``.

    awslambdaric reports a raised exception's class name as its ``errorType``, and a
    ``FaultException``'s own type as given; without awslambdaric (a test calling
    ``app.lambda_handler``) the error stays :class:`InitFailed`.
    """
    try:
        from awslambdaric.lambda_runtime_exception import FaultException
    except ImportError:
        return error
    fault: Exception = FaultException(INIT_ERROR_TYPE, str(error))
    return fault
