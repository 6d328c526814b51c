"""The functions a runtime serves, and their life cycle: added, changed, retired, removed.

:class:`FunctionRegistry` is the one place functions are added, replaced and looked up; a
:class:`Function` is a config with what the runtime keeps for it (environment pool, event queue,
stats). :class:`Control` gives a function its one life cycle: the Python API
(:meth:`LocalLambda.add_function`) and the control plane (``CreateFunction``,
``PutFunctionConcurrency``, ...) both go through it. A change of config or code bumps the
function's ``generation``: idle environments of an older one are stopped now, busy ones finish
their invocation and retire (:meth:`LocalLambda.invoke` checks on release), and new ones start
with the new config.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from ._account import ACCOUNT, function_arn, function_name
from ._config import FunctionConfig
from ._events import EventQueue
from ._faults import Injection
from ._sandbox import Pool

if TYPE_CHECKING:
    from ._background import Background
    from ._config import AccountLimits
    from ._events import EventRunner
    from ._sandbox import Environment, Environments, UnreservedPool


@dataclass(slots=True)
class FunctionStats:
    """What a function has done so far (see :meth:`LocalLambda.stats`)."""

    invocations: int = 0
    throttles: int = 0


@dataclass(slots=True)
class Deployment:
    """What the control plane reports beyond :class:`FunctionConfig` (``FunctionConfiguration``).

    ``state`` and ``last_update_status`` follow AWS's life cycle: a function the API creates is
    ``Pending`` until it can be invoked, then ``Active``; an update is ``InProgress`` until new
    environments get it, then ``Successful``. ``code_archive`` is the zip it was deployed from
    (``None``: a source directory); ``code_token`` is the secret in its download URL.
    """

    runtime: str = f"python{sys.version_info.major}.{sys.version_info.minor}"
    role: str = f"arn:aws:iam::{ACCOUNT}:role/local-lambda"
    description: str = ""
    code_sha256: str = ""
    code_size: int = 0
    code_archive: str | None = None
    code_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    last_modified: float = field(default_factory=time.time)
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "Active"
    last_update_status: str | None = "Successful"

    def touch(self) -> None:
        """Record a change (a new ``LastModified`` and ``RevisionId``)."""
        self.last_modified = time.time()
        self.revision_id = str(uuid.uuid4())

    def begin(self, *, creating: bool) -> None:
        """A create (``Pending``) or an update (``InProgress``) starts."""
        if creating:
            self.state, self.last_update_status = "Pending", None
        else:
            self.last_update_status = "InProgress"

    def settle(self) -> None:
        """The create or update took effect: ``Active``, ``Successful`` (a new ``RevisionId``)."""
        self.state, self.last_update_status = "Active", "Successful"
        self.revision_id = str(uuid.uuid4())


@dataclass(eq=False)
class Function:
    """A registered function: its config and what the runtime keeps for it.

    ``generation`` counts changes of config or code: an environment started at an older one
    finishes its invocation and retires. ``reserved`` is the reserved concurrency the API
    reports (``None``: none reserved; the pool then allows the runtime's default, and its
    invocations share the account's unreserved pool).
    """

    config: FunctionConfig
    pool: Pool
    events: EventQueue = field(default_factory=EventQueue)
    dice: random.Random = field(default_factory=random.Random)
    stats: FunctionStats = field(default_factory=FunctionStats)
    deployment: Deployment = field(default_factory=Deployment)
    generation: int = 0
    reserved: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # per concern: "event_invoke", ...

    @classmethod
    def create(cls, config: FunctionConfig, *, reserved: bool = True) -> Function:
        """A new function: no environments yet, its fault dice freshly seeded.

        ``reserved``: its ``reserved_concurrency`` is reported as reserved (a Python config
        always states one; ``CreateFunction`` reserves none).
        """
        limit = config.reserved_concurrency
        return cls(
            config, Pool(limit), dice=config.faults.dice(), reserved=limit if reserved else None
        )

    @property
    def name(self) -> str:
        """The function's name."""
        return self.config.name

    @property
    def arn(self) -> str:
        """The function's (unqualified) ARN."""
        return function_arn(self.config.name)

    def start_environment(self, environments: Environments) -> Awaitable[Environment]:
        """Start an environment of the function as it is now (a cold start), kept by its pool."""
        return environments.start(
            self.config, arn=self.arn, generation=self.generation, owner=self.pool
        )

    def is_stale(self, env: Environment) -> bool:
        """Whether ``env`` runs an older config or code than the function has now."""
        return env.generation != self.generation

    def draw_faults(self) -> Injection:
        """The faults injected into its next invocation."""
        return self.config.faults.draw(self.dice)

    def summary(self) -> dict[str, Any]:
        """Invocations, throttles, cold starts (ms) and live environments."""
        return {
            "invocations": self.stats.invocations,
            "throttles": self.stats.throttles,
            "cold_starts_ms": [round(c * 1000, 1) for c in self.pool.cold_starts],
            "environments": len(self.pool.members),
        }


class FunctionRegistry:
    """The functions of one runtime, by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Function] = {}

    def put(self, function: Function) -> Function | None:
        """Add ``function``; return the one of the same name it replaces, if any."""
        old = self._by_name.get(function.name)
        self._by_name[function.name] = function
        return old

    def remove(self, name: str) -> Function | None:
        """Forget the function ``name``; return it, if there was one."""
        return self._by_name.pop(name, None)

    def all(self) -> list[Function]:
        """Every function, by name."""
        return [self._by_name[name] for name in sorted(self._by_name)]

    def find(self, name_or_arn: str) -> Function | None:
        """The function named (or with the ARN) ``name_or_arn``, as the AWS API accepts either."""
        return self._by_name.get(function_name(name_or_arn))

    def get(self, name: str) -> Function:
        """The function named ``name``; :class:`UsageError` if there is none."""
        function = self._by_name.get(name)
        if function is None:
            raise UsageError(f"no local function named {name!r}; add it with add_function()")
        return function


def unreserved(functions: FunctionRegistry, account: AccountLimits) -> int:
    """The account's concurrency left to functions that reserve none."""
    reserved = sum(f.reserved or 0 for f in functions.all())
    return account.concurrency - reserved


# -- life cycle --------------------------------------------------------------------------------

#: Seconds a provisioned environment has to start and poll for work.
PROVISION_BUDGET = 30.0


@dataclass(slots=True)
class Provisioned:
    """A ``ProvisionedConcurrencyConfig`` and how far its environments got."""

    requested: int
    allocated: int = 0
    status: str = "IN_PROGRESS"  # then READY, or FAILED with a reason
    reason: str | None = None
    last_modified: float = field(default_factory=time.time)


class Control:
    """Adds, reconfigures, retires and removes functions of one runtime.

    It keeps the account's unreserved pool the size the reservations leave (a sum over the
    functions on each change here, so an invoke only counts).
    """

    def __init__(
        self,
        functions: FunctionRegistry,
        environments: Environments,
        events: EventRunner,
        background: Background,
        *,
        account: AccountLimits,
        unreserved: UnreservedPool,
    ) -> None:
        self.functions = functions
        self._environments = environments
        self._events = events
        self._background = background
        self._account = account
        self._unreserved = unreserved
        self._event_tasks: dict[str, asyncio.Task[None]] = {}
        self._resize_unreserved()

    def add(self, function: Function) -> None:
        """Register ``function`` (one of the same name is replaced: its environments stop)."""
        old = self.functions.put(function)
        if old is not None:
            self._stop(old)
        self._event_tasks[function.name] = self._background.spawn(self._events.run(function))
        self._resize_unreserved()

    def remove(self, name: str) -> Function | None:
        """Delete the function ``name``: its environments and queued events stop."""
        function = self.functions.remove(name)
        if function is not None:
            self._stop(function)
            self._resize_unreserved()
        return function

    def _resize_unreserved(self) -> None:
        self._unreserved.resize(unreserved(self.functions, self._account))

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

    def set_limit(self, function: Function, limit: int) -> None:
        """Allow ``limit`` environments at once (after its ``reserved`` changed).

        Waiting invokes may start one now; above a lowered limit, idle environments stop now and
        busy ones when their invocation ends (none is cut). The unreserved pool is resized.
        """
        pool = function.pool
        pool.limit = limit
        while pool.over_limit() and pool.idle:
            self._kill(pool.idle.popleft())
        pool.capacity_changed()
        self._resize_unreserved()

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
        warm = [e for e in function.pool.idle if not e.dead and not function.is_stale(e)]
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
        env = await function.start_environment(self._environments)
        async with asyncio.timeout(PROVISION_BUDGET):
            while env.ready_at is None:  # set by the Runtime API on the first poll
                if env.dead:
                    raise RuntimeError("the environment exited during init")
                await asyncio.sleep(0.02)
        function.pool.release(env)  # warm and idle: the next invoke takes it


def with_changes(config: FunctionConfig, **changes: object) -> FunctionConfig:
    """``config`` with ``changes`` (validated again)."""
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
