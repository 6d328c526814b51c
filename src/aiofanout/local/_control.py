"""The control plane's effects on a running runtime: functions added, changed, removed, provisioned.

The API routes (``_functions_api``, ``_concurrency_api``) and the Python API
(:meth:`LocalLambda.add_function`) both come here, so a function has one life cycle whichever
way it was set up. A change of config or code bumps the function's ``generation``: idle
environments of an older one are stopped now, busy ones finish their invocation and retire
(:meth:`LocalLambda.invoke` checks on release), and new ones start with the new config.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._config import FunctionConfig
from ._functions import Function, FunctionRegistry

if TYPE_CHECKING:
    from ._background import Background
    from ._environments import Environment, Environments
    from ._events import EventRunner

#: Seconds a provisioned environment has to start and poll for work.
PROVISION_BUDGET = 30.0


@dataclass(slots=True)
class Provisioned:
    """A ``ProvisionedConcurrencyConfig`` and how far its environments got."""

    requested: int
    allocated: int = 0
    status: str = "IN_PROGRESS"  # then READY, or FAILED with a reason
    reason: str | None = None
    last_modified: float = dataclasses.field(default_factory=time.time)


class Control:
    """Adds, reconfigures, retires and removes functions of one runtime."""

    def __init__(
        self,
        functions: FunctionRegistry,
        environments: Environments,
        events: EventRunner,
        background: Background,
    ) -> None:
        self.functions = functions
        self._environments = environments
        self._events = events
        self._background = background
        self._event_tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, function: Function) -> None:
        """Register ``function`` (one of the same name is replaced: its environments stop)."""
        old = self.functions.put(function)
        if old is not None:
            self._stop(old)
        self._event_tasks[function.name] = self._background.spawn(self._events.run(function))

    def remove(self, name: str) -> Function | None:
        """Delete the function ``name``: its environments and queued events stop."""
        function = self.functions.remove(name)
        if function is not None:
            self._stop(function)
        return function

    def _stop(self, function: Function) -> None:
        task = self._event_tasks.pop(function.name, None)
        if task is not None:
            task.cancel()
        for env in list(function.pool.members.values()):
            self._kill(env)

    def reconfigure(self, function: Function, config: FunctionConfig) -> None:
        """Give ``function`` a new config (or code): new environments use it, old ones retire."""
        function.config = config
        function.generation += 1
        function.deployment.touch()
        for env in list(function.pool.idle):
            self._kill(env)
        provisioned = function.settings.get("provisioned")
        if isinstance(provisioned, Provisioned):
            self.provision(function, provisioned.requested)

    def is_stale(self, env: Environment) -> bool:
        """Whether ``env`` runs an older config or code than its function has now."""
        return env.generation != env.function.generation

    def set_limit(self, function: Function, limit: int) -> None:
        """Allow ``limit`` environments at once.

        Waiting invokes may start one now; above a lowered limit, idle environments stop now and
        busy ones when their invocation ends (none is cut).
        """
        pool = function.pool
        pool.limit = limit
        while pool.over_limit() and pool.idle:
            self._kill(pool.idle.popleft())
        pool.capacity_changed()

    def _kill(self, env: Environment) -> None:
        env.dead = True  # no invoke takes it from now on
        self._background.spawn(self._environments.kill(env))

    # -- provisioned concurrency ------------------------------------------------------------

    def provision(self, function: Function, requested: int) -> Provisioned:
        """Start environments until ``requested`` are warm (``Status`` IN_PROGRESS, then READY)."""
        provisioned = Provisioned(requested)
        function.settings["provisioned"] = provisioned
        self._background.spawn(self._provision(function, provisioned))
        return provisioned

    async def _provision(self, function: Function, provisioned: Provisioned) -> None:
        warm = [e for e in function.pool.idle if not e.dead and not self.is_stale(e)]
        provisioned.allocated = min(len(warm), provisioned.requested)
        missing = provisioned.requested - provisioned.allocated
        results = await asyncio.gather(
            *(self._warm_one(function) for _ in range(missing)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        provisioned.allocated += len(results) - len(failures)
        if failures:
            provisioned.status, provisioned.reason = "FAILED", str(failures[0])
        else:
            provisioned.status = "READY"
        provisioned.last_modified = time.time()

    async def _warm_one(self, function: Function) -> None:
        env = await self._environments.start(function)
        async with asyncio.timeout(PROVISION_BUDGET):
            while env.ready_at is None:  # set by the Runtime API on the first poll
                if env.dead:
                    raise RuntimeError("the environment exited during init")
                await asyncio.sleep(0.02)
        function.pool.release(env)  # warm and idle: the next invoke takes it


def with_changes(config: FunctionConfig, **changes: object) -> FunctionConfig:
    """``config`` with ``changes`` (validated again)."""
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
